r"""Claims about the LSTM: the cell path, the gates, the "counter", vanishing.

torch's cell (gate rows i, f, g, o): :math:`c_t = f_t \odot c_{t-1} + i_t \odot g_t`,
:math:`h_t = o_t \odot \tanh(c_t)` with :math:`i, f, o = \sigma(\cdot)`, :math:`g = \tanh(\cdot)`.
The joint one-step Jacobian of :math:`s_t = (h_t, c_t)` has the block
:math:`\partial c_t/\partial c_{t-1}|_{h_{t-1}} = \operatorname{diag}(f_t)` and the block
:math:`\partial c_t/\partial h_{t-1} = \operatorname{diag}(c_{t-1} f(1-f)) W_{hf} +
\operatorname{diag}(g\, i(1-i)) W_{hi} + \operatorname{diag}(i(1-g^2)) W_{hg}`, through which
:math:`W_{hh}` enters every longer path (``proofs/lstm.tex``).
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp
from hypothesis import strategies as st

from .. import ACTIVATIONS, LSTM, RNN
from .. import strategies as gst
from .._tolerances import JACOBIAN_PRODUCT, LSTM_SATURATED_CELL_IDENTITY, UNIT_ROUNDOFF
from ..oracles import jacobian as fd_jacobian
from ..symbolic.lstm import lstm_step
from ._core import (
    AuditSettings,
    Findings,
    Quote,
    claim,
    counterexample,
    derived,
    exact_witness,
    holds,
    negation_derived,
    proof_or_property,
    property_held,
    search,
)
from ._numeric import complex_step_state_jacobian, derivation, jacobian_products, norms

# LSTM_CELL_UPDATE_ROUNDOFF (dimensionless factor): Factor c in |write - i g| <= c u (|f c_{t-1}| +
# |c_t| + 1), entry by entry: c_t = fl(fl(f c) + fl(i g)), then write = fl(c_t - fl(f c)): |write -
# i g| <= u (2|f c| + |i g| + |c_t| + |write|) + O(u^2) <= 8u (|f c_{t-1}| + |c_t| + 1).
LSTM_CELL_UPDATE_ROUNDOFF = 8.0
# GATE_PREACTIVATION_ROUNDOFF (dimensionless factor): Factor c in |a - a'| <= c n u sum|terms|: an
# LSTM pre-activation W_ih x + W_hh h + b recomputed with its n = I + H + 2 terms summed in another
# order: each evaluation is within n u sum|terms| of the exact sum, so they differ by <= 2 n u
# sum|terms|; gates inherit it through sigma' <= 1/4, tanh' <= 1.
GATE_PREACTIVATION_ROUNDOFF = 2.0
# GATE_VALUE_ROUNDOFF (dimensionless factor): Factor c in + c u (absolute): on top of the propagated
# pre-activation difference, the two evaluations of a gate (sigmoid or tanh, values <= 1) round
# their results, ~ u/2 each.
GATE_VALUE_ROUNDOFF = 1.0
# GATE_PRODUCT_ROUNDOFF (dimensionless factor): Factor c in + c u (absolute): the write i g
# recomputed vs the model's: each side rounds i and g (values <= 1, ~ u/2 each) and their product
# (u/2): <= 3u in all, 4u with margin.
GATE_PRODUCT_ROUNDOFF = 4.0
# LSTM_CELL_GROWTH_ROUNDOFF (dimensionless factor): Factor c in |c_t| <= |c_0| + t + c (t + 1) u
# (|c_0| + t): the exact bound follows from |f| <= 1 and |i g| <= 1; in float64 c_t = fl(fl(f
# c_{t-1}) + fl(i g)) adds <= 2u (|c_0| + t) per step, so <= 2u t (|c_0| + t) after t steps (worst
# case, f == 1.0 every step); c = 4 covers that and the rounding of the comparison itself.
LSTM_CELL_GROWTH_ROUNDOFF = 4.0
# FORGET_PRODUCT_PER_FACTOR (relative tolerance): prod_t f_t vs f_min^T and f_max^T (relative slack
# rtol * T): each product or power rounds ~ once per factor (~ u per factor); 1e-13 per factor is a
# wide margin.
FORGET_PRODUCT_PER_FACTOR = 1e-13
# RNN_NORM_VS_COMPLEX_STEP (relative tolerance): ||dh_T/dh_0||_2 from the product of the RNN's
# Jacobians vs from the complex-step oracle (T = 60 steps): product round-off ~ T n u kappa plus the
# drift between the real and the complex trajectories (see unstable_trajectory_drift); 1e-10 allows
# kappa up to ~ 1e4 as bptt_vs_torch does.
RNN_NORM_VS_COMPLEX_STEP = 1e-10

sigmoid = ACTIVATIONS["sigmoid"].phi

__all__ = [
    "carousel_substitution",
    "cell_states",
    "forget_product",
    "gates",
    "lstm",
    "total_dc_dc0",
]

# absolute round-off of one float64 gate value (sigmoid/tanh <= 1) and of a gate product i g
_GATE_ROUNDING = GATE_VALUE_ROUNDOFF * UNIT_ROUNDOFF
_GATE_PRODUCT_ROUNDING = GATE_PRODUCT_ROUNDOFF * UNIT_ROUNDOFF

# ---------------------------------------------------------------------------------------------
# An independent re-implementation of the gates (plain numpy, torch's equations), the oracle for
# what the model's kernels and Jacobians say.


def lstm(params: dict, input_size: int, hidden_size: int) -> LSTM:
    return LSTM(input_size, hidden_size, params=params)


def gates(params: dict, x: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> dict:
    """Gates and states along the sequence, recomputed from torch's equations: arrays (T, H)
    for i, f, g, o and (T+1, H) for h, c."""
    W_ih, W_hh = params["weight_ih_l0"], params["weight_hh_l0"]
    b = params.get("bias_ih_l0", 0.0) + params.get("bias_hh_l0", 0.0)
    H = W_hh.shape[1]
    h, c = [np.asarray(h0, float)], [np.asarray(c0, float)]
    out = {k: [] for k in "ifgo"}
    for t in range(x.shape[0]):
        a = W_ih @ x[t] + W_hh @ h[-1] + b
        i, f, g, o = (
            sigmoid(a[:H]),
            sigmoid(a[H : 2 * H]),
            np.tanh(a[2 * H : 3 * H]),
            sigmoid(a[3 * H :]),
        )
        c.append(f * c[-1] + i * g)
        h.append(o * np.tanh(c[-1]))
        for k, v in zip("ifgo", (i, f, g, o)):
            out[k].append(v)
    res = {k: np.array(v) for k, v in out.items()}
    res["h"], res["c"] = np.array(h), np.array(c)
    return res


def one_step_gates(params: dict, x: np.ndarray, hs: np.ndarray) -> tuple[dict, np.ndarray]:
    """Gates recomputed from torch's equations one step at a time from given states h_{t-1} = hs[t]
    (the model's own, so that round-off cannot accumulate along a trajectory), and a bound on the
    difference with the model's gates: the pre-activations differ by <= 2 n u sum|terms| (n = I + H
    + 2 terms summed in another order), and sigma' <= 1/4."""
    W_ih, W_hh = params["weight_ih_l0"], params["weight_hh_l0"]
    b = params.get("bias_ih_l0", 0.0) + params.get("bias_hh_l0", 0.0)
    b_abs = np.abs(params.get("bias_ih_l0", 0.0)) + np.abs(params.get("bias_hh_l0", 0.0))
    H = W_hh.shape[1]
    n = x.shape[1] + H + 2
    out = {k: [] for k in "ifgo"}
    da = []
    for t in range(x.shape[0]):
        a = W_ih @ x[t] + W_hh @ hs[t] + b
        for k, v in zip(
            "ifgo",
            (
                sigmoid(a[:H]),
                sigmoid(a[H : 2 * H]),
                np.tanh(a[2 * H : 3 * H]),
                sigmoid(a[3 * H :]),
            ),
        ):
            out[k].append(v)
        da.append(
            GATE_PREACTIVATION_ROUNDOFF
            * n
            * UNIT_ROUNDOFF
            * (np.abs(W_ih) @ np.abs(x[t]) + np.abs(W_hh) @ np.abs(hs[t]) + b_abs)
        )
    return {k: np.array(v) for k, v in out.items()}, np.array(da)


def model_trace(model: LSTM, x: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> dict:
    """The model's own states (T+1, H) and gates (T, H) from its forward pass."""
    res = model.forward(x, (h0[None, :], c0[None, :]))
    tr = res.traces[0]
    out = {k: np.array([cache[j][0] for cache in tr.caches]) for j, k in enumerate("ifgo")}
    out["h"], out["c"], out["result"] = (
        tr.states[0][:, 0, :],
        tr.states[1][:, 0, :],
        res,
    )
    return out


def cell_states(model: LSTM, x: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> np.ndarray:
    """c_0..c_T from the model's own forward pass, shape (T+1, H)."""
    res = model.forward(x, (h0[None, :], c0[None, :]))
    return res.traces[0].states[1][:, 0, :]


def total_dc_dc0(model: LSTM, x: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> np.ndarray:
    r"""Complex-step oracle for the *total* :math:`\partial c_T/\partial c_0` (h_0 held fixed)."""

    def f(c):
        return model.apply(model.params, x, (h0[None, :], c[None, :])).c_n[0]

    return fd_jacobian(f, c0, method="complex")


def forget_product(params: dict, x: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> np.ndarray:
    r""":math:`\prod_t \operatorname{diag}(f_t)`, the direct cell path, as a diagonal matrix."""
    return np.diag(np.prod(gates(params, x, h0, c0)["f"], axis=0))


@st.composite
def lstm_cases(draw, *, H=(1, 3), I=(1, 2), steps=(1, 5), scale=(0.5, 3.0), state=1.0):
    """(params, x, h0, c0) for a one-layer LSTM with weights in [-scale, scale]."""
    Hn = draw(st.integers(*H))
    In = draw(st.integers(*I))
    s = draw(st.floats(*scale))
    model = LSTM(In, Hn)
    params = draw(gst.parameters(model, scale=s))
    x = draw(gst.sequences(steps=st.integers(*steps), input_size=In, scale=2.0))
    return (
        params,
        x,
        draw(gst.vectors(Hn, bound=state)),
        draw(gst.vectors(Hn, bound=state)),
    )


# ---------------------------------------------------------------------------------------------
# lstm-cell-gradient-only-forget-gate


def cell_path_is_forget_gate(case) -> bool:
    r"""Precise: the direct block :math:`\partial c_t/\partial c_{t-1}|_{h_{t-1}} = \operatorname{diag}(f_t)`
    (model Jacobian == the model's forget gate == the one-step recomputation, to round-off == complex
    step of one cell step); and with :math:`W_{hh} = 0` the total
    :math:`\partial c_T/\partial c_0 = \prod_t \operatorname{diag}(f_t)`."""
    params, x, h0, c0 = case
    H = h0.size
    model = lstm(params, x.shape[1], H)
    M = model_trace(model, x, h0, c0)
    J = model.jacobians(M["result"])  # unbatched: (T, 2H, 2H)
    G, da = one_step_gates(params, x, M["h"])
    tol = JACOBIAN_PRODUCT.value
    for t in range(x.shape[0]):
        if not np.array_equal(J[t, H:, H:], np.diag(M["f"][t])):
            return False
        if not np.all(np.abs(G["f"][t] - M["f"][t]) <= da[t, H : 2 * H] / 4 + _GATE_ROUNDING):
            return False
        # complex step through one step of the model from its (h_{t-1}, c_{t-1}), h held fixed
        one = total_dc_dc0(model, x[t : t + 1], M["h"][t], M["c"][t])
        if not np.allclose(one, np.diag(M["f"][t]), rtol=0, atol=tol):
            return False
    p0 = dict(params)
    p0["weight_hh_l0"] = np.zeros_like(params["weight_hh_l0"])
    m0 = lstm(p0, x.shape[1], H)
    total0 = total_dc_dc0(m0, x, h0, c0)
    return bool(np.allclose(total0, forget_product(p0, x, h0, c0), rtol=0, atol=tol))


def w_path_share(case) -> float:
    """|| total dc_T/dc_0 - prod diag(f_t) ||_2 / || prod diag(f_t) ||_2 (complex-step total)."""
    params, x, h0, c0 = case
    model = lstm(params, x.shape[1], h0.size)
    total = total_dc_dc0(model, x, h0, c0)
    direct = forget_product(params, x, h0, c0)
    return float(np.linalg.norm(total - direct, 2) / max(np.linalg.norm(direct, 2), 1e-300))


@claim(
    "lstm-cell-gradient-only-forget-gate",
    quotes=[
        Quote(
            "000",
            "In LSTM, the backpropagation only involves element-wise multiplication by $$f$$, and no matrix "
            "multiplication by $$W$$ i.e. the cell state gradient is multiplied only by the forget gate "
            "element-wise",
            "LSTM",
        ),
        Quote(
            "001",
            "In LSTM, the backpropagation only involves element-wise multiplication by \\(f\\), and no matrix "
            "multiplication by \\(W\\) i.e. the cell state gradient is multiplied only by the forget gate "
            "element-wise",
        ),
    ],
    precise="The total derivative dc_T/dc_0 of an LSTM is prod_t diag(f_t): no multiplication by W_hh.",
    refinement="The direct cell path is element-wise: dc_t/dc_{t-1} at fixed h_{t-1} is diag(f_t), and if W_hh = 0 "
    "the total dc_T/dc_0 = prod_t diag(f_t). In general the total also flows through h_{t-1} -> gates, i.e. through "
    "the blocks of W_hh (dc_t/dh_{t-1} = diag(c_{t-1} f(1-f)) W_hf + diag(g i(1-i)) W_hi + diag(i(1-g^2)) W_hg), "
    "and can differ from prod diag(f_t) by more than its own size.",
    proofs=("lstm",),
)
def check_lstm_cell_gradient_only_forget_gate(settings: AuditSettings) -> Findings:
    found = search(
        lstm_cases(H=(1, 2), I=(1, 1), steps=(2, 4)),
        lambda c: w_path_share(c) >= 1.0,
        300,
        settings,
        key="lstm-W-path",
    )
    ev: dict = {"searched_examples": found.examples, "found_by": found.source}
    reverified = False
    if found.ok:
        params, x, h0, c0 = found.found
        model = lstm(params, x.shape[1], h0.size)
        total = total_dc_dc0(model, x, h0, c0)
        direct = forget_product(params, x, h0, c0)
        # independent re-check: the joint Jacobian product's c-c block equals the complex-step total
        P = jacobian_products(model, x, (h0[None, :], c0[None, :]))
        H = h0.size
        reverified = bool(
            np.allclose(
                P[-1][H:, H:],
                total,
                rtol=0,
                atol=JACOBIAN_PRODUCT.value * max(1, np.abs(total).max()),
            )
            and np.linalg.norm(total - direct, 2) >= np.linalg.norm(direct, 2)
        )
        ev["counterexample"] = {
            "params": params,
            "x": x,
            "h0": h0,
            "c0": c0,
            "total_dcT_dc0": total,
            "prod_diag_f": direct,
            "relative_W_hh_path": w_path_share(found.found),
        }
    prec = holds(lstm_cases(), cell_path_is_forget_gate, 25, settings)
    ev["precise_examples"] = prec.examples
    ev["precise_counterexample"] = prec.found
    return Findings(counterexample(found.ok, reverified), property_held(not prec.ok), ev)


# ---------------------------------------------------------------------------------------------
# forget-gate-exceeds-one, lstm-gates-in-unit-interval


@functools.cache
def _sigmoid_range_symbolic() -> dict:
    """SymPy: the sets where sigma(a) >= 1 and where sigma(a) <= 0 (both empty over the reals)."""
    a = sp.Symbol("a", real=True)
    s = 1 / (1 + sp.exp(-a))
    return {
        "ge_one": sp.solveset(s >= 1, a, sp.Reals),
        "le_zero": sp.solveset(s <= 0, a, sp.Reals),
        "lim_plus": sp.limit(s, a, sp.oo),
        "lim_minus": sp.limit(s, a, -sp.oo),
    }


def gate_values(case) -> dict:
    params, x, h0, c0 = case
    G = gates(params, x, h0, c0)
    return {k: G[k] for k in "ifo"}


def gates_in_unit_interval(case) -> bool:
    """Every sigmoid gate (i, f, o) of the model's forward lies in [0, 1] in float64 (rounding can
    reach 0 or 1, never beyond), and so does the independent one-step recomputation, which agrees
    with the model to the round-off bound of the pre-activations."""
    params, x, h0, c0 = case
    M = model_trace(lstm(params, x.shape[1], h0.size), x, h0, c0)
    G, da = one_step_gates(params, x, M["h"])
    H = h0.size
    agree = all(
        np.all(np.abs(G[k] - M[k]) <= da[:, j * H : (j + 1) * H] / 4 + _GATE_ROUNDING) for j, k in enumerate("if")
    )
    agree = agree and np.all(np.abs(G["o"] - M["o"]) <= da[:, 3 * H :] / 4 + _GATE_ROUNDING)
    return bool(agree and all(((v >= 0) & (v <= 1)).all() for src in (G, M) for k, v in src.items() if k in "ifo"))


@claim(
    "forget-gate-exceeds-one",
    quotes=[
        Quote("000", "(e.g. values sometimes > 1 or < 1)", "LSTM"),
        Quote("001", "(e.g. values sometimes > 1 or < 1)"),
    ],
    precise="The forget gate f_t takes values > 1 at some time steps. Established instead: f = sigma(a) lies in (0, 1) "
    "for every real pre-activation (SymPy: {a : sigma(a) >= 1} is empty; in float64 it rounds to exactly 1.0 for "
    "a >= 36.74, never above), so prod_t f_t never grows; no statement keeping 'f > 1' is true.",
    proofs=("activation_bounds",),
)
def check_forget_gate_exceeds_one(settings: AuditSettings) -> Findings:
    sym = _sigmoid_range_symbolic()
    # Search for the claimed f > 1 among LSTMs with large weights (pre-activations up to ~100)
    found = search(
        lstm_cases(scale=(1.0, 20.0), state=5.0),
        lambda c: gate_values(c)["f"].max() > 1.0,
        50,
        settings,
    )
    negation = sym["ge_one"] == sp.EmptySet and not found.ok
    return Findings(
        negation_derived(negation),
        None,
        {
            "sympy_solveset_sigmoid_ge_1": str(sym["ge_one"]),
            "limit_sigmoid_at_plus_infinity": str(sym["lim_plus"]),
            "searched_examples": found.examples,
            "found_by": found.source,
            "witness_f_above_one": found.found,
            "float64_note": "sigma(a) rounds to exactly 1.0 for a >= 36.74 in float64; it never exceeds 1",
            "float64_sigmoid_37": float(sigmoid(np.array(37.0))),
        },
    )


@claim(
    "lstm-gates-in-unit-interval",
    quotes=[
        Quote(
            "003",
            "The selection of which information is erased/written/read is controlled by three "
            "corresponding gates that work between open (1) and closed (0).",
            "Long Short-Term Memory (LSTM)",
        ),
        Quote("001", "outputs a number between 0 and 1 for each number in the cell state"),
    ],
    precise="i, f, o = sigma(.) lie in the open interval (0, 1) for all real inputs (in float64: in [0, 1]).",
)
def check_lstm_gates_in_unit_interval(settings: AuditSettings) -> Findings:
    sym = _sigmoid_range_symbolic()
    proved = sym["ge_one"] == sp.EmptySet and sym["le_zero"] == sp.EmptySet
    prop = holds(lstm_cases(scale=(1.0, 20.0), state=5.0), gates_in_unit_interval, 40, settings)
    return Findings(
        proof_or_property(proved, not prop.ok),
        None,
        {
            "sympy_solveset_sigmoid_ge_1": str(sym["ge_one"]),
            "sympy_solveset_sigmoid_le_0": str(sym["le_zero"]),
            "examples": prop.examples,
            "counterexample": prop.found,
        },
    )


# ---------------------------------------------------------------------------------------------
# cell-counter-by-one, tanh-squashes-to-unit-interval


def max_cell_change(case) -> float:
    params, x, h0, c0 = case
    c = gates(params, x, h0, c0)["c"]
    return float(np.abs(np.diff(c, axis=0)).max())


def write_bounded_by_one(case) -> bool:
    r"""Precise: :math:`|c_t - f_t c_{t-1}| = |i_t g_t| < 1` and :math:`|c_t| < |c_0| + t`, with the
    model's own gates; and those gates agree with the independent recomputation :func:`gates`."""
    params, x, h0, c0 = case
    model = lstm(params, x.shape[1], h0.size)
    res = model.forward(x, (h0[None, :], c0[None, :]))
    c = res.traces[0].states[1][:, 0, :]
    i, f, g = (np.array([cache[k][0] for cache in res.traces[0].caches]) for k in range(3))
    write = c[1:] - f * c[:-1]
    # c_t = fl(fl(f c) + fl(i g)), then write = fl(c_t - fl(f c)): |write - i g| <= u (2|f c| + |i g| +
    # |c_t| + |write|) + O(u^2) <= 8u (|f c_{t-1}| + |c_t| + 1), entry by entry
    tol = LSTM_CELL_UPDATE_ROUNDOFF * UNIT_ROUNDOFF * (np.abs(f * c[:-1]) + np.abs(c[1:]) + 1.0)
    ok_write = np.all(np.abs(write - i * g) <= tol) and np.all(np.abs(i * g) <= 1)  # |i|, |g| <= 1 in float64
    t = np.arange(c.shape[0])[:, None]
    # each step adds <= 2u (|c_0| + t) of rounding, so after t steps the slack is <= 2u t (|c_0| + t)
    growth_slack = LSTM_CELL_GROWTH_ROUNDOFF * UNIT_ROUNDOFF * (t + 1)
    ok_growth = np.all(np.abs(c) <= np.abs(c0)[None, :] + t + growth_slack * (np.abs(c0)[None, :] + t))
    # the model's gates vs torch's equations evaluated in another order, one step at a time from the
    # model's own h_{t-1} (so round-off cannot accumulate along the trajectory): the pre-activations
    # differ by <= n u sum|terms| (n = I + H + 2 terms); sigma' <= 1/4, tanh' <= 1
    W_ih, W_hh = params["weight_ih_l0"], params["weight_hh_l0"]
    b = params["bias_ih_l0"] + params["bias_hh_l0"]
    b_abs = np.abs(params["bias_ih_l0"]) + np.abs(params["bias_hh_l0"])
    H = h0.size
    n = x.shape[1] + H + 2
    agree = True
    hs = res.traces[0].states[0][:, 0, :]
    for s in range(x.shape[0]):
        a = W_ih @ x[s] + W_hh @ hs[s] + b
        f_s, ig_s = sigmoid(a[H : 2 * H]), sigmoid(a[:H]) * np.tanh(a[2 * H : 3 * H])
        mag = np.abs(W_ih) @ np.abs(x[s]) + np.abs(W_hh) @ np.abs(hs[s]) + b_abs
        da = GATE_PREACTIVATION_ROUNDOFF * n * UNIT_ROUNDOFF * mag
        agree &= bool(
            np.all(np.abs(f_s - f[s]) <= da[H : 2 * H] / 4 + _GATE_ROUNDING)
            and np.all(np.abs(ig_s - i[s] * g[s]) <= da[:H] / 4 + da[2 * H : 3 * H] + _GATE_PRODUCT_ROUNDING)
        )
    return bool(ok_write and ok_growth and agree)


@claim(
    "cell-counter-by-one",
    quotes=[
        Quote(
            "001",
            "we can either increment or decrement each element of that cell state by up to 1 in each time step",
        )
    ],
    precise="|c_t - c_{t-1}| <= 1 for every LSTM, input and time step.",
    refinement="The write is bounded: |c_t - f_t c_{t-1}| = |i_t g_t| < 1, hence |c_t| < |c_0| + t. The change of the "
    "cell state itself, c_t - c_{t-1} = (f_t - 1) c_{t-1} + i_t g_t, is not bounded by 1: forgetting a large "
    "cell state moves it by up to |c_{t-1}| + 1.",
    proofs=("lstm",),
)
def check_cell_counter_by_one(settings: AuditSettings) -> Findings:
    # from c_0 = 0 (a reachable cell state is needed): let the LSTM count up, then forget
    found = search(
        lstm_cases(H=(1, 1), I=(1, 1), steps=(2, 6), scale=(1.0, 6.0), state=0.0),
        lambda c: max_cell_change(c) > 1.0,
        400,
        settings,
        key="cell-change-above-one",
    )
    ev: dict = {"searched_examples": found.examples, "found_by": found.source}
    reverified = False
    if found.ok:
        params, x, h0, c0 = found.found
        model = lstm(params, x.shape[1], h0.size)
        c = cell_states(model, x, h0, c0)  # the model's own forward, independent of gates()
        d = np.diff(c, axis=0)
        t = int(np.argmax(np.abs(d).max(axis=1)))
        reverified = bool(np.abs(d).max() > 1.0)
        G = gates(params, x, h0, c0)
        ev["counterexample"] = {
            "params": params,
            "x": x,
            "h0": h0,
            "c0": c0,
            "c": c,
            "step": t + 1,
            "c_t_minus_c_prev": d[t],
            "f_t": G["f"][t],
            "i_t_times_g_t": G["i"][t] * G["g"][t],
        }
    prec = holds(
        lstm_cases(scale=(0.5, 10.0), steps=(1, 8), state=3.0),
        write_bounded_by_one,
        40,
        settings,
    )
    ev["precise_examples"] = prec.examples
    ev["precise_counterexample"] = prec.found
    return Findings(counterexample(found.ok, reverified), property_held(not prec.ok), ev)


def tanh_range_exact(c: float) -> bool:
    """Precise: -1 < tanh(c) < 1 and sign(tanh c) = sign(c), at 60 digits (|c| <= 30)."""
    import mpmath

    with mpmath.workdps(60):
        t = mpmath.tanh(mpmath.mpf(c))
        return bool(-1 < t < 1 and mpmath.sign(t) == mpmath.sign(mpmath.mpf(c)))


@claim(
    "tanh-squashes-to-unit-interval",
    quotes=[Quote("001", "We want to squash that counter value in [0, 1] range using tanh.")],
    precise="tanh(c) lies in [0, 1] for every cell value c.",
    refinement="tanh squashes into a bounded range, but it is the open interval (-1, 1), keeping the sign "
    "(tanh c < 0 for c < 0), so h_t = o_t tanh(c_t) lies in (-1, 1); in float64 tanh(c) rounds to exactly +-1 for "
    "|c| >= ~19.06. (The same document says so later: 'to push the values to be between -1 and 1'.)",
)
def check_tanh_squashes_to_unit_interval(settings: AuditSettings) -> Findings:
    found = search(
        st.floats(-30, 30, allow_subnormal=False),
        lambda c: not (0 <= np.tanh(c) <= 1),
        100,
        settings,
        key="tanh-negative",
    )
    ev: dict = {"searched_examples": found.examples, "found_by": found.source}
    reverified = False
    if found.ok:
        import mpmath

        with mpmath.workdps(30):
            exact = mpmath.tanh(mpmath.mpf(found.found))
        reverified = bool(exact < 0 or exact > 1)
        ev["counterexample"] = {
            "c": found.found,
            "tanh_c": float(np.tanh(found.found)),
            "tanh_c_exact": mpmath.nstr(exact, 15),  # not str(): that follows the global mp.dps
        }
        # and it happens inside an LSTM: a negative cell state
        params = {k: np.zeros(s) for k, s in LSTM(1, 1).param_shapes().items()}
        params["bias_ih_l0"] = np.array([10.0, 0.0, -10.0, 10.0])  # i ~ 1, g ~ -1, o ~ 1
        G = gates(params, np.zeros((1, 1)), np.zeros(1), np.zeros(1))
        ev["lstm_example"] = {
            "params": params,
            "x": [[0.0]],
            "c_1": G["c"][1],
            "h_1": G["h"][1],
        }
        reverified = reverified and G["h"][1][0] < 0
    prec = holds(st.floats(-30, 30), tanh_range_exact, 200, settings)
    lo = 0.0
    hi = 40.0
    for _ in range(200):  # smallest c with float64 tanh(c) == 1.0 (bisection)
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if np.tanh(mid) == 1.0 else (mid, hi)
    ev["precise_examples"] = prec.examples
    ev["float64_tanh_rounds_to_1_from_c"] = hi
    return Findings(
        counterexample(found.ok, reverified),
        derived(_tanh_range_symbolic(), not prec.ok),
        ev,
    )


# ---------------------------------------------------------------------------------------------
# lstm-constant-error-carousel

SATURATION = 60.0  # pre-activations stay >= 60 - 14 = 46: sigma(46) == 1.0 in float64, sigma(-46) ~ 1e-20


@st.composite
def carousel_cases(draw):
    params, x, h0, c0 = draw(lstm_cases(H=(1, 3), I=(1, 2), steps=(1, 30), scale=(0.5, 2.0), state=1.0))
    H = h0.size
    params = dict(params)
    b = np.array(params["bias_ih_l0"], copy=True)
    b[H : 2 * H] = SATURATION  # forget gate open: f = 1 in float64
    b[:H] = -SATURATION  # nothing written: i <= sigma(-46) ~ 1e-20
    params["bias_ih_l0"] = b
    bh = np.array(params["bias_hh_l0"], copy=True)
    bh[: 2 * H] = 0.0  # |W_ih x + W_hh h| <= 2 * (2*2 + 3*1) = 14 with these scales: the bias dominates
    params["bias_hh_l0"] = bh
    return params, x, h0, c0


def carousel_holds(case) -> bool:
    r"""With f = 1 and i ~ 0: :math:`\partial c_T/\partial c_0 = I` (complex-step total and the
    joint Jacobian product), to the size of the residual write :math:`i \approx 4\cdot10^{-18}`."""
    params, x, h0, c0 = case
    model = lstm(params, x.shape[1], h0.size)
    H = h0.size
    total = total_dc_dc0(model, x, h0, c0)
    P = jacobian_products(model, x, (h0[None, :], c0[None, :]))
    # deviation from I comes only from i <= 1e-20 times O(||W|| T): 1e-14 bounds it
    tol = LSTM_SATURATED_CELL_IDENTITY.value
    return bool(
        np.allclose(total, np.eye(H), rtol=0, atol=tol)
        and np.allclose(P[-1][H:, H:], np.eye(H), rtol=0, atol=tol)
        and (gates(params, x, h0, c0)["f"] == 1.0).all()
    )


CAROUSEL_SYMBOLIC_STEPS = 3  # steps of the symbolic product of substituted Jacobians


def carousel_substitution(d) -> tuple[bool, dict]:
    r"""Substitute :math:`f_t = \mathbf 1`, :math:`i_t = \mathbf 0` into the ``lstm`` derivation's joint
    Jacobian (SymPy's :math:`\partial(h_t, c_t)/\partial(h_{t-1}, c_{t-1})`, ``d.result["jacobian"]``)
    and into its derived blocks :math:`\partial c_t/\partial c_{t-1}` and :math:`\partial c_t/\partial h_{t-1}`.

    The gates are the derivation's own gate expressions (``symbolic.lstm.lstm_step(H)``: ``sig(a)``
    atoms, whose derivative SymPy writes as ``sig (1 - sig)``). Holds iff every gate atom occurs in the
    Jacobian (the substitution is not vacuous), the c-rows simplify to exactly ``[0 | I]`` (both in
    SymPy's Jacobian and in the derived block formulas), and the c-rows of the ordered product of
    ``CAROUSEL_SYMBOLIC_STEPS`` substituted Jacobians (fresh h, c, input symbols per step) simplify
    to ``[0 | I]``: :math:`\partial c_T/\partial c_k = I`, :math:`\partial c_T/\partial h_k = 0`.
    """
    step = lstm_step
    J = d.result["jacobian"]
    H = J.shape[0] // 2
    S = step(H)
    gates_i, gates_f = list(S["i"]), list(S["f"])
    present = all(J.has(e) for e in gates_i + gates_f)
    rep = {e: sp.Integer(0) for e in gates_i}
    rep.update({e: sp.Integer(1) for e in gates_f})
    Js = J.xreplace(rep)
    c_rows = sp.simplify(Js[H:, :])
    target = sp.Matrix.hstack(sp.zeros(H, H), sp.eye(H))
    blocks = d.result.get("blocks", {})
    cc = sp.simplify(blocks["cc"].xreplace(rep)) if "cc" in blocks else None
    ch = sp.simplify(blocks["ch"].xreplace(rep)) if "ch" in blocks else None
    P_c_rows = None
    if c_rows == target:  # otherwise the product's c-rows hold the whole h-block: not worth simplifying
        W = set(S["W"])
        per_step = [s for s in Js.free_symbols if s not in W]  # h_{t-1}, c_{t-1}, input part u: new each step
        P = sp.eye(2 * H)
        for k in range(CAROUSEL_SYMBOLIC_STEPS):
            P = Js.xreplace({s: sp.Symbol(f"{s.name}_{k}", real=True) for s in per_step}) * P
        P_c_rows = sp.simplify(P[H:, :])
    ok = bool(present and c_rows == target and cc == sp.eye(H) and ch == sp.zeros(H, H) and P_c_rows == target)
    return ok, {
        "substitution": f"f_t = 1, i_t = 0 (the sig(a^f), sig(a^i) atoms of the lstm derivation's joint Jacobian, H = {H})",
        "gate_atoms_present": present,
        "dc_t_d(h,c)_{t-1}_substituted": str(c_rows.tolist()),
        "derived_block_dc_dc_substituted": None if cc is None else str(cc.tolist()),
        "derived_block_dc_dh_substituted": None if ch is None else str(ch.tolist()),
        "product_steps": CAROUSEL_SYMBOLIC_STEPS,
        f"dc_T_d(h,c)_{{T-{CAROUSEL_SYMBOLIC_STEPS}}}_substituted": None
        if P_c_rows is None
        else str(P_c_rows.tolist()),
    }


@functools.cache
def _carousel(settings: AuditSettings) -> tuple[bool, bool, dict]:
    d = derivation("lstm")
    symbolic, sym_ev = carousel_substitution(d)
    prop = holds(carousel_cases(), carousel_holds, 20, settings)
    held = not prop.ok
    return (
        symbolic,
        held,
        {
            "derivation": d.name,
            "symbolic": sym_ev,
            "symbolic_holds": symbolic,
            "examples": prop.examples,
            "counterexample": prop.found,
            "saturation": "bias_f = +60 (f == 1.0 in float64), bias_i = -60 (i <= 1e-20)",
        },
    )


@claim(
    "lstm-constant-error-carousel",
    quotes=[
        Quote(
            "hochreiter1997",
            "With the forget gate open (f = 1) and nothing written (i = 0), the error flowing back "
            "along the cell state is carried unchanged: \u2202c_T/\u2202c_k = I. (constant error carousel, paraphrased "
            "for the LSTM with forget gate)",
        )
    ],
    precise="If f_t = 1 and i_t = 0 for t = k+1..T then the total dc_T/dc_k = I: the direct block is diag(f) = I and "
    "every path through h vanishes because dc_t/dh_{t-1} contains only f(1-f) = 0, i(1-i) = 0 and i = 0 factors. "
    "Checked with saturated biases (f == 1.0 in float64, i <= 1e-20): identity to 1e-14.",
    proofs=("lstm",),
)
def check_lstm_constant_error_carousel(settings: AuditSettings) -> Findings:
    symbolic, held, ev = _carousel(settings)
    return Findings(proof_or_property(symbolic, held), None, ev)


# ---------------------------------------------------------------------------------------------
# lstm-still-vanishes, lstm-solves-vanishing

HORIZON = 60


@st.composite
def _default_lstm_runs(draw):
    """torch's default initialisation U(-1/sqrt(H), 1/sqrt(H)) (seeded), random inputs in [-1, 1]."""
    seed = draw(st.integers(0, 2**16))
    H = draw(st.integers(1, 4))
    model = LSTM(2, H, seed=seed)
    x = draw(gst.sequences(steps=HORIZON, input_size=2))
    return model.params, x, np.zeros(H), np.zeros(H)


def joint_norms(case) -> np.ndarray:
    params, x, h0, c0 = case
    model = lstm(params, x.shape[1], h0.size)
    return norms(jacobian_products(model, x, (h0[None, :], c0[None, :])))


@functools.cache
def _lstm_vanishing_witness(settings: AuditSettings):
    return search(
        _default_lstm_runs(),
        lambda c: joint_norms(c)[-1] < 1e-6,
        50,
        settings,
        key="lstm-vanishing",
    )


def _witness_evidence(settings: AuditSettings):
    found = _lstm_vanishing_witness(settings)
    if not found.ok:
        return False, {"searched_examples": found.examples, "found_by": found.source}
    params, x, h0, c0 = found.found
    n = joint_norms(found.found)
    model = lstm(params, x.shape[1], h0.size)

    # oracle: complex-step total derivative of the final state (h_T, c_T) w.r.t. c_0 (a block of
    # the joint Jacobian): it must be as small as the product says
    def f(c):
        r = model.apply(model.params, x, (h0[None, :], c[None, :]))
        return np.concatenate([r.h_n[0], r.c_n[0]])

    block = fd_jacobian(f, c0, method="complex")
    P = jacobian_products(model, x, (h0[None, :], c0[None, :]))
    H = h0.size
    agree = np.allclose(
        P[-1][:, H:],
        block,
        rtol=0,
        atol=JACOBIAN_PRODUCT.value * max(np.abs(block).max(), 1e-300) + 1e-300,
    )
    f_max = float(gates(params, x, h0, c0)["f"].max())
    ok = bool(agree and n[-1] < 1e-6 and f_max < 1)
    return ok, {
        "searched_examples": found.examples,
        "found_by": found.source,
        "counterexample": {
            "params": params,
            "x": x,
            "h0": h0,
            "c0": c0,
            "init": "torch default U(-1/sqrt(H), 1/sqrt(H))",
            "norm_dsT_ds0_every_10_steps": n[::10],
            "max_forget_gate": f_max,
        },
    }


@st.composite
def _comparisons(draw):
    """An LSTM and a tanh RNN of the same hidden size on the same input (both default-initialised
    except the RNN's W_hh, drawn orthogonal: the 'vanilla RNN' at its best)."""
    params, x, h0, c0 = draw(_default_lstm_runs())
    H = h0.size
    rnn_model = RNN(2, H, seed=draw(st.integers(0, 2**16)))
    p = dict(rnn_model.params)
    p["weight_hh_l0"] = draw(gst.orthogonal_matrices(H))
    return (params, x, h0, c0), p


def lstm_vanishes_faster(pair) -> bool:
    case, rnn_params = pair
    _, x, h0, _ = case
    r = RNN(2, h0.size, params=rnn_params)
    n_rnn = norms(jacobian_products(r, x, h0[None, :]))[-1]
    return bool(joint_norms(case)[-1] < n_rnn)


def forget_path_bounds(case) -> bool:
    r"""Precise (i): the cell path :math:`\prod_t \operatorname{diag}(f_t)` has every entry in
    :math:`[f_{\min}^T, f_{\max}^T]` with :math:`0 < f < 1`: it vanishes geometrically unless the
    forget gate tends to 1, whatever :math:`W_{hh}`."""
    params, x, h0, c0 = case
    f = gates(params, x, h0, c0)["f"]
    prod = np.prod(f, axis=0)
    T = f.shape[0]
    lo, hi = f.min(axis=0) ** T, f.max(axis=0) ** T
    slack = FORGET_PRODUCT_PER_FACTOR * T
    return bool(((f > 0) & (f < 1)).all() and (prod >= lo * (1 - slack)).all() and (prod <= hi * (1 + slack)).all())


@claim(
    "lstm-still-vanishes",
    quotes=[
        Quote(
            "003",
            "LSTM will suffer from vanishing gradients as well",
            "Long Short-Term Memory (LSTM)",
        )
    ],
    precise="There are LSTMs whose gradients vanish. Exact witness: with all weights 0 and all biases 0 the state stays "
    "at (h, c) = 0 and SymPy's joint Jacobian (lstm_step) is [[0, o f], [0, f]] with o = f = sigma(0) = 1/2, so "
    "d(h,c)_T/d(h,c)_0 = 2^-(T-1) J -> 0; and typically: with torch's default initialisation U(-1/sqrt(H), 1/sqrt(H)) "
    "the full ||d(h,c)_T/d(h,c)_0||_2 falls below 1e-6 within 60 steps (complex-step oracle agrees), with every "
    "forget gate < 1. (The quote's comparison with the vanilla RNN is lstm-vanishes-less-than-rnn.)",
    proofs=("lstm",),
)
def check_lstm_still_vanishes(settings: AuditSettings) -> Findings:
    exact, numeric, exact_ev = zero_lstm_witness()
    witness, ev = _witness_evidence(settings)
    return Findings(exact_witness(exact, numeric and witness), None, {"exact_witness": exact_ev, **ev})


def zero_lstm_witness(steps: int = HORIZON) -> tuple[bool, bool, dict]:
    """The exact witness of lstm-still-vanishes: SymPy's joint Jacobian at W = 0, u = 0, (h, c) = 0 for H = 1, its
    closed-form powers, and the model's product (powers of two: exact in float64)."""
    S = lstm_step(1)
    subs = {S["h_prev"][0]: 0, S["c_prev"][0]: 0, **{w: 0 for w in S["W"]}, **{u: 0 for u in S["u"]}}
    z = sp.Dummy("z")
    J = (
        S["J"]
        .xreplace(subs)
        .replace(lambda e: e.func.__name__ == "sig", lambda e: sp.Lambda(z, 1 / (1 + sp.exp(-z)))(e.args[0]))
    )
    J = sp.simplify(J)
    half = sp.Rational(1, 2)
    exact = bool(J == sp.Matrix([[0, half * half], [0, half]]) and J**steps == half ** (steps - 1) * J)
    model = lstm({k: np.zeros(s) for k, s in LSTM(1, 1).param_shapes().items()}, 1, 1)
    P = jacobian_products(model, np.zeros((steps, 1)), (np.zeros((1, 1)), np.zeros((1, 1))))
    numeric = bool(np.array_equal(P[-1], np.array(J**steps, dtype=float)))
    return (
        exact,
        numeric,
        {"joint_jacobian": str(J.tolist()), "steps": steps, f"d(h,c)_{steps}/d(h,c)_0": str((J**steps).tolist())},
    )


@functools.cache
def lstm_rnn_comparison(settings: AuditSettings) -> tuple[bool, bool, dict]:
    """(an LSTM whose gradient vanishes faster than an orthogonal tanh RNN's on the same input was found,
    it re-verified against the complex-step oracle, evidence)."""
    comp = search(_comparisons(), lstm_vanishes_faster, 50, settings, key="lstm-faster-than-rnn")
    ev: dict = {"searched_examples": comp.examples, "found_by": comp.source}
    reverified = False
    if comp.ok:
        case, rnn_params = comp.found
        params, x, h0, c0 = case
        r = RNN(2, h0.size, params=rnn_params)
        n_rnn = norms(jacobian_products(r, x, h0[None, :]))
        n_lstm = joint_norms(case)
        o = complex_step_state_jacobian(r, x, h0)  # oracle for the RNN side: complex-step dh_T/dh_0
        reverified = bool(
            n_lstm[-1] < np.linalg.norm(o, 2)
            and abs(np.linalg.norm(o, 2) - n_rnn[-1]) <= RNN_NORM_VS_COMPLEX_STEP * n_rnn[-1]
        )
        ev["comparison_counterexample"] = {
            "lstm_params": params,
            "rnn_params": rnn_params,
            "x": x,
            "h0": h0,
            "c0": c0,
            "lstm_norm_every_10_steps": n_lstm[::10],
            "rnn_norm_every_10_steps": n_rnn[::10],
        }
    return comp.ok, reverified, ev


@functools.cache
def forget_path_established(settings: AuditSettings) -> tuple[bool, int]:
    """(the forget-path bounds held on every Hypothesis example, examples tried)."""
    prec = holds(lstm_cases(steps=(1, 40), scale=(0.5, 4.0)), forget_path_bounds, 30, settings)
    return not prec.ok, prec.examples


@claim(
    "lstm-vanishes-less-than-rnn",
    quotes=[
        Quote(
            "003",
            "but not nearly as much as the vanilla RNN.",
            "Long Short-Term Memory (LSTM)",
        )
    ],
    precise="On the same input, an LSTM's ||d(h,c)_T/d(h,c)_0|| vanishes more slowly than a vanilla tanh RNN's "
    "||dh_T/dh_0|| of the same hidden size.",
    refinement="The LSTM's cell path is prod_t diag(f_t), with every entry in [f_min^T, f_max^T] and 0 < f < 1: its "
    "decay is set by the forget gate alone (not by W_hh) and is slow exactly when f stays near 1; it is no "
    "guarantee against an RNN (there are LSTMs whose gradient vanishes faster than an orthogonal tanh RNN's).",
    proofs=("lstm",),
)
def check_lstm_vanishes_less_than_rnn(settings: AuditSettings) -> Findings:
    found, reverified, ev = lstm_rnn_comparison(settings)
    held, examples = forget_path_established(settings)
    return Findings(
        counterexample(found, reverified),
        property_held(held),
        {**ev, "refinement_examples": examples},
    )


@claim(
    "lstm-solves-vanishing",
    quotes=[
        Quote("000", "LSTM solves the problem of vanishing gradients.", "RNN"),
        Quote("001", "LSTM solves the problem of vanishing gradients."),
        Quote(
            "004",
            "also will see how this problem can be solved using LSTM.",
            "Introduction",
        ),
    ],
    precise="No LSTM has vanishing gradients: ||d(h,c)_T/d(h,c)_0|| does not tend to 0 for any LSTM.",
    refinement="The LSTM can carry the gradient unchanged over any horizon, whatever W_hh: with f_t = 1 and i_t = 0 "
    "the total dc_T/dc_k = I (the constant error carousel); it does not do so by default (an LSTM with torch's "
    "default initialisation has ||d(h,c)_60/d(h,c)_0|| < 1e-6).",
    proofs=("lstm",),
)
def check_lstm_solves_vanishing(settings: AuditSettings) -> Findings:
    witness, ev = _witness_evidence(settings)
    symbolic, held, carousel = _carousel(settings)
    ev["refinement_constant_error_carousel"] = carousel
    return Findings(
        counterexample("counterexample" in ev, witness),
        proof_or_property(symbolic, held),
        ev,
    )


@functools.cache
def _tanh_range_symbolic() -> bool:
    """SymPy: tanh maps the reals into (-1, 1) and keeps the sign: the sets where tanh(c) >= 1 or <= -1
    are empty, tanh(c) < 0 exactly for c < 0, and the limits at +-infinity are +-1."""
    c = sp.Symbol("c", real=True)
    t = sp.tanh(c)
    return bool(
        sp.solveset(t >= 1, c, sp.Reals) == sp.EmptySet
        and sp.solveset(t <= -1, c, sp.Reals) == sp.EmptySet
        and sp.solveset(t < 0, c, sp.Reals) == sp.Interval.open(-sp.oo, 0)
        and sp.limit(t, c, sp.oo) == 1
        and sp.limit(t, c, -sp.oo) == -1
    )
