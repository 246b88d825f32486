r"""The :class:`Derivation` type, notation objects that print as the maths reads, and LaTeX output.

A derivation is an ordered list of :class:`Step` s, each a SymPy equation, inequality or
expression with a one-line justification, and a final result. :meth:`Derivation.to_latex`
renders it as one ``\section`` with one numbered equation per step; long right-hand sides are
broken at their top-level sums into ``split`` lines so that nothing runs off the page.

The notation objects (:class:`Partial`, :class:`OrderedProduct`, :class:`Diag`, :class:`Norm`,
...) are inert :class:`sympy.Expr` subclasses: they carry the structure of statements about
general ``n`` and ``T`` that SymPy cannot evaluate (ordered matrix products over a symbolic range),
and print to LaTeX. Everything that *can* be computed is computed by SymPy in the topic modules
and checked there (``_assert_zero``) and again numerically in ``tests/symbolic``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter

__all__ = ["Step", "Derivation"]


# --------------------------------------------------------------------------------------------
# Notation objects


class _Notation(sp.Expr):
    """Base for inert notation: not commutative with matrices, printed by ``_latex``."""

    is_commutative = False

    def _eval_subs(self, old, new):  # keep the notation inert under subs of unrelated symbols
        return None


class Partial(_Notation):
    r"""The (total) derivative :math:`\partial a / \partial b` as notation (``plus``: immediate)."""

    def __new__(cls, a: Any, b: Any, plus: bool = False):
        return sp.Expr.__new__(cls, sp.sympify(a), sp.sympify(b), sp.true if plus else sp.false)

    def _latex(self, printer: LatexPrinter) -> str:
        a, b = self.args[0], self.args[1]
        plus = self.args[2] == sp.true
        d = r"\partial^{+}" if plus else r"\partial "
        return r"\frac{%s %s}{\partial %s}" % (d, printer._print(a), printer._print(b))


class OrderedProduct(_Notation):
    r"""Ordered matrix product :math:`\prod_{j=lo}^{hi} A_j` with the *largest* index on the left."""

    def _latex(self, printer: LatexPrinter) -> str:
        term, (j, lo, hi) = self.args[0], self.args[1]
        return r"\prod_{%s=%s}^{%s} \left(%s\right)" % (
            printer._print(j),
            printer._print(lo),
            printer._print(hi),
            printer._print(term),
        )


class OrderedSum(_Notation):
    r"""A sum :math:`\sum_{j=lo}^{hi} A_j` of (non-commuting) matrix terms."""

    def _latex(self, printer: LatexPrinter) -> str:
        term, (j, lo, hi) = self.args[0], self.args[1]
        return r"\sum_{%s=%s}^{%s} %s" % (
            printer._print(j),
            printer._print(lo),
            printer._print(hi),
            printer._print(term),
        )


class Diag(_Notation):
    r""":math:`\operatorname{diag}(v)`."""

    def _latex(self, printer: LatexPrinter) -> str:
        return r"\operatorname{diag}\left(%s\right)" % printer._print(self.args[0])


class Norm(sp.Expr):
    r""":math:`\|A\|_p` (``p = 2`` by default: the spectral norm for matrices)."""

    is_commutative = True
    is_nonnegative = True

    def _latex(self, printer: LatexPrinter) -> str:
        p = self.args[1] if len(self.args) > 1 else sp.Integer(2)
        return r"\left\|%s\right\|_{%s}" % (printer._print(self.args[0]), printer._print(p))


class Named(sp.Expr):
    r"""A scalar named by LaTeX text (e.g. :math:`\rho(W)`, :math:`\sigma_{\min}(J)`)."""

    is_commutative = True

    def _latex(self, printer: LatexPrinter) -> str:
        return r"%s\left(%s\right)" % (str(self.args[0]), printer._print(self.args[1]))


class Hadamard(_Notation):
    r"""Elementwise product :math:`a \odot b \odot \dots`."""

    def _latex(self, printer: LatexPrinter) -> str:
        return r" \odot ".join(_paren(printer, a) for a in self.args)


class Text(_Notation):
    r"""Literal LaTeX (used for the left-hand side of definitional steps only)."""

    def _latex(self, printer: LatexPrinter) -> str:
        return str(self.args[0])


class Limit_(sp.Expr):
    r"""Displayed limit :math:`\lim_{m\to\infty} f(m)` (kept unevaluated on purpose)."""

    is_commutative = True

    def _latex(self, printer: LatexPrinter) -> str:
        f, m, to = self.args
        return r"\lim_{%s \to %s} %s" % (printer._print(m), printer._print(to), printer._print(f))


def _paren(printer: LatexPrinter, a: Any) -> str:
    s = printer._print(a)
    if isinstance(a, (sp.Add, sp.MatAdd)):
        return r"\left(%s\right)" % s
    return s


def eq(lhs: Any, rhs: Any) -> sp.Equality:
    """An unevaluated equation (it displays a step; the identity itself is checked separately)."""
    return sp.Eq(lhs, rhs, evaluate=False)


def le(lhs: Any, rhs: Any) -> sp.LessThan:
    """An unevaluated inequality ``lhs <= rhs``."""
    return sp.Le(lhs, rhs, evaluate=False)


def M(name: str) -> sp.Symbol:
    """A matrix or vector named ``name`` (a non-commutative symbol: products keep their order)."""
    return sp.Symbol(name, commutative=False)


def text(s: str) -> Text:
    return Text(sp.Symbol(s))


def named(latex: str, arg: Any) -> Named:
    return Named(sp.Symbol(latex), sp.sympify(arg))


# --------------------------------------------------------------------------------------------
# Steps and derivations

_PRINT_SETTINGS = dict(mat_delim="(", mat_str="matrix")
_MAX_LINE = 95  # characters of LaTeX source per displayed line, measured on the page at 10pt


def latex(expr: Any) -> str:
    """Deterministic LaTeX for an expression (SymPy orders terms canonically)."""
    return sp.latex(expr, **_PRINT_SETTINGS)


def _visible_len(s: str) -> int:
    """A rough width of rendered LaTeX: source length without control words and braces."""
    import re

    s = re.sub(r"\\(left|right|operatorname|mathrm|frac|partial|cdot|odot|limits)", "", s)
    s = re.sub(r"[{}\\]", "", s)
    return len(s)


def _width(expr: Any) -> int:
    """Approximate rendered width of an expression: matrices by their widest entry per column."""
    if isinstance(expr, sp.MatrixBase):
        return 4 + sum(max(_width(expr[r, c]) for r in range(expr.rows)) + 2 for c in range(expr.cols))
    return _visible_len(latex(expr))


def _terms(expr: Any) -> list:
    if isinstance(expr, (sp.Add, sp.MatAdd)):
        return list(sp.Add.make_args(expr) if isinstance(expr, sp.Add) else expr.args)
    return [expr]


def _relation_symbol(expr: Any) -> str:
    return {
        sp.Equality: "=",
        sp.LessThan: r"\leq",
        sp.StrictLessThan: "<",
        sp.GreaterThan: r"\geq",
        sp.StrictGreaterThan: ">",
        sp.Unequality: r"\neq",
    }[type(expr)]


def _sum_lines(rhs: Any, room: int) -> list[str]:
    """The rhs as one or more lines of LaTeX, broken between the terms of its top-level sum."""
    if _width(rhs) <= room:
        return [latex(rhs)]
    if isinstance(rhs, sp.MatrixBase) and rhs.cols > 1:
        return [r"\Big(" + latex(rhs[:, c]) + (r",\;" if c < rhs.cols - 1 else r"\Big)") for c in range(rhs.cols)]
    terms = rhs.as_ordered_terms() if isinstance(rhs, sp.Add) else [rhs]
    lines: list[str] = []
    current = ""
    for k, term in enumerate(terms):
        t = latex(term)
        sign = ""
        if k > 0:
            if t.startswith("-"):
                sign, t = "- ", t[1:].lstrip()
            else:
                sign = "+ "
        piece = f"{sign}{t}"
        if current and _visible_len(current + piece) > room:
            lines.append(current)
            current = piece
        else:
            current = f"{current} {piece}" if current else piece
    lines.append(current)
    return lines


def _display(lhs: Any, parts: list[tuple[str, Any]]) -> str:
    """``lhs rel rhs rel rhs ...`` on one line, or aligned over several (``split``)."""
    lhs_tex = latex(lhs)
    total = _visible_len(lhs_tex) + sum(_width(r) + 2 for _, r in parts)
    if total <= _MAX_LINE:
        return " ".join([lhs_tex] + [f"{rel} {latex(r)}" for rel, r in parts])
    room = _MAX_LINE - min(_visible_len(lhs_tex), 40) - 6
    rows: list[str] = []
    for k, (rel, r) in enumerate(parts):
        lines = _sum_lines(r, room)
        head = (lhs_tex + " ") if k == 0 else ""
        rows.append(f"{head}&{rel} {lines[0]}")
        rows.extend(r"&\quad " + line for line in lines[1:])
    return r"\begin{split}" + "\n" + (r" \\" + "\n").join(rows) + "\n" + r"\end{split}"


@dataclass(frozen=True)
class Step:
    """One step: a SymPy relation (or expression) and a one-line justification.

    ``chain``: further right-hand sides, displayed as ``lhs = rhs = chain[0] = ...`` (each
    equal to the previous; only for display).
    """

    expr: Any
    justification: str
    chain: tuple = field(default=())

    def to_latex(self) -> str:
        e = self.expr
        if not isinstance(e, sp.core.relational.Relational):
            return latex(e)
        parts = [(_relation_symbol(e), e.rhs)]
        for extra in self.chain:
            parts.append(extra if isinstance(extra, tuple) else ("=", extra))
        return _display(e.lhs, parts)


@dataclass(frozen=True)
class Derivation:
    """An ordered derivation: name (file key), title, introduction, steps, final result.

    ``result`` is the derivation's machine-usable outcome (a SymPy object, or a dict of them)
    that the tests lambdify and compare with the numeric models.
    """

    name: str
    title: str
    intro: str
    steps: tuple[Step, ...]
    result: Any
    conclusion: str = ""
    source: str = ""  # the module that derives it (default gradtheory/symbolic/<name>.py)

    def to_latex(self) -> str:
        """The derivation as a LaTeX ``\\section`` (deterministic text, no trailing spaces)."""
        source = self.source or f"gradtheory/symbolic/{self.name}.py"
        out = [
            f"% Generated by `gradtheory derive` from {source}. Do not edit.",
            r"\section{%s}\label{sec:%s}" % (self.title, self.name.replace("_", "-")),
            "",
            self.intro.strip(),
            "",
        ]
        for k, step in enumerate(self.steps):
            out.append(r"\noindent\textbf{Step %d.} %s" % (k + 1, step.justification.strip()))
            out.append(r"\begin{equation}\label{eq:%s-%d}" % (self.name.replace("_", "-"), k + 1))
            out.append(step.to_latex())
            out.append(r"\end{equation}")
            out.append("")
        if self.conclusion:
            out.append(self.conclusion.strip())
            out.append("")
        return "\n".join(line.rstrip() for line in out) + "\n"


def assert_zero(expr: Any, what: str) -> None:
    """Fail loudly if a SymPy identity claimed by a derivation is not zero.

    Tries ``expand`` first (enough for the polynomial-in-derivatives identities here), then
    ``simplify``.
    """
    items = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    for e in items:
        e = sp.sympify(e).doit()
        if sp.expand(e) != 0 and sp.simplify(e) != 0:
            raise AssertionError(f"derivation step failed: {what} does not simplify to 0")


class sig(sp.Function):
    r"""The logistic function :math:`\sigma`, whose derivative SymPy writes as :math:`\sigma(1-\sigma)`.

    Keeping :math:`\sigma` opaque keeps gate Jacobians polynomial in the gate values, so identities
    between them are checked by ``expand`` instead of a slow ``simplify`` of exponentials.
    (``activation_bounds`` differentiates the explicit :math:`1/(1+e^{-a})` and checks
    :math:`\sigma' = \sigma(1-\sigma)`.)
    """

    def fdiff(self, argindex: int = 1):
        return sig(self.args[0]) * (1 - sig(self.args[0]))

    def _latex(self, printer, exp=None):
        s = r"\sigma\left(%s\right)" % printer._print(self.args[0])
        return s if exp is None else f"{s}^{{{exp}}}"


def sig_numpy(a):
    """numpy implementation of :class:`sig` for lambdify."""
    import numpy as np

    return 1.0 / (1.0 + np.exp(-a))


LAMBDIFY_MODULES = [{"sig": sig_numpy}, "numpy"]


def assert_expand_zero(expr: Any, what: str) -> None:
    """Like :func:`assert_zero` for polynomial identities (fast: ``expand`` only)."""
    items = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    if any(sp.expand(e) != 0 for e in items):
        raise AssertionError(f"derivation step failed: {what} does not expand to 0")
