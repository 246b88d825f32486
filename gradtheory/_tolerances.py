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
}
