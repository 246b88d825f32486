r"""The claim type, verdicts, and the helpers every check uses to *compute* its status.

A check never returns a status it chose: it runs searches and derivations and hands their
outcomes to :func:`decide`, which applies one rule for every claim:

* a counterexample to the statement as written was found and re-verified numerically:
  ``refined`` if the precise statement was then checked (property held, or proved), else
  ``refuted``; a claim whose *negation* was established (an existential claim such as
  "the forget gate is sometimes > 1") is ``refuted`` as well;
* no counterexample: ``proved`` if a SymPy derivation establishes the statement *and* a numeric
  spot check agrees, ``verified`` if the property held over a deterministic Hypothesis run with
  an independent oracle;
* anything else (a precise statement that failed its own check, nothing established) is
  ``unsettled``, and a check that raises is ``error``; both make the audit exit non-zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "Claim",
    "Verdict",
    "ClaimResult",
    "STATUSES",
    "SETTLED",
    "plain",
    "search",
    "holds",
    "Search",
    "decide",
    "audit_settings",
]

STATUSES = ("proved", "verified", "refuted", "refined", "unsettled", "error")
SETTLED = ("proved", "verified", "refuted", "refined")


@dataclass(frozen=True)
class Verdict:
    """What a check established: a status and its evidence (plain JSON-able values only)."""

    status: str
    evidence: dict[str, Any]

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r} is unknown; expected one of {list(STATUSES)}")


@dataclass(frozen=True)
class Claim:
    """A claim about gradients: where it comes from, what it says, what it means, its check.

    ``statement`` is quoted as written; ``precise`` is the mathematically precise statement the
    audit settles (for a ``refined`` claim: the corrected form that its check establishes).
    ``check()`` returns a :class:`Verdict`. ``proofs`` names derivations under ``proofs/``.
    """

    id: str
    source: str
    statement: str
    precise: str
    check: Callable[[], Verdict] = field(repr=False, compare=False)
    family: str = ""
    proofs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClaimResult:
    """A claim with the verdict its check computed, and how long the check took (seconds)."""

    claim: Claim
    verdict: Verdict
    seconds: float

    @property
    def status(self) -> str:
        return self.verdict.status

    def to_dict(self) -> dict[str, Any]:
        """The JSON entry: id, source, statement, precise, status, evidence."""
        return {
            "id": self.claim.id,
            "source": self.claim.source,
            "statement": self.claim.statement,
            "precise": self.claim.precise,
            "status": self.verdict.status,
            "evidence": plain(self.verdict.evidence),
        }


def plain(value: Any) -> Any:
    """Convert evidence to plain JSON values: arrays -> nested lists, numpy scalars -> float/int,
    Fractions -> float (exact value also given as a string by the checks that need it)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, Fraction):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def audit_settings(max_examples: int):
    """Deterministic Hypothesis settings for the audit's searches (no database, no deadline)."""
    from hypothesis import HealthCheck, Phase, settings

    return settings(
        derandomize=True,
        database=None,
        max_examples=max_examples,
        deadline=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=[
            # The searches draw whole matrices/models per example and some strategies reject
            # draws whose spectrum cannot be prescribed to 1e-12: both are expected here.
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
        ],
        report_multiple_bugs=False,
    )


@dataclass(frozen=True)
class Search:
    """Outcome of a Hypothesis search: the (shrunk) example found, or None; examples tried;
    ``source`` says whether the example was a stored one (``"stored example"``: an earlier
    search's shrunk result, kept like an ``@example`` and re-evaluated now) or found by this
    run (``"search"``)."""

    found: Any
    examples: int
    source: str = ""

    @property
    def ok(self) -> bool:
        return self.found is not None


class _Found(Exception):
    pass


#: When False, stored examples are ignored and every search runs from scratch
#: (``gradtheory audit --search``); the statuses must come out the same.
USE_STORED_EXAMPLES = True


#: When a dict, every search with a ``key`` records what it found there (see ``_store``).
RECORD: dict[str, Any] | None = None


def search(strategy: Any, condition: Callable[[Any], bool], max_examples: int = 100,
           known: Sequence[Any] = (), key: str | None = None) -> Search:
    """Search with Hypothesis for a value satisfying ``condition``: shrunk and deterministic.

    ``known`` values, and the values stored under ``key`` in ``gradtheory/claims/_stored.py``
    (earlier searches' shrunk results, written by ``python -m gradtheory.claims._store``), are
    tried first, as ``@example`` s; a stored value is only reported if ``condition`` holds for it
    *now*, otherwise the search runs as if there were none. Exceptions raised by
    ``condition`` propagate (the audit reports them as ``error``).
    """
    from hypothesis import example, given

    hits: list[Any] = []
    count = [0]

    def test(value: Any) -> None:
        count[0] += 1
        if condition(value):
            hits.append(value)
            raise _Found

    wrapped = given(strategy)(test)
    stored = list(known)
    if key is not None:
        from ._stored import STORED

        stored += list(STORED.get(key, ()))
    if not USE_STORED_EXAMPLES:
        stored = []
    for value in reversed(stored):
        wrapped = example(value)(wrapped)
    wrapped = audit_settings(max_examples)(wrapped)
    try:
        wrapped()
    except _Found:
        found = hits[-1]
        if RECORD is not None and key is not None:
            RECORD[key] = found
        return Search(found, count[0], "stored example" if any(found is k for k in stored) else "search")
    return Search(None, count[0], "search")


def holds(strategy: Any, prop: Callable[[Any], bool], max_examples: int = 50) -> Search:
    """Run ``prop`` over a deterministic Hypothesis search for a counterexample.

    Returns a :class:`Search` whose ``found`` is the shrunk counterexample (the property failed)
    or None (it held on every example tried).
    """
    return search(strategy, lambda v: not prop(v), max_examples)


def decide(
    *,
    counterexample: bool,
    counterexample_reverified: bool = True,
    precise_checked: bool | None = None,
    negation_established: bool = False,
    proved: bool = False,
    spot_check: bool | None = None,
    property_held: bool | None = None,
) -> str:
    """The one status rule (see the module docstring). Every argument is a computed outcome."""
    if negation_established:
        return "refuted"
    if counterexample:
        if not counterexample_reverified:
            return "unsettled"
        if precise_checked is None:
            return "refuted"
        return "refined" if precise_checked else "unsettled"
    if proved and spot_check:
        return "proved"
    if property_held:
        return "verified"
    return "unsettled"
