r"""Seed 004's model :math:`c(t) = \sigma(W [c(t-1); x(t)])`, :math:`W = [W_{rec}, W_{in}]`: the
gradient of :math:`E_k` and its product of Jacobians.

The seed's text says the long products vanish "because the derivative of the tanh activation is
lower than 1"; its model uses the sigmoid, whose derivative is at most 1/4, so the product
vanishes for every :math:`\|W_{rec}\|_2 < 4`, not 1.
"""

from __future__ import annotations

import sympy as sp

from ._core import (
    Derivation,
    Diag,
    M,
    Norm,
    OrderedProduct,
    OrderedSum,
    Partial,
    Step,
    assert_expand_zero,
    eq,
    le,
    sig,
    text,
)
from .activation_bounds import gamma

__all__ = ["derive"]


def derive() -> Derivation:
    t, k, j = sp.symbols("t k j", integer=True, positive=True)
    c = lambda i: M(f"c_{{{sp.latex(i)}}}")  # noqa: E731
    Wrec, W = M("W_{rec}"), M("W")
    Ek = sp.Symbol("E_k")
    steps = [
        Step(
            eq(c(t), text(r"\sigma\left(W \begin{bmatrix} c_{t-1} \\ x_t \end{bmatrix}\right)")),
            r"The seed's model: state $c$, input $x$, no bias, $W = [W_{rec}, W_{in}]$, sigmoid hidden layer; the prediction error $E_k$ is read at the last step $k$.",
        ),
        Step(
            eq(c(t), text(r"\sigma(W_{rec} c_{t-1} + W_{in} x_t)")),
            r"Block multiplication: this is \texttt{gradtheory.RNN(nonlinearity='sigmoid', bias=False)} with $W_{hh} = W_{rec}$, $W_{ih} = W_{in}$.",
        ),
    ]
    n = 2
    Wr = sp.Matrix(n, n, lambda r, q: sp.Symbol(f"r_{{{r + 1}{q + 1}}}"))
    Wi = sp.Matrix(n, 1, lambda r, q: sp.Symbol(f"v_{{{r + 1}}}"))
    cprev = sp.Matrix(sp.symbols(f"c0:{n}"))
    xs = sp.Matrix([sp.Symbol("x")])
    cnew = (Wr * cprev + Wi * xs).applyfunc(sig)
    J = cnew.jacobian(cprev)
    formula = sp.diag(*[cnew[i] * (1 - cnew[i]) for i in range(n)]) * Wr
    assert_expand_zero(J - formula, "dc_t/dc_{t-1} - diag(c_t (1 - c_t)) W_rec (n = 2)")
    steps.append(
        Step(
            eq(Partial(c(t), c(t - 1)), Diag(text(r"\sigma'(a_t)")) * Wrec),
            r"SymPy's Jacobian for $n = 2$, $a_t = W_{rec}c_{t-1} + W_{in}x_t$ \ldots",
            chain=(Diag(text(r"c_t \odot (1 - c_t)")) * Wrec,),
        )
    )
    steps.append(
        Step(
            eq(
                Partial(Ek, W),
                OrderedSum(Partial(Ek, c(k)) * Partial(c(k), c(t)) * Partial(c(t), W, True), sp.Tuple(t, 1, k)),
            ),
            r"\ldots and $\sigma' = \sigma(1 - \sigma)$ gives the second form. The gradient of $E_k$ sums over the step $t$ at which $W$ enters (Section~\ref{sec:rnn-bptt}).",
        )
    )
    steps.append(
        Step(
            eq(Partial(c(k), c(t)), OrderedProduct(Diag(text(r"c_j \odot (1 - c_j)")) * Wrec, sp.Tuple(j, t + 1, k))),
            r"The product of Jacobians in the seed's notation.",
        )
    )
    gs = gamma("sigmoid")
    steps.append(
        Step(
            le(Norm(Partial(c(k), c(t))), (gs * Norm(Wrec)) ** (k - t)),
            r"$\sup\sigma' = 1/4$ (Section~\ref{sec:activation-bounds}) and Section~\ref{sec:norm-bound}.",
        )
    )
    steps.append(
        Step(
            sp.Lt(Norm(Wrec), 1 / gs),
            r"Sufficient for the terms with $k - t$ large to vanish: the threshold is $4$ (the seed's \emph{tanh} argument would give $1$, but the model uses the sigmoid); $\|W_{rec}\|_2 > 4$ is necessary for them to explode.",
        )
    )
    return Derivation(
        name="seed004_sigmoid",
        title=r"Seed 004: the sigmoid RNN \texorpdfstring{$c(t) = \sigma(W[c(t-1), x(t)])$}{c(t) = sigmoid(W[c(t-1), x(t)])}",
        intro=(
            r"Seed document 004 derives vanishing gradients for a sigmoid RNN that concatenates state "
            r"and input. We redo its derivation; the check evaluates the gradient of $E_k = g^\top c_k$ "
            r"by the formula (40-digit arithmetic) and compares it with the numpy BPTT of the "
            r"equivalent \texttt{gradtheory.RNN}."
        ),
        steps=tuple(steps),
        result={"jacobian": J, "formula": formula, "threshold": 1 / gs},
    )
