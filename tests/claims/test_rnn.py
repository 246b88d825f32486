"""Claims about the Elman RNN, as a specification: each test states the claim precisely.

Counterexamples were found by the audit's Hypothesis searches (gradtheory/claims/rnn.py) and are
kept here as ``@example`` s and as concrete numbers.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gradtheory._tolerances import NORM_BOUND_PER_FACTOR
from gradtheory.claims import rnn as C
from gradtheory.claims._numeric import jacobian_products, norms, rnn, spectral_norm, spectral_radius
from gradtheory.models.activations import ACTIVATIONS

# FIXED_POINT_POWER_PER_FACTOR (relative tolerance): Powers of a fixed 2x2 matrix J* (dh_t/dh_0 =
# J*^t at a fixed point): relative round-off ~ t * 4u per factor; slack rtol (t + 1).
FIXED_POINT_POWER_PER_FACTOR = 1e-13
# FIXED_POINT_TRAJECTORY_DRIFT (dimensionless factor): Factor in slack = ... + rtol ||J*||^t: the
# drift of an unstable trajectory from the fixed point, ~ u * ||J*||^t (see
# unstable_trajectory_drift); 1e-15 ~ 9 u.
FIXED_POINT_TRAJECTORY_DRIFT = 1e-15
# EIGVALS_2X2_ABS (absolute tolerance): Absolute: rho(W_BELOW) for the fixed W_BELOW = [[2, -2],
# [1.5, -1.5]] (eigenvalues 0 and 1/2, rank 1) from LAPACK's eig vs 1/2: first-order error <=
# cond(lambda) u ||W||_2 ~ 7 * 3.5 u ~ 3e-15 in the worst case; 4e-15 is that bound rounded up.
EIGVALS_2X2_ABS = 4e-15
# FIXED_POINT_RADIUS_TRACE (relative tolerance): rho(J*) of a rank-1 2x2 matrix (det = 0) from
# LAPACK's eig vs its trace 2 - 1.5 tanh'(1): eigenvalue error ~ cond(lambda) u ||J*||, ||J*|| /
# rho(J*) ~ 3: ~ 10 u relative.
FIXED_POINT_RADIUS_TRACE = 1e-14
# PRINTED_SIX_DIGITS (relative tolerance): A value quoted to 6 significant digits (3.46194e8, as in
# the claim's statement): the literal is itself only accurate to ~ 1.5e-6 relative.
PRINTED_SIX_DIGITS = 1e-5
# SATURATED_FIXED_POINT_POWER (relative tolerance): ||dh_60/dh_0|| at a fixed point where dh_t/dh_0
# = (q I)^t vs q^60: 60 products of diagonal 2x2 matrices, one rounding each (~ 60 u ~ 7e-15
# relative) on a contracting trajectory (no drift growth); 1e-12 as jacobian_product.
SATURATED_FIXED_POINT_POWER = 1e-12
# SIGMOID_FIXED_POINT_POWER (relative tolerance): Sigmoid RNN at c* = 1/2: dc_t/dc_0 = diag(0,
# 5/4)^t exactly (sigma'(0) = 1/4); the 60 float products and the complex-step oracle round about
# once per step: ~ 60 u ~ 7e-15 relative; 1e-13 is a margin of ~ 15.
SIGMOID_FIXED_POINT_POWER = 1e-13
# SIGMOID_FIXED_POINT_PRODUCT (relative tolerance): Relative, and absolute times ||W/4||^5: the
# product of 5 one-step Jacobians W/4 (exact: sigma'(0) = 1/4) accumulated step by step vs
# matrix_power: the same value in a different order; ~ 5 n u times the condition of the partial
# products (entries can cancel, hence the absolute term scaled by the norm bound of W^5 / 4^5).
SIGMOID_FIXED_POINT_PRODUCT = 1e-12

STEPS = C.STEPS


def _vec(n, lo, hi):
    return st.lists(st.floats(lo, hi, allow_subnormal=False), min_size=n, max_size=n).map(np.array)


def _square(n, bound):
    return _vec(n * n, -bound, bound).map(lambda v: v.reshape(n, n))


# --- bptt-jacobian-product -------------------------------------------------------------------


def test_bptt_multiplies_one_step_jacobians_not_gradients_refined(audit):
    """'The gradients are multiplied by each other' fails (scalar RNN at 0, w = 1/2, T = 4: the product
    of the per-step gradients is 1/64, dL/dh_0 = 1/16); refined to dh_T/dh_k = J_T ... J_{k+1},
    J_t = diag(phi'(a_t)) W_hh, derived in proofs/rnn_bptt.tex and checked against complex step and BPTT."""
    r = audit("bptt-jacobian-product")
    assert r.status == "refined", r.verdict.evidence
    assert r.verdict.basis.endswith("refinement proved (derivation)")
    ev = r.verdict.evidence["gradients_multiplied_by_each_other"]
    assert ev["product_of_gradients_t_1_to_T"] == "1/64" and ev["dL_dh_0_exact"] == "1/16"
    assert r.verdict.evidence["derivation"] == "rnn_bptt"


@given(C._rnn_cases())
def test_gradient_through_time_is_the_product_of_one_step_jacobians(case):
    """For tanh and sigmoid RNNs: the product of the model's one-step Jacobians equals the
    complex-step dh_T/dh_0, and BPTT's dL/dh_0 for L = <e_i, h_T> is its i-th row
    (proofs/rnn_bptt.tex)."""
    assert C._bptt_case_holds(case)


# --- scalar-repeated-multiplication ----------------------------------------------------------


def test_scalar_claim_is_refined(audit):
    """'> 1 explodes, < 1 vanishes' after 100 multiplications: refined (proofs/scalar.tex)."""
    r = audit("scalar-repeated-multiplication")
    assert r.status == "refined", r.verdict.evidence
    assert r.verdict.evidence["below_one_not_vanishing"]["w"] == -1.0


def test_number_below_one_need_not_vanish_and_number_above_one_need_not_explode():
    """Counterexamples found by the audit: w = -1 < 1 but |w^100| = 1; w = 1 + 2^-8 > 1 but
    w^100 < 1.48 (exact rational arithmetic)."""
    assert abs(Fraction(-1) ** 100) == 1
    w = Fraction(1) + Fraction(1, 256)
    assert w == Fraction(1.00390625) and 1 < w**100 < Fraction(148, 100)


@example((-1.0, 100))  # the audit's counterexample to the claim as written
@given(st.tuples(st.floats(-3, 3), st.integers(0, 400)))
def test_repeated_multiplication_is_decided_by_the_absolute_value(case):
    """|w^n| = |w|^n decreases strictly in n iff 0 < |w| < 1, increases iff |w| > 1, and stays in
    [1/e, e] while n |ln|w|| <= 1 (exact rationals) (proofs/scalar.tex)."""
    assert C.scalar_power_holds(case)


# --- eigenvalue-below-one-vanishes -----------------------------------------------------------

W_BELOW = np.array([[2.0, -2.0], [1.5, -1.5]])  # eigenvalues 0.5 and 0 (found by the audit)
A_BELOW = np.array([0.0, 1.0])


def test_eigenvalue_below_one_claim_is_refined(audit):
    """rho(W_hh) < 1 does not imply vanishing for tanh; ||W_hh||_2 < 1 does (proofs/norm_bound.tex)."""
    r = audit("eigenvalue-below-one-vanishes")
    assert r.status == "refined", r.verdict.evidence


def test_spectral_radius_below_one_does_not_imply_vanishing():
    """Counterexample: tanh RNN, W_hh = [[2, -2], [1.5, -1.5]] (spectral radius 0.5), W_ih = I, constant
    input x = a* - W_hh tanh(a*) with a* = (0, 1), h_0 = tanh(a*): the state stays put, every one-step
    Jacobian is diag(1, 1 - tanh(1)^2) W_hh with spectral radius 1.370 > 1, and ||dh_60/dh_0||_2 =
    3.46e8 (model Jacobians and complex step agree)."""
    assert spectral_radius(W_BELOW) == pytest.approx(0.5, abs=EIGVALS_2X2_ABS)
    run = C.fixed_point_run(W_BELOW, A_BELOW)
    J = C.fixed_point_jacobian(W_BELOW, A_BELOW)
    assert spectral_radius(J) == pytest.approx(
        2.0 - 1.5 * (1 - np.tanh(1.0) ** 2), rel=FIXED_POINT_RADIUS_TRACE
    )  # trace; det = 0
    assert run["norms"][-1] == pytest.approx(3.46194e8, rel=PRINTED_SIX_DIGITS)
    assert np.all(np.diff(run["norms"][1:]) > 0)  # grows at every step
    assert C._oracle_agrees(run)


@example(W_BELOW, A_BELOW)
@given(C._from_eigenvalues(2, 0.9, 3.0), _vec(2, -4.0, 4.0))
def test_gradient_at_a_fixed_point_grows_like_the_spectral_radius_of_its_jacobian(W, a_star):
    """At the fixed point h* = tanh(a*) every one-step Jacobian is J* = diag(tanh'(a*)) W_hh, so
    dh_t/dh_0 = J*^t: ||dh_t/dh_0||_2 >= rho(J*)^t and <= ||J*||_2^t, whatever rho(W_hh) is."""
    run = C.fixed_point_run(W, a_star, steps=20)
    J = C.fixed_point_jacobian(W, a_star)
    rho, norm = spectral_radius(J), spectral_norm(J)
    for t, n in enumerate(run["norms"]):
        # powers of a fixed 2x2 matrix: relative round-off ~ t * 4u per factor, plus the drift
        # of an unstable trajectory ~ u * ||J*||^t (see rnn._oracle_agrees)
        slack = FIXED_POINT_POWER_PER_FACTOR * (t + 1) + FIXED_POINT_TRAJECTORY_DRIFT * norm**t
        assert rho**t * (1 - slack) <= n <= norm**t * (1 + slack) + 1e-300


# --- eigenvalue-above-one-explodes -----------------------------------------------------------

W_ABOVE = np.array([[1.5, 0.0], [0.0, 1.5]])
A_ABOVE = np.array([1.0, 1.0])


def test_eigenvalue_above_one_claim_is_refined(audit):
    """rho(W_hh) > 1 explodes only in the linear regime (h = 0); saturation can make it vanish
    (proofs/linear_rnn.tex)."""
    assert audit("eigenvalue-above-one-explodes").status == "refined"


def test_spectral_radius_above_one_can_vanish_by_saturation():
    """Counterexample: W_hh = 1.5 I (eigenvalues 1.5 > 1), a* = (1, 1): J* = 1.5 (1 - tanh(1)^2) I =
    0.630 I, so ||dh_60/dh_0||_2 = 0.630^60 = 9.2e-13."""
    run = C.fixed_point_run(W_ABOVE, A_ABOVE)
    q = 1.5 * (1 - np.tanh(1.0) ** 2)
    assert run["norms"][-1] == pytest.approx(q**STEPS, rel=SATURATED_FIXED_POINT_POWER)
    assert run["norms"][-1] < 1e-12


@given(C._linear_regime_cases())
def test_at_the_zero_fixed_point_the_gradient_grows_at_least_like_rho_to_the_T(W):
    """With x = 0, b = 0, h_0 = 0 the tanh RNN stays at 0, dh_T/dh_0 = W_hh^T (oracle: matrix_power)
    and ||W_hh^T||_2 >= rho(W_hh)^T (proofs/linear_rnn.tex)."""
    assert C.linear_regime_explodes(W)


# --- sigmoid-bound-is-one, spectral-norm-sufficient, exploding-requires-large-norm -----------


def test_sigmoid_bound_claim_is_refined(audit):
    """sup sigma' = 1/4, not 1: the threshold for a sigmoid RNN is ||W_hh||_2 < 4
    (proofs/activation_bounds.tex, proofs/norm_bound.tex)."""
    r = audit("sigmoid-bound-is-one")
    assert r.status == "refined", r.verdict.evidence
    assert r.verdict.evidence["gamma_sigmoid_symbolic"] == "1/4"


def test_sigmoid_rnn_with_eigenvalue_above_one_vanishes_for_every_input():
    """Counterexample: W_hh = 1.5 I has eigenvalues 1.5 > 1, yet for any input ||dh_t/dh_0||_2 <=
    (1.5/4)^t (shown on a ramp input over 60 steps)."""
    model = rnn(W_ABOVE, nonlinearity="sigmoid")
    x = np.linspace(-3, 3, 2 * STEPS).reshape(STEPS, 2)
    n = norms(jacobian_products(model, x, np.zeros((1, 2))))
    assert all(n[t] <= 0.375**t * (1 + NORM_BOUND_PER_FACTOR.value * (t + 1)) for t in range(STEPS + 1))


@pytest.mark.parametrize("nonlinearity", ["tanh", "sigmoid"])
@given(data=st.data())
def test_gradient_norm_bounded_by_gamma_times_spectral_norm_power(nonlinearity, data):
    """||dh_t/dh_0||_2 <= (gamma ||W_hh||_2)^t, gamma = 1 (tanh), 1/4 (sigmoid), for gamma ||W_hh||_2 in
    [0.3, 1]: sufficient for vanishing when < 1, no explosion when = 1 (Pascanu et al. 2013, §2.1;
    proofs/norm_bound.tex). Model Jacobians checked against complex step."""
    model, x, h0 = data.draw(C._bounded_rnn_cases(nonlinearity, (0.3, 1.0)))
    assert C.bound_holds(model, x, h0, float(ACTIVATIONS[nonlinearity].gamma))


@pytest.mark.parametrize("claim_id", ["spectral-norm-sufficient-for-vanishing", "exploding-requires-large-norm"])
def test_pascanu_norm_conditions_are_proved(audit, claim_id):
    """lambda_1 < 1/gamma suffices for vanishing; lambda_1 > 1/gamma is necessary for exploding
    (proofs/norm_bound.tex, with the numeric bound above as spot check)."""
    r = audit(claim_id)
    assert r.status == "proved", r.verdict.evidence


# --- tanh-derivative-below-one ---------------------------------------------------------------


def test_tanh_derivative_claim_is_refined(audit):
    """tanh' < 1 fails at a = 0; 0 < tanh' <= 1 with equality only at 0 (proofs/activation_bounds.tex)."""
    r = audit("tanh-derivative-below-one")
    assert r.status == "refined", r.verdict.evidence
    assert r.verdict.evidence["counterexample"]["a"] == 0.0


@example(0.0)
@example(1e-300)  # float64 says tanh'(1e-300) == 1.0; the exact value is 1 - 1e-600 < 1
@given(st.floats(-30, 30))
def test_tanh_derivative_is_at_most_one_with_equality_only_at_zero(a):
    """0 < tanh'(a) <= 1, = 1 iff a = 0 (decided at 60 digits)."""
    assert C.tanh_derivative_precise(a)


def test_float64_tanh_derivative_rounds_to_one_near_zero():
    """In float64 1 - tanh(a)^2 == 1.0 for |a| < ~1.05e-8 (tanh(a)^2 < u): the strict inequality is
    invisible in floating point there."""
    assert 1.0 - np.tanh(7e-9) ** 2 == 1.0
    assert 1.0 - np.tanh(1e-7) ** 2 < 1.0


# --- seed 004: sigmoid RNN -------------------------------------------------------------------

W_SIG = np.array([[0.0, 0.0], [0.0, 5.0]])


def test_sigmoid_rnn_vanishing_claim_is_refined(audit):
    """Vanishes if ||W_rec||_2 < 4 (proofs/seed004_sigmoid.tex), not in general."""
    assert audit("sigmoid-rnn-gradient-vanishes").status == "refined"
    r = audit("strong-weights-can-explode")
    assert r.status == "proved"  # exact witnesses: fixed points whose Jacobian is phi'(0) W_rec in closed form
    assert r.verdict.basis == "statement holds (exact witness)"


def test_sigmoid_rnn_gradient_grows_when_recurrent_norm_exceeds_four():
    """Counterexample: c_t = sigma(W_rec c_{t-1} + x_t), W_rec = diag(0, 5), x_t = (0, -2.5) = -W_rec c*,
    c_0 = c* = (1/2, 1/2): sigma'(0) = 1/4, so dc_t/dc_0 = diag(0, 5/4)^t; ||dc_60/dc_0|| = 1.25^60 = 6.5e5."""
    run = C.fixed_point_run(W_SIG, np.zeros(2), "sigmoid")
    np.testing.assert_array_equal(run["x"], [0.0, -2.5])
    np.testing.assert_array_equal(run["h0"], [0.5, 0.5])
    tol = SIGMOID_FIXED_POINT_POWER
    assert run["norms"][-1] == pytest.approx(1.25**STEPS, rel=tol)
    np.testing.assert_allclose(run["oracle"], np.diag([0.0, 1.25**STEPS]), rtol=tol)


@example(W_SIG, np.zeros(2))
@given(_square(2, 10.0), st.just(np.zeros(2)))
def test_sigmoid_fixed_point_at_one_half_multiplies_gradients_by_w_over_four(W, a_star):
    """At c* = 1/2 (a* = 0) every one-step Jacobian of the sigmoid RNN is W_rec / 4."""
    np.testing.assert_array_equal(C.fixed_point_jacobian(W, a_star, "sigmoid"), W / 4)
    run = C.fixed_point_run(W, a_star, "sigmoid", steps=5)
    tol = SIGMOID_FIXED_POINT_PRODUCT
    np.testing.assert_allclose(
        run["P"][-1], np.linalg.matrix_power(W / 4, 5), rtol=tol, atol=tol * np.linalg.norm(W / 4, 2) ** 5
    )
