"""Validation at the public boundary: one place, one style of message.

Every message names the argument, shows its value (or shape/dtype) and says what was expected.
Arrays are never modified: helpers return new float64 arrays (or pass complex arrays through
for the complex-step oracle, which calls the private kernels directly).
"""

from __future__ import annotations

import argparse
import numbers
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "time_major_sequence",
    "as_float_array",
    "check_positive_int",
    "check_bool",
    "check_choice",
    "check_real",
    "check_names",
    "int_at_least",
    "output_directory",
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


def check_real(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    positive: bool = False,
    finite: bool = True,
) -> float:
    """Return ``value`` as a float if it is a real number (int, float, numpy scalar, Fraction, ...;
    not a bool) within the bounds: ``>= minimum``, ``> 0`` when ``positive``, finite when ``finite``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {_describe(value)}")
    out = float(value)
    if finite and not np.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not out > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if minimum is not None and not out >= minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return out


def check_names(value: Any, name: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    """Return ``value`` (a non-empty sequence of names from ``choices``, or one name) as a tuple.

    A single string is one name, never split into its letters."""
    items = (value,) if isinstance(value, str) else value
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{name} must be a name or a sequence of names, got {type(value).__name__} {value!r}") from None
    if not items:
        raise ValueError(f"{name} must not be empty; expected names from {list(choices)}")
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold str names, got {type(item).__name__} {item!r}")
    unknown = [item for item in items if item not in choices]
    if unknown:
        raise ValueError(f"{name} has unknown entries {unknown}; expected names from {list(choices)}")
    return items


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum`` (argparse then reports a bad value as a
    usage error, exit status 2, naming the option)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


def output_directory(path: Any, name: str) -> Path:
    """Create ``path`` (and its parents) if needed and check that files can be written in it.

    Raises :class:`ValueError` naming the option when it cannot (an existing file, no permission,
    a read-only file system), so that a command line ends with a usage message, not a traceback.
    """
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError("permission denied")
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValueError(f"{name} {str(path)!r} is not a writable directory: {reason}") from None
    return out


def time_major_sequence(x: np.ndarray, input_size: int, *, batch_first: bool = False) -> tuple[np.ndarray, bool]:
    """``x`` of shape (T, I), (T, B, I) or (B, T, I) (``batch_first``) as a (T, B, I) view, and
    whether it was batched; ValueError naming ``x`` for an empty sequence or batch or a wrong
    number of features."""
    batched = x.ndim == 3
    if batched and batch_first:
        x = np.swapaxes(x, 0, 1)
    if not batched:
        x = x[:, None, :]
    T, B, n_in = x.shape
    if T == 0:
        raise ValueError(f"x must contain at least one time step, got shape {x.shape} (T = 0)")
    if B == 0:
        raise ValueError("x must contain at least one sequence, got batch size 0")
    if n_in != input_size:
        raise ValueError(f"x must have input_size={input_size} features in its last axis, got {n_in}")
    return x, batched
