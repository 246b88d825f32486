r"""check_stability: the measured gradient flow of a recurrent model against the envelope
:math:`(\gamma\|W_{hh}\|_2)^{T-k}` (Elman RNN) and its Lyapunov exponent."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_real
from ._tree import is_torch_tensor

# STABILITY_ENVELOPE_SLACK (dimensionless factor): Factor in flow <= envelope + rtol (1 +
# |envelope|) on ln-norms: the envelope theorem checked with a relative slack for the round-off of
# the log-norms (~ T n u, ~ 1e-12 for T ~ 1e3, n ~ 10); 1e-9 is far above that and far below any
# real violation.
STABILITY_ENVELOPE_SLACK = 1e-9

__all__ = ["StabilityReport", "check_stability"]


@dataclass(frozen=True)
class StabilityReport:
    r"""Result of :func:`check_stability`.

    ``flow[k]`` = ln||dL/ds_k|| (k = 0..T, :func:`gradtheory.gradient_flow`); ``rate`` =
    measured change of ln||dL/ds_k|| per step going back in time (least-squares slope over k;
    < 0 vanishing, > 0 exploding); ``lyapunov``: the top Lyapunov exponent of the trajectory
    (finite-T estimate). For an Elman RNN: ``gamma``, ``spectral_norm`` = ||W_hh||_2,
    ``bound_rate`` = ln(gamma ||W_hh||_2) (the envelope's rate), ``distance`` =
    gamma ||W_hh||_2 - 1 (signed distance to the threshold), ``envelope`` = flow[T] + (T - k)
    bound_rate and ``envelope_ok`` (the measured flow stays under it: a theorem, so False means a
    bug). For LSTM/GRU/residual/highway there is no such envelope: those fields are None.
    ``regime``: vanishing / exploding / neutral from the Lyapunov exponent (the long-run rate).
    """

    regime: str
    rate: float
    lyapunov: float
    kind: str
    gamma: float | None
    spectral_norm: float | None
    bound_rate: float | None
    distance: float | None
    envelope_ok: bool | None
    flow: np.ndarray = field(repr=False)
    envelope: np.ndarray | None = field(repr=False)

    @property
    def ok(self) -> bool:
        """False only if the measured flow breaks the theoretical envelope (Elman RNN)."""
        return self.envelope_ok is not False

    @property
    def summary(self) -> str:
        lines = [
            (
                f"check_stability ({self.kind}): regime {self.regime.upper()}; Lyapunov exponent "
                f"{self.lyapunov:+.4f} per step, measured gradient-flow rate {self.rate:+.4f} per step "
                f"(factor {math.exp(self.rate) if self.rate > -700 else 0.0:.4g} per step back in time)"
            )
        ]
        if self.gamma is not None:
            q = self.gamma * self.spectral_norm
            lines.append(
                f"  envelope: gamma = {self.gamma:.6g}, ||W_hh||_2 = {self.spectral_norm:.6g}, "
                f"gamma*||W_hh||_2 = {q:.6g} (rate {self.bound_rate:+.4f}); distance to the threshold 1: "
                f"{self.distance:+.4g}" + (" -> gradients provably vanish" if q < 1 else " -> no vanishing guarantee")
            )
            lines.append(
                f"  measured flow under the envelope: {'yes' if self.envelope_ok else 'NO (a bug: the bound is a theorem)'}"
            )
        else:
            lines.append(
                "  no gamma*||W_hh||_2 envelope for this cell (gated/residual state): regime from measurement only"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary


def check_stability(
    model_or_module: Any, x: Any, *, readout: Any = None, neutral_band: float = 1e-2
) -> StabilityReport:
    r"""Measure the gradient flow of a recurrent model against the envelope :math:`(\gamma\|W_{hh}\|_2)^{T-k}`.

    ``model_or_module``: a single-layer unidirectional gradtheory model or ``torch.nn.RNN``/
    ``LSTM``/``GRU``; ``x``: one sequence (T, n_in) (array or tensor). ``readout``: the vector r
    of the loss <r, h_T> (default e_0). The regime is *vanishing* when the top Lyapunov exponent
    is below ``-neutral_band`` per step, *exploding* above ``+neutral_band``, else *neutral*.
    The envelope (Elman RNN) is the theorem
    :math:`\ln\|\partial L/\partial h_k\| \le \ln\|r\| + (T-k)\ln(\gamma\|W_{hh}\|_2)`; it is
    checked with a relative slack of 1e-9 for the round-off of the log-norms (~T n u).
    """
    from .. import bounds
    from .. import flow as _flow
    from ..models import RNN
    from ..models.torch_cell import is_torch_cell, torch_cell_check_stability

    neutral_band = check_real(neutral_band, "neutral_band", minimum=0.0)
    if is_torch_cell(model_or_module):
        return torch_cell_check_stability(model_or_module, x, readout=readout, neutral_band=neutral_band)

    model = _flow.as_single_layer_model(model_or_module, "check_stability")
    if is_torch_tensor(x):
        x = x.detach().cpu().numpy()
    flow = np.asarray(_flow.gradient_flow(model, x, readout=readout), dtype=float)
    x = np.asarray(x, dtype=float)
    T = flow.shape[0] - 1
    s = T - np.arange(T + 1)  # steps back in time from h_T
    finite = np.isfinite(flow)
    if finite.sum() >= 2:
        rate = float(np.polyfit(s[finite], flow[finite], 1)[0])
    else:
        rate = -math.inf
    lyap = float(_flow.lyapunov_exponent(model, x))
    regime = "vanishing" if lyap < -neutral_band else "exploding" if lyap > neutral_band else "neutral"
    gamma = sn = bound_rate = distance = env = env_ok = None
    if type(model) is RNN:
        gamma = float(bounds.gamma(model.nonlinearity))
        sn = float(bounds.spectral_norm(model.params["weight_hh_l0"]))
        q = gamma * sn
        distance = q - 1.0
        bound_rate = math.log(q) if q > 0 else -math.inf
        env = flow[T] + bounds.envelope(model.params["weight_hh_l0"], model.nonlinearity, T)[::-1]
        ok_mask = finite & np.isfinite(env)
        slack = STABILITY_ENVELOPE_SLACK
        env_ok = bool(np.all(flow[ok_mask] <= env[ok_mask] + slack * (1 + np.abs(env[ok_mask]))))
        if np.any(finite & ~np.isfinite(env)):
            env_ok = False
    return StabilityReport(
        regime=regime,
        rate=rate,
        lyapunov=lyap,
        kind=type(model).__name__,
        gamma=gamma,
        spectral_norm=sn,
        bound_rate=bound_rate,
        distance=distance,
        envelope_ok=env_ok,
        flow=flow,
        envelope=env,
    )
