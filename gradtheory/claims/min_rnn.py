r"""Claims about minGRU and minLSTM (Feng et al., 2024, "Were RNNs All We Needed?"): training without
BPTT, the scale of the state, the gradient through time (proofs/mingru.tex, proofs/minlstm.tex).

Witnesses are explicit: the zero-weight models (every gate exactly 1/2 in floating point, so
:math:`\partial h_T/\partial h_0 = 2^{-T}` exactly), and deterministic Hypothesis runs over drawn
weights for the refinements, each against an oracle independent of the code checked (exact
rationals, 50-digit mpmath, the closed form of the scan).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from ._core import (
    AuditSettings,
    Findings,
    Quote,
    claim,
    counterexample,
    derived,
    holds,
    proof_or_property,
)

__all__: list[str] = []

_PAPER = "feng2024"
_ABSTRACT = (
    "we show that by removing their hidden state dependencies from their input, forget, and update gates, "
    "LSTMs and GRUs no longer need to BPTT and can be efficiently trained in parallel"
)
# the witnesses' length: 2^-60 ~ 8.7e-19, a gradient that has vanished for any practical purpose
_T = 60
_EXAMPLES = 12  # drawn models per property: each costs ~5 ms (T <= 40, H <= 4)
_U = 2.0**-53
# h_t = a h_{t-1} + (1 - a) h~ rounded: each step adds <= 4u relative to the convex bound's scale.
_HULL_RTOL_PER_STEP = 4 * _U
# dh_T/dh_0 is a product of T factors sigma(-a) each within 2u relative, and T - 1 roundings of
# the running product: <= (2T + 4) u relative.
_PRODUCT_RTOL_PER_STEP, _PRODUCT_RTOL_CONST = 2 * _U, 4 * _U


def _model(name: str, H: int = 3, I: int = 2, scale: float = 1.0, seed: int = 0) -> Any:
    from .. import cells

    model = cells.get(name).model(I, H, seed=seed)
    model.params = {k: v * scale for k, v in model.params.items()}
    return model


def _zero_weight_witness(name: str) -> tuple[bool, bool, dict]:
    """Exact: with all weights 0 every gate is sigma(0) = 1/2 exactly (so a_t = 1/2), and
    dh_T/dh_0 = (1/2)^T I in rationals; BPTT's dL/dh_0 for L = sum h_T equals it bit for bit."""
    model = _model(name)
    model.params = {k: np.zeros_like(v) for k, v in model.params.items()}
    x = np.random.default_rng(0).normal(size=(_T, 1, model.input_size))
    res = model.forward(x)
    g = model.backward(res, np.zeros_like(res.output), np.ones_like(res.h_n))
    exact = Fraction(1, 2) ** _T
    J = model.jacobians(res)[:, 0]
    numeric = bool(np.all(g.h0 == float(exact)) and np.all(np.diagonal(J, axis1=-2, axis2=-1) == 0.5))
    return (
        exact > 0,
        numeric,
        {"weights": "all zero", "T": _T, "dhT_dh0_exact": str(exact), "dhT_dh0_bptt": float(g.h0[0, 0, 0])},
    )


def _reverse_scan_is_bptt(name: str, settings: AuditSettings) -> tuple[bool, Any]:
    """BPTT's dL/dh_t (model.backward) equals the reverse linear scan dh_t = a_{t+1} dh_{t+1} + d_out_t
    evaluated by the log-space scan, within the scan's derived bound, on drawn models."""
    from hypothesis import strategies as st

    from ..cells._parallel import log_space_scan, scan_tolerance
    from ..models import input_projection

    def prop(case: tuple[int, int, float]) -> bool:
        seed, T, scale = case
        model = _model(name, scale=scale, seed=seed)
        rng = np.random.default_rng(seed)
        x, d_out, d_hn = rng.normal(size=(T, 2, 2)), rng.normal(size=(T, 2, 3)), rng.normal(size=(2, 3))
        g = model.backward(model.forward(x), d_out, d_hn[None])
        log_a, _, _ = model.cell.scan_coefficients(input_projection(model.cell, x, model.layer_params()), 3)
        log_a_rev = np.concatenate([np.zeros_like(log_a[:1]), log_a[::-1][:-1]])
        dh = log_space_scan(log_a_rev, d_out[::-1], d_hn)[::-1]
        bound = scan_tolerance(log_a_rev, d_out[::-1], d_hn)[::-1]
        return bool(np.all(np.abs(g.dh[0] - dh) <= bound))

    cases = st.tuples(st.integers(0, 2**16), st.integers(1, 40), st.sampled_from([0.5, 1.0, 4.0]))
    found = holds(cases, prop, _EXAMPLES, settings)
    return not found.ok, found.found


def _no_bptt(name: str, settings: AuditSettings) -> Findings:
    exact, numeric, ev = _zero_weight_witness(name)
    refined, bad = _reverse_scan_is_bptt(name, settings)
    ev = {**ev, "refinement_examples": _EXAMPLES, "refinement_counterexample": bad}
    ev["oracle"] = "Fraction (1/2)^T; the log-space reverse scan (closed form, proofs/%s.tex)" % name
    return Findings(counterexample(exact, numeric), proof_or_property(True, refined), ev)


_NO_BPTT_PRECISE = (
    "With gates that read x_t only, the gradient needs no propagation through time: dL/dh_k does not depend on "
    "the steps after k (dh_T/dh_k = 0 for k < T)."
)
_NO_BPTT_REFINED = (
    "The gradient still flows through time, dh_T/dh_k = prod_{j=k+1}^T diag(a_j) != 0, and BPTT remains "
    "(dL/dh_k = a_{k+1} * dL/dh_{k+1} + dL/dh_k|local); what the input-only gates remove is the dependence of "
    "a_j on h: both the forward recurrence and BPTT are linear recurrences with input-only coefficients, so "
    "both are evaluated by parallel scans (the closed form A_t (h_0 + sum b_k / A_k), SymPy; BPTT equals the "
    "reverse log-space scan within its derived rounding bound)."
)


@claim(
    "mingru-no-bptt",
    quotes=[Quote(_PAPER, _ABSTRACT, "Abstract (arXiv v1)")],
    precise="minGRU: " + _NO_BPTT_PRECISE,
    refinement="minGRU (a_j = 1 - z_j): " + _NO_BPTT_REFINED,
    proofs=("mingru",),
)
def check_mingru_no_bptt(settings: AuditSettings) -> Findings:
    return _no_bptt("mingru", settings)


@claim(
    "minlstm-no-bptt",
    quotes=[Quote(_PAPER, _ABSTRACT, "Abstract (arXiv v1)")],
    precise="minLSTM: " + _NO_BPTT_PRECISE,
    refinement="minLSTM (a_j = f'_j): " + _NO_BPTT_REFINED,
    proofs=("minlstm",),
)
def check_minlstm_no_bptt(settings: AuditSettings) -> Findings:
    return _no_bptt("minlstm", settings)


def _hull_property(name: str, settings: AuditSettings) -> tuple[bool, Any]:
    """|h_t| <= max(|h_0|, max_k |h~_k|) (1 + 4 t u) on drawn models with weights up to 20x torch's."""
    from hypothesis import strategies as st

    from ..models import input_projection

    def prop(case: tuple[int, int, float]) -> bool:
        seed, T, scale = case
        model = _model(name, scale=scale, seed=seed)
        rng = np.random.default_rng(seed)
        x, h0 = rng.normal(size=(T, 2, 2)) * 3, rng.normal(size=(1, 2, 3)) * 3
        h = model.forward(x, h0).output
        h_tilde = input_projection(model.cell, x, model.layer_params())[..., -3:]
        bound = np.maximum(np.abs(h0[0]), np.maximum.accumulate(np.abs(h_tilde), axis=0))
        t = np.arange(1, T + 1)[:, None, None]
        return bool(np.all(np.abs(h) <= bound * (1 + _HULL_RTOL_PER_STEP * t)))

    found = holds(
        st.tuples(st.integers(0, 2**16), st.integers(1, 200), st.sampled_from([1.0, 5.0, 20.0])),
        prop,
        _EXAMPLES,
        settings,
    )
    return not found.ok, found.found


def _derivation_holds(name: str) -> bool:
    from .. import cells

    cells.get(name).derivation()  # raises if a SymPy identity of the derivation fails
    return True


@claim(
    "minlstm-time-independent-scale",
    quotes=[
        Quote(
            _PAPER,
            "Ensure output is time-independent in scale",
            "Sec. 3.2, step 3 of the minLSTM construction (heading as commonly cited; the paper text is not "
            "available here)",
        )
    ],
    precise="Normalising the gates, f' = f/(f+i), i' = i/(f+i), makes f' + i' = 1, so h_t is a convex "
    "combination of h_{t-1} and h~_t: |h_t| <= max(|h_0|, max_{k<=t} |h~_k|) elementwise, for every t and "
    "all weights (the scale of h does not grow with t).",
    proofs=("minlstm",),
)
def check_minlstm_time_independent_scale(settings: AuditSettings) -> Findings:
    proved = _derivation_holds("minlstm")
    held, bad = _hull_property("minlstm", settings)
    return Findings(
        proof_or_property(proved, held),
        None,
        {"examples": _EXAMPLES, "counterexample": bad, "oracle": "the running max of |h0|, |h~| (SymPy: f'+i'=1)"},
    )


def _gradient_property(name: str, settings: AuditSettings) -> tuple[bool, Any]:
    """Entries of dh_T/dh_0 (BPTT) lie in (0, 1] and equal the product of retain gates in 50 digits."""
    import mpmath
    from hypothesis import strategies as st

    from ..models import input_projection

    mp = mpmath.mp.clone()
    mp.dps = 50

    def prop(case: tuple[int, int, float]) -> bool:
        seed, T, scale = case
        model = _model(name, scale=scale, seed=seed)
        x = np.random.default_rng(seed).normal(size=(T, 1, 2))
        res = model.forward(x)
        g = model.backward(res, np.zeros_like(res.output), np.ones_like(res.h_n)).h0[0, 0]
        pre = input_projection(model.cell, x, model.layer_params())[:, 0, :3]
        for n in range(3):
            prod = mp.mpf(1)
            for t in range(T):
                prod *= 1 / (1 + mp.exp(mp.mpf(pre[t, n])))  # 1 - sigma(a) = sigma(-a)
            if not (
                0 <= g[n] <= 1
                and abs(g[n] - float(prod)) <= (_PRODUCT_RTOL_PER_STEP * T + _PRODUCT_RTOL_CONST) * float(prod)
            ):
                return False
        return True

    found = holds(
        st.tuples(st.integers(0, 2**16), st.integers(1, 40), st.sampled_from([1.0, 5.0, 20.0])),
        prop,
        _EXAMPLES,
        settings,
    )
    return not found.ok, found.found


@claim(
    "mingru-gradient-neither-vanishes-nor-explodes",
    quotes=[
        Quote(
            _PAPER,
            "minGRU's gated linear recurrence keeps gradients stable: they neither vanish nor explode",
            "claim as commonly cited about minGRU (not a quotation of the paper, whose text is not available here)",
        )
    ],
    precise="For minGRU there are constants 0 < c <= C independent of T with c <= ||dh_T/dh_0||_2 <= C for all "
    "weights and inputs.",
    refinement="dh_T/dh_k = diag(prod_{j=k+1}^T (1 - z_j)) with every factor in (0, 1): ||dh_T/dh_k||_2 < 1, "
    "the gradient never explodes; it is >= (min_{j,n} (1 - z_{j,n}))^{T-k}, and it vanishes geometrically unless "
    "z_{j,n} -> 0 (the gate keeps the state). Proved by the derivation; BPTT equals the product in 50-digit "
    "arithmetic on drawn models.",
    proofs=("mingru",),
)
def check_mingru_gradient(settings: AuditSettings) -> Findings:
    exact, numeric, ev = _zero_weight_witness("mingru")
    held, bad = _gradient_property("mingru", settings)
    proved = _derivation_holds("mingru")
    ev = {**ev, "refinement_examples": _EXAMPLES, "refinement_counterexample": bad}
    return Findings(counterexample(exact, numeric), derived(proved, held), ev)
