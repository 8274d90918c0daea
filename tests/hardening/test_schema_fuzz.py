"""Schemathesis over the OpenAPI schema of a real `kawa serve`: generated requests, valid and invalid,
with an admin key, never get a 5xx, and answers match the schema where it describes them.

A few examples per operation keep the module well under a minute; each operation's failures name the
request (as a curl command) so it can be replayed.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.generation import GenerationMode

from tests.conftest import Server

pytestmark = pytest.mark.slow

EXAMPLES = 4  # per operation and generation mode


@pytest.fixture(scope="module")
def schema(served: Server) -> Any:
    return schemathesis.openapi.from_url(served.url + "/openapi.json", timeout=30)


def fuzzer(operation: Any, call: Any) -> Any:
    """A Hypothesis test of one operation: valid and invalid requests, each passed to `call`."""
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES * 2,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        call(operation.label, case)

    return fuzz


def test_no_operation_answers_5xx(served: Server, schema: Any) -> None:
    server = served
    headers = {"Authorization": f"Bearer {server.keys['admin_key']}"}
    failures: list[str] = []
    counts: dict[str, int] = {}

    def call(label: str, case: Any) -> None:
        counts[label] = counts.get(label, 0) + 1
        response = case.call(base_url=server.url, headers=headers, timeout=60)
        # Error answers are kawa's own {"error": ...}, which the schema does not describe; answers
        # that succeed must match it.
        found = [checks.not_a_server_error]
        if response.status_code < 400:
            found.append(checks.response_schema_conformance)
        try:
            case.validate_response(response, checks=found)
        except Exception as exc:  # keep going: report every operation that fails
            failures.append(f"{label}: {response.status_code} {response.text[:200]}\n  {exc}"[:1500])

    started = time.monotonic()
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        fuzzer(operation, call)()
    elapsed = time.monotonic() - started
    assert not failures, "\n".join(failures)
    assert not set(labels) - set(counts), f"operations never called: {set(labels) - set(counts)}"
    assert len(labels) >= 40, f"only {len(labels)} operations in the schema ({elapsed:.0f} s)"
