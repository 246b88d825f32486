r"""What a derivation is written with, for derivations outside this package (a cell's own file).

:class:`Derivation` and :class:`Step`; notation that prints as the maths reads (:class:`Partial`,
:class:`OrderedProduct`, :class:`Diag`, :class:`Hadamard`, :class:`Norm`, :func:`M`, :func:`text`,
:func:`eq`, :func:`le`, :func:`named`); the opaque logistic :class:`sig`; the checks
:func:`assert_zero` and :func:`assert_expand_zero`; :func:`cell_equations` (a cell's own scalar
equations on SymPy matrices) and :func:`phi` (an activation as a SymPy expression).
"""

from __future__ import annotations

from ._cells import cell_equations, sympy_ops
from ._core import (
    LAMBDIFY_MODULES,
    Derivation,
    Diag,
    Hadamard,
    M,
    Norm,
    OrderedProduct,
    OrderedSum,
    Partial,
    Step,
    assert_expand_zero,
    assert_zero,
    eq,
    le,
    named,
    sig,
    text,
)
from .activation_bounds import phi, phi_prime

__all__ = [
    "LAMBDIFY_MODULES",
    "Derivation",
    "Diag",
    "Hadamard",
    "M",
    "Norm",
    "OrderedProduct",
    "OrderedSum",
    "Partial",
    "Step",
    "assert_expand_zero",
    "assert_zero",
    "cell_equations",
    "eq",
    "le",
    "named",
    "phi",
    "phi_prime",
    "sig",
    "sympy_ops",
    "text",
]
