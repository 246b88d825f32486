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
        a = 0.0 if g is None else float(np.sum(g * v))
        an_round = 0.0 if g is None else CHECK_ANALYTIC_ROUNDOFF.times(UNIT_ROUNDOFF, float(np.sum(np.abs(g * v))))
        d = probe.derivative(wm, self.noise_of(wm))
        tol = CHECK_SAFETY.times(d.estimate + an_round)
        return Comparison(a, d.value, d.estimate, tol, abs(a - d.value), d)
