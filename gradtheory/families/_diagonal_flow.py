r"""Gradient flow and Lyapunov exponents for a model whose state Jacobian is diagonal.

The model supplies ``state_jacobian_diagonals(x, h0) -> d`` of shape (T, S) (real, or complex for
the LRU), :math:`J_t = \operatorname{diag}(d_t)`. Then, for :math:`L = \langle r, \operatorname{Re} s_T\rangle`,
:math:`\partial L/\partial s_k = \bigl(\prod_{t>k} \bar d_t\bigr) \odot r` (torch's convention for
a complex state), whose norm is :math:`\|(\prod_{t>k} |d_t|) \odot r\|`; the one-step factors
commute, so the exponents are the time averages :math:`\frac1T\sum_t \ln|d_{t,i}|`, in state order
(the QR method started from the identity keeps the basis diagonal, :math:`R_{ii} = |d_{t,i}|`
up to sign/phase). A complex entry is one complex dimension: as a real 2x2 block
(:math:`|d|` times a rotation) it carries that exponent twice.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._logspace import add as _add
from .._validation import as_float_array, check_positive_int

__all__ = ["gradient_flow", "lyapunov_exponent", "lyapunov_spectrum"]


def _diagonals(model: Any, x: Any, h0: Any) -> np.ndarray:
    x = as_float_array(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must be one sequence of shape (T, input_size), got shape {x.shape}")
    with np.errstate(divide="ignore"):
        return np.log(np.abs(model.state_jacobian_diagonals(x, h0)))  # (T, S); -inf for an exact zero


def gradient_flow(model: Any, x: Any, readout: Any = None, h0: Any = None) -> np.ndarray:
    """``ln||dL/ds_k||`` for k = 0..T, L = <readout, Re s_T> (readout default e_0), in log space."""
    logd = _diagonals(model, x, h0)
    T, S = logd.shape
    r = np.zeros(S) if readout is None else as_float_array(readout, "readout", shape=(S,))
    if readout is None:
        r[0] = 1.0
    out = np.full(T + 1, -np.inf)
    with np.errstate(divide="ignore"):
        acc = np.log(np.abs(r))  # per-entry log-magnitude of the gradient
    for k in range(T, -1, -1):
        finite = acc[np.isfinite(acc)]
        if finite.size:
            m = float(finite.max())
            out[k] = m + 0.5 * math.log(float(np.sum(np.exp(2.0 * (finite - m)))))
        if k > 0:
            acc = acc + logd[k - 1]
    return out


def lyapunov_exponent(model: Any, x: Any, h0: Any = None, *, v0: Any = None, **_: Any) -> float:
    """``(1/T) ln||J_T ... J_1 v0||`` for a unit v0 (default: the flow module's fixed generic vector)."""
    logd = _diagonals(model, x, h0)
    T, S = logd.shape
    v = np.random.default_rng(0).standard_normal(S) if v0 is None else as_float_array(v0, "v0", shape=(S,))
    nrm = float(np.linalg.norm(v))
    if nrm == 0.0:
        raise ValueError("v0 must be non-zero")
    with np.errstate(divide="ignore"):
        acc = np.log(np.abs(v / nrm)) + logd.sum(axis=0)
    finite = acc[np.isfinite(acc)]
    if not finite.size:
        return -math.inf
    m = float(finite.max())
    total, comp = _add(m, 0.0, 0.5 * math.log(float(np.sum(np.exp(2.0 * (finite - m))))))
    return (total + comp) / T


def lyapunov_spectrum(model: Any, x: Any, k: int | None = None, h0: Any = None, **_: Any) -> np.ndarray:
    """The k exponents ``(1/T) sum_t ln|d_{t,i}|`` in state order (i < k), shape (k,)."""
    logd = _diagonals(model, x, h0)
    T, S = logd.shape
    k = S if k is None else check_positive_int(k, "k")
    if k > S:
        raise ValueError(f"k must be <= the state dimension {S}, got {k}")
    return logd[:, :k].sum(axis=0) / T
