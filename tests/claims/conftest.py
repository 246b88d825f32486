"""Each claim's check runs once per session; tests of one claim share its result."""

from __future__ import annotations

import pytest

from gradtheory.claims import ClaimResult, get_claim, run_claim

_RESULTS: dict[str, ClaimResult] = {}


def audit_result(claim_id: str) -> ClaimResult:
    """The claim's check, run once per session (the audit's own code path: run_claim)."""
    if claim_id not in _RESULTS:
        _RESULTS[claim_id] = run_claim(get_claim(claim_id))
    return _RESULTS[claim_id]


@pytest.fixture(scope="session")
def audit():
    return audit_result
