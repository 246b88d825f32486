"""The oracles themselves, against functions whose derivatives are known in closed form."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory._tolerances import UNIT_ROUNDOFF
from gradtheory.oracles import (
    central_difference,
    complex_step,
    directional_derivative,
    exact_directional_derivative,
    jacobian,
    richardson,
)

# COMPLEX_STEP_ANALYTIC (dimensionless factor): Factor c in abs = c N u sum|df_i v_i| (N = x.size):
# Im f(x + ihv)/h equals grad f . v to a few ulps of sum |df_i v_i| (no cancellation; N terms
# summed).
COMPLEX_STEP_ANALYTIC = 8.0
# COMPLEX_STEP_TINY_DERIVATIVE (dimensionless factor): Factor c in rel = c u: with derivatives
# ~1e-290 the imaginary part h f' would fall into the subnormal range at h = 1e-20; the oracle
# enlarges h and keeps ~u accuracy.
COMPLEX_STEP_TINY_DERIVATIVE = 8.0
# CENTRAL_DIFFERENCE_ROUNDOFF (dimensionless factor): Factor c in the round-off term c u |f| N / h
# of |D_h - f'v| <= h^2/6 max|f^(3)| ||v||^3 + round-off: f = sum exp(sin x) over N terms is
# evaluated to ~ N u |f| at each of the two points, their difference is divided by 2h; c = 4 is a
# margin of 4 over N u |f| / h.
CENTRAL_DIFFERENCE_ROUNDOFF = 4.0
# RICHARDSON_ESTIMATE_SIZE (dimensionless factor): Factor in r.error < rtol (1 + ||v||_1^3): the
# error estimate must be small as well as honest. Richardson (4 levels from h = 1e-2) on f = sum
# exp(sin x): the estimate is the last correction, O(h^6) truncation with derivatives growing like
# ||v||^k, plus round-off ~ u |f| / h_min ~ 1e-13; 1e-8 (1 + ||v||_1^3) is far above the truncation
# of a smooth O(1) function and far below an O(1) estimate.
RICHARDSON_ESTIMATE_SIZE = 1e-8
# LINEAR_JACOBIAN_ABS (absolute tolerance): Absolute, per entry: a linear map has zero truncation
# error: only round-off ~ u |A x| / h remains (h = 1e-5 central, h = 1e-2 Richardson: <= ~1e-11
# here; complex step ~ u).
LINEAR_JACOBIAN_ABS = 1e-9


def f_exp_sin(v):
    return np.sum(np.exp(np.sin(v)))


def df_exp_sin(v):
    return np.exp(np.sin(v)) * np.cos(v)


@given(st.lists(st.floats(-2, 2), min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_complex_step_is_exact_to_roundoff_on_analytic_function(values, seed):
    """Im f(x + ihv)/h equals grad f . v to a few ulps of sum |df_i v_i| (no cancellation)."""
    x = np.array(values)
    v = np.random.default_rng(seed).normal(size=x.shape)
    exact = np.sum(df_exp_sin(x) * v)
    scale = np.sum(np.abs(df_exp_sin(x) * v))
    assert abs(complex_step(f_exp_sin, x, v) - exact) <= COMPLEX_STEP_ANALYTIC * x.size * UNIT_ROUNDOFF * scale


@given(st.floats(1e-290, 1e-250))
@example(1.6266473e-301 * 1e10)
def test_complex_step_keeps_full_precision_for_tiny_derivatives(c):
    """Found by Hypothesis on the model tests: with derivatives ~1e-290 the imaginary part
    h f' falls into the subnormal range at h = 1e-20; the oracle enlarges h and keeps ~u accuracy."""
    x = np.array([0.3, -0.7])
    got = complex_step(lambda v: c * np.sum(np.tanh(v)), x, np.ones(2))
    exact = c * np.sum(1 - np.tanh(x) ** 2)
    assert abs(got - exact) <= COMPLEX_STEP_TINY_DERIVATIVE * UNIT_ROUNDOFF * abs(exact)


@given(st.lists(st.floats(-2, 2), min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_central_difference_error_within_truncation_plus_roundoff_bound(values, seed):
    r"""|D_h - f'v| <= h^2/6 max|f'''| ||v||^3 + u |f| / h. For f = sum exp(sin x):
    |d^3/dx^3 exp(sin x)| <= 6 e (crude: each of the 3 terms of the third derivative is <= 2e);
    taking h = 1e-5 the bound is ~1e-10 * ||v||^3 + 1e-11 * |f|."""
    x = np.array(values)
    v = np.random.default_rng(seed).normal(size=x.shape)
    h = 1e-5
    exact = np.sum(df_exp_sin(x) * v)
    c_round = CENTRAL_DIFFERENCE_ROUNDOFF
    bound = h**2 / 6 * 6 * np.e * np.sum(np.abs(v) ** 3) + c_round * UNIT_ROUNDOFF * abs(f_exp_sin(x)) * x.size / h
    assert abs(central_difference(f_exp_sin, x, v, h) - exact) <= bound


@given(st.lists(st.floats(-2, 2), min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_richardson_error_estimate_bounds_actual_error(values, seed):
    """The returned error estimate is an honest upper bound of the actual error."""
    x = np.array(values)
    v = np.random.default_rng(seed).normal(size=x.shape)
    r = richardson(f_exp_sin, x, v)
    exact = np.sum(df_exp_sin(x) * v)
    assert abs(r.value - exact) <= r.error
    assert r.error < RICHARDSON_ESTIMATE_SIZE * (1 + np.sum(np.abs(v)) ** 3)


def test_jacobian_of_linear_map_is_its_matrix_for_every_method():
    A = np.arange(6.0).reshape(2, 3) - 2.5
    x = np.array([0.1, 0.2, -0.3])
    for method in ("complex", "richardson", "central"):
        # a linear map has zero truncation error: only round-off ~ u |A x| / h remains
        np.testing.assert_allclose(jacobian(lambda v: A @ v, x, method=method), A, rtol=0, atol=LINEAR_JACOBIAN_ABS)
    np.testing.assert_array_equal(jacobian(lambda v: A @ v, x, method="complex"), A)
    with pytest.raises(ValueError, match="method='forward' is unknown"):
        directional_derivative(lambda v: v, x, x, method="forward")


def test_exact_oracle_is_rational_for_identity_rnn_and_matches_hand_computation():
    """h1 = w x1 (scalar identity RNN, no bias), h2 = w h1 + w x2... L = h2; dL/dw_hh = h1.
    With float inputs 0.5 and 0.25 everything is a dyadic rational and the result is exact."""
    model = gt.RNN(
        1, 1, nonlinearity="identity", bias=False, params={"weight_ih_l0": [[0.5]], "weight_hh_l0": [[0.25]]}
    )
    x = np.array([[1.0], [2.0]])
    L, dL = exact_directional_derivative(
        model, x, {"weight_hh_l0": np.array([[1.0]])}, d_output=np.array([[0.0], [1.0]])
    )
    # h1 = 0.5, h2 = 0.25*0.5 + 0.5*2 = 1.125; dh2/dw_hh = h1 = 0.5
    assert L == Fraction(9, 8) and dL == Fraction(1, 2)
    assert isinstance(dL, Fraction)


def test_exact_oracle_rejects_unsupported_models():
    with pytest.raises(NotImplementedError, match="single unidirectional layer"):
        exact_directional_derivative(gt.GRU(1, 1, num_layers=2), np.zeros((2, 1)), {}, d_output=np.zeros((2, 1)))
    opaque = type("OpaqueCell", (gt.cells.get("rnn").cell,), {"equations": None})()  # no scalar form
    with pytest.raises(TypeError, match="got RecurrentModel"):
        exact_directional_derivative(
            gt.RecurrentModel(1, 1, cell=opaque), np.zeros((2, 1)), {}, d_output=np.zeros((2, 1))
        )
