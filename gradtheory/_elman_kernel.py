r"""Fast long-horizon kernel of the Elman RNN: forward storing :math:`\phi'(a_t)` only, and the
backward and forward vector recursions in renormalised blocks.

Used by :mod:`gradtheory.flow` for models whose cell is exactly :class:`gradtheory.cells.rnn.ElmanCell`
(the registry entry names this module as its ``fast_kernel``). Interface (all optional for a
kernel module): :func:`gradient_flow`, :func:`lyapunov_exponent`, :func:`jacobian_stepper`.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Callable
from typing import Any

import numpy as np

from ._logspace import HI as _HI
from ._logspace import LO as _LO
from ._logspace import add as _add
from ._logspace import block_length as _block_length
from ._logspace import norm as _norm
from ._logspace import single_threaded_blas as _single_threaded_blas
from .models.activations import ACTIVATIONS

__all__ = ["gradient_flow", "jacobian_stepper", "lyapunov_exponent"]


def gradient_flow(model: Any, x: np.ndarray, states0: tuple, readout: np.ndarray) -> np.ndarray:
    """ln||dL/dh_k||, k = 0..T (see :func:`gradtheory.flow.gradient_flow`)."""
    D = _rnn_derivatives(model, x, states0[0])
    return _rnn_backward_log_norms(D, model.layer_params(0, 0).W_hh, readout, _gain_bound(model))


def lyapunov_exponent(model: Any, x: np.ndarray, states0: tuple, v: np.ndarray, every: int) -> float:
    """ln||J_T...J_1 v|| / T (see :func:`gradtheory.flow.lyapunov_exponent`)."""
    D = _rnn_derivatives(model, x, states0[0])
    W_hh = model.layer_params(0, 0).W_hh
    return _rnn_forward_log_growth(D, W_hh, v, _block_length(_gain_bound(model), every)) / x.shape[0]


def jacobian_stepper(model: Any, x: np.ndarray, states0: tuple) -> Callable[[int, np.ndarray], np.ndarray]:
    """``step(t, Q) = J_t Q`` for t = 1..T (for the QR method)."""
    D = _rnn_derivatives(model, x, states0[0])
    W_hh = model.layer_params(0, 0).W_hh

    def step(t: int, Q: np.ndarray) -> np.ndarray:
        return D[t - 1][:, None] * (W_hh @ Q)

    return step


def _fresh_buffer(T: int, H: int) -> np.ndarray:
    """A (T, H) float64 array on anonymous memory without numpy's transparent-huge-page advice.

    numpy asks the kernel (madvise MADV_HUGEPAGE) to back large arrays with 2 MiB pages; where THP
    runs in 'madvise' mode with defrag 'madvise' (this machine), each first touch can stall in
    memory compaction: measured 1.8 s to fill a fresh 488 MiB array, 0.34 s for the same mmap'd
    memory without the advice (and no huge page was obtained either way). The array keeps the
    mapping alive and releases it when it is garbage collected.
    """
    nbytes = max(T * H * 8, 1)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=np.float64, count=T * H).reshape(T, H)


def _rnn_derivatives(model: Any, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    r"""Forward pass of an Elman RNN; returns D (T, H) with ``D[t-1] = phi'(a_t)``.

    The buffer first holds the input projections, then (in place) the states h_t, then phi'(a_t):
    one (T, H) float64 array in all.
    """
    W_ih, W_hh, b_ih, b_hh = model.layer_params(0, 0)
    T = x.shape[0]
    H = model.hidden_size
    buf = _fresh_buffer(T, H)
    # Touch the fresh pages from one thread first: letting two BLAS threads page-fault a 512 MB
    # buffer cost ~5x more CPU (2.9 s vs 0.7 + 0.5 s at T = 10^6, H = 64) in our measurements.
    buf.fill(0.0)
    np.matmul(x, np.ascontiguousarray(W_ih.T), out=buf)
    if b_ih is not None:
        buf += b_ih + b_hh
    W = np.ascontiguousarray(W_hh)
    Wdot = W.dot
    tmp = np.empty(H)
    prev = np.array(h0)
    name = model.nonlinearity
    with _single_threaded_blas(), np.errstate(over="ignore", invalid="ignore"):  # checked below
        _rnn_forward_loop(name, buf, Wdot, tmp, prev)
    if not (np.isfinite(buf.min()) and np.isfinite(buf.max())):  # NaN propagates; no (T, H) temporary
        bad = int(np.argwhere(~np.isfinite(buf))[0, 0])
        raise FloatingPointError(f"the forward pass overflowed at step t={bad + 1} (state not finite)")
    return _derivatives_in_place(name, buf)


def _rnn_forward_loop(name: str, buf: np.ndarray, Wdot, tmp: np.ndarray, prev: np.ndarray) -> None:
    """a_t = W_hh h_{t-1} + (W_ih x_t + b_ih + b_hh); h_t = phi(a_t) overwrites row t-1 of buf."""
    add = np.add
    if name == "tanh":
        tanh = np.tanh
        for row in buf:
            Wdot(prev, tmp)
            add(tmp, row, tmp)
            tanh(tmp, row)
            prev = row
    elif name == "relu":
        maximum = np.maximum
        for row in buf:
            Wdot(prev, tmp)
            add(tmp, row, tmp)
            maximum(tmp, 0.0, out=row)
            prev = row
    elif name == "identity":
        for row in buf:
            Wdot(prev, tmp)
            add(tmp, row, row)
            prev = row
    elif name == "sigmoid":
        neg, logaddexp, exp = np.negative, np.logaddexp, np.exp
        for row in buf:  # exp(-log(1 + e^{-a})): the model's accurate formula
            Wdot(prev, tmp)
            add(tmp, row, tmp)
            neg(tmp, tmp)
            logaddexp(0.0, tmp, tmp)
            neg(tmp, tmp)
            exp(tmp, row)
            prev = row
    else:  # pragma: no cover - ACTIVATIONS is closed
        raise NotImplementedError(f"nonlinearity={name!r}")


def _derivatives_in_place(name: str, buf: np.ndarray) -> np.ndarray:
    """Overwrite h_t with phi'(a_t) computed from it; returns buf."""
    # phi'(a_t) from h_t = phi(a_t), in place (relu: h > 0 iff a > 0, with phi'(0) = 0 as torch).
    if name == "tanh":
        np.multiply(buf, buf, out=buf)
        np.subtract(1.0, buf, out=buf)
    elif name == "sigmoid":
        tmp_all = 1.0 - buf
        np.multiply(buf, tmp_all, out=buf)
    elif name == "relu":
        buf[...] = buf > 0.0
    else:
        buf.fill(1.0)
    return buf


def _rnn_backward_log_norms(D: np.ndarray, W_hh: np.ndarray, readout: np.ndarray, G: float) -> np.ndarray:
    r"""ln||dL/dh_k||, k = 0..T, for J_t = diag(D[t-1]) W_hh; overwrites D with scaled gradients.

    Backward vector recursion :math:`u_{k-1} = (u_k \odot \phi'(a_k)) W_{hh}` in blocks of K
    steps without renormalisation (K from the gain bound G, see _LO/_HI); each block's last
    vector is renormalised and its log-norm added to a running log-scale. A block whose final
    norm leaves [_LO, _HI] (underflow risk) is redone step by step with per-step renormalisation.
    """
    T, H = D.shape
    out = np.empty(T + 1)
    r_norm = _norm(readout)
    if r_norm == 0.0:
        out.fill(-np.inf)
        return out
    out[T] = math.log(r_norm)
    logscale = np.empty(T)
    L, comp = math.log(r_norm), 0.0
    v = readout / r_norm
    WT = np.ascontiguousarray(W_hh.T)
    WTdot = WT.dot
    tmp = np.empty(H)
    K = _block_length(G)
    with _single_threaded_blas():
        return _rnn_backward_blocks(D, WTdot, tmp, v, L, comp, K, out, logscale)


def _rnn_backward_blocks(D, WTdot, tmp, v, L, comp, K, out, logscale) -> np.ndarray:
    T = D.shape[0]
    mul = np.multiply
    zero_below = -1  # rows <= zero_below are exactly zero gradients
    k = T
    while k > 0:
        lo = max(0, k - K)
        block = D[lo:k]
        saved = block.copy()
        u = v
        for row in block[::-1]:
            mul(u, row, tmp)
            WTdot(tmp, row)
            u = row
        with np.errstate(over="ignore"):  # a block past the float range is the signal to redo it step by step
            nrm = math.sqrt(float(u @ u))
        if _LO <= nrm <= _HI:
            logscale[lo:k] = L + comp
            v = u / nrm
            L, comp = _add(L, comp, math.log(nrm))
        else:
            block[...] = saved
            u = v
            for j in range(k - 1, lo - 1, -1):
                row = D[j]
                mul(u, row, tmp)
                WTdot(tmp, row)
                nrm = _norm(row)
                if nrm == 0.0:
                    zero_below = j
                    break
                row /= nrm
                L, comp = _add(L, comp, math.log(nrm))
                logscale[j] = L + comp
                u = row
            if zero_below >= 0:
                break
            v = u.copy()
        k = lo
    with np.errstate(divide="ignore"):
        out[:T] = 0.5 * np.log(np.einsum("ij,ij->i", D, D)) + logscale
    if zero_below >= 0:
        out[: zero_below + 1] = -np.inf
    return out


def _gain_bound(model: Any) -> float:
    """G >= ||J_t||_2 for every t of an Elman RNN: gamma * ||W_hh||_2."""
    W_hh = model.layer_params(0, 0).W_hh
    return float(ACTIVATIONS[model.nonlinearity].gamma) * float(np.linalg.norm(W_hh, 2))


def _rnn_forward_log_growth(D: np.ndarray, W_hh: np.ndarray, v: np.ndarray, K: int) -> float:
    r"""ln||J_T...J_1 v|| for J_t = diag(D[t-1]) W_hh, blocks of K steps with the _LO/_HI guard."""
    H = D.shape[1]
    W = np.ascontiguousarray(W_hh)
    Wdot = W.dot
    mul = np.multiply
    tmp = np.empty(H)
    v = np.array(v)
    with _single_threaded_blas():
        return _rnn_forward_blocks(D, Wdot, mul, tmp, v, K)


def _rnn_forward_blocks(D, Wdot, mul, tmp, v, K) -> float:
    T = D.shape[0]
    total, comp = 0.0, 0.0
    t = 0
    while t < T:
        hi = min(T, t + K)
        start = v.copy()
        for row in D[t:hi]:
            Wdot(v, tmp)
            mul(tmp, row, v)
        with np.errstate(over="ignore"):  # a block past the float range is the signal to redo it step by step
            nrm = math.sqrt(float(v @ v))
        if _LO <= nrm <= _HI:
            total, comp = _add(total, comp, math.log(nrm))
            v /= nrm
        else:
            v = start
            for row in D[t:hi]:
                Wdot(v, tmp)
                mul(tmp, row, v)
                nrm = _norm(v)
                if nrm == 0.0:
                    return -math.inf
                total, comp = _add(total, comp, math.log(nrm))
                v /= nrm
        t = hi
    return total + comp
