r"""Bounds on gradient flow through time: gamma, norms, the envelope (the theory only).

For a single-layer recurrent model with state :math:`s_t` (``h_t``, or the joint ``(h_t, c_t)``
for LSTM) and one-step Jacobians :math:`J_t = \partial s_t / \partial s_{t-1}` (``t = 1..T``,
``s_0`` the initial state), the chain rule gives, for the scalar loss
:math:`L = \langle r, h_T\rangle`,

.. math:: \frac{\partial L}{\partial s_k} = r^\top J_T J_{T-1} \cdots J_{k+1}.

For the Elman cell :math:`J_t = \operatorname{diag}(\phi'(a_t))\,W_{hh}`, so with
:math:`\gamma = \sup|\phi'|` (1 for tanh, relu, identity; 1/4 for sigmoid)

.. math:: \Big\|\frac{\partial h_t}{\partial h_k}\Big\|_2 \le (\gamma\,\|W_{hh}\|_2)^{t-k}

(Pascanu, Mikolov & Bengio 2013, section 2.1; ``proofs/``): :math:`\gamma\|W_{hh}\|_2 < 1` is
sufficient for vanishing. The spectral radius alone decides nothing at finite horizons: a
non-normal :math:`W_{hh}` with radius < 1 can make :math:`\|W^k\|` grow for many steps.

The measurements (``gradient_flow``, ``jacobian_norms``, ``lyapunov_exponent``,
``lyapunov_spectrum``) live in :mod:`gradtheory.flow` and are re-exported here for compatibility.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import as_float_array, check_choice, check_positive_int
from .models.activations import ACTIVATIONS

__all__ = [
    "gamma",
    "spectral_norm",
    "spectral_radius",
    "envelope",
]


# -- elementary quantities ---------------------------------------------------------------------
def gamma(activation: str) -> float:
    r"""Bound :math:`\gamma = \sup_a |\phi'(a)|` of an activation (``tanh``, ``sigmoid``, ``relu``, ``identity``)."""
    check_choice(activation, "activation", tuple(ACTIVATIONS))
    return float(ACTIVATIONS[activation].gamma)


def spectral_norm(W: Any) -> float:
    r"""Largest singular value :math:`\|W\|_2` of a matrix ``W`` (m, n)."""
    W = as_float_array(W, "W", ndim=2)
    if W.size == 0:
        raise ValueError(f"W must be non-empty, got shape {W.shape}")
    return float(np.linalg.norm(W, 2))


def spectral_radius(W: Any) -> float:
    r"""Largest eigenvalue modulus :math:`\rho(W)` of a square matrix ``W`` (n, n)."""
    W = as_float_array(W, "W", ndim=2)
    if W.shape[0] != W.shape[1] or W.size == 0:
        raise ValueError(f"W must be a non-empty square matrix, got shape {W.shape}")
    return float(np.max(np.abs(np.linalg.eigvals(W))))


def envelope(W_hh: Any, activation: str, steps: int) -> np.ndarray:
    r"""Theoretical envelope in log space: :math:`s \ln(\gamma \|W_{hh}\|_2)` for ``s = 0..steps``.

    Entry ``s`` bounds :math:`\ln\|\partial h_t/\partial h_{t-s}\|_2` for an Elman RNN with that
    recurrent matrix and activation (any trajectory). Shape ``(steps + 1,)``; entry 0 is 0, and
    a zero matrix gives ``-inf`` for ``s >= 1``.
    """
    g = gamma(activation)
    W = as_float_array(W_hh, "W_hh", ndim=2)
    if W.shape[0] != W.shape[1] or W.size == 0:
        raise ValueError(f"W_hh must be a non-empty square matrix, got shape {W.shape}")
    steps = check_positive_int(steps, "steps", minimum=0)
    rate = g * float(np.linalg.norm(W, 2))
    if rate == 0.0:
        out = np.full(steps + 1, -np.inf)
        out[0] = 0.0
        return out
    return np.arange(steps + 1, dtype=np.float64) * math.log(rate)


# Measurements moved to gradtheory.flow; importable from here for compatibility.
from .flow import gradient_flow, jacobian_norms, lyapunov_exponent, lyapunov_spectrum  # noqa: E402,F401
