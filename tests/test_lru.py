"""LRU (Orvieto et al. 2023): what the generic registry properties (tests/test_cells.py: torch twin,
autograd, complex step, torch.func Jacobians, flow) do not say: torch's complex-gradient
convention against a twin with complex leaves, the exact one-step Jacobian diag(lambda), the
gradient through time conj(lambda)^T, the flow and the Lyapunov spectrum in closed form, stacking,
and a conjugation bug caught by the checker.

Derivation: ``proofs/lru.tex`` (written by ``gradtheory/symbolic/lru.py``).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch
from helpers import model_grad_fn
from hypothesis import example, given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory.cells.lru import LRUCell, lru_complex_twin
from gradtheory.check import check_gradients

# Backward against the complex-leaf twin: the same sums as the generic autograd property (T <= 6,
# reductions over T * B <= 12 terms, a few roundings each): ~1e-13 relative; the project's 1e-10.
BACKWARD_RTOL = 1e-10


def _scale(a) -> float:
    return max(1.0, float(np.max(np.abs(a))))


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
    B.grad = dL/dRe(B) + i dL/dIm(B) (= 2 dL/d conj(B)). The twin with complex leaves B, C and a complex
    state gives B.grad = B_re + i B_im of the hand-written backward, and x0.grad = h0 + i c0 (the
    gradients of the state's real and imaginary parts); both parts against Richardson differences of L."""
    model = gt.LRU(3, 2, seed=5, r_min=0.5, r_max=0.95)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 2, 3))
    h0, c0 = rng.standard_normal((1, 2, 2)), rng.standard_normal((1, 2, 2))
    dy, dh, dc = rng.standard_normal((6, 2, 3)), rng.standard_normal((1, 2, 2)), rng.standard_normal((1, 2, 2))
    g = model.backward(model.forward(x, (h0, c0)), dy, dh, dc)

    twin = lru_complex_twin(model)
    x0 = torch.tensor(gt.LRU.complex_state(h0, c0)[0], requires_grad=True)
    y, xT = twin(torch.tensor(x), x0)
    # L = <dy, y> + <dh, Re x_T> + <dc, Im x_T> = <dy, y> + Re <conj(dh + i dc), x_T>
    d_T = torch.tensor(gt.LRU.complex_state(dh, dc)[0])
    ((y * torch.tensor(dy)).sum() + torch.real(torch.conj(d_T) * xT).sum()).backward()
    for leaf in ("B", "C"):
        grad = getattr(twin, leaf).grad.numpy()
        ours = gt.LRU.complex_state(g.params[f"{leaf}_re_l0"], g.params[f"{leaf}_im_l0"])
        assert np.max(np.abs(grad - ours)) <= BACKWARD_RTOL * _scale(grad), leaf
    assert np.max(np.abs(x0.grad.numpy() - gt.LRU.complex_state(g.h0, g.c0)[0])) <= BACKWARD_RTOL * _scale(g.h0)

    def loss(params):
        r = model.apply(params, x, (h0, c0))
        return float(np.sum(dy * r.output) + np.sum(dh * r.h_n) + np.sum(dc * r.c_n))

    for name, idx in (("B_re_l0", (1, 2)), ("B_im_l0", (1, 2)), ("C_re_l0", (0, 1)), ("C_im_l0", (2, 0))):

        def f(h, name=name, idx=idx):
            p = {k: v.copy() for k, v in model.params.items()}
            p[name][idx] += h
            return loss(p)

        leaf, part = name.split("_")[:2]
        torch_value = getattr(twin, leaf).grad.numpy()[idx]
        torch_part = torch_value.real if part == "re" else torch_value.imag
        assert abs(torch_part - _richardson(f)) <= RICHARDSON_RTOL * max(1.0, abs(torch_part)), name


def test_one_step_jacobian_is_the_real_form_of_diag_lambda_at_every_step_whatever_the_input():
    """d(Re x_k, Im x_k)/d(Re x_{k-1}, Im x_{k-1}) = [[diag Re lambda, -diag Im lambda], [diag Im lambda,
    diag Re lambda]] for every k and input, exactly (proofs/lru.tex, step 2)."""
    model = gt.LRU(2, 3, seed=1)
    x = np.random.default_rng(1).standard_normal((5, 4, 2)) * 10.0
    J = model.jacobians(model.forward(x))
    p = model.params
    lam = np.exp(-np.exp(p["nu_log_l0"])) * np.exp(1j * np.exp(p["theta_log_l0"]))
    ref = np.block([[np.diag(lam.real), -np.diag(lam.imag)], [np.diag(lam.imag), np.diag(lam.real)]])
    assert J.shape == (5, 4, 6, 6)
    assert np.max(np.abs(J - ref)) <= 4 * 2.2e-16  # exp, cos/sin of the same arguments: ~2u apart
    assert np.all(J * (ref == 0) == 0)


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 60))
def test_gradient_through_T_steps_is_conj_lambda_to_the_T_exactly(seed, T):
    """dx_T/dx_0 = diag(lambda)^T (holomorphic), so the initial-state gradient of L = Re<d_T, x_T> is
    conj(lambda)^T d_T (torch's convention: h0 + i c0); lambda^T from mpmath at 30 digits (proofs/lru.tex, step 3)."""
    model = gt.LRU(2, 3, seed=seed % 10_000, r_min=0.2, r_max=0.999)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, 2))
    dh, dc = rng.standard_normal((1, 3)), rng.standard_normal((1, 3))
    g = model.backward(model.forward(x), np.zeros((T, 2)), dh, dc)
    with mpmath.workdps(30):  # a local precision: the global mp.dps stays the user's
        ref = np.array(
            [
                complex(mpmath.conj(mpmath.exp(-mpmath.exp(nu) + 1j * mpmath.exp(th))) ** T)
                for nu, th in zip(model.params["nu_log_l0"], model.params["theta_log_l0"])
            ]
        )
    d_T = gt.LRU.complex_state(dh, dc)[0]
    # T products by conj(lambda), each exact to ~2u relative (the complex product), and lambda's own
    # rounding amplified T times: exp, cos, sin (~u each) and the exponent -exp(nu) + i theta, which
    # is rounded to u (exp(nu) + theta) absolute, i.e. that much relative in lambda (exp(nu) <= ln 5
    # for r_min = 0.2): tol = 8 T u (1 + exp(nu) + theta), a factor 4 over the sum of these terms.
    growth = 1.0 + np.exp(model.params["nu_log_l0"]) + np.exp(model.params["theta_log_l0"])
    tol = 8 * T * 2.2e-16 * np.max(np.abs(d_T)) * np.max(growth)
    assert np.max(np.abs(gt.LRU.complex_state(g.h0, g.c0)[0] - ref * d_T)) <= tol + 1e-300


# ln of a product of T factors |lambda| = exp(-e^nu): the flow adds T logs each exact to ~u relative;
# |ln|lambda|| <= e^nu <= ~5 here, so T * u * 5 * few <= 1e-12 for T <= 200.
FLOW_ATOL = 1e-12


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 200))
@example(seed=227467, T=152)  # the spectrum summed row by row was 8.4e-15 off (T u); pairwise now
def test_gradient_flow_is_the_closed_form_norm_of_lambda_powers(seed, T):
    """gradient_flow(LRU) = ln ||(|lambda_n|^(T-k) r_n)_n|| for a readout r on Re x_T, independent of the
    input (a linear recurrence), and the Lyapunov spectrum is ln|lambda_n| = -exp(nu_log_n) for both
    coordinates (Re, Im) of every entry, at every T."""
    model = gt.LRU(2, 4, seed=seed % 10_000, r_min=0.1, r_max=0.99)
    rng = np.random.default_rng(seed)
    x, r = rng.standard_normal((T, 2)) * 3, rng.standard_normal(4)
    flow = gt.gradient_flow(model, x, readout=r)
    log_mod = -np.exp(model.params["nu_log_l0"])  # ln|lambda| from the parametrisation, not from the model
    ks = np.arange(T + 1)
    logs = np.log(np.abs(r))[None, :] + (T - ks)[:, None] * log_mod[None, :]
    m = logs.max(axis=1, keepdims=True)
    ref = m[:, 0] + 0.5 * np.log(np.sum(np.exp(2 * (logs - m)), axis=1))
    assert np.max(np.abs(flow - ref)) <= FLOW_ATOL * max(1.0, T / 10)
    spec = gt.lyapunov_spectrum(model, x)
    # (1/T) times a pairwise sum of T equal logs: <= log2(T) u ~ 8.5e-16 relative for T <= 200; 4e-15
    assert np.max(np.abs(spec - np.concatenate([log_mod, log_mod]))) <= 1e-15 * max(1.0, np.max(np.abs(log_mod))) * 4


def test_lyapunov_spectrum_fast_kernel_agrees_with_the_qr_method_on_the_rotation_blocks():
    """The registered kernel's exponents (time averages of ln|lambda|, in state order) equal the generic
    QR method run on the real 2x2 rotation blocks (the same cell in a plain RecurrentModel) to ~T u."""
    model = gt.LRU(2, 3, seed=3, r_min=0.3, r_max=0.95)
    generic = gt.RecurrentModel(2, 3, cell=LRUCell(), params=model.params)
    x = np.random.default_rng(3).standard_normal((40, 2))
    fast, qr = gt.lyapunov_spectrum(model, x), gt.lyapunov_spectrum(generic, x)
    assert np.max(np.abs(fast - qr)) <= 1e-13
    assert abs(gt.gradient_flow(model, x)[0] - gt.gradient_flow(generic, x)[0]) <= 1e-12


def test_lyapunov_exponent_is_the_closed_form_for_the_default_start_vector():
    """(1/T) ln||J_T ... J_1 v0|| = (1/T) ln sqrt(sum_n |lambda_n|^(2T) (v0_re,n^2 + v0_im,n^2)) for the flow
    module's fixed unit v0 on (Re x, Im x), tending to max ln|lambda_n| = -e^(min nu) (proofs/lru.tex, step 5)."""
    model = gt.LRU(2, 4, seed=2, r_min=0.5, r_max=0.99)
    T = 400
    x = np.random.default_rng(2).standard_normal((T, 2))
    v0 = np.random.default_rng(0).standard_normal(8)
    v0 /= np.linalg.norm(v0)
    log_mod = -np.exp(model.params["nu_log_l0"])
    logs = T * np.concatenate([log_mod, log_mod]) + np.log(np.abs(v0))
    ref = (logs.max() + 0.5 * np.log(np.sum(np.exp(2 * (logs - logs.max()))))) / T
    assert abs(gt.lyapunov_exponent(model, x, v0=v0) - ref) <= 1e-14
    with pytest.raises(ValueError, match="one unbatched sequence"):
        gt.gradient_flow(model, x[:, None])


def test_a_stacked_lru_is_the_composition_of_its_layers():
    """Layer l reads layer l-1's output y (I features): a 2-layer LRU equals two 1-layer LRUs run one
    after the other, outputs and final states bit for bit, and its backward is their chained backward."""
    model = gt.LRU(3, 2, num_layers=2, seed=4)
    p = model.params
    first = gt.LRU(3, 2, params={k: v for k, v in p.items() if k.endswith("_l0")})
    second = gt.LRU(3, 2, params={k.replace("_l1", "_l0"): v for k, v in p.items() if k.endswith("_l1")})
    x = np.random.default_rng(4).standard_normal((5, 2, 3))
    d_out = np.random.default_rng(5).standard_normal((5, 2, 3))
    r, r1 = model.forward(x), first.forward(x)
    r2 = second.forward(r1.output)
    assert np.array_equal(r.output, r2.output)
    assert np.array_equal(r.h_n, np.concatenate([r1.h_n, r2.h_n]))
    g, g2 = model.backward(r, d_out), second.backward(r2, d_out)
    g1 = first.backward(r1, g2.x)
    assert np.array_equal(g.x, g1.x)
    assert all(np.array_equal(g.params[k.replace("_l0", "_l1")], v) for k, v in g2.params.items())


def test_a_conjugation_bug_in_the_backward_fails_the_checker_naming_the_parameters():
    """Test the tester: pulling the state gradient back with lambda instead of conj(lambda) (the
    classic complex-gradient bug) fails check_gradients on theta_log, the phase of lambda."""

    class Conjugated(LRUCell):
        def step_backward(self, d_state, cache):
            lam_r, lam_i, _ = cache
            d_r, d_i = d_state
            return None, None, (lam_r * d_r - lam_i * d_i, lam_r * d_i + lam_i * d_r)  # lambda g, not conj

    good_model = gt.LRU(2, 3, seed=3, r_min=0.5, r_max=0.9)
    bad_model = gt.RecurrentModel(2, 3, cell=Conjugated(), params=good_model.params)
    x = np.random.default_rng(3).standard_normal((6, 2, 2))

    def fn(p, x):
        r = good_model.apply(p, x)
        return (r.output, r.h_n, r.c_n)

    inputs = (dict(good_model.params), x)
    assert check_gradients(fn, inputs, grad_fn=model_grad_fn(good_model), names=("params", "x")).ok
    report = check_gradients(fn, inputs, grad_fn=model_grad_fn(bad_model), names=("params", "x"))
    assert not report.ok
    assert "params['theta_log_l0']" in [c.name for c in report.failures]
    assert "FAIL" in report.summary


def test_bad_arguments_raise_errors_naming_them():
    with pytest.raises(ValueError, match="r_min"):
        gt.LRU(2, 3, r_min=0.9, r_max=0.5)
    with pytest.raises(TypeError, match="state_size|hidden_size"):
        gt.LRU(2, 3.0)
    with pytest.raises(NotImplementedError, match="bidirectional=True"):
        gt.LRU(2, 3, bidirectional=True)
    for size in ("input_size", "state_size"):  # found by tests/test_api_boundary.py: numpy's unnamed error
        with pytest.raises(ValueError, match=f"{size} must be at most"):
            gt.LRU(**{"input_size": 2, "state_size": 3, size: 2**63})
    model = gt.LRU(2, 3)
    with pytest.raises(ValueError, match="input_size|shape"):
        model.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"missing \['D_l0'\]"):
        gt.LRU(2, 3, params={k: v for k, v in model.params.items() if k != "D_l0"})
    x = np.zeros((4, 2))
    before = x.copy()
    model.backward(model.forward(x), np.ones((4, 2)))
    assert np.array_equal(x, before)
