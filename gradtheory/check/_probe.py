r"""The reference side of the check: random directions, Richardson probes (the one Richardson table
of :mod:`gradtheory.oracles`), the smoothness test of the central differences, and the measured
evaluation noise of :math:`L = \langle w, fn\rangle`.

Measured noise (ECnoise-style, Moré & Wild 2011). The round-off of one evaluation of L is not
assumed: L is evaluated at :math:`N` = ``NOISE_POINTS`` = 16 equally spaced points
:math:`x + t_j v` (spacing ``NOISE_SPACING`` relative to each input's RMS) and the fourth
differences :math:`\Delta^4 L_j` are formed. For a smooth L they are
:math:`O(\delta^4 L^{(4)})` (~1e-24 relative, nil); for independent evaluation errors of standard
deviation :math:`\sigma` they have variance :math:`\binom{8}{4}\sigma^2 = 70\sigma^2`. The
estimate uses the 6th smallest of the 12 values of :math:`|\Delta^4 L_j|` (their ~46% quantile,
which for a Gaussian is ``0.61`` standard deviations): a kink (relu) inside the noise stencil
contaminates at most the 4 differences whose windows contain it, so the estimate stays a noise
estimate. Simulated on Gaussian noise (200,000 draws): median estimate 1.02 sigma, below sigma/2
with probability 8%, below sigma/3 1.7%, above 2 sigma 4%. A forward computed in float32 shows
:math:`\sigma \approx 10^{-8} \|w \odot fn\|_2`, a float64 one ~1e-16.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..oracles import _richardson_table

__all__ = ["Derivative", "Probe", "direction", "kink_location", "loss", "measure_noise", "safe_norm"]

NOISE_POINTS = 16
# Spacing of the noise stencil, relative to each input's RMS: large enough that a float32 forward
# sees distinct inputs (1e-6 is ~17 float32 ulps), small enough that the smooth part of the fourth
# differences (~(1e-6 * sqrt(fan-in))^4 |L''''|) is far below float64 round-off.
NOISE_SPACING = 1e-6
# The order statistic used (6th smallest of 12 fourth differences, quantile (5 + 0.5) / 12) and
# that quantile of |N(0, 1)|: Phi^-1((1 + 0.458) / 2) = 0.61.
_NOISE_ORDER = 5
_ABS_NORMAL_QUANTILE = 0.61


class Derivative(NamedTuple):
    """The reference derivative along a direction, its error estimate and the stencil's verdict."""

    value: float
    estimate: float
    smooth: bool
    truncation_dominated: bool
    kink: tuple[float, float] | None


def safe_norm(a: np.ndarray) -> float:
    """2-norm without overflow or underflow (elements up to the largest float)."""
    a = np.asarray(a)
    if a.size == 0:
        return 0.0
    m = float(np.max(np.abs(a)))
    if m == 0.0 or not math.isfinite(m):
        return m
    return m * math.sqrt(float(np.sum(np.abs(a / m) ** 2)))


def loss(w: list[np.ndarray], outs: list[np.ndarray], imag: bool = False) -> float:
    """L = <w, outs> (the imaginary part of it with ``imag``)."""
    return sum(float(np.sum(wi * (np.imag(oi) if imag else oi))) for wi, oi in zip(w, outs))


def direction(rng: np.random.Generator, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
    r"""A seeded Gaussian direction whose elements have the RMS of ``x`` (1 if x == 0).

    With ``g`` (the analytic gradient), a component along :math:`\hat g` is added so that
    :math:`\langle g, v\rangle \gtrsim \tfrac12 \|g\|\|z\|` instead of the
    :math:`\|g\|\|z\|/\sqrt{n}` (and occasionally ~0) of a purely random direction: a scaled
    gradient (error along g) is then seen at its full relative size, while the random part still
    sees errors in every other direction. The g-part is capped at 3 RMS per element. The direction
    is valid whatever g is (the test compares <g, v> with the true derivative along the same v).
    The RMS is computed without overflow (inputs near 1e300).
    """
    scale = safe_norm(x) / math.sqrt(x.size) if x.size else 1.0
    if not (scale > 0 and math.isfinite(scale)):
        scale = 1.0
    z = rng.standard_normal(x.shape) * scale
    if g is not None and x.size > 1:
        g = np.asarray(g, dtype=float)
        gn = safe_norm(g)
        if gn > 0 and math.isfinite(gn):
            gmax = float(np.max(np.abs(g)))
            c = min(0.5 * safe_norm(z), 3.0 * scale * (gn / gmax))
            z = z + c * (g / gmax) / (gn / gmax)
    return z


def measure_noise(backend: Any, rng: np.random.Generator, w: list[np.ndarray], spacing: float = NOISE_SPACING) -> float:
    """Standard deviation of the evaluation error of L at the base point (module docstring).

    ``spacing``: for inputs evaluated in a low precision (unit round-off u) the caller passes
    ``max(NOISE_SPACING, 16 u)``, so that neighbouring points round to different representable
    inputs (the rounding of the input then enters the measured noise, as it enters every probe)."""
    vs = [direction(rng, c.x) for c in backend.checked]
    values = []
    for j in range(NOISE_POINTS):
        t = (j - (NOISE_POINTS - 1) / 2) * spacing
        values.append(loss(w, backend.evaluate({i: c.x + t * v for i, (c, v) in enumerate(zip(backend.checked, vs))})))
    d4 = np.abs(np.diff(np.array(values), 4))
    return float(np.sort(d4)[_NOISE_ORDER]) / (_ABS_NORMAL_QUANTILE * math.sqrt(70.0))


def _weights(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of T[m][m] and T[m][m-1] as combinations of the central differences."""
    table = _richardson_table(list(np.eye(levels)))
    return table[-1][-1], table[-1][-2]


class Probe:
    """Outputs of fn at x_i +- h_j v for one checked input and one direction (or one complex step)."""

    def __init__(self, backend: Any, index: int, v: np.ndarray, *, method: str, step: float, levels: int) -> None:
        x = backend.checked[index].x
        self.index = index
        self.method = method
        self.levels = levels
        self.direction = v
        if method == "complex":
            self.h = 1e-20  # no subtraction: any tiny step gives the derivative to round-off
            self.steps = [step]
            self.outs = backend.evaluate({index: x + 1j * self.h * v})
            return
        self.steps = [step / 2**j for j in range(levels)]
        self.plus = [backend.evaluate({index: x + h * v}) for h in self.steps]
        self.minus = [backend.evaluate({index: x - h * v}) for h in self.steps]

    def derivative(self, w: list[np.ndarray], noise: float) -> Derivative:
        """The reference for the scalar <w, fn>; ``noise`` = standard error of one L value."""
        if self.method == "complex":
            # Im <w, f(x + i h v)> / h: no cancellation, accurate to the round-off of the forward.
            return Derivative(loss(w, self.outs, imag=True) / self.h, noise, True, False, None)
        steps = np.array(self.steps)
        d = np.array([(loss(w, p) - loss(w, m)) / (2 * h) for p, m, h in zip(self.plus, self.minus, steps)])
        if not np.all(np.isfinite(d)):  # fn overflowed or left its domain inside the stencil: no reference
            return Derivative(math.nan, math.inf, False, False, None)
        c_best, c_prev = _weights(self.levels)
        best, prev = float(c_best @ d), float(c_prev @ d)
        # Round-off in D_j is noise / h_j (difference of two noisy values over 2 h_j); weights c_j.
        roundoff = float(np.sum(np.abs(c_best) / steps)) * noise
        return Derivative(
            best,
            max(abs(best - prev), roundoff),
            _smooth(d, steps, noise),
            abs(best - prev) > 8.0 * roundoff,
            kink_location(d, steps, noise),
        )


def _significance(d: np.ndarray, steps: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    delta = d[:-1] - d[1:]
    return delta, 32.0 * noise / steps[1:]


def _smooth(d: np.ndarray, steps: np.ndarray, noise: float) -> bool:
    r"""Do the central differences behave like a smooth function's on these steps?

    For a smooth function :math:`D_h = f' + c_2 h^2 + c_4 h^4 + \dots`, so the successive
    differences :math:`\delta_j = D_{h_j} - D_{h_{j+1}}` (halving steps) shrink by a factor ~4.
    A kink (relu) at distance :math:`t_0` along the direction breaks this: when
    :math:`t_0 < h_{min}` every difference carries a term ~ :math:`t_0/h` (ratio 1/2), when
    :math:`h_{j+1} < t_0 < h_j` one difference is large and the next is clean (ratio >> 4).
    Only differences well above their round-off (32 x noise / h_{j+1}, noise the measured
    standard error of one L value) are compared; the accepted ratio band [2.5, 6.5] around 4
    allows the h^4 term up to a third of the h^2 term's contribution.
    """
    delta, threshold = _significance(d, steps, noise)
    significant = np.abs(delta) > threshold
    for j in range(len(delta) - 1):
        if significant[j + 1] and not significant[j]:
            return False  # the difference grows as the step shrinks
        if significant[j] and significant[j + 1]:
            q = delta[j] / delta[j + 1]
            if not 2.5 <= q <= 6.5:
                return False
    return True


def kink_location(d: np.ndarray, steps: np.ndarray, noise: float) -> tuple[float, float] | None:
    r"""Where a kink sits along the direction, when the central differences locate one.

    Two signatures (see :func:`_smooth`): (a) one difference :math:`\delta_j` above round-off and
    more than 16 times the next one (and its round-off threshold) -- a smooth function gives a
    ratio ~4 -- means :math:`D_{h_j}` straddles a kink that :math:`D_{h_{j+1}}` does not: the kink
    lies at a distance in :math:`(h_{j+1}, h_j)`; (b) every significant ratio in (0.35, 0.65),
    the :math:`D_h = c + K/h` pattern of a kink inside the smallest stencil: distance in
    :math:`(0, h_{min})`. Returns (lo, hi) in units of the direction, or None (no kink located:
    nothing is claimed about kinks).
    """
    delta, threshold = _significance(d, steps, noise)
    significant = np.abs(delta) > threshold
    for j in range(len(delta) - 1):
        if significant[j] and abs(delta[j]) > 16.0 * max(abs(delta[j + 1]), threshold[j + 1]):
            return float(steps[j + 1]), float(steps[j])
    ratios = [delta[j] / delta[j + 1] for j in range(len(delta) - 1) if significant[j] and significant[j + 1]]
    if ratios and all(0.35 < q < 0.65 for q in ratios):
        return 0.0, float(steps[-1])
    return None
