"""Real servers the scale-out backends are tested against, each started on 127.0.0.1 for the tests.

When a server's binary is missing the tests that need it skip with a loud notice; with
KAWA_TEST_REQUIRE_SERVICES=1 (CI) they fail instead, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import pytest


def unavailable(what: str, how: str) -> NoReturn:
    """Skip (loudly) or, when KAWA_TEST_REQUIRE_SERVICES=1, fail: `what` is missing, `how` gets it."""
    message = f"{what} is not available: {how}"
    if os.environ.get("KAWA_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (KAWA_TEST_REQUIRE_SERVICES=1: these tests must run here)", pytrace=False)
    print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
    pytest.skip(message)
