r"""Activations of the Elman cell, each beside its derivative and its bound :math:`\gamma`.

Every activation works on real float64 arrays and on complex arrays (so that the complex-step
oracle can run the same forward code), except ``relu``, which is not analytic.

The derivative is expressed through the pre-activation ``a`` *and* the output ``h = phi(a)``
because that is how BPTT evaluates it cheaply (``1 - h**2`` for tanh).

relu at its kink: ``phi'(0) = 0``. This is torch's choice (``threshold_backward`` passes the
gradient only where the output is strictly positive) and therefore ours; it is tested against
torch at inputs whose pre-activation is exactly zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["Activation", "ACTIVATIONS", "get_activation", "sigmoid"]


def sigmoid(a: np.ndarray) -> np.ndarray:
    r"""Logistic function :math:`1/(1+e^{-a})`, as torch computes it.

    Relative accuracy ~u for every real ``a``: for very negative ``a`` the exponential overflows
    to ``inf`` and the quotient is the correct limit 0 (the overflow is expected and silenced);
    no cancellation occurs. Works unchanged on complex input (complex step).
    """
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


def _tanh_grad(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    return 1.0 - h * h


def _sigmoid_grad(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    return h * (1.0 - h)


def _relu(a: np.ndarray) -> np.ndarray:
    if np.iscomplexobj(a):
        raise NotImplementedError("activation='relu' is not analytic: the complex step does not apply")
    return np.maximum(a, 0.0)


def _relu_grad(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    # phi'(0) = 0, as torch (gradient passes only where the output is > 0).
    return (a > 0).astype(a.dtype)


def _identity(a: np.ndarray) -> np.ndarray:
    return a


def _identity_grad(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    return np.ones_like(a)


@dataclass(frozen=True)
class Activation:
    r"""An activation :math:`\phi`, its derivative and :math:`\gamma = \sup_a |\phi'(a)|`.

    ``gamma`` is the exact value as a :class:`fractions.Fraction`; ``symbolic/`` derives it
    independently with SymPy and a test checks that the two agree.
    """

    name: str
    phi: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray, np.ndarray], np.ndarray]
    gamma: Fraction
    analytic: bool
    torch_name: str | None

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", np.tanh, _tanh_grad, Fraction(1), True, "tanh"),
    "sigmoid": Activation("sigmoid", sigmoid, _sigmoid_grad, Fraction(1, 4), True, None),
    "relu": Activation("relu", _relu, _relu_grad, Fraction(1), False, "relu"),
    "identity": Activation("identity", _identity, _identity_grad, Fraction(1), True, None),
}


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by name (``tanh``, ``sigmoid``, ``relu``, ``identity``)."""
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str):
        raise TypeError(f"nonlinearity must be a str, got {type(name).__name__} {name!r}")
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"nonlinearity={name!r} is unknown; expected one of {sorted(ACTIVATIONS)}") from None
