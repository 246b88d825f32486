"""gradient_flow: ln||dL/ds_k|| for L = <r, h_T>, exact BPTT in log space at any horizon.

Statements (derivation of the backward recursion dL/ds_{k-1} = J_k^T dL/ds_k:
``proofs/rnn_bptt.tex``, ``proofs/lstm.tex``, ``proofs/gru.tex``, ``proofs/residual_highway.tex``):

* for every single-layer cell, gradient_flow equals the log-norms of model.backward's per-step
  gradients (joint (h, c) norm for LSTM, c at fixed h) and of torch autograd's dL/dh_0;
* where float64 BPTT underflows to exact zeros (T = 5000, contracting weights), gradient_flow
  stays finite and equals a 40-digit mpmath evaluation of the same recursion;
* the forward Lyapunov estimate (1/T) ln||P v0|| and the backward slope (flow[0] - flow[T]) / T
  of the same product P = J_T ... J_1 both lie in [ln s1 + ln|cos|, ln s1] (s1 the top singular
  value, cos the overlap with the top singular vector), hence agree to O(1/T).
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtheory as gt
from gradtheory import strategies as gst
from gradtheory._tolerances import LOG_VALUE_ROUNDING
from gradtheory._tolerances import UNIT_ROUNDOFF as u
from gradtheory.bounds import gradient_flow, lyapunov_exponent, lyapunov_spectrum

# LOG_BPTT_ABS (absolute tolerance): Absolute, on ln-norms. gradient_flow vs model.backward: two
# float64 evaluations of the same recursion that differ by summation order (fast Elman path: W^T
# applied as one gemv) and by the renormalisation (one extra rounding per step). Relative error of
# either ~ T (n + 3) u kappa with kappa the condition of the product; for drawn models (T <= 8, n <=
# 4) that is ~ 6e-15 kappa, and 1e-10 allows kappa up to 1e4 as bptt_vs_torch does.
LOG_BPTT_ABS = 1e-10
# LOG_MPMATH_PER_STEP (dimensionless factor): Factor c in abs = c u per traversed step (plus
# log_value_rounding): float64 recursion vs the 40-digit one: the forward state h_t carries ~ (n +
# 2) u relative error (the contraction ||W|| <= 0.5 stops it accumulating), so phi'(a_t) = 1 - h_t^2
# carries ~ 2 (n + 2) u / phi' <= 2 * 6 u / 0.4; the backward gemv adds ~ (n + 1) u kappa_step
# (kappa_step = ||W|| ||v d|| / ||W^T (v d)|| <= ~ 3 here); the renormalisation one more u. Sum ~
# (30 + 15 + 1) u < 64 u per step, errors add over steps.
LOG_MPMATH_PER_STEP = 64.0
# LYAPUNOV_VS_SVD_LOG_PRODUCT (dimensionless factor): Factor c in abs = T (n + 3) u c: round-off in
# ln of a product of T Jacobians is ~ T (n + 3) u per factor, relative; c = 10 is the margin.
LYAPUNOV_VS_SVD_LOG_PRODUCT = 10.0
# LYAPUNOV_RENORMALISATION_INTERVAL (dimensionless factor): Factor c in abs = T c u (T = 3000):
# blocks of m steps (with the range guard) vs every step give the same number to round-off: they
# differ only in where the renormalisations (one rounding each) and the log additions happen, a few
# u per step.
LYAPUNOV_RENORMALISATION_INTERVAL = 8.0

# Tolerances (absolute, on natural logs of norms: an absolute error e in ln||g|| is a relative
# error ~e in ||g||); their error analysis is in gradtheory/_tolerances.py.
LOG_BPTT = LOG_BPTT_ABS  # gradient_flow vs model.backward
LOG_MPMATH_PER_STEP = LOG_MPMATH_PER_STEP * u  # float64 vs 40 digits, per step
LOG_ROUNDING = LOG_VALUE_ROUNDING.value  # c in c u |ln||g|||: a float64 log's own rounding


def _log_norms(rows):
    """ln of the Euclidean norm of each row, scaled first so tiny or huge rows do not underflow."""
    rows = np.atleast_2d(rows)
    m = np.max(np.abs(rows), axis=1)
    safe = np.where(m > 0, m, 1.0)
    with np.errstate(divide="ignore"):
        return np.log(m) + 0.5 * np.log(np.sum((rows / safe[:, None]) ** 2, axis=1))


def _naive_log_norms(model, x, r, h0=None):
    """ln||dL/ds_k|| from model.backward (float64 BPTT without renormalisation), k = 0..T."""
    res = model.forward(x, h0)
    g = model.backward(res, np.zeros_like(res.output), d_h_n=r[None, :])
    rows = np.concatenate([g.h0, g.dh[0]])
    if g.dc is not None:
        rows = np.concatenate([rows, np.concatenate([g.c0, g.dc[0]])], axis=1)
    return _log_norms(rows)


@st.composite
def flow_cases(draw):
    model = draw(
        gst.models(
            families=("rnn", "lstm", "gru", "residual", "highway"),
            nonlinearities=("tanh", "relu", "sigmoid", "identity"),
            max_layers=1,
            bidirectional=False,
            scale=draw(st.sampled_from([None, 1.0])),
        )
    )
    x = draw(gst.sequences(steps=st.integers(1, 8), input_size=model.input_size))
    r = draw(hnp.arrays(np.float64, model.hidden_size, elements=st.floats(-2, 2, width=64, allow_subnormal=False)))
    return model, x, r


@given(flow_cases())
def test_gradient_flow_equals_log_norms_of_bptt_per_step_gradients(case):
    """ln||dL/ds_k|| = ln of the norm of model.backward's .dh (and .dc) for every k, every cell."""
    model, x, r = case
    flow = gradient_flow(model, x, r)
    naive = _naive_log_norms(model, x, r)
    assert flow.shape == (x.shape[0] + 1,)
    zero = naive == -np.inf
    assert np.array_equal(flow == -np.inf, zero), (flow, naive)
    np.testing.assert_allclose(flow[~zero], naive[~zero], rtol=0, atol=LOG_BPTT)
    if np.any(r):
        ln_r = _log_norms(r)[0]  # two evaluations of ln||r||: each within ~2u (1 + |ln||r|||)
        assert flow[-1] == pytest.approx(ln_r, abs=LOG_ROUNDING * u * (1 + abs(ln_r)))


def test_default_readout_is_the_first_unit_vector():
    """readout=None means r = e_0 = (1, 0, ..., 0): entry T is ln 1 = 0."""
    model = gt.LSTM(2, 3, seed=4)
    x = np.random.default_rng(4).standard_normal((6, 2))
    e0 = np.array([1.0, 0.0, 0.0])
    flow = gradient_flow(model, x)
    assert flow[-1] == 0.0
    np.testing.assert_array_equal(flow, gradient_flow(model, x, e0))
    np.testing.assert_allclose(flow, _naive_log_norms(model, x, e0), atol=LOG_BPTT, rtol=0)


def _mpmath_log_norms(W_hh, W_ih, b, x, r, dps=40):
    """The tanh-RNN forward and backward recursions in dps-digit arithmetic; ln||dL/dh_k||."""
    with mpmath.workdps(dps):
        n = W_hh.shape[0]
        Wm = [[mpmath.mpf(float(v)) for v in row] for row in W_hh]
        A = x @ W_ih.T + b  # input projections: exact inputs to both computations
        h = [mpmath.mpf(0)] * n
        dphi = []
        for a_t in A:
            h = [mpmath.tanh(sum((Wm[i][j] * h[j] for j in range(n)), mpmath.mpf(float(a_t[i])))) for i in range(n)]
            dphi.append([1 - hi * hi for hi in h])
        v = [mpmath.mpf(float(ri)) for ri in r]
        out = [mpmath.log(mpmath.sqrt(sum(vi * vi for vi in v)))]
        for d in reversed(dphi):
            w = [v[i] * d[i] for i in range(n)]
            v = [sum((Wm[i][j] * w[i] for i in range(n)), mpmath.mpf(0)) for j in range(n)]
            out.append(mpmath.log(mpmath.sqrt(sum(vi * vi for vi in v))))
        return np.array([float(o) for o in reversed(out)])


@pytest.mark.parametrize("norm_W", [0.5, 0.05])
def test_gradient_flow_is_finite_where_float64_bptt_underflows(norm_W):
    """T = 5000, ||W_hh||_2 = norm_W: naive BPTT underflows to exact zeros; gradient_flow
    equals the 40-digit evaluation of the same recursion. (0.05: a block of the fast path would
    underflow, so the per-step fallback runs.)"""
    T, n = 5000, 4
    rng = np.random.default_rng(11)
    model = gt.RNN(2, n, seed=11)
    W = rng.standard_normal((n, n))
    model.params["weight_hh_l0"] = W * (norm_W / np.linalg.norm(W, 2))
    x = rng.uniform(-1, 1, size=(T, 2))
    r = rng.standard_normal(n)
    flow = gradient_flow(model, x, r)
    naive = _naive_log_norms(model, x, r)
    assert np.all(np.isfinite(flow))
    assert np.sum(naive == -np.inf) > T // 2, "the scenario must underflow naive float64 BPTT"
    p = model.params
    oracle = _mpmath_log_norms(p["weight_hh_l0"], p["weight_ih_l0"], p["bias_ih_l0"] + p["bias_hh_l0"], x, r)
    steps = T - np.arange(T + 1)
    allowed = LOG_MPMATH_PER_STEP * steps + LOG_ROUNDING * u * np.abs(oracle)
    assert np.all(np.abs(flow - oracle) <= allowed), np.max(np.abs(flow - oracle) / allowed)
    # Where naive BPTT is still normal (norm > 1e-290: no subnormal component matters), it agrees.
    ok = naive > math.log(1e-290)
    np.testing.assert_allclose(flow[ok], naive[ok], atol=LOG_BPTT, rtol=0)


def test_exact_zero_gradient_gives_minus_infinity():
    """relu units all off (large negative bias): dL/dh_k = 0 exactly for k < T -> -inf."""
    model = gt.RNN(2, 3, nonlinearity="relu", seed=1)
    model.params["bias_ih_l0"] = np.full(3, -100.0)
    x = np.random.default_rng(1).uniform(-1, 1, size=(300, 2))
    flow = gradient_flow(model, x)
    assert flow[-1] == 0.0 and np.all(flow[:-1] == -np.inf)
    assert np.all(gradient_flow(model, x, np.zeros(3)) == -np.inf)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_gradient_flow_accepts_torch_modules_and_matches_autograd(kind):
    """A torch.nn.RNN/LSTM/GRU is converted with from_torch; flow[0] = ln||dL/ds_0|| by autograd."""
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(3, 4, dtype=torch.float64)
    x = np.random.default_rng(2).standard_normal((12, 3))
    r = np.random.default_rng(3).standard_normal(4)
    flow = gradient_flow(module, x, r)
    np.testing.assert_array_equal(flow, gradient_flow(gt.from_torch(module), x, r))
    h0 = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    if kind == "LSTM":
        c0 = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
        _, (hn, _) = module(torch.from_numpy(x), (h0, c0))
    else:
        _, hn = module(torch.from_numpy(x), h0)
    (hn[0] @ torch.from_numpy(r)).backward()
    sq = float((h0.grad**2).sum()) + (float((c0.grad**2).sum()) if kind == "LSTM" else 0.0)
    assert flow[0] == pytest.approx(0.5 * math.log(sq), abs=LOG_BPTT)


def _log_product(Js):
    """P = J_T ... J_1 as (log-scale, P / scale): renormalised so no horizon overflows."""
    P = np.eye(Js.shape[1])
    log_scale = 0.0
    for J in Js:
        P = J @ P
        s = np.linalg.norm(P)
        P /= s
        log_scale += math.log(s)
    return log_scale, P


@pytest.mark.parametrize("cls,norm_W", [(gt.RNN, 1.6), (gt.RNN, 0.9), (gt.GRU, None)])
def test_forward_lyapunov_and_backward_slope_bracket_the_top_singular_value(cls, norm_W):
    """With P = J_T...J_1 (s1, l1, r1 its top singular triple), for unit v0 and u = r/||r||:
    ln s1 + ln|<v0,r1>| <= T * lyapunov_exponent <= ln s1 and
    ln s1 + ln|<u,l1>| <= flow[0] - flow[T] <= ln s1; so the two estimates of lambda_1 differ
    by at most max(-ln|<v0,r1>|, -ln|<u,l1>|) / T."""
    T, n = 1500, 8
    rng = np.random.default_rng(5)
    model = cls(3, n, seed=5)
    if norm_W is not None:
        W = rng.standard_normal((n, n))
        model.params["weight_hh_l0"] = W * (norm_W / np.linalg.norm(W, 2))
    x = rng.standard_normal((T, 3))
    r = rng.standard_normal(n)
    v0 = rng.standard_normal(n)
    v0 /= np.linalg.norm(v0)
    lam = lyapunov_exponent(model, x, v0=v0)
    flow = gradient_flow(model, x, r)
    backward = flow[0] - flow[-1]
    log_scale, P = _log_product(model.jacobians(model.forward(x)))
    U, s, Vt = np.linalg.svd(P)
    log_s1 = log_scale + math.log(s[0])
    cos_f = abs(v0 @ Vt[0])
    cos_b = abs(r @ U[:, 0]) / np.linalg.norm(r)
    # Round-off in ln of a product of T Jacobians: ~ T (n + 3) u per factor, relative.
    slack = T * (n + 3) * u * LYAPUNOV_VS_SVD_LOG_PRODUCT
    assert T * lam == pytest.approx(log_scale + math.log(np.linalg.norm(P @ v0)), abs=slack)
    assert backward == pytest.approx(log_scale + math.log(np.linalg.norm(r @ P) / np.linalg.norm(r)), abs=slack)
    assert log_s1 + math.log(cos_f) - slack <= T * lam <= log_s1 + slack
    assert log_s1 + math.log(cos_b) - slack <= backward <= log_s1 + slack
    bound = max(-math.log(cos_f), -math.log(cos_b)) / T
    assert abs(lam - backward / T) <= bound + 2 * slack / T
    assert bound < 0.01  # the agreement is O(1/T): here both overlaps are far from 0


def test_lyapunov_exponent_does_not_depend_on_the_renormalisation_interval():
    """Blocks of m steps (with the range guard) vs every step: same number to round-off."""
    model = gt.RNN(3, 6, seed=8)
    model.params["weight_hh_l0"] = model.params["weight_hh_l0"] * 4
    x = np.random.default_rng(8).standard_normal((3000, 3))
    base = lyapunov_exponent(model, x)
    for m in (7, 50, 1000):
        tol = 3000 * LYAPUNOV_RENORMALISATION_INTERVAL * u  # T = 3000 steps
        assert lyapunov_exponent(model, x, reorthonormalize_every=m) == pytest.approx(base, abs=tol)


def test_bad_input_is_rejected_with_the_argument_named():
    """Multi-layer / bidirectional -> NotImplementedError; batched x, T = 0, wrong readout ->
    ValueError; not a model -> TypeError. Each message names the argument."""
    x = np.zeros((4, 2))
    with pytest.raises(NotImplementedError, match="num_layers=2"):
        gradient_flow(gt.RNN(2, 3, num_layers=2), x)
    with pytest.raises(NotImplementedError, match="bidirectional"):
        gradient_flow(gt.GRU(2, 3, bidirectional=True), x)
    with pytest.raises(NotImplementedError, match="num_layers=2"):
        gradient_flow(torch.nn.LSTM(2, 3, num_layers=2), x)
    with pytest.raises(ValueError, match=r"x must be one unbatched sequence of shape \(T, 2\), got shape \(4, 1, 2\)"):
        gradient_flow(gt.RNN(2, 3), np.zeros((4, 1, 2)))
    with pytest.raises(ValueError, match=r"x must contain at least one time step.*T = 0"):
        gradient_flow(gt.RNN(2, 3), np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"x must have shape \(T, 2\)"):
        gradient_flow(gt.RNN(2, 3), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"readout must have shape \(3\)"):
        gradient_flow(gt.RNN(2, 3), x, readout=np.ones(4))
    with pytest.raises(ValueError, match="readout must be finite"):
        gradient_flow(gt.RNN(2, 3), x, readout=np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match=r"h0 must have shape"):
        gradient_flow(gt.RNN(2, 3), x, h0=np.zeros(4))
    with pytest.raises(TypeError, match="h0 must be a tuple"):
        gradient_flow(gt.LSTM(2, 3), x, h0=np.zeros(3))
    with pytest.raises(TypeError, match="model must be"):
        gradient_flow("rnn", x)
    with pytest.raises(ValueError, match="reorthonormalize_every must be >= 1"):
        lyapunov_exponent(gt.RNN(2, 3), x, reorthonormalize_every=0)


def test_inputs_are_not_mutated():
    model = gt.RNN(2, 3, seed=3)
    params = {k: v.copy() for k, v in model.params.items()}
    x = np.random.default_rng(3).standard_normal((20, 2))
    x_copy, r = x.copy(), np.ones(3)
    h0 = np.full(3, 0.1)
    gradient_flow(model, x, r, h0)
    lyapunov_exponent(model, x, h0)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(r, np.ones(3))
    np.testing.assert_array_equal(h0, np.full(3, 0.1))
    for k in params:
        np.testing.assert_array_equal(model.params[k], params[k])


@pytest.mark.parametrize("cls", [gt.RNN, gt.GRU, gt.LSTM])
def test_gradient_flow_from_a_given_initial_state(cls):
    """h0 as (H,) or (1, H) (LSTM: a tuple (h0, c0)) gives the same values as model.backward
    started from that state."""
    model = cls(2, 3, seed=9)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((7, 2))
    r = rng.standard_normal(3)
    if cls is gt.LSTM:
        h0 = (rng.standard_normal(3), rng.standard_normal(3))
        h0_model = (h0[0][None, :], h0[1][None, :])
    else:
        h0 = rng.standard_normal(3)
        h0_model = h0[None, :]
    flow = gradient_flow(model, x, r, h0)
    np.testing.assert_array_equal(flow, gradient_flow(model, x, r, h0_model))
    np.testing.assert_allclose(flow, _naive_log_norms(model, x, r, h0_model), rtol=0, atol=LOG_BPTT)
    assert not np.array_equal(flow, gradient_flow(model, x, r))  # h0 is actually used


@pytest.mark.parametrize("cls", [gt.RNN, gt.ResidualRNN])
def test_forward_overflow_is_reported_not_propagated(cls):
    """A linear recurrence with ||W_hh||_2 = 40 overflows float64 within ~200 steps; gradient_flow
    raises FloatingPointError naming the step instead of returning NaN."""
    model = cls(2, 4, nonlinearity="identity", seed=0)
    W = np.random.default_rng(0).standard_normal((4, 4))
    model.params["weight_hh_l0"] = 40 * W / np.linalg.norm(W, 2)
    x = np.ones((400, 2))
    with pytest.raises(FloatingPointError, match=r"overflowed at step t=\d+"):
        gradient_flow(model, x)


# Neumaier summation (gradtheory._logspace.add) of n terms has error <= u |S| + O(n u^2) sum|x_i|
# (Higham, Accuracy and Stability, section 4.4); with n = 3000 equal terms the second part is
# ~ 3000^2 u^2 |S| ~ 1e-25 |S|, so 2 u |S| bounds the error of the running log-scale. Plain
# summation of the same terms is off by up to ~500 u |S| here.
COMPENSATED_LOG_SCALE_REL = 2 * u


@pytest.mark.parametrize("w", [0.5, -0.25, 0.125, -0.75])
def test_running_log_scale_of_a_constant_jacobian_is_the_exactly_rounded_multiple(w):
    """A scalar residual recurrence h_t = h_{t-1} + w h_{t-1} (identity, h_0 = 0, x = 0) has the
    constant Jacobian J = 1 + w, exactly representable, so every backward step (generic path)
    and every forward Lyapunov step multiplies a unit vector by 1 + w without rounding: the
    only round-off is the summation of T copies of a = fl(ln|1 + w|). Then
    flow[k] = (T - k) a and the Lyapunov estimate is a, to the compensated-sum bound 2 u |S|
    (checked against the rational (T - k) a)."""
    model = gt.ResidualRNN(1, 1, nonlinearity="identity", bias=False, seed=0)
    model.params["weight_hh_l0"] = np.array([[w]])
    T = 3000
    x = np.zeros((T, 1))
    a = math.log(abs(1 + w))
    exact = np.array([float(Fraction(a) * (T - k)) for k in range(T + 1)])
    flow = gradient_flow(model, x)
    assert np.all(np.abs(flow - exact) <= COMPENSATED_LOG_SCALE_REL * np.abs(exact))
    assert abs(lyapunov_exponent(model, x, v0=np.ones(1)) - a) <= COMPENSATED_LOG_SCALE_REL * abs(a)


@pytest.mark.parametrize("errors", ["raise", "warn", "ignore"])
def test_forward_overflow_names_the_first_non_finite_step_whatever_numpy_error_state(errors):
    """h_t = h_{t-1} + W h_{t-1} with W = I (residual, identity, no input) from h_0 = (1, 0) gives
    h_t = (2^t, 0): 2^1023 is finite and 2^1024 overflows, so the first non-finite state is
    t = 1024 exactly. gradient_flow reports that step with its own FloatingPointError under any
    numpy error state the caller has set (with "raise" numpy would otherwise raise its own error
    from inside the loop, without the step), and leaves the caller's error state as it was."""
    model = gt.ResidualRNN(1, 2, nonlinearity="identity", bias=False, seed=0)
    model.params["weight_hh_l0"] = np.eye(2)
    model.params["weight_ih_l0"] = np.zeros((2, 1))
    x = np.zeros((1100, 1))
    with np.errstate(all=errors):
        before = np.geterr()
        with pytest.raises(FloatingPointError, match=r"^the forward pass overflowed at step t=1024 "):
            gradient_flow(model, x, h0=np.array([1.0, 0.0]))
        with pytest.raises(FloatingPointError, match=r"^the forward pass overflowed at step t=1024 "):
            lyapunov_spectrum(model, x, h0=np.array([1.0, 0.0]))
        assert np.geterr() == before


@pytest.mark.parametrize("cls", [gt.IndRNN, gt.ResidualRNN, gt.HighwayRNN])
def test_generic_path_gives_minus_infinity_exactly_where_bptt_is_zero(cls):
    """Cells without a fast kernel (the generic step-by-step path): a zero readout gives -inf at
    every k; relu units all off (bias -100) from step 1 on make dL/ds_k = 0 exactly for every k
    with a zero Jacobian after it, and gradient_flow is -inf exactly where model.backward's
    gradient is zero and finite (equal to it) elsewhere."""
    model = cls(2, 3, nonlinearity="relu", seed=1)
    model.params["bias_ih_l0"] = np.full(model.params["bias_ih_l0"].shape, -100.0)
    x = np.random.default_rng(1).uniform(-1, 1, size=(40, 2))
    r = np.array([1.0, -2.0, 0.5])
    assert np.all(gradient_flow(model, x, np.zeros(3)) == -np.inf)
    flow = gradient_flow(model, x, r)
    naive = _naive_log_norms(model, x, r)
    np.testing.assert_array_equal(np.isneginf(flow), np.isneginf(naive))
    finite = np.isfinite(naive)
    assert finite[-1] and flow[-1] == math.log(np.linalg.norm(r))
    np.testing.assert_allclose(flow[finite], naive[finite], rtol=0, atol=LOG_BPTT)


# LYAPUNOV_DIAGONAL_RESIDUAL_ABS: J = I + diag(d) with 1 + d_i exact dyadics: the QR of a
# diagonal (or diagonal-times-orthonormal) basis is exact up to signs, so each step adds
# fl(ln|1 + d_i|) to a Neumaier-compensated total (error <= 2 u |S|, see above); the mean over T
# keeps that relative size: 2 u |ln|1 + d_i|| <= 2 u * 1.1 here; 4 u is the margin.
LYAPUNOV_DIAGONAL_RESIDUAL_ABS = 4 * u


@pytest.mark.parametrize("every", [1, 3])
def test_lyapunov_spectrum_of_a_diagonal_residual_recurrence_is_log_one_plus_d(every):
    """h_t = h_{t-1} + diag(d) h_{t-1} (residual cell, identity, h_0 = 0, x = 0; generic path):
    J_t = I + diag(d) for every t, so the Lyapunov exponents are ln|1 + d_i| in the order of the
    columns (d sorted so that |1 + d_i| decreases), whatever the re-orthonormalisation interval
    (T = 100 is not a multiple of 3: the last factorisation happens at t = T). A d_i = -1
    annihilates its column: that exponent is -inf, under any numpy error state."""
    d = np.array([1.0, -0.5, -0.875])
    model = gt.ResidualRNN(1, 3, nonlinearity="identity", bias=False, seed=0)
    model.params["weight_hh_l0"] = np.diag(d)
    x = np.zeros((100, 1))
    expected = np.log(np.abs(1 + d))
    got = lyapunov_spectrum(model, x, reorthonormalize_every=every)
    np.testing.assert_allclose(got, expected, rtol=0, atol=LYAPUNOV_DIAGONAL_RESIDUAL_ABS)
    np.testing.assert_allclose(
        lyapunov_spectrum(model, x, k=2), expected[:2], rtol=0, atol=LYAPUNOV_DIAGONAL_RESIDUAL_ABS
    )
    model.params["weight_hh_l0"] = np.diag([1.0, -1.0, -0.875])
    with np.errstate(all="raise"):
        got = lyapunov_spectrum(model, x, reorthonormalize_every=every)
    assert got[1] == -np.inf
    np.testing.assert_allclose(got[[0, 2]], expected[[0, 2]], rtol=0, atol=LYAPUNOV_DIAGONAL_RESIDUAL_ABS)


def test_generic_lyapunov_exponent_of_an_annihilating_product_is_minus_infinity():
    """IndRNN (generic path) with relu units all off: J_t = diag(relu'(a_t)) u = 0, so
    J_T ... J_1 v_0 = 0 and ln||P v_0|| / T = -inf (not NaN, not an error)."""
    model = gt.IndRNN(2, 3, nonlinearity="relu", seed=1)
    model.params["bias_ih_l0"] = np.full(3, -100.0)
    x = np.random.default_rng(1).uniform(-1, 1, size=(20, 2))
    with np.errstate(all="raise"):
        assert lyapunov_exponent(model, x) == -np.inf


@pytest.mark.parametrize(
    "func", [gradient_flow, lyapunov_exponent, lyapunov_spectrum, gt.jacobian_norms], ids=lambda f: f.__name__
)
def test_every_measurement_names_the_bad_argument_and_itself(func):
    """Each measurement answers bad input with an error whose message starts with the argument's
    exact name (x, h0, h0[0], h0[1]) or names the function (unsupported models), so a user can
    tell which of the calls and which argument is at fault. Batched x gets the hint to call once
    per sequence; other wrong ranks do not."""
    x = np.zeros((4, 2))
    name = func.__name__
    with pytest.raises(NotImplementedError, match=rf"^{name} supports single-layer models.*build a one-layer model"):
        func(gt.RNN(2, 3, num_layers=2), x)
    with pytest.raises(NotImplementedError, match=rf"^{name} supports unidirectional models"):
        func(gt.RNN(2, 3, bidirectional=True), x)
    with pytest.raises(TypeError, match=r"^model must be a gradtheory RecurrentModel.*torch cell.*got str$"):
        func("rnn", x)
    with pytest.raises(ValueError, match=r"^x must be finite"):
        func(gt.RNN(2, 3), np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match=r"\(batched input: call once per sequence\)$"):
        func(gt.RNN(2, 3), np.zeros((4, 1, 2)))
    with pytest.raises(ValueError, match=r"^x must be one unbatched sequence of shape \(T, 2\), got shape \(8,\)$"):
        func(gt.RNN(2, 3), np.zeros(8))
    with pytest.raises(ValueError, match=r"^h0 must be finite"):
        func(gt.RNN(2, 3), x, h0=np.array([0.0, np.inf, 0.0]))
    with pytest.raises(ValueError, match=r"^h0 must have 1 or 2 dimensions"):
        func(gt.RNN(2, 3), x, h0=np.zeros((1, 1, 3)))
    with pytest.raises(TypeError, match=r"^h0 must be an array for RNN, got a tuple$"):
        func(gt.RNN(2, 3), x, h0=(np.zeros(3), np.zeros(3)))
    with pytest.raises(TypeError, match=r"^h0 must be a tuple \(h0, c0\) for LSTM, got tuple$"):
        func(gt.LSTM(2, 3), x, h0=(np.zeros(3), np.zeros(3), np.zeros(3)))
    with pytest.raises(TypeError, match=r"^h0 must be a tuple \(h0, c0\) for LSTM, got ndarray$"):
        func(gt.LSTM(2, 3), x, h0=np.zeros(3))
    # every two-component state names its own model (the LRU's pair is (Re x, Im x), not LSTM's)
    with pytest.raises(TypeError, match=r"^h0 must be a tuple \(h0, c0\) for LRU, got ndarray$"):
        func(gt.LRU(2, 3, seed=0), x, h0=np.zeros(3))
    with pytest.raises(ValueError, match=r"^h0\[0\] must have shape \(3,\) or \(1, 3\), got shape \(2,\)$"):
        func(gt.LSTM(2, 3), x, h0=(np.zeros(2), np.zeros(3)))
    with pytest.raises(ValueError, match=r"^h0\[1\] must have shape \(3,\) or \(1, 3\), got shape \(4,\)$"):
        func(gt.LSTM(2, 3), x, h0=(np.zeros(3), np.zeros(4)))


def test_lyapunov_arguments_are_named_in_their_errors():
    """k, v0 and reorthonormalize_every: a wrong value is refused with the argument's name."""
    x = np.zeros((4, 2))
    model = gt.ResidualRNN(2, 3, seed=0)
    with pytest.raises(ValueError, match=r"^v0 must have shape \(3\), got shape \(4,\)$"):
        lyapunov_exponent(model, x, v0=np.ones(4))
    with pytest.raises(ValueError, match=r"^v0 must be non-zero$"):
        lyapunov_exponent(model, x, v0=np.zeros(3))
    with pytest.raises(ValueError, match=r"^v0 must be finite"):
        lyapunov_exponent(model, x, v0=np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match=r"^k must be >= 1, got 0$"):
        lyapunov_spectrum(model, x, k=0)
    with pytest.raises(TypeError, match=r"^k must be an int"):
        lyapunov_spectrum(model, x, k=1.5)
    for func in (lyapunov_exponent, lyapunov_spectrum):
        with pytest.raises(ValueError, match=r"^reorthonormalize_every must be >= 1, got 0$"):
            func(model, x, reorthonormalize_every=0)


# TORCH_CELL_VS_TWIN_LYAPUNOV_ABS (absolute, on exponents): the torch cell's autograd Jacobian-vector
# products and the numpy twin's hand-written Jacobians are two float64 evaluations of the same
# product; each step's ln-norm carries ~ (H + 3) u kappa (kappa ~ 10 for these tanh steps), and
# the mean over T keeps that size: ~ 1e-14; 1e-12 is the margin.
TORCH_CELL_VS_TWIN_LYAPUNOV_ABS = 1e-12


def test_lyapunov_estimates_of_a_torch_cell_use_the_given_state_start_vector_k_and_interval():
    """from_torch_cell(RNNCell) and from_torch(RNN) with the same weights give the same flow (for
    a readout and h0) and the same estimates for a given h0, v0, k and reorthonormalize_every (each argument reaches the torch
    cell's path: the h0 and v0 chosen change the answer), and a bad interval is refused there too."""
    torch.manual_seed(0)
    seq = torch.nn.RNN(3, 4)
    cell = torch.nn.RNNCell(3, 4)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            p.copy_(getattr(seq, name + "_l0") * 3.0)
            getattr(seq, name + "_l0").mul_(3.0)
    model, twin = gt.from_torch_cell(cell), gt.from_torch(seq)
    x = np.random.default_rng(2).standard_normal((12, 3))
    h0 = np.array([[0.9, -0.8, 0.7, -0.6]])  # (1, H): the torch-cell path does not take (H,)
    v0 = np.array([0.0, 0.0, 1.0, 1e-3])
    tol = TORCH_CELL_VS_TWIN_LYAPUNOV_ABS
    lam = lyapunov_exponent(model, x, h0, v0=v0, reorthonormalize_every=3)
    assert abs(lam - lyapunov_exponent(twin, x, h0, v0=v0, reorthonormalize_every=3)) <= tol
    assert abs(lam - lyapunov_exponent(twin, x, h0, reorthonormalize_every=3)) > 1e-6  # v0 matters
    assert abs(lam - lyapunov_exponent(twin, x, v0=v0, reorthonormalize_every=3)) > 1e-6  # h0 matters
    r = np.array([1.0, -2.0, 0.5, 0.25])
    flow = gradient_flow(model, x, r, h0)
    np.testing.assert_allclose(flow, gradient_flow(twin, x, r, h0), rtol=0, atol=LOG_BPTT)
    assert np.max(np.abs(flow - gradient_flow(twin, x, r))) > 1e-6  # h0 matters
    spec = lyapunov_spectrum(model, x, 2, h0, reorthonormalize_every=5)
    assert spec.shape == (2,)
    np.testing.assert_allclose(spec, lyapunov_spectrum(twin, x, 2, h0, reorthonormalize_every=5), rtol=0, atol=tol)
    assert np.max(np.abs(spec - lyapunov_spectrum(twin, x, 2))) > 1e-6  # h0 matters
    for func in (lyapunov_exponent, lyapunov_spectrum):
        with pytest.raises(ValueError, match=r"^reorthonormalize_every must be >= 1, got 0$"):
            func(model, x, reorthonormalize_every=0)


def test_flow_and_lyapunov_estimates_of_a_diagonal_family_take_readout_k_and_v0_and_check_the_interval():
    """LRU (diagonal Jacobians diag(lambda), state (Re x, Im x)): the flow for a readout r on Re x_T
    is the closed form ln ||(|lambda_n|^(T-k) r_n)_n||; lyapunov_spectrum(k=2) is the first two of
    the full spectrum, ln|lambda_n| for both coordinates of every entry (state order); the exponent
    with v0 = e_j is exactly ln|lambda_(j mod N)| (the product is a rotation-scaling per entry); a
    bad interval is refused naming it, as for every other model."""
    model = gt.LRU(2, 4, seed=3, r_min=0.3, r_max=0.95)
    x = np.random.default_rng(3).standard_normal((50, 2))
    log_mod = -np.exp(model.params["nu_log_l0"])  # ln|lambda_n| from the parametrisation
    r = np.array([1.0, -2.0, 0.5, 0.25])
    steps = x.shape[0] - np.arange(x.shape[0] + 1)
    # dL/dh_k = conj(lambda)^(T-k) r elementwise: ||.|| = sqrt(sum |lambda_n|^(2(T-k)) r_n^2)
    closed = 0.5 * np.log(np.sum(np.exp(2 * steps[:, None] * log_mod[None, :]) * r[None, :] ** 2, axis=1))
    np.testing.assert_allclose(gradient_flow(model, x, r), closed, rtol=0, atol=LOG_BPTT)
    full = lyapunov_spectrum(model, x)
    np.testing.assert_allclose(full, np.concatenate([log_mod, log_mod]), rtol=8 * u, atol=0)
    np.testing.assert_array_equal(lyapunov_spectrum(model, x, 2), full[:2])
    for j in range(8):
        e_j = np.eye(8)[j]
        assert lyapunov_exponent(model, x, v0=e_j) == pytest.approx(log_mod[j % 4], rel=8 * u)
    for func in (lyapunov_exponent, lyapunov_spectrum):
        with pytest.raises(ValueError, match=r"^reorthonormalize_every must be >= 1, got 0$"):
            func(model, x, reorthonormalize_every=0)


def test_lyapunov_spectrum_runs_the_jacobian_stepper_of_the_elman_fast_kernel(monkeypatch):
    """The Elman RNN's registry entry names gradtheory._elman_kernel, whose jacobian_stepper steps
    the basis of lyapunov_spectrum (not the generic per-step recomputation): a stepper that
    refuses to run makes it raise. (The gated kernels define no stepper: the generic path.)"""
    from gradtheory import _elman_kernel

    class Refused(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Refused

    monkeypatch.setattr(_elman_kernel, "jacobian_stepper", refuse)
    with pytest.raises(Refused):
        lyapunov_spectrum(gt.RNN(2, 3), np.zeros((4, 2)))
