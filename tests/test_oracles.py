"""The oracles themselves, against functions whose derivatives are known in closed form."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from helpers import HalfTanhCell
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
    x, v = np.array([0.3, -0.7]), np.array([2.0, -0.5])
    got = complex_step(lambda z: c * np.sum(np.tanh(z)), x, v)
    exact = c * np.sum((1 - np.tanh(x) ** 2) * v)
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


# -- Richardson: exact on low-degree polynomials, its error estimate term by term ----------------
def _richardson_weights_exact(levels: int) -> list[Fraction]:
    """Weights c_k of the fully extrapolated entry from the central differences D(h/2^k), by exact
    linear algebra (independent of the table): D(h_k) = f' + sum_{j >= 1} a_j h_k^(2j), so the
    extrapolant keeps f' (sum c_k = 1) and cancels h^2 .. h^(2(levels-1)) (sum c_k 4^(-jk) = 0)."""
    import sympy

    A = sympy.Matrix(levels, levels, lambda j, k: sympy.Rational(1, 4 ** (j * k)))
    c = A.LUsolve(sympy.Matrix([1] + [0] * (levels - 1)))
    return [Fraction(int(q.p), int(q.q)) for q in c]


@pytest.mark.parametrize("levels", [3, 4, 5])
def test_richardson_is_exact_to_roundoff_for_polynomials_of_degree_two_times_levels(levels):
    """The central difference of a polynomial of degree d is f' + sum_{j <= (d-1)/2} a_j h^(2j) (a
    polynomial in h); ``levels`` levels cancel h^2 .. h^(2(levels-1)), so for d = 2 levels the
    extrapolant is f'(x) v exactly up to the round-off of the table (division by 4^j - 1), even at a
    step as large as h = 1/2. One level fewer leaves an O(h^(2 levels - 2)) term of size ~1."""
    d = 2 * levels
    x, v = np.array([0.75]), np.array([1.0])  # dyadic: x +- h_k v and their powers are exact

    def f(z):
        return z**d

    exact = d * 0.75 ** (d - 1)
    r = richardson(f, x, v, h=0.5, levels=levels)
    # table round-off: each of the levels(levels-1)/2 divisions by 4^j - 1 adds <= u relative to
    # entries of size <= |D(h)| <= 2^d; 4 u 2^d levels^2 is a margin of 8 over that count.
    roundoff = 4 * UNIT_ROUNDOFF * 2.0**d * levels**2
    assert abs(r.value[0] - exact) <= roundoff
    assert abs(r.value[0] - exact) <= r.error[0]
    short = richardson(f, x, v, h=0.5, levels=levels - 1)
    assert abs(short.value[0] - exact) > 1e4 * roundoff  # the h^(2 levels - 2) term is not cancelled


@pytest.mark.parametrize("levels", [None, 2, 3, 6])
def test_richardson_roundoff_estimate_is_eps_f_times_the_weighted_sum_of_inverse_steps(levels):
    """On a linear function with dyadic data every central difference is exact, so the truncation
    part of the estimate is 0 and the error equals the round-off part
    eps_f sum_k |c_k| / h_k, with c_k the exact extrapolation weights and eps_f = max(f_error,
    8 u max|f|) (default f_error: 8 u max|f|). ``levels=None``: the default, 4 levels."""
    x, v, h = np.array([0.5, -1.25]), np.array([1.0, 0.5]), 0.125

    def f(z):
        return np.array([3.0 * z[0] - z[1], z[1]])

    n = 4 if levels is None else levels
    kwargs = {} if levels is None else {"levels": levels}
    steps = [Fraction(1, 8) / 2**k for k in range(n)]
    weighted = float(sum(abs(c) / hk for c, hk in zip(_richardson_weights_exact(n), steps)))
    f_max = max(float(np.max(np.abs(f(x + float(hk) * v)))) for hk in steps)
    f_max = max(f_max, *(float(np.max(np.abs(f(x - float(hk) * v)))) for hk in steps))
    for f_error, eps_f in ((None, 8 * UNIT_ROUNDOFF * f_max), (1e-3, 1e-3), (1e-300, 8 * UNIT_ROUNDOFF * f_max)):
        r = richardson(f, x, v, h=h, f_error=f_error, **kwargs)
        np.testing.assert_array_equal(r.value, f(v) - f(np.zeros(2)))  # the exact derivative, no round-off
        # the estimate is a sum of levels terms, each to ~u: 1e-13 relative is a wide margin
        np.testing.assert_allclose(r.error, eps_f * weighted, rtol=1e-13, atol=0)


def test_directional_derivative_and_jacobian_use_the_method_they_are_given():
    """directional_derivative(method=m) is exactly the named oracle, and jacobian(method=m) stacks
    exactly those columns; on a non-polynomial function the three methods give different values."""
    x = np.array([0.3, -1.1, 0.8])
    v = np.array([0.5, 0.25, -1.0])
    by_method = {
        "complex": complex_step(f_exp_sin, x, v),
        "richardson": richardson(f_exp_sin, x, v).value,
        "central": central_difference(f_exp_sin, x, v),
    }
    for method, value in by_method.items():
        np.testing.assert_array_equal(directional_derivative(f_exp_sin, x, v, method=method), value)
        J = jacobian(f_exp_sin, x, method=method)
        oracle = {"complex": complex_step, "central": central_difference}.get(method)
        cols = [(oracle(f_exp_sin, x, e) if oracle else richardson(f_exp_sin, x, e).value) for e in np.eye(3)]
        np.testing.assert_array_equal(J, np.stack(cols, axis=-1))
    # the defaults: complex step, and h = 1e-5 for the central difference
    np.testing.assert_array_equal(directional_derivative(f_exp_sin, x, v), by_method["complex"])
    np.testing.assert_array_equal(jacobian(f_exp_sin, x), jacobian(f_exp_sin, x, method="complex"))
    np.testing.assert_array_equal(central_difference(f_exp_sin, x, v), central_difference(f_exp_sin, x, v, h=1e-5))
    values = sorted(float(v) for v in by_method.values())
    assert values[0] != values[1] != values[2]


def test_jacobian_of_an_empty_argument_has_the_shape_of_f_times_nothing():
    """An empty parameter (a cell without a recurrent weight): shape f(x).shape + x.shape, no calls
    with a perturbed argument."""
    J = jacobian(lambda z: np.concatenate([z.sum(axis=0), [1.0]]), np.zeros((0, 4)))
    assert J.shape == (5, 0, 4)
    assert complex_step(lambda z: z[:0], np.ones(3), np.ones(3)).shape == (0,)  # an empty f is fine too


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: central_difference(f_exp_sin, np.zeros(2), np.ones(2), h=0.0),
            r"h must be a positive float, got 0\.0",
        ),
        (lambda: central_difference(f_exp_sin, "abc", np.ones(2)), r"^x must be"),
        (lambda: richardson(f_exp_sin, "abc", np.ones(2)), r"^x must be"),
        (lambda: jacobian(f_exp_sin, "abc"), r"^x must be"),
        (lambda: complex_step(f_exp_sin, "abc", np.ones(2)), r"^x must be"),
        (lambda: complex_step(f_exp_sin, np.zeros(2), "abc"), r"^v must be"),
        (
            lambda: gt.oracles.model_loss(gt.RNN(1, 1), np.zeros((2, 1)), wrt="bogus", d_output=np.zeros((2, 1))),
            r"wrt='bogus' is unknown; expected 'x', 'h0', 'c0' or one of \['bias_hh_l0', 'bias_ih_l0', 'weight_hh_l0'",
        ),
        (lambda: complex_step(f_exp_sin, np.zeros(2), np.ones(3)), r"v must have the shape of x \(2,\), got \(3,\)"),
        (lambda: richardson(f_exp_sin, np.zeros(2), np.ones(2), levels=1), r"levels"),
    ],
)
def test_oracles_refuse_bad_arguments_by_name(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


# -- the dual numbers of the exact oracle -------------------------------------------------------
def test_dual_numbers_differentiate_rational_functions_exactly():
    """a + b eps (eps^2 = 0) over Fraction: every operator, with a dual or a plain number on either
    side, carries the exact derivative. For p(t) = (t*t - 2 + 3) / (1 - t) + 5 - t * 2 - t / 4 + 7 / t
    at t = 3/2 with tangent 3: p'(t) = (2t(1 - t) + (t^2 + 1)) / (1 - t)^2 - 2 - 1/4 - 7 / t^2, by hand."""
    from gradtheory.oracles import _Dual

    t0 = Fraction(3, 2)
    t = _Dual(t0, Fraction(3))  # tangent 3: every derivative below is 3 p'(t)
    p = (t * t - 2 + 3) / (1 - t) + 5 - t * 2 - t / 4 + 7 / t
    p = (p + t) - t  # dual + dual and dual - dual
    value = (t0 * t0 + 1) / (1 - t0) + 5 - 2 * t0 - t0 / 4 + 7 / t0
    slope = (2 * t0 * (1 - t0) + (t0 * t0 + 1)) / (1 - t0) ** 2 - 2 - Fraction(1, 4) - 7 / t0**2
    assert (p.a, p.b) == (value, 3 * slope)
    q = 2 + t  # radd
    assert (q.a, q.b) == (t0 + 2, 3)


# -- the exact oracle on cells the registry does not hold ----------------------------------------
# EXACT_VS_FLOAT (relative tolerance): the exact oracle at 50 digits is exact to 1e-50; the float64
# forward of T = 4 steps on 3 units is accurate to ~10 u per entry (tanh, a dot product of 5 terms,
# the average), summed into L with weights of size <= 1: 1e-13 relative to sum |d_out| is a margin
# of ~50. The complex-step derivative is exact to ~u of its own terms: the same margin.
EXACT_VS_FLOAT = 1e-13


def test_exact_oracle_on_a_user_cell_without_activation_or_rational_is_mpmath_and_agrees_with_float64():
    """A cell with equations but neither ``activation`` nor ``rational``: tanh is not rational, so
    the oracle works in mpmath at ``dps`` digits (50 and 80 agree to 1e-45), leaves the global mpmath
    precision alone, accepts h0 as (H,), and its (L, dL) equal the float64 forward's loss and the
    complex-step derivative along the same direction (parameters, x and h0 at once)."""
    import mpmath

    model = gt.RecurrentModel(2, 3, cell=HalfTanhCell(), seed=5)
    rng = np.random.default_rng(5)
    x, h0, d_out = rng.uniform(-1, 1, (4, 2)), rng.uniform(-1, 1, 3), rng.uniform(-1, 1, (4, 3))
    direction = {k: rng.uniform(-1, 1, v.shape) for k, v in model.params.items()}
    direction |= {"x": rng.uniform(-1, 1, x.shape), "h0": rng.uniform(-1, 1, 3)}
    before = mpmath.mp.dps
    L, dL = exact_directional_derivative(model, x, direction, d_output=d_out, h0=h0)
    L80, dL80 = exact_directional_derivative(model, x, direction, d_output=d_out, h0=h0, dps=80)
    assert mpmath.mp.dps == before
    assert type(L).__name__ == type(dL).__name__ == "mpf"  # of the oracle's own mpmath context
    assert abs(L - L80) < mpmath.mpf(10) ** -45 and abs(dL - dL80) < mpmath.mpf(10) ** -45
    names = list(model.params)

    def loss(theta):
        params, i = {}, 0
        for n in names:
            params[n] = theta[i : i + model.params[n].size].reshape(model.params[n].shape)
            i += model.params[n].size
        xx = theta[i : i + x.size].reshape(x.shape)
        hh = theta[i + x.size :].reshape(1, 3)
        return np.sum(d_out * model.apply(params, xx, hh).output)

    theta = np.concatenate([model.params[n].ravel() for n in names] + [x.ravel(), h0])
    tangent = np.concatenate([direction[n].ravel() for n in names] + [direction["x"].ravel(), direction["h0"]])
    scale = np.sum(np.abs(d_out))
    assert abs(float(L) - loss(theta)) <= EXACT_VS_FLOAT * scale
    assert abs(float(dL) - complex_step(loss, theta, tangent)) <= EXACT_VS_FLOAT * scale * np.sum(np.abs(tangent))


def test_exact_oracle_carries_the_second_state_direction_and_cotangent():
    """LSTM: a direction on c0 alone moves L through c, and d_c_n adds <d_c_n, c_T>; both against the
    complex step of the float64 forward."""
    model = gt.LSTM(2, 2, seed=6)
    rng = np.random.default_rng(6)
    x, d_out = rng.uniform(-1, 1, (3, 2)), rng.uniform(-1, 1, (3, 2))
    h0, c0, d_cn = rng.uniform(-1, 1, (1, 2)), rng.uniform(-1, 1, (1, 2)), rng.uniform(-1, 1, (1, 2))
    w = rng.uniform(-1, 1, 2)
    _, dL = exact_directional_derivative(model, x, {"c0": w}, d_output=d_out, h0=(h0, c0), d_c_n=d_cn)
    f, point = gt.oracles.model_loss(model, x, wrt="c0", d_output=d_out, h0=(h0, c0), d_c_n=d_cn)
    ref = complex_step(f, point, w.reshape(1, 2))
    assert abs(float(dL) - ref) <= EXACT_VS_FLOAT * (np.sum(np.abs(d_out)) + np.sum(np.abs(d_cn)))
    assert abs(ref) > 1e-3  # c0 does reach the loss


def test_exact_oracle_uses_relu_derivative_zero_at_the_kink():
    """relu at a pre-activation of exactly 0 has derivative 0 (torch's and the numpy kernel's
    convention): with every weight 0 and the direction on the input bias, dL = 0 exactly; moving the
    bias to 1/4 puts every step on the linear side, where dL = sum_t d_out_t."""
    model = gt.RNN(1, 1, nonlinearity="relu", params={k: np.zeros(s) for k, s in gt.RNN(1, 1).param_shapes().items()})
    x, d_out = np.zeros((3, 1)), np.array([[1.0], [2.0], [4.0]])
    L, dL = exact_directional_derivative(model, x, {"bias_ih_l0": np.ones(1)}, d_output=d_out)
    assert (L, dL) == (0, 0) and isinstance(dL, Fraction)
    grads = model.backward(model.forward(x), d_out)
    assert grads.params["bias_ih_l0"][0] == 0.0
    model.params = dict(model.params, bias_ih_l0=np.array([0.25]))
    _, dL = exact_directional_derivative(model, x, {"bias_ih_l0": np.ones(1)}, d_output=d_out)
    assert dL == 7


def test_exact_oracle_refuses_what_it_cannot_evaluate_by_name():
    """A 1-D x and a cell with no ``equations`` attribute at all are refused with the argument named."""
    with pytest.raises(ValueError, match="^x must have 2 dimensions"):
        exact_directional_derivative(gt.RNN(1, 1), np.zeros(3), {}, d_output=np.zeros((3, 1)))
    bare = HalfTanhCell()
    no_equations = type(
        "NoEquations",
        (),
        {
            k: getattr(bare, k)
            for k in ("gates", "n_states", "additive", "recurrence", "step", "step_backward", "step_jacobian")
        },
    )()
    with pytest.raises(TypeError, match="cell has an independent scalar form"):
        exact_directional_derivative(
            gt.RecurrentModel(1, 1, cell=no_equations), np.zeros((2, 1)), {}, d_output=np.zeros((2, 1))
        )


def test_complex_step_with_a_tiny_explicit_step_and_a_tiny_derivative_is_still_accurate():
    """h = 1e-250 with f' ~ 1e-60: h f' ~ 1e-310 is subnormal, so the step is enlarged to land h f'
    near 1e-200 (h ~ 1e-140); computed as h (1e-200 / |h f'|) it never underflows to a zero step
    (before: h * 1e-200 = 0, and the result was NaN)."""
    x, v = np.array([0.3, -0.7]), np.array([1.0, 0.5])
    got = complex_step(lambda z: 1e-60 * np.sum(np.tanh(z)), x, v, h=1e-250)
    exact = 1e-60 * np.sum((1 - np.tanh(x) ** 2) * v)
    assert abs(got - exact) <= COMPLEX_STEP_TINY_DERIVATIVE * UNIT_ROUNDOFF * abs(exact)


def test_complex_step_evaluates_f_once_unless_the_derivative_would_be_subnormal():
    """The step is enlarged (a second evaluation) only when |h f'(x) v| < 2^-969 and h < 1e-10: an
    O(1) derivative, an exactly zero one, and a tiny one at an explicit h = 1e-10 cost one call; a tiny
    one at the default h costs two."""
    calls = []

    def counted(scale):
        def f(z):
            calls.append(z)
            return scale * np.sum(np.tanh(z))

        return f

    x, v = np.array([0.3, -0.7]), np.array([1.0, 0.5])
    for scale, h, expected in ((1.0, 1e-20, 1), (0.0, 1e-20, 1), (1e-295, 1e-10, 1), (1e-295, 1e-20, 2)):
        calls.clear()
        complex_step(counted(scale), x, v, h=h)
        assert len(calls) == expected, (scale, h)
