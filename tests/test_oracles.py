"""The oracles themselves, against functions whose derivatives are known in closed form."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory._tolerances import TOLERANCES, UNIT_ROUNDOFF
from gradtheory.oracles import (
    central_difference,
    complex_step,
    directional_derivative,
    exact_directional_derivative,
    jacobian,
    richardson,
)


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
    assert (
        abs(complex_step(f_exp_sin, x, v) - exact)
        <= TOLERANCES["complex_step_analytic"].rtol * x.size * UNIT_ROUNDOFF * scale
    )


@given(st.floats(1e-290, 1e-250))
@example(1.6266473e-301 * 1e10)
def test_complex_step_keeps_full_precision_for_tiny_derivatives(c):
    """Found by Hypothesis on the model tests: with derivatives ~1e-290 the imaginary part
    h f' falls into the subnormal range at h = 1e-20; the oracle enlarges h and keeps ~u accuracy."""
    x = np.array([0.3, -0.7])
    got = complex_step(lambda v: c * np.sum(np.tanh(v)), x, np.ones(2))
    exact = c * np.sum(1 - np.tanh(x) ** 2)
    assert abs(got - exact) <= TOLERANCES["complex_step_tiny_derivative"].rtol * UNIT_ROUNDOFF * abs(exact)


@given(st.lists(st.floats(-2, 2), min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_central_difference_error_within_truncation_plus_roundoff_bound(values, seed):
    r"""|D_h - f'v| <= h^2/6 max|f'''| ||v||^3 + u |f| / h. For f = sum exp(sin x):
    |d^3/dx^3 exp(sin x)| <= 6 e (crude: each of the 3 terms of the third derivative is <= 2e);
    taking h = 1e-5 the bound is ~1e-10 * ||v||^3 + 1e-11 * |f|."""
    x = np.array(values)
    v = np.random.default_rng(seed).normal(size=x.shape)
    h = 1e-5
    exact = np.sum(df_exp_sin(x) * v)
    c_round = TOLERANCES["central_difference_roundoff"].rtol
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
    assert r.error < TOLERANCES["richardson_estimate_size"].rtol * (1 + np.sum(np.abs(v)) ** 3)


def test_jacobian_of_linear_map_is_its_matrix_for_every_method():
    A = np.arange(6.0).reshape(2, 3) - 2.5
    x = np.array([0.1, 0.2, -0.3])
    for method in ("complex", "richardson", "central"):
        # a linear map has zero truncation error: only round-off ~ u |A x| / h remains
        np.testing.assert_allclose(
            jacobian(lambda v: A @ v, x, method=method), A, rtol=0, atol=TOLERANCES["linear_jacobian_abs"].rtol
        )
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
