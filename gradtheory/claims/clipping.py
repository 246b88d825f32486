r"""Claims about gradient clipping.

Norm clipping (torch, ``gradtheory.clipping.clip_grad_norm``) multiplies every gradient by the
same :math:`c = \min(\theta/(N + 10^{-6}), 1) > 0`, :math:`N` the global norm: the concatenated
gradient keeps its direction. Clipping by value clamps each entry and does not
(``proofs/clipping.tex``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .. import clip_grad_norm, clip_grad_value
from .._tolerances import UNIT_ROUNDOFF
from ._core import (
    AuditSettings,
    Findings,
    Quote,
    claim,
    counterexample,
    derived,
    exact_witness,
    holds,
    negation_derived,
    proof_or_property,
    search,
)
from ._numeric import derivation, rnn

# CLIP_COEFFICIENT_SPREAD (dimensionless factor): Factor c in spread <= c u |coef|: the same
# coefficient for every entry: v_k = fl(coef g_k), so where v_k is a normal float the ratios v_k /
# g_k are coef (1 + d_k)(1 + e_k), |d_k|, |e_k| <= u (product, then division): their spread is <= 4u
# coef. Where coef g_k underflows into the subnormals the rounding error is absolute, at most half
# the subnormal spacing 2^-1074 (found by Hypothesis: g = ([1], [2.2e-308]), theta = 1/8).
CLIP_COEFFICIENT_SPREAD = 4.0
# CLIP_VS_TORCH (relative tolerance): Norm clipping vs torch.nn.utils.clip_grad_norm_ (entries and
# total norm), and ||clip(g)|| <= theta (1 + rtol): torch computes the norm in a different order:
# relative differences ~ n u.
CLIP_VS_TORCH = 1e-13
# CLIP_STEP_BOUND (dimensionless factor): Factor c in ||clip(g)||_2 <= theta (1 + c u): in exact
# arithmetic the clipped norm min(N, theta N / (N + 1e-6)) is below theta; computing the coefficient
# theta / (N + 1e-6), the products coef g_k and the norm of the result again (scaled by its max
# entry) adds a few roundings of u beyond that: c = 4.
CLIP_STEP_BOUND = 4.0
# CLIP_EXPLODE_GRADIENT_VS_MATRIX_POWER (relative tolerance): BPTT input gradient at the zero fixed
# point (tanh'(0) = 1, J = W_hh exactly) vs (W^(T-k))^T 1 by matrix_power: the same exact value in a
# different multiplication order: ~ T n u relative times the condition of the partial products.
CLIP_EXPLODE_GRADIENT_VS_MATRIX_POWER = 1e-12

__all__ = ["cosine", "gradient_lists", "norm_clipping_keeps_direction"]

U = UNIT_ROUNDOFF


def _impl():
    """The implementations under test (gradtheory's; torch's are the oracle)."""
    return clip_grad_norm, clip_grad_value


@st.composite
def gradient_lists(draw, max_arrays: int = 3):
    """A list of 1-3 gradient arrays of small random shapes, entries scaled by 10**k (k in -3..6)."""
    k = draw(st.integers(1, max_arrays))
    scale = 10.0 ** draw(st.integers(-3, 6))
    arrays = []
    for _ in range(k):
        shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=4))
        arrays.append(scale * draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1, allow_subnormal=False))))
    return arrays


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """cos of the angle between nonzero vectors (scaled first: no underflow for tiny entries)."""
    a = a / np.abs(a).max()
    b = b / np.abs(b).max()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _torch_clip(grads, max_norm, norm_type):
    import torch

    ps = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = torch.tensor(g, dtype=torch.float64)
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    return [p.grad.numpy().copy() for p in ps], float(total)


def norm_clipping_keeps_direction(case) -> bool:
    r"""For finite, nonzero g: clip(g) = c g with one c in (0, 1] for all arrays, c = min(theta/(N+1e-6), 1),
    ||clip(g)|| <= theta, and the result equals torch.nn.utils.clip_grad_norm_ (the oracle)."""
    grads, max_norm, norm_type = case
    g = np.concatenate([a.ravel() for a in grads])
    if not np.any(g):
        return True
    clip_norm, _ = _impl()
    ref, ref_total = _torch_clip(grads, max_norm, norm_type)
    out, total = clip_norm(grads, max_norm, norm_type=norm_type)
    v = np.concatenate([a.ravel() for a in out])
    r = np.concatenate([a.ravel() for a in ref])
    # the same coefficient for every entry: v_k = fl(c g_k), so where v_k is a normal float the ratios
    # v_k / g_k are c (1 + d_k)(1 + e_k), |d_k|, |e_k| <= u (product, then division): their spread is
    # <= 4u c (CLIP_COEFFICIENT_SPREAD above). Where c g_k underflows into the subnormals the rounding error is absolute, at most half
    # the subnormal spacing 2^-1074 (found by Hypothesis: g = ([1], [2.2e-308]), theta = 1/8).
    # (Not a dot-product estimate of c: its BLAS summation order varies between runs.)
    tiny = np.finfo(np.float64).tiny
    nz = g != 0
    normal = nz & (np.abs(v) >= tiny)
    ratios = v[normal] / g[normal]
    c = float(np.median(ratios)) if ratios.size else min(max_norm / (total + 1e-6), 1.0)
    sub = nz & ~normal
    spread = CLIP_COEFFICIENT_SPREAD
    parallel = bool(
        np.all(v[~nz] == 0)
        and (ratios.size == 0 or ratios.max() - ratios.min() <= spread * U * abs(c))
        and np.all(np.abs(v[sub] - c * g[sub]) <= spread * U * np.abs(c * g[sub]) + 2.0**-1074)
    )
    # torch computes the norm in a different order: relative differences ~ n u
    vs_torch = CLIP_VS_TORCH
    agree = np.allclose(v, r, rtol=vs_torch, atol=0) and math.isclose(total, ref_total, rel_tol=vs_torch)
    p = math.inf if norm_type == math.inf else norm_type
    bounded = np.linalg.norm(v, ord=p) <= max_norm * (1 + vs_torch) or np.linalg.norm(v, ord=p) <= np.linalg.norm(
        g, ord=p
    )
    return bool(parallel and 0 < c <= 1 + spread * U and agree and bounded)


_CASES = st.tuples(gradient_lists(), st.floats(1e-3, 1e3), st.sampled_from([2.0, 1.0, math.inf]))


@claim(
    "clipping-preserves-direction",
    quotes=[
        Quote(
            "003",
            "If the norm of the gradient is greater than some threshold, scale it down before applying SGD update",
            "Gradient clipping",
        ),
        Quote(
            "003",
            "same direction, but with a smaller in magnitude step",
            "Gradient clipping",
        ),
    ],
    precise="Norm clipping (torch semantics) returns c g with a single c = min(theta/(N + 1e-6), 1) in (0, 1] for all "
    "parameters, N the global norm (p = 1, 2 or inf): the direction of the concatenated gradient is unchanged and "
    "its norm is min(N, theta N/(N + 1e-6)) <= theta (slightly below theta, and a gradient of norm exactly "
    "theta is scaled by theta/(theta + 1e-6)).",
    proofs=("clipping",),
)
def check_clipping_preserves_direction(settings: AuditSettings) -> Findings:
    d = derivation("clipping")
    prop = holds(_CASES, norm_clipping_keeps_direction, 60, settings)
    held = not prop.ok
    clip_norm, _ = _impl()
    # torch's epsilon: a gradient of norm exactly theta is still scaled, by theta/(theta+1e-6)
    g = [np.array([3.0, 4.0])]
    out, N = clip_norm(g, 5.0)
    eps_example = {
        "g": g[0],
        "max_norm": 5.0,
        "norm": N,
        "clipped": out[0],
        "clipped_norm": float(np.linalg.norm(out[0])),
        "cosine": cosine(out[0], g[0]),
    }
    proved = _factor_in_unit_interval(d)
    return Findings(
        proof_or_property(proved, held),
        None,
        {
            "derivation": d.name,
            "derived_factor": str(d.result["factor"]),
            "implementation": "gradtheory.clip_grad_norm",
            "oracle": "torch.nn.utils.clip_grad_norm_",
            "examples": prop.examples,
            "counterexample": prop.found,
            "epsilon_example": eps_example,
        },
    )


def value_clipping_cosine(case) -> float:
    g, v = case
    _, clip_value = _impl()
    out = clip_value([g], v)[0]
    return cosine(out, g)


@claim(
    "value-clipping-preserves-direction",
    quotes=[
        Quote(
            "torch",
            "Clipping the gradient by value (clamping every entry to [-v, v]) also scales it down in "
            "the same direction. (the alternative to norm clipping, stated for contrast)",
        )
    ],
    precise="clamp(g, -v, v) is parallel to g. Established instead: clamping entries independently changes the "
    "direction whenever some but not all entries exceed v (or they exceed it by different factors).",
    proofs=("clipping",),
)
def check_value_clipping_preserves_direction(settings: AuditSettings) -> Findings:
    vec = hnp.arrays(np.float64, 2, elements=st.floats(-10, 10, allow_subnormal=False)).filter(lambda a: np.any(a))
    found = search(
        st.tuples(vec, st.floats(0.1, 5.0)),
        lambda c: value_clipping_cosine(c) < 1 - 1e-6,
        200,
        settings,
        key="value-clipping-turns",
    )
    ev: dict = {"searched_examples": found.examples, "found_by": found.source}
    reverified = False
    if found.ok:
        g, v = found.found
        import torch

        t = torch.tensor(g, dtype=torch.float64)
        p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        p.grad = t.clone()
        torch.nn.utils.clip_grad_value_([p], v)
        out = p.grad.numpy()
        reverified = cosine(out, g) < 1 - 1e-6
        ev["counterexample"] = {
            "g": g,
            "clip_value": v,
            "clipped_torch": out,
            "cosine": cosine(out, g),
            "angle_degrees": math.degrees(math.acos(min(1.0, cosine(out, g)))),
        }
    return Findings(counterexample(found.ok, reverified), None, ev)


def _factor_in_unit_interval(d) -> bool:
    """The derived clipping factor min(1, theta/r) lies in (0, 1] for every theta, r > 0: SymPy decides
    0 < factor <= 1 from the symbols' assumptions (positive), and at a rational point as a spot check."""
    import sympy as sp

    factor = d.result["factor"]
    free = sorted(factor.free_symbols, key=str)
    at = factor.subs({sym: val for sym, val in zip(free, (sp.Rational(3), sp.Rational(7)))})
    return bool(at > 0 and at <= 1 and factor.is_positive is not False and sp.simplify(sp.Min(factor, 1) - factor) == 0)


EXPLODE_STEPS = 30
THRESHOLD = 1.0  # Pascanu et al.'s threshold in their experiments


def input_gradients(W_hh: np.ndarray) -> np.ndarray:
    r"""g_k = dL/dx_k for L = <r, h_T>, r = (1, ..., 1), of a tanh RNN (W_ih = I, no bias) at its
    zero fixed point (x = 0, h_0 = 0), by hand-written BPTT: shape (T, n); g_k = (W_hh^(T-k))^T r."""
    n = W_hh.shape[0]
    model = rnn(W_hh)
    x = np.zeros((EXPLODE_STEPS, n))
    res = model.forward(x)
    d = np.zeros_like(res.output)
    d[-1] = 1.0
    return model.backward(res, d).x


def last_step_share_after_clipping(W_hh: np.ndarray) -> float:
    """||clip(g)_T|| / ||g_T||: what clipping leaves of the most recent (short-range) input gradient."""
    clip_norm, _ = _impl()
    g = input_gradients(W_hh)
    clipped, _ = clip_norm(g, THRESHOLD)
    return float(np.linalg.norm(clipped[-1]) / np.linalg.norm(g[-1]))


def clipping_bounds_step(case) -> bool:
    """Precise (i): ||clip(g)||_2 <= theta for every finite g (the update length is bounded), and the ratio
    of any two components is unchanged (so no component is restored relative to another)."""
    grads, max_norm, _ = case
    clip_norm, _ = _impl()
    out, _ = clip_norm(grads, max_norm)
    v = np.concatenate([a.ravel() for a in out])
    g = np.concatenate([a.ravel() for a in grads])
    m = np.abs(v).max() if v.size else 0.0
    norm_v = 0.0 if m == 0 else m * float(np.linalg.norm(v / m))
    return bool(
        norm_v <= max_norm * (1 + CLIP_STEP_BOUND * U)
        and norm_clipping_keeps_direction((grads, max_norm, 2.0))
        and (not np.any(g) or np.all(np.sign(v) == np.sign(g)))
    )


@claim(
    "clipping-solves-exploding",
    quotes=[
        Quote(
            "000",
            "The problem of exploding gradients can be solved by *gradient clipping* i.e. if gradient is "
            "larger than the threshold, scale it by dividing.",
            "RNN",
        ),
        Quote(
            "001",
            "The problem of exploding gradients can be solved by gradient clipping i.e. if gradient is "
            "larger than the threshold, scale it by dividing.",
        ),
        Quote("003", "solution for exploding gradient", "Gradient clipping"),
    ],
    precise="After norm clipping, an RNN whose gradient explodes trains as if it did not: clipping restores the "
    "gradient's information (every component keeps a usable size).",
    refinement="Clipping bounds the update: ||clip(g)||_2 <= theta for every finite g, so one SGD step moves at most "
    "lr * theta; it does not restore gradient flow: every component is scaled by the same factor, so when "
    "long-range terms explode the short-range ones are scaled towards 0 with them (after clipping, the gradient "
    "w.r.t. the most recent input can be < 1e-6 of its unclipped value).",
    proofs=("clipping",),
)
def check_clipping_solves_exploding(settings: AuditSettings) -> Findings:
    strategy = st.lists(st.floats(-2, 2, allow_subnormal=False), min_size=4, max_size=4).map(
        lambda v: np.array(v).reshape(2, 2)
    )
    found = search(
        strategy,
        lambda W: np.any(input_gradients(W)[-1]) and last_step_share_after_clipping(W) < 1e-6,
        200,
        settings,
        key="clipping-kills-recent-gradient",
    )
    ev: dict = {
        "searched_examples": found.examples,
        "found_by": found.source,
        "steps": EXPLODE_STEPS,
        "max_norm": THRESHOLD,
    }
    reverified = False
    if found.ok:
        W = found.found
        g = input_gradients(W)
        # oracle: g_k = (W^(T-k))^T 1 at the zero fixed point (tanh'(0) = 1, J = W_hh)
        ref = np.array([np.linalg.matrix_power(W, EXPLODE_STEPS - 1 - k).T @ np.ones(2) for k in range(EXPLODE_STEPS)])
        ref_clipped, _ = _torch_clip([ref], THRESHOLD, 2.0)
        share = float(np.linalg.norm(ref_clipped[0][-1]) / np.linalg.norm(ref[-1]))
        reverified = bool(
            np.allclose(
                g,
                ref,
                rtol=CLIP_EXPLODE_GRADIENT_VS_MATRIX_POWER,
                atol=0,
            )
            and share < 1e-6
        )
        ev["counterexample"] = {
            "nonlinearity": "tanh",
            "W_hh": W,
            "W_ih": np.eye(2),
            "x": "zeros (30, 2)",
            "h0": [0.0, 0.0],
            "loss": "<(1, 1), h_T>",
            "grad_norm": float(np.linalg.norm(g)),
            "grad_x_last_step": g[-1],
            "clipped_grad_x_last_step_torch": ref_clipped[0][-1],
            "last_step_share_after_clipping": share,
        }
    prec = holds(_CASES, clipping_bounds_step, 40, settings)
    ev["refinement_examples"] = prec.examples
    return Findings(
        counterexample(found.ok, reverified),
        proof_or_property(_factor_in_unit_interval(derivation("clipping")), not prec.ok),
        ev,
    )


# ---------------------------------------------------------------------------------------------
# clipping-fixes-vanishing, sgd-step-proportional-to-gradient


def clipping_never_enlarges(case) -> bool:
    """|clip(g)_k| <= |g_k| for every entry (norm clipping with p = 1, 2, inf), against torch's clipping."""
    grads, max_norm, norm_type = case
    out, _ = clip_grad_norm(grads, max_norm, norm_type=norm_type)
    ref, _ = _torch_clip(grads, max_norm, norm_type)
    return all(np.all(np.abs(o) <= np.abs(g)) and np.all(np.abs(r) <= np.abs(g)) for o, r, g in zip(out, ref, grads))


@claim(
    "clipping-fixes-vanishing",
    quotes=[
        Quote(
            "003",
            "**Fixes for vanishing (or exploding) gradient:**\n- Gradient clipping",
            "Summary",
        )
    ],
    precise="Gradient clipping counteracts vanishing gradients (makes a vanishing gradient, or any component of it, "
    "larger). Established instead: norm clipping multiplies every entry by min(1, theta/(N + 1e-6)) <= 1 (derived), "
    "so no component ever grows (Hypothesis, with torch as oracle); a vanishing gradient (N < theta) is returned "
    "unchanged. Clipping addresses only exploding gradients.",
    proofs=("clipping",),
)
def check_clipping_fixes_vanishing(settings: AuditSettings) -> Findings:
    d = derivation("clipping")
    prop = holds(_CASES, clipping_never_enlarges, 40, settings)
    g = [np.array([1e-9, -2e-9])]  # a vanishing gradient, far below the threshold 1
    out, _ = clip_grad_norm(g, 1.0)
    unchanged = bool(np.array_equal(out[0], g[0]))
    return Findings(
        negation_derived(_factor_in_unit_interval(d) and not prop.ok and unchanged),
        None,
        {
            "derived_factor": str(d.result["factor"]),
            "examples": prop.examples,
            "counterexample": prop.found,
            "vanishing_gradient": g[0],
            "clipped": out[0],
            "threshold": 1.0,
        },
    )


# torch's SGD step -lr g rounds once per entry (relative u), the two norms once more each: 4u bounds both.
SGD_STEP_ROUNDING = 4 * UNIT_ROUNDOFF


def sgd_step_scales_with_gradient(case) -> bool:
    r"""The SGD step -lr g has norm lr ||g|| (torch.optim.SGD as the oracle: one step from zeros)."""
    import torch

    g, lr = case
    p = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64))
    p.grad = torch.tensor(g, dtype=torch.float64)
    torch.optim.SGD([p], lr=lr).step()
    step = p.detach().numpy()
    # step = fl(-lr g_k) entry by entry: relative error <= u per entry, so the norms agree to ~2u
    return bool(
        np.allclose(step, -lr * g, rtol=SGD_STEP_ROUNDING, atol=0)
        and abs(np.linalg.norm(step) - lr * np.linalg.norm(g)) <= SGD_STEP_ROUNDING * lr * np.linalg.norm(g) + 1e-300
    )


@claim(
    "sgd-step-proportional-to-gradient",
    quotes=[
        Quote(
            "003",
            "If the gradient becomes too big, then the SGD update step becomes too big",
            "Exploding gradient as a problem",
        ),
        Quote(
            "004",
            "as the gradient shrinks, the parameter updates become minor",
            "Vanishing Gradient Problem",
        ),
    ],
    precise="The SGD update is -lr g: its norm is lr ||g||, so it grows and shrinks with the gradient (SymPy: "
    "||-lr g|| = lr ||g|| for lr > 0; torch.optim.SGD's step as the numeric oracle).",
)
def check_sgd_step_proportional_to_gradient(settings: AuditSettings) -> Findings:
    import sympy as sp

    lr = sp.Symbol("lr", positive=True)
    g = sp.Matrix(sp.symbols("g0:3", real=True))
    step = -lr * g
    proved = sp.simplify(step.norm() - lr * g.norm()) == 0
    vec = hnp.arrays(
        np.float64,
        st.integers(1, 6),
        elements=st.floats(-1e3, 1e3, allow_subnormal=False),
    )
    prop = holds(
        st.tuples(vec, st.floats(1e-4, 10.0)),
        sgd_step_scales_with_gradient,
        15,
        settings,
    )
    return Findings(
        derived(proved, not prop.ok),
        None,
        {
            "symbolic": f"||{step.T}|| - lr ||g|| simplifies to 0",
            "examples": prop.examples,
            "counterexample": prop.found,
            "oracle": "torch.optim.SGD",
        },
    )


def overshoot_witness(steps: int = 12) -> tuple[bool, bool, dict]:
    """Exact: SGD on L(w) = w^2 / 2 (gradient w) with a step lr = 10 maps w to -9 w: from w = 1 the loss is
    81^k / 2 after k steps (rationals); in float64 the iterate overflows after ~323 steps and the loss becomes Inf, then
    NaN (inf - inf); the first ``steps`` losses agree with the exact ones to rounding."""
    from fractions import Fraction

    w, lr = Fraction(1), Fraction(10)
    exact_losses = []
    for _ in range(steps):
        w = w - lr * w
        exact_losses.append(w * w / 2)
    grows = all(b > a for a, b in itertools.pairwise(exact_losses))
    v, losses = 1.0, []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(400):
            v = v - 10.0 * v
            losses.append(v * v / 2)
    # each float step rounds once (|w| <= 9^12 is exact; w^2/2 rounds): relative error <= 2u per loss
    agree = all(abs(float(e) - f) <= 2 * UNIT_ROUNDOFF * float(e) for e, f in zip(exact_losses, losses))
    return (
        bool(grows and exact_losses[-1] > 1),
        bool(agree and not np.isfinite(losses[-1])),
        {
            "loss": "L(w) = w^2/2, gradient w, lr = 10, w_0 = 1",
            "exact_losses_first_5": [str(x) for x in exact_losses[:5]],
            "float64_loss_after_400_steps": str(losses[-1]),
        },
    )


@claim(
    "big-step-bad-configuration",
    quotes=[
        Quote(
            "003",
            "We take too large a step and reach a bad parameter configuration (with large loss, e.g. Inf or NaN).",
            "Exploding gradient as a problem",
        )
    ],
    precise="A too-large step can make things worse: for L(w) = w^2/2 and lr = 10 every SGD step multiplies w by -9, so "
    "the loss grows like 81^k (exact rationals) and overflows to Inf in float64 (an existence statement; how often it "
    "happens in training is not checked).",
)
def check_big_step_bad_configuration(settings: AuditSettings) -> Findings:
    exact, numeric, ev = overshoot_witness()
    return Findings(exact_witness(exact, numeric), None, ev)
