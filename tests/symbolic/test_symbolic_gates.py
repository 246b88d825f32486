"""Gated, residual, highway, stacked and bidirectional derivations (proofs/lstm.tex, gru.tex,
residual_highway.tex, bidirectional_stacked.tex) against the numeric models and torch."""

from __future__ import annotations

import numpy as np
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from gradtheory import GRU, LSTM, RNN, HighwayRNN, ResidualRNN
from gradtheory._tolerances import EXACT_VS_BPTT, JACOBIAN_PRODUCT
from gradtheory.strategies import matrices, parameters, sequences
from gradtheory.symbolic import parameter_count
from gradtheory.symbolic.bidirectional_stacked import STACK_STEPS, stacked_scalar
from gradtheory.symbolic.gru import gru_step
from gradtheory.symbolic.lstm import lstm_step
from gradtheory.symbolic.residual_highway import highway_step, product_bounds

# LSTM_FORGET_DIAGONAL (relative tolerance): diag(dc_t/dc_{t-1}) from LSTM.jacobians vs sigma(W_f h
# + u_f) recomputed: the same sigmoid of the same pre-activation summed in a different order (<= H +
# 1 terms, ~ (H + 1) u absolute on O(1) values) through sigma' <= 1/4: a few u relative.
LSTM_FORGET_DIAGONAL = 1e-14
# GRU_ZERO_WEIGHT_UPDATE_GATE (relative tolerance): W_hh = 0: the GRU's one-step Jacobian is
# diag(z_t) exactly; z_t inside the model vs sigma(u_z) recomputed: the same sigmoid of a pre-
# activation summed in a possibly different order: a few u relative.
GRU_ZERO_WEIGHT_UPDATE_GATE = 1e-14
# STACKED_SCALAR_FORMULA (relative tolerance): Relative to max(1, max|derived|): two stacked scalar
# tanh layers, the lambdified formula vs BPTT: sums of <= T products of <= 2T factors of size <=
# 1.5: relative round-off ~ 4T u * 1.5^(2T).
STACKED_SCALAR_FORMULA = 1e-13
# BIDIRECTIONAL_SCALAR_FORMULA (relative tolerance): Relative to max(1, max|derived|): scalar
# bidirectional tanh layer, the lambdified formula vs BPTT: sums of <= 2T products of <= 2T factors
# of size <= 1.5: round-off ~ 4T u 1.5^(2T) relative.
BIDIRECTIONAL_SCALAR_FORMULA = 1e-13
# BIDIRECTIONAL_HALVES (relative tolerance): Relative to max(1, max|g.x|): a bidirectional layer's
# input gradient vs the forward half's plus the reverse half's run on the flipped sequence: the same
# kernels on the same numbers, differing only in the final addition of the two halves (and possibly
# the order of the W_ih^T products of 2H = 4 terms): a few u (4e-15 ~ 36 u).
BIDIRECTIONAL_HALVES = 4e-15

# Same formula evaluated in a different operation order: entries agree to a few ulps of the
# Jacobian's scale (entries are sums of <= 3H products of O(1) factors).
JAC = JACOBIAN_PRODUCT.value


def _input_parts(model, x):
    """u_t = W_ih x_t + b_ih (+ b_hh where it merges) per step, as the symbolic steps take it."""
    p = model.params
    u = x @ p["weight_ih_l0"].T
    if model.bias:
        u = u + p["bias_ih_l0"]
    return u


@given(st.integers(1, 2), st.data())
def test_lstm_symbolic_joint_jacobian_equals_model_jacobians(H, data):
    r"""SymPy's joint Jacobian d(h_t, c_t)/d(h_{t-1}, c_{t-1}) (with dc_t/dc_{t-1} = diag(f_t)) equals
    LSTM.jacobians (proofs/lstm.tex)."""
    model = LSTM(2, H)
    model.params = data.draw(parameters(model, scale=1.5), label="params")
    x = data.draw(sequences(steps=st.integers(1, 5), input_size=2), label="x")
    res = model.forward(x)
    Js = model.jacobians(res)
    u = _input_parts(model, x) + model.params["bias_hh_l0"]
    S = lstm_step(H)
    h, c = res.traces[0].states[0][:, 0], res.traces[0].states[1][:, 0]
    W = model.params["weight_hh_l0"]
    for t in range(len(x)):
        J = np.array(S["fn"](list(W.ravel()), list(u[t]), list(h[t]), list(c[t])), dtype=float)
        np.testing.assert_allclose(J, Js[t], rtol=0, atol=JAC * max(1.0, np.abs(W).max()))
        f = 1 / (1 + np.exp(-(W[H : 2 * H] @ h[t] + u[t, H : 2 * H])))
        np.testing.assert_allclose(np.diag(Js[t][H:, H:]), f, rtol=LSTM_FORGET_DIAGONAL)
        assert np.count_nonzero(Js[t][H:, H:] - np.diag(np.diag(Js[t][H:, H:]))) == 0


def test_lstm_constant_error_carousel_passes_the_cell_error_unchanged():
    """With the forget gate saturated open (f = 1 in float64) the cell path's product over any span is I."""
    H, T = 3, 30
    model = LSTM(2, H, seed=3)
    model.params["bias_ih_l0"][H : 2 * H] = 40.0  # sigma(40 + O(1)) = 1 - 4e-18 -> 1.0 in float64
    x = np.random.default_rng(0).normal(size=(T, 2))
    Js = model.jacobians(model.forward(x))
    P = np.eye(H)
    for J in Js:
        P = J[H:, H:] @ P
    assert np.array_equal(P, np.eye(H))
    # With W_hh = 0 the cell path is the only path from c_0 to c_T: dc_T/dc_0 = prod diag(f_t) = I,
    # so the error injected at c_T arrives at c_0 unchanged after 30 steps (no decay, no growth).
    model.params["weight_hh_l0"] = np.zeros_like(model.params["weight_hh_l0"])
    g = model.backward(model.forward(x), np.zeros((T, H)), None, np.ones((1, H)))
    assert np.array_equal(g.c0[0], np.ones(H))


@given(st.integers(1, 2), st.data())
def test_gru_symbolic_jacobian_with_direct_path_diag_z_equals_model_jacobians(H, data):
    """SymPy's GRU Jacobian diag(z) + ... (torch convention, r after W_hn h + b_hn) equals GRU.jacobians."""
    model = GRU(2, H, bias=True)
    model.params = data.draw(parameters(model, scale=1.5), label="params")
    x = data.draw(sequences(steps=st.integers(1, 5), input_size=2), label="x")
    res = model.forward(x)
    Js = model.jacobians(res)
    p = model.params
    u = _input_parts(model, x)
    u[:, : 2 * H] += p["bias_hh_l0"][: 2 * H]
    b_hn = p["bias_hh_l0"][2 * H :]
    h = res.traces[0].states[0][:, 0]
    S = gru_step(H)
    for t in range(len(x)):
        J = np.array(S["fn"](list(p["weight_hh_l0"].ravel()), list(u[t]), list(b_hn), list(h[t])), dtype=float)
        np.testing.assert_allclose(J, Js[t], rtol=0, atol=JAC * max(1.0, np.abs(p["weight_hh_l0"]).max()))
    zeroW = dict(p, weight_hh_l0=np.zeros_like(p["weight_hh_l0"]))
    m0 = GRU(2, H, params=zeroW)
    J0 = m0.jacobians(m0.forward(x))
    z = 1 / (1 + np.exp(-(u[:, H : 2 * H])))
    for t in range(len(x)):
        np.testing.assert_allclose(J0[t], np.diag(z[t]), rtol=GRU_ZERO_WEIGHT_UPDATE_GATE, atol=0)


@given(
    st.sampled_from(["RNN", "LSTM", "GRU"]),
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(1, 3),
    st.booleans(),
    st.booleans(),
)
def test_parameter_count_formula_equals_torch_and_models(mode, I, H, L, bidirectional, bias):
    """N = D G H (I + H + 2 beta) + (L - 1) D G H (D H + H + 2 beta) equals torch.nn and num_parameters()."""
    import torch

    D = 2 if bidirectional else 1
    n = parameter_count(mode, I, H, L, D, bias)
    mod = getattr(torch.nn, mode)(I, H, num_layers=L, bidirectional=bidirectional, bias=bias)
    assert n == sum(p.numel() for p in mod.parameters())
    ours = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[mode](I, H, L, bidirectional=bidirectional, bias=bias)
    assert n == ours.num_parameters()


@given(st.integers(1, 2), st.data())
def test_highway_symbolic_jacobian_equals_model_jacobians(H, data):
    """diag(1 - T) + diag(T phi'(a^F)) W_F + diag((F - h) T (1 - T)) W_T equals HighwayRNN.jacobians (tanh)."""
    model = HighwayRNN(2, H, nonlinearity="tanh")
    model.params = data.draw(parameters(model, scale=1.5), label="params")
    x = data.draw(sequences(steps=st.integers(1, 5), input_size=2), label="x")
    res = model.forward(x)
    Js = model.jacobians(res)
    u = _input_parts(model, x) + model.params["bias_hh_l0"]
    h = res.traces[0].states[0][:, 0]
    S = highway_step(H, "tanh")
    W = model.params["weight_hh_l0"]
    for t in range(len(x)):
        J = np.array(S["fn"](list(W.ravel()), list(u[t]), list(h[t])), dtype=float)
        np.testing.assert_allclose(J, Js[t], rtol=0, atol=JAC * max(1.0, np.abs(W).max()))


@given(st.sampled_from(["tanh", "relu", "identity", "sigmoid"]), st.integers(1, 4), st.floats(0.05, 0.95), st.data())
def test_residual_jacobian_products_have_singular_values_within_one_plus_minus_eta_powers(name, n, eta, data):
    r"""(1 - eta)^m <= sigma_min(prod (I + J_F)) <= sigma_max(...) <= (1 + eta)^m, eta = gamma ||W_hh||_2 < 1."""
    from gradtheory.models.activations import ACTIVATIONS

    gam = float(ACTIVATIONS[name].gamma)
    W = data.draw(matrices(n, spectral_norm=eta / gam), label="W_hh")
    x = data.draw(sequences(steps=st.integers(1, 8), input_size=2), label="x")
    model = ResidualRNN(2, n, nonlinearity=name, seed=5)
    model.params["weight_hh_l0"] = W
    Js = model.jacobians(model.forward(x))
    P = np.eye(n)
    for m, J in enumerate(Js, start=1):
        P = J @ P
        lo, hi = (float(v) for v in product_bounds(gam, np.linalg.norm(W, 2), m))
        s = np.linalg.svd(P, compute_uv=False)
        # SVD and the product carry ~ m n u relative error
        assert s[-1] >= lo * (1 - JAC) and s[0] <= hi * (1 + JAC)


@given(
    st.floats(-1.5, 1.5),
    st.floats(-1.5, 1.5),
    st.floats(-1.5, 1.5),
    st.floats(-1.5, 1.5),
    st.lists(st.floats(-1, 1, allow_subnormal=False), min_size=STACK_STEPS, max_size=STACK_STEPS),
)
def test_stacked_gradient_is_the_sum_over_climbing_steps_of_composed_jacobians(w1, v1, w2, v2, xs):
    r"""Two stacked scalar tanh layers: dh^(2)_T/dx_s = sum_{r=s}^T (dh2_T/dh2_r) phi'(a2_r) v2 (dh1_r/dx_s),
    lambdified, equals the numpy BPTT input gradient of RNN(1, 1, num_layers=2) (proofs/bidirectional_stacked.tex)."""
    S = _tanh_stack()
    model = RNN(
        1,
        1,
        num_layers=2,
        nonlinearity="tanh",
        bias=False,
        params={"weight_ih_l0": [[v1]], "weight_hh_l0": [[w1]], "weight_ih_l1": [[v2]], "weight_hh_l1": [[w2]]},
    )
    x = np.array(xs)[:, None]
    d_out = np.zeros((STACK_STEPS, 1))
    d_out[-1] = 1.0
    g = model.backward(model.forward(x), d_out)
    derived = np.array([f(w1, v1, w2, v2, *xs) for f in S], dtype=float)
    # sums of <= T products of <= 2T factors of size <= 1.5: relative round-off ~ 4T u * 1.5^(2T)
    tol = STACKED_SCALAR_FORMULA
    np.testing.assert_allclose(g.x[:, 0], derived, rtol=0, atol=tol * max(1.0, np.abs(derived).max()))


_STACK_CACHE: list = []


def _tanh_stack():
    if not _STACK_CACHE:
        S = stacked_scalar(sp.tanh)
        w1, v1, w2, v2, xs = S["symbols"]
        _STACK_CACHE.extend(sp.lambdify([w1, v1, w2, v2, *xs], e, modules="numpy") for e in S["formula"])
    return _STACK_CACHE


@given(st.sampled_from(["rnn", "lstm", "gru"]), st.integers(2, 6), st.data())
def test_unidirectional_models_are_causal(family, T, data):
    """dh_t/dx_s = 0 for s > t: the input gradient of a loss on h_t vanishes exactly after step t."""
    cls = {"rnn": RNN, "lstm": LSTM, "gru": GRU}[family]
    model = cls(2, 2, num_layers=data.draw(st.integers(1, 2), label="layers"), seed=7)
    x = data.draw(sequences(steps=T, input_size=2), label="x")
    t = data.draw(st.integers(0, T - 2), label="t")
    d_out = np.zeros((T, 2))
    d_out[t] = 1.0
    g = model.backward(model.forward(x), d_out)
    assert np.all(g.x[t + 1 :] == 0.0)
    assert np.any(g.x[: t + 1] != 0.0)


@given(st.sampled_from(["rnn", "lstm", "gru"]), st.integers(1, 5), st.data())
def test_bidirectional_input_gradient_is_the_sum_of_the_two_directions(family, T, data):
    """dL/dx_s = sum_{t>=s} (dL/dfwd_t)(dfwd_t/dx_s) + sum_{t<=s} (dL/dbwd_t)(dbwd_t/dx_s): a bidirectional
    layer's input gradient equals the forward half's plus the reverse half's run on the flipped sequence."""
    cls = {"rnn": RNN, "lstm": LSTM, "gru": GRU}[family]
    H = 2
    model = cls(2, H, bidirectional=True, seed=11)
    x = data.draw(sequences(steps=T, input_size=2), label="x")
    d_out = data.draw(sequences(steps=T, input_size=2 * H), label="d_out")
    g = model.backward(model.forward(x), d_out)
    fwd = cls(2, H, params={k: v for k, v in model.params.items() if not k.endswith("_reverse")})
    bwd = cls(2, H, params={k[: -len("_reverse")]: v for k, v in model.params.items() if k.endswith("_reverse")})
    gf = fwd.backward(fwd.forward(x), d_out[:, :H])
    gb = bwd.backward(bwd.forward(x[::-1]), d_out[::-1, H:])
    tol = BIDIRECTIONAL_HALVES
    np.testing.assert_allclose(g.x, gf.x + gb.x[::-1], rtol=0, atol=tol * max(1.0, np.abs(g.x).max()))


@st.composite
def _gated_cases(draw):
    family = draw(st.sampled_from(["LSTM", "GRU", "HighwayRNN", "ResidualRNN"]))
    H = draw(st.integers(1, 2))
    kw = {}
    if family in ("HighwayRNN", "ResidualRNN"):
        kw["nonlinearity"] = draw(st.sampled_from(["tanh", "identity"]))  # sigmoid: covered by Elman tests
    cls = {"LSTM": LSTM, "GRU": GRU, "HighwayRNN": HighwayRNN, "ResidualRNN": ResidualRNN}[family]
    model = cls(2, H, bias=draw(st.booleans()), **kw)
    model.params = draw(parameters(model, scale=1.0))
    x = draw(sequences(steps=st.integers(1, 6), input_size=2))
    T = x.shape[0]
    d_out = draw(sequences(steps=T, input_size=H))
    d_hn = draw(sequences(steps=1, input_size=H))[0]
    if family == "LSTM":
        h0 = (draw(sequences(steps=1, input_size=H))[0], draw(sequences(steps=1, input_size=H))[0])
        d_cn = draw(sequences(steps=1, input_size=H))[0]
    else:
        h0, d_cn = draw(sequences(steps=1, input_size=H))[0], None
    return model, x, h0, d_out, d_hn, d_cn


@given(_gated_cases())
def test_gated_bptt_formula_in_high_precision_equals_numpy_bptt(case):
    r"""LSTM, GRU, highway, residual: the sum over t, k of g_t^T (prod of SymPy-derived one-step
    Jacobians) d+s_k/dtheta, evaluated at 40 digits (exactly for identity residual), equals
    the numpy BPTT to 1e-13 relative to the gradient's norm (proofs/lstm.tex, gru.tex,
    residual_highway.tex)."""
    from fractions import Fraction

    from gradtheory.symbolic._cells import model_gradient_by_formula

    model, x, h0, d_out, d_hn, d_cn = case
    exact = model_gradient_by_formula(model, x, h0, d_output=d_out, d_h_n=d_hn, d_c_n=d_cn)
    is_lstm = isinstance(model, LSTM)
    hh = (h0[0][None], h0[1][None]) if is_lstm else h0[None]
    g = model.backward(model.forward(x, hh), d_out, d_hn[None], None if d_cn is None else d_cn[None])
    keys = list(model.param_shapes())
    numeric = [g.params[k] for k in keys] + [g.x, g.h0[0]] + ([g.c0[0]] if is_lstm else [])
    derived = [exact[k] for k in keys] + [exact["x"], exact["h0"]] + ([exact["c0"]] if is_lstm else [])
    a = np.concatenate([np.ravel(v) for v in numeric])
    b_exact = [v for d in derived for v in np.ravel(d)]
    diff = np.array(
        [float(e - (Fraction(float(n)) if isinstance(e, Fraction) else type(e)(float(n)))) for n, e in zip(a, b_exact)]
    )
    scale = np.linalg.norm([float(e) for e in b_exact])
    rtol = EXACT_VS_BPTT.value
    assert np.linalg.norm(diff) <= rtol * scale or scale == np.linalg.norm(diff) == 0.0


_BIDI_CACHE: list = []


@given(
    st.lists(st.floats(-1.5, 1.5), min_size=4, max_size=4),
    st.lists(st.floats(-1, 1, allow_subnormal=False), min_size=3 * STACK_STEPS, max_size=3 * STACK_STEPS),
)
def test_bidirectional_formula_sums_forward_and_reverse_paths(weights, values):
    r"""Scalar bidirectional tanh layer: dL/dx_s = sum_{t>=s} g^f_t dfwd_t/dx_s + sum_{t<=s} g^b_t dbwd_t/dx_s
    (the reverse products run backwards in time), lambdified, equals the numpy BPTT of
    RNN(1, 1, bidirectional=True) (proofs/bidirectional_stacked.tex)."""
    from gradtheory.symbolic.bidirectional_stacked import bidirectional_scalar

    if not _BIDI_CACHE:
        B = bidirectional_scalar(sp.tanh)
        wf, vf, wb, vb, xs, gf, gb = B["symbols"]
        _BIDI_CACHE.extend(sp.lambdify([wf, vf, wb, vb, *xs, *gf, *gb], e, modules="numpy") for e in B["formula"])
    wf, vf, wb, vb = weights
    T = STACK_STEPS
    x, gf, gb = values[:T], values[T : 2 * T], values[2 * T :]
    model = RNN(
        1,
        1,
        nonlinearity="tanh",
        bias=False,
        bidirectional=True,
        params={
            "weight_ih_l0": [[vf]],
            "weight_hh_l0": [[wf]],
            "weight_ih_l0_reverse": [[vb]],
            "weight_hh_l0_reverse": [[wb]],
        },
    )
    d_out = np.stack([gf, gb], axis=1)
    g = model.backward(model.forward(np.array(x)[:, None]), d_out)
    derived = np.array([f(wf, vf, wb, vb, *x, *gf, *gb) for f in _BIDI_CACHE], dtype=float)
    # sums of <= 2T products of <= 2T factors of size <= 1.5: round-off ~ 4T u 1.5^(2T) relative
    tol = BIDIRECTIONAL_SCALAR_FORMULA
    np.testing.assert_allclose(g.x[:, 0], derived, rtol=0, atol=tol * max(1.0, np.abs(derived).max()))
