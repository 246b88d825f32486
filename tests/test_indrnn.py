"""IndRNN (Li et al. 2018): what is specific to a diagonal recurrence. The generic properties
(torch twin parity, complex step, exact arithmetic, Jacobians vs torch.func, SymPy sums of
Jacobian products, stacked and bidirectional) come from tests/test_cells.py by registration.

Derivation: ``proofs/indrnn.tex`` (written by ``gradtheory/cells/indrnn.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtheory as gt
from gradtheory import strategies as gst
from gradtheory.symbolic import derive

# phi'(a) * u from the forward's own a_t: a handful of roundings per entry (the affine map, tanh,
# 1 - h^2, the product) against the same quantities recomputed: <= ~8 u relative, 1e-14 with margin.
JACOBIAN_RTOL = 1e-14
# ln of a product of T factors, each exact to ~2 u relative (phi'(a) and the product): T * 2u
# absolute in the log, T <= 40 -> ~2e-14; 1e-12 leaves room for the renormalisations' ln sums.
LOG_GAIN_ATOL = 1e-12


def _model(H, nonlinearity, seed=0, **kw):
    return gt.IndRNN(2, H, nonlinearity=nonlinearity, seed=seed, **kw)


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 6), nl=st.sampled_from(["tanh", "sigmoid", "relu"]))
def test_one_step_jacobian_is_diagonal_with_entries_phi_prime_times_u(seed, T, nl):
    """dh_t/dh_{t-1} = diag(phi'(a_t) * u): exactly zero off the diagonal (proofs/indrnn.tex, step 2)."""
    model = _model(3, nl, seed=seed % 1000)
    x = np.random.default_rng(seed).uniform(-2, 2, (T, 2))
    res = model.forward(x)
    J = model.jacobians(res)
    p = model.params
    h = np.vstack([np.zeros(3), res.output])
    a = x @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["weight_hh_l0"] * h[:-1] + p["bias_hh_l0"]
    d = {
        "tanh": lambda: 1 - np.tanh(a) ** 2,
        "sigmoid": lambda: np.exp(-a) / (1 + np.exp(-a)) ** 2,
        "relu": lambda: (a > 0).astype(float),
    }[nl]() * p["weight_hh_l0"]
    off = J * (1 - np.eye(3))
    assert np.all(off == 0.0)
    diag = np.diagonal(J, axis1=1, axis2=2)
    assert np.max(np.abs(diag - d)) <= JACOBIAN_RTOL * max(1.0, np.max(np.abs(d)))


def test_derivation_jacobian_with_tanh_substituted_equals_model_jacobians():
    """SymPy's Jacobian of the cell's equations (generic phi, H = 2) with phi = tanh, evaluated at the
    model's states, equals model.jacobians."""
    d = derive("indrnn")
    J_sym, phi = d.result["jacobian"], d.result["phi"]
    J_tanh = J_sym.replace(phi, sp.tanh).doit()
    syms = sorted(J_tanh.free_symbols, key=lambda s: s.name)  # h0, h1, u0, u1, w0, w1
    fn = sp.lambdify(syms, J_tanh, "numpy")
    model = _model(2, "tanh", seed=3)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 2))
    res = model.forward(x)
    J = model.jacobians(res)
    p = model.params
    h = np.vstack([np.zeros(2), res.output])
    for t in range(4):
        w = x[t] @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]
        values = dict(zip(["h0", "h1", "u0", "u1", "w0", "w1"], [*h[t], *p["weight_hh_l0"], *w]))
        got = np.array(fn(*(values[s.name] for s in syms)), dtype=float)
        assert np.max(np.abs(got - J[t])) <= JACOBIAN_RTOL


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 40), n=st.integers(0, 2))
def test_gradient_flow_is_the_per_neuron_product_of_phi_prime_times_u(seed, T, n):
    """With readout e_n, ln||dL/dh_k|| = sum_{j>k} ln|u_n phi'(a_{j,n})|: only neuron n carries gradient."""
    rng = np.random.default_rng(seed)
    model = gt.IndRNN(
        2,
        3,
        nonlinearity="tanh",
        params={
            "weight_ih_l0": rng.uniform(-1, 1, (3, 2)),
            "weight_hh_l0": rng.uniform(-1.5, 1.5, 3),
            "bias_ih_l0": rng.uniform(-1, 1, 3),
            "bias_hh_l0": rng.uniform(-1, 1, 3),
        },
    )
    x = rng.uniform(-1, 1, (T, 2))
    readout = np.eye(3)[n]
    flow = gt.gradient_flow(model, x, readout=readout)
    h = model.forward(x).output
    gains = np.abs(model.params["weight_hh_l0"][n] * (1 - h[:, n] ** 2))
    expected = np.concatenate([np.cumsum(np.log(gains)[::-1])[::-1], [0.0]])
    assert np.max(np.abs(flow - expected)) <= LOG_GAIN_ATOL


@pytest.mark.parametrize("m", [5, 20, 200])
def test_paper_range_of_u_keeps_the_relu_gain_between_epsilon_and_gamma(m):
    """relu, neuron active at every step: the gain over m steps is |u|^m, so |u| in
    [eps^(1/m), Gamma^(1/m)] (the derivation's range at P_n = 1) is exactly neither vanishing
    (< eps) nor exploding (> Gamma); just outside the range the gain leaves [eps, Gamma]."""
    eps, Gam = 1e-3, 10.0
    lo_expr, hi_expr = derive("indrnn").result["range"]
    e, G, P, mm = derive("indrnn").result["symbols"]
    at = {e: sp.Float(eps, 30), G: sp.Float(Gam, 30), P: 1, mm: m}
    lo, hi = float(lo_expr.subs(at)), float(hi_expr.subs(at))
    assert lo == pytest.approx(eps ** (1 / m), rel=1e-15) and hi == pytest.approx(Gam ** (1 / m), rel=1e-15)
    factor = 1 + 1e-3
    u = np.array([lo, hi, lo / factor, hi * factor])
    H = u.size
    model = gt.IndRNN(
        1, H, nonlinearity="relu", bias=False, params={"weight_ih_l0": np.ones((H, 1)), "weight_hh_l0": u}
    )
    x = np.ones((m, 1))  # a_t = 1 + u h_{t-1} > 0: every neuron active
    gains = [np.exp(gt.gradient_flow(model, x, readout=np.eye(H)[n])[0]) for n in range(H)]
    # |u|^m from lo, hi rounded to double: relative error <= m u + (the ln/exp round trip) ~ m * 2.2e-16
    tol = (m + 8) * 2.3e-16
    assert gains[0] == pytest.approx(eps, rel=tol) and gains[1] == pytest.approx(Gam, rel=tol)
    assert gains[2] < eps and gains[3] > Gam


@given(model=gst.models(families=("indrnn",), nonlinearities=("relu", "tanh", "sigmoid", "identity"), max_layers=3))
def test_torch_twin_round_trips_a_stacked_bidirectional_indrnn_bit_for_bit(model):
    """to_torch gives a torch.nn.Module whose weight_hh_l{k} have shape (H,); from_torch of it gives
    back the same model, parameters bit for bit."""
    module = gt.to_torch(model)
    assert isinstance(module, torch.nn.Module)
    assert dict(module.named_parameters())["weight_hh_l0"].shape == (model.hidden_size,)
    back = gt.from_torch(module)
    assert type(back) is gt.IndRNN and back.nonlinearity == model.nonlinearity
    assert (back.num_layers, back.bidirectional, back.bias) == (model.num_layers, model.bidirectional, model.bias)
    for k, v in model.params.items():
        assert np.array_equal(back.params[k], v)


@given(data=st.data())
def test_lyapunov_spectrum_of_a_relu_indrnn_with_active_neurons_is_ln_abs_u(data):
    """Active relu neurons: J_t = diag(u) at every step, so the exponents are ln|u_n| (in the order of
    the identity basis the QR method starts from, when |u| is decreasing)."""
    H = data.draw(st.integers(1, 4))
    u = np.sort(data.draw(hnp.arrays(np.float64, H, elements=st.floats(0.1, 0.99))))[::-1]
    model = gt.IndRNN(
        1, H, nonlinearity="relu", bias=False, params={"weight_ih_l0": np.ones((H, 1)), "weight_hh_l0": u}
    )
    spectrum = gt.lyapunov_spectrum(model, np.ones((30, 1)))
    assert np.max(np.abs(spectrum - np.log(u))) <= 1e-14 * 30
