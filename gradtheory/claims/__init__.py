r"""The claims registry: every checkable statement about gradients in the seed documents (and a few
from the literature), quoted as written, stated precisely, each settled by running its check.

A claim is registered where its check is written (:func:`gradtheory.claims._core.claim`, a
decorator carrying the quotes, the precise statement and the refinement). The check reports
outcomes; the status is computed from them by one rule (:func:`gradtheory.claims._core.status_of`):
``proved``, ``verified``, ``refined``, ``refuted`` (or ``unsettled`` / ``error``, which make
``gradtheory audit`` exit non-zero).

``run_audit()`` runs every check (or those named) with an :class:`AuditSettings`; it leaves the
global random states of numpy, torch and :mod:`random` as it found them.
"""

from __future__ import annotations

import contextlib
import importlib
import random
import time
import traceback
from collections.abc import Iterable, Iterator

from ._core import (
    STATUSES,
    AuditSettings,
    Claim,
    ClaimResult,
    Findings,
    Verdict,
    registered,
    status_of,
)

__all__ = [
    "CLAIMS_MD_IDS",
    "FAMILIES",
    "STATUSES",
    "AuditSettings",
    "Claim",
    "ClaimResult",
    "Findings",
    "Verdict",
    "all_claims",
    "audit_results",
    "get_claim",
    "run_audit",
    "run_claim",
]

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

#: The claim families (modules of this package), in registry order.
FAMILIES = (
    "rnn",
    "products",
    "structure",
    "lstm",
    "gates",
    "clipping",
    "architecture",
    "min_rnn",
    "antisymmetric",
    "orthogonal",
    "lru",
    "selective_ssm",
    "cornn",
)


def all_claims() -> list[Claim]:
    """Every registered claim: those of CLAIMS.md in its order, then the others by family."""
    for family in FAMILIES:
        importlib.import_module(f"{__name__}.{family}")
    claims = [c for c in registered() if c.family in FAMILIES]
    order = {cid: k for k, cid in enumerate(CLAIMS_MD_IDS)}
    fam = {f: k for k, f in enumerate(FAMILIES)}
    index = {c.id: k for k, c in enumerate(claims)}
    return sorted(claims, key=lambda c: (order.get(c.id, len(order)), fam[c.family], index[c.id]))


def get_claim(claim_id: str) -> Claim:
    """The claim with this id (ValueError naming the known ids otherwise)."""
    if not isinstance(claim_id, str):
        raise TypeError(f"claim_id must be a str, got {type(claim_id).__name__} {claim_id!r}")
    for c in all_claims():
        if c.id == claim_id:
            return c
    raise ValueError(f"claim_id={claim_id!r} is unknown; expected one of {[c.id for c in all_claims()]}")


def run_claim(claim: Claim, settings: AuditSettings | None = None) -> ClaimResult:
    """Run one claim's check and compute its status; an exception gives status ``error`` with the
    traceback as evidence."""
    settings = AuditSettings() if settings is None else settings
    t0 = time.perf_counter()
    try:
        findings = claim.check(settings)
        if not isinstance(findings, Findings):
            raise TypeError(f"check of {claim.id!r} returned {type(findings).__name__}, expected Findings")
        status, basis = status_of(claim, findings)
        verdict = Verdict(status, dict(findings.evidence), basis)
    except Exception as exc:  # noqa: BLE001 -- the audit reports it; the CLI exits non-zero
        verdict = Verdict(
            "error",
            {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            },
            "the check raised",
        )
    return ClaimResult(claim, verdict, time.perf_counter() - t0)


@contextlib.contextmanager
def _global_random_states_kept() -> Iterator[None]:
    """Restore numpy's, torch's and :mod:`random`'s global generators on exit (checks may build
    torch modules, whose default initialisation draws from torch's global generator)."""
    import numpy as np
    import torch

    np_state, torch_state, py_state = (
        np.random.get_state(),
        torch.random.get_rng_state(),
        random.getstate(),
    )
    try:
        yield
    finally:
        np.random.set_state(np_state)
        torch.random.set_rng_state(torch_state)
        random.setstate(py_state)


def _wanted(ids: str | Iterable[str] | None) -> list[str] | None:
    if ids is None:
        return None
    if isinstance(ids, str):
        return [ids]
    try:
        wanted = list(ids)
    except TypeError:
        raise TypeError(f"ids={ids!r} must be a claim id (str), an iterable of claim ids, or None") from None
    bad = [i for i in wanted if not isinstance(i, str)]
    if bad:
        raise TypeError(f"ids must hold claim ids (str); got {bad!r}")
    return wanted


def run_audit(ids: str | Iterable[str] | None = None, settings: AuditSettings | None = None) -> list[ClaimResult]:
    """Run the checks (all, one id, or the given ids) and return their results in registry order.

    Parameters
    ----------
    ids : str, iterable of str, or None
        A claim id, several, or None for every claim.
    settings : AuditSettings, optional
        How the searches run (default: stored examples first, nothing recorded).

    Returns
    -------
    list of ClaimResult

    Raises
    ------
    TypeError
        If ``ids`` is neither a str nor an iterable of str.
    ValueError
        If an id is unknown.
    """
    wanted = _wanted(ids)
    if settings is not None and not isinstance(settings, AuditSettings):
        raise TypeError(f"settings={settings!r} must be an AuditSettings or None")
    claims = all_claims()
    if wanted is not None:
        known = {c.id for c in claims}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise ValueError(f"ids has unknown claim ids {unknown}; expected some of {sorted(known)}")
        claims = [c for c in claims if c.id in wanted]
    with _global_random_states_kept():
        return [run_claim(c, settings) for c in claims]


_DEFAULT_RESULTS: list[ClaimResult] = []


def audit_results() -> list[ClaimResult]:
    """The full audit with default settings, run once per process and then reused (the audit is
    deterministic: derandomized searches, stored examples first). The proofs' audit chapter and the
    test suite read it.

    Returns
    -------
    list of ClaimResult
        In registry order.
    """
    if not _DEFAULT_RESULTS:
        _DEFAULT_RESULTS.extend(run_audit())
    return list(_DEFAULT_RESULTS)
