r"""The claims registry: every claim about gradients from the seed documents and the literature,
stated as written and precisely, each settled by running its check.

A :class:`Claim` carries ``id``, ``source``, ``statement`` (quoted), ``precise`` and ``check``; the
check returns a :class:`Verdict` whose status is *computed* (see :mod:`gradtheory.claims._core`):

* ``proved``   -- a SymPy derivation (``gradtheory.symbolic``) establishes it and a numeric spot
  check agrees;
* ``verified`` -- the property held over a deterministic Hypothesis run against an independent
  oracle;
* ``refuted``  -- a shrunk counterexample (or a proof of the negation), re-verified numerically;
* ``refined``  -- false as written (counterexample), true in the precise form, which is checked.

``run_audit()`` runs every check; ``gradtheory audit`` prints the table (``--json``,
``--markdown``). A check that raises gives ``error`` and the audit exits non-zero.
"""

from __future__ import annotations

import time
import traceback
from typing import Iterable, Sequence

from ._core import STATUSES, Claim, ClaimResult, Verdict

__all__ = ["Claim", "Verdict", "ClaimResult", "STATUSES", "all_claims", "get_claim", "run_audit", "run_claim",
           "CLAIMS_MD_IDS"]

#: The ids of shared/CLAIMS.md, in its order (kept exactly); claims found in the seeds follow.
CLAIMS_MD_IDS = (
    "bptt-jacobian-product",
    "scalar-repeated-multiplication",
    "eigenvalue-below-one-vanishes",
    "eigenvalue-above-one-explodes",
    "sigmoid-bound-is-one",
    "spectral-norm-sufficient-for-vanishing",
    "exploding-requires-large-norm",
    "clipping-preserves-direction",
    "lstm-cell-gradient-only-forget-gate",
    "forget-gate-exceeds-one",
    "cell-counter-by-one",
    "tanh-squashes-to-unit-interval",
    "lstm-constant-error-carousel",
    "lstm-still-vanishes",
    "gru-fewer-parameters",
    "residual-preserves-gradient",
    "bidirectional-not-for-lm",
    "tanh-derivative-below-one",
    "sigmoid-rnn-gradient-vanishes",
)


def all_claims() -> list[Claim]:
    """Every registered claim: those of CLAIMS.md in its order, then the ones found in the seeds."""
    from . import architecture, clipping, lstm, rnn

    claims = [c for mod in (rnn, lstm, clipping, architecture) for c in mod.CLAIMS]
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise AssertionError(f"duplicate claim ids: {sorted(i for i in ids if ids.count(i) > 1)}")
    order = {cid: k for k, cid in enumerate(CLAIMS_MD_IDS)}
    return sorted(claims, key=lambda c: (order.get(c.id, len(order)), ids.index(c.id)))


def get_claim(claim_id: str) -> Claim:
    """The claim with this id (ValueError naming the known ids otherwise)."""
    for c in all_claims():
        if c.id == claim_id:
            return c
    raise ValueError(f"claim_id={claim_id!r} is unknown; expected one of {[c.id for c in all_claims()]}")


def run_claim(claim: Claim) -> ClaimResult:
    """Run one claim's check; an exception becomes status ``error`` with its traceback as evidence."""
    t0 = time.perf_counter()
    try:
        verdict = claim.check()
        if not isinstance(verdict, Verdict):
            raise TypeError(f"check of {claim.id!r} returned {type(verdict).__name__}, expected Verdict")
    except Exception as exc:  # the audit reports it; the CLI exits non-zero
        verdict = Verdict("error", {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    return ClaimResult(claim, verdict, time.perf_counter() - t0)


def run_audit(ids: Iterable[str] | None = None) -> list[ClaimResult]:
    """Run the checks (all, or those with the given ids) and return their results in registry order."""
    claims = all_claims()
    if ids is not None:
        wanted: Sequence[str] = list(ids)
        known = {c.id for c in claims}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise ValueError(f"ids has unknown claim ids {unknown}; expected some of {sorted(known)}")
        claims = [c for c in claims if c.id in wanted]
    return [run_claim(c) for c in claims]
