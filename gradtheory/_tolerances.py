"""Tolerances shared by several modules, typed so that they cannot be mixed up.

Notation: u = 2**-53 ~ 1.1e-16 (float64 unit round-off).

Three kinds, three types (frozen; no arithmetic between them):

* :class:`RelTol` -- a relative tolerance: ``|a - b| <= value * scale`` (:meth:`RelTol.of`);
* :class:`AbsTol` -- an absolute tolerance in the units of the compared quantity;
* :class:`Factor` -- a dimensionless factor in a formula such as ``c * n * u`` (:meth:`Factor.times`).

Only what several files use lives here (unit round-off, the oracle comparisons, the checker's
factors). A tolerance used by one test or check is a named constant next to it, with its
derivation. ``TOLERANCES`` below is the old string-keyed table, being dismantled: its remaining
entries move to their single users; do not add to it.
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
    "Tolerance",
    "TOLERANCES",
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


@dataclass(frozen=True)
class Tolerance:
    """An entry of the old table (``rtol`` held relative, absolute and dimensionless values alike)."""

    rtol: float
    reason: str


def _entry(tol: RelTol | AbsTol | Factor) -> Tolerance:
    return Tolerance(tol.value, tol.reason)


TOLERANCES: dict[str, Tolerance] = {
    # --- models vs torch and the derivative oracles (shared by tests, symbolic checks, claims) ---
    "forward_vs_torch": _entry(FORWARD_VS_TORCH),
    "bptt_vs_torch": _entry(BPTT_VS_TORCH),
    "bptt_vs_complex_step": _entry(BPTT_VS_COMPLEX_STEP),
    "jacobian_product": _entry(JACOBIAN_PRODUCT),
    "exact_vs_bptt": _entry(EXACT_VS_BPTT),
    # --- gradtheory.check: factors in the checker's tolerance (see gradtheory/check.py), calibrated
    # on benchmarks/bench_checker.py. Their rtol field holds a dimensionless factor, not a tolerance.
    "check_roundoff_growth": _entry(CHECK_ROUNDOFF_GROWTH),
    "check_analytic_roundoff": _entry(CHECK_ANALYTIC_ROUNDOFF),
    "check_safety": _entry(CHECK_SAFETY),
    # ============================================================================================
    # Test- and audit-local tolerances. Unless the reason says otherwise ``rtol`` is a relative
    # tolerance. Entries whose name ends in ``_abs`` hold an absolute tolerance (on the quantity
    # named in the reason; on natural logs of norms an absolute e is a relative error ~e in the
    # norm). Entries whose reason gives a formula ``c * ... * u`` hold the dimensionless factor c
    # (u = UNIT_ROUNDOFF), as the check_* entries above do.
    # ============================================================================================
    # --- bounds: spectra, envelope, Lyapunov exponents (tests/test_bounds.py) ---
    "log_value_rounding": _entry(LOG_VALUE_ROUNDING),
    # --- stability checker (gradtheory/check.py check_stability, tests/test_check_stability.py) ---
    "stability_envelope_slack": Tolerance(
        1e-9,
        "Factor in flow <= envelope + rtol (1 + |envelope|) on ln-norms: the envelope theorem "
        "checked with a relative slack for the round-off of the log-norms (~ T n u, ~ 1e-12 for "
        "T ~ 1e3, n ~ 10); 1e-9 is far above that and far below any real violation.",
    ),
    # --- gradient flow on logs of norms (tests/test_gradient_flow.py) ---
    # --- oracles (tests/test_oracles.py) ---
    # --- models vs oracles (tests/test_models_oracles.py) ---
    # --- clipping (tests/test_clipping.py) ---
    # --- symbolic derivations vs models (tests/symbolic/) ---
    # --- claims audit: RNN (gradtheory/claims/rnn.py, tests/claims/test_rnn.py) ---
    "unstable_trajectory_drift": Tolerance(
        16.0,
        "Factor c in tol = jacobian_product * T + c u max_t ||dh_t/dh_0|| (relative): products of "
        "T one-step Jacobians vs the complex-step derivative of h_T w.r.t. h_0. Both are exact to "
        "round-off *along their own trajectory*; but the complex forward pass rounds the real part "
        "differently (complex tanh/products), and along an unstable trajectory a state "
        "perturbation of u grows like ||dh_t/dh_0||, so the two trajectories (hence their "
        "Jacobians) differ by ~ u * max_t ||dh_t/dh_0|| relative; plus the product's own "
        "~ T * 1e-12.",
    ),
    "norm_bound_per_factor": _entry(NORM_BOUND_PER_FACTOR),
    "zero_fixed_point_power": Tolerance(
        1e-12,
        "At the zero fixed point of a tanh RNN (tanh'(0) = 1 exactly) the product of T one-step "
        "Jacobians is W^T accumulated one factor at a time, vs numpy's matrix_power (repeated "
        "squaring): the same exact value in a different order; each product adds ~ n u relative "
        "times the condition of the partial products, <= 1e-12 as jacobian_product.",
    ),
    "fixed_point_margin_slack": Tolerance(
        1e-9,
        "Relative slack when a computed ||dh_T/dh_0||_2 is compared with a predicted value "
        "(rho(W)^T from below, GROWTH^-T from above): round-off ~ T n u (T <= 60) ~ 1e-13 plus the "
        "eigenvalue conditioning of rho(W) for non-normal W; 1e-9 covers both and is far below the "
        "demonstrated margins (GROWTH^T ~ 5.6e4).",
    ),
    "sigmoid_prime_max_abs": Tolerance(
        1e-15,
        "Absolute: the numeric max of sigma'(a) = h (1 - h) on a grid through a = 0 vs 1/4: at "
        "a = 0, h = 1/2 and the product are exact; ~ u of slack for the grid evaluation.",
    ),
    "sigmoid_argmax_grid_abs": Tolerance(
        1e-4,
        "Absolute: the grid argmax of sigma' lies within one grid spacing (40 / 400000 = 1e-4) of "
        "the true argmax a = 0.",
    ),
    # --- claims audit: LSTM (gradtheory/claims/lstm.py, tests/claims/test_lstm.py) ---
    "lstm_cell_update_roundoff": Tolerance(
        8.0,
        "Factor c in |write - i g| <= c u (|f c_{t-1}| + |c_t| + 1), entry by entry: "
        "c_t = fl(fl(f c) + fl(i g)), then write = fl(c_t - fl(f c)): |write - i g| <= "
        "u (2|f c| + |i g| + |c_t| + |write|) + O(u^2) <= 8u (|f c_{t-1}| + |c_t| + 1).",
    ),
    "gate_preactivation_roundoff": Tolerance(
        2.0,
        "Factor c in |a - a'| <= c n u sum|terms|: an LSTM pre-activation W_ih x + W_hh h + b "
        "recomputed with its n = I + H + 2 terms summed in another order: each evaluation is within "
        "n u sum|terms| of the exact sum, so they differ by <= 2 n u sum|terms|; gates inherit it "
        "through sigma' <= 1/4, tanh' <= 1.",
    ),
    "gate_value_roundoff": Tolerance(
        1.0,
        "Factor c in + c u (absolute): on top of the propagated pre-activation difference, the two "
        "evaluations of a gate (sigmoid or tanh, values <= 1) round their results, ~ u/2 each.",
    ),
    "gate_product_roundoff": Tolerance(
        4.0,
        "Factor c in + c u (absolute): the write i g recomputed vs the model's: each side rounds "
        "i and g (values <= 1, ~ u/2 each) and their product (u/2): <= 3u in all, 4u with margin.",
    ),
    "lstm_cell_growth_roundoff": Tolerance(
        4.0,
        "Factor c in |c_t| <= |c_0| + t + c (t + 1) u (|c_0| + t): the exact bound follows from "
        "|f| <= 1 and |i g| <= 1; in float64 c_t = fl(fl(f c_{t-1}) + fl(i g)) adds <= 2u (|c_0| + t) "
        "per step, so <= 2u t (|c_0| + t) after t steps (worst case, f == 1.0 every step); c = 4 "
        "covers that and the rounding of the comparison itself.",
    ),
    "lstm_saturated_cell_identity_abs": _entry(LSTM_SATURATED_CELL_IDENTITY),
    "forget_product_per_factor": Tolerance(
        1e-13,
        "prod_t f_t vs f_min^T and f_max^T (relative slack rtol * T): each product or power rounds "
        "~ once per factor (~ u per factor); 1e-13 per factor is a wide margin.",
    ),
    "rnn_norm_vs_complex_step": Tolerance(
        1e-10,
        "||dh_T/dh_0||_2 from the product of the RNN's Jacobians vs from the complex-step oracle "
        "(T = 60 steps): product round-off ~ T n u kappa plus the drift between the real and the "
        "complex trajectories (see unstable_trajectory_drift); 1e-10 allows kappa up to ~ 1e4 as "
        "bptt_vs_torch does.",
    ),
    # --- claims audit: residual / highway (gradtheory/claims/architecture.py) ---
    "residual_one_step_jacobian_abs": Tolerance(
        1e-13,
        "Absolute: J_t vs I + diag(phi'(a)) W, and the singular values of J_t vs [1 - ||J_F||, "
        "1 + ||J_F||]: singular values of 3x3 matrices with O(1) entries: backward error "
        "~ n u ||J||.",
    ),
    "residual_singular_value_per_step": Tolerance(
        1e-12,
        "sigma(dh_T/dh_0) in [(1 - eps)^T, (1 + eps)^T] with relative slack rtol * T: the "
        "complex-step oracle and its SVD carry ~ n u relative round-off per factor of the product.",
    ),
    "highway_closed_gate_identity_abs": Tolerance(
        1e-14,
        "Absolute: transform gate closed by bias -60 (T_t < 1e-23): dh_T/dh_0 = I up to "
        "O(1e-23 T ||W||); 1e-14 bounds it with room for the product's rounding.",
    ),
    "highway_open_gate_jacobian_abs": Tolerance(
        1e-15,
        "Absolute: transform gate open (T == 1.0 exactly): J_t = diag(1 - F^2) W_F from the model "
        "vs recomputed from the same pre-activation summed in a possibly different order: a few u "
        "on entries of size ~ max|W_F| <= 1.",
    ),
    # --- claims audit: clipping (gradtheory/claims/clipping.py, tests/claims/) ---
    "clip_coefficient_spread": Tolerance(
        4.0,
        "Factor c in spread <= c u |coef|: the same coefficient for every entry: v_k = fl(coef g_k), "
        "so where v_k is a normal float the ratios v_k / g_k are coef (1 + d_k)(1 + e_k), "
        "|d_k|, |e_k| <= u (product, then division): their spread is <= 4u coef. Where coef g_k "
        "underflows into the subnormals the rounding error is absolute, at most half the subnormal "
        "spacing 2^-1074 (found by Hypothesis: g = ([1], [2.2e-308]), theta = 1/8).",
    ),
    "clip_vs_torch": Tolerance(
        1e-13,
        "Norm clipping vs torch.nn.utils.clip_grad_norm_ (entries and total norm), and "
        "||clip(g)|| <= theta (1 + rtol): torch computes the norm in a different order: relative "
        "differences ~ n u.",
    ),
    "clip_step_bound": Tolerance(
        4.0,
        "Factor c in ||clip(g)||_2 <= theta (1 + c u): in exact arithmetic the clipped norm "
        "min(N, theta N / (N + 1e-6)) is below theta; computing the coefficient theta / (N + 1e-6), "
        "the products coef g_k and the norm of the result again (scaled by its max entry) adds a "
        "few roundings of u beyond that: c = 4.",
    ),
    "clip_explode_gradient_vs_matrix_power": Tolerance(
        1e-12,
        "BPTT input gradient at the zero fixed point (tanh'(0) = 1, J = W_hh exactly) vs "
        "(W^(T-k))^T 1 by matrix_power: the same exact value in a different multiplication order: "
        "~ T n u relative times the condition of the partial products.",
    ),
    "symbolic_nonzero_abs": Tolerance(
        1e-20,
        "Absolute threshold for 'this derived expression is not identically zero': it is evaluated "
        "with sympy evalf at 30 significant digits at a rational point where every term is O(1) "
        "(weights and inputs in [-1.25, 1.25], tanh' in (0, 1]), so evaluation noise is ~1e-30 and "
        "a value above 1e-20 is a genuine nonzero (the bidirectional reverse-half derivatives "
        "checked this way are ~1e-2 .. 1).",
    ),
}
