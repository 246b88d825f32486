"""Tolerances shared by several modules, typed so that they cannot be mixed up.

Notation: u = 2**-53 ~ 1.1e-16 (float64 unit round-off).

Three kinds, three types (frozen; no arithmetic between them):

* :class:`RelTol` -- a relative tolerance: ``|a - b| <= value * scale`` (:meth:`RelTol.of`);
* :class:`AbsTol` -- an absolute tolerance in the units of the compared quantity;
* :class:`Factor` -- a dimensionless factor in a formula such as ``c * n * u`` (:meth:`Factor.times`).

Only what several files use lives here (unit round-off, the oracle comparisons, the checker's
factors). A tolerance used by one test or check is a named constant next to it, with its
derivation.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "UNIT_ROUNDOFF",
    "RelTol",
    "AbsTol",
    "Factor",
    "FORWARD_VS_TORCH",
    "BPTT_VS_TORCH",
    "BPTT_VS_COMPLEX_STEP",
    "JACOBIAN_PRODUCT",
    "EXACT_VS_BPTT",
    "NORM_BOUND_PER_FACTOR",
    "LSTM_SATURATED_CELL_IDENTITY",
    "LOG_VALUE_ROUNDING",
    "CHECK_ROUNDOFF_GROWTH",
    "CHECK_ANALYTIC_ROUNDOFF",
    "CHECK_SAFETY",
]

UNIT_ROUNDOFF = 2.0**-53


@dataclass(frozen=True)
class RelTol:
    """A relative tolerance (dimensionless, relative to a scale given at the comparison)."""

    value: float
    reason: str

    def of(self, scale: float) -> float:
        """The absolute bound ``value * |scale|``."""
        return self.value * abs(scale)


@dataclass(frozen=True)
class AbsTol:
    """An absolute tolerance, in the units of the quantity it bounds."""

    value: float
    reason: str


@dataclass(frozen=True)
class Factor:
    """A dimensionless factor ``c`` in an error formula such as ``c * n * u`` (not a tolerance by itself)."""

    value: float
    reason: str

    def times(self, *terms: float) -> float:
        """``c * terms[0] * terms[1] * ...``."""
        out = self.value
        for term in terms:
            out *= term
        return out


# --- models vs torch and the derivative oracles (tests, symbolic checks, claims) ---
FORWARD_VS_TORCH = RelTol(
    1e-12,
    "Same operations in a different order: each output is a sum of O(n) products passed "
    "through T steps of a Lipschitz-1 contraction-free recursion; round-off grows like "
    "~ n*T*u*cond ~ 100*10*1e-16*10 = 1e-12 for the drawn sizes (n, T <= 10, weights O(1)). "
    "Measured worst case ~ 1e-15; relative to max|output| + tiny.",
)
BPTT_VS_TORCH = RelTol(
    1e-10,
    "Two exact reverse-mode implementations differ only by round-off in a sum of T products "
    "of one-step Jacobians; relative to the gradient's max-norm the error is "
    "~ T * n * u * prod ||J|| / ||grad|| which for drawn models (||J|| <= ~3, T <= 8) stays "
    "below 1e-12; 1e-10 allows the product's condition number up to 1e4.",
)
BPTT_VS_COMPLEX_STEP = RelTol(
    1e-12,
    "Complex step with step 1e-20 has truncation error O(h^2 * f''') ~ 1e-40 (nil) and no "
    "subtractive cancellation, so it is accurate to ~ n*T*u relative to the directional "
    "derivative's scale; 1e-12 allows the same round-off growth as forward_vs_torch.",
)
JACOBIAN_PRODUCT = RelTol(
    1e-12,
    "Product of T one-step Jacobians vs the complex-step derivative of h_t w.r.t. h_k: each "
    "matrix product adds ~ n*u relative error times the product's condition, <= 1e-12 for "
    "T <= 8, n <= 6.",
)
EXACT_VS_BPTT = RelTol(
    1e-13,
    "Exact (rational or 50-digit) gradient vs float64 BPTT: float64 round-off only, "
    "~ n*T*u ~ 3*6*1.1e-16 * cond; relative to the gradient's norm.",
)
NORM_BOUND_PER_FACTOR = RelTol(
    1e-12,
    "||P_t||_2 <= q^t (1 + rtol (t + 1)): each spectral norm and product carries ~ n u relative "
    "round-off per factor: allow 1e-12 per factor.",
)
LSTM_SATURATED_CELL_IDENTITY = AbsTol(
    1e-14,
    "Absolute: with bias_f = +60 (f == 1.0 in float64) and bias_i = -60 (i <= 1e-20) the total "
    "dc_T/dc_0 and the joint product's c-block equal I; the deviation from I comes only from "
    "i <= 1e-20 times O(||W|| T): 1e-14 bounds it.",
)
# --- logs of norms (tests of bounds and of the gradient flow) ---
LOG_VALUE_ROUNDING = Factor(
    4.0,
    "Factor c in abs = c u (1 + |y|) or c u |y| for y = ln||g||: a float64 number of size |y| is "
    "itself only accurate to u |y|. Two evaluations of ln||r|| are each within ~ 2u (1 + "
    "|ln||r|||); the running log-scale is a compensated sum (error ~ 2u |total|), plus the "
    "final addition, hence the extra 4 u |value| term.",
)
# --- gradtheory.check: factors in the checker's tolerance (calibrated on benchmarks/bench_checker.py) ---
CHECK_ROUNDOFF_GROWTH = Factor(
    4.0,
    "c_fd: one evaluation of L = <w, fn(x)> is wrong by about u * ||w * fn(x)||_2 when the N "
    "output terms carry independent rounding errors of relative size u; the recursion grows "
    "them by a modest factor (forward_vs_torch measures ~1e-15 relative for T, n <= 10). "
    "Factor 4 over the bare estimate; the Richardson-difference term of the estimate catches "
    "larger noise on its own (it contains the noise of the two most extrapolated entries).",
)
CHECK_ANALYTIC_ROUNDOFF = Factor(
    16.0,
    "c_an: the backward gradient g and the dot product <g, v> are accurate to "
    "~ T * n * u * sum|g_k v_k| in the worst case, ~ sqrt(T n) * u * sum|g_k v_k| for "
    "independent roundings; 16 covers sqrt(T n) <= 16 for the benchmark sizes, and this term "
    "is ~ 1e-14 relative to <g, v> (sum|g v| ~ sqrt(n) |<g, v>|), far below the 1e-9 target.",
)
CHECK_SAFETY = Factor(
    10.0,
    "k: safety factor on the error estimate. |T_mm - T_m,m-1| over-estimates the truncation "
    "error of T_mm by orders of magnitude; the round-off term is a standard-deviation-like "
    "estimate, and over 5,000 directional tests (1,000 models x 5 inputs) a Gaussian exceeds "
    "4.5 sigma with probability ~ 2%; k = 10 leaves a margin of 2 over that. Measured "
    "(benchmarks/bench_checker.py, 1,000 random RNN/LSTM/GRU, 11,426 directional tests): "
    "|a - D| / tolerance has median 0.018, 99.9% quantile 0.11, max 0.20, i.e. |a - D| <= 2 "
    "estimates everywhere: zero false alarms with a margin of 5.",
)
