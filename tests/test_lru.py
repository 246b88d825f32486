"""LRU (Orvieto et al. 2023): the hand-written BPTT against the torch twin's autograd, torch's
complex-gradient convention, the exact one-step Jacobian diag(lambda), the gradient flow and the
Lyapunov spectrum in closed form.

Derivation: ``proofs/lru.tex`` (written by ``gradtheory/symbolic/lru.py``).
"""

from __future__ import annotations

import dataclasses

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory.check import check_gradients

# Forward: each output is a sum over <= T steps of terms |lambda|^j gamma |B u| |C|, each formed
# with a few roundings (exp, the complex product, the matrix products over H, N <= 4), and twin and
# model round differently; gamma: the twin's sqrt(1 - |lambda|^2) loses u / (1 - |lambda|^2)
# relative, <= u / (1 - 0.99^2) ~ 1.1e-14 with r_max <= 0.99 below. Total ~ T * 20 u * scale
# <= 12 * 20 * 2.2e-16 ~ 5e-14 relative to the output scale; the 1e-12 holds with margin.
FORWARD_RTOL = 1e-12
# Backward: the same sums run backward plus the parameter reductions over T * B <= 36 terms, each
# with the same per-term error: <= ~2e-13 relative to the gradient scale; the 1e-10.
BACKWARD_RTOL = 1e-10


def _scale(a) -> float:
    return max(1.0, float(np.max(np.abs(a))))


@st.composite
def lru_cases(draw):
    """An LRU with its eigenvalues in a ring r_min <= |lambda| <= r_max < 1, a batch of inputs, a
    complex initial state and complex/real cotangents for the final state and the outputs."""
    H, N = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    T, B = draw(st.integers(1, 12)), draw(st.integers(1, 3))
    r_max = draw(st.floats(0.3, 0.99))
    r_min = draw(st.floats(0.0, r_max * 0.99))
    seed = draw(st.integers(0, 2**32 - 1))
    model = gt.LRU(H, N, seed=seed, r_min=r_min, r_max=r_max, max_phase=draw(st.floats(0.1, 6.28)))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, H))
    h0 = rng.standard_normal((B, N)) + 1j * rng.standard_normal((B, N))
    dy = rng.standard_normal((T, B, H))
    dT = rng.standard_normal((B, N)) + 1j * rng.standard_normal((B, N))
    return model, x, h0, dy, dT


def _torch_grads(model, x, h0, dy, dT, complex_leaves=False):
    twin = gt.to_torch(model) if not complex_leaves else model.torch_twin(complex_leaves=True)
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    y, xT = twin(xt, h0t)
    # L = <dy, y> + Re <dT, x_T>: torch's gradient of x_T is then dT (its convention, see lru.py)
    loss = (y * torch.tensor(dy)).sum() + torch.real(torch.conj(torch.tensor(dT)) * xT).sum()
    loss.backward()
    return twin, y.detach().numpy(), xT.detach().numpy(), xt.grad.numpy(), h0t.grad.numpy()


@given(case=lru_cases())
def test_forward_equals_the_torch_twin_to_1e_12(case):
    """y_k = Re(C x_k) + D u_k and x_T agree with the torch twin to 1e-12 relative (proofs/lru.tex)."""
    model, x, h0, dy, dT = case
    _, y, xT, _, _ = _torch_grads(model, x, h0, dy, dT)
    r = model.forward(x, h0)
    assert np.max(np.abs(r.output - y)) <= FORWARD_RTOL * _scale(y)
    assert np.max(np.abs(r.h_n - xT)) <= FORWARD_RTOL * _scale(xT)


@given(case=lru_cases())
def test_hand_written_bptt_equals_torch_autograd_to_1e_10(case):
    """Every parameter, input and (complex) initial-state gradient equals torch autograd's
    (torch's convention for complex quantities) to 1e-10 relative (proofs/lru.tex)."""
    model, x, h0, dy, dT = case
    twin, _, _, gx, gh0 = _torch_grads(model, x, h0, dy, dT)
    g = model.backward(model.forward(x, h0), dy, dT)
    for name, p in twin.named_parameters():
        ref = p.grad.numpy()
        assert np.max(np.abs(g.params[name] - ref)) <= BACKWARD_RTOL * _scale(ref), name
    assert np.max(np.abs(g.x - gx)) <= BACKWARD_RTOL * _scale(gx)
    assert np.max(np.abs(g.h0 - gh0)) <= BACKWARD_RTOL * _scale(gh0)


# Richardson on a loss that is a smooth function of one real entry: central differences at h and
# h/2 combined to cancel the h^2 term leave O(h^4 |L^(5)|) ~ (1e-3)^4 * O(10) ~ 1e-11 plus rounding
# ~ u |L| / h ~ 2e-13 * |L|; 1e-8 relative to max(1, |grad|) is well above both and far below the
# size of any convention error (a conjugation flips the sign of an O(1) imaginary part).
RICHARDSON_STEP = 1e-3
RICHARDSON_RTOL = 1e-8


def _richardson(f, h=RICHARDSON_STEP):
    d1 = (f(h) - f(-h)) / (2 * h)
    d2 = (f(h / 2) - f(-h / 2)) / h
    return (4 * d2 - d1) / 3


def test_torch_complex_leaf_gradient_is_dL_dRe_plus_i_dL_dIm():
    """Torch's convention, checked rather than assumed: for real L and a complex leaf B,
    B.grad = dL/dRe(B) + i dL/dIm(B) (= 2 dL/d conj(B)), which equals B_re.grad + i B_im.grad of the
    split twin and the hand-written backward; both parts against Richardson differences of L."""
    model = gt.LRU(3, 2, seed=5, r_min=0.5, r_max=0.95)
    rng = np.random.default_rng(5)
    x, h0 = rng.standard_normal((6, 2, 3)), rng.standard_normal((2, 2)) + 1j * rng.standard_normal((2, 2))
    dy, dT = rng.standard_normal((6, 2, 3)), rng.standard_normal((2, 2)) + 1j * rng.standard_normal((2, 2))
    twin, *_ = _torch_grads(model, x, h0, dy, dT, complex_leaves=True)
    g = model.backward(model.forward(x, h0), dy, dT)
    for leaf in ("B", "C"):
        grad = getattr(twin, leaf).grad.numpy()
        assert np.max(np.abs(grad - (g.params[f"{leaf}_re"] + 1j * g.params[f"{leaf}_im"]))) <= BACKWARD_RTOL * _scale(
            grad
        )

    def loss(params):
        r = model.apply(params, x, h0)
        return float(np.sum(dy * r.output) + np.sum((np.conj(dT) * r.h_n).real))

    for name, idx in (("B_re", (1, 2)), ("B_im", (1, 2)), ("C_re", (0, 1)), ("C_im", (2, 0))):

        def f(h, name=name, idx=idx):
            p = {k: v.copy() for k, v in model.params.items()}
            p[name][idx] += h
            return loss(p)

        leaf, part = name.split("_")
        torch_value = getattr(twin, leaf).grad.numpy()[idx]
        torch_part = torch_value.real if part == "re" else torch_value.imag
        assert abs(torch_part - _richardson(f)) <= RICHARDSON_RTOL * max(1.0, abs(torch_part)), name


def test_one_step_jacobian_is_diag_lambda_at_every_step_whatever_the_input():
    """dx_k/dx_{k-1} = diag(lambda) for every k and input: zero off the diagonal, lambda on it
    (proofs/lru.tex, step 2)."""
    model = gt.LRU(2, 3, seed=1)
    x = np.random.default_rng(1).standard_normal((5, 4, 2)) * 10.0
    J = model.jacobians(model.forward(x))
    lam = np.exp(-np.exp(model.params["nu_log"]) + 1j * np.exp(model.params["theta_log"]))
    assert J.shape == (5, 4, 3, 3)
    assert np.all(J * (1 - np.eye(3)) == 0)
    assert np.all(np.diagonal(J, axis1=2, axis2=3) == lam)


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 60))
def test_gradient_through_T_steps_is_conj_lambda_to_the_T_exactly(seed, T):
    """dx_T/dx_0 = diag(lambda)^T (holomorphic), so the initial-state gradient of L = Re<dT, x_T> is
    conj(lambda)^T dT; lambda^T from mpmath at 30 digits (proofs/lru.tex, step 3)."""
    model = gt.LRU(2, 3, seed=seed % 10_000, r_min=0.2, r_max=0.999)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, 2))
    dT = rng.standard_normal(3) + 1j * rng.standard_normal(3)
    g = model.backward(model.forward(x), np.zeros((T, 2)), dT)
    mpmath.mp.dps = 30
    ref = np.array(
        [
            complex(mpmath.conj(mpmath.exp(-mpmath.exp(nu) + 1j * mpmath.exp(th))) ** T)
            for nu, th in zip(model.params["nu_log"], model.params["theta_log"])
        ]
    )
    # T products by conj(lambda), each exact to ~2u relative (the complex product): T * 2u * |dT|,
    # plus lambda's own rounding (exp of rounded arguments: ~3u relative, amplified T times).
    tol = 8 * T * 2.2e-16 * np.max(np.abs(dT)) * max(1.0, np.max(np.abs(model.params["theta_log"])) + 1)
    assert np.max(np.abs(g.h0 - ref * dT)) <= tol + 1e-300


# ln of a product of T factors |lambda| = exp(-e^nu): the flow adds T logs each exact to ~u relative;
# |ln|lambda|| <= e^nu <= ~5 here, so T * u * 5 * few <= 1e-12 for T <= 200.
FLOW_ATOL = 1e-12


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 200))
def test_gradient_flow_is_the_closed_form_norm_of_lambda_powers(seed, T):
    """gradient_flow(LRU) = ln ||(|lambda_n|^(T-k) r_n)_n||, independent of the input (a linear recurrence),
    and the Lyapunov spectrum is ln|lambda_n| = -exp(nu_log_n) exactly in the limit and at every T."""
    model = gt.LRU(2, 4, seed=seed % 10_000, r_min=0.1, r_max=0.99)
    rng = np.random.default_rng(seed)
    x, r = rng.standard_normal((T, 2)) * 3, rng.standard_normal(4)
    flow = gt.gradient_flow(model, x, readout=r)
    log_mod = -np.exp(model.params["nu_log"])  # ln|lambda| from the parametrisation, not from the model
    ks = np.arange(T + 1)
    logs = np.log(np.abs(r))[None, :] + (T - ks)[:, None] * log_mod[None, :]
    m = logs.max(axis=1, keepdims=True)
    ref = m[:, 0] + 0.5 * np.log(np.sum(np.exp(2 * (logs - m)), axis=1))
    assert np.max(np.abs(flow - ref)) <= FLOW_ATOL * max(1.0, T / 10)
    spec = gt.lyapunov_spectrum(model, x)
    assert np.max(np.abs(spec - log_mod)) <= 1e-15 * max(1.0, np.max(np.abs(log_mod))) * 4


def test_a_conjugation_bug_in_the_backward_fails_the_checker_naming_the_parameters():
    """Test the tester: pulling the state gradient back with lambda instead of conj(lambda) (the
    classic complex-gradient bug) fails check_gradients on theta_log, the phase of lambda."""
    model = gt.LRU(2, 3, seed=3, r_min=0.5, r_max=0.9)
    x = np.random.default_rng(3).standard_normal((6, 2, 2))

    def fn(p, x):
        r = model.apply(p, x)
        return (r.output, r.h_n.real, r.h_n.imag)

    def good(w, p, x):
        g = model.backward(model.apply(p, x), w[0], w[1] + 1j * w[2])
        return (g.params, g.x)

    def wrong(w, p, x):
        r = model.apply(p, x)
        bad = dataclasses.replace(r, cache={**r.cache, "lam": np.conj(r.cache["lam"])})
        g = model.backward(bad, w[0], w[1] + 1j * w[2])
        return (g.params, g.x)

    inputs = (dict(model.params), x)
    assert check_gradients(fn, inputs, grad_fn=good, names=("params", "x")).ok
    report = check_gradients(fn, inputs, grad_fn=wrong, names=("params", "x"))
    assert not report.ok
    assert "params['theta_log']" in [c.name for c in report.failures]
    assert "FAIL" in report.summary


def test_bad_arguments_raise_errors_naming_them():
    with pytest.raises(ValueError, match="r_min"):
        gt.LRU(2, 3, r_min=0.9, r_max=0.5)
    with pytest.raises(TypeError, match="state_size"):
        gt.LRU(2, 3.0)
    model = gt.LRU(2, 3)
    with pytest.raises(ValueError, match="input_size=2"):
        model.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="missing \\['D'\\]"):
        gt.LRU(2, 3, params={k: v for k, v in model.params.items() if k != "D"})
    with pytest.raises(ValueError, match=r"h0 must have shape \(3\)"):
        model.forward(np.zeros((4, 2)), np.zeros(2))
    x = np.zeros((4, 2))
    before = x.copy()
    model.backward(model.forward(x), np.ones((4, 2)))
    assert np.array_equal(x, before)


def test_lyapunov_exponent_is_the_closed_form_for_the_default_start_vector():
    """(1/T) ln||diag(lambda)^T v0|| = (1/T) ln sqrt(sum_n |lambda_n|^(2T) v0_n^2) for the flow module's fixed
    v0 (a unit vector), and it tends to max ln|lambda_n| = -e^(min nu) (proofs/lru.tex, step 5)."""
    model = gt.LRU(2, 4, seed=2, r_min=0.5, r_max=0.99)
    T = 400
    x = np.random.default_rng(2).standard_normal((T, 2))
    v0 = np.random.default_rng(0).standard_normal(4)
    v0 /= np.linalg.norm(v0)
    logs = T * -np.exp(model.params["nu_log"]) + np.log(np.abs(v0))
    ref = (logs.max() + 0.5 * np.log(np.sum(np.exp(2 * (logs - logs.max()))))) / T
    assert abs(gt.lyapunov_exponent(model, x, v0=v0) - ref) <= 1e-14
    assert abs(gt.lyapunov_exponent(model, x) - ref) <= 1e-14
    with pytest.raises(ValueError, match="one sequence"):
        gt.gradient_flow(model, x[:, None])


def test_unbatched_input_gives_the_batch_of_one_results():
    """forward/backward on (T, H) equal the (T, 1, H) results with the batch axis removed."""
    model = gt.LRU(2, 3, seed=0)
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    dT = rng.standard_normal(3) + 1j * rng.standard_normal(3)
    g1 = model.backward(model.forward(x), dy, dT)
    gb = model.backward(model.forward(x[:, None]), dy[:, None], dT[None])
    assert np.array_equal(g1.x, gb.x[:, 0]) and np.array_equal(g1.h0, gb.h0[0]) and np.array_equal(g1.dh, gb.dh[:, 0])
    assert all(np.array_equal(g1.params[k], gb.params[k]) for k in g1.params)
