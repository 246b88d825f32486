r"""Bidirectional and stacked models: how gradients compose across direction and depth, and the
causality of the unidirectional model (:math:`\partial h_t/\partial x_s = 0` for :math:`s > t`)."""

from __future__ import annotations

import sympy as sp

from ._core import Derivation, Diag, M, OrderedSum, Partial, Step, assert_zero, eq, text

__all__ = ["derive", "stacked_scalar", "bidirectional_scalar", "STACK_STEPS"]

STACK_STEPS = 3


def stacked_scalar(phi, steps: int = STACK_STEPS):
    r"""Two stacked scalar RNN layers (no bias): symbols, the top layer's states, and
    :math:`\partial h^{(2)}_T/\partial x_s` both by direct differentiation and by the composed
    formula. ``phi`` is a SymPy function (generic ``Function('phi')`` or e.g. ``sp.tanh``)."""
    w1, v1, w2, v2 = sp.symbols("w_1 v_1 w_2 v_2", real=True)
    xs = [sp.Symbol(f"x_{{{s + 1}}}", real=True) for s in range(steps)]
    z = sp.Symbol("_z")
    dphi = lambda e: sp.diff(phi(z), z).subs(z, e)  # noqa: E731
    h1, h2, a1, a2 = [sp.Integer(0)], [sp.Integer(0)], [None], [None]
    for s in range(steps):
        a1.append(w1 * h1[-1] + v1 * xs[s])
        h1.append(phi(a1[-1]))
        a2.append(w2 * h2[-1] + v2 * h1[-1])
        h2.append(phi(a2[-1]))
    T = steps
    direct = [sp.diff(h2[T], xs[s - 1]) for s in range(1, T + 1)]
    formula = []
    for s in range(1, T + 1):
        total = sp.Integer(0)
        for r in range(s, T + 1):
            top = sp.Mul(*[dphi(a2[j]) * w2 for j in range(r + 1, T + 1)])
            bottom = sp.Mul(*[dphi(a1[j]) * w1 for j in range(s + 1, r + 1)])
            total += top * dphi(a2[r]) * v2 * bottom * dphi(a1[s]) * v1
        formula.append(total)
    return {"symbols": (w1, v1, w2, v2, xs), "h1": h1, "h2": h2, "direct": direct, "formula": formula}


def bidirectional_scalar(phi, steps: int = STACK_STEPS):
    r"""A scalar bidirectional layer (no bias), :math:`L = \sum_t g^f_t \overrightarrow{h}_t + g^b_t \overleftarrow{h}_t`:
    :math:`\partial L/\partial x_s` by direct differentiation and by the two-direction formula."""
    wf, vf, wb, vb = sp.symbols("w_f v_f w_b v_b", real=True)
    xs = [sp.Symbol(f"x_{{{q + 1}}}", real=True) for q in range(steps)]
    gf = [sp.Symbol(f"gf_{{{q + 1}}}", real=True) for q in range(steps)]
    gb = [sp.Symbol(f"gb_{{{q + 1}}}", real=True) for q in range(steps)]
    z = sp.Symbol("_z")
    dphi = lambda e: sp.diff(phi(z), z).subs(z, e)  # noqa: E731
    hf, af = [sp.Integer(0)], [None]
    for q in range(steps):
        af.append(wf * hf[-1] + vf * xs[q])
        hf.append(phi(af[-1]))
    hb, ab = {steps + 1: sp.Integer(0)}, {}
    for q in range(steps, 0, -1):
        ab[q] = wb * hb[q + 1] + vb * xs[q - 1]
        hb[q] = phi(ab[q])
    L = sum((gf[q - 1] * hf[q] + gb[q - 1] * hb[q] for q in range(1, steps + 1)), sp.Integer(0))
    direct = [sp.diff(L, xs[q - 1]) for q in range(1, steps + 1)]
    formula = []
    for q in range(1, steps + 1):
        fwd = sum(
            (
                gf[t - 1] * sp.Mul(*[dphi(af[j]) * wf for j in range(q + 1, t + 1)]) * dphi(af[q]) * vf
                for t in range(q, steps + 1)
            ),
            sp.Integer(0),
        )
        bwd = sum(
            (gb[t - 1] * sp.Mul(*[dphi(ab[j]) * wb for j in range(t, q)]) * dphi(ab[q]) * vb for t in range(1, q + 1)),
            sp.Integer(0),
        )
        formula.append(fwd + bwd)
    return {"symbols": (wf, vf, wb, vb, xs, gf, gb), "direct": direct, "formula": formula}


def derive() -> Derivation:
    t, s, r, j, T = sp.symbols("t s r j T", integer=True, positive=True)
    h = lambda i: M(f"h_{{{sp.latex(i)}}}")  # noqa: E731
    x = lambda i: M(f"x_{{{sp.latex(i)}}}")  # noqa: E731
    phi = sp.Function("phi")
    # causality, by SymPy on the unrolled scalar model
    w, v = sp.symbols("w v")
    xs = sp.symbols("x1:4")
    hs = [sp.Integer(0)]
    for q in range(3):
        hs.append(phi(w * hs[-1] + v * xs[q]))
    for tt in range(1, 4):
        for ss in range(tt + 1, 4):
            assert sp.diff(hs[tt], xs[ss - 1]) == 0
    steps = [
        Step(
            eq(Partial(h(t), x(s)), sp.Integer(0)),
            r"Causality, for $s > t$: $h_t$ is a function of $h_0, x_1, \dots, x_t$ only (SymPy: every such derivative of the unrolled model, $T = 3$, generic $\phi$, is identically $0$).",
        )
    ]
    steps.append(
        Step(
            eq(Partial(h(t), x(s)), Partial(h(t), h(s)) * Diag(text(r"\phi'(a_s)")) * M("W_{ih}")),
            r"For $s \le t$: the input enters at step $s$ and travels $h_s \to h_t$ (Section~\ref{sec:rnn-bptt}).",
        )
    )
    hf, hb = (
        (lambda i: M(rf"\overrightarrow{{h}}_{{{sp.latex(i)}}}")),
        (lambda i: M(rf"\overleftarrow{{h}}_{{{sp.latex(i)}}}")),
    )
    steps.append(
        Step(
            eq(M("y_t"), text(r"\begin{bmatrix} \overrightarrow{h}_t \\ \overleftarrow{h}_t \end{bmatrix}")),
            r"Bidirectional output (torch: forward half first); $\overleftarrow{h}_t$ is computed from $\overleftarrow{h}_{t+1}$ and $x_t$.",
        )
    )
    steps.append(
        Step(
            eq(Partial(hb(t), hb(t + 1)), Diag(text(r"\phi'(\overleftarrow{a}_t)")) * M(r"\overleftarrow{W}_{hh}")),
            r"The reverse direction's one-step Jacobian runs backwards in time; hence $\partial\overleftarrow{h}_t/\partial x_s = 0$ for $s < t$.",
        )
    )
    Lsym = sp.Symbol("L")
    steps.append(
        Step(
            eq(
                Partial(Lsym, x(s)),
                OrderedSum(Partial(Lsym, hf(t)) * Partial(hf(t), x(s)), sp.Tuple(t, s, T))
                + OrderedSum(Partial(Lsym, hb(t)) * Partial(hb(t), x(s)), sp.Tuple(t, 1, s)),
            ),
            r"The two directions share only the input, so their contributions add: the forward one from outputs at $t \ge s$, the reverse one from $t \le s$ (asserted against SymPy's derivative of an unrolled scalar bidirectional layer, $T = 3$, generic $\phi$).",
        )
    )
    B = bidirectional_scalar(phi)
    for q in range(STACK_STEPS):
        assert_zero(B["direct"][q] - B["formula"][q], f"bidirectional dL/dx_{q + 1}: direct - two-direction formula")
    h1, h2 = (lambda i: M(f"h^{{(1)}}_{{{sp.latex(i)}}}")), (lambda i: M(f"h^{{(2)}}_{{{sp.latex(i)}}}"))
    steps.append(
        Step(
            eq(h2(t), text(r"\phi\bigl(W^{(2)}_{ih} h^{(1)}_t + W^{(2)}_{hh} h^{(2)}_{t-1} + b^{(2)}\bigr)")),
            r"Stacking: layer 2 reads layer 1's output at the same step.",
        )
    )
    steps.append(
        Step(
            eq(Partial(h2(t), h1(r), True), Diag(text(r"\phi'(a^{(2)}_r)")) * M("W^{(2)}_{ih}")),
            r"The vertical (depth) Jacobian at step $r$ (immediate: $h^{(2)}_{r-1}$ fixed, $t = r$).",
        )
    )
    steps.append(
        Step(
            eq(
                Partial(h2(T), x(s)),
                OrderedSum(
                    Partial(h2(T), h2(r)) * Diag(text(r"\phi'(a^{(2)}_r)")) * M("W^{(2)}_{ih}") * Partial(h1(r), x(s)),
                    sp.Tuple(r, s, T),
                ),
            ),
            r"Every path from $x_s$ to $h^{(2)}_T$ climbs from layer 1 to layer 2 at exactly one step $r$ with $s \le r \le T$: a sum of products of horizontal and vertical Jacobians.",
        )
    )
    S = stacked_scalar(phi)
    for q in range(STACK_STEPS):
        assert_zero(S["direct"][q] - S["formula"][q], f"dh2_T/dx_{q + 1}: direct - composed formula")
    steps.append(
        Step(
            eq(Partial(sp.Symbol("h^{(2)}_3"), sp.Symbol("x_1")), _pretty(S, S["formula"][0])),
            r"Scalar case, two layers, $T = 3$, generic $\phi$: the composed formula equals SymPy's derivative of the unrolled model for every $s$ (asserted); here $s = 1$, $\phi'^{(l)}_j = \phi'(a^{(l)}_j)$.",
        )
    )
    return Derivation(
        name="bidirectional_stacked",
        title="Bidirectional and stacked models",
        intro=(
            r"Directions and layers compose by the chain rule: gradients from the two directions add, "
            r"and paths through a stack climb between layers exactly once. The checks compare the "
            r"composed scalar formula (with $\phi = \tanh$) with a two-layer \texttt{gradtheory.RNN}, "
            r"confirm causality on the numeric models, and split a bidirectional model's input "
            r"gradient into its two unidirectional halves."
        ),
        steps=tuple(steps),
        result={"stacked": S, "bidirectional": B},
    )


def _pretty(S, expr):
    """Rename phi'(a^{(l)}_j) and phi(a) sub-expressions into short symbols for display."""
    rep = {}
    # identify the layer/step of each derivative by matching its argument to the states
    h1, h2 = S["h1"], S["h2"]
    args = {}
    for q in range(1, len(h1)):
        args[h1[q].args[0]] = (1, q)
        args[h2[q].args[0]] = (2, q)
    for d in expr.atoms(sp.Subs):
        lvl, q = args[d.point[0]]
        rep[d] = sp.Symbol(r"\phi'^{(%d)}_{%d}" % (lvl, q))
    return sp.factor(expr.xreplace(rep))
