r"""The claim record, what a check reports, the one status rule, and the Hypothesis searches.

A check never chooses a status. It reports :class:`Findings`: an :class:`Outcome` for the
statement *as written* (made precise without changing what it asserts: ``Claim.precise``) and,
when the claim registers a refinement, an :class:`Outcome` for that corrected statement
(``Claim.refinement``). :func:`status_of` turns them into a status by one rule:

* the written statement holds, established by a SymPy derivation or an exact witness (exact
  arithmetic, e.g. a fixed point whose Jacobian is known in closed form) with a numeric spot
  check: **proved**; established by a property held over a deterministic Hypothesis run against
  an independent oracle, or by a floating-point witness: **verified**;
* the written statement fails (a counterexample re-verified by an independent oracle, or its
  negation derived):

  - **refined** if the claim registers a refinement, a precise statement that keeps the claim's
    conclusion and changes only its hypothesis, constant or scope, and that refinement is itself
    proved or verified;
  - **refuted** if the claim registers no refinement: what is true contradicts the claim's
    conclusion (the precise form records the negation that was established);

* anything else (nothing established, or a refinement that failed its own check) is
  **unsettled**; a check that raises is **error**. Both make ``gradtheory audit`` exit non-zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = [
    "HOWS",
    "SETTLED",
    "STATUSES",
    "AuditSettings",
    "Claim",
    "ClaimResult",
    "Findings",
    "Outcome",
    "Quote",
    "Search",
    "Verdict",
    "claim",
    "counterexample",
    "derived",
    "exact_witness",
    "holds",
    "negation_derived",
    "numeric_witness",
    "plain",
    "proof_or_property",
    "property_held",
    "registered",
    "search",
    "status_of",
]

STATUSES = ("proved", "verified", "refuted", "refined", "unsettled", "error")
SETTLED = ("proved", "verified", "refuted", "refined")

#: How an outcome was established. The first two make a holding statement *proved*, the next two
#: *verified*; the last two say that the statement fails.
HOWS = (
    "derivation",
    "exact witness",
    "property",
    "numeric witness",
    "counterexample",
    "negation derived",
)
_PROOF = ("derivation", "exact witness")
_CHECKED = ("property", "numeric witness")
_FAILS = ("counterexample", "negation derived")


# ---------------------------------------------------------------------------------------------
# Outcomes and the rule


@dataclass(frozen=True)
class Outcome:
    """What a check established about one statement: ``established`` and ``how`` (one of HOWS).

    For ``how`` in ("counterexample", "negation derived"), ``established`` means that the
    statement was shown to *fail* (a counterexample found and re-verified by an independent
    oracle, or the negation derived); otherwise it means that the statement was shown to hold.
    """

    established: bool
    how: str

    def __post_init__(self) -> None:
        if self.how not in HOWS:
            raise ValueError(f"how={self.how!r} is unknown; expected one of {list(HOWS)}")
        if not isinstance(self.established, (bool, np.bool_)):
            raise TypeError(f"established={self.established!r} must be a bool")
        object.__setattr__(self, "established", bool(self.established))

    @property
    def holds(self) -> bool:
        return self.established and self.how not in _FAILS

    @property
    def fails(self) -> bool:
        return self.established and self.how in _FAILS


def derived(ok: bool, spot_check: bool) -> Outcome:
    """A SymPy derivation established the statement *and* a numeric spot check agreed."""
    return Outcome(bool(ok and spot_check), "derivation")


def exact_witness(ok: bool, spot_check: bool) -> Outcome:
    """An existence statement established by a witness computed in exact arithmetic (rationals or
    SymPy closed forms), with the numeric model agreeing on it."""
    return Outcome(bool(ok and spot_check), "exact witness")


def property_held(ok: bool) -> Outcome:
    """A property held on every example of a deterministic Hypothesis run (independent oracle)."""
    return Outcome(bool(ok), "property")


def numeric_witness(ok: bool) -> Outcome:
    """An existence statement established by a floating-point witness re-checked by an oracle."""
    return Outcome(bool(ok), "numeric witness")


def counterexample(found: bool, reverified: bool) -> Outcome:
    """The statement fails: a counterexample was found and re-verified by an independent oracle."""
    return Outcome(bool(found and reverified), "counterexample")


def negation_derived(ok: bool) -> Outcome:
    """The statement fails: its negation was derived (SymPy) and no search found it to hold."""
    return Outcome(bool(ok), "negation derived")


def proof_or_property(proved: bool, held: bool) -> Outcome:
    """``derived`` when a derivation established it and the property held too (the spot check);
    otherwise ``property_held``."""
    return derived(True, True) if (proved and held) else property_held(held)


@dataclass(frozen=True)
class Findings:
    """What a check reports: the written statement's outcome, the refinement's (None when the
    claim registers no refinement), and the evidence (plain values, see :func:`plain`)."""

    written: Outcome
    refinement: Outcome | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)


def status_of(claim: Claim, findings: Findings) -> tuple[str, str]:
    """The one status rule (module docstring): (status, basis), basis saying how it was reached."""
    if (claim.refinement is None) != (findings.refinement is None):
        raise TypeError(
            f"claim {claim.id!r} {'registers' if claim.refinement else 'registers no'} refinement but its check "
            f"{'did not report' if findings.refinement is None else 'reported'} a refinement outcome"
        )
    w = findings.written
    if w.fails:
        if claim.refinement is None:
            return (
                "refuted",
                f"statement fails ({w.how}); no refinement keeps its conclusion",
            )
        r = findings.refinement
        if r.holds:
            word = "proved" if r.how in _PROOF else "verified"
            return "refined", f"statement fails ({w.how}); refinement {word} ({r.how})"
        return (
            "unsettled",
            f"statement fails ({w.how}); refinement not established ({r.how})",
        )
    if w.holds:
        return ("proved" if w.how in _PROOF else "verified"), f"statement holds ({w.how})"
    return "unsettled", f"nothing established ({w.how})"


@dataclass(frozen=True)
class Verdict:
    """The computed status, how it was reached, and the evidence (plain JSON-able values)."""

    status: str
    evidence: dict[str, Any]
    basis: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r} is unknown; expected one of {list(STATUSES)}")


# ---------------------------------------------------------------------------------------------
# The claim record and its registry


@dataclass(frozen=True)
class Quote:
    """A verbatim quote: ``doc`` is a key of :data:`gradtheory.claims._sources.DOCUMENTS`,
    ``section`` the heading it stands under (empty if the document has none there)."""

    doc: str
    text: str
    section: str = ""


@dataclass(frozen=True)
class AuditSettings:
    """How the audit's searches run (passed to every check; nothing is a module-level flag).

    ``use_stored_examples``: try the shrunk counterexamples of ``_stored.py`` first (False:
    search from scratch, ``gradtheory audit --search``; the statuses must come out the same).
    ``record``: when a dict, every keyed search stores what it found there (``_store``).
    """

    use_stored_examples: bool = True
    record: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.use_stored_examples, bool):
            raise TypeError(f"use_stored_examples={self.use_stored_examples!r} must be a bool")
        if self.record is not None and not isinstance(self.record, dict):
            raise TypeError(f"record={self.record!r} must be a dict or None")


@dataclass(frozen=True)
class Claim:
    """A claim: where it is said (``quotes``), what it means (``precise``: the statement as
    written, made precise), the corrected statement kept in its spirit if it fails
    (``refinement``, or None), the derivations under ``proofs/`` it uses, and its check
    ``check(settings) -> Findings``."""

    id: str
    quotes: tuple[Quote, ...]
    precise: str
    check: Callable[[AuditSettings], Findings] = field(repr=False, compare=False)
    refinement: str | None = None
    family: str = ""
    proofs: tuple[str, ...] = ()

    @property
    def statement(self) -> str:
        """The quotes as written, joined."""
        return " / ".join(q.text for q in self.quotes)

    @property
    def source(self) -> str:
        """The sources, bibliographically (title, author, date, section), one per quote."""
        from ._sources import cite

        seen: list[str] = []
        for q in self.quotes:
            c = cite(q.doc, q.section)
            if c not in seen:
                seen.append(c)
        return "; ".join(seen)


_REGISTRY: dict[str, Claim] = {}


def claim(
    claim_id: str,
    *,
    quotes: Sequence[Quote],
    precise: str,
    refinement: str | None = None,
    proofs: Sequence[str] = (),
) -> Callable:
    """Decorator: register the decorated check under ``claim_id`` with its metadata beside it."""
    from ._sources import DOCUMENTS

    if not quotes:
        raise ValueError(f"claim {claim_id!r} needs at least one quote")
    for q in quotes:
        if q.doc not in DOCUMENTS:
            raise ValueError(f"claim {claim_id!r}: quote doc={q.doc!r} is unknown; expected one of {sorted(DOCUMENTS)}")

    def register(
        check: Callable[[AuditSettings], Findings],
    ) -> Callable[[AuditSettings], Findings]:
        c = Claim(
            claim_id,
            tuple(quotes),
            precise,
            check,
            refinement,
            check.__module__.rsplit(".", 1)[-1],
            tuple(proofs),
        )
        old = _REGISTRY.get(claim_id)
        if old is not None and (old.check.__module__, old.check.__qualname__) != (
            check.__module__,
            check.__qualname__,
        ):
            raise ValueError(f"duplicate claim id {claim_id!r} ({old.check.__module__} and {check.__module__})")
        _REGISTRY[claim_id] = c
        check.claim = c  # type: ignore[attr-defined]
        return check

    return register


def registered() -> list[Claim]:
    """The claims registered so far, in registration order."""
    return list(_REGISTRY.values())


@dataclass(frozen=True)
class ClaimResult:
    """A claim with the verdict computed from its check, and how long the check took (seconds)."""

    claim: Claim
    verdict: Verdict
    seconds: float

    @property
    def status(self) -> str:
        return self.verdict.status

    def to_dict(self) -> dict[str, Any]:
        """The JSON entry: id, source, statement, precise, refinement, status, basis, evidence."""
        return {
            "id": self.claim.id,
            "source": self.claim.source,
            "statement": self.claim.statement,
            "precise": self.claim.precise,
            "refinement": self.claim.refinement,
            "status": self.verdict.status,
            "basis": self.verdict.basis,
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


# ---------------------------------------------------------------------------------------------
# Searches


def _hypothesis_settings(max_examples: int):
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


def search(
    strategy: Any,
    condition: Callable[[Any], bool],
    max_examples: int,
    settings: AuditSettings,
    known: Sequence[Any] = (),
    key: str | None = None,
) -> Search:
    """Search with Hypothesis for a value satisfying ``condition``: shrunk and deterministic.

    ``known`` values, and the values stored under ``key`` in ``gradtheory/claims/_stored.py``
    (earlier searches' shrunk results, written by ``python -m gradtheory.claims._store``), are
    tried first, as ``@example`` s, unless ``settings.use_stored_examples`` is False; a stored
    value is only reported if ``condition`` holds for it *now*, otherwise the search runs as if
    there were none. Exceptions raised by ``condition`` propagate (the audit reports ``error``).
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
    if not settings.use_stored_examples:
        stored = []
    for value in reversed(stored):
        wrapped = example(value)(wrapped)
    wrapped = _hypothesis_settings(max_examples)(wrapped)
    try:
        wrapped()
    except _Found:
        found = hits[-1]
        if settings.record is not None and key is not None:
            settings.record[key] = found
        return Search(
            found,
            count[0],
            "stored example" if any(found is k for k in stored) else "search",
        )
    return Search(None, count[0], "search")


def holds(
    strategy: Any,
    prop: Callable[[Any], bool],
    max_examples: int,
    settings: AuditSettings,
) -> Search:
    """Run ``prop`` over a deterministic Hypothesis search for a counterexample: ``found`` is the
    shrunk counterexample (the property failed) or None (it held on every example tried)."""
    return search(strategy, lambda v: not prop(v), max_examples, settings)
