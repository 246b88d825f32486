r"""Numeric helpers shared by the claim checks: small models from explicit matrices, products of
one-step Jacobians, an independent complex-step oracle for them, and the derivations of
``gradtheory.symbolic`` the checks substitute into.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from .. import RNN
from ..oracles import jacobian as _fd_jacobian
from ..symbolic import Derivation, derive, gamma


def rnn(
    W_hh: Any,
    W_ih: Any | None = None,
    nonlinearity: str = "tanh",
    b: Any | None = None,
    cls: type = RNN,
) -> Any:
    """A one-layer unidirectional RNN (or ResidualRNN) with the given matrices.

    ``W_ih`` defaults to the identity (input_size = hidden_size); ``b`` (if given) is bias_ih,
    with bias_hh = 0.
    """
    W_hh = np.asarray(W_hh, dtype=float)
    n = W_hh.shape[0]
    W_ih = np.eye(n) if W_ih is None else np.asarray(W_ih, dtype=float)
    params = {"weight_ih_l0": W_ih, "weight_hh_l0": W_hh}
    if b is not None:
        params["bias_ih_l0"] = np.asarray(b, dtype=float)
        params["bias_hh_l0"] = np.zeros(n)
    return cls(W_ih.shape[1], n, nonlinearity=nonlinearity, bias=b is not None, params=params)


def jacobian_products(model: Any, x: np.ndarray, h0: Any = None) -> np.ndarray:
    r"""Cumulative products :math:`P_t = J_t J_{t-1} \cdots J_1 = \partial s_t / \partial s_0`,
    shape (T+1, S, S) with ``P_0 = I``, from the model's one-step Jacobians (unbatched x)."""
    res = model.forward(x, h0)
    J = model.jacobians(res)
    S = J.shape[-1]
    P = [np.eye(S)]
    for t in range(J.shape[0]):
        P.append(J[t] @ P[-1])
    return np.stack(P)


def norms(P: np.ndarray) -> np.ndarray:
    """Spectral norms of a stack of matrices."""
    return np.array([np.linalg.norm(p, 2) for p in P])


def complex_step_state_jacobian(model: Any, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    r"""Independent oracle: :math:`\partial h_T / \partial h_0` of an RNN-family model by complex
    step through the model's forward (no Jacobian code involved); exact to round-off."""

    def f(h):
        return model.apply(model.params, x, h[None, :]).h_n[0]

    return _fd_jacobian(f, np.asarray(h0, dtype=float), method="complex")


def spectral_radius(W: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(W))))


def spectral_norm(W: np.ndarray) -> float:
    return float(np.linalg.norm(W, 2))


# ---------------------------------------------------------------------------------------------
# The derivations of gradtheory.symbolic the checks substitute into


def derivation(name: str) -> Derivation:
    """The SymPy :class:`Derivation` ``name`` (``gradtheory.symbolic.derive(name)``, cached there);
    running it re-checks every identity it asserts."""
    return derive(name)


def vanishes(expr: Any) -> bool:
    """A SymPy scalar or matrix is identically 0: ``expand`` first (enough for identities polynomial
    in derivatives and gate atoms), ``simplify`` only if that does not settle it."""
    items = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    for e in items:
        e = sp.sympify(e).doit()
        if sp.expand(e) != 0 and sp.simplify(e) != 0:
            return False
    return True


def symbolic_gamma(name: str) -> Any:
    """:math:`\\gamma = \\sup|\\phi'|` derived by SymPy (``gradtheory.symbolic.gamma``)."""
    return gamma(name)


__all__ = [
    "complex_step_state_jacobian",
    "derivation",
    "jacobian_products",
    "norms",
    "rnn",
    "spectral_norm",
    "spectral_radius",
    "symbolic_gamma",
    "vanishes",
]
