"""Selective diagonal SSM (the S6 recurrence of Mamba, Gu & Dao 2023): the hand-written BPTT against
the torch twin's autograd, the exact diagonal one-step Jacobian exp(Delta_t A), gradient flow as the
product of those factors, and a wrong backward caught by the checker.

Derivation: ``proofs/selective_ssm.tex``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory.check import check_gradients

# Forward: each output is a sum over N <= 4 and <= T = 12 steps of products exp(Delta A) h + Delta B x,
# with softplus/exp/matrix products over D <= 4 each a few roundings; twin and model round
# independently: ~T * 20 u relative to the output scale ~ 5e-14; the 1e-12 with margin.
FORWARD_RTOL = 1e-12
# Backward: the same chain backward plus reductions over T * B <= 36 terms: ~2e-13; the 1e-10.
BACKWARD_RTOL = 1e-10


def _scale(a) -> float:
    return max(1.0, float(np.max(np.abs(a))))


@st.composite
def ssm_cases(draw):
    """A selective SSM with Mamba's initialisation or random A_log (A in [-e^2, -e^-2]) and a bias that
    puts Delta anywhere from 1e-3 (state persists) to ~10 (state reset); inputs, state and cotangents."""
    D, N = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    T, B = draw(st.integers(1, 12)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    model = gt.SelectiveSSM(D, N, seed=seed)
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        p = dict(model.params)
        p["A_log"] = rng.uniform(-2, 2, (D, N))
        p["b_delta"] = rng.uniform(-7, 10, D)
        model.params = p
    x = rng.standard_normal((T, B, D)) * draw(st.sampled_from([0.1, 1.0, 3.0]))
    h0 = rng.standard_normal((B, D, N))
    return model, x, h0, rng.standard_normal((T, B, D)), rng.standard_normal((B, D, N))


def _torch_grads(model, x, h0, dy, dT):
    twin = gt.to_torch(model)
    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    y, hT = twin(xt, h0t)
    ((y * torch.tensor(dy)).sum() + (hT * torch.tensor(dT)).sum()).backward()
    return twin, y.detach().numpy(), hT.detach().numpy(), xt.grad.numpy(), h0t.grad.numpy()


@given(case=ssm_cases())
def test_forward_equals_the_torch_twin_to_1e_12(case):
    """y_t = C_t h_t and h_T agree with the torch twin to 1e-12 relative (proofs/selective_ssm.tex)."""
    model, x, h0, dy, dT = case
    _, y, hT, _, _ = _torch_grads(model, x, h0, dy, dT)
    r = model.forward(x, h0)
    assert np.max(np.abs(r.output - y)) <= FORWARD_RTOL * _scale(y)
    assert np.max(np.abs(r.h_n - hT)) <= FORWARD_RTOL * _scale(hT)


@given(case=ssm_cases())
def test_hand_written_bptt_equals_torch_autograd_to_1e_10(case):
    """Every parameter, input and initial-state gradient equals torch autograd's to 1e-10 relative."""
    model, x, h0, dy, dT = case
    twin, _, _, gx, gh0 = _torch_grads(model, x, h0, dy, dT)
    g = model.backward(model.forward(x, h0), dy, dT)
    for name, p in twin.named_parameters():
        ref = p.grad.numpy()
        assert np.max(np.abs(g.params[name] - ref)) <= BACKWARD_RTOL * _scale(ref), name
    assert np.max(np.abs(g.x - gx)) <= BACKWARD_RTOL * _scale(gx)
    assert np.max(np.abs(g.h0 - gh0)) <= BACKWARD_RTOL * _scale(gh0)


# exp(Delta A) recomputed here from softplus (log1p form) and the parameters: a handful of roundings
# (the affine map over D <= 3 terms, softplus, the product, exp) ~ 8 u relative; 1e-14 with margin.
JACOBIAN_RTOL = 1e-14


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 8))
def test_one_step_jacobian_is_diag_exp_delta_A_in_the_open_unit_interval(seed, T):
    """dh_t/dh_{t-1} = diag(exp(Delta_{t,d} A_{dn})) (flattened d*N + n): zero off the diagonal, each
    entry in (0, 1) since Delta > 0 and A < 0 (proofs/selective_ssm.tex, step 2)."""
    model = gt.SelectiveSSM(3, 2, seed=seed % 10_000)
    x = np.random.default_rng(seed).standard_normal((T, 3))
    J = model.jacobians(model.forward(x))
    p = model.params
    z = x @ p["W_delta"].T + p["b_delta"]
    delta = np.where(z > 0, z + np.log1p(np.exp(-np.abs(z))), np.log1p(np.exp(z)))
    ref = np.exp(delta[:, :, None] * -np.exp(p["A_log"])[None]).reshape(T, 6)
    assert np.all(J * (1 - np.eye(6)) == 0)
    diag = np.diagonal(J, axis1=1, axis2=2)
    assert np.all((diag > 0) & (diag < 1))
    assert np.max(np.abs(diag - ref) / ref) <= JACOBIAN_RTOL


# ln of a product of T factors exp(Delta A): the flow adds T values Delta*A each exact to ~3u
# relative; |Delta A| <= ~0.1 * N here at Mamba's initialisation -> T * 3u * |sum| ~ 1e-14.
FLOW_ATOL = 1e-12


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 100))
def test_gradient_flow_is_the_norm_of_the_products_of_exp_delta_A(seed, T):
    """gradient_flow(SelectiveSSM)[k] = ln ||(r_i prod_{t>k} exp(Delta_t A)_i)_i||: the state gradient is the
    readout times the product of the one-step factors, each < 1, so it never increases backward in time."""
    model = gt.SelectiveSSM(2, 3, seed=seed % 10_000)
    rng = np.random.default_rng(seed)
    x, r = rng.standard_normal((T, 2)), rng.standard_normal(6)
    flow = gt.gradient_flow(model, x, readout=r)
    p = model.params
    delta = np.logaddexp(0.0, x @ p["W_delta"].T + p["b_delta"])
    logd = (delta[:, :, None] * -np.exp(p["A_log"])[None]).reshape(T, 6)  # ln exp(Delta A) = Delta A
    cum = np.vstack([np.cumsum(logd[::-1], axis=0)[::-1], np.zeros((1, 6))])  # sum_{t>k}
    logs = np.log(np.abs(r))[None] + cum
    m = logs.max(axis=1, keepdims=True)
    ref = m[:, 0] + 0.5 * np.log(np.sum(np.exp(2 * (logs - m)), axis=1))
    assert np.max(np.abs(flow - ref)) <= FLOW_ATOL
    assert np.all(np.diff(flow) >= 0)  # non-increasing backward in time: never explodes


def test_a_backward_missing_the_zoh_term_fails_the_checker_naming_A_log_and_the_delta_weights():
    """Test the tester: dropping exp(Delta A) from the pull-back of the state (treating the
    transition as the identity, a skipped factor) fails check_gradients, naming A_log."""
    model = gt.SelectiveSSM(2, 3, seed=3)
    x = np.random.default_rng(3).standard_normal((6, 2, 2))

    def fn(p, x):
        r = model.apply(p, x)
        return (r.output, r.h_n)

    def good(w, p, x):
        g = model.backward(model.apply(p, x), w[0], w[1])
        return (g.params, g.x)

    def wrong(w, p, x):
        r = model.apply(p, x)
        bad = dataclasses.replace(r, cache={**r.cache, "Abar": np.ones_like(r.cache["Abar"])})
        g = model.backward(bad, w[0], w[1])
        return (g.params, g.x)

    inputs = (dict(model.params), x)
    assert check_gradients(fn, inputs, grad_fn=good, names=("params", "x")).ok
    report = check_gradients(fn, inputs, grad_fn=wrong, names=("params", "x"))
    assert not report.ok
    assert "params['A_log']" in [c.name for c in report.failures]


def test_bad_arguments_raise_errors_naming_them():
    with pytest.raises(ValueError, match="state_size"):
        gt.SelectiveSSM(2, 0)
    model = gt.SelectiveSSM(2, 3)
    with pytest.raises(ValueError, match="input_size=2"):
        model.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"params\['A_log'\] must have shape \(2, 3\)"):
        gt.SelectiveSSM(2, 3, params={**model.params, "A_log": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 3\)"):
        model.forward(np.zeros((4, 2)), np.zeros(6))
    with pytest.raises(TypeError, match="d_output must have a floating dtype"):
        model.backward(model.forward(np.zeros((4, 2))), np.ones((4, 2), dtype=int))


def test_unbatched_input_gives_the_batch_of_one_results():
    """forward/backward on (T, D) equal the (T, 1, D) results with the batch axis removed."""
    model = gt.SelectiveSSM(2, 3, seed=0)
    rng = np.random.default_rng(0)
    x, dy, dT = rng.standard_normal((5, 2)), rng.standard_normal((5, 2)), rng.standard_normal((2, 3))
    g1 = model.backward(model.forward(x), dy, dT)
    gb = model.backward(model.forward(x[:, None]), dy[:, None], dT[None])
    assert np.array_equal(g1.x, gb.x[:, 0]) and np.array_equal(g1.h0, gb.h0[0]) and np.array_equal(g1.dh, gb.dh[:, 0])
    assert all(np.array_equal(g1.params[k], gb.params[k]) for k in g1.params)


def test_lyapunov_spectrum_is_the_time_average_of_delta_A():
    """For diagonal J_t the QR method's exponents are (1/T) sum_t Delta_{t,d} A_dn, in state order."""
    model = gt.SelectiveSSM(2, 3, seed=1)
    x = np.random.default_rng(1).standard_normal((50, 2))
    p = model.params
    delta = np.logaddexp(0.0, x @ p["W_delta"].T + p["b_delta"])
    ref = (delta[:, :, None] * -np.exp(p["A_log"])[None]).reshape(50, 6).mean(axis=0)
    assert np.max(np.abs(gt.lyapunov_spectrum(model, x) - ref)) <= 1e-15 * 50
