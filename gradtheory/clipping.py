r"""Gradient clipping by global norm and by value, with ``torch.nn.utils`` semantics, without mutation.

Norm clipping (Pascanu, Mikolov & Bengio 2013, Algorithm 1, in torch's form): with the global
p-norm :math:`N = \|(\|g_1\|_p, \dots, \|g_m\|_p)\|_p` (the p-norm of all gradients concatenated),
every gradient is multiplied by

.. math:: c = \min\Big(\frac{\theta}{N + 10^{-6}},\ 1\Big),

so the clipped global norm is exactly :math:`c N = \min(N, \theta N / (N + 10^{-6}))`, which is
:math:`N` when :math:`N \le \theta - 10^{-6}` and slightly below :math:`\theta` (by
:math:`\theta \cdot 10^{-6}/(N + 10^{-6})`) otherwise; the direction is unchanged (c > 0).
Value clipping clamps each entry to :math:`[-v, v]` and in general changes the direction.

Differences from torch, all deliberate and loud: inputs are never modified (new float64 arrays
are returned, in the same container type); ``norm_type`` must be a norm (p >= 1 or inf: torch
silently accepts 0, negative and fractional p, which are not norms); ``max_norm`` and
``clip_value`` must be >= 0 (torch would flip the gradient's sign). Non-finite gradients follow
torch: the coefficient is computed from the non-finite norm (giving 0 or NaN entries), or
``error_if_nonfinite=True`` raises :class:`RuntimeError` as torch does.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from ._validation import check_bool

__all__ = ["clip_grad_norm", "clip_grad_value", "total_norm", "TORCH_CLIP_EPS"]

TORCH_CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6)

G = TypeVar("G")


def _as_grad(value: Any, name: str) -> np.ndarray:
    """A new float64 copy of one gradient; non-finite entries are allowed (torch semantics)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not isinstance(value, (np.ndarray, numbers.Real)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a float array, got {type(value).__name__}")
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must have a floating dtype, got dtype {arr.dtype}")
    return np.array(arr, dtype=np.float64)


def _unpack(grads: Any) -> tuple[str, list[str] | None, list[np.ndarray]]:
    """Return (kind, keys, arrays) where kind in {'array', 'dict', 'list', 'tuple'}."""
    if isinstance(grads, np.ndarray) or (hasattr(grads, "detach") and hasattr(grads, "cpu")):
        return "array", None, [_as_grad(grads, "grads")]
    if isinstance(grads, Mapping):
        keys = list(grads)
        return "dict", keys, [_as_grad(grads[k], f"grads[{k!r}]") for k in keys]
    if isinstance(grads, (str, bytes)) or not isinstance(grads, Sequence):
        raise TypeError(
            f"grads must be an array, a sequence of arrays or a dict name -> array, got {type(grads).__name__}"
        )
    kind = "tuple" if isinstance(grads, tuple) else "list"
    return kind, None, [_as_grad(g, f"grads[{i}]") for i, g in enumerate(grads)]


def _pack(kind: str, keys: list[str] | None, arrays: list[np.ndarray]) -> Any:
    if kind == "array":
        return arrays[0]
    if kind == "dict":
        return dict(zip(keys, arrays))
    return tuple(arrays) if kind == "tuple" else arrays


def _norm_type(norm_type: Any) -> float:
    if isinstance(norm_type, str) and norm_type == "inf":
        return math.inf
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a float >= 1 or inf, got {type(norm_type).__name__} {norm_type!r}")
    p = float(norm_type)
    if not (p >= 1.0):  # also rejects NaN
        raise ValueError(
            f"norm_type must be >= 1 or inf (a norm), got {norm_type!r} "
            "(torch accepts 0, negative and fractional p, which are not norms)"
        )
    return p


def _vector_norm(a: np.ndarray, p: float) -> float:
    a = np.abs(a.ravel())
    if a.size == 1:  # torch returns |x| for one entry (no underflow of x**2 for tiny x)
        return float(a[0])
    if p == math.inf:
        return float(np.max(a))
    if p == 1.0:
        return float(np.sum(a))
    if p == 2.0:
        return float(np.sqrt(np.sum(a * a)))
    return float(np.sum(a**p) ** (1.0 / p))


def total_norm(grads: Any, norm_type: float = 2.0) -> float:
    r"""Global p-norm of all gradients concatenated, computed as torch does: the p-norm of the
    per-array p-norms (equal in exact arithmetic). 0 for an empty container."""
    p = _norm_type(norm_type)
    _, _, arrays = _unpack(grads)
    return _total(arrays, p, "grads")


def _total(arrays: list[np.ndarray], p: float, name: str) -> float:
    if not arrays:
        return 0.0
    if p == math.inf:
        for i, a in enumerate(arrays):
            if a.size == 0:
                raise ValueError(
                    f"{name}[{i}] is empty: its inf-norm (a max over no entries) is undefined (torch raises too)"
                )
    with np.errstate(over="ignore", invalid="ignore"):  # inf / NaN norms follow torch, silently
        norms = np.array([_vector_norm(a, p) for a in arrays])
        return _vector_norm(norms, p)


def _threshold(value: Any, name: str, why: str = "") -> float:
    """A real threshold >= 0 (NaN rejected), as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    out = float(value)
    if not (out >= 0.0):
        raise ValueError(f"{name} must be >= 0, got {value!r}{why}")
    return out


def clip_grad_norm(
    grads: G,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> tuple[G, float]:
    r"""Scale all gradients by :math:`\min(\theta/(N + 10^{-6}), 1)`; return ``(clipped, N)``.

    Torch's ``clip_grad_norm_`` without mutation: the result is bitwise what torch computes.

    Parameters
    ----------
    grads : array, sequence of arrays, or dict name -> array
        The gradients (numpy arrays or torch tensors of a floating dtype, any shapes); a list,
        tuple or dict is clipped as one vector (the global norm).
    max_norm : float
        The threshold :math:`\theta \ge 0`.
    norm_type : float or "inf", default 2.0
        The order p >= 1 of the norm (``inf`` or ``"inf"`` for the max norm).
    error_if_nonfinite : bool, default False
        Raise when the global norm is NaN or infinite (as torch); otherwise the coefficient is
        applied anyway (N = inf gives zeros, and NaN where an entry was infinite).

    Returns
    -------
    clipped : same container type as ``grads``
        New float64 arrays with the same shapes (and keys); the inputs are never modified.
    N : float
        The global p-norm before clipping (torch's return value).

    Raises
    ------
    TypeError
        ``grads`` is not an array, sequence or dict of floating arrays, or a threshold or
        ``norm_type`` is not a real number.
    ValueError
        ``max_norm < 0`` or NaN, ``norm_type < 1`` (not a norm), or an empty array with the inf-norm.
    RuntimeError
        ``error_if_nonfinite=True`` and N is not finite.
    """
    p = _norm_type(norm_type)
    check_bool(error_if_nonfinite, "error_if_nonfinite")
    theta = _threshold(max_norm, "max_norm", " (a negative threshold would flip the gradient)")
    kind, keys, arrays = _unpack(grads)
    N = _total(arrays, p, "grads")
    if error_if_nonfinite and not math.isfinite(N):
        raise RuntimeError(
            f"The total norm of order {p} for gradients is non-finite ({N}), so it cannot be clipped. "
            "To scale the gradients by the non-finite norm anyway, set error_if_nonfinite=False"
        )
    # torch evaluates max_norm / tensor as reciprocal(tensor) * max_norm: two roundings, kept
    # so that the result is bitwise torch's.
    coef = (1.0 / (N + TORCH_CLIP_EPS)) * theta
    coef = min(coef, 1.0) if not math.isnan(coef) else coef  # torch.clamp(max=1) propagates NaN
    with np.errstate(invalid="ignore"):  # inf * 0 = NaN, as torch
        clipped = [a * coef for a in arrays]
    return _pack(kind, keys, clipped), N


def clip_grad_value(grads: G, clip_value: float) -> G:
    r"""Clamp every entry to :math:`[-v, v]`, ``v = clip_value >= 0``; same container, new arrays.

    Torch's ``clip_grad_value_`` without mutation. NaN entries stay NaN (as ``torch.clamp``).

    Parameters
    ----------
    grads : array, sequence of arrays, or dict name -> array
        The gradients (numpy arrays or torch tensors of a floating dtype, any shapes).
    clip_value : float
        The bound :math:`v \ge 0`.

    Returns
    -------
    same container type as ``grads``
        New float64 arrays with the same shapes (and keys).

    Raises
    ------
    TypeError
        ``grads`` is not an array, sequence or dict of floating arrays, or ``clip_value`` is not
        a real number.
    ValueError
        ``clip_value < 0`` or NaN.
    """
    v = _threshold(clip_value, "clip_value")
    kind, keys, arrays = _unpack(grads)
    return _pack(kind, keys, [np.clip(a, -v, v) for a in arrays])
