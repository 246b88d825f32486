"""The reference side of the gradient checker (``gradtheory/check/_probe.py``).

Statements:

* ``safe_norm`` is the Euclidean norm at any magnitude (oracle: ``math.hypot``), 0 when empty;
* ``loss`` is <w, fn> (its imaginary part with ``imag``) summed over the outputs;
* ``direction`` draws z = N(0, 1) * RMS(x) (1 when x is zero or has no finite RMS) and adds a
  part along the analytic gradient g of norm min(||z|| / 2, 3 RMS ||g|| / max|g|), so that no
  element of it exceeds 3 RMS (nothing is added for a single-element input);
* ``measure_noise``: for evaluation errors e_j the estimate is the 6th smallest |Delta^4 e_j| of
  the 16-point stencil over 0.61 sqrt(70) (the module docstring's estimator), evaluated on x +
  t_j v with t_j = (j - 7.5) * spacing;
* ``Probe``: Richardson from central differences at h, h/2, ..., h/2^(levels-1) is exact for a
  polynomial of degree <= 2 levels (its error estimate is the round-off part then); complex step
  at h = 1e-20 is exact for an analytic fn; a non-finite difference gives no reference;
* ``_smooth`` accepts ratios of successive differences in the closed band [2.5, 6.5];
  ``kink_location`` reports a kink in (h_{j+1}, h_j) when a significant difference exceeds 16x the
  next (and its threshold), and in (0, h_min) when every significant ratio is in (0.35, 0.65).
"""

from __future__ import annotations

import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gradtheory._tolerances import UNIT_ROUNDOFF as u
from gradtheory.check import _probe
from gradtheory.check._probe import Probe, direction, kink_location, loss, measure_noise, safe_norm

# SAFE_NORM_VS_HYPOT (relative): the scaled sum of n squares (n u), the sqrt (u), the scaling
# back (u); math.hypot is accurate to ~1 u: 2 (n + 3) u.
SAFE_NORM_VS_HYPOT_FACTOR = 2.0


class _Backend:
    """A backend for one checked input x: evaluate returns [fn(x)] and records the points."""

    def __init__(self, x, fn):
        self.checked = [SimpleNamespace(x=np.asarray(x, dtype=float))]
        self.fn = fn
        self.points = []

    def evaluate(self, replaced):
        x = replaced[0]
        self.points.append(np.array(x))
        return [np.atleast_1d(self.fn(x))]


@given(
    st.lists(st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False), min_size=0, max_size=10),
    st.integers(-1000, 1000),
)
@example([1.0, 1.0], -700)
@example([1.0, -0.5], 700)
def test_safe_norm_is_the_euclidean_norm_at_any_magnitude(entries, exponent):
    """safe_norm(2^e w) = ||2^e w||_2 (math.hypot) whether the squares underflow or overflow."""
    a = np.ldexp(np.array(entries, dtype=np.float64), exponent)
    if not np.all(np.isfinite(a)):
        return
    expected = math.hypot(*a)
    assert abs(safe_norm(a) - expected) <= SAFE_NORM_VS_HYPOT_FACTOR * (a.size + 3) * u * expected
    assert safe_norm(a.reshape(-1, 1)) == safe_norm(a)  # any shape: all elements


def test_safe_norm_of_non_finite_and_empty_arrays():
    assert safe_norm(np.array([])) == 0.0
    assert safe_norm(np.zeros(3)) == 0.0
    assert safe_norm(np.array([1.0, -np.inf])) == np.inf
    assert math.isnan(safe_norm(np.array([np.nan, 1.0])))


def test_loss_is_the_inner_product_of_weights_and_outputs():
    """L = sum_i <w_i, out_i>; with imag, the same on the imaginary parts (exact small integers)."""
    w = [np.array([1.0, 2.0]), np.array([[3.0]])]
    outs = [np.array([5.0 + 1j, -1.0 + 2j]), np.array([[2.0 - 3j]])]
    assert loss(w, [o.real for o in outs]) == 1 * 5 + 2 * -1 + 3 * 2
    assert loss(w, outs, imag=True) == 1 * 1 + 2 * 2 + 3 * -3


def test_direction_is_a_gaussian_draw_scaled_to_the_rms_of_the_input():
    """Without g: v = N(0, 1) draws of the same generator times RMS(x); RMS 1 for x = 0 and for
    an x whose RMS is not finite; computed without overflow for entries near 1e300."""
    x = np.array([[3.0, -4.0], [0.0, 0.0]])  # RMS = 5 / 2
    np.testing.assert_array_equal(
        direction(np.random.default_rng(4), x), np.random.default_rng(4).standard_normal(x.shape) * 2.5
    )
    big = np.full(4, 1e300)
    np.testing.assert_allclose(
        direction(np.random.default_rng(5), big), np.random.default_rng(5).standard_normal(4) * 1e300, rtol=4 * u
    )
    for x in (np.zeros(3), np.array([np.inf, 1.0, 0.0])):
        np.testing.assert_array_equal(
            direction(np.random.default_rng(6), x), np.random.default_rng(6).standard_normal(3)
        )


@pytest.mark.parametrize("spread", [1.0, 1e-3])
def test_direction_adds_a_capped_part_along_the_gradient(spread):
    """With g: v - z is parallel to g (positive multiple) with norm min(||z||/2, 3 RMS ||g||/max|g|);
    the larger bound applies when g is spread over many elements, the cap (no element of the
    added part above 3 RMS) when g is concentrated on one element."""
    rng_seed = 8
    x = np.linspace(-1.0, 2.0, 50)
    rms = math.sqrt(float(np.mean(x**2)))
    g = np.full(50, spread)
    g[3] = 1.0
    z = np.random.default_rng(rng_seed).standard_normal(50) * rms
    part = direction(np.random.default_rng(rng_seed), x, g) - z
    g_hat = g / np.linalg.norm(g)
    along = float(part @ g_hat)
    np.testing.assert_allclose(part, along * g_hat, rtol=0, atol=1e-12 * np.linalg.norm(z))
    expected = min(0.5 * np.linalg.norm(z), 3.0 * rms * np.linalg.norm(g) / np.max(np.abs(g)))
    assert along == pytest.approx(expected, rel=1e-12)
    assert np.max(np.abs(part)) <= 3.0 * rms * (1 + 1e-12)
    if spread == 1e-3:
        assert np.max(np.abs(part)) == pytest.approx(3.0 * rms, rel=1e-12)  # the cap is what binds
    else:
        assert along == pytest.approx(0.5 * np.linalg.norm(z), rel=1e-12)


def test_direction_adds_nothing_for_a_single_element_or_a_zero_or_non_finite_gradient():
    z = np.random.default_rng(9).standard_normal(1) * 2.0
    np.testing.assert_array_equal(direction(np.random.default_rng(9), np.array([2.0]), np.array([5.0])), z)
    x = np.array([1.0, -1.0, 1.0])
    z = np.random.default_rng(9).standard_normal(3)
    for g in (np.zeros(3), np.array([np.inf, 0.0, 1.0])):
        np.testing.assert_array_equal(direction(np.random.default_rng(9), x, g), z)


def _fourth_differences(e):
    """|Delta^4 e_j| from the binomial formula, in exact rationals."""
    c = [1, -4, 6, -4, 1]
    return [abs(sum(Fraction(c[k]) * Fraction(e[j + k]) for k in range(5))) for j in range(len(e) - 4)]


def test_measured_noise_is_the_documented_order_statistic_of_fourth_differences():
    """A linear fn plus a fixed error sequence e_j at the 16 stencil points: the smooth part has
    zero fourth differences, so the estimate is the 6th smallest |Delta^4 e_j| / (0.61 sqrt 70);
    the points are x + (j - 7.5) * spacing * v."""
    errors = np.ldexp(np.array([3, -1, 4, -1, 5, -9, 2, 6, -5, 3, 5, -8, 9, -7, 9, 3], dtype=float), -40)
    x = np.array([0.5, -0.25])
    spacing = 2.0**-20
    state = {"j": 0}

    def fn(point):
        j = state["j"]
        state["j"] += 1
        return 2.0 * point[0] - point[1] + errors[j]

    backend = _Backend(x, fn)
    got = measure_noise(backend, np.random.default_rng(0), [np.ones(1)], spacing)
    d4 = sorted(_fourth_differences(list(errors)))
    assert len(d4) == 12 and len(set(d4)) > 6  # the order statistic is not a tie
    expected = float(d4[5]) / (0.61 * math.sqrt(70.0))
    # the linear part's fourth differences vanish up to the rounding of 16 values near 1 (~16 u)
    assert got == pytest.approx(expected, abs=64 * u / (0.61 * math.sqrt(70.0)))
    v = direction(np.random.default_rng(0), x)
    offsets = [(p - x) / v for p in backend.points]
    # x + t v rounds to ~u |x|: the recovered offsets carry that absolute error
    np.testing.assert_allclose(offsets, [[(j - 7.5) * spacing] * 2 for j in range(16)], rtol=0, atol=1e-14)
    assert _probe.NOISE_POINTS == 16


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_richardson_probe_is_exact_for_polynomials_of_degree_two_levels(levels):
    """f(x) = sum_k a_k (x . c)^k with degree 2 levels: the extrapolant over h, h/2, ... removes
    h^2 .. h^(2 levels - 2) exactly, and the odd powers cancel in central differences, so the
    reference is f' along v up to round-off; the probe evaluates x +- h/2^j v."""
    degree = 2 * levels
    a = np.array([0.5, -1.0, 0.25, 2.0, -0.5, 1.0, 0.75, -0.25, 0.125])[: degree + 1]
    c = np.array([0.5, -1.0])
    x = np.array([0.3, 0.1])
    v = np.array([1.0, 0.5])

    def fn(p):
        s = float(p @ c)
        return sum(a[k] * s**k for k in range(degree + 1))

    backend = _Backend(x, fn)
    probe = Probe(backend, 0, v, method="richardson", step=0.25, levels=levels)
    assert probe.steps == [0.25 / 2**j for j in range(levels)]
    s0 = float(x @ c)
    exact = sum(k * a[k] * s0 ** (k - 1) for k in range(1, degree + 1)) * float(v @ c)
    d = probe.derivative([np.ones(1)], noise=1e-16)
    assert d.value == pytest.approx(exact, rel=1e-10)
    assert d.smooth and d.kink is None and not d.truncation_dominated
    points = sorted(float((p - x) @ v) / float(v @ v) for p in backend.points)
    expected = sorted([0.25 / 2**j for j in range(levels)] + [-0.25 / 2**j for j in range(levels)])
    np.testing.assert_allclose(points, expected, rtol=1e-12)


def test_richardson_error_estimate_is_the_larger_of_the_last_correction_and_the_roundoff():
    """For sin along v the estimate is max(|T_mm - T_m,m-1|, sum|c_j| / h_j * noise): with a
    large noise the round-off part, with a tiny noise the correction part; truncation_dominated
    says which (correction > 8 x round-off)."""
    x = np.array([0.3])
    v = np.array([1.0])
    probe = Probe(_Backend(x, lambda p: np.sin(p[0])), 0, v, method="richardson", step=0.5, levels=3)
    quiet = probe.derivative([np.ones(1)], noise=1e-30)
    assert quiet.value == pytest.approx(math.cos(0.3), abs=max(quiet.estimate, 1e-12))
    assert quiet.truncation_dominated and quiet.estimate > 1e-12
    weights = _probe._weights(3)[0]
    roundoff = float(np.sum(np.abs(weights) / np.array(probe.steps)))
    loud = probe.derivative([np.ones(1)], noise=1e-3)
    assert loud.estimate == pytest.approx(roundoff * 1e-3, rel=1e-12)
    assert not loud.truncation_dominated


def test_complex_step_probe_is_exact_for_an_analytic_function():
    """Im f(x + i h v) / h with h = 1e-20: no subtraction, f' along v to round-off."""
    x = np.array([0.3, -0.2])
    v = np.array([0.5, 2.0])
    probe = Probe(_Backend(x, lambda p: np.exp(p[0]) * np.sin(p[1])), 0, v, method="complex", step=0.1, levels=4)
    d = probe.derivative([np.ones(1)], noise=1e-17)
    exact = math.exp(0.3) * math.sin(-0.2) * 0.5 + math.exp(0.3) * math.cos(-0.2) * 2.0
    assert d.value == pytest.approx(exact, rel=4 * u)
    assert d.estimate == 1e-17 and d.smooth and d.kink is None


def test_a_non_finite_difference_gives_no_reference():
    """fn overflowing inside the stencil: value NaN, estimate inf, neither smooth nor a kink."""
    x = np.array([700.0])
    with np.errstate(over="ignore"):
        probe = Probe(
            _Backend(x, lambda p: np.exp(p[0]) * 1e10), 0, np.array([1.0]), method="richardson", step=0.5, levels=3
        )
    with np.errstate(over="ignore"):
        d = probe.derivative([np.ones(1)], noise=1e-16)
    assert math.isnan(d.value) and d.estimate == math.inf and not d.smooth
    assert not d.truncation_dominated and d.kink is None


def _from_deltas(deltas):
    """Central differences d with d_j - d_{j+1} = deltas[j] (d_last = 1)."""
    d = [1.0]
    for delta in reversed(deltas):
        d.insert(0, d[0] + delta)
    return np.array(d)


STEPS = np.array([0.1, 0.05, 0.025, 0.0125])


@pytest.mark.parametrize(
    ("ratio", "smooth"), [(4.0, True), (2.5, True), (6.5, True), (2.375, False), (6.625, False), (-4.0, False)]
)
def test_smoothness_band_of_successive_difference_ratios_is_closed(ratio, smooth):
    """Ratios of significant successive differences in [2.5, 6.5] (both ends included) are
    smooth; outside, or of the wrong sign, not."""
    b = 2.0**-12  # dyadic ratios and deltas: every difference and ratio is exact, ends tested exactly
    d = _from_deltas([b * ratio * ratio, b * ratio, b])
    assert _probe._smooth(d, STEPS, 1e-16) is smooth


def test_a_difference_that_grows_as_the_step_shrinks_is_not_smooth():
    """An insignificant difference followed by a significant one: not smooth (kink in between)."""
    d = _from_deltas([0.0, 1e-3, 2.5e-4])
    assert not _probe._smooth(d, STEPS, 1e-16)
    assert _probe._smooth(_from_deltas([0.0, 0.0, 0.0]), STEPS, 1e-16)


def test_kink_location_thresholds():
    """A significant difference more than 16 times the next: kink in (h_{j+1}, h_j); exactly 16
    times: no claim; every significant ratio in the open band (0.35, 0.65): kink in (0, h_min)."""
    b = 2.0**-16  # dyadic deltas: differences and ratios exact
    assert kink_location(_from_deltas([17 * b, b, b / 4]), STEPS, 1e-16) == (0.05, 0.1)
    assert kink_location(_from_deltas([16 * b, b, b / 4]), STEPS, 1e-16) is None
    assert kink_location(_from_deltas([b, b, 272 * b]), STEPS, 1e-16) is None  # growth: no claim
    assert kink_location(_from_deltas([b, 17 * b, b]), STEPS, 1e-16) == (0.025, 0.05)
    assert kink_location(_from_deltas([b, 2 * b, 4 * b]), STEPS, 1e-16) == (0.0, 0.0125)
    assert kink_location(_from_deltas([b, b / 0.3, b / 0.09]), STEPS, 1e-16) is None  # ratios 0.3
    assert kink_location(_from_deltas([b, b / 0.7, b / 0.49]), STEPS, 1e-16) is None  # ratios 0.7
    # below the significance threshold 32 noise / h_{j+1} (~ 1e-3 here): nothing is claimed
    assert kink_location(_from_deltas([17 * b, b, b / 4]), STEPS, 1e-6) is None


def test_direction_of_a_small_input_keeps_its_rms_and_an_empty_input_is_empty():
    """RMS below 1 is kept (only 0 or a non-finite RMS falls back to 1); an empty input gets an
    empty direction."""
    x = np.array([0.25, -0.25, 0.25, -0.25])
    np.testing.assert_array_equal(
        direction(np.random.default_rng(2), x), np.random.default_rng(2).standard_normal(4) * 0.25
    )
    assert direction(np.random.default_rng(2), np.zeros((0, 3))).shape == (0, 3)


@pytest.mark.parametrize("size", [2, 5])
@pytest.mark.parametrize("g_scale", [1.0, 0.01])
def test_direction_part_along_the_gradient_for_any_gradient_scale(size, g_scale):
    """The part added along g does not depend on the scale of g (only its direction and its
    spread ||g|| / max|g| enter), also for small gradients (||g|| < 1) and two-element inputs."""
    x = np.linspace(0.5, 1.5, size)
    rms = math.sqrt(float(np.mean(x**2)))
    g = g_scale * np.linspace(1.0, -0.5, size)
    z = np.random.default_rng(11).standard_normal(size) * rms
    part = direction(np.random.default_rng(11), x, g) - z
    g_hat = g / np.linalg.norm(g)
    expected = min(0.5 * np.linalg.norm(z), 3.0 * rms * np.linalg.norm(g) / np.max(np.abs(g)))
    np.testing.assert_allclose(part, expected * g_hat, rtol=1e-12, atol=1e-15)


def test_probe_keeps_its_input_index_direction_and_steps():
    """The probe records which input and direction it measured and its steps (complex: the one
    step given), which the localisation reads back."""
    x = np.array([0.3, 0.1])
    v = np.array([1.0, 0.5])
    probe = Probe(_Backend(x, lambda p: p[0] * p[1]), 0, v, method="complex", step=0.1, levels=4)
    assert probe.index == 0 and probe.direction is v and probe.steps == [0.1]
    d = probe.derivative([np.ones(1)], noise=1e-17)
    assert d.smooth is True and d.truncation_dominated is False and d.kink is None


def test_richardson_estimate_is_the_last_correction_of_the_hand_computed_table():
    """levels = 3: D_j the central differences at h / 2^j, T_11 = (4 D_1 - D_0) / 3,
    T_21 = (4 D_2 - D_1) / 3, T_22 = (16 T_21 - T_11) / 15; with negligible noise the reference
    is T_22 and its error estimate |T_22 - T_21|; the correction counts as dominating when it
    exceeds 8 x the round-off part (checked at 8.5 x)."""
    x0, h = 0.3, 0.5
    D = [(math.sin(x0 + h / 2**j) - math.sin(x0 - h / 2**j)) / (2 * h / 2**j) for j in range(3)]
    T11, T21 = (4 * D[1] - D[0]) / 3, (4 * D[2] - D[1]) / 3
    T22 = (16 * T21 - T11) / 15
    probe = Probe(
        _Backend(np.array([x0]), lambda p: np.sin(p[0])), 0, np.array([1.0]), method="richardson", step=h, levels=3
    )
    quiet = probe.derivative([np.ones(1)], noise=1e-30)
    assert quiet.value == pytest.approx(T22, rel=1e-13)
    assert quiet.estimate == pytest.approx(abs(T22 - T21), rel=1e-6)
    per_noise = float(np.sum(np.abs(_probe._weights(3)[0]) / np.array(probe.steps)))  # round-off per unit noise
    noise = abs(T22 - T21) / (8.5 * per_noise)
    assert probe.derivative([np.ones(1)], noise=noise).truncation_dominated is True
    assert probe.derivative([np.ones(1)], noise=abs(T22 - T21) / (7.5 * per_noise)).truncation_dominated is False


def test_richardson_probe_of_a_kink_inside_the_stencil_locates_it():
    """|t - 1e-4| along v from t = 0 with steps 0.1 .. 0.0125: the kink lies inside the smallest
    stencil, the central differences go like c + K / h: not smooth, kink in (0, h_min)."""
    probe = Probe(
        _Backend(np.array([0.0]), lambda p: abs(p[0] - 1e-4)),
        0,
        np.array([1.0]),
        method="richardson",
        step=0.1,
        levels=4,
    )
    d = probe.derivative([np.ones(1)], noise=1e-16)
    assert d.smooth is False and d.kink == (0.0, 0.0125)


def test_no_reference_flags_are_false_not_missing():
    x = np.array([700.0])
    with np.errstate(over="ignore"):
        probe = Probe(
            _Backend(x, lambda p: np.exp(p[0]) * 1e10), 0, np.array([1.0]), method="richardson", step=0.5, levels=3
        )
        d = probe.derivative([np.ones(1)], noise=1e-16)
    assert d.smooth is False and d.truncation_dominated is False


@pytest.mark.parametrize(
    ("deltas", "smooth"),
    [
        ([4.0, 1.0, 1.0], False),  # only the last pair is out of the band
        ([0.0, 1.0, 0.0], False),  # a significant difference after an insignificant one
        ([1.0, 0.0, 0.0], True),  # differences vanishing below round-off: nothing to compare
        ([4.0, 1.0, 0.0], True),  # a ratio of 4, then round-off: not compared with it
    ],
)
def test_smoothness_looks_at_every_consecutive_pair(deltas, smooth):
    """Every consecutive pair of differences is compared, and only significant ones."""
    b = 2.0**-12
    with np.errstate(divide="ignore", invalid="ignore"):
        assert _probe._smooth(_from_deltas([b * q for q in deltas]), STEPS, 1e-16) is smooth


def test_kink_location_uses_the_next_threshold_and_every_significant_ratio():
    """The 16x test compares with the next difference's own threshold (32 noise / h_{j+1});
    the (0, h_min) signature needs every ratio of two significant neighbours in the band."""
    b = 2.0**-16
    n = 1e-10  # thresholds 32 n / h_{j+1}: 6.4e-8, 1.28e-7, 2.56e-7
    thr1 = 32 * n / 0.025
    assert kink_location(_from_deltas([25.5 * thr1, 0.0, 0.0]), STEPS, n) == (0.05, 0.1)
    assert kink_location(_from_deltas([b, 2 * b, 2 * b]), STEPS, 1e-16) is None  # ratios 0.5 and 1
    with np.errstate(divide="ignore"):
        assert kink_location(_from_deltas([b, 2 * b, 0.0]), STEPS, b / 10000) == (0.0, 0.0125)


def test_significance_threshold_is_32_noise_over_the_next_step():
    """A difference delta_1 at 32.5 noise / h_2 is significant: after an insignificant delta_0 it
    makes the stencil not smooth; with a noise 2 % larger (33.15 noise / h_2) it is round-off
    and the stencil counts as smooth."""
    b = 2.0**-16
    noise = b * 0.025 / 32.5
    d = _from_deltas([0.0, b, 0.0])
    assert _probe._smooth(d, STEPS, noise) is False
    assert _probe._smooth(d, STEPS, noise * 1.02) is True
