"""Claims about gradient clipping (gradtheory/claims/clipping.py; proofs/clipping.tex)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gradtheory.claims import clipping as C

# CLIP_THRESHOLD_SCALING (relative tolerance): g = (3, 4), theta = 5 = ||g||: clip_grad_norm's
# output vs g * 5 / (5 + 1e-6): one addition, one division and one product on each side: ~ 3 u ~
# 3e-16 relative.
CLIP_THRESHOLD_SCALING = 1e-15
# PRINTED_DEGREES (relative tolerance): acos(3 / sqrt 10) in degrees vs the literal 18.434948822922
# (14 significant digits, itself accurate to ~ 3e-14 relative).
PRINTED_DEGREES = 1e-12
# VALUE_CLIP_COSINE_ABS (absolute tolerance): Absolute, on a cosine <= 1: value_clipping_cosine vs
# (v a + b^2) / (||g|| ||(v, b)||): two norms, a division and a 2-term dot product: ~ 5 u.
VALUE_CLIP_COSINE_ABS = 1e-15
# TORCH_CLIP_EPSILON_SHARE (relative tolerance): The clipped share theta / (N + 1e-6) vs 1 / N
# (theta = 1): torch's epsilon changes it by 1e-6 / N relative (<= 1e-6 for N >= 1; N ~ 6e8 here);
# round-off adds ~ n u.
TORCH_CLIP_EPSILON_SHARE = 1e-6


def test_norm_clipping_preserves_direction_is_proved(audit):
    """Norm clipping multiplies every gradient by one c in (0, 1] (proofs/clipping.tex), checked against
    torch.nn.utils.clip_grad_norm_ on Hypothesis-drawn gradient lists."""
    r = audit("clipping-preserves-direction")
    assert r.status == "proved", r.verdict.evidence
    assert r.verdict.evidence["implementation"] == "gradtheory.clip_grad_norm"


@example(([np.array([3.0, 4.0])], 5.0, 2.0))  # norm exactly theta: still scaled by theta/(theta + 1e-6)
@example(([np.array([1.0]), np.array([2.2250738585072014e-308])], 0.125, 2.0))  # clipped entry underflows
@given(st.tuples(C.gradient_lists(), st.floats(1e-3, 1e3), st.sampled_from([2.0, 1.0, math.inf])))
def test_norm_clipping_scales_all_gradients_by_one_positive_factor(case):
    """clip(g) = c g with c = min(theta/(N + 1e-6), 1) in (0, 1], ||clip(g)|| <= theta, equal to torch."""
    assert C.norm_clipping_keeps_direction(case)


def test_torch_epsilon_scales_a_gradient_whose_norm_equals_the_threshold():
    """g = (3, 4), theta = 5 = ||g||: clipped by 5 / (5 + 1e-6), norm 4.999999 < 5, same direction."""
    from gradtheory.clipping import clip_grad_norm

    (out,), N = clip_grad_norm([np.array([3.0, 4.0])], 5.0)
    assert N == 5.0
    np.testing.assert_allclose(out, np.array([3.0, 4.0]) * (5.0 / (5.0 + 1e-6)), rtol=CLIP_THRESHOLD_SCALING)
    assert np.linalg.norm(out) < 5.0


def test_value_clipping_preserves_direction_is_refuted(audit):
    """Clamping entries changes the direction: counterexample g = (1, 2), v = 1."""
    r = audit("value-clipping-preserves-direction")
    assert r.status == "refuted"
    ce = r.to_dict()["evidence"]["counterexample"]
    assert ce["g"] == [1.0, 2.0] and ce["clip_value"] == 1.0
    assert ce["clipped_torch"] == [1.0, 1.0] and ce["cosine"] < 0.95


def test_value_clipping_counterexample_turns_by_18_degrees():
    """The audit's counterexample: g = (1, 2), v = 1 -> (1, 1); cos = 3 / sqrt(10), 18.43 degrees."""
    assert C.value_clipping_cosine((np.array([1.0, 2.0]), 1.0)) == 3 / math.sqrt(10)
    assert math.degrees(math.acos(3 / math.sqrt(10))) == pytest.approx(18.434948822922, rel=PRINTED_DEGREES)


@example(50.0, 0.5, 0.5)
@example(1.078125, 5.960464477539063e-08, 0.9)  # closed rounds to 1 + 2u in float64
@given(st.floats(0.1, 100), st.floats(-1, 1).filter(lambda b: b != 0), st.floats(0.1, 1))
def test_value_clipping_turns_a_gradient_with_one_clamped_entry(a, b_frac, v_frac):
    """g = (a, b) with a > v >= |b| > 0: clip_grad_value gives (v, b), and by Cauchy-Schwarz
    cos(clip(g), g) = (v a + b^2) / (||g|| sqrt(v^2 + b^2)) < 1 (equality would need (v, b) || (a, b))."""
    v = v_frac * a * 0.99  # v < a: the first entry is clamped
    b = b_frac * v  # |b| <= v: the second is not
    from gradtheory.clipping import clip_grad_value

    g = np.array([a, b])
    (out,) = clip_grad_value([g], v)
    np.testing.assert_array_equal(out, [v, b])
    closed = (v * a + b * b) / (math.hypot(a, b) * math.hypot(v, b))
    assert abs(C.value_clipping_cosine((g, v)) - closed) <= VALUE_CLIP_COSINE_ABS
    # cos < 1 as a theorem, checked exactly (the float value of `closed` may round to 1 + u):
    # cos^2 < 1  <=>  (v a + b^2)^2 < (a^2 + b^2)(v^2 + b^2), in the rationals of the floats a, b, v
    fa, fb, fv = Fraction(a), Fraction(b), Fraction(v)
    assert (fv * fa + fb * fb) ** 2 < (fa * fa + fb * fb) * (fv * fv + fb * fb)


# --- clipping-solves-exploding ---------------------------------------------------------------


def test_clipping_solves_exploding_is_refined(audit):
    """Clipping bounds the step; it does not restore the short-range gradient."""
    assert audit("clipping-solves-exploding").status == "refined"


def test_clipping_an_exploding_gradient_scales_the_recent_signal_to_nothing():
    """Counterexample found by the audit: tanh RNN, W_hh = diag(0, 2), at its zero fixed point, L = <(1, 1), h_30>:
    dL/dx_k = (W^(29-k))^T (1, 1), ||g|| = 6.2e8; after clipping to norm 1 the last input's gradient (1, 1)
    becomes 1.6e-9 (1, 1)."""
    W = np.diag([0.0, 2.0])
    g = C.input_gradients(W)
    np.testing.assert_array_equal(g[-1], [1.0, 1.0])
    np.testing.assert_array_equal(g[0], [0.0, 2.0**29])
    assert C.last_step_share_after_clipping(W) == pytest.approx(1 / np.linalg.norm(g), rel=TORCH_CLIP_EPSILON_SHARE)
    assert C.last_step_share_after_clipping(W) < 2e-9


@given(st.tuples(C.gradient_lists(), st.floats(1e-3, 1e3), st.just(2.0)))
def test_clipped_gradient_norm_never_exceeds_threshold_and_signs_are_kept(case):
    """||clip(g)||_2 <= theta for every finite g, with every component scaled by the same c > 0."""
    assert C.clipping_bounds_step(case)
