r"""Claims about what each LSTM gate does, their ranges, and what gating buys (seeds 000/001, 003).

torch's cell (rows i, f, g, o): :math:`c_t = f_t \odot c_{t-1} + i_t \odot g_t`,
:math:`h_t = o_t \odot \tanh(c_t)`. A gate's role is read off by substituting its limit values (0 and 1)
into SymPy's step (``symbolic.lstm.lstm_step``: the gates are its own ``sig(a)`` atoms), and checked
numerically by saturating that gate's bias (+-60: the gate is 1.0 in float64, or below 1e-20).
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp
from hypothesis import strategies as st

from .. import LSTM
from .._tolerances import LSTM_SATURATED_CELL_IDENTITY
from ..oracles import jacobian as fd_jacobian
from ..symbolic.lstm import lstm_step
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
from ._numeric import jacobian_products, vanishes
from .architecture import (
    _gru_cases,
    gru_saturated_update_keeps_state,
    gru_update_gate_substitution,
)
from .lstm import (
    _carousel,
    _sigmoid_range_symbolic,
    _tanh_range_symbolic,
    forget_path_established,
    lstm_cases,
    lstm_rnn_comparison,
    model_trace,
    tanh_range_exact,
    total_dc_dc0,
)

__all__ = ["exploding_lstm_witness", "gate_substitution", "saturated_gate_holds"]

_ROWS = {"i": 0, "f": 1, "g": 2, "o": 3}
# i g, then w / i, arctanh and tanh: four roundings of O(1) quantities, relative error <= 4 eps.
WRITE_ROUNDING = 4 * np.finfo(float).eps
# Complex step (h = 1e-30) along 20 steps of a 2x2 product: exact to round-off, ~20 * 4u ~ 1e-14 relative.
WITNESS_AGREEMENT = 1e-12
# The stacked model and the two single-layer models do the same float operations: outputs (|.| <= 1) agree
# to the last bit; 1e-15 allows one rounding of summation order.
SAME_ARITHMETIC = 1e-15
SATURATION = 60.0  # |W_ih x + W_hh h| <= 2 (2 + 3) = 10 with the scales drawn below: sigma(+-50) is 1.0 or < 2e-22


@functools.cache
def gate_substitution(gate: str, value: int, H: int = 1) -> dict:
    """SymPy's LSTM step with every atom of ``gate`` (i, f or o) replaced by ``value`` (0 or 1): the
    simplified c_t, h_t, and whether the gate's atoms occur at all (the substitution is not vacuous)."""
    S = lstm_step(H)
    atoms = list(S[gate])
    rep = {e: sp.Integer(value) for e in atoms}
    return {
        "S": S,
        "present": all(S["c"].has(e) or S["h"].has(e) for e in atoms),
        "c": S["c"].xreplace(rep).expand(),
        "h": S["h"].xreplace(rep).expand(),
        "rep": rep,
        "H": H,
    }


def _em(a, b):
    return a.multiply_elementwise(b)


def saturated_gate_holds(case, gate: str, value: int) -> bool:
    """The model with ``gate``'s bias at +-60 (gate == 1.0, or < 2e-22): c_t and h_t obey the substituted
    equations (to the residual gate value times O(1), bounded by 1e-14)."""
    params, x, h0, c0 = case
    H = h0.size
    p = {k: np.array(v, copy=True) for k, v in params.items()}
    r = _ROWS[gate]
    p["bias_ih_l0"][r * H : (r + 1) * H] = SATURATION if value == 1 else -SATURATION
    p["bias_hh_l0"][r * H : (r + 1) * H] = 0.0
    M = model_trace(LSTM(x.shape[1], H, params=p), x, h0, c0)
    c, h, c_prev = M["c"][1:], M["h"][1:], M["c"][:-1]
    i, f, g = M["i"], M["f"], M["g"]
    tol = LSTM_SATURATED_CELL_IDENTITY.value
    if gate == "f":
        want = i * g if value == 0 else c_prev + i * g
        return bool(np.allclose(c, want, rtol=0, atol=tol * (1 + np.abs(c_prev))))
    if gate == "i":
        want = f * c_prev if value == 0 else f * c_prev + g
        return bool(np.allclose(c, want, rtol=0, atol=tol * (1 + np.abs(c_prev))))
    want = np.zeros_like(h) if value == 0 else np.tanh(c)
    return bool(np.allclose(h, want, rtol=0, atol=tol))


_CASES = lstm_cases(H=(1, 2), I=(1, 2), steps=(1, 6), scale=(0.5, 2.0), state=1.0)


def _both_limits(gate: str, settings: AuditSettings) -> tuple[bool, int]:
    results = [
        holds(
            _CASES,
            functools.partial(saturated_gate_holds, gate=gate, value=v),
            10,
            settings,
        )
        for v in (0, 1)
    ]
    return all(not r.ok for r in results), sum(r.examples for r in results)


@claim(
    "forget-gate-erases",
    quotes=[
        Quote("000", "Forget gate ($$f$$): controls whether to erase the cell", "LSTM"),
        Quote(
            "001",
            "A 1 represents \u201ccompletely keep this\u201d while a 0 represents \u201ccompletely get rid of this.\u201d",
        ),
        Quote(
            "003",
            "\\(f^{(t)}\\) forget gate controls what is kept vs forgotten from the previous cell state \\(c^{(t-1)}\\)",
            "Long Short-Term Memory (LSTM)",
        ),
    ],
    precise="f_t = 0 erases the previous cell: c_t = i_t g_t, independent of c_{t-1}; f_t = 1 keeps it whole: "
    "c_t = c_{t-1} + i_t g_t (SymPy substitution into the LSTM step; saturated forget bias in the model).",
    proofs=("lstm",),
)
def check_forget_gate_erases(settings: AuditSettings) -> Findings:
    z, o = gate_substitution("f", 0), gate_substitution("f", 1)
    S = z["S"]
    ig = _em(S["i"], S["g"])
    H = z["H"]
    ok = (
        z["present"]
        and (z["c"] - ig).expand() == sp.zeros(H, 1)
        and z["c"].jacobian(S["c_prev"]) == sp.zeros(H, H)
        and (o["c"] - S["c_prev"] - ig).expand() == sp.zeros(H, 1)
    )
    held, examples = _both_limits("f", settings)
    return Findings(
        derived(ok, held),
        None,
        {"f=0: c_t": str(z["c"].T), "f=1: c_t": str(o["c"].T), "examples": examples},
    )


@claim(
    "input-gate-writes",
    quotes=[
        Quote("000", "Input gate ($$i$$): controls what to write to the LSTM cell", "LSTM"),
        Quote(
            "001",
            "a sigmoid layer called the \u201cinput gate layer\u201d decides which values we\u2019ll update.",
        ),
        Quote(
            "003",
            "\\(i^{(t)}\\) input gate controls what parts of the new cell content \\(\\tilde{c}^{(t)}\\) are "
            "written to the current cell state \\(c^{(t)}\\)",
            "Long Short-Term Memory (LSTM)",
        ),
    ],
    precise="i_t = 0 writes nothing, c_t = f_t c_{t-1}; i_t = 1 writes the whole candidate, c_t - f_t c_{t-1} = g_t "
    "(SymPy substitution; saturated input bias in the model).",
    proofs=("lstm",),
)
def check_input_gate_writes(settings: AuditSettings) -> Findings:
    z, o = gate_substitution("i", 0), gate_substitution("i", 1)
    S = z["S"]
    fc = _em(S["f"], S["c_prev"])
    H = z["H"]
    ok = z["present"] and (z["c"] - fc).expand() == sp.zeros(H, 1) and (o["c"] - fc - S["g"]).expand() == sp.zeros(H, 1)
    held, examples = _both_limits("i", settings)
    return Findings(
        derived(ok, held),
        None,
        {"i=0: c_t": str(z["c"].T), "i=1: c_t": str(o["c"].T), "examples": examples},
    )


@claim(
    "output-gate-reveals",
    quotes=[
        Quote("000", "Output gate ($$o$$): controls how much to reveal cell", "LSTM"),
        Quote(
            "001",
            "multiply it by the output of the sigmoid gate, so that we only output the parts we decided to.",
        ),
        Quote(
            "003",
            "\\(o^{(t)}\\) output gate controls what parts of the cell are output to hidden state",
            "Long Short-Term Memory (LSTM)",
        ),
    ],
    precise="o_t = 0 reveals nothing, h_t = 0 (and dh_t/dc_t = 0); o_t = 1 reveals tanh(c_t) whole; in between "
    "h_t = o_t tanh(c_t) (SymPy substitution; saturated output bias in the model).",
    proofs=("lstm",),
)
def check_output_gate_reveals(settings: AuditSettings) -> Findings:
    z, o = gate_substitution("o", 0), gate_substitution("o", 1)
    S = z["S"]
    H = z["H"]
    ok = z["present"] and z["h"] == sp.zeros(H, 1) and (o["h"] - S["c"].applyfunc(sp.tanh)).expand() == sp.zeros(H, 1)
    held, examples = _both_limits("o", settings)
    return Findings(
        derived(ok, held),
        None,
        {"o=0: h_t": str(z["h"].T), "o=1: h_t": str(o["h"].T), "examples": examples},
    )


@claim(
    "candidate-gate-controls-amount",
    quotes=[
        Quote(
            "000",
            "The fourth gate ($$g$$) controls how much to write to the cell",
            "LSTM",
        ),
        Quote("001", "The fourth gate (\\(g\\)) controls how much to write to the cell"),
    ],
    precise="g_t sets how much is written to the cell: the write c_t - f_t c_{t-1} changes with g_t.",
    refinement="The write is i_t g_t: g_t = tanh(.) in (-1, 1) is the content written (its value and sign), i_t in "
    "(0, 1) how much of it; |i_t g_t| < 1. With i_t = 0 nothing is written whatever g_t (SymPy: the substituted "
    "write has no g atom).",
    proofs=("lstm",),
)
def check_candidate_gate_controls_amount(settings: AuditSettings) -> Findings:
    z = gate_substitution("i", 0)
    S = z["S"]
    write = (z["c"] - _em(S["f"], S["c_prev"])).expand()
    g_free = z["present"] and write == sp.zeros(z["H"], 1) and not any(write.has(e) for e in S["g"])
    held, examples = _both_limits("i", settings)  # i saturated closed: c_t = f c_{t-1} for any g
    sym = _sigmoid_range_symbolic()
    bounded = sym["ge_one"] == sp.EmptySet and _tanh_range_symbolic()
    return Findings(
        counterexample(g_free, held),
        derived(bounded, held),
        {"i=0: c_t - f_t c_{t-1}": str(write.T), "examples": examples},
    )


@claim(
    "gates-are-dynamic",
    quotes=[
        Quote(
            "003",
            "The gates are dynamic: their value is computed based on the current context",
            "Long Short-Term Memory (LSTM)",
        ),
        Quote("000", "this forget gate will vary at each time-step", "LSTM"),
        Quote("001", "this forget gate will vary at each time-step"),
    ],
    precise="Each gate is a function of the context (x_t, h_{t-1}): df_t/dh_{t-1} = diag(f_t (1 - f_t)) W_hf and "
    "df_t/d(W_if x_t) = diag(f_t (1 - f_t)) != 0 (SymPy), so f_t changes from step to step with the input (the "
    "model's forget gate on a varying input; complex-step df_t/dx_t != 0).",
    proofs=("lstm",),
)
def check_gates_are_dynamic(settings: AuditSettings) -> Findings:
    H = 2
    S = lstm_step(H)
    f = S["f"]
    Wf = S["W"][H : 2 * H, :]
    dfdh = vanishes(f.jacobian(S["h_prev"]) - sp.diag(*[e * (1 - e) for e in f]) * Wf)
    dfdu = vanishes(f.jacobian(S["u"][H : 2 * H, :]) - sp.diag(*[e * (1 - e) for e in f]))
    model = LSTM(2, H, seed=3)
    x = np.stack([np.sin(np.arange(8.0)), np.cos(np.arange(8.0))], axis=1)
    M = model_trace(model, x, np.zeros(H), np.zeros(H))

    def f1(x1):
        xx = x.astype(complex)
        xx[0] = x1
        res = model.apply(model.params, xx[:1], (np.zeros((1, H)), np.zeros((1, H))))
        return res.traces[0].caches[0][1][0]

    J = fd_jacobian(f1, x[0], method="complex")
    spot = bool(np.ptp(M["f"], axis=0).min() > 0 and np.abs(J).max() > 0)
    return Findings(
        derived(dfdh and dfdu, spot),
        None,
        {"forget_gate_over_time": M["f"], "df_1_dx_1_complex_step": J},
    )


@claim(
    "lstm-vectors-same-length",
    quotes=[
        Quote(
            "003",
            "All vectors from the same length \\(n\\):",
            "Long Short-Term Memory (LSTM)",
        )
    ],
    precise="f_t, i_t, o_t, the candidate g_t (c~_t), c_t and h_t all have length H, the hidden size (SymPy's step "
    "and the model's gates and states).",
    proofs=("lstm",),
)
def check_lstm_vectors_same_length(settings: AuditSettings) -> Findings:
    S = lstm_step(2)
    sym = {k: S[k].shape for k in ("i", "f", "g", "o", "c", "h")}
    ok = all(s == (2, 1) for s in sym.values())
    M = model_trace(LSTM(2, 2, seed=0), np.ones((4, 2)), np.zeros(2), np.zeros(2))
    spot = all(M[k].shape[-1] == 2 for k in ("i", "f", "g", "o", "c", "h"))
    return Findings(
        derived(ok, spot),
        None,
        {
            "symbolic_shapes_H_2": {k: str(v) for k, v in sym.items()},
            "model_shapes": {k: M[k].shape for k in ("i", "f", "g", "o", "c", "h")},
        },
    )


def write_attains(w: float) -> bool:
    """Every w in (-0.99, 0.99) is a write i g: i = sigma(10), g = tanh(atanh(w / i)) gives i g = w to 4u."""
    i = 1 / (1 + np.exp(-10.0))
    g = np.tanh(np.arctanh(w / i))
    return bool(abs(i * g - w) <= WRITE_ROUNDING * max(abs(w), 1e-300) + 1e-300)


@claim(
    "cell-counts-by-plus-minus-one",
    quotes=[
        Quote(
            "001",
            "These cell states can be interpreted as counters (counting by 1 or -1 at each time step).",
        )
    ],
    precise="Each step adds exactly +1 or -1 to the cell: the write i_t g_t is in {-1, +1}.",
    refinement="Each step adds a write i_t g_t of magnitude < 1 (never exactly 1: SymPy, {sigma >= 1} and {|tanh| >= 1} "
    "are empty), and every value in (-1, 1) is a possible write: the counter moves by a real amount in (-1, 1), "
    "approaching +-1 only as both gates saturate.",
    proofs=("lstm",),
)
def check_cell_counts_by_plus_minus_one(settings: AuditSettings) -> Findings:
    a = sp.Symbol("a", real=True)
    write0 = (1 / (1 + sp.exp(-a))).subs(a, 0) * sp.tanh(0)  # sigma(0) tanh(0) = 0: neither +1 nor -1
    sym = _sigmoid_range_symbolic()
    bounded = sym["ge_one"] == sp.EmptySet and _tanh_range_symbolic()
    M = model_trace(LSTM(1, 1, seed=0), np.array([[0.3], [-0.7], [1.0]]), np.zeros(1), np.zeros(1))
    writes = (M["i"] * M["g"]).ravel()
    prop = holds(st.floats(-0.99, 0.99, allow_subnormal=False), write_attains, 40, settings)
    return Findings(
        counterexample(write0 == 0, bool(np.all(np.abs(np.abs(writes) - 1) > 1e-3))),
        derived(bounded, not prop.ok),
        {
            "write_at_a_0": str(write0),
            "model_writes": writes,
            "refinement_examples": prop.examples,
        },
    )


@claim(
    "tanh-pushes-to-minus-one-one",
    quotes=[
        Quote(
            "001",
            "Then, we put the cell state through tanh (to push the values to be between \u22121 and 1)",
        )
    ],
    precise="tanh maps every real cell value into the open interval (-1, 1), keeping its sign (SymPy: {tanh >= 1} and "
    "{tanh <= -1} are empty, {tanh < 0} = (-oo, 0), limits +-1; 60-digit mpmath on Hypothesis-drawn values).",
)
def check_tanh_pushes_to_minus_one_one(settings: AuditSettings) -> Findings:
    prop = holds(st.floats(-30, 30), tanh_range_exact, 100, settings)
    return Findings(
        derived(_tanh_range_symbolic(), not prop.ok),
        None,
        {"examples": prop.examples, "counterexample": prop.found},
    )


# ---------------------------------------------------------------------------------------------
# lstm-avoids-exploding, gated-more-resilient

EXPLODE_STEPS = 20  # 3.22^20 ~ 1.5e10: the complex step (h = 1e-30) stays infinitesimal along the growth


@functools.cache
def exploding_lstm_witness() -> tuple[bool, bool, dict]:
    r"""Exact: H = I = 1, W_ih = 0, W_hg = 4 (the other recurrent weights 0), biases b_i = b_o = 2, b_f = -2,
    b_g = 0, x = 0, (h_0, c_0) = (0, 0). The state stays at (0, 0) (g = tanh(0) = 0), and the joint Jacobian,
    SymPy's ``lstm_step(1)`` evaluated there, is [[o i w, o f], [i w, f]] with eigenvalues 0 and
    4 sigma(2)^2 + sigma(-2) ~ 3.2 > 1 (decided by SymPy): d(h, c)_T/d(h, c)_0 grows like 3.2^T.
    The model's product and the complex-step dc_T/dc_0 agree with it."""
    S = lstm_step(1)
    subs = {S["h_prev"][0]: 0, S["c_prev"][0]: 0}
    Wv = [0, 0, 4, 0]  # rows i, f, g, o of W_hh
    subs.update({S["W"][k]: Wv[k] for k in range(4)})
    u = [2, -2, 0, 2]
    subs.update({S["u"][k]: u[k] for k in range(4)})
    J = S["J"].xreplace(subs)
    # det J = 0 exactly, so the eigenvalues are 0 and trace J; SymPy decides trace J > 1
    lam = sp.expand(J.trace())
    z = sp.Dummy("z")
    logistic = sp.Lambda(z, 1 / (1 + sp.exp(-z)))  # sig is opaque in the derivation: evaluate it exactly
    lam = lam.replace(lambda e: e.func.__name__ == "sig", lambda e: logistic(e.args[0]))
    exact = bool(sp.expand(J.det()) == 0 and lam > 1)
    params = {
        "weight_ih_l0": np.zeros((4, 1)),
        "weight_hh_l0": np.array(Wv, float)[:, None],
        "bias_ih_l0": np.array(u, float),
        "bias_hh_l0": np.zeros(4),
    }
    model = LSTM(1, 1, params=params)
    x = np.zeros((EXPLODE_STEPS, 1))
    P = jacobian_products(model, x, (np.zeros((1, 1)), np.zeros((1, 1))))
    oracle = total_dc_dc0(model, x, np.zeros(1), np.zeros(1))
    lam_f = float(lam)
    n = float(np.linalg.norm(P[-1], 2))
    numeric = bool(
        abs(P[-1][1, 1] - oracle[0, 0]) <= WITNESS_AGREEMENT * abs(oracle[0, 0]) and n >= lam_f**EXPLODE_STEPS / 10
    )
    return (
        exact,
        numeric,
        {
            "params": params,
            "x": "zeros",
            "(h0, c0)": [0.0, 0.0],
            "joint_jacobian": str(J.tolist()),
            "largest_eigenvalue": f"{lam} = {sp.N(lam, 8)}",
            "steps": EXPLODE_STEPS,
            "norm_d(h,c)_T_d(h,c)_0": n,
            "complex_step_dc_T_dc_0": float(oracle[0, 0]),
        },
    )


@claim(
    "lstm-avoids-exploding",
    quotes=[
        Quote("000", "thus avoiding these problems", "LSTM"),
        Quote("001", "thus avoiding these problems"),
    ],
    precise="Because the forget gate varies, an LSTM's gradient d(h, c)_T/d(h, c)_0 does not explode (nor vanish; the "
    "vanishing half is lstm-solves-vanishing).",
    refinement="Only the direct cell path cannot explode: prod_t diag(f_t) has every entry in (0, 1) (SymPy: "
    "{sigma >= 1} is empty; Hypothesis: entries within [f_min^T, f_max^T]). The full Jacobian, through W_hh, can "
    "(exact witness: a fixed point with largest eigenvalue 4 sigma(2)^2 + sigma(-2) ~ 3.2).",
    proofs=("lstm", "activation_bounds"),
)
def check_lstm_avoids_exploding(settings: AuditSettings) -> Findings:
    exact, numeric, ev = exploding_lstm_witness()
    sym = _sigmoid_range_symbolic()
    held, examples = forget_path_established(settings)
    return Findings(
        counterexample(exact, numeric),
        derived(sym["ge_one"] == sp.EmptySet, held),
        {"witness": ev, "refinement_examples": examples},
    )


@claim(
    "gated-more-resilient",
    quotes=[
        Quote(
            "003",
            "Use gates to control information flow; they are more resilient to vanishing gradients",
            "Summary",
        )
    ],
    precise="Gated cells (LSTM, GRU) always vanish less than the vanilla RNN on the same input.",
    refinement="Gates open a path whose factor is the gate itself: the LSTM's dc_t/dc_{t-1} = diag(f_t) and the GRU's "
    "dh_t/dh_{t-1} has the term diag(z_t); with the gates saturated (f = 1, i = 0; z = 1) the gradient passes "
    "unchanged, dc_T/dc_k = I and dh_T/dh_k = I, for every T and W_hh (SymPy substitutions; saturated biases in the "
    "models). Not a guarantee: there are LSTMs whose gradient vanishes faster than an orthogonal tanh RNN's.",
    proofs=("lstm", "gru"),
)
def check_gated_more_resilient(settings: AuditSettings) -> Findings:
    found, reverified, ev = lstm_rnn_comparison(settings)
    lstm_sym, lstm_held, _ = _carousel(settings)
    gru_sym, gru_ev = gru_update_gate_substitution()
    gru_prop = holds(_gru_cases(), gru_saturated_update_keeps_state, 10, settings)
    return Findings(
        counterexample(found, reverified),
        proof_or_property(lstm_sym and gru_sym, lstm_held and not gru_prop.ok),
        {**ev, "gru_update_gate": gru_ev},
    )


# ---------------------------------------------------------------------------------------------
# cell-state-not-passed


def cell_reaches_output_only_through_h(case) -> bool:
    """Two-layer LSTM: the output sequence is the top layer's h_t; the second layer reads only the first
    layer's h (the model's output equals a second LSTM run on layer 1's h sequence); changing c_0 of layer 1
    with o saturated closed (h = 0) leaves every output unchanged."""
    params, x, h0, c0 = case
    H, In = h0.size, x.shape[1]
    two = LSTM(In, H, num_layers=2, seed=5)
    p = dict(two.params)
    p.update({k: v for k, v in params.items()})  # layer 0 drawn, layer 1 default-initialised
    two = LSTM(In, H, num_layers=2, params=p)
    res = two.forward(x)
    lower = LSTM(In, H, params={k: v for k, v in p.items() if k.endswith("l0")})
    upper = LSTM(H, H, params={k.replace("l1", "l0"): v for k, v in p.items() if k.endswith("l1")})
    h1 = lower.forward(x).output
    stacked = upper.forward(h1).output
    ok = np.allclose(res.output, stacked, rtol=0, atol=SAME_ARITHMETIC)
    q = {k: np.array(v, copy=True) for k, v in params.items()}
    q["bias_ih_l0"][3 * H :] = -SATURATION  # o = 0: h_t = 0 whatever c_t
    q["bias_hh_l0"][3 * H :] = 0.0
    closed = LSTM(In, H, params=q)
    a = closed.forward(x, (h0[None, :], c0[None, :])).output
    b = closed.forward(x, (h0[None, :], 1.0 + c0[None, :])).output
    return bool(ok and np.allclose(a, b, rtol=0, atol=SAME_ARITHMETIC))


@claim(
    "cell-state-not-passed",
    quotes=[
        Quote(
            "003",
            "Hidden states \\(h^{(t)}\\) are the *outputs* from the RNN, cell states \\(c^{(t)}\\) are not accessible "
            "(not passed)",
            "Long Short-Term Memory (LSTM)",
        ),
        Quote("003", "\\(h^{(t)}\\) hidden state (output) read content from the cell", "Long Short-Term Memory (LSTM)"),
    ],
    precise="The LSTM's output at every step is h_t = o_t tanh(c_t) and a stacked layer reads only h: the cell state "
    "reaches the outputs only through h (SymPy: with o = 0, h_t = 0 has no c atom; the model: a two-layer LSTM "
    "equals the upper layer run on the lower layer's h sequence, and with o closed changing c_0 changes no output). "
    "(torch still returns the final c_n to the caller.)",
    proofs=("lstm",),
)
def check_cell_state_not_passed(settings: AuditSettings) -> Findings:
    z = gate_substitution("o", 0)
    no_c = z["h"] == sp.zeros(z["H"], 1)
    prop = holds(_CASES, cell_reaches_output_only_through_h, 10, settings)
    return Findings(derived(no_c, not prop.ok), None, {"o=0: h_t": str(z["h"].T), "counterexample": prop.found})
