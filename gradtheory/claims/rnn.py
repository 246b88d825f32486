r"""Claims about the Elman RNN: the Jacobian product, eigenvalues vs singular values, gamma.

Throughout, :math:`h_t = \phi(W_{ih} x_t + b + W_{hh} h_{t-1})` (torch's layout) and
:math:`J_t = \partial h_t/\partial h_{t-1} = \operatorname{diag}(\phi'(a_t)) W_{hh}`, so
:math:`\partial h_T/\partial h_k = J_T \cdots J_{k+1}` (``proofs/rnn_bptt.tex``) and
:math:`\|\partial h_T/\partial h_k\| \le (\gamma\|W_{hh}\|_2)^{T-k}` (``proofs/norm_bound.tex``).

The counterexamples about eigenvalues use *fixed points*: for a target pre-activation
:math:`a^*`, the constant input :math:`x = a^* - W_{hh}\phi(a^*)` (with :math:`W_{ih} = I`)
keeps :math:`h_t = h^* = \phi(a^*)` for every t when :math:`h_0 = h^*`, so every one-step
Jacobian equals :math:`J^* = \operatorname{diag}(\phi'(a^*)) W_{hh}` and
:math:`\|\partial h_T/\partial h_0\| = \|J^{*T}\|`, which grows at least like
:math:`\rho(J^*)^T` and at most like :math:`\|J^*\|_2^T`. Hypothesis searches over
:math:`W_{hh}` (with a prescribed spectral radius) and :math:`a^*`.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
import sympy as sp
from hypothesis import strategies as st

from .. import ACTIVATIONS
from .. import strategies as gst
from .._tolerances import BPTT_VS_COMPLEX_STEP, JACOBIAN_PRODUCT, NORM_BOUND_PER_FACTOR, UNIT_ROUNDOFF
from ._core import (
    AuditSettings,
    Findings,
    Quote,
    claim,
    counterexample,
    derived,
    exact_witness,
    holds,
    proof_or_property,
    property_held,
    search,
)
from ._numeric import (
    complex_step_state_jacobian,
    derivation,
    jacobian_products,
    norms,
    rnn,
    spectral_norm,
    spectral_radius,
    symbolic_gamma,
    vanishes,
)

# UNSTABLE_TRAJECTORY_DRIFT (dimensionless factor): Factor c in tol = jacobian_product * T + c u
# max_t ||dh_t/dh_0|| (relative): products of T one-step Jacobians vs the complex-step derivative of
# h_T w.r.t. h_0. Both are exact to round-off *along their own trajectory*; but the complex forward
# pass rounds the real part differently (complex tanh/products), and along an unstable trajectory a
# state perturbation of u grows like ||dh_t/dh_0||, so the two trajectories (hence their Jacobians)
# differ by ~ u * max_t ||dh_t/dh_0|| relative; plus the product's own ~ T * 1e-12.
UNSTABLE_TRAJECTORY_DRIFT = 16.0
# ZERO_FIXED_POINT_POWER (relative tolerance): At the zero fixed point of a tanh RNN (tanh'(0) = 1
# exactly) the product of T one-step Jacobians is W^T accumulated one factor at a time, vs numpy's
# matrix_power (repeated squaring): the same exact value in a different order; each product adds ~ n
# u relative times the condition of the partial products, <= 1e-12 as jacobian_product.
ZERO_FIXED_POINT_POWER = 1e-12
# FIXED_POINT_MARGIN_SLACK (relative tolerance): Relative slack when a computed ||dh_T/dh_0||_2 is
# compared with a predicted value (rho(W)^T from below, GROWTH^-T from above): round-off ~ T n u (T
# <= 60) ~ 1e-13 plus the eigenvalue conditioning of rho(W) for non-normal W; 1e-9 covers both and
# is far below the demonstrated margins (GROWTH^T ~ 5.6e4).
FIXED_POINT_MARGIN_SLACK = 1e-9
# SIGMOID_PRIME_MAX_ABS (absolute tolerance): Absolute: the numeric max of sigma'(a) = h (1 - h) on
# a grid through a = 0 vs 1/4: at a = 0, h = 1/2 and the product are exact; ~ u of slack for the
# grid evaluation.
SIGMOID_PRIME_MAX_ABS = 1e-15
# SIGMOID_ARGMAX_GRID_ABS (absolute tolerance): Absolute: the grid argmax of sigma' lies within one
# grid spacing (40 / 400000 = 1e-4) of the true argmax a = 0.
SIGMOID_ARGMAX_GRID_ABS = 1e-4

__all__ = ["bound_holds", "fixed_point_input", "fixed_point_run", "scalar_power_holds"]

STEPS = 60  # horizon of every demonstration: long enough that rho^T separates growth from decay

# ---------------------------------------------------------------------------------------------
# Shared pieces (also used by tests/claims/test_rnn.py)


def fixed_point_input(
    W_hh: np.ndarray, a_star: np.ndarray, nonlinearity: str = "tanh"
) -> tuple[np.ndarray, np.ndarray]:
    r"""(x, h*) with :math:`x = a^* - W_{hh}\phi(a^*)`, :math:`h^* = \phi(a^*)`: with W_ih = I and
    h_0 = h*, the RNN stays at h* and every one-step Jacobian is diag(phi'(a*)) W_hh."""
    phi = ACTIVATIONS[nonlinearity].phi
    h_star = phi(np.asarray(a_star, dtype=float))
    return np.asarray(a_star, dtype=float) - W_hh @ h_star, h_star


def fixed_point_jacobian(W_hh: np.ndarray, a_star: np.ndarray, nonlinearity: str = "tanh") -> np.ndarray:
    act = ACTIVATIONS[nonlinearity]
    a = np.asarray(a_star, dtype=float)
    return act.grad(a, act.phi(a))[:, None] * W_hh


def fixed_point_run(W_hh: np.ndarray, a_star: np.ndarray, nonlinearity: str = "tanh", steps: int = STEPS) -> dict:
    r"""Run the RNN from its fixed point for ``steps`` steps with the constant input.

    Returns the input, h0, the norms :math:`\|\partial h_t/\partial h_0\|_2` for t = 0..T from the
    model's Jacobians, and the complex-step oracle's :math:`\partial h_T/\partial h_0`.
    """
    W_hh = np.asarray(W_hh, dtype=float)
    x, h0 = fixed_point_input(W_hh, a_star, nonlinearity)
    model = rnn(W_hh, nonlinearity=nonlinearity)
    xs = np.tile(x, (steps, 1))
    P = jacobian_products(model, xs, h0[None, :])
    oracle = complex_step_state_jacobian(model, xs, h0)
    return {"x": x, "h0": h0, "P": P, "norms": norms(P), "oracle": oracle}


def _oracle_agrees(run: dict) -> bool:
    # Products of T one-step Jacobians vs the complex-step derivative of h_T w.r.t. h_0. Both are
    # exact to round-off *along their own trajectory*; but the complex forward pass rounds the real
    # part differently (complex tanh/products), and along an unstable trajectory a state
    # perturbation of u grows like ||dh_t/dh_0||, so the two trajectories (hence their Jacobians)
    # differ by ~ u * max_t ||dh_t/dh_0|| relative; plus the product's own ~ T * 1e-12.
    growth = float(np.max(run["norms"]))
    tol = JACOBIAN_PRODUCT.value * STEPS + UNSTABLE_TRAJECTORY_DRIFT * UNIT_ROUNDOFF * growth
    P_T = run["P"][-1]
    scale = max(np.linalg.norm(P_T, 2), np.linalg.norm(run["oracle"], 2), 1e-300)
    return bool(np.linalg.norm(P_T - run["oracle"], 2) <= tol * scale)


def bound_holds(model, x, h0, gamma: float) -> bool:
    r"""The norm bound :math:`\|\partial h_t/\partial h_0\|_2 \le (\gamma\|W_{hh}\|_2)^t` for every t,
    with the model's Jacobian product checked against the complex-step oracle at t = T."""
    P = jacobian_products(model, x, h0[None, :])
    W = model.params["weight_hh_l0"]
    q = gamma * spectral_norm(W)
    T = P.shape[0] - 1
    # each spectral norm and product carries ~ n*u relative round-off per factor
    per_factor = NORM_BOUND_PER_FACTOR.value
    ok = all(np.linalg.norm(P[t], 2) <= q**t * (1 + per_factor * (t + 1)) + 1e-300 for t in range(T + 1))
    oracle = complex_step_state_jacobian(model, x, h0)
    scale = max(np.linalg.norm(oracle, 2), q**T, 1e-300)
    agree = np.linalg.norm(P[-1] - oracle, 2) <= JACOBIAN_PRODUCT.value * scale
    return bool(ok and agree)


@st.composite
def _bounded_rnn_cases(draw, nonlinearity: str, fraction=(0.3, 1.0), n_max: int = 3, steps: int = 12):
    """(model, x, h0) with ||W_hh||_2 = fraction / gamma, random W_ih, bias, inputs, h0."""
    gamma = float(ACTIVATIONS[nonlinearity].gamma)
    n = draw(st.integers(1, n_max))
    frac = draw(st.floats(*fraction)) if fraction[0] != fraction[1] else fraction[0]
    W = draw(gst.matrices(n, spectral_norm=frac / gamma))
    W_ih = draw(gst.matrices(n))
    b = draw(gst.vectors(n, bound=1.0))
    x = draw(gst.sequences(steps=steps, input_size=n, scale=2.0))
    h0 = draw(gst.vectors(n, bound=1.0))
    return rnn(W, W_ih, nonlinearity, b=b), x, h0


def _bound_property(nonlinearity: str, fraction, settings: AuditSettings, max_examples: int = 25):
    gamma = float(ACTIVATIONS[nonlinearity].gamma)
    return holds(
        _bounded_rnn_cases(nonlinearity, fraction),
        lambda c: bound_holds(*c, gamma),
        max_examples,
        settings,
    )


# ---------------------------------------------------------------------------------------------
# bptt-jacobian-product


def _bptt_case_holds(case) -> bool:
    model, x, h0 = case
    P = jacobian_products(model, x, h0[None, :])
    oracle = complex_step_state_jacobian(model, x, h0)
    scale = max(np.linalg.norm(oracle, 2), 1e-300)
    # round-off of the product plus the drift between the real and the complex forward trajectories,
    # ~ u * max_t ||dh_t/dh_0|| (see _oracle_agrees); both relative to max(||dh_T/dh_0||, 1)
    tol = JACOBIAN_PRODUCT.value + UNSTABLE_TRAJECTORY_DRIFT * UNIT_ROUNDOFF * float(np.max(norms(P)))
    if np.linalg.norm(P[-1] - oracle, 2) > tol * max(scale, 1.0):
        return False
    # BPTT (hand-written reverse mode) gives the rows: dL/dh_0 for L = <e_i, h_T> equals P_T^T e_i
    res = model.forward(x, h0[None, :])
    n = h0.size
    rows = []
    for i in range(n):
        e = np.zeros((1, n))
        e[0, i] = 1.0
        g = model.backward(res, np.zeros_like(res.output), d_h_n=e)
        rows.append(g.h0[0])
    return bool(
        np.allclose(
            np.array(rows),
            P[-1],
            rtol=0,
            atol=BPTT_VS_COMPLEX_STEP.value * max(scale, 1.0),
        )
    )


@st.composite
def _rnn_cases(draw):
    nl = draw(st.sampled_from(["tanh", "sigmoid"]))
    n = draw(st.integers(1, 3))
    W = draw(gst.matrices(n))
    W_ih = draw(gst.matrices(n))
    b = draw(gst.vectors(n, bound=1.0))
    x = draw(gst.sequences(steps=st.integers(1, 6), input_size=n))
    h0 = draw(gst.vectors(n, bound=1.0))
    return rnn(W, W_ih, nl, b=b), x, h0


@functools.cache
def jacobian_product_established(settings: AuditSettings) -> tuple[bool, bool, dict]:
    """(the rnn_bptt derivation's one-step Jacobian is diag(phi') W_hh, the product property held on
    Hypothesis-drawn RNNs against complex step and BPTT, evidence)."""
    d = derivation("rnn_bptt")
    proved = False
    if d is not None:  # the derived one-step Jacobian is diag(phi'(a_t)) W_hh, entry by entry
        diff = d.result["one_step_jacobian"] - d.result["diag_times_W"]
        proved = vanishes(diff)
    prop = holds(_rnn_cases(), _bptt_case_holds, 30, settings)
    held = not prop.ok
    return (
        proved,
        held,
        {
            "derivation": d.name,
            "examples": prop.examples,
            "oracles": "complex-step dh_T/dh_0 and hand-written BPTT rows vs the product of model.jacobians",
            "counterexample": None if held else _describe_case(prop.found),
        },
    )


@claim(
    "bptt-jacobian-product",
    quotes=[
        Quote(
            "002",
            "At each time step, the gradients are multiplied by each other via matrix multiplication because "
            "of chain rule.",
            "Vanishing/Exploding Gradient Problem",
        ),
        Quote(
            "003",
            "the accumulated gradient is the product of all these intermediate gradients.",
            "Vanishing gradient intuition",
        ),
    ],
    precise="Read literally: the gradient dL/dh_0 is the product of the per-step gradients dL/dh_t (t = 1..T) "
    "multiplied by each other.",
    refinement="For h_t = phi(W_ih x_t + b + W_hh h_{t-1}): dh_T/dh_k = J_T J_{T-1} ... J_{k+1} with the one-step "
    "Jacobians J_t = diag(phi'(a_t)) W_hh, and BPTT computes dL/dh_k = (dh_T/dh_k)^T dL/dh_T by multiplying one "
    "gradient by J_t^T once per step: it is the one-step Jacobians, not the gradients, that are multiplied.",
    proofs=("rnn_bptt",),
)
def check_bptt_jacobian_product(settings: AuditSettings) -> Findings:
    proved, held, ev = jacobian_product_established(settings)
    wrong, wrong_ev = _gradients_multiplied_counterexample()
    return Findings(
        counterexample(wrong, True),
        proof_or_property(proved, held),
        {"gradients_multiplied_by_each_other": wrong_ev, **ev},
    )


def _norm_bound_thresholds_agree() -> bool:
    """proofs/norm_bound.tex derives the thresholds 1/gamma: they must be those of the models' gammas."""
    d = derivation("norm_bound")
    if d is None:
        return False
    th = d.result["thresholds"]
    return all(th[name] == 1 / ACTIVATIONS[name].gamma for name in ("tanh", "sigmoid"))


def _describe_case(case) -> dict:
    model, x, h0 = case
    return {
        "nonlinearity": model.nonlinearity,
        "params": model.params,
        "x": x,
        "h0": h0,
    }


# ---------------------------------------------------------------------------------------------
# scalar-repeated-multiplication


def scalar_power_holds(case) -> bool:
    r"""Precise scalar statement at n steps, against exact rationals: |w^n| = |w|^n, it decreases
    in n iff |w| < 1, increases iff |w| > 1, and stays in [1/e, e] while n |ln|w|| <= 1."""
    w, n = case
    q = Fraction(abs(w))
    p_n, p_next = q**n, q ** (n + 1)
    if 0 < q < 1 and not p_next < p_n:
        return False
    if q > 1 and not p_next > p_n:
        return False
    if q != 0 and n * abs(np.log(float(q))) <= 1.0 and not (Fraction(1) / Fraction(np.e) <= p_n <= Fraction(np.e)):
        return False
    return abs(Fraction(w) ** n) == p_n


def _scalar_limits_derived(d) -> bool:
    r"""From the ``scalar`` derivation's :math:`\partial h_T/\partial h_k = w^m` (m = T - k): SymPy's limits of
    :math:`|w^m|` as m -> oo are 0 for |w| = 1/2, 3/4, oo for |w| = 5/4, 2 (either sign), and |(-1)^m| = 1."""
    expr = d.result["dhT_dhk"]
    w = d.result["symbols"][0]
    (m,) = expr.free_symbols - {w}
    mi = sp.Symbol("m", integer=True, positive=True)
    expr = expr.xreplace({m: mi})

    def lim(v):
        return sp.limit(sp.Abs(expr.xreplace({w: v})), mi, sp.oo)

    small = all(lim(v) == 0 for v in (sp.Rational(1, 2), sp.Rational(-3, 4)))
    large = all(lim(v) == sp.oo for v in (sp.Rational(5, 4), sp.Integer(-2)))
    return bool(small and large and sp.Abs(expr.xreplace({w: -1})) == 1)


@claim(
    "scalar-repeated-multiplication",
    quotes=[
        Quote(
            "000",
            "If you a scalar (number) and you multiply gradients by it over and over again for say 100 "
            "times, if that number > 1, it'll explode the gradient and if < 1, it'll vanish towards 0.",
            "RNN",
        ),
        Quote(
            "001",
            "If you a scalar (number) and you multiply gradients by it over and over again for say 100 "
            "times, if that number > 1, it\u2019ll explode the gradient and if < 1, it\u2019ll vanish towards 0.",
        ),
    ],
    precise="For g_n = w^n g_0 and n = 100: w > 1 makes |g_n| large (explodes) and w < 1 makes it tend to 0.",
    refinement="For g_n = w^n g_0: |g_n| -> 0 iff |w| < 1 and |g_n| -> infinity iff |w| > 1 (as n -> infinity); "
    "it is |w|, not w, that decides (w = -1 < 1 does not vanish), and at a fixed n = 100 nothing explodes "
    "or vanishes unless |ln|w|| is well above 1/100 (|w|^n stays in [1/e, e] while n |ln|w|| <= 1).",
    proofs=("scalar",),
)
def check_scalar_repeated_multiplication(settings: AuditSettings) -> Findings:
    n = 100
    # As written: "> 1 explodes, < 1 vanishes" after 100 multiplications. Search both halves.
    below = search(
        st.floats(-10, 1, exclude_max=True),
        lambda w: abs(w**n) >= 1.0,
        200,
        settings,
        key="scalar-below-one",
    )
    above = search(
        st.floats(1, 10, exclude_min=True),
        lambda w: w**n <= 2.0,
        200,
        settings,
        key="scalar-above-one",
    )
    found = below.ok or above.ok
    reverified = True
    if below.ok:
        reverified &= below.found < 1 and abs(Fraction(below.found) ** n) >= 1
    if above.ok:
        reverified &= above.found > 1 and Fraction(above.found) ** n <= 2
    d = derivation("scalar")
    prop = holds(
        st.tuples(st.floats(-3, 3), st.integers(0, 400)),
        scalar_power_holds,
        200,
        settings,
    )
    return Findings(
        counterexample(found, bool(reverified)),
        proof_or_property(_scalar_limits_derived(d), not prop.ok),
        {
            "n": n,
            "below_one_not_vanishing": None if not below.ok else {"w": below.found, "w**100": below.found**n},
            "above_one_not_exploding": None if not above.ok else {"w": above.found, "w**100": above.found**n},
            "precise_examples": prop.examples,
            "precise_counterexample": prop.found,
            "derivation": None if d is None else d.name,
        },
    )


# ---------------------------------------------------------------------------------------------
# eigenvalue-below-one-vanishes / eigenvalue-above-one-explodes (tanh)

RADIUS_BELOW = 0.9
RADIUS_ABOVE = 1.5
GROWTH = 1.2  # demonstrate growth/decay by a margin: 1.2**60 ~ 5.6e4, (1/1.2)**60 ~ 1.8e-5


@functools.cache
def _below_one_counterexample(settings: AuditSettings):
    # gradtheory.strategies.matrices(2, spectral_radius=r) rarely draws 2x2 matrices non-normal
    # enough (1000 draws: none), so W = V diag(lambda) V^-1 is drawn from its eigenvalues
    # (|lambda| <= 0.9) and an arbitrary eigenvector basis V (non-normal when V is far from
    # orthogonal); about 4% of such draws are counterexamples.
    strategy = st.tuples(_from_eigenvalues(2, RADIUS_BELOW, 3.0), gst.vectors(2, bound=4.0))
    return search(
        strategy,
        lambda c: spectral_radius(c[0]) < 1 and spectral_radius(fixed_point_jacobian(*c)) >= GROWTH,
        500,
        settings,
        key="eigenvalue-below-one",
    )


@st.composite
def _from_eigenvalues(draw, n: int, radius: float, bound: float):
    lam = draw(gst.vectors(n, bound=radius))
    V = draw(gst.matrices(n, structures=("dense",)).map(lambda A: bound * A))
    if abs(np.linalg.det(V)) < 1e-2:
        V = V + np.eye(n)  # keep V comfortably invertible (|det V| >= 1e-2 after the shift, or drawn again)
    from hypothesis import assume

    assume(abs(np.linalg.det(V)) >= 1e-2)
    return V @ np.diag(lam) @ np.linalg.inv(V)


@functools.cache
def _above_one_counterexample(settings: AuditSettings):
    strategy = st.tuples(gst.matrices(2, spectral_radius=RADIUS_ABOVE), gst.vectors(2, bound=4.0))
    return search(
        strategy,
        lambda c: spectral_norm(fixed_point_jacobian(*c)) <= 1 / GROWTH,
        300,
        settings,
        key="eigenvalue-above-one",
    )


def _fixed_point_evidence(found, nonlinearity="tanh") -> tuple[bool, dict]:
    W, a_star = found
    run = fixed_point_run(W, a_star, nonlinearity)
    J = fixed_point_jacobian(W, a_star, nonlinearity)
    ev = {
        "nonlinearity": nonlinearity,
        "W_hh": W,
        "W_ih": np.eye(W.shape[0]),
        "bias": None,
        "x_t (every t)": run["x"],
        "h0": run["h0"],
        "steps": STEPS,
        "spectral_radius_W_hh": spectral_radius(W),
        "spectral_norm_W_hh": spectral_norm(W),
        "phi_prime_at_fixed_point": ACTIVATIONS[nonlinearity].grad(a_star, ACTIVATIONS[nonlinearity].phi(a_star)),
        "spectral_radius_J": spectral_radius(J),
        "spectral_norm_J": spectral_norm(J),
        "norm_dhT_dh0_every_10_steps": run["norms"][::10],
        "norm_dhT_dh0_oracle": float(np.linalg.norm(run["oracle"], 2)),
    }
    return _oracle_agrees(run), ev | {"_norms": run["norms"]}


def _pop_private(ev: dict) -> dict:
    return {k: v for k, v in ev.items() if not k.startswith("_")}


@st.composite
def _linear_regime_cases(draw):
    W = draw(st.sampled_from([1.1, 1.5, 2.0]).flatmap(lambda r: gst.matrices(3, spectral_radius=r)))
    return W


def linear_regime_explodes(W: np.ndarray, steps: int = 30) -> bool:
    r"""At the zero fixed point (x = 0, b = 0, h_0 = 0) of a tanh RNN the one-step Jacobian is W
    itself: :math:`\partial h_T/\partial h_0 = W^T` (oracle: ``matrix_power``) and
    :math:`\|W^T\|_2 \ge \rho(W)^T`."""
    model = rnn(W)
    n = W.shape[0]
    P = jacobian_products(model, np.zeros((steps, n)), np.zeros((1, n)))
    WT = np.linalg.matrix_power(W, steps)
    same = np.linalg.norm(P[-1] - WT, 2) <= ZERO_FIXED_POINT_POWER * np.linalg.norm(WT, 2)
    slack = FIXED_POINT_MARGIN_SLACK
    return bool(same and np.linalg.norm(P[-1], 2) >= spectral_radius(W) ** steps * (1 - slack))


@claim(
    "eigenvalue-below-one-vanishes",
    quotes=[
        Quote(
            "003",
            "if the largest eigenvalue of \\(W_h \\lt 1\\) then vanishing gradients",
            "Vanishing gradient intuition",
        )
    ],
    precise="For a tanh RNN (a saturating nonlinearity), spectral radius rho(W_hh) < 1 implies ||dh_T/dh_k||_2 -> 0.",
    refinement="The largest singular value, not the largest eigenvalue, is sufficient: ||W_hh||_2 < 1 gives "
    "||dh_T/dh_k||_2 <= ||W_hh||_2^(T-k) -> 0 for every input (rho(W_hh) < 1 is not: the Jacobians "
    "diag(phi'(a_t)) W_hh can have spectral radius > 1, saturation changes the matrix, not only its scale).",
    proofs=("norm_bound",),
)
def check_eigenvalue_below_one_vanishes(settings: AuditSettings) -> Findings:
    found = _below_one_counterexample(settings)
    ev: dict = {"searched_examples": found.examples, "found_by": found.source}
    reverified = False
    if found.ok:
        agree, more = _fixed_point_evidence(found.found)
        n = more["_norms"]
        # re-verify: radius of W below one, and the gradient norm grew by the predicted margin
        reverified = (
            agree and spectral_radius(found.found[0]) < 1 and n[-1] >= GROWTH**STEPS * 1e-3 and n[-1] > n[STEPS // 2]
        )
        ev["counterexample"] = _pop_private(more)
    prec = _bound_property("tanh", (0.3, 0.99), settings)
    ev["precise_examples"] = prec.examples
    ev["precise_counterexample"] = None if not prec.ok else _describe_case(prec.found)
    return Findings(
        counterexample(found.ok, reverified),
        proof_or_property(_norm_bound_thresholds_agree(), not prec.ok),
        ev,
    )


@claim(
    "eigenvalue-above-one-explodes",
    quotes=[
        Quote(
            "003",
            "if the largest eigenvalue of \\(W_h \\gt 1\\) then exploding gradients",
            "Vanishing gradient intuition",
        )
    ],
    precise="For a tanh RNN, rho(W_hh) > 1 implies ||dh_T/dh_k||_2 -> infinity.",
    refinement="In the linear regime it does: at the fixed point h = 0 (zero input and bias) dh_T/dh_0 = W_hh^T and "
    "||W_hh^T||_2 >= rho(W_hh)^T -> infinity. Along saturating trajectories phi' is small and the gradient can "
    "vanish although rho(W_hh) > 1.",
    proofs=("linear_rnn",),
)
def check_eigenvalue_above_one_explodes(settings: AuditSettings) -> Findings:
    found = _above_one_counterexample(settings)
    ev: dict = {"searched_examples": found.examples, "found_by": found.source}
    reverified = False
    if found.ok:
        agree, more = _fixed_point_evidence(found.found)
        n = more["_norms"]
        slack = FIXED_POINT_MARGIN_SLACK
        reverified = agree and spectral_radius(found.found[0]) > 1 and n[-1] <= GROWTH**-STEPS * (1 + slack)
        ev["counterexample"] = _pop_private(more)
    prec = holds(_linear_regime_cases(), linear_regime_explodes, 20, settings)
    ev["precise_examples"] = prec.examples
    ev["precise_counterexample"] = prec.found
    return Findings(counterexample(found.ok, reverified), property_held(not prec.ok), ev)


# ---------------------------------------------------------------------------------------------
# gamma: sigmoid-bound-is-one, tanh-derivative-below-one


def _sup_derivative_numeric(name: str) -> tuple[float, float]:
    """Independent numeric sup of phi' on a fine grid (argmax, max)."""
    act = ACTIVATIONS[name]
    a = np.linspace(-20, 20, 400001)
    d = act.grad(a, act.phi(a))
    k = int(np.argmax(d))
    return float(a[k]), float(d[k])


@functools.cache
def _sigmoid_vanishing_witness(settings: AuditSettings):
    # A sigmoid RNN whose largest eigenvalue exceeds 1 (the seed's threshold) but whose
    # gradient vanishes for *every* input: ||W||_2 < 4 = 1/gamma_sigmoid.
    strategy = st.sampled_from([1.5, 2.0, 3.0]).flatmap(lambda r: gst.matrices(2, spectral_radius=r))
    return search(
        strategy,
        lambda W: spectral_norm(W) <= 3.5,
        100,
        settings,
        key="sigmoid-radius-above-one",
    )


@claim(
    "sigmoid-bound-is-one",
    quotes=[
        Quote(
            "003",
            "the bound is 1 because we have sigmoid nonlinearity",
            "Vanishing gradient intuition",
        )
    ],
    precise="For a sigmoid RNN the threshold on the largest eigenvalue of W_h separating vanishing from not is 1 "
    "(sup sigma' = 1).",
    refinement="sup_a sigma'(a) = 1/4 (at a = 0), so for a sigmoid RNN ||dh_T/dh_k||_2 <= (||W_hh||_2 / 4)^(T-k): "
    "the bound is 4 on the largest singular value; 1 is tanh's threshold (gamma_tanh = 1).",
    proofs=("activation_bounds", "norm_bound"),
)
def check_sigmoid_bound_is_one(settings: AuditSettings) -> Findings:
    g_sym = symbolic_gamma("sigmoid")
    a_max, d_max = _sup_derivative_numeric("sigmoid")
    numeric_quarter = abs(d_max - 0.25) <= SIGMOID_PRIME_MAX_ABS and abs(a_max) <= SIGMOID_ARGMAX_GRID_ABS
    found = _sigmoid_vanishing_witness(settings)
    ev: dict = {
        "gamma_sigmoid_symbolic": None if g_sym is None else str(g_sym),
        "sup_sigmoid_prime_numeric": d_max,
        "argmax": a_max,
        "gamma_sigmoid_models": str(ACTIVATIONS["sigmoid"].gamma),
    }
    reverified = False
    if found.ok:
        W = found.found
        model = rnn(W, nonlinearity="sigmoid")
        rng_x = np.linspace(-3, 3, STEPS * 2).reshape(STEPS, 2)
        P = jacobian_products(model, rng_x, np.zeros((1, 2)))
        nn = norms(P)
        q = spectral_norm(W) / 4
        per_factor = NORM_BOUND_PER_FACTOR.value
        reverified = spectral_radius(W) > 1 and all(
            nn[t] <= q**t * (1 + per_factor * (t + 1)) for t in range(STEPS + 1)
        )
        ev["counterexample"] = {
            "nonlinearity": "sigmoid",
            "W_hh": W,
            "spectral_radius_W_hh": spectral_radius(W),
            "spectral_norm_W_hh": spectral_norm(W),
            "x": rng_x,
            "h0": [0.0, 0.0],
            "norm_dhT_dh0_every_10_steps": nn[::10],
            "bound (||W||/4)^T": q**STEPS,
        }
    sym_ok = g_sym is not None and g_sym == Fraction(1, 4)
    prec = _bound_property("sigmoid", (0.3, 0.99), settings, 20)
    ev["precise_examples"] = prec.examples
    ev["gamma_source"] = "gradtheory.symbolic.gamma" if g_sym is not None else "numeric grid only (symbolic missing)"
    # As written: the bound is 1. It is not: sup sigma' = 1/4 (computed), and a sigmoid RNN with
    # largest eigenvalue > 1 still has vanishing gradients for every input.
    counter = numeric_quarter and found.ok
    return Findings(
        counterexample(counter, reverified),
        derived(sym_ok and _norm_bound_thresholds_agree(), not prec.ok),
        ev,
    )


def tanh_derivative_exact(a: float):
    """1 - tanh(a)^2 at 60 digits (mpmath), the independent oracle for float64 tanh'."""
    import mpmath

    with mpmath.workdps(60):
        t = mpmath.tanh(mpmath.mpf(a))
        return 1 - t * t


def tanh_derivative_precise(a: float) -> bool:
    r"""0 < tanh'(a) <= 1, equality iff a = 0. Since tanh'(a) = 1 - tanh(a)^2 this is
    0 < |tanh a| < 1 for a != 0, decided at 60 digits (|a| <= 30 keeps 1 - |tanh a| >= 1e-26 visible)."""
    import mpmath

    if a == 0:
        return tanh_derivative_exact(a) == 1
    with mpmath.workdps(60):
        t = abs(mpmath.tanh(mpmath.mpf(a)))
        return bool(0 < t < 1)


@claim(
    "tanh-derivative-below-one",
    quotes=[
        Quote(
            "004",
            "the derivative of the tanh activation function is lower than 1",
            "Backpropagation Through Time in RNNs",
        )
    ],
    precise="tanh'(a) < 1 for every real a.",
    refinement="0 < tanh'(a) = 1 - tanh(a)^2 <= 1 with equality only at a = 0 (gamma_tanh = 1, not < 1: near h = 0 "
    "the per-step factor is ~1 and tanh' alone does not make the product vanish); in float64 tanh'(a) rounds to "
    "exactly 1 for |a| below ~1e-8.",
    proofs=("activation_bounds",),
)
def check_tanh_derivative_below_one(settings: AuditSettings) -> Findings:
    act = ACTIVATIONS["tanh"]
    found = search(
        st.floats(-10, 10),
        lambda a: act.grad(np.array(a), np.tanh(np.array(a))) >= 1.0,
        200,
        settings,
        key="tanh-prime-one",
    )
    import mpmath

    reverified = found.ok and tanh_derivative_exact(found.found) == 1
    # Precise: 0 < tanh'(a) <= 1 with equality only at 0 (exact arithmetic), gamma_tanh = 1.
    prec = holds(st.floats(-30, 30), tanh_derivative_precise, 200, settings)
    g_sym = symbolic_gamma("tanh")
    # float64 rounds tanh'(a) to exactly 1 for tiny a: the largest such a (bisection on float64)
    lo, hi = 0.0, 1e-4
    for _ in range(200):
        mid = (lo + hi) / 2
        if 1.0 - np.tanh(mid) ** 2 >= 1.0:
            lo = mid
        else:
            hi = mid
    with mpmath.workdps(30):
        ev = {
            "counterexample": None
            if not found.ok
            else {
                "a": found.found,
                "tanh_prime_float64": float(act.grad(np.array(found.found), np.tanh(np.array(found.found)))),
                "tanh_prime_exact": str(tanh_derivative_exact(found.found)),
            },
            "gamma_tanh_symbolic": None if g_sym is None else str(g_sym),
            "precise_examples": prec.examples,
            "float64_tanh_prime_rounds_to_1_for_abs_a_up_to": lo,
        }
    return Findings(counterexample(found.ok, bool(reverified)), derived(g_sym == 1, not prec.ok), ev)


# ---------------------------------------------------------------------------------------------
# Pascanu et al.: spectral norm sufficient / necessary


@claim(
    "spectral-norm-sufficient-for-vanishing",
    quotes=[
        Quote(
            "pascanu2013",
            "\u03bb1 < 1/\u03b3, where \u03bb1 is the largest singular value of W_rec [is sufficient for the "
            "vanishing gradient problem to occur]",
            "2.1",
        )
    ],
    precise="If gamma = sup|phi'| and ||W_hh||_2 < 1/gamma then ||dh_T/dh_k||_2 <= (gamma ||W_hh||_2)^(T-k) -> 0 "
    "for every input, bias and initial state.",
    proofs=("norm_bound", "activation_bounds"),
)
def check_spectral_norm_sufficient(settings: AuditSettings) -> Findings:
    d = derivation("norm_bound")
    results = {nl: _bound_property(nl, (0.3, 0.99), settings, 20) for nl in ("tanh", "sigmoid")}
    held = all(not r.ok for r in results.values())
    return Findings(
        proof_or_property(_norm_bound_thresholds_agree(), held),
        None,
        {
            "derivation": d.name,
            "derived_bound": str(d.result["bound"]),
            "derived_thresholds_1_over_gamma": None
            if d is None
            else {k: str(v) for k, v in d.result["thresholds"].items()},
            "examples": {nl: r.examples for nl, r in results.items()},
            "property": "||dh_t/dh_0||_2 <= (gamma ||W_hh||_2)^t for t = 0..12 with gamma ||W_hh||_2 in [0.3, 0.99]; "
            "model Jacobian product == complex-step oracle",
            "counterexample": {nl: _describe_case(r.found) for nl, r in results.items() if r.ok},
        },
    )


@claim(
    "exploding-requires-large-norm",
    quotes=[
        Quote(
            "pascanu2013",
            "\u03bb1 > 1/\u03b3 is necessary for exploding gradients (paraphrased)",
            "2.1",
        )
    ],
    precise="If ||W_hh||_2 <= 1/gamma then ||dh_T/dh_k||_2 <= (gamma ||W_hh||_2)^(T-k) <= 1 for all T: the "
    "gradient cannot explode, so ||W_hh||_2 > 1/gamma is necessary (not sufficient) for explosion.",
    proofs=("norm_bound",),
)
def check_exploding_requires_large_norm(settings: AuditSettings) -> Findings:
    d = derivation("norm_bound")
    # On the boundary gamma ||W||_2 = 1 exactly, and below it: the gradient never grows.
    results = {nl: _bound_property(nl, (1.0, 1.0), settings, 20) for nl in ("tanh", "sigmoid")}
    held = all(not r.ok for r in results.values())
    return Findings(
        proof_or_property(_norm_bound_thresholds_agree(), held),
        None,
        {
            "derivation": d.name,
            "derived_bound": str(d.result["bound"]),
            "examples": {nl: r.examples for nl, r in results.items()},
            "property": "with gamma ||W_hh||_2 = 1: ||dh_t/dh_0||_2 <= 1 for t = 0..12 (cannot explode)",
            "counterexample": {nl: _describe_case(r.found) for nl, r in results.items() if r.ok},
        },
    )


# ---------------------------------------------------------------------------------------------
# Seed 004: sigmoid RNN without bias, c(t) = sigmoid(W_rec c(t-1) + W_in x(t))


@functools.cache
def _sigmoid_non_vanishing(settings: AuditSettings):
    # c* = 1/2 (a* = 0) is the point where sigma' = 1/4 is largest; search W_rec for rho(W_rec)/4 >= 1.2
    strategy = st.tuples(
        st.lists(st.floats(-10, 10), min_size=4, max_size=4).map(lambda v: np.array(v).reshape(2, 2)),
        st.just(np.zeros(2)),
    )
    return search(
        strategy,
        lambda c: spectral_radius(fixed_point_jacobian(c[0], c[1], "sigmoid")) >= GROWTH,
        300,
        settings,
        key="sigmoid-non-vanishing",
    )


def _sigmoid_witness_evidence(settings: AuditSettings):
    found = _sigmoid_non_vanishing(settings)
    if not found.ok:
        return False, {"searched_examples": found.examples, "found_by": found.source}
    agree, ev = _fixed_point_evidence(found.found, "sigmoid")
    n = ev["_norms"]
    ok = agree and n[-1] >= GROWTH**STEPS * 1e-3 and n[-1] > n[STEPS // 2] and spectral_norm(found.found[0]) >= 4
    return ok, {
        "searched_examples": found.examples,
        "found_by": found.source,
        "counterexample": _pop_private(ev),
    }


@claim(
    "sigmoid-rnn-gradient-vanishes",
    quotes=[
        Quote(
            "004",
            "When k is big, the last statement tends to vanish",
            "Backpropagation Through Time in RNNs",
        )
    ],
    precise="For c(t) = sigmoid(W_rec c(t-1) + W_in x(t)): the long product dc_T/dc_k tends to 0 as T - k grows, for "
    "every W_rec and input. (The quote's consequence, that the weights will not change, is the claim "
    "complete-gradient-vanishes.)",
    refinement="If ||W_rec||_2 < 4 then ||dc_T/dc_k||_2 <= (||W_rec||_2/4)^(T-k) -> 0 for every input; with "
    "||W_rec||_2 >= 4 there are inputs for which dc_T/dc_k grows geometrically.",
    proofs=("seed004_sigmoid",),
)
def check_sigmoid_rnn_gradient_vanishes(settings: AuditSettings) -> Findings:
    reverified, ev = _sigmoid_witness_evidence(settings)
    d = derivation("seed004_sigmoid")
    prec = _bound_property("sigmoid", (0.3, 0.99), settings, 20)
    ev["precise_examples"] = prec.examples
    ev["derivation"] = None if d is None else d.name
    ev["derived_threshold"] = None if d is None else str(d.result["threshold"])
    # the threshold 4 is derived (proofs/seed004_sigmoid.tex) when available; the bound is checked either way
    return Findings(
        counterexample("counterexample" in ev, reverified),
        derived(d.result["threshold"] == 4 and _norm_bound_thresholds_agree(), not prec.ok),
        ev,
    )


@functools.cache
def _tanh_non_vanishing(settings: AuditSettings):
    # tanh at a* = 0: tanh'(0) = 1 is the largest factor, J* = W_hh; search W_hh with rho >= 1.2
    strategy = st.tuples(
        gst.matrices(2, structures=("dense",)).map(lambda A: 4.0 * A),
        st.just(np.zeros(2)),
    )
    return search(
        strategy,
        lambda c: spectral_radius(fixed_point_jacobian(c[0], c[1])) >= GROWTH,
        200,
        settings,
        key="tanh-non-vanishing",
    )


def exact_fixed_point_radius(W: np.ndarray, nonlinearity: str) -> sp.Expr:
    r"""Exact spectral radius of the fixed-point Jacobian :math:`J^* = \phi'(0) W` at :math:`a^* = 0`.

    float64 entries are dyadic rationals, so W is taken exactly; :math:`\phi'(0)` is SymPy's
    derivative (1 for tanh, 1/4 for sigmoid) and the eigenvalues are SymPy's closed forms."""
    a = sp.Symbol("a", real=True)
    phi = {"tanh": sp.tanh(a), "sigmoid": 1 / (1 + sp.exp(-a))}[nonlinearity]
    slope = sp.diff(phi, a).subs(a, 0)
    J = sp.Matrix([[sp.Rational(Fraction(float(v))) for v in row] for row in np.asarray(W)]) * sp.nsimplify(slope)
    return sp.Max(*[sp.Abs(lam) for lam in J.eigenvals()])


def _exact_growth(found, nonlinearity: str) -> tuple[bool, bool, dict]:
    """(exact radius > 1, numeric model agrees, evidence) for a fixed-point witness at a* = 0."""
    agree, more = _fixed_point_evidence(found, nonlinearity)
    n = more["_norms"]
    rho = exact_fixed_point_radius(found[0], nonlinearity)
    exact = bool(sp.simplify(rho - 1) > 0)
    more["exact_radius_of_J"] = str(rho)
    numeric = bool(agree and n[-1] >= GROWTH**STEPS * 1e-3)
    return exact, numeric, _pop_private(more)


@claim(
    "strong-weights-can-explode",
    quotes=[
        Quote(
            "004",
            "The exploding gradient problem can also occur when the weights Wrec are strong enough to "
            "override the smaller tanh derivative, causing the product of derivatives to explode.",
            "Backpropagation Through Time in RNNs",
        )
    ],
    precise="There are sigmoid RNNs c_t = sigma(W_rec c_{t-1} + W_in x_t) (the seed's model) and tanh RNNs, with "
    "inputs, for which ||dc_T/dc_0||_2 grows geometrically in T: at the fixed point a* = 0 (x = -W_rec phi(0)) every "
    "one-step Jacobian is exactly phi'(0) W_rec (W_rec/4, resp. W_rec), so dc_T/dc_0 = (phi'(0) W_rec)^T, whose norm "
    "is at least rho(phi'(0) W_rec)^T with rho > 1 computed exactly; every such W_rec has ||W_rec||_2 > 1/gamma.",
    proofs=("seed004_sigmoid",),
)
def check_strong_weights_can_explode(settings: AuditSettings) -> Findings:
    sig = _sigmoid_non_vanishing(settings)
    tanh = _tanh_non_vanishing(settings)
    ev: dict = {
        "searched_examples": sig.examples + tanh.examples,
        "found_by": [sig.source, tanh.source],
    }
    exact = numeric = bool(sig.ok and tanh.ok)
    for name, found, nl, gamma_inv in (
        ("sigmoid_witness", sig, "sigmoid", 4),
        ("tanh_witness", tanh, "tanh", 1),
    ):
        if found.ok:
            e, n, ev[name] = _exact_growth(found.found, nl)
            exact &= e and spectral_norm(found.found[0]) > gamma_inv
            numeric &= n
    return Findings(exact_witness(exact, numeric), None, ev)


def _gradients_multiplied_counterexample() -> tuple[bool, dict]:
    r"""The seed's wording taken literally, for a scalar tanh RNN at its fixed point 0 (x = 0, w = 1/2):
    the per-step gradients are :math:`g_t = \partial L/\partial h_t = w^{T-t}` (L = h_T), exactly; their
    product :math:`\prod_{t=1}^{T} g_t = w^{T(T-1)/2}` is not :math:`g_0 = w^T` (T = 4: 1/64 vs 1/16).
    The model's hand-written BPTT gives the same g_t (spot check)."""
    w, T = Fraction(1, 2), 4
    g = [w ** (T - t) for t in range(T + 1)]  # exact, g[0] = dL/dh_0
    product = Fraction(1)
    for t in range(1, T + 1):
        product *= g[t]
    model = rnn(np.array([[float(w)]]))
    res = model.forward(np.zeros((T, 1)), np.zeros((1, 1)))
    d = np.zeros_like(res.output)
    d[-1] = 1.0
    g0 = model.backward(res, d).h0[0, 0]
    agree = g0 == float(g[0])  # dyadic and exact in float64 at the fixed point (tanh'(0) = 1)
    return bool(product != g[0] and agree), {
        "model": "h_t = tanh(w h_{t-1} + x_t), w = 1/2, x = 0, h_0 = 0, L = h_T, T = 4",
        "per_step_gradients_dL_dh_t": [str(v) for v in g],
        "product_of_gradients_t_1_to_T": str(product),
        "dL_dh_0_exact": str(g[0]),
        "dL_dh_0_model_bptt": g0,
    }
