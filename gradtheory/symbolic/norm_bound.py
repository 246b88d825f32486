r"""The bound :math:`\|\partial h_t/\partial h_k\|_2 \le (\gamma\|W_{hh}\|_2)^{t-k}` and its consequences.

Pascanu, Mikolov and Bengio (2013), section 2.1: :math:`\|W_{hh}\|_2 < 1/\gamma` is sufficient for
the long-term terms to vanish, and :math:`\|W_{hh}\|_2 > 1/\gamma` is necessary for them to explode.
"""

from __future__ import annotations

import sympy as sp

from ._core import Derivation, Diag, Limit_, M, Norm, OrderedProduct, Partial, Step, eq, le, text
from .activation_bounds import ACTIVATION_NAMES, gamma

__all__ = ["derive", "bound", "threshold"]

t, k, j, m = sp.symbols("t k j m", integer=True, positive=True)
g_, s_ = sp.symbols("gamma s", positive=True)


def bound(gamma_value, spectral_norm, steps):
    r"""The derived bound :math:`(\gamma \|W\|_2)^{t-k}` as a SymPy expression."""
    return (sp.sympify(gamma_value) * sp.sympify(spectral_norm)) ** sp.sympify(steps)


def threshold(name: str) -> sp.Expr:
    r""":math:`1/\gamma`: below it vanishing is guaranteed; above it is necessary for exploding."""
    return 1 / gamma(name)


def derive() -> Derivation:
    W, h = M("W_{hh}"), (lambda i: M(f"h_{{{sp.latex(i)}}}"))
    D = lambda i: Diag(text(r"\phi'(a_{%s})" % sp.latex(i)))  # noqa: E731
    nW = Norm(W)
    steps = [
        Step(
            eq(Norm(Partial(h(t), h(k))), Norm(OrderedProduct(D(j) * W, sp.Tuple(j, k + 1, t)))),
            r"The product of one-step Jacobians (Section~\ref{sec:rnn-bptt}, Step 3).",
        ),
        Step(
            le(Norm(Partial(h(t), h(k))), OrderedProduct(Norm(D(j)) * nW, sp.Tuple(j, k + 1, t))),
            r"Submultiplicativity of the spectral norm, $\|AB\|_2 \le \|A\|_2\|B\|_2$, applied $2(t-k)$ times.",
        ),
        Step(
            eq(Norm(D(j)), text(r"\max_i |\phi'(a_{j,i})|")),
            r"The spectral norm of a diagonal matrix is its largest absolute entry.",
            chain=((r"\leq", sp.Symbol(r"\gamma")),),
        ),
        Step(
            le(Norm(Partial(h(t), h(k))), bound(sp.Symbol(r"\gamma"), nW, t - k)),
            r"Each of the $t-k$ factors is at most $\gamma\|W_{hh}\|_2$ ($\gamma$ from Section~\ref{sec:activation-bounds}).",
        ),
    ]
    eps = sp.Symbol(r"\varepsilon", positive=True)
    lim_v = sp.limit((1 / (1 + eps)) ** m, m, sp.oo)
    lim_e = sp.limit((1 + eps) ** m, m, sp.oo)
    assert lim_v == 0 and lim_e == sp.oo
    eta = sp.Symbol(r"\eta")
    steps.append(
        Step(
            eq(Limit_(eta**m, m, sp.oo), lim_v),
            r"For $\eta = \gamma\|W_{hh}\|_2 = 1/(1+\varepsilon) < 1$ SymPy's limit is $0$ ($m = t-k$); for $\eta = 1 + \varepsilon > 1$ it is $\infty$.",
        )
    )
    steps.append(
        Step(
            sp.Lt(nW, 1 / sp.Symbol(r"\gamma")),
            r"Sufficient condition for vanishing: then $\|\partial h_t/\partial h_k\|_2 \le \eta^{t-k} \to 0$ as $t - k \to \infty$, for every input sequence.",
        )
    )
    steps.append(
        Step(
            sp.Gt(nW, 1 / sp.Symbol(r"\gamma")),
            r"Necessary condition for exploding (contrapositive: if $\|W_{hh}\|_2 \le 1/\gamma$ then $\|\partial h_t/\partial h_k\|_2 \le 1$ for all $t, k$). It is not sufficient.",
        )
    )
    thresholds = {}
    for name in ACTIVATION_NAMES:
        thr = threshold(name)
        thresholds[name] = thr
        steps.append(
            Step(
                eq(sp.Symbol(r"\theta_{\mathrm{%s}}" % name), 1 / sp.Symbol(r"\gamma_{\mathrm{%s}}" % name)),
                f"Threshold $1/\\gamma$ on $\\|W_{{hh}}\\|_2$ for {name}.",
                chain=(thr,),
            )
        )
    return Derivation(
        name="norm_bound",
        title=r"The norm bound and the conditions for vanishing and exploding",
        intro=(
            r"Bounding each one-step Jacobian by its norm turns the product of "
            r"Section~\ref{sec:rnn-bptt} into a power. The check draws recurrent matrices of "
            r"prescribed spectral norm (dense, triangular, symmetric, orthogonal) and verifies "
            r"the bound on the products of the numeric model's Jacobians."
        ),
        steps=tuple(steps),
        result={"bound": bound(g_, s_, m), "symbols": (g_, s_, m), "thresholds": thresholds},
        conclusion=(
            r"The bound is attained with equality by $\phi = \mathrm{id}$ and $W_{hh}$ a multiple "
            r"of an orthogonal matrix; for the identity activation the spectral radius gives "
            r"the sharper asymptotic statement of Section~\ref{sec:linear-rnn}."
        ),
    )
