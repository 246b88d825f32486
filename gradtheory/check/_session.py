"""The state of one gradient check shared by the per-input test and the localisation: the backend,
the cotangent, the base outputs, the measured noise, and the comparison <g, v> vs reference."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .._tolerances import CHECK_ANALYTIC_ROUNDOFF, CHECK_SAFETY, UNIT_ROUNDOFF
from ._backends import PRECISIONS
from ._probe import Derivative, Probe, safe_norm

__all__ = ["Comparison", "Options", "Session", "representable"]

# A low-precision backward (float32/float16/bfloat16 gradient g): its roundings are independent
# across elements to first order, so <g, v> is off by ~ c u ||g * v||_2 (a standard deviation; the
# float64 rule c_an u sum|g v| is the worst case, harmless at u = 1.1e-16 but 10-30x too coarse at
# bfloat16's u = 3.9e-3). Measured against float64 autograd on 180 tensors of 30 random torch
# RNN/LSTM/GRU (H 4..32, T 3..30): |<g_low - g_64, v>| / (u ||g * v||_2) has median 0.9 / 1.3, 99%
# quantile 3.5 / 4.2, max 3.8 / 4.7 (bfloat16 / float32). c = 2 with the safety factor k = 10 of
# the test gives 20 u ||g * v||_2: 4.3x the largest measured value.
LOW_PRECISION_ANALYTIC_ROUNDOFF = 2.0

# That model sees the round-off of the final sum over ||g * v||, not of the computation behind each
# element of g. When an element is a sum with cancellation (the weight_hh of a 1-unit RNN: a sum over
# 24 steps x 3 sequences of terms ~1e-3 adding up to 1.3e-5), or carries error accumulated along a
# long backward chain, a float32 backward is off by 40-600 u ||g v|| (4 false alarms in 500 random
# correct float32/bfloat16 modules, all like this). That error is measured instead of modelled, and
# only when the model's test fails (the tolerance is the larger of the two, so a comparison that
# passes on the model passes anyway): the backward is run again for BACKWARD_SCATTER_DRAWS
# cotangents w_k = w (1 + BACKWARD_SCATTER_ULPS u_out eta), eta ~ N(0, 1) per element, rounded to
# the output precision, so that every rounding of the backward falls differently. For each draw the
# error of the test itself is formed, e_k = <g(w_k), v> - D(w_k) (D(w_k) from the probe's stored
# float64 evaluations, any cotangent), and the spread is the RMS of e_k - e_0 (~ sqrt(2) sigma, sigma
# the backward's round-off; it also grows with the base point's own error e_0, which every
# difference contains). A wrong backward cannot hide in it: its error is the same function of w in
# every e_k (a scale s gives (s - 1) <J^T w_k, v>, an added term c gives <c, v>), so it cancels in
# e_k - e_0 up to (s - 1) times a 4-ulp change; a backward that is not deterministic is reported
# inconclusive before any comparison. Measured on the two float32 false alarms (RNN, 1 unit, T 28
# and 24): spread 6.3e-7 and 1.0e-9 against errors 2.8e-7 and 4.7e-10 (|<g32 - g64, v>|). Six
# draws: chi^2_6 / 6 < 0.09 (spread below 0.3 sqrt(2) sigma) has probability 0.3%, and even then
# the test's safety factor k = 10 leaves 4 sigma. Forward mode jitters the tangent instead
# (D(v_k) then needs a probe along v_k: 2 x levels evaluations per draw, paid only on a failure).
BACKWARD_SCATTER_DRAWS = 6
BACKWARD_SCATTER_ULPS = 4.0


def representable(w: np.ndarray, precision: str) -> np.ndarray:
    """``w`` rounded to ``precision`` and returned as float64 (the values the function receives)."""
    if precision == "float64":
        return w
    if precision in ("float32", "float16"):
        return w.astype(precision).astype(np.float64)
    import torch

    return torch.from_numpy(w).to(torch.bfloat16).to(torch.float64).numpy()


def _jittered(a: np.ndarray, precision: str, rng: np.random.Generator) -> np.ndarray:
    """``a`` moved by ~BACKWARD_SCATTER_ULPS units of round-off per element, in ``precision``."""
    u = PRECISIONS[precision]
    return representable(a * (1.0 + BACKWARD_SCATTER_ULPS * u * rng.standard_normal(a.shape)), precision)


@dataclass(frozen=True)
class Options:
    """The user's choices for the reference (validated by check_gradients)."""

    method: str
    step: float
    levels: int
    directions: int
    localise: bool


class Comparison(NamedTuple):
    """<g, v> against the reference derivative along v, with the tolerance of the test."""

    analytic: float
    reference: float
    estimate: float
    tolerance: float
    error: float
    derivative: Derivative

    @property
    def passes(self) -> bool:
        return self.error <= self.tolerance and math.isfinite(self.analytic)


@dataclass
class Session:
    """One check in progress. ``noise_factor`` c: one evaluation of L = <w, fn> is wrong by about
    ``c u ||w * fn||_2`` (c = max(c_fd, 2 x measured), see gradients.py)."""

    backend: Any
    options: Options
    w: list[np.ndarray]
    base: list[np.ndarray]
    rng: np.random.Generator
    #: set from the measured noise (gradients._noise_factor) before the first comparison
    noise_factor: float = math.nan
    time_axis: int | None = None
    T: int | None = None
    time_inputs: frozenset[int] = field(default_factory=frozenset)
    #: mode='forward': the analytic side is <w, J v> from the backend's jvp, not <g, v>
    forward: bool = False
    #: low precision: the generator of the jittered cotangents/tangents (BACKWARD_SCATTER_DRAWS)
    scatter_rng: np.random.Generator | None = None
    #: the jittered cotangents w_k and the backward's gradients for them (drawn on first need)
    _draws: list[tuple[list[np.ndarray], dict[int, Any]]] | None = None

    def output_size(self, wm: list[np.ndarray]) -> float:
        """||wm * fn||_2 over every output at the base point: independent errors of the N output
        terms add as the 2-norm, not the 1-norm."""
        return safe_norm(np.concatenate([np.ravel(wi * oi) for wi, oi in zip(wm, self.base)]))

    def noise_of(self, wm: list[np.ndarray]) -> float:
        return self.noise_factor * UNIT_ROUNDOFF * self.output_size(wm)

    def probe(self, index: int, v: np.ndarray, step: float) -> Probe:
        o = self.options
        return Probe(self.backend, index, v, method=o.method, step=step, levels=o.levels)

    def compare(
        self, g: np.ndarray | None, v: np.ndarray, probe: Probe, wm: list[np.ndarray] | None = None
    ) -> Comparison:
        """The test |a - D| <= k (E + c_an u sum|g v|) (error analysis in gradients.py)."""
        wm = self.w if wm is None else wm
        if self.forward:
            return self._compare_forward(v, probe, wm)
        a = 0.0 if g is None else float(np.sum(g * v))
        # round-off of the backward in the checked input's own precision (float64: UNIT_ROUNDOFF)
        u = self.backend.checked[probe.index].u
        c_an = CHECK_ANALYTIC_ROUNDOFF.value
        if g is None:
            an_round = 0.0
        elif u == UNIT_ROUNDOFF:
            an_round = c_an * u * float(np.sum(np.abs(g * v)))
        else:
            an_round = LOW_PRECISION_ANALYTIC_ROUNDOFF * u * safe_norm(g * v)
        d = probe.derivative(wm, self.noise_of(wm))
        tol = CHECK_SAFETY.times(d.estimate + an_round)
        if abs(a - d.value) > tol and g is not None and u != UNIT_ROUNDOFF and wm is self.w:
            tol = max(tol, CHECK_SAFETY.times(d.estimate + self._backward_spread(probe, v, a - d.value)))
        return Comparison(a, d.value, d.estimate, tol, abs(a - d.value), d)

    def _backward_spread(self, probe: Probe, v: np.ndarray, e0: float) -> float:
        """RMS over the jittered cotangents w_k of e_k - e_0, e_k = <g(w_k), v> - D(w_k) (see above)."""
        if self.scatter_rng is None:
            return 0.0
        if self._draws is None:
            precisions = self.backend.output_precisions
            ws = [
                [_jittered(wi, p, self.scatter_rng) for wi, p in zip(self.w, precisions)]
                for _ in range(BACKWARD_SCATTER_DRAWS)
            ]
            self._draws = [(wk, self.backend.vjp(wk)) for wk in ws]
        devs = []
        for wk, grads in self._draws:
            gk = grads.get(probe.index)
            if gk is None or np.shape(gk) != np.shape(v):
                return 0.0
            dk = probe.derivative(wk, self.noise_of(wk)).value
            devs.append(float(np.sum(gk * v)) - dk - e0)
        return _rms(devs)

    def _forward_spread(self, probe: Probe, wm: list[np.ndarray], e0: float) -> float:
        """Forward mode: RMS of e_k - e_0, e_k = <w, J v_k> (jvp) - D(v_k), over jittered tangents."""
        if self.scatter_rng is None:
            return 0.0
        index, precision = probe.index, self.backend.checked[probe.index].precision
        devs = []
        for _ in range(BACKWARD_SCATTER_DRAWS):
            vk = _jittered(probe.direction, precision, self.scatter_rng)
            tangents = self.backend.jvp({index: vk})
            ak = sum(float(np.sum(wi * ti)) for wi, ti in zip(wm, tangents))
            dk = Probe(self.backend, index, vk, method=probe.method, step=probe.steps[0], levels=probe.levels)
            devs.append(ak - dk.derivative(wm, self.noise_of(wm)).value - e0)
        return _rms(devs)

    def _compare_forward(self, v: np.ndarray, probe: Probe, wm: list[np.ndarray]) -> Comparison:
        """Forward mode: a = <w, J v> (the jvp's output tangents); its round-off is that of the
        tangents in the input's precision, c u sum|w * Jv| (as c_an u sum|g v| for the backward)."""
        tangents = self.backend.jvp({probe.index: v})
        a = sum(float(np.sum(wi * ti)) for wi, ti in zip(wm, tangents))
        u = self.backend.checked[probe.index].u
        terms = np.concatenate([np.ravel(wi * ti) for wi, ti in zip(wm, tangents)]) if tangents else np.zeros(0)
        c_an = CHECK_ANALYTIC_ROUNDOFF.value
        coarse = c_an * float(np.sum(np.abs(terms)))
        an_round = u * (coarse if u == UNIT_ROUNDOFF else LOW_PRECISION_ANALYTIC_ROUNDOFF * safe_norm(terms))
        d = probe.derivative(wm, self.noise_of(wm))
        tol = CHECK_SAFETY.times(d.estimate + an_round)
        if abs(a - d.value) > tol and u != UNIT_ROUNDOFF and wm is self.w:
            tol = max(tol, CHECK_SAFETY.times(d.estimate + self._forward_spread(probe, wm, a - d.value)))
        return Comparison(a, d.value, d.estimate, tol, abs(a - d.value), d)


def _rms(values: list[float]) -> float:
    return math.sqrt(sum(x * x for x in values) / len(values)) if values else 0.0
