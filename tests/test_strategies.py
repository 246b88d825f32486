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


@given(gst.models(families=("lru",), max_layers=3))
def test_lru_models_draw_eigenvalues_inside_the_unit_disc_every_layer_and_never_a_reverse_direction(model):
    """The LRU's draw_params: |lambda| = exp(-e^nu) in a ring inside (0, 1) (nu_log in [ln(-ln 0.99), 3]),
    phases in [0.01, 6.28]; the cell fixes bidirectional=False and bias=True, so no draw has them otherwise."""
    assert type(model) is gt.LRU and not model.bidirectional and model.bias
    assert {k: v.shape for k, v in model.params.items()} == model.param_shapes()
    for layer in range(model.num_layers):
        modulus = np.abs(model.eigenvalues(layer=layer))
        assert np.all(modulus < 1.0) and np.all(modulus <= 0.99 + 1e-15) and np.all(modulus >= np.exp(-np.exp(3.0)))
        phase = np.exp(model.params[f"theta_log_l{layer}"])
        assert np.all((phase >= 0.01 - 1e-15) & (phase <= 6.28 + 1e-12))


@given(gst.models(families=("selective_ssm",), max_layers=2))
def test_selective_ssm_models_draw_a_stable_A_and_delta_from_persist_to_reset(model):
    """The selective SSM's draw_params: A = -exp(A_log) < 0 with A_log in [-2, 2], b_delta in [-7, 10]
    (Delta from ~1e-3 to ~10 at x = 0), a flattened state of D*N entries."""
    assert type(model) is gt.SelectiveSSM and not model.bidirectional
    assert model.hidden_size == model.input_size * model.size_argument
    for layer in range(model.num_layers):
        assert np.all(np.abs(model.params[f"A_log_l{layer}"]) <= 2.0)
        b = model.params[f"b_delta_l{layer}"]
        assert np.all((b >= -7.0) & (b <= 10.0))


def test_models_reject_an_option_the_cell_fixes():
    with pytest.raises(ValueError, match="bidirectional=True is not supported by cell 'lru'"):
        find(gst.models(families=("lru",), bidirectional=True), lambda m: True)


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
