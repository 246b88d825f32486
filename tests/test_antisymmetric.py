"""AntisymmetricRNN (Chang et al. 2019): what is specific to it. The generic properties at the
default eps, gamma (torch twin parity, complex step, 50-digit forward mode, Jacobians vs
torch.func, SymPy sums of Jacobian products, stacked and bidirectional) come from
tests/test_cells.py by registration; here eps and gamma are drawn too.

Derivation: ``proofs/antisymmetric.tex`` (written by ``gradtheory/cells/antisymmetric.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from helpers import torch_run
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtheory as gt
from gradtheory.oracles import jacobian, model_loss
from gradtheory.symbolic import derive

# Forward: T * L steps of O(n) flops each rounding ~u; the step adds eps*tanh to h_{t-1}, and the
# Jacobians I + eps D M have norm <= 1 + eps ||M|| <= 1 + 2 * 4 * 1.5 * 0.5 (n <= 4, |W| <= 1.5 / 2,
# eps <= 1/2): growth <= 7^4 over T = 4 ... in practice ~T L n u ~ 1e-14; 1e-12 as the project states.
FORWARD_RTOL = 1e-12
# BPTT: sums of T * L products of up to T Jacobians with cancellation ~100x: 1e-10 as the project states.
BACKWARD_RTOL = 1e-10
# Complex step: exact to ~u per evaluation, both sides carry the forward's ~T L n u: 1e-12.
COMPLEX_STEP_RTOL = 1e-12
# J = I + eps diag(phi') M against the same formula written independently: each entry a handful
# of roundings (M's subtraction, phi', two products, the +1): <= ~8 u relative to max(1, |J|).
JACOBIAN_ATOL = 1e-14


@st.composite
def antisymmetric_models(draw, *, single=False):
    """AntisymmetricRNN with drawn eps in [1/64, 1/2], gamma in [0, 1], activation, sizes, depth,
    directions, bias and weights in [-0.75, 0.75]."""
    H, I = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    kw = dict(
        num_layers=1 if single else draw(st.integers(1, 2)),
        bidirectional=False if single else draw(st.booleans()),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        nonlinearity=draw(st.sampled_from(["tanh", "relu", "sigmoid", "identity"])),
        eps=draw(st.sampled_from([1 / 64, 1 / 8, 1 / 4, 1 / 2])),
        gamma=draw(st.sampled_from([0.0, 0.01, 0.1, 1.0])),
    )
    model = gt.AntisymmetricRNN(I, H, **kw)
    elems = st.floats(-0.75, 0.75, allow_nan=False)
    model.params = {k: draw(hnp.arrays(np.float64, s, elements=elems)) for k, s in model.param_shapes().items()}
    return model


def _inputs(draw, model, T):
    LD, H = model.num_layers * model.num_directions, model.hidden_size
    B = draw(st.integers(1, 2))
    arr = lambda shape: draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.5, 1.5, allow_nan=False)))
    xs = (B, T, model.input_size) if model.batch_first else (T, B, model.input_size)
    os_ = ((B, T) if model.batch_first else (T, B)) + (model.num_directions * H,)
    return arr(xs), arr((LD, B, H)), arr(os_), arr((LD, B, H))


def _close(actual, expected, rtol, what, floor=0.0):
    scale = max(float(np.max(np.abs(expected))), floor)
    diff = float(np.max(np.abs(np.asarray(actual) - np.asarray(expected))))
    assert diff <= rtol * scale or diff == 0.0, f"{what}: error {diff:.3e} > {rtol:.0e} * {scale:.3e}"


@given(data=st.data())
def test_forward_and_bptt_equal_the_torch_twin_for_every_eps_and_gamma(data):
    """Forward equals the torch twin to 1e-12 and every gradient equals its autograd to 1e-10, for
    drawn eps, gamma (the twin carries them; from_torch restores them)."""
    model = data.draw(antisymmetric_models())
    x, h0, d_out, d_hn = _inputs(data.draw, model, data.draw(st.integers(1, 5)))
    module = gt.to_torch(model)
    back = gt.from_torch(module)
    assert (back.eps, back.gamma, back.nonlinearity) == (model.eps, model.gamma, model.nonlinearity)
    res = model.forward(x, h0)
    with torch.no_grad():
        out, hn = module(torch.from_numpy(x), torch.from_numpy(h0))
    _close(res.output, out.numpy(), FORWARD_RTOL, "output")
    _close(res.h_n, hn.numpy(), FORWARD_RTOL, "h_n")
    grads = model.backward(res, d_out, d_hn)
    _, _, t_grads, t_dx, t_dh0 = torch_run(module, x, h0, d_out, d_hn, None)
    w = float(np.sum(np.abs(d_out)) + np.sum(np.abs(d_hn)))
    for name, g in t_grads.items():
        _close(grads.params[name], g, BACKWARD_RTOL, name, w)
    _close(grads.x, t_dx, BACKWARD_RTOL, "x", w)
    _close(grads.h0, t_dh0, BACKWARD_RTOL, "h0", w)


@given(data=st.data())
@settings(max_examples=15)
def test_bptt_equals_complex_step_for_every_eps_and_gamma(data):
    """Every gradient entry equals Im L(theta + i h e_j) / h (tanh, sigmoid, identity are analytic)."""
    model = data.draw(antisymmetric_models(single=True))
    if model.nonlinearity == "relu":
        model = gt.AntisymmetricRNN(
            model.input_size, model.hidden_size, eps=model.eps, gamma=model.gamma, bias=model.bias, params=model.params
        )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    T, H = 4, model.hidden_size
    x, d_out = rng.uniform(-1, 1, (T, model.input_size)), rng.uniform(-1, 1, (T, H))
    grads = model.backward(model.forward(x), d_out)
    for wrt, g in {**grads.params, "x": grads.x}.items():
        f, point = model_loss(model, x, wrt=wrt, d_output=d_out)
        _close(g, jacobian(f, point, method="complex"), COMPLEX_STEP_RTOL, wrt, float(np.sum(np.abs(d_out))))


@example(seed=0, T=3, eps=0.5, gamma=0.0)
@given(
    seed=st.integers(0, 2**32 - 1),
    T=st.integers(1, 6),
    eps=st.sampled_from([1 / 64, 1 / 4, 1.0]),
    gamma=st.sampled_from([0.0, 0.01, 1.0]),
)
def test_one_step_jacobian_is_identity_plus_eps_diag_tanh_prime_times_antisymmetric_minus_gamma(seed, T, eps, gamma):
    """dh_t/dh_{t-1} = I + eps diag(1 - tanh^2(a_t)) (W - W^T - gamma I) (proofs/antisymmetric.tex, step 2)."""
    model = gt.AntisymmetricRNN(2, 3, eps=eps, gamma=gamma, seed=seed % 1000)
    x = np.random.default_rng(seed).uniform(-2, 2, (T, 2))
    res = model.forward(x)
    p = model.params
    W = p["weight_hh_l0"]
    M = W - W.T - gamma * np.eye(3)
    h = np.vstack([np.zeros(3), res.output])
    for t, J in enumerate(model.jacobians(res)):
        a = x[t] @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"] + M @ h[t]
        expected = np.eye(3) + eps * (1 - np.tanh(a) ** 2)[:, None] * M
        assert np.max(np.abs(J - expected)) <= JACOBIAN_ATOL * max(1.0, float(np.max(np.abs(expected))))


def test_derivation_jacobian_with_tanh_substituted_equals_model_jacobians():
    """SymPy's Jacobian of the cell's own equations (generic phi, symbolic eps, gamma, H = 2), with
    phi = tanh and the model's eps, gamma substituted, equals model.jacobians at the model's states."""
    d = derive("antisymmetric")
    eps_s, gam_s, _ = d.result["symbols"]
    J_sym = d.result["jacobian"].replace(d.result["phi"], sp.tanh).doit().subs({eps_s: 0.25, gam_s: 0.125})
    syms = sorted(J_sym.free_symbols, key=lambda s: s.name)  # W0..W3, h0, h1, w0, w1
    fn = sp.lambdify(syms, J_sym, "numpy")
    model = gt.AntisymmetricRNN(2, 2, eps=0.25, gamma=0.125, seed=3)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 2))
    res = model.forward(x)
    p = model.params
    h = np.vstack([np.zeros(2), res.output])
    for t, J in enumerate(model.jacobians(res)):
        w = x[t] @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]
        values = dict(zip(["W0", "W1", "W2", "W3", "h0", "h1", "w0", "w1"], [*p["weight_hh_l0"].ravel(), *h[t], *w]))
        got = np.array(fn(*(values[s.name] for s in syms)), dtype=float)
        assert np.max(np.abs(got - J)) <= JACOBIAN_ATOL


@given(
    eps=st.sampled_from([1 / 8, 1 / 2, 1.0]), mu=st.floats(0.0, 4.0), gamma=st.floats(0.0, 2.0), T=st.integers(1, 50)
)
@example(eps=0.125, mu=4e-16, gamma=0.0, T=1)  # growth 1 + 1.25e-33 is below float64 resolution
@example(eps=0.125, mu=2.854103118875394e-284, gamma=0.0, T=1)  # (eps mu)^2 underflows next to 1: gain 1.0
def test_linear_regime_gain_is_the_modulus_of_one_minus_eps_gamma_plus_i_eps_mu_to_the_T(eps, mu, gamma, T):
    """At the fixed point h = 0 (x = 0, no bias, tanh'(0) = 1) with W - W^T = [[0, mu], [-mu, 0]], the
    gradient of <u, h_T> has norm |1 - eps gamma + i eps mu|^T for every unit u (J is a multiple of a
    rotation), > 1 for gamma = 0 and mu > 0 (proofs/antisymmetric.tex, steps 4-7)."""
    W = np.array([[0.0, mu], [0.0, 0.0]])
    model = gt.AntisymmetricRNN(
        1, 2, eps=eps, gamma=gamma, bias=False, params={"weight_ih_l0": np.zeros((2, 1)), "weight_hh_l0": W}
    )
    res = model.forward(np.zeros((T, 1)))
    u = np.array([0.6, 0.8])
    g = model.backward(res, np.zeros((T, 2)), d_h_n=u[None]).h0[0]
    expected = ((1 - eps * gamma) ** 2 + (eps * mu) ** 2) ** (T / 2)
    # T products of a 2x2 rotation-scaling: ~2 T u relative (the closed form's pow adds ~u)
    rounding = 4 * (T + 1) * 2.3e-16 * expected
    assert abs(np.linalg.norm(g) - expected) <= rounding
    # growth > 1 for gamma = 0, mu > 0; float64 can show it only where it exceeds the rounding
    if gamma == 0.0 and mu > 0.0 and expected - 1.0 > rounding:
        assert np.linalg.norm(g) > 1.0


def test_gradient_flow_stays_under_its_one_plus_eps_norm_bound():
    """ln||dL/dh_k|| - ln||dL/dh_T|| <= (T - k) ln(1 + eps ||W - W^T - gamma I||_2) for tanh (0 <= tanh' <= 1)."""
    model = gt.AntisymmetricRNN(3, 8, eps=0.5, gamma=0.0, seed=4)
    x = np.random.default_rng(5).uniform(-1, 1, (60, 3))
    flow = gt.gradient_flow(model, x)
    W = model.params["weight_hh_l0"]
    rate = np.log1p(0.5 * np.linalg.norm(W - W.T, 2))
    T = x.shape[0]
    assert np.all(flow - flow[-1] <= rate * (T - np.arange(T + 1)) + 1e-12)


def test_bad_hyperparameters_are_rejected_with_the_argument_named():
    with pytest.raises(ValueError, match="eps must be a finite positive number, got 0"):
        gt.AntisymmetricRNN(2, 3, eps=0)
    with pytest.raises(ValueError, match="gamma must be a finite non-negative number, got -1"):
        gt.AntisymmetricRNN(2, 3, gamma=-1)
    with pytest.raises(TypeError, match="eps must be a real number, got str"):
        gt.AntisymmetricRNN(2, 3, eps="0.1")


def test_a_backward_that_forgets_the_transpose_is_caught_by_the_gradient_checker():
    """Test the tester: weight_grad returning G instead of G - G^T must fail check_gradients."""
    from gradtheory.cells.antisymmetric import AntisymmetricCell, AntisymmetricRecurrence

    class Wrong(AntisymmetricRecurrence):
        def weight_grad(self, d_gh, h):
            return d_gh.T @ h  # forgot that W enters as W - W^T

    cell = AntisymmetricCell()
    cell.recurrence = Wrong(cell.gamma)
    model = gt.RecurrentModel(2, 3, cell=cell, seed=1)
    with pytest.raises(gt.GradientCheckError, match="weight_hh_l0"):
        gt.assert_gradients_match(model, np.random.default_rng(0).uniform(-1, 1, (4, 2)))
