"""The one tolerance table. Each entry carries the error analysis that justifies it.

Notation: u = 2**-53 ~ 1.1e-16 (float64 unit round-off).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Tolerance", "TOLERANCES", "UNIT_ROUNDOFF"]

UNIT_ROUNDOFF = 2.0**-53


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    reason: str


TOLERANCES: dict[str, Tolerance] = {
    "forward_vs_torch": Tolerance(
        1e-12,
        "Same operations in a different order: each output is a sum of O(n) products passed "
        "through T steps of a Lipschitz-1 contraction-free recursion; round-off grows like "
        "~ n*T*u*cond ~ 100*10*1e-16*10 = 1e-12 for the drawn sizes (n, T <= 10, weights O(1)). "
        "Measured worst case ~ 1e-15; relative to max|output| + tiny.",
    ),
    "bptt_vs_torch": Tolerance(
        1e-10,
        "Two exact reverse-mode implementations differ only by round-off in a sum of T products "
        "of one-step Jacobians; relative to the gradient's max-norm the error is "
        "~ T * n * u * prod ||J|| / ||grad|| which for drawn models (||J|| <= ~3, T <= 8) stays "
        "below 1e-12; 1e-10 allows the product's condition number up to 1e4.",
    ),
    "bptt_vs_complex_step": Tolerance(
        1e-12,
        "Complex step with step 1e-20 has truncation error O(h^2 * f''') ~ 1e-40 (nil) and no "
        "subtractive cancellation, so it is accurate to ~ n*T*u relative to the directional "
        "derivative's scale; 1e-12 allows the same round-off growth as forward_vs_torch.",
    ),
    "jvp_vs_vjp": Tolerance(
        1e-12,
        "<u, J v> computed by complex-step JVP and by BPTT VJP: both ~ n*T*u accurate (as "
        "bptt_vs_complex_step).",
    ),
    "jacobian_product": Tolerance(
        1e-12,
        "Product of T one-step Jacobians vs the complex-step derivative of h_t w.r.t. h_k: each "
        "matrix product adds ~ n*u relative error times the product's condition, <= 1e-12 for "
        "T <= 8, n <= 6.",
    ),
    "exact_vs_bptt": Tolerance(
        1e-13,
        "Exact (rational or 50-digit) gradient vs float64 BPTT: float64 round-off only, "
        "~ n*T*u ~ 3*6*1.1e-16 * cond; relative to the gradient's norm.",
    ),
    # --- gradtheory.check: factors in the checker's tolerance (see gradtheory/check.py), calibrated
    # on benchmarks/bench_checker.py. Their rtol field holds a dimensionless factor, not a tolerance.
    "check_roundoff_growth": Tolerance(
        4.0,
        "c_fd: one evaluation of L = <w, fn(x)> is wrong by about u * ||w * fn(x)||_2 when the N "
        "output terms carry independent rounding errors of relative size u; the recursion grows "
        "them by a modest factor (forward_vs_torch measures ~1e-15 relative for T, n <= 10). "
        "Factor 4 over the bare estimate; the Richardson-difference term of the estimate catches "
        "larger noise on its own (it contains the noise of the two most extrapolated entries).",
    ),
    "check_analytic_roundoff": Tolerance(
        16.0,
        "c_an: the backward gradient g and the dot product <g, v> are accurate to "
        "~ T * n * u * sum|g_k v_k| in the worst case, ~ sqrt(T n) * u * sum|g_k v_k| for "
        "independent roundings; 16 covers sqrt(T n) <= 16 for the benchmark sizes, and this term "
        "is ~ 1e-14 relative to <g, v> (sum|g v| ~ sqrt(n) |<g, v>|), far below the 1e-9 target.",
    ),
    "check_safety": Tolerance(
        10.0,
        "k: safety factor on the error estimate. |T_mm - T_m,m-1| over-estimates the truncation "
        "error of T_mm by orders of magnitude; the round-off term is a standard-deviation-like "
        "estimate, and over 5,000 directional tests (1,000 models x 5 inputs) a Gaussian exceeds "
        "4.5 sigma with probability ~ 2%; k = 10 leaves a margin of 2 over that. Measured "
        "(benchmarks/bench_checker.py, 1,000 random RNN/LSTM/GRU, 11,426 directional tests): "
        "|a - D| / tolerance has median 0.018, 99.9% quantile 0.11, max 0.20, i.e. |a - D| <= 2 "
        "estimates everywhere: zero false alarms with a margin of 5.",
    ),
}
