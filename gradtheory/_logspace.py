"""Log-space helpers shared by :mod:`gradtheory.flow` and its fast kernels.

Vectors are carried as a unit vector and a running log-scale (Neumaier-compensated), so that
products of ``T = 10**6`` Jacobians neither underflow nor overflow.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._validation import as_float_array

__all__ = ["start_vector", "HI", "LO", "MAX_BLOCK", "add", "block_length", "norm", "single_threaded_blas"]

# Window for unnormalised vectors inside a renormalisation block. A block of K steps is accepted
# only if the final norm lies in [LO, HI] and G**K <= HI (G a bound on every ||J_t||), which
# keeps every intermediate norm in [LO / HI, HI] = [1e-100, 1e50]: their squares neither
# underflow nor overflow, so norms computed afterwards from sums of squares are accurate.
LO = 1e-50
HI = 1e50
MAX_BLOCK = 128


# threadpoolctl's limits are process-wide; each limiter restores what it saw on entry. Two threads
# entering and leaving in interleaved order would restore each other's "1" (the second saved the
# first's limit) and leave BLAS at one thread for the rest of the process. So one limiter serves
# all threads: the first entry sets it, the last exit (reference count back to 0) restores.
_BLAS_LOCK = threading.Lock()
_blas_users = 0
_blas_limiter: Any = None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the per-step loops with one BLAS thread (threadpoolctl; restored on exit).

    A (64, 64) gemv is too small to share: with 2 threads each call pays a synchronisation that
    doubled the wall time of gradient_flow in our measurements (benchmarks/bench_gradient_flow.py).
    The setting is process-wide while any loop runs; safe to enter from several threads (the
    outermost exit restores the user's setting).
    """
    global _blas_users, _blas_limiter
    from threadpoolctl import threadpool_limits

    with _BLAS_LOCK:
        if _blas_users == 0:
            _blas_limiter = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def add(total: float, comp: float, term: float) -> tuple[float, float]:
    """Neumaier-compensated total + term: the running log-scale stays accurate to ~u * |total|
    however many renormalisations it absorbs (plain summation would lose ~u * |total| each)."""
    t = total + term
    if abs(total) >= abs(term):
        comp += (total - t) + term
    else:
        comp += (term - t) + total
    return t, comp


def norm(v: np.ndarray) -> float:
    """Euclidean norm without underflow or overflow of the sum of squares."""
    nrm = math.sqrt(float(np.vdot(v, v)))
    if 1e-150 < nrm < 1e150:
        return nrm
    m = float(np.max(np.abs(v))) if v.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return m
    w = v / m
    return m * math.sqrt(float(np.vdot(w, w)))


def block_length(G: float, requested: int = MAX_BLOCK) -> int:
    """Largest K <= requested with G**K <= HI (G bounds every one-step gain)."""
    if not np.isfinite(G):
        return 1
    if G <= 1.0:
        return max(1, requested)
    return int(max(1, min(requested, math.floor(math.log(HI) / math.log(G)))))


def start_vector(S: int, v0: Any) -> np.ndarray:
    """The unit start vector of a Lyapunov estimate: ``v0`` normalised, or by default one fixed
    Gaussian draw (generic: almost surely not orthogonal to the top Lyapunov vector), the same for
    every model kind so that their estimates are comparable."""
    if v0 is None:
        v = np.random.default_rng(0).standard_normal(S)
    else:
        v = as_float_array(v0, "v0", shape=(S,))
    nrm = float(np.linalg.norm(v))
    if nrm == 0.0:
        raise ValueError("v0 must be non-zero")
    return v / nrm
