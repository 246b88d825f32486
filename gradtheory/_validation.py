"""Validation at the public boundary: one place, one style of message.

Every message names the argument, shows its value (or shape/dtype) and says what was expected.
Arrays are never modified: helpers return new float64 arrays (or pass complex arrays through
for the complex-step oracle, which calls the private kernels directly).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = [
    "as_float_array",
    "check_positive_int",
    "check_bool",
    "check_choice",
]


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_float_array(
    value: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    shape: tuple[int | None, ...] | None = None,
    allow_complex: bool = False,
    copy: bool = True,
) -> np.ndarray:
    """Return ``value`` as a float64 ndarray after checking type, dtype, finiteness and shape.

    Integer, boolean and object dtypes are rejected with :class:`TypeError` (silently casting an
    integer array hides bugs in the caller's data pipeline); NaN and Inf raise :class:`ValueError`.
    Torch tensors are accepted and copied. ``copy=False`` returns a float64 (complex128) input
    itself, for callers that only read it (a 488 MiB sequence need not be duplicated).
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value)
        except ValueError as exc:
            raise ValueError(f"{name} must be a rectangular array, got {_describe(value)}: {exc}") from None
    if not isinstance(value, (np.ndarray, numbers.Real)) or isinstance(value, bool):
        if not (allow_complex and isinstance(value, numbers.Complex)):
            raise TypeError(f"{name} must be a float array, got {type(value).__name__} {_describe(value)}")
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind == "c" and allow_complex:
        out = np.array(arr, dtype=np.complex128, copy=copy or None)
    elif kind == "f":
        out = np.array(arr, dtype=np.float64, copy=copy or None)
    else:
        raise TypeError(
            f"{name} must have a floating dtype (float64 expected), got dtype {arr.dtype}"
            + (" (integer data: convert explicitly with .astype(float))" if kind in "iub" else "")
        )
    # min/max propagate NaN and expose +-Inf without a full-size boolean temporary
    parts = (out.real, out.imag) if out.dtype.kind == "c" else (out,)
    if out.size and not all(np.isfinite(np.min(p)) and np.isfinite(np.max(p)) for p in parts):
        bad = np.argwhere(~np.isfinite(out))[0]
        raise ValueError(f"{name} must be finite, got {out[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if out.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions, got shape {out.shape}")
    if shape is not None:
        if out.ndim != len(shape) or any(s is not None and s != o for s, o in zip(shape, out.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got shape {out.shape}")
    return out


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{name}={value!r} is unknown; expected one of {list(choices)}")
    return value
