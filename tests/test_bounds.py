r"""Bounds on the gradient through time, and where the spectral radius misleads.

Statements (derivations: ``proofs/activation_bounds.tex`` (gamma), ``proofs/norm_bound.tex``
(the envelope), ``proofs/linear_rnn.tex`` (linear case, non-normal growth); Pascanu, Mikolov &
Bengio 2013, section 2.1):

* gamma = sup|phi'|: 1 for tanh, relu, identity; 1/4 for sigmoid (SymPy maximum);
* for an Elman RNN, ||dh_t/dh_k||_2 <= (gamma ||W_hh||_2)^(t-k) on every trajectory, with
  equality for a linear RNN whose W_hh is a scaled orthogonal matrix;
* spectral radius < 1 does not bound the gradient at finite horizons: a non-normal W_hh with
  radius 1/2 makes ||dL/dh_{T-m}|| grow to ~4 before it decays like 2^-m;
* the top Lyapunov exponent of a linear RNN with W_hh = s Q (Q orthogonal) is ln s.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sympy.calculus.util import maximum

import gradtheory as gt
from gradtheory import strategies as gst
from gradtheory._tolerances import LOG_VALUE_ROUNDING
from gradtheory._tolerances import UNIT_ROUNDOFF as u
from gradtheory.bounds import (
    envelope,
    gamma,
    gradient_flow,
    jacobian_norms,
    lyapunov_exponent,
    lyapunov_spectrum,
    spectral_norm,
    spectral_radius,
)
from gradtheory.oracles import jacobian

# BOUND_ENVELOPE_PRODUCT (relative tolerance): ||J_t ... J_{k+1}||_2 computed in float64 (<= 8
# factors of size n <= 5) carries a normwise relative error <= (t - k)(n + 2) u kappa ~ 8 * 7 *
# 1.1e-16 * kappa = 6e-15 kappa; the envelope's ||W||_2 (an SVD) is accurate to ~ n u. 1e-12 allows
# kappa up to ~ 150.
BOUND_ENVELOPE_PRODUCT = 1e-12
# SPECTRAL_NORM_SVD (dimensionless factor): Factor c in rel = c n u: ||U diag(s) V^T||_2 by an SVD
# vs max s. Forming the product U diag(s) V^T commits ~ n u relative error normwise and the SVD is
# backward stable (~ n u); c = 8 covers both with a margin.
SPECTRAL_NORM_SVD = 8.0
# SPECTRAL_RADIUS_EIG (dimensionless factor): Factor c in abs = c n u max(1, max|lambda|): W = S
# diag(lambda) S^-1 with S of condition number 2: eigenvalues perturbed by ~ 2 n u |W| (forming W
# and the backward-stable eig, times cond(S) by Bauer-Fike); c = 64 is a wide margin over that
# estimate.
SPECTRAL_RADIUS_EIG = 64.0
# ENVELOPE_EQUALITY_PER_STEP (dimensionless factor): Factor c in abs = c (n + 2) u T on ln-norms (n
# = 4 there, so 8 * 6 u T): scaled orthogonal linear RNN, flow[k] - flow[T] vs envelope[T - k]; per
# step: one gemv (n + 1) u, the renormalisation u, SVD of s Q (n u) -> 8 (n + 2) u per step.
ENVELOPE_EQUALITY_PER_STEP = 8.0
# TRANSIENT_GROWTH_LOG_PER_STEP (dimensionless factor): Factor c in abs = c u T on ln-norms: W =
# [[1/2, 4], [0, 1/2]], gradient_flow over T steps vs the exact rational row of W^m followed by one
# float log; per step the 2x2 gemv and the renormalisation commit a few u relative (the rows of W^m
# have entries of one sign: no cancellation), and these add over the T steps; c = 16 per step.
TRANSIENT_GROWTH_LOG_PER_STEP = 16.0
# TRANSIENT_GROWTH_ENVELOPE_ABS (absolute tolerance): Absolute, on ln-norms: flow (accurate to 16 u
# T ~ 1e-13 for T = 60, see transient_growth_log_per_step) vs envelope(W) from an SVD norm (~ n u
# relative); 1e-12 covers both.
TRANSIENT_GROWTH_ENVELOPE_ABS = 1e-12
# LYAPUNOV_LOWER_BOUND_ABS (absolute tolerance): Absolute, on the exponent: lyapunov_exponent (the
# mean of T = 2000 logs of renormalised 2x2 gemv norms, each rounded to a few u |ln 2|) vs the
# closed-form lower bound ln(1/2) + ln(0.8)/T; the mean keeps the per-step size, ~ 1e-15; 1e-13 is a
# margin of 100.
LYAPUNOV_LOWER_BOUND_ABS = 1e-13
# LYAPUNOV_ORTHOGONAL_PER_STEP (dimensionless factor): Factor c in abs = c (n + 2) u max(1, |ln s|):
# W_hh = s Q, identity activation: J_t = s Q for every t, so every finite-T estimate equals ln s up
# to round-off: ~ (n + 2) u per step in each log, and the mean of T logs keeps that size.
LYAPUNOV_ORTHOGONAL_PER_STEP = 8.0
# LYAPUNOV_SPECTRUM_FACTOR (dimensionless factor): Factor on lyapunov_orthogonal_per_step for the QR
# method (all n exponents): each step adds a Householder QR of an n x n matrix (backward error ~ n
# u) to the gemm and the logs, a small multiple of the single-vector error; 4x.
LYAPUNOV_SPECTRUM_FACTOR = 4.0
# LYAPUNOV_DIAGONAL (dimensionless factor): Factor c in abs = c u * 5: W_hh = diag(s) with s
# decreasing: the QR basis stays the identity and R = diag(s), so the exponents are ln s_i exactly
# up to the rounding of each log and of the mean (a few u |ln s_i|, and |ln s_i| <= ln 100 < 5
# here).
LYAPUNOV_DIAGONAL = 16.0
# LYAPUNOV_OVERLAP_ROUNDOFF_ABS (absolute tolerance): Absolute, on the exponent, added to the
# mathematical O(1/T) overlap term ln(2)/T: diagonal W_hh over T = 200 steps, one gemv, one log and
# one renormalisation per step (a few u each); the mean keeps that size; 1e-12 is a wide margin.
LYAPUNOV_OVERLAP_ROUNDOFF_ABS = 1e-12
# JACOBIAN_NORM_VS_COMPLEX_STEP (relative tolerance): jacobian_norms[t-1] vs ||J||_2 of the complex-
# step Jacobian of one forward step: complex step is exact to round-off (no subtraction), both
# Jacobians are accurate to ~ n u and the 2-norm (SVD) is backward stable: ~ n u relative, n <= 6.
JACOBIAN_NORM_VS_COMPLEX_STEP = 1e-13

ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")

BOUND_RTOL = BOUND_ENVELOPE_PRODUCT
# ^ float64 products of <= 8 Jacobians vs the exact envelope: error analysis in the table.


def test_gamma_is_the_supremum_of_the_activation_derivative():
    """gamma(tanh) = 1 and gamma(sigmoid) = 1/4 (SymPy maximum of phi' over R); relu and identity
    have phi' in {0, 1} and {1}."""
    a = sp.symbols("a", real=True)
    assert gamma("tanh") == float(maximum(sp.diff(sp.tanh(a), a), a, sp.S.Reals)) == 1.0
    assert gamma("sigmoid") == float(maximum(sp.diff(1 / (1 + sp.exp(-a)), a), a, sp.S.Reals)) == 0.25
    grid = np.linspace(-20, 20, 40001)
    for name in ACTIVATIONS:
        act = gt.ACTIVATIONS[name]
        d = act.grad(grid, act.phi(grid))
        assert np.max(d) == gamma(name), name  # attained (at a = 0 for tanh/sigmoid) and never exceeded
    with pytest.raises(ValueError, match="activation='softplus' is unknown"):
        gamma("softplus")


@given(st.integers(1, 6), st.data())
def test_spectral_norm_and_radius_of_matrices_with_known_spectra(n, data):
    """W = U diag(s) V^T has ||W||_2 = max s; W = S diag(l) S^-1 has rho(W) = max |l|."""
    U = data.draw(gst.orthogonal_matrices(n))
    V = data.draw(gst.orthogonal_matrices(n))
    s = data.draw(hnp.arrays(np.float64, n, elements=st.floats(0.01, 10.0, width=64)))
    assert spectral_norm(U @ np.diag(s) @ V.T) == pytest.approx(np.max(s), rel=SPECTRAL_NORM_SVD * n * u)
    lam = data.draw(hnp.arrays(np.float64, n, elements=st.floats(-3.0, 3.0, width=64)))
    S = U @ np.diag(np.linspace(1.0, 2.0, n))  # condition number 2: eigenvalues perturbed by ~ 2 n u |W|
    W = S @ np.diag(lam) @ np.linalg.inv(S)
    tol = SPECTRAL_RADIUS_EIG * n * u * max(1.0, np.max(np.abs(lam)))
    assert spectral_radius(W) == pytest.approx(np.max(np.abs(lam)), abs=tol)


@given(
    st.sampled_from(ACTIVATIONS),
    st.integers(1, 5),
    st.floats(0.1, 5.0),
    st.data(),
)
def test_gradient_norm_bounded_by_gamma_times_spectral_norm_power(name, n, sigma, data):
    """||dh_t/dh_k||_2 <= (gamma ||W_hh||_2)^(t-k) for all 0 <= k < t <= T (products of the
    model's one-step Jacobians), and gradient_flow respects the envelope:
    flow[k] - flow[T] <= envelope[T - k]."""
    W = data.draw(gst.matrices(n, spectral_norm=sigma))
    model = gt.RNN(2, n, nonlinearity=name, seed=data.draw(st.integers(0, 100)))
    model.params["weight_hh_l0"] = W
    x = data.draw(gst.sequences(steps=st.integers(1, 8), input_size=2))
    T = x.shape[0]
    env = envelope(W, name, T)
    J = model.jacobians(model.forward(x))
    for k in range(T):
        P = np.eye(n)
        for t in range(k + 1, T + 1):
            P = J[t - 1] @ P
            assert np.linalg.norm(P, 2) <= math.exp(env[t - k]) * (1 + BOUND_RTOL), (k, t)
    r = data.draw(hnp.arrays(np.float64, n, elements=st.floats(-1, 1, width=64)).filter(np.any))
    flow = gradient_flow(model, x, r)
    bound = env[T - np.arange(T)]
    assert np.all(flow[:-1] - flow[-1] <= bound + BOUND_RTOL * (1 + np.abs(bound)))


@given(gst.orthogonal_matrices(4), st.floats(0.2, 3.0), st.integers(1, 40))
def test_envelope_is_attained_by_scaled_orthogonal_linear_rnn(Q, s, T):
    """Linear RNN, W_hh = s Q: dL/dh_k = (s Q^T)^(T-k) r, so ||.|| = s^(T-k) ||r||: the bound holds
    with equality (flow[k] - flow[T] = envelope[T - k] to round-off)."""
    model = gt.RNN(3, 4, nonlinearity="identity", seed=0)
    model.params["weight_hh_l0"] = s * Q
    x = np.random.default_rng(T).standard_normal((T, 3))
    flow = gradient_flow(model, x, np.array([0.3, -1.0, 0.5, 2.0]))
    env = envelope(s * Q, "identity", T)
    # per step: one gemv (n + 1) u, the renormalisation u, SVD of s Q (n u) -> 8 (n + 2) u per step
    steps = T - np.arange(T + 1)
    per_step, log_rounding = ENVELOPE_EQUALITY_PER_STEP, LOG_VALUE_ROUNDING.value
    atol = per_step * (4 + 2) * u * T + log_rounding * u * abs(env[-1])  # n = 4
    np.testing.assert_allclose(flow - flow[-1], env[steps], rtol=0, atol=atol)


@pytest.mark.parametrize("nonlinearity", ["identity", "tanh"])
def test_spectral_radius_below_one_allows_transient_gradient_growth(nonlinearity):
    """W = [[1/2, 4], [0, 1/2]]: rho(W) = 1/2 < 1 but W^m = 2^-m (I + 8 m N), so with L = <e_0, h_T>
    ||dL/dh_{T-m}|| = 2^-m sqrt(1 + 64 m^2): 4.03, 4.01, 3.00, 2.00, 1.25 for m = 1..5 (growth
    above ||dL/dh_T|| = 1), then decay. With x = 0, h0 = 0 and no bias, a tanh RNN stays at h = 0
    where tanh' = 1: the same numbers. The finite-horizon claim "largest eigenvalue < 1 =>
    vanishing" fails; gamma ||W||_2 ~ 4.06 > 1 is what allows it."""
    W = np.array([[0.5, 4.0], [0.0, 0.5]])
    model = gt.RNN(1, 2, nonlinearity=nonlinearity, bias=False, seed=0)
    model.params["weight_hh_l0"] = W
    T = 60
    flow = gradient_flow(model, np.zeros((T, 1)))
    exact = []
    for m in range(T + 1):  # exact rational row 0 of W^m, then one float log of sqrt
        row = (Fraction(1, 2**m), Fraction(8 * m, 2**m))
        exact.append(0.5 * math.log(float(row[0] ** 2 + row[1] ** 2)) if m < 1000 else None)
    exact = np.array(exact[::-1])  # entry k has m = T - k
    np.testing.assert_allclose(flow, exact, rtol=0, atol=TRANSIENT_GROWTH_LOG_PER_STEP * u * T)
    assert spectral_radius(W) == 0.5
    growth = flow[T - 5 : T] - flow[T]
    assert np.all(growth > 0.2), growth  # ||dL/dh_{T-m}|| > 1.2 ||dL/dh_T|| for m = 1..5
    assert np.all(flow[T - 5 : T] <= envelope(W, nonlinearity, 5)[::-1][:5] + TRANSIENT_GROWTH_ENVELOPE_ABS)
    assert flow[0] < -30  # eventually vanishes, at rate ln(1/2) per step
    # Lyapunov exponent -> ln(1/2): ||W^T v|| = 2^-T ||(I + 8 T N) v|| in [2^-T |v_1|, 2^-T (1 + 8T)].
    T_long = 2000
    v0 = np.array([0.6, 0.8])
    lam = lyapunov_exponent(model, np.zeros((T_long, 1)), v0=v0)
    slack = LYAPUNOV_LOWER_BOUND_ABS
    assert math.log(0.5) + math.log(0.8) / T_long - slack <= lam <= math.log(0.5) + math.log(1 + 8 * T_long) / T_long


@given(st.integers(1, 6), st.floats(0.1, 10.0), st.integers(1, 300), st.data())
def test_lyapunov_exponent_of_scaled_orthogonal_linear_rnn_is_log_s(n, s, T, data):
    """W_hh = s Q, identity activation: J_t = s Q for every t, ||J_t v|| = s ||v||, so every finite-T
    estimate equals ln s (one vector, and all n exponents of the QR method) up to round-off:
    ~ (n + 2) u per step in each log, and the mean of T logs keeps that size."""
    Q = data.draw(gst.orthogonal_matrices(n))
    model = gt.RNN(2, n, nonlinearity="identity", seed=1)
    model.params["weight_hh_l0"] = s * Q
    x = data.draw(gst.sequences(steps=T, input_size=2))
    tol = LYAPUNOV_ORTHOGONAL_PER_STEP * (n + 2) * u * max(1.0, abs(math.log(s)))
    assert lyapunov_exponent(model, x) == pytest.approx(math.log(s), abs=tol)
    assert lyapunov_exponent(model, x, reorthonormalize_every=25) == pytest.approx(math.log(s), abs=tol)
    np.testing.assert_allclose(lyapunov_spectrum(model, x), math.log(s), rtol=0, atol=LYAPUNOV_SPECTRUM_FACTOR * tol)


def test_lyapunov_spectrum_of_diagonal_linear_rnn_is_log_of_the_diagonal():
    """W_hh = diag(s) with s decreasing: the QR basis stays the identity, R = diag(s): exponents
    ln s_i in order, exactly up to the rounding of each log."""
    s = np.array([1.5, 0.9, 0.3, 0.01])
    model = gt.RNN(1, 4, nonlinearity="identity", seed=0)
    model.params["weight_hh_l0"] = np.diag(s)
    x = np.random.default_rng(0).standard_normal((200, 1))
    atol = LYAPUNOV_DIAGONAL * u * 5  # |ln s_i| < 5
    np.testing.assert_allclose(lyapunov_spectrum(model, x), np.log(s), rtol=0, atol=atol)
    np.testing.assert_allclose(lyapunov_spectrum(model, x, k=2), np.log(s[:2]), rtol=0, atol=atol)
    slack = LYAPUNOV_OVERLAP_ROUNDOFF_ABS
    assert lyapunov_exponent(model, x, v0=np.ones(4)) == pytest.approx(math.log(1.5), abs=slack + math.log(2) / 200)


@pytest.mark.parametrize("cls", [gt.GRU, gt.LSTM, gt.HighwayRNN])
def test_jacobian_norms_equal_norms_of_complex_step_one_step_jacobians(cls):
    """jacobian_norms[t-1] = ||ds_t/ds_{t-1}||_2 with the Jacobian taken by complex step of one
    forward step (an oracle independent of the hand-written step_jacobian); accurate to ~ n u."""
    model = cls(2, 3, seed=6)
    x = np.random.default_rng(6).standard_normal((5, 2))
    norms = jacobian_norms(model, x)
    res = model.forward(x)
    H = 3
    for t in range(1, 6):
        if cls is gt.LSTM:
            h_prev = res.output[t - 2] if t > 1 else np.zeros(H)
            c_prev = model.forward(x[: t - 1]).c_n[0] if t > 1 else np.zeros(H)
            s_prev = np.concatenate([h_prev, c_prev])

            def f(s, t=t):
                r = model.apply(model.params, x[t - 1 : t], (s[None, :H], s[None, H:]))
                return np.concatenate([r.h_n[0], r.c_n[0]])

        else:
            s_prev = res.output[t - 2] if t > 1 else np.zeros(H)

            def f(s, t=t):
                return model.apply(model.params, x[t - 1 : t], s[None, :]).h_n[0]

        J = jacobian(f, s_prev, method="complex")
        assert norms[t - 1] == pytest.approx(np.linalg.norm(J, 2), rel=JACOBIAN_NORM_VS_COMPLEX_STEP)


def test_envelope_values_and_bad_input():
    W = np.array([[0.0, 2.0], [0.0, 0.0]])
    np.testing.assert_array_equal(envelope(W, "sigmoid", 3), np.arange(4) * math.log(0.5))
    np.testing.assert_array_equal(envelope(np.zeros((2, 2)), "tanh", 2), [0.0, -np.inf, -np.inf])
    with pytest.raises(ValueError, match="steps must be >= 0"):
        envelope(W, "tanh", -1)
    with pytest.raises(ValueError, match="W_hh must be a non-empty square matrix"):
        envelope(np.ones((2, 3)), "tanh", 2)
    with pytest.raises(ValueError, match="activation='gelu' is unknown"):
        envelope(W, "gelu", 2)
    with pytest.raises(ValueError, match="W must be a non-empty square"):
        spectral_radius(np.ones((2, 3)))
    with pytest.raises(ValueError, match="k must be <= the state dimension 4"):
        lyapunov_spectrum(gt.RNN(1, 4), np.zeros((3, 1)), k=5)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (spectral_norm, "W"),
        (spectral_radius, "W"),
        (lambda W: envelope(W, "tanh", 2), "W_hh"),
    ],
    ids=["spectral_norm", "spectral_radius", "envelope"],
)
@pytest.mark.parametrize("shape", [(3,), (2, 2, 2), (1, 1, 1)])
def test_matrix_quantities_reject_a_non_matrix_naming_the_argument(call, name, shape):
    """||W||_2, rho(W) and the envelope are defined for a matrix only: an array of another rank is
    a ValueError whose message starts with the argument's exact name and says 2 dimensions
    (a vector's 2-norm is not the spectral norm of a row or column the user meant)."""
    with pytest.raises(ValueError) as info:
        call(np.ones(shape))
    message = str(info.value)
    assert message.startswith(f"{name} must have 2 dimensions"), message
    assert str(shape) in message


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("w", [0.5, -3.0, 2.0**-40])
def test_envelope_of_a_scalar_recurrence_is_the_log_of_gamma_w_to_the_power_s(activation, w):
    """For a 1 x 1 W_hh = [[w]], ||W||_2 = |w| and the envelope is s ln(gamma |w|) (norm_bound.tex):
    checked against the exact rational (gamma |w|)^s followed by one float log (w, gamma dyadic)."""
    steps = 6
    g = Fraction(gamma(activation))
    exact = [math.log(float((g * abs(Fraction(w))) ** s)) for s in range(steps + 1)]
    # one float log of an exactly representable power vs s times a rounded log: <= (s + 1) u |ln|
    np.testing.assert_allclose(envelope(np.array([[w]]), activation, steps), exact, rtol=(steps + 1) * u, atol=0)
    assert spectral_norm(np.array([[w]])) == abs(w)
    assert spectral_radius(np.array([[w]])) == abs(w)


def test_spectral_norm_of_an_empty_matrix_is_refused_naming_w():
    """||W||_2 of a matrix with no entries is undefined (max over an empty set): ValueError naming W."""
    for shape in [(0, 3), (3, 0)]:
        with pytest.raises(ValueError, match=r"^W must be non-empty, got shape \("):
            spectral_norm(np.zeros(shape))


@pytest.mark.parametrize("cls", [gt.RNN, gt.LSTM])
def test_jacobian_norms_from_a_given_initial_state_equal_complex_step_norms(cls):
    """jacobian_norms(model, x, h0) (LSTM: h0 = (h_0, c_0) with h_0 != c_0) is
    ||ds_t/ds_{t-1}||_2 along the trajectory started from that state: the first step's Jacobian
    by complex step of one forward step from s_0 (an oracle independent of step_jacobian); the
    given state changes the answer (it is not replaced by zeros)."""
    model = cls(2, 3, seed=6)
    rng = np.random.default_rng(16)
    x = rng.standard_normal((4, 2))
    H = 3
    if cls is gt.LSTM:
        h0 = (rng.standard_normal(H), 2.0 * rng.standard_normal(H))
        s0 = np.concatenate(h0)

        def f(s):
            r = model.apply(model.params, x[:1], (s[None, :H], s[None, H:]))
            return np.concatenate([r.h_n[0], r.c_n[0]])
    else:
        h0 = rng.standard_normal(H)
        s0 = h0

        def f(s):
            return model.apply(model.params, x[:1], s[None, :]).h_n[0]

    norms = jacobian_norms(model, x, h0)
    J = jacobian(f, s0, method="complex")
    assert norms[0] == pytest.approx(np.linalg.norm(J, 2), rel=JACOBIAN_NORM_VS_COMPLEX_STEP)
    assert norms[0] != pytest.approx(jacobian_norms(model, x)[0], rel=1e-6)
