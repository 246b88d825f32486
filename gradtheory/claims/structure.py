r"""Claims about what the recurrence is: shared weights, the two inputs of a step, memory, the
recurrent weights and their gradient as a sum over time (seeds 000/001, 002, 004).

Throughout :math:`h_t = \phi(W_{ih} x_t + W_{hh} h_{t-1} + b)`. With the weights shared across
steps, the gradient of a loss at step T with respect to :math:`W_{hh}` is the sum over every step
where :math:`W_{hh}` enters,

.. math:: \frac{\partial L}{\partial W_{hh}} = \sum_{t=1}^{T} G_t,\qquad
   G_t = \operatorname{diag}(\phi'(a_t))\,\frac{\partial L}{\partial h_t}\,h_{t-1}^\top,

(``proofs/rnn_bptt.tex``), and the newest term :math:`G_T` has no product of Jacobians at all.
The independent oracle here is the *untied* model: a plain complex-valued numpy forward in which
step t has its own copy :math:`W_t`; :math:`G_t` is its complex-step derivative with respect to
:math:`W_t` at :math:`W_t = W_{hh}`.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp
from hypothesis import strategies as st

from .. import ACTIVATIONS, RNN
from .. import strategies as gst
from .._tolerances import BPTT_VS_COMPLEX_STEP, JACOBIAN_PRODUCT, NORM_BOUND_PER_FACTOR
from ..oracles import jacobian as fd_jacobian
from ._core import (
    AuditSettings,
    Findings,
    Quote,
    claim,
    counterexample,
    derived,
    holds,
    proof_or_property,
    property_held,
)
from ._numeric import (
    derivation,
    rnn,
    spectral_norm,
    vanishes,
)

__all__ = [
    "shared_weight_derivative",
    "untied_contributions",
    "weight_gradient_is_sum_of_contributions",
]

# complex step h = 1e-30: f(W + i h E) = f(W) + i h df + O(h^2); the imaginary part divided by h
# is exact to round-off (no subtraction), so the oracle is good to ~ T * 1e-15 relative.
_STEP = 1e-30


def _phi(nonlinearity: str):
    return {"tanh": np.tanh, "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a))}[nonlinearity]


def untied_final_state(W_steps, W_ih, b, x, h0, nonlinearity: str):
    """Plain forward with one recurrent matrix per step (complex-capable): the untied oracle."""
    phi = _phi(nonlinearity)
    h = np.asarray(h0, dtype=complex)
    for t in range(x.shape[0]):
        h = phi(W_ih @ x[t] + W_steps[t] @ h + b)
    return h


def untied_contributions(W_hh, W_ih, b, x, h0, r, nonlinearity: str = "tanh") -> np.ndarray:
    r""":math:`G_t = \partial L/\partial W_t` at :math:`W_t = W_{hh}` for :math:`L = \langle r, h_T\rangle`,
    by complex step through the untied forward; shape (T, n, n)."""
    T, n = x.shape[0], W_hh.shape[0]
    G = np.zeros((T, n, n))
    for t in range(T):
        for i in range(n):
            for j in range(n):
                Ws = [W_hh.astype(complex) for _ in range(T)]
                Ws[t] = Ws[t].copy()
                Ws[t][i, j] += 1j * _STEP
                G[t, i, j] = (r @ untied_final_state(Ws, W_ih, b, x, h0, nonlinearity)).imag / _STEP
    return G


def _model_weight_gradient(model, x, h0, r) -> np.ndarray:
    res = model.forward(x, h0[None, :])
    d = np.zeros_like(res.output)
    return model.backward(res, d, d_h_n=r[None, :]).params["weight_hh_l0"]


def weight_gradient_is_sum_of_contributions(case) -> bool:
    r"""The model's BPTT :math:`\partial L/\partial W_{hh}` equals :math:`\sum_t G_t` (untied oracle) and
    the complex-step derivative of the tied model; :math:`G_T = \operatorname{diag}(\phi'(a_T))\, r\,
    h_{T-1}^\top` (the newest term, no product)."""
    model, x, h0, r = case
    p = model.params
    W, W_ih, b = p["weight_hh_l0"], p["weight_ih_l0"], p["bias_ih_l0"] + p["bias_hh_l0"]
    G = untied_contributions(W, W_ih, b, x, h0, r, model.nonlinearity)
    bptt = _model_weight_gradient(model, x, h0, r)

    def tied(w):
        Wc = w.reshape(W.shape)
        return r @ untied_final_state([Wc] * x.shape[0], W_ih, b, x, h0, model.nonlinearity)

    tied_grad = fd_jacobian(lambda w: np.array([tied(w)]), W.ravel(), method="complex")[0].reshape(W.shape)
    res = model.forward(x, h0[None, :])
    hs = np.concatenate([h0[None, :], res.output], axis=0)
    act = ACTIVATIONS[model.nonlinearity]
    a_T = W_ih @ x[-1] + W @ hs[-2] + b
    newest = (act.grad(a_T, act.phi(a_T)) * r)[:, None] * hs[-2][None, :]
    tol = BPTT_VS_COMPLEX_STEP.value * max(1.0, np.abs(tied_grad).max())
    return bool(
        np.allclose(G.sum(axis=0), bptt, rtol=0, atol=tol)
        and np.allclose(tied_grad, bptt, rtol=0, atol=tol)
        and np.allclose(G[-1], newest, rtol=0, atol=tol)
    )


@st.composite
def _weight_cases(draw, nonlinearity=None, steps=(1, 8)):
    nl = nonlinearity or draw(st.sampled_from(["tanh", "sigmoid"]))
    n = draw(st.integers(1, 3))
    W = draw(gst.matrices(n)) * draw(st.floats(0.3, 2.0))
    model = rnn(W, draw(gst.matrices(n)), nl, b=draw(gst.vectors(n, bound=1.0)))
    x = draw(gst.sequences(steps=st.integers(*steps), input_size=n))
    return model, x, draw(gst.vectors(n, bound=1.0)), draw(gst.vectors(n, bound=1.0))


@functools.cache
def shared_weight_derivative(steps: int = 3) -> dict:
    r"""SymPy, scalar and generic :math:`\phi`: the derivative of the unrolled loss :math:`L = h_T`
    with respect to the shared w equals the sum of the derivatives with respect to per-step copies
    :math:`w_1, \dots, w_T` at :math:`w_t = w`; the oldest chain alone (the term of :math:`w_1`)
    differs from it; the newest term is :math:`\phi'(a_T) h_{T-1}` (no product)."""
    phi = sp.Function("phi")
    w = sp.Symbol("w", real=True)
    ws = sp.symbols(f"w1:{steps + 1}", real=True)
    xs = sp.symbols(f"x1:{steps + 1}", real=True)
    h0 = sp.Symbol("h0", real=True)
    h, hs, As = h0, [h0], []
    for t in range(steps):
        a = ws[t] * h + xs[t]
        As.append(a)
        h = phi(a)
        hs.append(h)
    tie = {wt: w for wt in ws}
    tied = sp.diff(h.xreplace(tie), w)
    terms = [sp.diff(h, wt).xreplace(tie) for wt in ws]
    total = vanishes(tied - sum(terms))
    newest = vanishes(
        terms[-1]
        - sp.Subs(sp.Derivative(phi(sp.Symbol("z")), sp.Symbol("z")), sp.Symbol("z"), As[-1]).doit().xreplace(tie)
        * hs[-2].xreplace(tie)
    )
    # the oldest chain alone, with phi = sigmoid at a rational point: differs from the total
    z = sp.Dummy("z")
    point = {
        w: sp.Rational(1, 2),
        h0: sp.Rational(1, 3),
        **{x: sp.Rational(k + 1, 4) for k, x in enumerate(xs)},
    }

    def value(expr):
        e = expr.subs(phi, sp.Lambda(z, 1 / (1 + sp.exp(-z)))).doit()
        return sp.N(e.xreplace(point), 30)

    chain, full = value(terms[0]), value(tied)
    return {
        "sum_equals_tied": total,
        "newest_has_no_product": newest,
        "oldest_chain": chain,
        "total": full,
        "chain_differs": bool(abs(chain - full) > 1e-20),
        "steps": steps,
    }


@functools.cache
def _tied_check(settings: AuditSettings, max_examples: int = 15) -> tuple[bool, bool, dict]:
    sym = shared_weight_derivative()
    d = derivation("rnn_bptt")
    formula_ok = vanishes(d.result["unrolled_direct"] - d.result["unrolled_formula"])
    prop = holds(_weight_cases(), weight_gradient_is_sum_of_contributions, max_examples, settings)
    ev = {
        "symbolic_scalar_T3": {k: str(v) for k, v in sym.items()},
        "derivation": d.name,
        "derivation_direct_equals_formula": formula_ok,
        "examples": prop.examples,
        "counterexample": prop.found,
        "oracle": "untied forward (one W_t per step), complex step; tied complex step; hand-written BPTT",
    }
    return (
        bool(sym["sum_equals_tied"] and sym["newest_has_no_product"] and formula_ok),
        not prop.ok,
        ev,
    )


@claim(
    "rnn-shares-weights",
    quotes=[
        Quote("000", "a RNN shares same weights across several time steps"),
        Quote(
            "000",
            "Here, the same function and same set of parameters are used at every time step.",
            "RNN",
        ),
        Quote("001", "a RNN shares same weights across several time steps"),
    ],
    precise="The unrolled RNN applies one (W_ih, W_hh, b) at every step: its parameter count does not depend on T, and "
    "the gradient with respect to the shared W_hh is the sum over steps of the gradients with respect to per-step "
    "copies W_1..W_T taken at W_t = W_hh (SymPy for a generic phi; numerically against the untied model).",
    proofs=("rnn_bptt",),
)
def check_rnn_shares_weights(settings: AuditSettings) -> Findings:
    proved, held, shared = _tied_check(settings)
    ev = dict(shared)  # the cached evidence is shared by three claims: never mutate it
    # one parameter set for any length: the gradient has one entry per shared parameter, whatever T
    model = RNN(2, 3, seed=0)
    counts = {}
    for T in (1, 10, 100):
        res = model.forward(np.ones((T, 2)))
        grads = model.backward(res, np.ones_like(res.output)).params
        counts[T] = (
            sum(g.size for g in grads.values())
            if {k: g.shape for k, g in grads.items()} == model.param_shapes()
            else -1
        )
    ev["gradient_entries_for_T_1_10_100"] = counts
    return Findings(proof_or_property(proved, held and len(set(counts.values())) == 1), None, ev)


@claim(
    "recurrent-weights-tweaked",
    quotes=[
        Quote(
            "002",
            "When doing backpropagation, this recurrent weights is also subjected to tweaking.",
            "Recurrent Neural Networks",
        ),
        Quote(
            "002",
            "This input also has its corresponding weight that needs to be tweaked.",
            "Weight Updates in an RNN",
        ),
        Quote(
            "002",
            "BPTT is done to get the gradient by finding the partial derivatives of the error with respect to "
            "the recurrent inputs.",
            "Vanishing/Exploding Gradient Problem",
        ),
    ],
    precise="BPTT computes dL/dh_t for the recurrent inputs h_t and from them the gradient of the recurrent weights, "
    "dL/dW_hh = sum_t diag(phi'(a_t)) (dL/dh_t) h_{t-1}^T, which gradient descent then uses (rnn_bptt's formula; the "
    "model's BPTT equals the tied and untied complex-step oracles).",
    proofs=("rnn_bptt",),
)
def check_recurrent_weights_tweaked(settings: AuditSettings) -> Findings:
    proved, held, shared = _tied_check(settings)
    ev = dict(shared)  # the cached evidence is shared by three claims: never mutate it
    return Findings(proof_or_property(proved, held), None, ev)


@claim(
    "error-gradient-single-chain",
    quotes=[
        Quote(
            "004",
            "If the learning process has total T time steps, then the gradient of the error on the kth time "
            "step will be:",
            "Backpropagation Through Time in RNNs",
        ),
        Quote(
            "004",
            "Now insert the derivative of c(t) in the gradient of the error in the kth step\u2019s equation.",
            "Backpropagation Through Time in RNNs",
        ),
    ],
    precise="The gradient of E_k with respect to the shared W is one chain of products back to c(1): "
    "dE_k/dW = dE_k/dc_k (prod_{t=2}^{k} dc_t/dc_{t-1}) dc_1/dW (the seed's formula, an image in the source, as the "
    "text goes on to use it).",
    refinement="With shared weights it is a sum over every step where W enters: dE_k/dW = sum_{t=1}^{k} dE_k/dc_k "
    "(prod_{j=t+1}^{k} dc_j/dc_{j-1}) d+c_t/dW, and the newest term (t = k) has no product at all "
    "(rnn_bptt: SymPy differentiates the unrolled loss and it equals this formula).",
    proofs=("rnn_bptt", "seed004_sigmoid"),
)
def check_error_gradient_single_chain(settings: AuditSettings) -> Findings:
    sym = shared_weight_derivative()
    proved, held, shared = _tied_check(settings)
    ev = dict(shared)  # the cached evidence is shared by three claims: never mutate it
    ev["single_chain_vs_total_sigmoid"] = {
        "oldest_chain_only": str(sym["oldest_chain"]),
        "total": str(sym["total"]),
        "point": "w = 1/2, h0 = 1/3, x_t = t/4, T = 3, phi = sigmoid",
    }
    return Findings(counterexample(sym["chain_differs"], held), proof_or_property(proved, held), ev)


# ---------------------------------------------------------------------------------------------
# complete-gradient-vanishes (seed 004)

HORIZONS = (10, 20, 40, 80)


def seed004_weight_gradient_norms() -> dict:
    r"""The seed's model c_t = sigma(W_rec c_{t-1} + W_in x_t), W_rec = I/2 (||W_rec|| < 4: the long
    products do vanish), W_in = I, x_t = (1, -1), c_0 = 0, E_k = <(1, 1), c_k>: ||dE_k/dW_rec||_F for
    k in HORIZONS from the model's BPTT, and the untied complex-step oracle at the last horizon."""
    W, r = 0.5 * np.eye(2), np.ones(2)
    model = rnn(W, nonlinearity="sigmoid")  # W_ih = I, no bias: the seed's model
    out = {}
    for k in HORIZONS:
        x = np.tile([1.0, -1.0], (k, 1))
        out[k] = _model_weight_gradient(model, x, np.zeros(2), r)
    x = np.tile([1.0, -1.0], (HORIZONS[-1], 1))
    G = untied_contributions(W, np.eye(2), np.zeros(2), x, np.zeros(2), r, "sigmoid")
    return {
        "grads": out,
        "oracle_last": G.sum(axis=0),
        "oldest_term_last": G[0],
        "newest_term_last": G[-1],
    }


@claim(
    "complete-gradient-vanishes",
    quotes=[
        Quote(
            "004",
            "Due to this, our complete gradient will vanish.",
            "Backpropagation Through Time in RNNs",
        ),
        Quote(
            "004",
            "So the weights (W) will not have any significant change, and hence learning of neural networks "
            "will have no progress.",
            "Backpropagation Through Time in RNNs",
        ),
    ],
    precise="For the seed's sigmoid RNN, ||dE_k/dW|| -> 0 as k grows, so gradient descent leaves W unchanged. "
    "Established instead: the newest terms of the sum have no long product, so when the long products vanish the "
    "complete gradient converges to a nonzero limit (W_rec = I/2: ||dE_k/dW_rec|| is the same to 1e-6 at k = 10, 20, "
    "40, 80, while the oldest term is ~1e-50); only the long-range part of the gradient vanishes.",
    proofs=("seed004_sigmoid", "rnn_bptt"),
)
def check_complete_gradient_vanishes(settings: AuditSettings) -> Findings:
    res = seed004_weight_gradient_norms()
    n = {k: float(np.linalg.norm(g)) for k, g in res["grads"].items()}
    tol = BPTT_VS_COMPLEX_STEP.value * max(1.0, n[HORIZONS[-1]])
    agree = np.allclose(res["oracle_last"], res["grads"][HORIZONS[-1]], rtol=0, atol=tol)
    # the norms settle: every horizon within 1e-6 of the last (the tail is a geometric series in (1/8)^k)
    settled = all(abs(v - n[HORIZONS[-1]]) <= 1e-6 * n[HORIZONS[-1]] for v in n.values()) and n[HORIZONS[-1]] > 0.1
    old = float(np.linalg.norm(res["oldest_term_last"]))
    return Findings(
        counterexample(settled and old < 1e-30, bool(agree)),
        None,
        {
            "model": "c_t = sigmoid(W_rec c_{t-1} + x_t), W_rec = I/2, x_t = (1, -1), c_0 = 0, E_k = <(1, 1), c_k>",
            "norm_dE_k_dW_rec": {str(k): v for k, v in n.items()},
            "oldest_term_norm_k_80": old,
            "newest_term_k_80": res["newest_term_last"],
            "untied_oracle_agrees": bool(agree),
        },
    )


# ---------------------------------------------------------------------------------------------
# Structure of one step: two inputs, feedback, memory


@functools.cache
def unrolled_dependencies(steps: int = 4) -> dict:
    r"""SymPy, scalar, generic :math:`\phi`: :math:`h_t = \phi(w h_{t-1} + v x_t)` unrolled; which inputs
    each :math:`h_t` contains, and what one step reads."""
    phi = sp.Function("phi")
    w, v, h0 = sp.symbols("w v h0", real=True)
    xs = sp.symbols(f"x1:{steps + 1}", real=True)
    hprev = sp.Symbol("h_prev", real=True)
    step = phi(w * hprev + v * xs[-1])
    h, hs = h0, []
    for t in range(steps):
        h = phi(w * h + v * xs[t])
        hs.append(h)
    deps = {t + 1: sorted(str(x) for x in xs if hs[t].has(x)) for t in range(steps)}
    nonzero = {t + 1: all(sp.diff(hs[t], x) != 0 for x in xs[: t + 1]) for t in range(steps)}
    return {
        "deps": deps,
        "nonzero": nonzero,
        "step_reads": sorted(str(s) for s in step.free_symbols),
        "causal": all(deps[t] == [str(x) for x in xs[:t]] for t in deps),
    }


def input_dependence_holds(case) -> bool:
    r"""Complex-step :math:`\partial h_t/\partial x_s` of the model: exactly 0 for s > t (the state
    summarises the past only), nonzero for s <= t (generic weights), and h_t has length H for all t."""
    model, x, h0 = case

    def f(xx):
        return model.apply(model.params, xx, h0[None, :]).output

    J = fd_jacobian(f, x, method="complex")  # (T, H, T, I)
    T = x.shape[0]
    for t in range(T):
        for s in range(T):
            m = np.abs(J[t, :, s]).max()
            if (s > t and m != 0.0) or (s <= t and not m > 0.0):
                return False
    return model.forward(x, h0[None, :]).output.shape == (T, model.hidden_size)


@st.composite
def _generic_rnn_cases(draw):
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    model = RNN(n, n, seed=seed)  # torch's default initialisation: generic weights
    return (
        model,
        draw(gst.sequences(steps=st.integers(1, 6), input_size=n)),
        draw(gst.vectors(n, bound=1.0)),
    )


@claim(
    "state-summarises-past",
    quotes=[
        Quote(
            "000",
            "The $$h_t$$ denotes the *state*, which is a kind of summary of past sequence of inputs $$(x_t, "
            "x_{t-1}, x_{t-2}, ..., x_1)$$ upto $$t$$ mapped to fixed length vector $$h_t$$.",
            "RNN",
        ),
        Quote(
            "001",
            "The \\(h_t\\) denotes the state, which is a kind of summary of past sequence of inputs \\((x_t, "
            "x_{t-1}, x_{t-2}, ..., x_1)\\) upto \\(t\\) mapped to fixed length vector \\(h_t\\).",
        ),
        Quote(
            "004",
            "RNN maintains internal memory so that it can store the data of previous input data",
            "Introduction",
        ),
    ],
    precise="h_t has the same length H for every t and is a function of x_1..x_t only: dh_t/dx_s = 0 exactly for "
    "s > t and != 0 for every s <= t (generic weights): SymPy on the unrolled scalar RNN, and the model's "
    "complex-step Jacobian.",
    proofs=("rnn_bptt",),
)
def check_state_summarises_past(settings: AuditSettings) -> Findings:
    sym = unrolled_dependencies()
    prop = holds(_generic_rnn_cases(), input_dependence_holds, 20, settings)
    return Findings(
        proof_or_property(sym["causal"] and all(sym["nonzero"].values()), not prop.ok),
        None,
        {
            "symbolic_inputs_in_h_t": sym["deps"],
            "examples": prop.examples,
            "counterexample": prop.found,
        },
    )


@claim(
    "two-sources-of-input",
    quotes=[
        Quote(
            "002",
            "This means that each neuron in an RNN has two sources of inputs:",
            "Recurrent Neural Networks",
        ),
        Quote(
            "002",
            "The recent past data (A single output based on the previous set of inputs)",
            "Recurrent Neural Networks",
        ),
        Quote(
            "002",
            "each neuron will 2 sources of inputs: The current input, and the most recent previous input.",
            "Unrolling an RNN",
        ),
        Quote(
            "002",
            "In the next time step, it will take the current input plus the previous output.",
            "Unrolling an RNN",
        ),
    ],
    precise="One step reads exactly x_t and h_{t-1} (SymPy: the free symbols of phi(w h_{t-1} + v x_t) are the "
    "weights, x_t and h_{t-1}), and h_{t-1} is a single vector that depends on every earlier input.",
    proofs=("rnn_bptt",),
)
def check_two_sources_of_input(settings: AuditSettings) -> Findings:
    sym = unrolled_dependencies()
    reads = sym["step_reads"] == sorted(["h_prev", "v", "w", "x4"])
    prop = holds(_generic_rnn_cases(), input_dependence_holds, 10, settings)
    return Findings(
        proof_or_property(reads and sym["causal"], not prop.ok),
        None,
        {
            "step_reads": sym["step_reads"],
            "symbolic_inputs_in_h_t": sym["deps"],
            "examples": prop.examples,
        },
    )


@claim(
    "outputs-cycle-back",
    quotes=[
        Quote(
            "002",
            "A Recurrent Neural Network (RNN) is a variant of neural networks, where in each neuron, the "
            "outputs cycle back to themselves, hence being recurrent.",
            "Recurrent Neural Networks",
        )
    ],
    precise="Every unit's previous output is an input of the next step: the pre-activation a_t = W_ih x_t + W_hh h_{t-1} "
    "+ b has da_t/dh_{t-1} = W_hh, a full matrix, so each unit receives its own output (W_ii) and every other "
    "unit's (W_ij) (SymPy Jacobian of the step; the model's one-step Jacobian is diag(phi') W_hh).",
    proofs=("rnn_bptt",),
)
def check_outputs_cycle_back(settings: AuditSettings) -> Findings:
    d = derivation("rnn_bptt")
    ok = vanishes(d.result["one_step_jacobian"] - d.result["diag_times_W"])
    W = sp.Matrix(3, 3, sp.symbols("W0:9", real=True))
    hp, u = (
        sp.Matrix(sp.symbols("h0:3", real=True)),
        sp.Matrix(sp.symbols("u0:3", real=True)),
    )
    full = (W * hp + u).jacobian(hp) == W
    model = RNN(3, 3, seed=0)
    J = model.jacobians(model.forward(np.linspace(-1, 1, 6).reshape(2, 3)))
    spot = bool(np.all(J != 0))  # generic weights: every unit feeds itself and every other unit
    return Findings(
        derived(ok and full, spot),
        None,
        {"da_t/dh_{t-1}": "W_hh (SymPy, 3x3)", "model_one_step_jacobian_t1": J[0]},
    )


def fading_memory_holds(case) -> bool:
    r"""||dh_T/dx_1||_2 <= gamma ||W_ih||_2 (gamma ||W_hh||_2)^(T-1) (complex-step oracle)."""
    model, x, h0 = case
    p = model.params
    gamma = float(ACTIVATIONS[model.nonlinearity].gamma)
    q = gamma * spectral_norm(p["weight_hh_l0"])

    def f(x1):
        xx = x.astype(complex)
        xx[0] = x1
        return model.apply(model.params, xx, h0[None, :]).h_n[0]

    J = fd_jacobian(f, x[0], method="complex")
    T = x.shape[0]
    bound = gamma * spectral_norm(p["weight_ih_l0"]) * q ** (T - 1)
    return bool(np.linalg.norm(J, 2) <= bound * (1 + NORM_BOUND_PER_FACTOR.value * (T + 1)) + 1e-300)


@st.composite
def _contracting_cases(draw):
    nl = draw(st.sampled_from(["tanh", "sigmoid"]))
    n = draw(st.integers(1, 3))
    gamma = float(ACTIVATIONS[nl].gamma)
    W = draw(gst.matrices(n, spectral_norm=draw(st.floats(0.3, 0.95)) / gamma))
    model = rnn(W, draw(gst.matrices(n)), nl, b=draw(gst.vectors(n, bound=1.0)))
    return (
        model,
        draw(gst.sequences(steps=st.integers(1, 15), input_size=n, scale=2.0)),
        draw(gst.vectors(n, bound=1.0)),
    )


def identity_memory_witness(T: int = 50) -> tuple[bool, bool, dict]:
    r"""Exact: the tanh RNN with W_hh = W_ih = I, b = 0, x = 0, h_0 = 0 stays at 0 and
    :math:`\partial h_T/\partial x_1 = \prod \operatorname{diag}(\tanh'(0)) W_{hh} \cdot \tanh'(0) W_{ih} = I`
    for every T (tanh'(0) = 1 by SymPy); the model's complex-step Jacobian agrees."""
    a = sp.Symbol("a", real=True)
    slope = sp.diff(sp.tanh(a), a).subs(a, 0)
    exact = sp.eye(2) * slope**T == sp.eye(2)
    model = rnn(np.eye(2))
    x = np.zeros((T, 2))

    def f(x1):
        xx = x.astype(complex)
        xx[0] = x1
        return model.apply(model.params, xx, np.zeros((1, 2))).h_n[0]

    J = fd_jacobian(f, x[0], method="complex")
    return (
        bool(exact),
        bool(np.array_equal(J, np.eye(2))),
        {
            "T": T,
            "W_hh": np.eye(2),
            "W_ih": np.eye(2),
            "x": "zeros",
            "dh_T_dx_1_complex_step": J,
        },
    )


@claim(
    "short-term-memory",
    quotes=[
        Quote(
            "002",
            "The RNN has a Short-Term memory, as the recurrent input is only derived from it's most recent "
            'past. Anything that happened way before is "forgotten".',
            "Recurrent Neural Networks",
        ),
        Quote(
            "002",
            'In an RNN, the model would remember the immediate past, that previously we have seen the letter "u".',
            "Recurrent Neural Networks",
        ),
    ],
    precise="Because a step reads only h_{t-1}, an RNN forgets old inputs: dh_T/dx_1 -> 0 as T grows, for every RNN.",
    refinement="Reading only h_{t-1} does not make memory short (h_{t-1} carries every earlier input; exact witness: "
    "W_hh = W_ih = I at the fixed point 0 gives dh_T/dx_1 = I for every T). Memory fades when the recurrence "
    "contracts: ||dh_T/dx_k||_2 <= gamma ||W_ih||_2 (gamma ||W_hh||_2)^(T-k), which decays geometrically when "
    "gamma ||W_hh||_2 < 1.",
    proofs=("norm_bound",),
)
def check_short_term_memory(settings: AuditSettings) -> Findings:
    exact, numeric, ev = identity_memory_witness()
    prop = holds(_contracting_cases(), fading_memory_holds, 25, settings)
    ev.update(refinement_examples=prop.examples, refinement_counterexample=prop.found)
    return Findings(counterexample(exact, numeric), property_held(not prop.ok), {"witness": ev})


@claim(
    "feedforward-forgets-letters",
    quotes=[
        Quote(
            "002",
            'For example, if we feed in the word "neuron" letter by letter, in a feed-forward NN, when we '
            'reach the letter "r", the model would have forgotten "n", "e", "u".',
            "Recurrent Neural Networks",
        )
    ],
    precise="A feed-forward network applied to one letter at a time, y_t = F(x_t), has dy_t/dx_s = 0 for s != t: at "
    "'r' (t = 4) nothing depends on 'n', 'e', 'u' (SymPy), while an RNN's h_4 depends on all four letters "
    "(see state-summarises-past).",
)
def check_feedforward_forgets_letters(settings: AuditSettings) -> Findings:
    phi = sp.Function("phi")
    w = sp.Symbol("w", real=True)
    xs = sp.symbols("x_n x_e x_u x_r", real=True)
    y_r = phi(w * xs[3])
    forgets = all(sp.diff(y_r, x) == 0 for x in xs[:3]) and sp.diff(y_r, xs[3]) != 0
    # numeric: a torch-initialised RNN with W_hh = 0 is such a feed-forward net; one-hot letters
    letters = np.eye(4)
    model = RNN(4, 3, seed=1)
    p = dict(model.params)
    p["weight_hh_l0"] = np.zeros((3, 3))
    ff = RNN(4, 3, params=p)

    def f(xx, m):
        return m.apply(m.params, xx).output[3]

    J_ff = fd_jacobian(lambda xx: f(xx, ff), letters, method="complex")
    J_rnn = fd_jacobian(lambda xx: f(xx, model), letters, method="complex")
    spot = bool(np.all(J_ff[:, :3] == 0) and np.all(np.abs(J_rnn[:, :3]).max(axis=(0, 2)) > 0))
    sym = unrolled_dependencies()
    return Findings(
        derived(forgets and sym["deps"][4] == ["x1", "x2", "x3", "x4"], spot),
        None,
        {
            "max_abs_dy_r_d(n,e,u)_feedforward": np.abs(J_ff[:, :3]).max(axis=(0, 2)),
            "max_abs_dh_r_d(n,e,u)_rnn": np.abs(J_rnn[:, :3]).max(axis=(0, 2)),
        },
    )


# ---------------------------------------------------------------------------------------------
# one-additional-weight, concatenated-weights


def _torch_counts(I: int, H: int, bias: bool) -> tuple[int, int]:
    import torch

    r = torch.nn.RNN(I, H, bias=bias)
    lin = torch.nn.Linear(I, H, bias=bias)
    return sum(p.numel() for p in r.parameters()), sum(p.numel() for p in lin.parameters())


def extra_recurrent_weights_hold(case) -> bool:
    """#RNN(I, H) - #Linear(I, H) == H^2 + H [bias] for torch's modules (the oracle) and our RNN, which is the
    SymPy count H^2 + H*bias."""
    I, H, bias = case
    r, lin = _torch_counts(I, H, bias)
    ours = RNN(I, H, bias=bias).num_parameters()
    Hs = sp.Symbol("H", positive=True, integer=True)
    extra = (Hs**2 + (Hs if bias else 0)).subs(Hs, H)
    return bool(r == ours and r - lin == extra)


@claim(
    "one-additional-weight",
    quotes=[
        Quote(
            "002",
            "Like a normal feed-forward NN, the RNN also has a weight matrix, but with one additional weight to "
            "include the recurrent input.",
            "Recurrent Neural Networks",
        )
    ],
    precise="An RNN layer has exactly one weight more than the feed-forward layer of the same sizes.",
    refinement="The recurrent input adds a whole matrix W_hh: H^2 weights (plus H biases in torch's layout), one weight "
    "per pair of units; it is a single weight only when H = 1 (one recurrent neuron, as in the seed's figure).",
)
def check_one_additional_weight(settings: AuditSettings) -> Findings:
    r, lin = _torch_counts(3, 2, False)
    one_neuron = _torch_counts(3, 1, False)
    prop = holds(
        st.tuples(st.integers(1, 6), st.integers(1, 6), st.booleans()),
        extra_recurrent_weights_hold,
        20,
        settings,
    )
    return Findings(
        counterexample(r - lin != 1, r - lin == 4),
        property_held(not prop.ok),
        {
            "H=2, I=3, no bias: RNN - Linear": r - lin,
            "H=1, I=3, no bias: RNN - Linear": one_neuron[0] - one_neuron[1],
            "oracle": "torch.nn.RNN / torch.nn.Linear parameter counts",
            "refinement_examples": prop.examples,
        },
    )


@claim(
    "concatenated-weights",
    quotes=[
        Quote(
            "004",
            "The state vector c(t-1) and the input vector x(t) these two vectors are attached to make a "
            "complete input vector at time step t, i.e., [c(t-1), x(t)].",
            "RNN and Vanishing Gradient Problem",
        ),
        Quote(
            "004",
            "We ignore the bias vectors in our calculations and write W = [Wrec, Win] instead.",
            "RNN and Vanishing Gradient Problem",
        ),
    ],
    precise="W [c; x] = W_rec c + W_in x (block multiplication), so c(t) = sigma(W [c(t-1), x(t)]) is the sigmoid RNN "
    "without bias, and dc_t/dc_{t-1} = diag(sigma'(a_t)) W_rec involves only the W_rec block (SymPy; the model with "
    "bias=False computes the same states).",
    proofs=("seed004_sigmoid",),
)
def check_concatenated_weights(settings: AuditSettings) -> Findings:
    n, m = 2, 3
    Wr, Wi = (
        sp.Matrix(n, n, sp.symbols("r0:4", real=True)),
        sp.Matrix(n, m, sp.symbols("i0:6", real=True)),
    )
    c, x = (
        sp.Matrix(sp.symbols("c0:2", real=True)),
        sp.Matrix(sp.symbols("x0:3", real=True)),
    )
    block = (sp.Matrix.hstack(Wr, Wi) * sp.Matrix.vstack(c, x) - (Wr * c + Wi * x)).expand() == sp.zeros(n, 1)
    d = derivation("seed004_sigmoid")
    jac = vanishes(d.result["jacobian"] - d.result["formula"])
    rng = np.random.default_rng(4)  # local generator: the audit never touches the global RNG
    W_rec, W_in, xs = (
        rng.uniform(-1, 1, (n, n)),
        rng.uniform(-1, 1, (n, m)),
        rng.uniform(-1, 1, (5, m)),
    )
    model = RNN(
        m,
        n,
        nonlinearity="sigmoid",
        bias=False,
        params={"weight_ih_l0": W_in, "weight_hh_l0": W_rec},
    )
    out = model.forward(xs).output
    cs, ref = np.zeros(n), []
    W = np.hstack([W_rec, W_in])
    for t in range(5):
        cs = 1 / (1 + np.exp(-(W @ np.concatenate([cs, xs[t]]))))
        ref.append(cs)
    # two summation orders of n + m products: |difference| <= (n + m) u per pre-activation, sigma' <= 1/4
    spot = bool(np.allclose(out, np.array(ref), rtol=0, atol=JACOBIAN_PRODUCT.value))
    return Findings(
        derived(block and jac, spot),
        None,
        {
            "block_identity": "[W_rec, W_in] [c; x] - (W_rec c + W_in x) = 0",
            "derivation": d.name,
            "jacobian_equals_diag_sigma_prime_W_rec": jac,
            "model_vs_concatenated_max_abs": float(np.abs(out - np.array(ref)).max()),
        },
    )
