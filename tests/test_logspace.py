"""The log-space helpers under gradient_flow and the Lyapunov estimates (``gradtheory._logspace``).

Statements:

* ``add`` (Neumaier-compensated summation) returns ``total + comp`` within
  ``u |S| + n^2 u^2 sum|x_i|`` of the exact sum S (Higham, *Accuracy and Stability of Numerical
  Algorithms*, 2nd ed., section 4.3; oracle: ``math.fsum``, the correctly rounded sum);
* ``norm`` is the Euclidean norm, without underflow or overflow of the sum of squares, for
  entries anywhere in float64's range (oracle: ``math.hypot``, which scales internally);
* the renormalisation blocks of the fast kernels shrink to one step when a single Jacobian's norm
  is near the float64 limit, so the flow stays exact where a block of two would overflow.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory import _logspace
from gradtheory._tolerances import UNIT_ROUNDOFF as u
from gradtheory.bounds import gradient_flow, lyapunov_exponent

# NEUMAIER_SUM (derivation): each step's error e_i = (a - t) + b is exact (Fast2Sum on the ordered
# pair), |e_i| <= u |t_i| <= u sum|x|; summing the n errors in floating point commits <= n u
# sum|e_i| <= n^2 u^2 sum|x|; the final total + comp rounds once more (u |S|). Factor 2 on both
# terms for the second-order terms dropped.
NEUMAIER_SUM_ROUNDING = 2.0
# NORM_VS_HYPOT (relative): sqrt of a dot product of n scaled entries: (n + 1) u for the dot
# product, u for the sqrt, u for the scaling back; math.hypot is accurate to ~1 u. 2 (n + 3) u.
NORM_VS_HYPOT_FACTOR = 2.0

finite_terms = st.floats(-1e300, 1e300, allow_nan=False, allow_subnormal=False)


@given(st.lists(finite_terms, min_size=1, max_size=40))
@example([1.0, 2.0**-53, 2.0**-53, 4.0, -4.0, -1.0])  # errors carried past a larger term
@example([0.5, 2.0**60, 3.0, -(2.0**60), 2.0**-30])
@example([3.0, 1e16, 1.0, -1e16, 2.0**-20])
def test_compensated_sum_is_within_the_neumaier_bound_of_the_exact_sum(terms):
    """total + comp from repeated ``add`` is within u|S| + n^2 u^2 sum|x_i| of the exact sum."""
    total, comp = 0.0, 0.0
    for x in terms:
        total, comp = _logspace.add(total, comp, x)
    exact = math.fsum(terms)
    n = len(terms)
    bound = NEUMAIER_SUM_ROUNDING * (u * abs(exact) + n * n * u * u * math.fsum(abs(x) for x in terms))
    assert abs((total + comp) - exact) <= bound


@given(
    st.lists(st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False), min_size=0, max_size=12),
    st.integers(-1000, 1000),
)
@example([1.0, 1.0], -700)  # sum of squares underflows: 2^-1400
@example([1.0, -1.0, 0.5], 700)  # sum of squares overflows
@example([0.75, 0.0], -520)  # norm in (1e-157, 1e-156): below the unscaled branch
def test_norm_is_the_euclidean_norm_at_any_magnitude(entries, exponent):
    """norm(v) = ||v||_2 for v = 2^e w (w in [-1, 1]^n, scaling by a power of two is exact),
    whether the sum of squares would underflow or overflow, and 0 for an empty vector."""
    v = np.ldexp(np.array(entries, dtype=np.float64), exponent)
    if not np.all(np.isfinite(v)):
        return
    expected = math.hypot(*v)
    got = _logspace.norm(v)
    assert abs(got - expected) <= NORM_VS_HYPOT_FACTOR * (v.size + 3) * u * expected


def test_norm_of_a_non_finite_vector_is_not_finite():
    """An infinite entry gives inf, a NaN entry NaN: never a finite number that hides them."""
    assert _logspace.norm(np.array([1.0, np.inf, 0.0])) == np.inf
    assert math.isnan(_logspace.norm(np.array([1.0, np.nan, 1e300])))


# GAIN_NEAR_FLOAT_LIMIT_ABS (absolute, on ln-norms): W = g I, identity, zero state: every backward
# step multiplies a unit vector by g (1 rounding, exact for g a power of two) and adds ln g to a
# compensated total (2 u |S|, see above); 4 u |S| is the margin.
GAIN_NEAR_FLOAT_LIMIT_REL = 4 * u


@pytest.mark.parametrize("errors", ["raise", "warn"])
@pytest.mark.parametrize("g", [2.0**600, 2.0**20])
def test_flow_with_one_step_gains_near_the_float64_limit_is_exact(g, errors):
    """Elman (fast kernel) with W_hh = g I, identity activation, zero input and state: J_t = g I,
    so flow[k] = (T - k) ln g and the Lyapunov exponent is ln g exactly, even for g = 2^600 where
    the product of two Jacobians (2^1200) overflows float64: the renormalisation blocks must
    shrink to one step. For g = 2^20 a block of 128 steps would reach 2^2560 (overflow). The
    blocks that leave the float range on the way are redone step by step silently, under any
    numpy error state (found by this test: a raising error state made it a FloatingPointError)."""
    T = 40
    model = gt.RNN(1, 2, nonlinearity="identity", bias=False, seed=0)
    model.params["weight_hh_l0"] = g * np.eye(2)
    model.params["weight_ih_l0"] = np.zeros((2, 1))
    x = np.zeros((T, 1))
    with np.errstate(all=errors), warnings.catch_warnings():
        warnings.simplefilter("error")
        flow = gradient_flow(model, x)
        growth = lyapunov_exponent(model, x, v0=np.array([1.0, 0.0]))
    expected = (T - np.arange(T + 1)) * math.log(g)
    np.testing.assert_allclose(flow, expected, rtol=GAIN_NEAR_FLOAT_LIMIT_REL, atol=0)
    assert growth == pytest.approx(math.log(g), rel=GAIN_NEAR_FLOAT_LIMIT_REL)
