"""The symbolic BPTT derivation (proofs/rnn_bptt.tex, proofs/seed004_sigmoid.tex, proofs/scalar.tex)
against the numpy BPTT of gradtheory.RNN, in exact or 40-digit arithmetic."""

from __future__ import annotations

import numpy as np
import sympy as sp
from hypothesis import assume, given
from hypothesis import strategies as st

from gradtheory import RNN
from gradtheory._tolerances import EXACT_VS_BPTT, JACOBIAN_PRODUCT
from gradtheory.strategies import parameters, sequences
from gradtheory.symbolic import derive
from gradtheory.symbolic._elman import EXACT_ACTIVATIONS, bptt_by_formula, elman_step, model_point
from gradtheory.symbolic.scalar import STEPS as SCALAR_STEPS

# SEED004_CONTRACTION_PRODUCT (relative tolerance): ||P|| <= (s/4)^(k-t) (1 + rtol):
# submultiplicativity (exact); round-off in the float product ~ (k-t) n u relative.
SEED004_CONTRACTION_PRODUCT = 1e-12

EXACT = EXACT_VS_BPTT.value


def _flat(*arrays) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=object).ravel() for a in arrays])


def _rel_to_norm(numeric, exact) -> float:
    """||numeric - exact||_2 / ||exact||_2 with the exact values kept exact until the end."""
    diff = [float(e - type(e)(float(n)) if not isinstance(e, int) else e - n) for n, e in zip(numeric, exact)]
    scale = float(np.linalg.norm([float(e) for e in exact]))
    err = float(np.linalg.norm(diff))
    return err if scale == 0.0 else err / scale


@st.composite
def rnn_cases(draw, activations=("tanh", "sigmoid", "relu", "identity"), bias=None):
    act = draw(st.sampled_from(activations))
    H = draw(st.integers(1, 3))
    I = draw(st.integers(1, 2))
    b = draw(st.booleans()) if bias is None else bias
    model = RNN(I, H, nonlinearity=act, bias=b)
    model.params = draw(parameters(model, scale=1.0))
    x = draw(sequences(steps=st.integers(1, 6), input_size=I))
    T = x.shape[0]
    vec = lambda shape: draw(
        st.lists(
            st.floats(-1, 1, allow_subnormal=False),
            min_size=int(np.prod(shape)),  # noqa: E731
            max_size=int(np.prod(shape)),
        ).map(lambda v: np.array(v).reshape(shape))
    )
    return model, x, vec((H,)), vec((T, H)), vec((H,))


def _pre_activations(model, x, h0):
    res = model.forward(x, h0[None])
    return np.array([c[0] for c in res.traces[0].caches])  # a_t, (T, 1, H)


@given(rnn_cases())
def test_bptt_formula_in_exact_arithmetic_equals_numpy_bptt(case):
    r"""dL/dtheta = sum_t sum_{k<=t} g_t^T (prod_j diag(phi'(a_j)) W) d+h_k/dtheta, evaluated with the
    SymPy-derived one-step Jacobians in exact rationals (identity, relu) or 40 digits (tanh,
    sigmoid), equals the numpy BPTT to 1e-13 relative to the gradient's norm (proofs/rnn_bptt.tex)."""
    model, x, h0, d_out, d_hn = case
    if model.nonlinearity == "relu":
        # relu' jumps at 0: a pre-activation within round-off of 0 may have different signs in
        # float64 and in exact arithmetic, and then the two gradients legitimately differ.
        assume(np.min(np.abs(_pre_activations(model, x, h0))) > 1e-9)
    W_hh, W_ih, b = model_point(model)
    exact = bptt_by_formula(model.nonlinearity, W_hh, W_ih, b, x, h0, d_out, d_hn)
    res = model.forward(x, h0[None])
    g = model.backward(res, d_out, d_hn[None])
    numeric = [g.params["weight_hh_l0"], g.params["weight_ih_l0"], g.x, g.h0[0]]
    derived = [exact["W_hh"], exact["W_ih"], exact["x"], exact["h0"]]
    if model.bias:
        numeric += [g.params["bias_ih_l0"], g.params["bias_hh_l0"]]
        derived += [exact["b"], exact["b"]]
    if model.nonlinearity in EXACT_ACTIVATIONS:
        assert all(type(v).__name__ == "Fraction" for v in _flat(*derived))
    assert _rel_to_norm(_flat(*numeric).astype(float), _flat(*derived)) <= EXACT


def test_bptt_formula_at_n3_T6_tanh_is_fast_and_exact():
    """The case whose unrolled differentiation took 220 s: n = 3, T = 6, tanh, by the step-wise formula."""
    rng = np.random.default_rng(4)
    model = RNN(2, 3, nonlinearity="tanh", seed=4)
    x, h0, d_out, d_hn = rng.normal(size=(6, 2)), rng.normal(size=3), rng.normal(size=(6, 3)), rng.normal(size=3)
    exact = bptt_by_formula("tanh", *model_point(model), x, h0, d_out, d_hn)
    g = model.backward(model.forward(x, h0[None]), d_out, d_hn[None])
    got = _flat(g.params["weight_hh_l0"], g.params["weight_ih_l0"], g.params["bias_ih_l0"], g.x, g.h0[0]).astype(float)
    assert _rel_to_norm(got, _flat(exact["W_hh"], exact["W_ih"], exact["b"], exact["x"], exact["h0"])) <= EXACT


@given(rnn_cases(activations=("tanh", "sigmoid", "identity")))
def test_symbolic_one_step_jacobian_equals_model_jacobians(case):
    """SymPy's Jacobian of the elementwise step, lambdified, equals RNN.jacobians: diag(phi'(a_t)) W_hh."""
    model, x, h0, _, _ = case
    H, I = model.hidden_size, model.input_size
    step = elman_step(model.nonlinearity, H, I)
    args = list(step["W"]) + list(step["U"]) + list(step["b"]) + list(step["x"]) + list(step["h_prev"])
    J_fn = sp.lambdify(args, step["J_h"], modules="numpy")
    W_hh, W_ih, b = model_point(model)
    res = model.forward(x, h0[None])
    Js = model.jacobians(res)
    states = res.traces[0].states[0][:, 0]
    for t in range(x.shape[0]):
        J = np.array(J_fn(*W_hh.ravel(), *W_ih.ravel(), *b, *x[t], *states[t]), dtype=float)
        # Same formula, different operation order: a few ulps of the entries (|J| <= ||W||).
        np.testing.assert_allclose(J, Js[t], rtol=0, atol=JACOBIAN_PRODUCT.value * max(1.0, np.abs(W_hh).max()))


def test_unrolled_elementwise_gradient_equals_bptt_formula_symbolically():
    """n = 2, T = 2, generic phi: SymPy's derivative of the unrolled loss equals the BPTT formula."""
    d = derive("rnn_bptt")
    diff = d.result["unrolled_direct"] - d.result["unrolled_formula"]
    assert all(sp.expand(e.doit()) == 0 for e in diff)
    assert d.result["unrolled_direct"].shape == (2, 2)


@given(rnn_cases(activations=("sigmoid",), bias=False), st.data())
def test_seed004_gradient_of_E_k_is_the_sum_of_products_of_sigmoid_jacobians(case, data):
    r"""Seed 004: c_t = sigma(W_rec c_{t-1} + W_in x_t); dE_k/dW by the derived sum over t of
    dE_k/dc_k (prod diag(c_j(1-c_j)) W_rec) d+c_t/dW equals numpy BPTT (proofs/seed004_sigmoid.tex),
    and ||dc_k/dc_t|| <= (||W_rec||/4)^(k-t)."""
    model, x, h0, d_out, _ = case
    T = x.shape[0]
    k = data.draw(st.integers(0, T - 1), label="k")
    g_k = np.zeros_like(d_out)
    g_k[k] = d_out[k]
    exact = bptt_by_formula("sigmoid", *model_point(model), x, h0, g_k)
    g = model.backward(model.forward(x, h0[None]), g_k)
    got = _flat(g.params["weight_hh_l0"], g.params["weight_ih_l0"], g.x, g.h0[0]).astype(float)
    assert _rel_to_norm(got, _flat(exact["W_hh"], exact["W_ih"], exact["x"], exact["h0"])) <= EXACT
    threshold = derive("seed004_sigmoid").result["threshold"]
    assert threshold == 4
    Js = model.jacobians(model.forward(x, h0[None]))
    s = np.linalg.norm(model.params["weight_hh_l0"], 2)
    P = np.eye(model.hidden_size)
    for t in range(k, -1, -1):
        # ||P|| <= (s/4)^(k-t): submultiplicativity; round-off in the product ~ (k-t) n u relative.
        assert np.linalg.norm(P, 2) <= (s / threshold) ** (k - t) * (1 + SEED004_CONTRACTION_PRODUCT) + 1e-300
        P = P @ Js[t]


@given(
    st.floats(-1.5, 1.5, allow_subnormal=False),
    st.floats(-1, 1),
    st.floats(-1, 1),
    st.lists(st.floats(-1, 1, allow_subnormal=False), min_size=SCALAR_STEPS, max_size=SCALAR_STEPS),
)
def test_scalar_linear_rnn_gradient_is_the_power_sum(w, u, h0, xs):
    """h_t = w h_{t-1} + u x_t: dh_T/dh_0 = w^T and dh_T/dw = sum_k w^(T-k) h_(k-1) (proofs/scalar.tex),
    evaluated exactly, against numpy BPTT of RNN(1, 1, 'identity', bias=False)."""
    from fractions import Fraction

    d = derive("scalar")
    ws, us, h0s, xss = d.result["symbols"]
    hT_dw = sp.lambdify([ws, us, h0s, *xss], d.result["dhT_dw"], modules=[{}])
    F = Fraction
    exact_dw = hT_dw(F(w), F(u), F(h0), *map(F, xs))
    exact_dh0 = F(w) ** SCALAR_STEPS
    model = RNN(1, 1, nonlinearity="identity", bias=False, params={"weight_ih_l0": [[u]], "weight_hh_l0": [[w]]})
    x = np.array(xs)[:, None]
    res = model.forward(x, np.array([[h0]]))
    g = model.backward(res, np.zeros((SCALAR_STEPS, 1)), np.ones((1, 1)))
    scale = float(abs(exact_dw)) + float(abs(exact_dh0))
    assert isinstance(exact_dw, Fraction)
    # T-term sums of products of O(1) numbers: round-off ~ T^2 u relative to the sum of |terms|.
    terms = sum(abs(F(w)) ** (SCALAR_STEPS - kk) for kk in range(1, SCALAR_STEPS + 1)) * (
        abs(F(h0)) + SCALAR_STEPS * abs(F(u))
    )
    assert abs(F(g.params["weight_hh_l0"][0, 0]) - exact_dw) <= EXACT * (float(terms) + scale)
    assert abs(F(g.h0[0, 0]) - exact_dh0) <= EXACT * max(1.0, float(abs(exact_dh0)))
