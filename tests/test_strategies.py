"""The public strategies generate the structure they promise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory import strategies as gst


@given(st.data(), st.integers(1, 6), st.floats(0.05, 20.0))
def test_matrices_hit_prescribed_spectral_norm_to_1e_12(data, n, s):
    W = data.draw(gst.matrices(n, spectral_norm=s))
    assert W.shape == (n, n) and W.dtype == np.float64
    assert abs(np.linalg.norm(W, 2) - s) <= 1e-12 * s


@given(st.data(), st.integers(1, 6), st.floats(0.05, 20.0))
def test_matrices_hit_prescribed_spectral_radius_to_1e_12(data, n, r):
    W = data.draw(gst.matrices(n, spectral_radius=r))
    assert abs(np.max(np.abs(np.linalg.eigvals(W))) - r) <= 1e-12 * r


def test_matrices_include_non_normal_ones_with_norm_far_above_radius():
    """Non-normal structure is generated: some draw has ||W||_2 > 2 rho(W) (transient growth)."""
    W = find(
        gst.matrices(3, spectral_radius=0.9),
        lambda W: np.linalg.norm(W, 2) > 2 * 0.9,
        settings=settings(database=None, derandomize=True, max_examples=500),
    )
    assert not np.allclose(W @ W.T, W.T @ W)


@given(st.integers(1, 6).flatmap(lambda n: gst.orthogonal_matrices(n)))
def test_orthogonal_matrices_are_orthogonal(Q):
    n = Q.shape[0]
    # QR by Householder: ||Q^T Q - I|| ~ n u
    assert np.max(np.abs(Q.T @ Q - np.eye(n))) <= 10 * n * 2.0**-53


@given(gst.models(families=("rnn", "lstm", "gru", "residual", "highway"), max_layers=3))
def test_models_draw_valid_configurations(model):
    assert isinstance(model, gt.RecurrentModel)
    assert {k: v.shape for k, v in model.params.items()} == model.param_shapes()
    bound = 1 / np.sqrt(model.hidden_size)
    assert all(np.max(np.abs(v)) <= bound for v in model.params.values())


@given(gst.sequences(steps=4, input_size=2, batch=3, scale=0.5))
def test_sequences_have_requested_shape_and_scale(x):
    assert x.shape == (4, 3, 2) and np.max(np.abs(x)) <= 0.5


def test_profiles_are_registered_and_validated(monkeypatch):
    from hypothesis import settings as hs

    for name in gst.PROFILES:
        hs.get_profile("gradtheory-" + name)
    assert hs.get_profile("gradtheory-ci").derandomize
    with pytest.raises(ValueError, match=r"profile='fast' is unknown; expected one of \['ci', 'dev', 'thorough'\]"):
        gst.load_profile("fast")
    current = hs._current_profile
    try:
        monkeypatch.setenv("GRADTHEORY_PROFILE", "thorough")
        assert gst.load_profile() == "thorough"
        monkeypatch.delenv("GRADTHEORY_PROFILE")
        monkeypatch.setenv("CI", "true")
        assert gst.load_profile() == "ci"
    finally:
        hs.load_profile(current)


def test_matrices_reject_bad_options_when_the_strategy_is_built():
    with pytest.raises(ValueError, match="give spectral_norm or spectral_radius, not both"):
        gst.matrices(2, spectral_norm=1.0, spectral_radius=1.0)
    with pytest.raises(ValueError, match="spectral_norm must be a positive finite number, got -1.0"):
        gst.matrices(2, spectral_norm=-1.0)
    with pytest.raises(ValueError, match=r"structures has unknown entries \['banded'\]; expected names from"):
        gst.matrices(2, structures=["banded"])
    with pytest.raises(TypeError, match="n must be an int, got float 2.0"):
        gst.matrices(2.0)
