"""check_stability: measured gradient flow against the envelope (gamma ||W_hh||_2)^(T-k).

Statement (Pascanu, Mikolov & Bengio 2013, sec. 2.1; gradtheory/bounds.py, proofs/): for an Elman
RNN, ||dL/dh_k|| <= ||r|| (gamma ||W_hh||_2)^(T-k) for L = <r, h_T>. For the identity activation
and W_hh = s Q (Q orthogonal) the bound is attained exactly: ||dL/dh_k|| = s^(T-k) ||r||, so the
measured rate, the Lyapunov exponent and the envelope's rate all equal ln s (exact oracle).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory.check import StabilityReport, check_stability
from gradtheory.strategies import matrices

# STABILITY_ORTHOGONAL_RATE_ABS (absolute tolerance): Absolute, on rates (logs per step): identity
# RNN, W_hh = s Q: rate = Lyapunov exponent = ln(gamma ||W_hh||_2) = ln s; T matrix-vector products,
# ~ T n u relative in the norms, so 1e-12 absolute in the logs for T = 30.
STABILITY_ORTHOGONAL_RATE_ABS = 1e-12
# STABILITY_ORTHOGONAL_NORM (relative tolerance): Relative on ||s Q||_2 (and absolute on the
# distance s - 1 = ||W|| - 1, |s| <= 1.25): the SVD of s Q is backward stable, ~ n u ||W|| with n =
# 4, plus the rounding of s Q itself.
STABILITY_ORTHOGONAL_NORM = 1e-14
# STABILITY_ORTHOGONAL_FLOW_ABS (absolute tolerance): Absolute, on ln-norms: the flow lies on the
# envelope for W_hh = s Q; each of the T = 30 steps adds ~ n u to both (see
# envelope_equality_per_step), so ~ 30 * 8 * 6 u ~ 2e-13; 1e-11 is a wide margin.
STABILITY_ORTHOGONAL_FLOW_ABS = 1e-11
# STABILITY_TORCH_TWIN_RATE (relative tolerance): check_stability on a torch LSTM vs on its numpy
# twin (from_torch): forwards agree to forward_vs_torch; the rate is a difference of logs of norms
# over T = 40 steps divided by T, so its relative error is of the order of the per-step round-off;
# 1e-12.
STABILITY_TORCH_TWIN_RATE = 1e-12


def _scaled_orthogonal_rnn(s: float, n: int = 5, nonlinearity: str = "identity") -> gt.RNN:
    model = gt.RNN(2, n, nonlinearity=nonlinearity, seed=0)
    Q, R = np.linalg.qr(np.random.default_rng(3).standard_normal((n, n)))
    model.params["weight_hh_l0"] = s * Q * np.sign(np.diag(R))
    return model


@pytest.mark.parametrize("s, regime", [(0.8, "vanishing"), (1.0, "neutral"), (1.25, "exploding")])
def test_linear_orthogonal_rnn_rate_equals_log_of_scale(s, regime):
    """Identity RNN, W_hh = s Q: rate = Lyapunov exponent = ln(gamma ||W_hh||_2) = ln s; the flow
    lies on the envelope. Round-off: T matrix-vector products, ~T n u relative in the norms,
    so 1e-12 absolute in the logs for T = 30."""
    model = _scaled_orthogonal_rnn(s)
    x = np.random.default_rng(0).standard_normal((30, 2))
    rep = check_stability(model, x)
    assert isinstance(rep, StabilityReport)
    assert rep.regime == regime
    rate_tol = STABILITY_ORTHOGONAL_RATE_ABS
    assert rep.rate == pytest.approx(math.log(s), abs=rate_tol)
    assert rep.lyapunov == pytest.approx(math.log(s), abs=rate_tol)
    assert rep.bound_rate == pytest.approx(math.log(s), abs=rate_tol)
    norm_tol = STABILITY_ORTHOGONAL_NORM
    assert rep.gamma == 1.0 and rep.spectral_norm == pytest.approx(s, rel=norm_tol)
    assert rep.distance == pytest.approx(s - 1.0, abs=norm_tol)
    assert rep.envelope_ok and rep.ok
    np.testing.assert_allclose(rep.flow, rep.envelope, rtol=0, atol=STABILITY_ORTHOGONAL_FLOW_ABS)
    assert regime.upper() in rep.summary and "distance to the threshold 1" in rep.summary


@given(data=st.data())
def test_tanh_rnn_below_threshold_vanishes_under_envelope(data):
    """gamma ||W_hh||_2 < 1 (tanh, gamma = 1) is sufficient for vanishing: the measured flow stays
    under the envelope and the regime is vanishing (rate <= ln(gamma ||W||) < -0.05 per step)."""
    W = data.draw(matrices(6, spectral_norm=data.draw(st.floats(0.2, 0.95))))
    model = gt.RNN(3, 6, seed=data.draw(st.integers(0, 100)))
    model.params["weight_hh_l0"] = W
    x = np.random.default_rng(1).standard_normal((25, 3))
    rep = check_stability(model, x)
    assert rep.envelope_ok, rep.summary
    assert rep.distance < 0
    assert rep.regime == "vanishing", rep.summary
    assert "gradients provably vanish" in rep.summary


def test_lstm_and_torch_module_have_no_envelope_but_a_regime():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4, dtype=torch.float64)
    x = torch.randn(40, 3, dtype=torch.float64)
    rep = check_stability(module, x)
    twin = check_stability(gt.from_torch(module), x.numpy())
    assert rep.rate == pytest.approx(twin.rate, rel=STABILITY_TORCH_TWIN_RATE)
    assert rep.gamma is None and rep.envelope is None and rep.envelope_ok is None and rep.ok
    assert rep.regime in ("vanishing", "neutral", "exploding")
    assert (rep.regime == "vanishing") == (rep.lyapunov < -1e-2)
    assert "no gamma*||W_hh||_2 envelope" in rep.summary


def test_bad_arguments():
    model = _scaled_orthogonal_rnn(0.9)
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="neutral_band"):
        check_stability(model, x, neutral_band=-1.0)
    with pytest.raises(NotImplementedError, match="num_layers=2"):
        check_stability(gt.RNN(2, 3, num_layers=2), x)
    with pytest.raises(TypeError, match="model must be"):
        check_stability("rnn", x)
