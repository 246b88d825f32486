r"""Derivative bounds :math:`\gamma = \sup_a |\phi'(a)|`, derived by SymPy, not typed in.

For each activation SymPy differentiates :math:`\phi` twice, solves :math:`\phi''(a) = 0` on each
piece of its domain, evaluates :math:`|\phi'|` at the critical points, takes the limits at the ends
of each piece (:math:`\pm\infty` and the kinks), and the supremum is the largest of these values.
"""

from __future__ import annotations

import sympy as sp

from ._core import Derivation, Step, text

__all__ = ["derive", "gamma", "phi", "phi_prime", "ACTIVATION_NAMES"]

ACTIVATION_NAMES = ("tanh", "sigmoid", "relu", "identity")
a = sp.Symbol("a", real=True)


def phi(name: str, arg: sp.Expr = a) -> sp.Expr:
    """The activation as a SymPy expression of ``arg`` (relu with torch's phi'(0) = 0 built in)."""
    if name == "tanh":
        return sp.tanh(arg)
    if name == "sigmoid":
        return 1 / (1 + sp.exp(-arg))
    if name == "relu":
        # Piecewise with the strict inequality first: d/da gives 1 for a > 0 and 0 at a = 0,
        # torch's convention (threshold_backward passes the gradient only where a > 0).
        return sp.Piecewise((arg, arg > 0), (0, True))
    if name == "identity":
        return arg
    raise ValueError(f"activation={name!r} is unknown; expected one of {list(ACTIVATION_NAMES)}")


def phi_prime(name: str, arg: sp.Expr = a) -> sp.Expr:
    """:math:`\\phi'` derived by SymPy (``diff``), evaluated at ``arg``."""
    return sp.diff(phi(name, a), a).subs(a, arg)


def _pieces(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Set]]:
    """(expression, interval) pieces of a Piecewise in ``a``; a single piece on R otherwise."""
    if not isinstance(expr, sp.Piecewise):
        return [(expr, sp.Reals)]
    out, covered = [], sp.EmptySet
    for e, cond in expr.args:
        region = (sp.Reals if cond == sp.true else cond.as_set()) - covered
        covered = covered | region
        if region != sp.EmptySet:
            out.append((e, region))
    return out


def _sup_abs_on(expr: sp.Expr, region: sp.Set) -> tuple[sp.Expr, list]:
    """sup |expr| over an interval: critical points of expr (solve expr' = 0), limits at the ends."""
    candidates = []
    d = sp.diff(expr, a)
    if sp.simplify(d) == 0:
        # constant on the piece: its value (the piece may be a single point)
        candidates.append(sp.Abs(sp.simplify(expr)))
        return sp.Max(*candidates), candidates
    crit = sp.solveset(sp.Eq(d, 0), a, domain=region)
    if not isinstance(crit, sp.FiniteSet):
        raise NotImplementedError(f"critical points of {expr} are not a finite set: {crit}")
    for c in crit:
        candidates.append(sp.Abs(sp.simplify(expr.subs(a, c))))
    for end, direction in ((region.inf, "+"), (region.sup, "-")):
        lim = sp.limit(expr, a, end, direction) if end.is_finite else sp.limit(expr, a, end)
        candidates.append(sp.Abs(lim))
        _LIMITS[(expr, end)] = lim
    return sp.Max(*candidates), candidates


def _derive_gamma(name: str) -> tuple[sp.Expr, dict]:
    d1 = phi_prime(name)
    found = {"phi": phi(name), "phi_prime": d1, "phi_second": sp.diff(d1, a), "candidates": []}
    sups = []
    for piece, region in _pieces(d1):
        s, cands = _sup_abs_on(piece, region)
        sups.append(s)
        found["candidates"].extend(cands)
    return sp.simplify(sp.Max(*sups)), found


_CACHE: dict[str, tuple[sp.Expr, dict]] = {}
_LIMITS: dict = {}  # (phi', end) -> limit, recorded while deriving gamma and shown in the document


def _gamma_and_work(name: str) -> tuple[sp.Expr, dict]:
    if name not in ACTIVATION_NAMES:
        raise ValueError(f"name={name!r} is unknown; expected one of {list(ACTIVATION_NAMES)}")
    if name not in _CACHE:
        _CACHE[name] = _derive_gamma(name)
    return _CACHE[name]


def gamma(name: str) -> sp.Expr:
    r"""The derived :math:`\gamma = \sup_a |\phi'(a)|` (exact: tanh 1, sigmoid 1/4, relu 1, identity 1).

    Parameters
    ----------
    name : str
        An activation: ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"identity"``.

    Returns
    -------
    sympy.Expr
        The exact supremum, solved by SymPy (not typed in).

    Raises
    ------
    ValueError
        ``name`` is not a known activation.
    """
    return _gamma_and_work(name)[0]


def derive() -> Derivation:
    steps = []
    for name in ACTIVATION_NAMES:
        val, work = _gamma_and_work(name)
        d1, d2 = work["phi_prime"], work["phi_second"]
        label = r"\phi_{\mathrm{%s}}" % name
        steps.append(Step(sp.Eq(text(label + "(a)"), work["phi"]), f"Definition of {name}."))
        if name == "tanh":
            steps.append(
                Step(
                    sp.Eq(text(label + "'(a)"), d1),
                    r"Differentiate (SymPy); note $\phi' = 1 - \phi^2$ since $\tanh' = 1 - \tanh^2$.",
                )
            )
        elif name == "sigmoid":
            s = phi("sigmoid")
            assert sp.simplify(d1 - s * (1 - s)) == 0
            steps.append(
                Step(
                    sp.Eq(text(label + "'(a)"), d1),
                    r"Differentiate (SymPy); checked identity $\sigma' = \sigma(1-\sigma)$.",
                    chain=(sp.Symbol(r"\sigma(a)") * (1 - sp.Symbol(r"\sigma(a)")),),
                )
            )
        else:
            steps.append(
                Step(
                    sp.Eq(text(label + "'(a)"), d1),
                    "Differentiate (SymPy)"
                    + (r"; at the kink $a=0$ we use $\phi'(0)=0$ as torch does." if name == "relu" else "."),
                )
            )
        if name in ("tanh", "sigmoid"):
            d2s = sp.factor(sp.simplify(d2))
            crit = sp.solveset(sp.Eq(d2s, 0), a, domain=sp.Reals)
            assert isinstance(crit, sp.FiniteSet) and len(crit) == 1, crit
            c0 = list(crit)[0]
            steps.append(
                Step(
                    sp.Eq(text(label + "''(a)"), d2s),
                    r"Differentiate again; SymPy \texttt{solveset} finds the only real zero of $\phi''$ below.",
                )
            )
            steps.append(Step(sp.Eq(sp.Symbol("a^{*}"), c0), r"The unique real solution of $\phi''(a) = 0$."))
            steps.append(
                Step(
                    sp.Eq(text(r"%s'(a^{*})" % label), sp.simplify(d1.subs(a, c0))),
                    r"Evaluate $\phi'$ at the critical point.",
                )
            )
            lo, hi = _LIMITS[(d1, -sp.oo)], _LIMITS[(d1, sp.oo)]
            assert lo == hi
            steps.append(
                Step(
                    sp.Eq(text(r"\lim_{a\to-\infty} %s'(a)" % label), lo, evaluate=False),
                    r"Limits at both ends of the domain (SymPy \texttt{limit}); they are smaller, so the critical value is the supremum.",
                    chain=(text(r"\lim_{a\to+\infty} %s'(a)" % label),),
                )
            )
        elif name == "relu":
            vals = sorted(set(work["candidates"]), key=sp.default_sort_key)
            steps.append(
                Step(
                    sp.Eq(
                        text(r"\{|%s'(a)| : a \in \mathbb{R}\}" % label),
                        text(r"\{%s\}" % ", ".join(sp.latex(v) for v in vals)),
                    ),
                    r"Each piece is constant ($\phi''=0$ on $a<0$ and on $a>0$), so $|\phi'|$ takes only these values, the kink included.",
                )
            )
        else:
            steps.append(Step(sp.Eq(text(label + "''(a)"), d2), r"$\phi'' \equiv 0$: $\phi'$ is constant."))
        steps.append(
            Step(
                sp.Eq(sp.Symbol(r"\gamma_{\mathrm{%s}}" % name), val),
                r"$\gamma = \sup_a |\phi'(a)|$: the largest candidate value.",
            )
        )
    result = {name: gamma(name) for name in ACTIVATION_NAMES}
    return Derivation(
        name="activation_bounds",
        title="Activation derivative bounds",
        intro=(
            r"The bound $\gamma = \sup_a |\phi'(a)|$ controls how much one step of the Elman "
            r"recursion can stretch a gradient (Section~\ref{sec:norm-bound}). "
            r"SymPy derives it: differentiate, solve $\phi''=0$ on each smooth piece, evaluate "
            r"$|\phi'|$ at the critical points, and take the limits at the ends of each piece."
        ),
        steps=tuple(steps),
        result=result,
        conclusion=(
            r"Hence $\gamma_{\tanh} = 1$, $\gamma_{\sigma} = \tfrac14$, "
            r"$\gamma_{\mathrm{relu}} = 1$, $\gamma_{\mathrm{id}} = 1$; these exact values are "
            r"checked against \texttt{gradtheory.models.activations.ACTIVATIONS}."
        ),
    )
