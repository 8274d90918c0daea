"""Project API keys: generated, stored hashed, verified in constant time, revoked at once.

A key reads `kw_<role letter>_<key id>_<secret>`, e.g. `kw_w_3fQk9ZpL2a_<32 url-safe chars>`. The key
id is public (it is the lookup handle shown by `kawa keys list`); only sha256(secret) is stored.
Plain sha256, without a slow password hash, is enough because secrets are 192 random bits, not
words a person picked.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import string
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple, Self

from sqlalchemy import Connection, insert, select, update

from kawa.config import ProjectKeys
from kawa.stores.metadata import MetadataStore
from kawa.stores.metadata.tables import api_keys, projects

log = logging.getLogger(__name__)

KEY_ID_LENGTH = 10
SECRET_BYTES = 24  # 32 url-safe characters
KEY_LENGTH = len("kw_w__") + KEY_ID_LENGTH + 32
# Verified keys kept in memory; past this many the cache starts over (guards against floods of
# made-up key ids, which are cached as unknown).
CACHE_MAX_ENTRIES = 100_000
# How stale the cache may be after another process's change on SQLite (a key revoked or added).
RECHECK_S = 0.05

_KEY = re.compile(r"kw_([wra])_([A-Za-z0-9]{10})_([A-Za-z0-9_-]{32})")
_PROJECT = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_KEY_ID_ALPHABET = string.ascii_letters + string.digits


class Role(StrEnum):
    """What a key may do."""

    WRITE = "write"  # send events only; it ships inside web pages, so treat it as public
    READ = "read"  # read predictions
    ADMIN = "admin"  # everything

    @property
    def letter(self) -> str:
        """The letter that marks this role in a key (`kw_w_...`)."""
        return self.value[0]


_ROLE_BY_LETTER = {role.letter: role for role in Role}
_SLOTS = (("write_key", Role.WRITE), ("read_key", Role.READ), ("admin_key", Role.ADMIN))


@dataclass(frozen=True)
class KeyInfo:
    """Who a verified key belongs to and what it may do."""

    project: str
    role: Role
    key_id: str


class InvalidKeyError(ValueError):
    """A string given as a key is not shaped like a kawa key."""


class KeyConflictError(ValueError):
    """A key id is already registered with another project, role or secret."""


class ProjectNameError(ValueError):
    """A project name breaks the naming rule."""


class _Parsed(NamedTuple):
    role: Role
    key_id: str
    secret: str


class _Entry(NamedTuple):
    digest: bytes
    info: KeyInfo


def validate_project_name(name: str) -> str:
    """`name` if it is a valid project name, else ProjectNameError saying the rule.

    >>> validate_project_name("shop-eu")
    'shop-eu'
    """
    if not isinstance(name, str) or _PROJECT.fullmatch(name) is None:
        raise ProjectNameError(
            f"invalid project name {name!r}: use 1 to 64 lowercase letters, digits, '_' or '-', "
            "starting with a letter (e.g. 'shop' or 'web-eu')"
        )
    return name


def generate_key(role: Role) -> str:
    """A new random key for `role`.

    >>> generate_key(Role.READ).startswith("kw_r_")
    True
    """
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
    return f"kw_{Role(role).letter}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


def generate_keys() -> ProjectKeys:
    """A new write, read and admin key for one project."""
    return ProjectKeys(
        write_key=generate_key(Role.WRITE),
        read_key=generate_key(Role.READ),
        admin_key=generate_key(Role.ADMIN),
    )


def _parse(key: object) -> _Parsed | None:
    if not isinstance(key, str) or len(key) != KEY_LENGTH:
        return None
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    letter, key_id, secret = match.groups()
    return _Parsed(_ROLE_BY_LETTER[letter], key_id, secret)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def _now() -> datetime:
    return datetime.now(UTC)


class KeyRing:
    """The API keys of every project, kept in the metadata store; thread-safe.

    `verify` runs on every HTTP request, so verified keys are cached in memory. The cache is
    dropped whenever the database changed (see `ChangeWatcher`): a key revoked by a ring of this
    process fails at the next request; one revoked by another process within `RECHECK_S` on SQLite
    (which is asked at most that often), on PostgreSQL once the revoking commit's notification has
    arrived. New keys take effect the same way.
    """

    def __init__(self, metadata: MetadataStore, *, ttl_s: float = 1.0) -> None:
        self.metadata = metadata
        self._watcher = metadata.watcher(ttl_s=ttl_s, recheck_s=RECHECK_S)
        self._lock = threading.Lock()
        self._cache: dict[str, _Entry | None] = {}
        # Bumped on every invalidation, so a lookup that raced with one does not refill the cache.
        self._generation = 0

    def add_project(self, project: str, keys: ProjectKeys | None = None) -> ProjectKeys:
        """Create `project` if missing and register its three keys (new ones unless given).

        Registering the same keys again changes nothing; calling it with no keys for an existing
        project adds a fresh set beside the old one (revoke those to rotate).
        """
        name = validate_project_name(project)
        keys = keys if keys is not None else generate_keys()
        parsed: list[_Parsed] = []
        for field, role in _SLOTS:
            value = getattr(keys, field)
            found = _parse(value)
            if found is None:
                raise InvalidKeyError(f"{field} of project {name!r} is not a kawa key; {_KEY_HINT}")
            if found.role is not role:
                raise InvalidKeyError(
                    f"{field} of project {name!r} is a {found.role} key (kw_{found.role.letter}_...); "
                    f"it must be a {role} key (kw_{role.letter}_...)"
                )
            parsed.append(found)
        if len({p.key_id for p in parsed}) != len(parsed):
            raise InvalidKeyError(f"the keys of project {name!r} share a key id; {_KEY_HINT}")
        with self.metadata.begin() as conn:
            _ensure_project(conn, name)
            for found in parsed:
                _register(conn, name, found)
        self._invalidate()
        return keys

    def register(self, project: str, key: str) -> KeyInfo:
        """Register an existing plaintext key (e.g. from kawa.yaml); the same key again is a no-op.

        A revoked key stays revoked.
        """
        name = validate_project_name(project)
        found = _parse(key)
        if found is None:
            raise InvalidKeyError(f"not a kawa key for project {name!r}; {_KEY_HINT}")
        with self.metadata.begin() as conn:
            _ensure_project(conn, name)
            info = _register(conn, name, found)
        self._invalidate()
        return info

    def verify(self, key: str) -> KeyInfo | None:
        """Who `key` belongs to; None for unknown, malformed or revoked keys. Never raises on input."""
        found = _parse(key)
        if found is None:
            return None
        with self._lock:
            # Read the change marker before the database, so a commit after it shows up next time.
            if self._watcher.changed():
                self._cache.clear()
                self._generation += 1
            generation = self._generation
            entry = self._cache.get(found.key_id)
            cached = entry is not None or found.key_id in self._cache
        if not cached:
            entry = self._load(found.key_id)
            with self._lock:
                if generation == self._generation:
                    if len(self._cache) >= CACHE_MAX_ENTRIES:
                        self._cache.clear()
                    self._cache[found.key_id] = entry
        if entry is None:
            return None
        # Compare every time, also on a cache hit: the cache is keyed by the public key id.
        if not hmac.compare_digest(entry.digest, _digest(found.secret)) or entry.info.role is not found.role:
            return None
        return entry.info

    def revoke(self, key_or_key_id: str) -> bool:
        """Stop a key working, given the key or its id; False if no active key has that id."""
        found = _parse(key_or_key_id)
        key_id = found.key_id if found is not None else key_or_key_id
        if not isinstance(key_id, str) or not key_id:
            return False
        with self.metadata.begin() as conn:
            result = conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        self._invalidate()
        return result.rowcount == 1

    def projects(self) -> list[str]:
        """Every project's name, sorted."""
        with self.metadata.connect() as conn:
            return list(conn.scalars(select(projects.c.name).order_by(projects.c.name)))

    def list_keys(self, project: str | None = None) -> list[dict[str, Any]]:
        """The keys (id, project, role, created_at, revoked_at; never secrets), oldest first."""
        query = select(
            api_keys.c.key_id,
            api_keys.c.project,
            api_keys.c.role,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
        ).order_by(api_keys.c.project, api_keys.c.created_at, api_keys.c.key_id)
        if project is not None:
            query = query.where(api_keys.c.project == project)
        with self.metadata.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "role": Role(row["role"])} for row in rows]

    def close(self) -> None:
        """Release the change watcher's connection."""
        self._watcher.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self, key_id: str) -> _Entry | None:
        with self.metadata.connect() as conn:
            row = conn.execute(
                select(api_keys.c.project, api_keys.c.role, api_keys.c.secret_hash).where(
                    api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None)
                )
            ).first()
        if row is None:
            return None
        return _Entry(bytes.fromhex(row.secret_hash), KeyInfo(row.project, Role(row.role), key_id))

    def _invalidate(self) -> None:
        self._watcher.committed()  # other rings of this process see the change at their next call
        with self._lock:
            self._cache.clear()
            self._generation += 1


_KEY_HINT = (
    "create keys with `kawa init` or kawa.auth.generate_keys() (kw_<w|r|a>_<10 letters/digits>_<32 chars>)"
)


def _ensure_project(conn: Connection, name: str) -> None:
    if conn.execute(select(projects.c.name).where(projects.c.name == name)).first() is None:
        conn.execute(insert(projects).values(name=name, created_at=_now()))


def _register(conn: Connection, project: str, key: _Parsed) -> KeyInfo:
    info = KeyInfo(project, key.role, key.key_id)
    digest = _digest(key.secret).hex()
    row = conn.execute(
        select(api_keys.c.project, api_keys.c.role, api_keys.c.secret_hash, api_keys.c.revoked_at).where(
            api_keys.c.key_id == key.key_id
        )
    ).first()
    if row is None:
        conn.execute(
            insert(api_keys).values(
                key_id=key.key_id, project=project, role=key.role.value, secret_hash=digest, created_at=_now()
            )
        )
        return info
    same = row.project == project and row.role == key.role.value
    if not same or not hmac.compare_digest(row.secret_hash, digest):
        raise KeyConflictError(
            f"key id {key.key_id} is already registered with another project, role or secret; "
            "generate a new key with kawa.auth.generate_keys()"
        )
    if row.revoked_at is not None:
        log.warning(
            "key %s of project %s was revoked; registering it again leaves it revoked", key.key_id, project
        )
    return info
