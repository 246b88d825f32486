r"""Claims about products of per-step factors: repeated multiplication by W, small factors, "greater
than 1" factors, many steps, far versus near signals, deep chains (seeds 000/001, 002, 003, 004).

The gradient through T steps is the ordered product of one-step Jacobians
:math:`J_t = \operatorname{diag}(\phi'(a_t)) W_{hh}` (``proofs/rnn_bptt.tex``) and
:math:`\|J_T\cdots J_1\|_2 \le \prod_t \|J_t\|_2 \le (\gamma\|W_{hh}\|_2)^T` (``proofs/norm_bound.tex``).
For powers of one matrix, :math:`\|J^n\|^{1/n} \to \rho(J)` (Gelfand): the norm of a single factor
decides nothing about :math:`J^n` (a non-normal J can have norm 4 and vanishing powers). The exact
witnesses are fixed points, where every factor equals the same matrix in closed form.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp
from hypothesis import strategies as st

from .. import strategies as gst
from .._tolerances import NORM_BOUND_PER_FACTOR
from ..oracles import jacobian as fd_jacobian
from ._core import (
    AuditSettings,
    Findings,
    Quote,
    claim,
    counterexample,
    exact_witness,
    holds,
    proof_or_property,
    property_held,
)
from ._numeric import jacobian_products, norms, rnn, spectral_norm
from .rnn import (
    STEPS,
    _bound_property,
    _fixed_point_evidence,
    _linear_regime_cases,
    _norm_bound_thresholds_agree,
    _tanh_non_vanishing,
    jacobian_product_established,
    linear_regime_explodes,
)

__all__ = [
    "NON_NORMAL",
    "ROTATION",
    "product_bound_holds",
    "rotation_witness",
    "sigmoid_chain_witness",
]


# ---------------------------------------------------------------------------------------------
# gradient-multiplies-by-W-each-step


@claim(
    "gradient-multiplies-by-W-each-step",
    quotes=[
        Quote(
            "000",
            "The gradient computation involves recurrent multiplication of $$W$$.",
            "RNN",
        ),
        Quote(
            "001",
            "The gradient computation involves recurrent multiplication of \\(W\\).",
        ),
        Quote(
            "000",
            "in vanilla RNN, we're multiplying by same $$W$$ over and over again",
            "LSTM",
        ),
        Quote(
            "003",
            "RNNs are particularly unstable due to the repeated multiplication by the same weight matrix.",
            "Summary",
        ),
    ],
    precise="dh_T/dh_k = prod_{t=k+1}^{T} diag(phi'(a_t)) W_hh: the same W_hh is a factor once per step, T - k times "
    "(rnn_bptt derives the one-step Jacobian; the model's product equals complex step and BPTT).",
    proofs=("rnn_bptt",),
)
def check_gradient_multiplies_by_W(settings: AuditSettings) -> Findings:
    proved, held, ev = jacobian_product_established(settings)
    return Findings(proof_or_property(proved, held), None, ev)


# ---------------------------------------------------------------------------------------------
# small-factors-vanish


def product_bound_holds(case) -> bool:
    r""":math:`\|J_T \cdots J_1\|_2 \le \prod_t \|J_t\|_2` for arbitrary (different) factors; the product
    is formed in exact rational arithmetic (float64 entries are dyadic) as the oracle for numpy's."""
    from fractions import Fraction

    Js = case
    exact = [[Fraction(1), Fraction(0)], [Fraction(0), Fraction(1)]]
    for J in Js:
        F = [[Fraction(float(v)) for v in row] for row in J]
        exact = [[sum(F[i][k] * exact[k][j] for k in range(2)) for j in range(2)] for i in range(2)]
    P = np.linalg.multi_dot([np.eye(2), *reversed(Js)]) if len(Js) > 1 else Js[0]
    E = np.array([[float(v) for v in row] for row in exact])
    bound = float(np.prod([spectral_norm(J) for J in Js]))
    # numpy's product vs the exact one: ~ T * 2u relative per entry; norms ~ 2u each
    per = NORM_BOUND_PER_FACTOR.value * (len(Js) + 1)
    return bool(
        np.allclose(P, E, rtol=0, atol=per * max(bound, 1e-300)) and spectral_norm(E) <= bound * (1 + per) + 1e-300
    )


@st.composite
def _small_factor_lists(draw):
    T = draw(st.integers(1, 12))
    q = draw(st.floats(0.1, 0.99))
    return [draw(gst.matrices(2, spectral_norm=draw(st.floats(0.05, q)))) for _ in range(T)]


@claim(
    "small-factors-vanish",
    quotes=[
        Quote(
            "001",
            "In the process, gradients are calculated by continuous multiplications of derivatives. The value "
            "of these derivatives may be so small, that these continuous multiplications may cause the gradient to "
            "practically \u201cvanish\u201d.",
        ),
        Quote(
            "003",
            "When intermediate gradients are small, then our overall gradient is gonna get smaller and smaller "
            "(vanishing) because the accumulated gradient is the product of all these intermediate gradients.",
            "Vanishing gradient intuition",
        ),
    ],
    precise="If every factor is small, ||J_t||_2 <= q < 1, the product shrinks geometrically: ||J_T ... J_1||_2 <= "
    "prod_t ||J_t||_2 <= q^T -> 0 (submultiplicativity, the step of norm_bound; checked on arbitrary different "
    "factors with an exact rational product as oracle).",
    proofs=("norm_bound",),
)
def check_small_factors_vanish(settings: AuditSettings) -> Findings:
    prop = holds(_small_factor_lists(), product_bound_holds, 30, settings)
    return Findings(
        proof_or_property(_norm_bound_thresholds_agree(), not prop.ok),
        None,
        {
            "examples": prop.examples,
            "counterexample": prop.found,
            "oracle": "exact rational product",
        },
    )


# ---------------------------------------------------------------------------------------------
# gradient-above-one-explodes, gradient-below-one-vanishes: powers of one factor

# Model's product of T = 200..400 identical 2x2 factors vs numpy's matrix_power (repeated squaring): each
# accumulates <= T * 2u relative rounding per entry (400 * 2 * 1.1e-16 ~ 9e-14), bounded by 1e-12 of the scale.
POWER_AGREEMENT = 1e-12
# Complex step through 20 sigmoid layers: exact to round-off, ~20 * 4u ~ 1e-14 relative; 1e-13 bounds it.
CHAIN_AGREEMENT = 1e-13

#: A non-normal factor: ||J||_2 > 4 but rho(J) = 1/2, so J^n -> 0.
NON_NORMAL = sp.ImmutableMatrix([[sp.Rational(1, 2), 4], [0, sp.Rational(1, 2)]])


@functools.cache
def power_limits(J: sp.Matrix) -> dict:
    """SymPy: J^n for symbolic n (closed form), its entrywise limit as n -> oo, J's largest singular value."""
    n = sp.Symbol("n", integer=True, positive=True)
    Jn = sp.simplify(J**n)
    limit = Jn.applyfunc(lambda e: sp.limit(e, n, sp.oo))
    norm = sp.sqrt(max((J.T * J).eigenvals(), key=lambda v: float(v)))
    return {
        "J^n": Jn,
        "limit": limit,
        "spectral_norm": sp.nsimplify(norm),
        "spectral_radius": max(abs(v) for v in J.eigenvals()),
    }


def _power_spot_check(J: sp.Matrix, steps: int = 200) -> tuple[float, float]:
    """The model at its zero fixed point (tanh RNN, x = 0: every one-step Jacobian is W_hh = J) gives
    ||dh_T/dh_0|| = ||J^T||; returned with numpy's matrix_power as the oracle."""
    W = np.array(J.tolist(), dtype=float)
    P = jacobian_products(rnn(W), np.zeros((steps, 2)), np.zeros((1, 2)))
    return float(np.linalg.norm(P[-1], 2)), float(np.linalg.norm(np.linalg.matrix_power(W, steps), 2))


@claim(
    "gradient-above-one-explodes",
    quotes=[
        Quote(
            "002",
            "If the gradient is greater than 1.0, a large number of time steps will cause the gradient to "
            '"explode", or become too large.',
            "Vanishing/Exploding Gradient Problem",
        )
    ],
    precise="If the per-step factor J is 'greater than 1' (||J||_2 > 1), multiplying by it many times makes the "
    "gradient explode: ||J^n|| -> infinity.",
    refinement="It is the spectral radius that decides for repeated multiplication: rho(J) > 1 gives ||J^n||_2 >= "
    "rho(J)^n -> infinity (checked for a tanh RNN at its zero fixed point, where every factor is W_hh); ||J||_2 > 1 "
    "alone does not (J = [[1/2, 4], [0, 1/2]] has ||J||_2 > 4 and J^n -> 0).",
    proofs=("linear_rnn",),
)
def check_gradient_above_one_explodes(settings: AuditSettings) -> Findings:
    lim = power_limits(NON_NORMAL)
    exact = bool(lim["spectral_norm"] > 1 and lim["limit"] == sp.zeros(2, 2))
    model_norm, oracle_norm = _power_spot_check(NON_NORMAL)
    spot = model_norm < 1e-40 and abs(model_norm - oracle_norm) <= POWER_AGREEMENT * oracle_norm
    prop = holds(_linear_regime_cases(), linear_regime_explodes, 20, settings)
    return Findings(
        counterexample(exact, spot),
        property_held(not prop.ok),
        {
            "J": str(NON_NORMAL.tolist()),
            "J^n": str(lim["J^n"].tolist()),
            "spectral_norm_J": str(lim["spectral_norm"]),
            "limit_n_to_infinity": str(lim["limit"].tolist()),
            "norm_J^200_model": model_norm,
            "refinement_examples": prop.examples,
        },
    )


@st.composite
def _contracting_powers(draw):
    return draw(st.sampled_from([0.3, 0.6, 0.9]).flatmap(lambda r: gst.matrices(2, spectral_radius=r)))


def powers_vanish(W: np.ndarray, steps: int = 400) -> bool:
    r"""rho(W) <= 0.9: the tanh RNN at its zero fixed point has ||dh_T/dh_0|| = ||W^T|| <= 1e-6 at T = 400
    (transient growth of non-normal W is at most ~ T ||W||^... , far below 0.9^-400), and it equals numpy's
    matrix_power (the oracle) to round-off."""
    P = jacobian_products(rnn(W), np.zeros((steps, 2)), np.zeros((1, 2)))
    ref = np.linalg.matrix_power(W, steps)
    return bool(np.linalg.norm(P[-1], 2) <= 1e-6 and np.allclose(P[-1], ref, rtol=0, atol=POWER_AGREEMENT))


@claim(
    "gradient-below-one-vanishes",
    quotes=[
        Quote(
            "002",
            "Likewise, when the gradient is less than 1.0, multiplying it too many times by itself will "
            'cause the gradient to "vanish", or become close to zero.',
            "Vanishing/Exploding Gradient Problem",
        )
    ],
    precise="A factor J 'less than 1' multiplied by itself vanishes: if ||J||_2 < 1 then ||J^n||_2 <= ||J||_2^n -> 0, "
    "and more generally rho(J) < 1 gives J^n -> 0 (SymPy: closed-form J^n and its limit for a Jordan block; the "
    "model at its zero fixed point against numpy's matrix_power).",
    proofs=("linear_rnn",),
)
def check_gradient_below_one_vanishes(settings: AuditSettings) -> Findings:
    a, b = sp.Rational(9, 10), sp.Integer(3)
    lim = power_limits(sp.ImmutableMatrix([[a, b], [0, a]]))
    prop = holds(_contracting_powers(), powers_vanish, 20, settings)
    return Findings(
        proof_or_property(lim["limit"] == sp.zeros(2, 2), not prop.ok),
        None,
        {
            "J": "[[9/10, 3], [0, 9/10]]",
            "J^n": str(lim["J^n"].tolist()),
            "limit": str(lim["limit"].tolist()),
            "examples": prop.examples,
            "counterexample": prop.found,
        },
    )


# ---------------------------------------------------------------------------------------------
# many-steps-explode-or-vanish, simple-rnn-causes-vanishing: the rotation witness

ROTATION = sp.ImmutableMatrix([[0, -1], [1, 0]])


@functools.cache
def rotation_witness(steps: int = STEPS) -> tuple[bool, bool, dict]:
    r"""Exact: a tanh RNN with W_hh = R (rotation by 90 degrees), x = 0, h_0 = 0 stays at its fixed point
    and dh_T/dh_0 = R^T, an orthogonal integer matrix: ||dh_T/dh_0||_2 = 1 for every T (SymPy: R^4 = I,
    so R^T cycles through four orthogonal matrices). The model's products agree exactly."""
    exact = ROTATION**4 == sp.eye(2) and all((ROTATION**k).T * ROTATION**k == sp.eye(2) for k in range(4))
    W = np.array(ROTATION.tolist(), dtype=float)
    P = jacobian_products(rnn(W), np.zeros((steps, 2)), np.zeros((1, 2)))
    n = norms(P)
    return (
        bool(exact),
        bool(np.all(n == 1.0)),
        {
            "W_hh": W,
            "x": "zeros",
            "h0": [0.0, 0.0],
            "steps": steps,
            "norm_dh_t_dh_0_every_10_steps": n[::10],
        },
    )


@claim(
    "many-steps-explode-or-vanish",
    quotes=[
        Quote(
            "002",
            "The problem comes when there are too many time steps, and BPTT has to propagate error back too "
            "many times, which will result in the gradients exploding, or vanishing.",
            "Vanishing/Exploding Gradient Problem",
        ),
        Quote(
            "002",
            "The problem comes when there are too many times steps, and performing BPTT causes the gradients "
            "to explode or vanish.",
            "Summary",
        ),
    ],
    precise="For every RNN, ||dh_T/dh_0|| -> 0 or -> infinity as the number of steps T grows.",
    refinement="Many steps make the gradient vanish or explode unless the per-step factors balance: "
    "||dh_T/dh_0||_2 <= (gamma ||W_hh||_2)^T vanishes geometrically when gamma ||W_hh||_2 < 1, and at a fixed point "
    "dh_T/dh_0 = (J*)^T explodes when rho(J*) > 1; orthogonal factors (exact witness: W_hh a rotation at h = 0) keep "
    "the norm at exactly 1 for every T.",
    proofs=("norm_bound", "linear_rnn"),
)
def check_many_steps_explode_or_vanish(settings: AuditSettings) -> Findings:
    exact, numeric, ev = rotation_witness()
    vanish = _bound_property("tanh", (0.3, 0.99), settings, 20)
    explode = holds(_linear_regime_cases(), linear_regime_explodes, 20, settings)
    held = not vanish.ok and not explode.ok
    return Findings(
        counterexample(exact, numeric),
        proof_or_property(_norm_bound_thresholds_agree(), held),
        {"witness": ev, "refinement_examples": vanish.examples + explode.examples},
    )


@claim(
    "simple-rnn-causes-vanishing",
    quotes=[
        Quote(
            "004",
            "there is a drawback to using an RNN because it causes a vanishing gradient problem in simple RNN.",
            "Introduction",
        ),
        Quote(
            "004",
            "Now let us see the proof that RNN causes a vanishing gradient problem.",
            "Vanishing Gradient Problem",
        ),
    ],
    precise="Every simple RNN's gradient dh_T/dh_0 vanishes as T grows.",
    refinement="A simple RNN's gradient vanishes when the recurrence contracts, gamma ||W_hh||_2 < 1 (||W_hh||_2 < 4 for "
    "the seed's sigmoid): ||dh_T/dh_0||_2 <= (gamma ||W_hh||_2)^T; not in general (exact "
    "witness: a rotation W_hh at h = 0 keeps the norm at 1 for every T).",
    proofs=("norm_bound", "seed004_sigmoid"),
)
def check_simple_rnn_causes_vanishing(settings: AuditSettings) -> Findings:
    exact, numeric, ev = rotation_witness()
    results = [_bound_property(nl, (0.3, 0.99), settings, 20) for nl in ("tanh", "sigmoid")]
    held = all(not r.ok for r in results)
    return Findings(
        counterexample(exact, numeric),
        proof_or_property(_norm_bound_thresholds_agree(), held),
        {"witness": ev, "refinement_examples": sum(r.examples for r in results)},
    )


# ---------------------------------------------------------------------------------------------
# faraway-signal-smaller


@claim(
    "faraway-signal-smaller",
    quotes=[
        Quote(
            "003",
            "Gradient signal from faraway is lost because it\u00e2\u20ac\u2122s much smaller than gradient signal "
            "from close-by",
            "Vanishing gradient as a problem",
        )
    ],
    precise="For every RNN, the gradient signal from k steps back, ||dh_T/dh_{T-k}||, is smaller than the signal from "
    "close-by (smaller k).",
    refinement="When the recurrence contracts, gamma ||W_hh||_2 = q < 1, the signal from k steps back is at most q^k: "
    "||dh_T/dh_{T-k}||_2 <= q^k, geometrically smaller than close-by; with an expanding fixed point (rho(J*) > 1) the "
    "faraway signal is the larger one.",
    proofs=("norm_bound",),
)
def check_faraway_signal_smaller(settings: AuditSettings) -> Findings:
    found = _tanh_non_vanishing(settings)
    reverified, ev = (
        False,
        {"searched_examples": found.examples, "found_by": found.source},
    )
    if found.ok:
        agree, more = _fixed_point_evidence(found.found, "tanh")
        n = more.pop("_norms")  # at a fixed point ||dh_T/dh_{T-k}|| = ||J*^k|| = n[k]
        reverified = bool(agree and n[STEPS] > 100 * n[1])
        ev["counterexample"] = {
            **more,
            "signal_1_step_back": n[1],
            f"signal_{STEPS}_steps_back": n[STEPS],
        }
    prop = _bound_property("tanh", (0.3, 0.99), settings, 20)
    return Findings(
        counterexample(found.ok, reverified),
        proof_or_property(_norm_bound_thresholds_agree(), not prop.ok),
        ev,
    )


# ---------------------------------------------------------------------------------------------
# deep-chain-vanishes

LAYERS = 20


def sigmoid_chain_witness(layers: int = LAYERS) -> tuple[bool, bool, dict]:
    r"""Exact: ``layers`` feed-forward sigmoid layers y_l = sigma(y_{l-1} - 1/2) (W = I, b = -1/2) started
    at y_0 = 1/2 stay at 1/2 (sigma(0) = 1/2) and each has Jacobian sigma'(0) I = I/4 (SymPy), so
    dy_L/dy_0 = 4^-L I exactly; complex step through the composed numpy function agrees."""
    a = sp.Symbol("a", real=True)
    sig = 1 / (1 + sp.exp(-a))
    exact_value = sp.diff(sig, a).subs(a, 0) ** layers
    exact = sig.subs(a, 0) == sp.Rational(1, 2) and exact_value == sp.Rational(1, 4**layers)

    def f(y):
        for _ in range(layers):
            y = 1 / (1 + np.exp(-(y - 0.5)))
        return y

    J = fd_jacobian(f, np.full(2, 0.5), method="complex")
    numeric = np.allclose(J, np.eye(2) * 4.0**-layers, rtol=CHAIN_AGREEMENT, atol=0)
    return (
        bool(exact),
        bool(numeric),
        {
            "layers": layers,
            "dy_L_dy_0_exact": f"4^-{layers} I = {sp.N(exact_value, 6)} I",
            "complex_step": J,
        },
    )


@claim(
    "deep-chain-vanishes",
    quotes=[
        Quote(
            "003",
            "Due to chain rule / choice of nonlinearity function, gradient can become vanishingly small as it "
            "backpropagate",
            "vanishing/exploding gradient in neural architectures",
        )
    ],
    precise="There are deep chains whose gradient is vanishingly small: 20 sigmoid layers y_l = sigma(y_{l-1} - 1/2) at "
    "y = 1/2 have dy_20/dy_0 = 4^-20 I ~ 9.1e-13 I exactly (sigma'(0) = 1/4 is the largest slope: the choice of "
    "nonlinearity). (That lower layers are therefore learnt slowly is about training and is not checked.)",
    proofs=("activation_bounds",),
)
def check_deep_chain_vanishes(settings: AuditSettings) -> Findings:
    exact, numeric, ev = sigmoid_chain_witness()
    return Findings(exact_witness(exact, numeric), None, ev)


# ---------------------------------------------------------------------------------------------
# gradient-problems-occur


@functools.cache
def both_problems_witness(steps: int = STEPS) -> tuple[bool, bool, dict]:
    r"""Exact: a tanh RNN at its fixed point 0 (x = 0) has dh_T/dh_0 = W_hh^T (tanh'(0) = 1): W_hh = 2I
    gives 2^T I (explodes), W_hh = I/2 gives 2^-T I (vanishes); powers of two are exact in float64,
    so the model's products must equal them exactly."""
    a = sp.Symbol("a", real=True)
    slope = sp.diff(sp.tanh(a), a).subs(a, 0)
    exact = bool(slope == 1 and (2 * slope) ** steps == 2**steps)
    out, numeric = {}, True
    for name, w in (("exploding", 2.0), ("vanishing", 0.5)):
        P = jacobian_products(rnn(w * np.eye(2)), np.zeros((steps, 2)), np.zeros((1, 2)))
        numeric &= bool(np.array_equal(P[-1], np.eye(2) * w**steps))
        out[name] = {"W_hh": w * np.eye(2), f"dh_{steps}/dh_0": P[-1]}
    return exact, numeric, out


@claim(
    "gradient-problems-occur",
    quotes=[
        Quote("000", "But, the gradient flow in RNNs often lead to the following problems:", "RNN"),
        Quote("001", "But, the gradient flow in RNNs often lead to the following problems:"),
    ],
    precise="Both problems occur in RNNs: there are tanh RNNs with exploding and with vanishing gradients (exact "
    "witnesses at the fixed point 0: W_hh = 2I gives dh_60/dh_0 = 2^60 I, W_hh = I/2 gives 2^-60 I). ('Often' is a "
    "statement about practice and is not checked.)",
    proofs=("linear_rnn",),
)
def check_gradient_problems_occur(settings: AuditSettings) -> Findings:
    exact, numeric, ev = both_problems_witness()
    return Findings(exact_witness(exact, numeric), None, ev)
