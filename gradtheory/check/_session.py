"""The state of one gradient check shared by the per-input test and the localisation: the backend,
the cotangent, the base outputs, the measured noise, and the comparison <g, v> vs reference."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .._tolerances import CHECK_ANALYTIC_ROUNDOFF, CHECK_SAFETY, UNIT_ROUNDOFF
from ._probe import Derivative, Probe, safe_norm

__all__ = ["Comparison", "Options", "Session"]

# A low-precision backward (float32/float16/bfloat16 gradient g): its roundings are independent
# across elements to first order, so <g, v> is off by ~ c u ||g * v||_2 (a standard deviation; the
# float64 rule c_an u sum|g v| is the worst case, harmless at u = 1.1e-16 but 10-30x too coarse at
# bfloat16's u = 3.9e-3). Measured against float64 autograd on 180 tensors of 30 random torch
# RNN/LSTM/GRU (H 4..32, T 3..30): |<g_low - g_64, v>| / (u ||g * v||_2) has median 0.9 / 1.3, 99%
# quantile 3.5 / 4.2, max 3.8 / 4.7 (bfloat16 / float32). c = 2 with the safety factor k = 10 of
# the test gives 20 u ||g * v||_2: 4.3x the largest measured value.
LOW_PRECISION_ANALYTIC_ROUNDOFF = 2.0


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
    noise_factor: float
    rng: np.random.Generator
    time_axis: int | None = None
    T: int | None = None
    time_inputs: frozenset[int] = field(default_factory=frozenset)
    #: mode='forward': the analytic side is <w, J v> from the backend's jvp, not <g, v>
    forward: bool = False

    def noise_of(self, wm: list[np.ndarray]) -> float:
        # independent errors of the N output terms: the 2-norm of w * fn, not the 1-norm
        return (
            self.noise_factor
            * UNIT_ROUNDOFF
            * safe_norm(np.concatenate([np.ravel(wi * oi) for wi, oi in zip(wm, self.base)]))
        )

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
        return Comparison(a, d.value, d.estimate, tol, abs(a - d.value), d)

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
        return Comparison(a, d.value, d.estimate, tol, abs(a - d.value), d)
