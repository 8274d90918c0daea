"""Who may call kawa: project API keys with write, read and admin roles."""

from __future__ import annotations

from kawa.auth.keys import (
    InvalidKeyError,
    KeyConflictError,
    KeyInfo,
    KeyRing,
    ProjectNameError,
    Role,
    generate_key,
    generate_keys,
    validate_project_name,
)
from kawa.config import ProjectKeys

__all__ = [
    "InvalidKeyError",
    "KeyConflictError",
    "KeyInfo",
    "KeyRing",
    "ProjectKeys",
    "ProjectNameError",
    "Role",
    "generate_key",
    "generate_keys",
    "validate_project_name",
]
