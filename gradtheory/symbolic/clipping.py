r"""Gradient clipping: norm clipping keeps the direction and caps the norm at :math:`\theta`;
value clipping changes the direction."""

from __future__ import annotations

import sympy as sp

from ._core import Derivation, Norm, Step, eq, named, text

__all__ = ["derive", "norm_clip_factor", "clipped_norm", "value_clip_example"]

r_, theta = sp.symbols("r theta", positive=True)


def norm_clip_factor(norm, threshold):
    r"""Pascanu et al.'s Algorithm 1 as a factor: :math:`\min(1, \theta/\|g\|)`."""
    return sp.Min(1, sp.sympify(threshold) / sp.sympify(norm))


def clipped_norm(norm, threshold):
    r"""The derived norm after clipping, :math:`\min(\|g\|, \theta)`."""
    return sp.Min(sp.sympify(norm), sp.sympify(threshold))


def value_clip_example():
    """g = (3, 1), theta = 1: clipped to (1, 1); the cosine of the angle between them (< 1)."""
    g = sp.Matrix([3, 1])
    gc = g.applyfunc(lambda e: sp.Max(-1, sp.Min(1, e)))
    cos = sp.nsimplify(sp.simplify((g.T * gc)[0] / (g.norm() * gc.norm())))
    return g, gc, cos


def derive() -> Derivation:
    clip = sp.Symbol(r"\operatorname{clip}_\theta(g)", commutative=False)
    factor = sp.Piecewise((1, r_ <= theta), (theta / r_, True))
    steps = [
        Step(
            eq(clip, text(r"\min\Bigl(1, \frac{\theta}{\|g\|_2}\Bigr)\, g")),
            r"Norm clipping (Pascanu, Mikolov and Bengio 2013, Algorithm~1); torch's \texttt{clip\_grad\_norm\_} divides by $\|g\|_2 + 10^{-6}$.",
        ),
        Step(eq(named(r"c", r_), factor), r"The scale factor as a function of $r = \|g\|_2$."),
    ]
    # the two branches of ||c g|| = c r, checked by SymPy, and that they combine to min(r, theta)
    assert sp.simplify((theta / r_) * r_ - theta) == 0
    combined = sp.Piecewise((r_, r_ <= theta), (theta, True))
    for rv, tv in ((sp.Rational(1, 2), 1), (1, 1), (3, 2)):
        assert combined.subs({r_: rv, theta: tv}) == clipped_norm(rv, tv)
    steps.append(
        Step(
            eq(Norm(clip), sp.Piecewise((r_, r_ <= theta), (theta, True))),
            r"$\|c\,g\|_2 = |c|\,\|g\|_2$ with $c > 0$: in the second case $(\theta/r)\,r = \theta$ (SymPy).",
        )
    )
    steps.append(Step(eq(Norm(clip), clipped_norm(r_, theta)), r"The two cases combined."))
    steps.append(
        Step(
            eq(
                text(
                    r"\frac{\langle \operatorname{clip}_\theta(g), g\rangle}{\|\operatorname{clip}_\theta(g)\|_2 \|g\|_2}"
                ),
                sp.Integer(1),
            ),
            r"The direction is unchanged: $\operatorname{clip}_\theta(g) = c\,g$ with $c > 0$, so the cosine is $c r^2/(c r \cdot r) = 1$.",
        )
    )
    gv, gc, cos = value_clip_example()
    steps.append(
        Step(
            eq(text(r"\operatorname{clamp}_{[-\theta,\theta]}(g)"), text(r"(\max(-\theta, \min(\theta, g_i)))_i")),
            r"Value clipping (\texttt{clip\_grad\_value\_}) acts on each component separately.",
        )
    )
    steps.append(
        Step(
            eq(named(r"\operatorname{clamp}_{[-1,1]}", sp.ImmutableMatrix(gv)), sp.ImmutableMatrix(gc)),
            r"Example: $g = (3, 1)^\top$, $\theta = 1$.",
        )
    )
    steps.append(
        Step(
            eq(text(r"\cos\angle(g, \operatorname{clamp}(g))"), cos),
            r"SymPy: $4/(\sqrt{10}\sqrt{2})$; the clipped vector points elsewhere.",
            chain=((r"<", 1),),
        )
    )
    return Derivation(
        name="clipping",
        title="Gradient clipping",
        intro=(
            r"Clipping rescales a gradient that has exploded. The check compares the formulas with "
            r"\texttt{torch.nn.utils.clip\_grad\_norm\_} and \texttt{clip\_grad\_value\_} on Hypothesis-drawn "
            r"gradients."
        ),
        steps=tuple(steps),
        result={
            "factor": norm_clip_factor(r_, theta),
            "norm": clipped_norm(r_, theta),
            "symbols": (r_, theta),
            "value_example": (gv, gc, cos),
        },
    )
