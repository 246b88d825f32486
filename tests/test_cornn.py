"""coRNN (Rusch & Mishra 2021): what is specific to it. The generic properties at the default dt,
gamma, epsilon (torch twin parity, complex step, 50-digit forward mode, Jacobians vs torch.func,
SymPy sums of Jacobian products, stacked and bidirectional) come from tests/test_cells.py by
registration; here the hyperparameters are drawn too, and the step is compared with the authors'
reference implementation.

Derivation: ``proofs/cornn.tex`` (written by ``gradtheory/cells/cornn.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from helpers import torch_run
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtheory as gt
from gradtheory.oracles import jacobian, model_loss
from gradtheory.symbolic import derive

# Forward: T * L steps of O(n) flops each rounding ~n u relative to the state; that rounding is
# carried forward by the same Jacobians that carry the state, so relative to max|output| it stays
# ~T L n u ~ 4 * 2 * 12 * 1.1e-16 ~ 1e-14 barring cancellation; 1e-12 leaves a factor 100.
FORWARD_RTOL = 1e-12
# BPTT: sums of T * L products of up to T Jacobians with cancellation ~100x: 1e-10 as the project states.
BACKWARD_RTOL = 1e-10
# Complex step: exact to ~u per evaluation, both sides carry the forward's ~T L n u: 1e-12.
COMPLEX_STEP_RTOL = 1e-12
# The reference implementation (float64 torch, one fused i2h matmul over cat(x, z, y)) against the
# model (two matmuls, x W_ih^T and (y, z) W_hh^T): the pre-activation sums the same I + 2H products
# in another order, ~(I + 2H) u relative to the sum of |terms| (<= ~10 here); propagated over T <= 6
# steps with dt <= 1/2: 1e-13 absolute.
REFERENCE_ATOL = 1e-13
# J from the SymPy formula (lambdified) against model.jacobians: each entry a handful of roundings
# (tanh', a product with W, the dt products, the +1): <= ~16 u relative to max(1, |J|).
JACOBIAN_ATOL = 1e-14

_HYPER = st.tuples(
    st.sampled_from([1 / 64, 0.042, 1 / 8, 1 / 2]),  # dt
    st.sampled_from([0.0, 0.4, 2.7]),  # gamma
    st.sampled_from([0.0, 1.0, 4.7]),  # epsilon
)


@st.composite
def cornn_models(draw, *, single=False):
    """CoRNN with drawn dt, gamma, epsilon, activation, sizes, depth, directions, bias and weights in [-0.75, 0.75]."""
    H, I = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    dt, gamma, epsilon = draw(_HYPER)
    model = gt.CoRNN(
        I,
        H,
        num_layers=1 if single else draw(st.integers(1, 2)),
        bidirectional=False if single else draw(st.booleans()),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        nonlinearity=draw(st.sampled_from(["tanh", "relu", "sigmoid", "identity"])),
        dt=dt,
        gamma=gamma,
        epsilon=epsilon,
    )
    elems = st.floats(-0.75, 0.75, allow_nan=False)
    model.params = {k: draw(hnp.arrays(np.float64, s, elements=elems)) for k, s in model.param_shapes().items()}
    return model


def _close(actual, expected, rtol, what, floor=0.0):
    scale = max(float(np.max(np.abs(expected))), floor)
    diff = float(np.max(np.abs(np.asarray(actual) - np.asarray(expected))))
    assert diff <= rtol * scale or diff == 0.0, f"{what}: error {diff:.3e} > {rtol:.0e} * {scale:.3e}"


@given(data=st.data())
def test_forward_and_bptt_equal_the_torch_twin_for_every_dt_gamma_epsilon(data):
    """Forward (y, z, h_n, c_n) equals the torch twin to 1e-12 and every gradient equals its autograd
    to 1e-10, for drawn hyperparameters (the twin carries them; from_torch restores them)."""
    model = data.draw(cornn_models())
    LD, H, B, T = model.num_layers * model.num_directions, model.hidden_size, data.draw(st.integers(1, 2)), 4
    arr = lambda shape: data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.5, 1.5, allow_nan=False)))
    x = arr((B, T, model.input_size) if model.batch_first else (T, B, model.input_size))
    h0 = (arr((LD, B, H)), arr((LD, B, H)))
    d_out = arr(((B, T) if model.batch_first else (T, B)) + (model.num_directions * H,))
    d_hn, d_cn = arr((LD, B, H)), arr((LD, B, H))
    module = gt.to_torch(model)
    back = gt.from_torch(module)
    assert (back.dt, back.gamma, back.epsilon, back.nonlinearity) == (
        model.dt,
        model.gamma,
        model.epsilon,
        model.nonlinearity,
    )
    res = model.forward(x, h0)
    with torch.no_grad():
        out, (hn, cn) = module(torch.from_numpy(x), tuple(torch.from_numpy(v) for v in h0))
    _close(res.output, out.numpy(), FORWARD_RTOL, "output")
    _close(res.h_n, hn.numpy(), FORWARD_RTOL, "h_n")
    _close(res.c_n, cn.numpy(), FORWARD_RTOL, "c_n")
    grads = model.backward(res, d_out, d_hn, d_cn)
    _, _, t_grads, t_dx, t_dh0 = torch_run(module, x, h0, d_out, d_hn, d_cn)
    w = float(sum(np.sum(np.abs(v)) for v in (d_out, d_hn, d_cn)))
    for name, g in t_grads.items():
        _close(grads.params[name], g, BACKWARD_RTOL, name, w)
    _close(grads.x, t_dx, BACKWARD_RTOL, "x", w)
    _close(grads.h0, t_dh0[0], BACKWARD_RTOL, "h0 (y0)", w)
    _close(grads.c0, t_dh0[1], BACKWARD_RTOL, "c0 (z0)", w)


@given(data=st.data())
@settings(max_examples=15)
def test_bptt_equals_complex_step_for_every_dt_gamma_epsilon(data):
    """Every gradient entry (weights, x, y0, z0) equals Im L(theta + i h e_j) / h (analytic activations)."""
    model = data.draw(cornn_models(single=True))
    if model.nonlinearity == "relu":
        model = gt.CoRNN(
            model.input_size,
            model.hidden_size,
            dt=model.dt,
            gamma=model.gamma,
            epsilon=model.epsilon,
            bias=model.bias,
            params=model.params,
        )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    T, H = 4, model.hidden_size
    x, d_out = rng.uniform(-1, 1, (T, model.input_size)), rng.uniform(-1, 1, (T, H))
    h0 = (rng.uniform(-1, 1, (1, H)), rng.uniform(-1, 1, (1, H)))
    grads = model.backward(model.forward(x, h0), d_out)
    targets = {**grads.params, "x": grads.x, "h0": grads.h0, "c0": grads.c0}
    for wrt, g in targets.items():
        f, point = model_loss(model, x, wrt=wrt, d_output=d_out, h0=h0)
        _close(g, jacobian(f, point, method="complex"), COMPLEX_STEP_RTOL, wrt, float(np.sum(np.abs(d_out))))


class _ReferenceCoRNNCell(torch.nn.Module):
    """The authors' cell as published (github.com/tk-rusch/coRNN, psMNIST/network.py), float64."""

    def __init__(self, n_inp, n_hid, dt, gamma, epsilon):
        super().__init__()
        self.dt, self.gamma, self.epsilon = dt, gamma, epsilon
        self.i2h = torch.nn.Linear(n_inp + n_hid + n_hid, n_hid, dtype=torch.float64)

    def forward(self, x, hy, hz):
        hz = hz + self.dt * (torch.tanh(self.i2h(torch.cat((x, hz, hy), 1))) - self.gamma * hy - self.epsilon * hz)
        hy = hy + self.dt * hz
        return hy, hz


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 6), hyper=_HYPER, H=st.integers(1, 4), I=st.integers(1, 3))
@settings(max_examples=25)
def test_the_step_is_the_reference_implementation_with_weight_ih_v_and_weight_hh_w_then_wz(seed, T, hyper, H, I):
    """The reference's i2h weight is [V | W_z | W] on cat(u, z, y) with one bias: the model with
    weight_ih = V, weight_hh = [W | W_z], bias_ih = b, bias_hh = 0 gives the same (y_n, z_n) for every n."""
    dt, gamma, epsilon = hyper
    ref = _ReferenceCoRNNCell(I, H, dt, gamma, epsilon)
    with torch.no_grad():
        rng = np.random.default_rng(seed)
        ref.i2h.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, (H, I + 2 * H))))
        ref.i2h.bias.copy_(torch.from_numpy(rng.uniform(-1, 1, H)))
    Wf, b = ref.i2h.weight.detach().numpy(), ref.i2h.bias.detach().numpy()
    V, Wz, W = Wf[:, :I], Wf[:, I : I + H], Wf[:, I + H :]
    model = gt.CoRNN(
        I,
        H,
        dt=dt,
        gamma=gamma,
        epsilon=epsilon,
        params={"weight_ih_l0": V, "weight_hh_l0": np.hstack([W, Wz]), "bias_ih_l0": b, "bias_hh_l0": np.zeros(H)},
    )
    x = rng.uniform(-2, 2, (T, 2, I))
    res = model.forward(x)
    hy = hz = torch.zeros(2, H, dtype=torch.float64)
    with torch.no_grad():
        for t in range(T):
            hy, hz = ref(torch.from_numpy(x[t]), hy, hz)
            scale = max(1.0, float(torch.max(torch.abs(hz))))
            assert np.max(np.abs(res.traces[0].states[0][t + 1] - hy.numpy())) <= REFERENCE_ATOL * scale
            assert np.max(np.abs(res.traces[0].states[1][t + 1] - hz.numpy())) <= REFERENCE_ATOL * scale


def test_derivation_jacobian_with_tanh_substituted_equals_model_jacobians():
    """SymPy's Jacobian of the cell's own equations (generic phi, symbolic dt, gamma, eps, H = 2), with
    phi = tanh and the model's hyperparameters substituted, equals model.jacobians at the model's states."""
    d = derive("cornn")
    dt_s, gam_s, eps_s = d.result["symbols"]
    J_sym = d.result["jacobian"].replace(d.result["phi"], sp.tanh).doit().subs({dt_s: 0.25, gam_s: 0.5, eps_s: 1.5})
    syms = sorted(J_sym.free_symbols, key=lambda s: s.name)
    fn = sp.lambdify(syms, J_sym, "numpy")
    model = gt.CoRNN(2, 2, dt=0.25, gamma=0.5, epsilon=1.5, seed=3)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 2))
    res = model.forward(x)
    p = model.params
    y, z = res.traces[0].states[0][:, 0], res.traces[0].states[1][:, 0]
    W_hh = p["weight_hh_l0"]
    for t, J in enumerate(model.jacobians(res)):
        w = x[t] @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]
        names = [f"W{k}" for k in range(4)] + [f"Wz{k}" for k in range(4)] + ["w0", "w1", "y0", "y1", "z0", "z1"]
        values = dict(zip(names, [*W_hh[:, :2].ravel(), *W_hh[:, 2:].ravel(), *w, *y[t], *z[t]]))
        got = np.array(fn(*(values[s.name] for s in syms)), dtype=float)
        assert np.max(np.abs(got - J)) <= JACOBIAN_ATOL * max(1.0, float(np.max(np.abs(J))))


def test_weight_hh_is_w_then_wz_on_the_joint_state():
    """weight_hh_l0 has shape (H, 2H): its first H columns act on y, the last H on z (torch names)."""
    model = gt.CoRNN(3, 4)
    assert model.param_shapes() == {
        "weight_ih_l0": (4, 3),
        "weight_hh_l0": (4, 8),
        "bias_ih_l0": (4,),
        "bias_hh_l0": (4,),
    }
    assert model.state_size == 8 and model.num_states == 2


def test_bad_hyperparameters_are_rejected_with_the_argument_named():
    with pytest.raises(ValueError, match="dt must be > 0, got 0"):
        gt.CoRNN(2, 3, dt=0)
    with pytest.raises(ValueError, match="gamma must be >= 0.0, got -1"):
        gt.CoRNN(2, 3, gamma=-1)
    with pytest.raises(ValueError, match="epsilon must be finite, got inf"):
        gt.CoRNN(2, 3, epsilon=float("inf"))
    with pytest.raises(TypeError, match="dt must be a real number, got str"):
        gt.CoRNN(2, 3, dt="0.1")


def test_a_backward_that_forgets_the_position_path_is_caught_by_the_gradient_checker():
    """Test the tester: dropping dz_n += dt dy_n (y_n = y_{n-1} + dt z_n) must fail check_gradients."""
    from gradtheory.cells.cornn import CoRNNCell

    class Wrong(CoRNNCell):
        def step_backward(self, d_state, cache):
            a, s = cache
            dy, dz = d_state
            da = (self.dt * dz) * self.activation.grad(a, s)
            return da, da, (dy - (self.dt * self.gamma) * dz, (1.0 - self.dt * self.epsilon) * dz)

    model = gt.RecurrentModel(2, 3, cell=Wrong("tanh", dt=0.25, gamma=1.0, epsilon=1.0), seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 2))
    with pytest.raises(gt.GradientCheckError, match="weight_ih_l0|weight_hh_l0|x"):
        gt.assert_gradients_match(model, x)


def test_the_joint_recurrence_splits_its_gradient_between_y_and_z():
    """The time loop's pull-back of d_gh through [W | W_z] reaches y_{n-1} through W^T and z_{n-1}
    through W_z^T: with W = 0 no recurrent gradient reaches y0 except the direct path, and vice versa."""
    H = 2
    base = gt.CoRNN(1, H, dt=0.5, gamma=0.0, epsilon=0.0, nonlinearity="identity", bias=False, seed=0)
    x = np.zeros((1, 1))
    for cols, reaches in ((slice(0, H), "y"), (slice(H, 2 * H), "z")):
        W_hh = np.zeros((H, 2 * H))
        W_hh[:, cols] = np.eye(H)
        model = gt.CoRNN(
            1,
            H,
            dt=0.5,
            gamma=0.0,
            epsilon=0.0,
            nonlinearity="identity",
            bias=False,
            params={**base.params, "weight_hh_l0": W_hh},
        )
        g = model.backward(model.forward(x), np.zeros((1, H)), d_c_n=np.ones((1, H)))
        # z_1 = z_0 + dt (W y_0 + W_z z_0): dL/dy_0 = dt [W = I], dL/dz_0 = 1 + dt [W_z = I]
        assert np.array_equal(g.h0[0], np.full(H, 0.5 if reaches == "y" else 0.0))
        assert np.array_equal(g.c0[0], np.full(H, 1.0 if reaches == "y" else 1.5))


def test_a_recurrence_reading_more_state_components_than_the_cell_has_is_rejected():
    """Recurrence.reads_states (the joint-state hook coRNN uses) must lie in [1, n_states]."""
    from gradtheory.cells.cornn import CoRNNCell, CoupledRecurrence

    class Three(CoupledRecurrence):
        reads_states = 3

    cell = CoRNNCell()
    cell.recurrence = Three()
    with pytest.raises(ValueError, match=r"cell.recurrence.reads_states must be an int in \[1, n_states=2\], got 3"):
        gt.RecurrentModel(2, 3, cell=cell)
    one = gt.cells.get("rnn").cell("tanh")
    one.recurrence = CoupledRecurrence()
    with pytest.raises(ValueError, match=r"in \[1, n_states=1\], got 2"):
        gt.RecurrentModel(2, 3, cell=one)
