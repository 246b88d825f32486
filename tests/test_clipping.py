r"""Gradient clipping: torch.nn.utils semantics, proved properties, no mutation.

Statements (derivation: ``proofs/clipping.tex``; torch/nn/utils/clip_grad.py; Pascanu et al.
2013, Alg. 1):

* clip_grad_norm equals torch.nn.utils.clip_grad_norm_ (returned norm and clipped gradients) for
  p = 1, 2, 3.5, inf; clip_grad_value equals clip_grad_value_ bitwise;
* the clipped global norm is exactly c N with c = min(theta / (N + 1e-6), 1), i.e.
  min(N, theta N / (N + 1e-6)); norm clipping preserves the direction (cosine 1);
* value clipping preserves the direction iff max|g_i| <= v or all non-zero |g_i| are equal
  (otherwise the clipped entries shrink by different factors than the unclipped ones);
* inputs are never modified.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradtheory._tolerances import UNIT_ROUNDOFF as u
from gradtheory.clipping import TORCH_CLIP_EPS, clip_grad_norm, clip_grad_value, total_norm

NORMS = (1.0, 2.0, 3.5, math.inf)

_VALUES = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False, width=64),
    st.sampled_from([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0]),
)
grad_lists = st.lists(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=5), elements=_VALUES),
    min_size=1,
    max_size=4,
)

# CLIP_NORM_VS_TORCH (dimensionless factor): Factor c in rel = c (m + 4) u = 2 (m + 3) u + 2 u: the
# two implementations sum squares (or powers) of m entries (m = number of entries + number of
# arrays) in different orders, then take a root: each is within (m + 3) u of the exact norm (first
# order), so they differ by <= 2 (m + 3) u; the coefficient theta / (N + 1e-6) and the product add 2
# u.
CLIP_NORM_VS_TORCH = 2.0
# CLIP_DIRECTION_COSINE (dimensionless factor): Factor c in |1 - cos| <= c (N + 2) u: the cosine of
# the clipped and the original gradient (both scaled to max 1) from dot products of N entries: ~ N u
# each.
CLIP_DIRECTION_COSINE = 4.0
# VALUE_CLIP_WITNESS_COSINE (dimensionless factor): Factor c in rel = c u: (1, 2).(1, 1) / (sqrt 5
# sqrt 2) vs 3 / sqrt 10: exact integers, then two square roots, a product and a division on one
# side, one root and one division on the other: ~ 4 roundings of u.
VALUE_CLIP_WITNESS_COSINE = 4.0


def _torch_clip_norm(arrays, max_norm, p):
    params = []
    for a in arrays:
        t = torch.nn.Parameter(torch.from_numpy(a.copy()))
        t.grad = torch.from_numpy(a.copy())
        params.append(t)
    N = torch.nn.utils.clip_grad_norm_(params, max_norm, p).item()
    return [t.grad.numpy() for t in params], N


def _rtol_vs_torch(arrays):
    """Both sides sum m non-negative terms (|g|, g^2 or |g|^p, each rounded to <= 1 ulp) in
    different orders, then take a root: each is within (m + 3) u of the exact norm (first order,
    m = number of entries + number of arrays), so they differ by <= 2 (m + 3) u; the coefficient
    theta / (N + 1e-6) and the product add 2 u."""
    m = sum(a.size for a in arrays) + len(arrays)
    return CLIP_NORM_VS_TORCH * (m + 4) * u  # = 2 (m + 3) u + 2 u


@given(grad_lists, st.sampled_from(NORMS), st.floats(0.0, 50.0))
def test_clip_grad_norm_equals_torch(arrays, p, max_norm):
    """Same returned norm and clipped gradients as torch.nn.utils.clip_grad_norm_ (bitwise for
    p = inf, where the norm is a max and exact)."""
    clipped, N = clip_grad_norm(arrays, max_norm, p)
    expected, N_torch = _torch_clip_norm(arrays, max_norm, p)
    if p == math.inf:
        assert N == N_torch
        for a, b in zip(clipped, expected):
            np.testing.assert_array_equal(a, b)
        return
    rtol = _rtol_vs_torch(arrays)
    assert N == pytest.approx(N_torch, rel=rtol, abs=0)
    for a, b in zip(clipped, expected):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0)


@given(grad_lists, st.floats(0.0, 5.0))
def test_clip_grad_value_equals_torch_bitwise(arrays, v):
    """clamp to [-v, v] is exact: bitwise equal to torch.nn.utils.clip_grad_value_."""
    clipped = clip_grad_value(arrays, v)
    params = []
    for a in arrays:
        t = torch.nn.Parameter(torch.from_numpy(a.copy()))
        t.grad = torch.from_numpy(a.copy())
        params.append(t)
    torch.nn.utils.clip_grad_value_(params, v)
    for a, t in zip(clipped, params):
        np.testing.assert_array_equal(a, t.grad.numpy())


@given(grad_lists, st.sampled_from(NORMS), st.floats(1e-3, 50.0))
def test_clipped_norm_is_min_of_norm_and_threshold_and_direction_is_preserved(arrays, p, max_norm):
    """||clip(g)||_p = c N with c = min(theta / (N + 1e-6), 1) = min(N, theta N / (N + 1e-6)):
    N itself when N <= theta - 1e-6, just below theta otherwise; and clip(g) = c g with c > 0,
    so the cosine between g and clip(g) (flattened) is 1 to round-off."""
    clipped, N = clip_grad_norm(arrays, max_norm, p)
    expected = min(N, max_norm * N / (N + TORCH_CLIP_EPS))
    rtol = _rtol_vs_torch(arrays)
    assert total_norm(clipped, p) == pytest.approx(expected, rel=rtol, abs=0)
    assert total_norm(clipped, p) <= max_norm * (1 + rtol)
    g = np.concatenate([a.ravel() for a in arrays])
    c = np.concatenate([a.ravel() for a in clipped])
    if N > 0 and np.any(c):
        g, c = g / np.max(np.abs(g)), c / np.max(np.abs(c))  # scaled: tiny entries must not underflow
        cos = (g @ c) / (np.linalg.norm(g) * np.linalg.norm(c))
        assert abs(1.0 - cos) <= CLIP_DIRECTION_COSINE * (g.size + 2) * u  # dot products: ~ n u each


def _parallel_exact(g: np.ndarray, c: np.ndarray) -> bool:
    """c = lambda g for one lambda > 0, decided in exact rational arithmetic."""
    ratios = {Fraction(float(ci)) / Fraction(float(gi)) for gi, ci in zip(g, c) if gi != 0}
    return len(ratios) <= 1 and all(r > 0 for r in ratios)


@given(hnp.arrays(np.float64, st.integers(1, 6), elements=_VALUES), st.floats(0.01, 5.0))
@example(np.array([1.0, 2.0]), 1.0)  # Hypothesis-found witness: [1, 2] -> [1, 1], cosine 3/sqrt(10)
def test_value_clipping_preserves_direction_iff_no_entry_clipped_or_equal_magnitudes(g, v):
    """clip_value(g) is parallel to g  <=>  max|g_i| <= v  or  all non-zero |g_i| are equal.
    (If some entry is clipped its factor is v/|g_i| < 1, while unclipped non-zero entries keep
    factor 1, and clipped entries of different magnitudes get different factors.)"""
    c = clip_grad_value(g, v)
    nonzero = np.abs(g[g != 0])
    predicted = bool(np.max(np.abs(g)) <= v or np.all(nonzero == nonzero[0]) if nonzero.size else True)
    # Decided exactly: a float cosine can round to 1 for angles below ~1e-8 (e.g. g = (2, 1e-296)).
    assert _parallel_exact(g, c) == predicted


def test_value_clipping_witness_changes_direction():
    """The kept witness, concretely: g = (1, 2), v = 1 gives (1, 1); cosine 3/sqrt(10) ~ 0.949."""
    c = clip_grad_value([np.array([1.0, 2.0])], 1.0)[0]
    np.testing.assert_array_equal(c, [1.0, 1.0])
    rel = VALUE_CLIP_WITNESS_COSINE * u
    assert (np.array([1.0, 2.0]) @ c) / (math.sqrt(5) * math.sqrt(2)) == pytest.approx(3 / math.sqrt(10), rel=rel)


@given(grad_lists, st.sampled_from(NORMS), st.floats(0.0, 10.0))
def test_inputs_are_never_mutated_and_containers_are_kept(arrays, p, max_norm):
    """Lists stay lists, tuples tuples, dicts dicts (same keys, same order), one array an array;
    outputs are new arrays and the inputs are bitwise unchanged."""
    before = [a.copy() for a in arrays]
    as_dict = {f"w{i}": a for i, a in enumerate(arrays)}
    for container in (arrays, tuple(arrays), as_dict):
        out, _ = clip_grad_norm(container, max_norm, p)
        assert type(out) is type(container)
        out_v = clip_grad_value(container, max_norm)
        assert type(out_v) is type(container)
        if isinstance(container, dict):
            assert list(out) == list(container)
            outs = list(out.values()) + list(out_v.values())
        else:
            outs = list(out) + list(out_v)
        assert not any(np.shares_memory(o, a) for o in outs for a in arrays)
    single, N = clip_grad_norm(arrays[0], max_norm, p)
    assert isinstance(single, np.ndarray) and N == total_norm([arrays[0]], p)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)
    t = torch.from_numpy(before[0].copy())
    clip_grad_norm([t], 0.5, p)
    np.testing.assert_array_equal(t.numpy(), before[0])


def test_nonfinite_gradients_follow_torch():
    """N = inf -> coefficient 0 (inf * 0 = NaN where the entry was inf); N = NaN -> all NaN;
    error_if_nonfinite=True raises RuntimeError in both libraries."""
    for arrays in ([np.array([np.inf, 1.0]), np.array([2.0])], [np.array([np.nan, 1.0])], [np.array([1e200, 1e200])]):
        clipped, N = clip_grad_norm(arrays, 1.0)
        expected, N_torch = _torch_clip_norm(arrays, 1.0, 2.0)
        assert (math.isnan(N) and math.isnan(N_torch)) or N == N_torch
        for a, b in zip(clipped, expected):
            np.testing.assert_array_equal(a, b)
        with pytest.raises(RuntimeError, match="non-finite"):
            clip_grad_norm(arrays, 1.0, error_if_nonfinite=True)
        with pytest.raises(RuntimeError, match="non-finite"):
            params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
            for prm, a in zip(params, arrays):
                prm.grad = torch.from_numpy(a.copy())
            torch.nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)


def test_empty_inputs_and_rejected_arguments():
    """Empty container: N = 0 as torch. Not-a-norm p (0, negative, fractional, NaN), negative
    max_norm or clip_value are rejected (torch silently computes non-norms or flips signs)."""
    assert clip_grad_norm([], 1.0) == ([], 0.0)
    assert clip_grad_norm({}, 1.0) == ({}, 0.0)
    out, N = clip_grad_norm([np.zeros(0), np.array([3.0, 4.0])], 1.0)
    assert N == 5.0 and out[0].shape == (0,)
    with pytest.raises(ValueError, match=r"grads\[0\] is empty"):
        clip_grad_norm([np.zeros(0)], 1.0, math.inf)
    for p in (0, -1.0, 0.5, math.nan, -math.inf):
        with pytest.raises(ValueError, match="norm_type must be >= 1 or inf"):
            clip_grad_norm([np.ones(2)], 1.0, p)
    with pytest.raises(ValueError, match="max_norm must be >= 0"):
        clip_grad_norm([np.ones(2)], -1.0)
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        clip_grad_value([np.ones(2)], -0.5)
    with pytest.raises(TypeError, match=r"grads\[0\] must have a floating dtype"):
        clip_grad_norm([np.ones(2, dtype=int)], 1.0)
    with pytest.raises(TypeError, match="grads must be an array, a sequence"):
        clip_grad_norm(3.0, 1.0)
