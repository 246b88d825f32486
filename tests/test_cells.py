"""Every registered cell passes the same properties, by being registered (parametrized over
``gradtheory.cells.REGISTRY``): torch parity of forward and BPTT, complex step, exact arithmetic,
one-step Jacobians against torch.func, the SymPy-derived sum of products of Jacobians, and the
long-horizon flow against the product of Jacobians. A user's numpy cell plugs in through the same
``Cell`` protocol.

A cell with its own layer layout (LRU, selective SSM: readout, input-dependent transitions) is
covered by the same properties; the two that differentiate the cell's independent scalar equations
ask the cell whether it has them (``cell.equations``) and otherwise assert that the oracle refuses.

Derivations: ``proofs/rnn_bptt.tex`` (the recursion), and each cell's own section
(``proofs/lstm.tex``, ``gru.tex``, ``residual_highway.tex``, ``indrnn.tex``, ``lru.tex``,
``selective_ssm.tex``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from helpers import HalfTanhCell, robust_norm, torch_run
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtheory as gt
from gradtheory import strategies as gst
from gradtheory.cells import DENSE, REGISTRY
from gradtheory.oracles import exact_directional_derivative, jacobian, model_loss

# Forward parity with torch: every output is T * L steps of O(n) flops (n <= 4 * 4 units here),
# each step committing ~n u relative error that the (contracting, |W| <= 1/sqrt(H)) Jacobians do
# not amplify by more than a small factor: ~T L n u ~ 100 u ~ 2e-14, measured norm-wise
# (max|diff| / max|expected|). 1e-12 leaves a factor 50 for cancellation in the largest entry.
FORWARD_RTOL = 1e-12
# BPTT parity: each gradient sums T * L products of up to T one-step Jacobians; under cancellation
# max|expected| can be ~100x below the terms: ~T^2 L n u * 100 ~ 1e-11. 1e-10 as the project states.
BACKWARD_RTOL = 1e-10
# Complex step is exact to ~u per evaluation (no subtractive cancellation); both sides carry the
# forward's ~T L n u relative error of the terms: 1e-12 as for the forward.
COMPLEX_STEP_RTOL = 1e-12
# Exact arithmetic vs BPTT: |<g, v> - exact| <= (round-off of g, ~T^2 n u ||g||) * ||v||; relative
# to ||g|| ||v||: 1e-13 for T <= 4, n <= 12.
EXACT_RTOL = 1e-13
# One-step Jacobian vs torch.func: each entry sums <= G (gates) products of <= 4 factors with
# relative error u, plus the n-term recurrent product in the step: <= (4G + n) u max|terms|;
# norm-wise relative with a factor 10 for cancellation: 1e-13 -> use 1e-12.
JACOBIAN_RTOL = 1e-12

# Two evaluations of the same log-norm recursion in different operation orders: each step rounds
# a matrix-vector product and a renormalisation, ~(4n + 8) u = 24 u in the log for n = 4, so the
# two differ by <= T * 24 u; a factor 10 for the compensated log-sums' own rounding.
FLOW_PATHS_ATOL_PER_STEP = 10 * 24 * 2.3e-16

NAMES = tuple(REGISTRY)
_ELEM = gst.reals(1.5)


def _torch_nonlinearities(name):
    # torch.nn.RNN has tanh and relu only; the other cells' twins run any activation
    return ("tanh", "relu") if REGISTRY[name].torch_mode else ("tanh", "relu", "sigmoid", "identity")


@st.composite
def cases(draw, name, *, single=False, nonlinearities=None, batched=True, max_size=3):
    """A model of cell ``name`` with drawn structure and weights (``single``: one layer, one
    direction), x, h0 and cotangents."""
    nl = nonlinearities or _torch_nonlinearities(name)
    model = draw(
        gst.models(
            families=(name,),
            nonlinearities=nl,
            max_layers=1 if single else 2,
            bidirectional=False if single else None,
            batch_first=False if not batched else None,
            hidden_size=st.integers(1, max_size),
            input_size=st.integers(1, max_size),
        )
    )
    T = draw(st.integers(1, 4))
    LD, H, O = model.num_layers * model.num_directions, model.hidden_size, model.output_size
    arr = lambda shape: draw(hnp.arrays(np.float64, shape, elements=_ELEM))
    if batched:
        B = draw(st.integers(1, 2))
        xs = (B, T, model.input_size) if model.batch_first else (T, B, model.input_size)
        ss, os_ = (LD, B, H), ((B, T) if model.batch_first else (T, B)) + (model.num_directions * O,)
    else:
        xs, ss, os_ = (T, model.input_size), (LD, H), (T, model.num_directions * O)
    two = model.num_states == 2
    h0 = (arr(ss), arr(ss)) if two else arr(ss)
    return model, arr(xs), h0, arr(os_), arr(ss), (arr(ss) if two else None)


def _close(actual, expected, rtol, what, floor=0.0):
    """max|actual - expected| <= rtol * max(max|expected|, floor).

    ``floor``: the size of the terms the entries are sums of, when they cancel. Each gradient entry
    is a sum of cotangent entries times products of O(1) factors (|x|, |h| <= 1.5, activations
    bounded, |W| <= 1/sqrt(H), T <= 4), so ``sum |cotangents|`` bounds the terms up to a modest
    factor; an exactly cancelling sum (d_out = -d_h_n on h_T) is then compared at the terms' scale.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    if not expected.size:
        return
    scale = max(float(np.max(np.abs(expected))), floor)
    diff = float(np.max(np.abs(actual - expected)))
    assert diff <= rtol * scale or diff == 0.0, f"{what}: error {diff:.3e} > {rtol:.0e} * {scale:.3e}"


def _weight(*cotangents):
    return float(sum(np.sum(np.abs(c)) for c in cotangents if c is not None))


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_forward_equals_torch_twin_for_every_registered_cell(name, data):
    """The numpy model and its torch twin (``to_torch``) give the same output, h_n (c_n) to 1e-12."""
    model, x, h0, *_ = data.draw(cases(name))
    module = gt.to_torch(model)
    assert type(gt.from_torch(module)) is type(model)
    res = model.forward(x, h0)
    with torch.no_grad():
        hx = tuple(torch.from_numpy(v) for v in h0) if isinstance(h0, tuple) else torch.from_numpy(h0)
        out, hn = module(torch.from_numpy(x), hx)
    _close(res.output, out.numpy(), FORWARD_RTOL, "output")
    hn = hn if isinstance(hn, tuple) else (hn,)
    _close(res.h_n, hn[0].numpy(), FORWARD_RTOL, "h_n")
    if model.num_states == 2:
        _close(res.c_n, hn[1].numpy(), FORWARD_RTOL, "c_n")


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_bptt_equals_torch_autograd_for_every_registered_cell(name, data):
    """Every parameter gradient, dL/dx, dL/dh0 (dL/dc0) equal torch autograd through the twin to 1e-10."""
    model, x, h0, d_out, d_hn, d_cn = data.draw(cases(name))
    grads = model.backward(model.forward(x, h0), d_out, d_hn, d_cn)
    _, _, t_grads, t_dx, t_dh0 = torch_run(gt.to_torch(model), x, h0, d_out, d_hn, d_cn)
    assert list(grads.params) == list(t_grads), "parameter names and order follow torch"
    w = _weight(d_out, d_hn, d_cn)
    for pname, g in t_grads.items():
        _close(grads.params[pname], g, BACKWARD_RTOL, pname, w)
    _close(grads.x, t_dx, BACKWARD_RTOL, "x", w)
    t_dh0 = t_dh0 if isinstance(t_dh0, tuple) else (t_dh0,)
    _close(grads.h0, t_dh0[0], BACKWARD_RTOL, "h0", w)
    if model.num_states == 2:
        _close(grads.c0, t_dh0[1], BACKWARD_RTOL, "c0", w)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
@settings(max_examples=10)
def test_bptt_equals_complex_step_for_every_registered_cell(name, data):
    """Analytic activations: every gradient entry equals Im L(theta + i h e_j) / h (h = 1e-20)."""
    nl = ("tanh", "sigmoid", "identity")
    model, x, h0, d_out, d_hn, d_cn = data.draw(cases(name, nonlinearities=nl, batched=False))
    grads = model.backward(model.forward(x, h0), d_out, d_hn, d_cn)
    targets = {**grads.params, "x": grads.x, "h0": grads.h0}
    if model.num_states == 2:
        targets["c0"] = grads.c0
    for wrt, g in targets.items():
        f, point = model_loss(model, x, wrt=wrt, d_output=d_out, h0=h0, d_h_n=d_hn, d_c_n=d_cn)
        _close(g, jacobian(f, point, method="complex"), COMPLEX_STEP_RTOL, wrt, _weight(d_out, d_hn, d_cn))


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10)
def test_bptt_equals_exact_arithmetic_for_every_registered_cell(name, data, seed):
    """The directional derivative of L computed from the cell's independent scalar equations in exact
    rationals (rational cells) or 50-digit forward mode equals <BPTT gradient, direction> to 1e-13."""
    model, x, h0, d_out, d_hn, d_cn = data.draw(
        cases(name, single=True, batched=False, nonlinearities=("tanh", "relu", "sigmoid", "identity"))
    )
    model = model.unparametrized()  # W_hh = f(A) formed once; f's own VJP: complex step and torch above
    h0 = tuple(v[0] for v in h0) if isinstance(h0, tuple) else h0[0]
    if getattr(model.cell, "equations", None) is None:  # declared: no independent scalar form
        # (the LRU's and the selective SSM's layers have none: exact oracles of their own in their tests)
        with pytest.raises(TypeError, match="independent scalar form"):
            exact_directional_derivative(model, x, {"x": x}, d_output=d_out, h0=h0)
        return
    d_hn = d_hn[0]
    d_cn = None if d_cn is None else d_cn[0]
    grads = model.backward(
        model.forward(x, (h0[0][None], h0[1][None]) if isinstance(h0, tuple) else h0[None]),
        d_out,
        d_hn[None],
        None if d_cn is None else d_cn[None],
    )
    rng = np.random.default_rng(seed)
    direction = {k: rng.normal(size=v.shape) for k, v in model.params.items()}
    direction["x"] = rng.normal(size=x.shape)
    direction["h0"] = rng.normal(size=d_hn.shape)
    _, dL = exact_directional_derivative(model, x, direction, d_output=d_out, h0=h0, d_h_n=d_hn, d_c_n=d_cn)
    if getattr(model.cell, "rational", False):
        from fractions import Fraction

        assert isinstance(dL, Fraction), "a rational cell is evaluated in exact rationals"
    pairs = [(grads.params[k], direction[k]) for k in model.params]
    pairs += [(grads.x, direction["x"]), (grads.h0[0], direction["h0"])]
    bptt = sum(float(np.sum(g * v)) for g, v in pairs)
    scale = robust_norm(*(g for g, _ in pairs)) * robust_norm(*(v for _, v in pairs))
    assert abs(float(dL) - bptt) <= EXACT_RTOL * scale, (float(dL), bptt, scale)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
@settings(max_examples=10)
def test_one_step_jacobians_equal_torch_func_jacrev_for_every_registered_cell(name, data):
    """model.jacobians(result)[t] = d s_t / d s_{t-1} equals torch.func.jacrev of the twin's one step."""
    model, x, h0, *_ = data.draw(cases(name, single=True, batched=False))
    res = model.forward(x, h0)
    J = model.jacobians(res)
    module = gt.to_torch(model)
    H, S = model.hidden_size, model.state_size
    states = [np.concatenate([tr[t] for tr in res.traces[0].states], axis=-1)[0] for t in range(x.shape[0] + 1)]

    def one_step(s, t):
        parts = tuple(s[k * H : (k + 1) * H][None] for k in range(model.num_states))
        _, hn = module(torch.from_numpy(x[t : t + 1]), parts if len(parts) > 1 else parts[0])
        return torch.cat([v[0] for v in hn]) if isinstance(hn, tuple) else hn[0]

    for t in range(x.shape[0]):
        Jt = torch.func.jacrev(lambda s, t=t: one_step(s, t))(torch.from_numpy(states[t]))
        assert Jt.shape == (S, S)
        _close(J[t], Jt.detach().numpy(), JACOBIAN_RTOL, f"J[{t}]")


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
@settings(max_examples=5)
def test_bptt_equals_sympy_derived_sum_of_jacobian_products_for_every_registered_cell(name, data):
    """The gradient as the derived sum over t, k of g_t^T prod J_j d+s_k/dtheta, with SymPy's
    Jacobians of the cell's own equations evaluated at 40 digits, equals BPTT to 1e-13 (proofs/rnn_bptt.tex)."""
    from gradtheory.symbolic._cells import model_gradient_by_formula

    model, x, h0, d_out, d_hn, d_cn = data.draw(
        cases(name, single=True, batched=False, max_size=2, nonlinearities=("tanh", "identity"))
    )
    model = model.unparametrized()  # W_hh = f(A) formed once; f's own VJP: complex step and torch above
    h0v = tuple(v[0] for v in h0) if isinstance(h0, tuple) else h0[0]
    if getattr(model.cell, "equations", None) is None:  # declared: no scalar equations to differentiate
        with pytest.raises(NotImplementedError, match="independent scalar form"):
            model_gradient_by_formula(model, x, h0v, d_output=d_out)
        return
    grads = model.backward(model.forward(x, h0), d_out, d_hn, d_cn)
    exact = model_gradient_by_formula(
        model, x, h0v, d_output=d_out, d_h_n=d_hn[0], d_c_n=None if d_cn is None else d_cn[0]
    )
    for k in model.params:
        got, want = grads.params[k], exact[k].astype(float)
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))  # initial: an empty weight_hh (minGRU)
        assert float(np.max(np.abs(got - want), initial=0.0)) <= EXACT_RTOL * scale * 10, k


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
@settings(max_examples=10)
def test_gradient_flow_is_log_norm_of_transposed_jacobian_products_for_every_registered_cell(name, data):
    """flow[k] = ln||r^T J_T ... J_{k+1}|| with J_t from model.jacobians (proofs/rnn_bptt.tex)."""
    model, x, *_ = data.draw(cases(name, single=True, batched=False))
    flow = gt.gradient_flow(model, x)
    J = model.jacobians(model.forward(x))
    T = x.shape[0]
    u = np.zeros(model.state_size)
    u[0] = 1.0
    expected = [0.0]
    for t in range(T - 1, -1, -1):
        u = u @ J[t]
        expected.append(np.log(np.linalg.norm(u)) if np.any(u) else -np.inf)
    expected = np.array(expected[::-1])
    finite = np.isfinite(expected)
    assert np.array_equal(finite, np.isfinite(flow))
    # each entry: T steps of relative error ~ n u in the vector, so ~T n u absolute in the log
    assert np.max(np.abs(flow[finite] - expected[finite]), initial=0.0) <= 1e-12


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data(), k=st.integers(1, 3))
@settings(max_examples=10)
def test_truncated_bptt_is_full_bptt_of_the_last_k_steps_from_the_stored_state_for_every_registered_cell(name, data, k):
    """backward(truncate=k) equals the full backward of a forward over the last k steps started from the
    state the first forward stored at T - k (the definition of truncated BPTT): no gradient reaches x
    before the window or the initial state; for cells with their own layout (readout, per-step inputs)
    the readout's and the projection's gradients are windowed too."""
    model, x, h0, d_out, d_hn, d_cn = data.draw(cases(name, single=True, batched=False))
    res = model.forward(x, h0)
    T = x.shape[0]
    first = max(0, T - k)
    trunc = model.backward(res, d_out, d_hn, d_cn, truncate=k)
    start = tuple(s[first] for s in res.traces[0].states)  # (1, H): one layer, unbatched
    window = model.forward(x[first:], start if len(start) > 1 else start[0])
    full = model.backward(window, d_out[first:], d_hn, d_cn)
    w = _weight(d_out, d_hn, d_cn)
    for pname in model.params:
        _close(trunc.params[pname], full.params[pname], BACKWARD_RTOL, pname, w)
    _close(trunc.x[first:], full.x, BACKWARD_RTOL, "x", w)
    assert not np.any(trunc.x[:first]) and (first == 0 or not np.any(trunc.h0))


# -- a user's numpy cell: plugged in through the Cell protocol, not registered ------------------
class ScaledTanhCell(HalfTanhCell):
    """h_t = tanh(a_t) / 2 + h_{t-1} / 2, with the optional attributes a registered cell carries."""

    name = "scaled_tanh"
    gate_names = ("h",)
    activation = None
    rational = False


def test_user_numpy_cell_gets_forward_backward_jacobians_and_flow():
    """A cell passed to RecurrentModel(cell=...) gets BPTT (checked by complex step and by the exact
    oracle on its own equations), stacked/bidirectional composition, jacobians and gradient_flow."""
    model = gt.RecurrentModel(2, 3, num_layers=2, bidirectional=True, cell=ScaledTanhCell(), seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2))
    d_out = np.random.default_rng(1).uniform(-1, 1, (5, 6))
    grads = model.backward(model.forward(x), d_out)
    for wrt in ("weight_hh_l0", "weight_ih_l1_reverse", "x"):
        f, point = model_loss(model, x, wrt=wrt, d_output=d_out)
        g = grads.x if wrt == "x" else grads.params[wrt]
        _close(g, jacobian(f, point, method="complex"), COMPLEX_STEP_RTOL, wrt, _weight(d_out))
    one = gt.RecurrentModel(2, 3, cell=ScaledTanhCell(), seed=1)
    J = one.jacobians(one.forward(x))
    assert J.shape == (5, 3, 3)
    flow = gt.gradient_flow(one, x)
    u = np.eye(3)[0]
    for t in range(4, -1, -1):
        u = u @ J[t]
    assert abs(flow[0] - np.log(np.linalg.norm(u))) <= 1e-12
    assert np.isfinite(gt.lyapunov_exponent(one, x))
    assert gt.lyapunov_spectrum(one, x).shape == (3,)
    d_out1 = d_out[:, :3]
    g1 = one.backward(one.forward(x), d_out1)
    v = {"weight_hh_l0": np.ones((3, 3))}
    _, dL = exact_directional_derivative(one, x, v, d_output=d_out1)
    assert (
        abs(float(dL) - float(np.sum(g1.params["weight_hh_l0"])))
        <= EXACT_RTOL * robust_norm(g1.params["weight_hh_l0"]) * 3
    )


class ReadoutStateCell:
    """(h_t, m_t) = (tanh(a_t), sigmoid(b_t) h_t), a user cell whose second state component is a
    gated read-out: m_{t-1} reaches nothing, so its backward has no direct path for m (None)."""

    name = "readout_state"
    gates = 2
    gate_names = ("a", "b")
    n_states = 2
    additive = True
    recurrence = DENSE
    activation = None
    rational = False

    def step(self, gi, gh, state):
        H = state[0].shape[-1]
        z = gi + gh
        h = np.tanh(z[..., :H])
        s = 1.0 / (1.0 + np.exp(-z[..., H:]))
        return (h, s * h), (h, s)

    def step_backward(self, d_state, cache):
        h, s = cache
        dh, dm = d_state
        dz = np.concatenate([(dh + dm * s) * (1.0 - h * h), dm * h * s * (1.0 - s)], axis=-1)
        return dz, dz, (None, None)

    def step_jacobian(self, cache, W_hh):
        h, s = cache
        H = h.shape[-1]
        dh_dh = (1.0 - h * h)[:, :, None] * W_hh[:H]
        dm_dh = (s * h * (1.0 - s))[:, :, None] * W_hh[H:] + s[:, :, None] * dh_dh
        zero = np.zeros_like(dh_dh)
        return np.concatenate([np.concatenate([dh_dh, zero], 2), np.concatenate([dm_dh, zero], 2)], 1)


def test_a_state_component_without_a_direct_path_gets_a_zero_gradient_and_the_rest_complex_step():
    """For a user cell whose second state m is never read (step_backward returns None for it), BPTT
    gives dL/dm_0 = 0 exactly (an array of m_0's shape and dtype), the per-step dL/dm_t equal to the
    cotangent reaching m_t, and parameter, x and h0 gradients equal to the complex-step oracle with a
    cotangent on every output (out, h_n, m_n)."""
    model = gt.RecurrentModel(2, 3, cell=ReadoutStateCell(), seed=2)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (4, 2))
    h0 = (rng.uniform(-1, 1, (1, 3)), rng.uniform(-1, 1, (1, 3)))
    d_out, d_hn, d_mn = rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (1, 3)), rng.uniform(-1, 1, (1, 3))
    res = model.forward(x, h0)
    g = model.backward(res, d_out, d_hn, d_mn)
    assert g.c0.shape == (1, 3) and g.c0.dtype == np.float64 and not np.any(g.c0)
    # dc: (layers, T, H), dL/dm_t at fixed h; m_T gets its cotangent, earlier m_t reach nothing
    np.testing.assert_array_equal(g.dc[0, -1], d_mn[0])
    assert not np.any(g.dc[0, :-1])
    w = _weight(d_out, d_hn, d_mn)
    for wrt in ("weight_hh_l0", "weight_ih_l0", "bias_hh_l0", "x", "h0", "c0"):
        f, point = model_loss(model, x, wrt=wrt, d_output=d_out, h0=h0, d_h_n=d_hn, d_c_n=d_mn)
        got = {"x": g.x, "h0": g.h0, "c0": g.c0}.get(wrt, g.params.get(wrt))
        _close(got, jacobian(f, point, method="complex"), COMPLEX_STEP_RTOL, wrt, w)


def test_a_cell_with_a_wrong_backward_is_caught_by_the_gradient_checker():
    """Test the tester: a user cell whose backward drops the direct path fails check_gradients."""

    class Wrong(ScaledTanhCell):
        def step_backward(self, d_state, cache):
            da, _, _ = super().step_backward(d_state, cache)
            return da, da, (None,)  # forgot d h_t / d h_{t-1} = 1/2 on the direct path

    model = gt.RecurrentModel(2, 3, cell=Wrong(), seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 2))
    with pytest.raises(gt.GradientCheckError, match="weight_hh_l0|x"):
        gt.assert_gradients_match(model, x)


@given(data=st.data())
@settings(max_examples=5)
def test_a_registered_user_cell_gets_a_model_class_strategies_and_the_symbolic_step(data):
    """Registering a CellSpec is all it takes: gst.models draws it, SymPy differentiates its own
    equations (the derived Jacobian equals model.jacobians), the exact oracle runs on it."""
    from gradtheory.cells import CellSpec, register
    from gradtheory.symbolic._cells import cell_step

    class LeakyRNN(gt.RecurrentModel):
        cell_class = ScaledTanhCell

    spec = register(CellSpec("scaled_tanh", ScaledTanhCell, LeakyRNN))
    try:
        model = data.draw(gst.models(families=("scaled_tanh",), max_layers=1, bidirectional=False))
        assert type(model) is LeakyRNN
        x = np.random.default_rng(2).uniform(-1, 1, (3, model.input_size))
        J = model.jacobians(model.forward(x))
        step = cell_step("scaled_tanh", model.hidden_size, model.input_size)
        p = model.params
        zeros = np.zeros(model.hidden_size)
        b_ih, b_hh = (p["bias_ih_l0"], p["bias_hh_l0"]) if model.bias else (zeros, zeros)
        h = np.vstack([zeros, model.forward(x).output])
        for t in range(3):
            _, J_sym, _, _ = step["fn"](
                list(p["weight_ih_l0"].ravel()),
                list(p["weight_hh_l0"].ravel()),
                list(b_ih),
                list(b_hh),
                list(x[t]),
                list(h[t]),
            )
            _close(J[t], np.array(J_sym, dtype=float), JACOBIAN_RTOL, f"J[{t}]")
    finally:
        del gt.cells.REGISTRY[spec.name]


def test_a_cell_with_its_own_layout_must_bring_its_projection_and_a_readout_with_its_backward():
    """check_cell: ``layout`` without ``project``/``project_backward``, or a readout without its
    hand-written backward, is rejected before any forward runs."""
    from gradtheory.cells.lru import LRUCell

    no_projection = type("NoProjection", (ScaledTanhCell,), {"layout": LRUCell.layout})()
    with pytest.raises(TypeError, match=r"defines layout, so it must also define \['project', 'project_backward'\]"):
        gt.RecurrentModel(2, 3, cell=no_projection)
    no_readout_backward = type("NoReadoutBackward", (LRUCell,), {"readout_backward": None})()
    with pytest.raises(TypeError, match=r"must also define \['readout_backward'\]"):
        gt.RecurrentModel(2, 3, cell=no_readout_backward)


def test_models_reject_an_object_that_is_not_a_cell():
    with pytest.raises(TypeError, match=r"cell must implement gradtheory.cells.Cell, got int"):
        gt.RecurrentModel(2, 3, cell=3)
    with pytest.raises(TypeError, match="cell must be given"):
        gt.RecurrentModel(2, 3)
    three = type("ThreeStates", (ScaledTanhCell,), {"n_states": 3})()
    with pytest.raises(NotImplementedError, match="n_states=3"):
        gt.RecurrentModel(2, 3, cell=three)


@given(
    seed=st.integers(0, 2**32 - 1), T=st.integers(1, 60), nl=st.sampled_from(["tanh", "sigmoid", "relu", "identity"])
)
@settings(max_examples=10)
def test_elman_fast_kernel_agrees_with_the_generic_path_on_the_same_cell(seed, T, nl):
    """gt.RNN runs its registered fast kernel (CellSpec.fast_kernel); the same cell in a plain
    RecurrentModel runs the generic path on the time loop's steps: the log-norms agree to ~T u
    (each step rounds the unit vector and adds one log), and so do the Lyapunov estimates."""
    rng = np.random.default_rng(seed)
    rnn = gt.RNN(2, 4, nonlinearity=nl, seed=seed % 997)
    generic = gt.RecurrentModel(2, 4, cell=gt.cells.get("rnn").cell(nl), params=rnn.params)
    x = rng.uniform(-1, 1, (T, 2))
    fast, slow = gt.gradient_flow(rnn, x), gt.gradient_flow(generic, x)
    finite = np.isfinite(slow)
    assert np.array_equal(finite, np.isfinite(fast))
    assert np.max(np.abs(fast[finite] - slow[finite]), initial=0.0) <= (T + 1) * FLOW_PATHS_ATOL_PER_STEP
    lam_fast, lam_slow = gt.lyapunov_exponent(rnn, x), gt.lyapunov_exponent(generic, x)
    assert lam_fast == lam_slow or abs(lam_fast - lam_slow) <= FLOW_PATHS_ATOL_PER_STEP  # (-inf: both annihilated)


class _MarkerKernel:
    """A kernel object named "module:attribute" by a CellSpec: flow must call it, not the generic path."""

    calls: ClassVar[list] = []

    @staticmethod
    def gradient_flow(model, x, states0, readout):
        _MarkerKernel.calls.append(model)
        return np.full(x.shape[0] + 1, 7.0)


def test_gradient_flow_dispatches_to_the_fast_kernel_a_registry_entry_names():
    from gradtheory.cells import CellSpec, register

    class Leaky(gt.RecurrentModel):
        cell_class = ScaledTanhCell

    spec = register(CellSpec("scaled_tanh_fast", ScaledTanhCell, Leaky, fast_kernel=f"{__name__}:_MarkerKernel"))
    _MarkerKernel.calls.clear()  # the record is per run: a repeated run (pytest-repeat, mutmut) starts empty
    try:
        model = Leaky(2, 3)
        assert np.all(gt.gradient_flow(model, np.zeros((4, 2))) == 7.0) and _MarkerKernel.calls == [model]
        plain = gt.RecurrentModel(2, 3, cell=ScaledTanhCell())  # not the registered model class: generic path
        assert np.all(gt.gradient_flow(plain, np.zeros((4, 2))) != 7.0)
    finally:
        del gt.cells.REGISTRY[spec.name]
