r"""Bounds on gradient flow through time, and its measurement over long horizons.

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

Over long horizons the gradient behaves like :math:`e^{\lambda_1 (T-k)}`, where
:math:`\lambda_1 = \lim_T \frac1T \ln \sigma_1(J_T\cdots J_1)` is the top Lyapunov exponent of
the trajectory. :func:`gradient_flow` evaluates :math:`\ln\|\partial L/\partial s_k\|` for every
``k`` in log space (a unit vector and a running log-scale), so ``T = 10**6`` neither underflows
nor overflows; :func:`lyapunov_exponent` and :func:`lyapunov_spectrum` estimate the exponents
with the QR method (Benettin et al. 1980; Engelken, Wolf & Abbott 2020).
"""

from __future__ import annotations

import contextlib
import math
import mmap
from typing import Any, Iterator

import numpy as np

from ._validation import as_float_array, check_choice, check_positive_int
from .models import torch_cell as _torch_cell
from .models.activations import ACTIVATIONS
from .models.compose import RNN, RecurrentModel

__all__ = [
    "gamma",
    "spectral_norm",
    "spectral_radius",
    "envelope",
    "jacobian_norms",
    "gradient_flow",
    "lyapunov_exponent",
    "lyapunov_spectrum",
]

# Window for unnormalised vectors inside a renormalisation block. A block of K steps is accepted
# only if the final norm lies in [_LO, _HI] and G**K <= _HI (G a bound on every ||J_t||), which
# keeps every intermediate norm in [_LO / _HI, _HI] = [1e-100, 1e50]: their squares neither
# underflow nor overflow, so norms computed afterwards from sums of squares are accurate.
_LO = 1e-50
_HI = 1e50
_MAX_BLOCK = 128


# -- BLAS threads ------------------------------------------------------------------------------
@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run the per-step loops with one BLAS thread (threadpoolctl; restored on exit).

    A (64, 64) gemv is too small to share: with 2 threads each call pays a synchronisation that
    doubled the wall time of gradient_flow in our measurements (benchmarks/bench_gradient_flow.py).
    The setting is process-wide while the loop runs.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


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


# -- input preparation --------------------------------------------------------------------------
def _as_model(model: Any, func: str) -> RecurrentModel:
    if not isinstance(model, RecurrentModel):
        if _torch_cell.is_torch_rnn(model):
            from .models.torch_interop import from_torch

            model = from_torch(model)  # TypeError for torch objects that are not RNN/LSTM/GRU
        else:
            raise TypeError(
                f"model must be a gradtheory RNN/LSTM/GRU/ResidualRNN/HighwayRNN, a torch.nn.RNN/LSTM/GRU "
                "or a torch cell (gradtheory.from_torch_cell), "
                f"got {type(model).__name__}"
            )
    if model.num_layers != 1:
        raise NotImplementedError(
            f"{func} supports single-layer models; model has num_layers={model.num_layers} "
            "(build a one-layer model from the layer you want to study)"
        )
    if model.bidirectional:
        raise NotImplementedError(
            f"{func} supports unidirectional models; model has bidirectional=True"
        )
    return model


def _prepare(model: Any, x: Any, h0: Any, func: str):
    """Return (model, x (T, I), initial states: tuple of (H,) arrays)."""
    model = _as_model(model, func)
    x = as_float_array(x, "x", copy=False)  # read only: T = 10^6 sequences are not duplicated
    if x.ndim != 2:
        raise ValueError(
            f"x must be one unbatched sequence of shape (T, {model.input_size}), got shape {x.shape}"
            + (" (batched input: call once per sequence)" if x.ndim == 3 else "")
        )
    T, n_in = x.shape
    if T == 0:
        raise ValueError(f"x must contain at least one time step, got shape {x.shape} (T = 0)")
    if n_in != model.input_size:
        raise ValueError(
            f"x must have shape (T, {model.input_size}) (a single unbatched sequence), got shape {x.shape}"
        )
    H = model.hidden_size

    def one(value, name):
        if value is None:
            return np.zeros(H)
        arr = as_float_array(value, name, ndim=(1, 2))
        if arr.shape not in ((H,), (1, H)):
            raise ValueError(f"{name} must have shape ({H},) or (1, {H}), got shape {arr.shape}")
        return arr.reshape(H)

    if model._n_states == 2:
        if h0 is None:
            h0 = (None, None)
        if not (isinstance(h0, tuple) and len(h0) == 2):
            raise TypeError(f"h0 must be a tuple (h0, c0) for LSTM, got {type(h0).__name__}")
        states0 = (one(h0[0], "h0[0]"), one(h0[1], "h0[1]"))
    else:
        if isinstance(h0, tuple):
            raise TypeError(f"h0 must be an array for {type(model).__name__}, got a tuple")
        states0 = (one(h0, "h0"),)
    return model, x, states0


def _layer(model: RecurrentModel):
    W_ih, W_hh, b_ih, b_hh = model._layer_params(0, 0)
    return W_ih, W_hh, b_ih, b_hh


def _is_fast_rnn(model: RecurrentModel) -> bool:
    return type(model) is RNN


def _add(total: float, comp: float, term: float) -> tuple[float, float]:
    """Neumaier-compensated total + term: the running log-scale stays accurate to ~u * |total|
    however many renormalisations it absorbs (plain summation would lose ~u * |total| each)."""
    t = total + term
    if abs(total) >= abs(term):
        comp += (total - t) + term
    else:
        comp += (term - t) + total
    return t, comp


def _norm(v: np.ndarray) -> float:
    """Euclidean norm without underflow or overflow of the sum of squares."""
    nrm = math.sqrt(float(np.vdot(v, v)))
    if 1e-150 < nrm < 1e150:
        return nrm
    m = float(np.max(np.abs(v))) if v.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return m
    w = v / m
    return m * math.sqrt(float(np.vdot(w, w)))


def _block_length(G: float, requested: int = _MAX_BLOCK) -> int:
    """Largest K <= requested with G**K <= _HI (G bounds every one-step gain)."""
    if not np.isfinite(G):
        return 1
    if G <= 1.0:
        return max(1, requested)
    return int(max(1, min(requested, math.floor(math.log(_HI) / math.log(G)))))


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


# -- Elman RNN: fast forward storing phi'(a_t) only ---------------------------------------------
def _rnn_derivatives(model: RecurrentModel, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    r"""Forward pass of an Elman RNN; returns D (T, H) with ``D[t-1] = phi'(a_t)``.

    The buffer first holds the input projections, then (in place) the states h_t, then phi'(a_t):
    one (T, H) float64 array in all.
    """
    W_ih, W_hh, b_ih, b_hh = _layer(model)
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


# -- generic cells: forward storing the states, backward recomputing each step's cache ----------
def _generic_forward(model: RecurrentModel, x: np.ndarray, states0: tuple):
    W_ih, W_hh, b_ih, b_hh = _layer(model)
    cell = model._cell()
    T = x.shape[0]
    gi = x @ W_ih.T
    if b_ih is not None:
        gi = gi + b_ih
    states = tuple(np.empty((T + 1, s.shape[0])) for s in states0)
    for k, s in enumerate(states0):
        states[k][0] = s
    state = tuple(s[None, :] for s in states0)
    W_hh_T = W_hh.T
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite states are reported below
        for t in range(T):
            gh = state[0] @ W_hh_T
            if b_hh is not None:
                gh = gh + b_hh
            state, _ = cell.step(gi[t : t + 1], gh, state)
            for k, s in enumerate(state):
                states[k][t + 1] = s[0]
    for s in states:
        if not np.all(np.isfinite(s)):
            bad = int(np.argwhere(~np.isfinite(s))[0, 0])
            raise FloatingPointError(f"the forward pass overflowed at step t={bad} (state not finite)")
    return cell, gi, states


def _generic_cache(cell, gi, states, t, W_hh, b_hh):
    """Cache of step t (1-based) recomputed from the stored state s_{t-1}: bitwise the forward's."""
    prev = tuple(s[t - 1][None, :] for s in states)
    gh = prev[0] @ W_hh.T
    if b_hh is not None:
        gh = gh + b_hh
    _, cache = cell.step(gi[t - 1 : t], gh, prev)
    return cache


def _generic_backward_log_norms(model, cell, gi, states, readout) -> np.ndarray:
    _, W_hh, _, b_hh = _layer(model)
    T = gi.shape[0]
    out = np.full(T + 1, -np.inf)
    r_norm = _norm(readout)
    if r_norm == 0.0:
        return out
    L, comp = math.log(r_norm), 0.0
    out[T] = L
    d_state = [readout[None, :] / r_norm] + [np.zeros((1, readout.shape[0])) for _ in states[1:]]
    for t in range(T, 0, -1):
        cache = _generic_cache(cell, gi, states, t, W_hh, b_hh)
        _, d_gh, direct = cell.step_backward(tuple(d_state), cache)
        dh_prev = d_gh @ W_hh
        if direct[0] is not None:
            dh_prev = dh_prev + direct[0]
        d_state = [dh_prev] + [
            np.zeros_like(d_state[k]) if direct[k] is None else direct[k] for k in range(1, len(d_state))
        ]
        nrm = _norm(np.concatenate([d.ravel() for d in d_state]))
        if nrm == 0.0:
            break  # every earlier gradient is zero: entries stay -inf
        if not math.isfinite(nrm):
            raise FloatingPointError(f"one backward step overflowed at t={t} (||J_t|| too large for float64)")
        L, comp = _add(L, comp, math.log(nrm))
        out[t - 1] = L + comp
        d_state = [d / nrm for d in d_state]
    return out


def _readout(model: RecurrentModel, readout: Any) -> np.ndarray:
    H = model.hidden_size
    if readout is None:
        r = np.zeros(H)
        r[0] = 1.0
        return r
    return as_float_array(readout, "readout", shape=(H,))


def _gain_bound(model: RecurrentModel) -> float:
    """G >= ||J_t||_2 for every t of an Elman RNN: gamma * ||W_hh||_2."""
    _, W_hh, _, _ = _layer(model)
    return float(ACTIVATIONS[model.nonlinearity].gamma) * float(np.linalg.norm(W_hh, 2))


# -- public measurements ------------------------------------------------------------------------
def jacobian_norms(model: Any, x: Any, h0: Any = None) -> np.ndarray:
    r"""Spectral norms :math:`\|J_t\|_2` of the one-step Jacobians along the trajectory, shape (T,).

    ``J_t = ds_t/ds_{t-1}`` from ``model.jacobians`` (joint (h, c) state for LSTM). ``x`` is one
    sequence (T, input_size); this materialises all T Jacobians (T * S * S floats).
    """
    model, x, states0 = _prepare(model, x, h0, "jacobian_norms")
    if model._n_states == 2:
        h0m = (states0[0][None, :], states0[1][None, :])
    else:
        h0m = states0[0][None, :]
    result = model.forward(x, h0m)
    J = model.jacobians(result)
    return np.linalg.norm(J, 2, axis=(1, 2))


def gradient_flow(model: Any, x: Any, readout: Any = None, h0: Any = None) -> np.ndarray:
    r"""Log-norms of the gradient through time: entry k is :math:`\ln\|\partial L/\partial s_k\|_2`.

    ``model``: a single-layer unidirectional gradtheory RNN/LSTM/GRU/ResidualRNN/HighwayRNN, or a
    ``torch.nn.RNN``/``LSTM``/``GRU`` (converted with :func:`gradtheory.from_torch`).
    ``x``: one sequence, shape (T, input_size), T >= 1. ``h0``: initial state (H,) or (1, H)
    (for LSTM a tuple ``(h0, c0)``), zeros by default.

    The loss is :math:`L = \langle r, h_T\rangle` with ``readout`` r of shape (H,); the default
    is the unit vector :math:`e_0 = (1, 0, \dots, 0)`. For LSTM the readout acts on h_T only
    (:math:`\partial L/\partial c_T = 0`) and the norm is over the joint gradient
    :math:`(\partial L/\partial h_k, \partial L/\partial c_k)` with c's gradient at fixed h, the
    convention of ``model.backward``'s ``.dh``/``.dc``. ``s_0`` is the initial state; entry T is
    :math:`\ln\|r\|`. Returns shape (T + 1,).

    Computed in log space: a unit vector and a running log-scale are carried backward
    (:math:`u \leftarrow J_t^\top u`), so no horizon underflows or overflows. An exactly zero
    gradient (e.g. relu units all off, or ``readout = 0``) gives ``-inf``. Memory: the forward
    pass keeps one (T, H) array (:math:`\phi'(a_t)` for the Elman RNN, the states for the other
    cells, which recompute each step's gates during the backward pass); no Jacobian is stored.

    Cost: the Elman RNN path does ~5 numpy calls per step (~7.6 us/step CPU for H = 64 measured
    at T = 10**6, 488 MiB buffer; benchmarks/bench_gradient_flow.py) and runs its loops with one
    OpenBLAS thread (restored afterwards); LSTM/GRU/residual/highway use the cells' own step code
    (~50-180 us/step at H = 64). A forward pass that overflows raises FloatingPointError.
    """
    if _torch_cell.is_torch_cell(model):
        return _torch_cell.torch_cell_gradient_flow(model, x, readout=readout, h0=h0)
    model, x, states0 = _prepare(model, x, h0, "gradient_flow")
    r = _readout(model, readout)
    if _is_fast_rnn(model):
        _, W_hh, _, _ = _layer(model)
        D = _rnn_derivatives(model, x, states0[0])
        return _rnn_backward_log_norms(D, W_hh, r, _gain_bound(model))
    cell, gi, states = _generic_forward(model, x, states0)
    return _generic_backward_log_norms(model, cell, gi, states, r)


def _start_vector(S: int, v0: Any) -> np.ndarray:
    if v0 is None:
        v = np.random.default_rng(0).standard_normal(S)  # fixed, generic (a.s. not orthogonal to r_1)
    else:
        v = as_float_array(v0, "v0", shape=(S,))
    nrm = float(np.linalg.norm(v))
    if nrm == 0.0:
        raise ValueError("v0 must be non-zero")
    return v / nrm


def _check_every(value: Any) -> int:
    return check_positive_int(value, "reorthonormalize_every")


def lyapunov_exponent(
    model: Any,
    x: Any,
    h0: Any = None,
    *,
    reorthonormalize_every: int = 1,
    v0: Any = None,
) -> float:
    r"""Finite-T estimate of the top Lyapunov exponent of the trajectory's Jacobian product.

    Returns :math:`\frac1T \ln\|J_T J_{T-1}\cdots J_1 v_0\|_2` (``J_t = ds_t/ds_{t-1}``), computed
    forward (:math:`v \leftarrow J_t v`) with renormalisation at least every
    ``reorthonormalize_every`` steps (more often if needed to stay in float64 range: the result
    does not depend on it beyond round-off). ``v0`` is a fixed generic unit vector by default
    (seeded normal draw), so the estimate is deterministic.

    Relation to :func:`gradient_flow` (which applies the *transposed* product to the readout):
    with :math:`P = J_T\cdots J_1`, singular values :math:`\sigma_1 \ge \dots` and top singular
    vectors :math:`l_1, r_1`,

    .. math:: \ln\sigma_1 + \ln|\langle v_0, r_1\rangle| \le \ln\|P v_0\| \le \ln\sigma_1, \qquad
              \ln\sigma_1 + \ln|\langle u, l_1\rangle| \le \ln\|u^\top P\| \le \ln\sigma_1

    for unit :math:`v_0, u`, since :math:`\|P v\|^2 = \sum_i \sigma_i^2\langle v, r_i\rangle^2`.
    So the forward estimate and the gradient-flow slope
    ``(flow[0] - flow[T]) / T`` differ by at most
    :math:`\max(-\ln|\langle v_0, r_1\rangle|, -\ln|\langle u, l_1\rangle|)/T`: both estimate the
    same :math:`\lambda_1` (P and :math:`P^\top` have the same singular values) and agree to O(1/T).
    Returns ``-inf`` if the product annihilates ``v0``.
    """
    if _torch_cell.is_torch_cell(model):
        return _torch_cell.torch_cell_lyapunov_exponent(model, x, h0, reorthonormalize_every=reorthonormalize_every, v0=v0)
    model, x, states0 = _prepare(model, x, h0, "lyapunov_exponent")
    every = _check_every(reorthonormalize_every)
    S = model.hidden_size * model._n_states
    v = _start_vector(S, v0)
    T = x.shape[0]
    if _is_fast_rnn(model):
        _, W_hh, _, _ = _layer(model)
        D = _rnn_derivatives(model, x, states0[0])
        return _rnn_forward_log_growth(D, W_hh, v, _block_length(_gain_bound(model), every)) / T
    _, W_hh, _, b_hh = _layer(model)
    cell, gi, states = _generic_forward(model, x, states0)
    total, comp = 0.0, 0.0
    for t in range(1, T + 1):
        J = cell.step_jacobian(_generic_cache(cell, gi, states, t, W_hh, b_hh), W_hh)[0]
        v = J @ v
        nrm = _norm(v)
        if nrm == 0.0:
            return -math.inf
        total, comp = _add(total, comp, math.log(nrm))
        v = v / nrm
    return (total + comp) / T


def _rnn_forward_log_growth(D: np.ndarray, W_hh: np.ndarray, v: np.ndarray, K: int) -> float:
    r"""ln||J_T...J_1 v|| for J_t = diag(D[t-1]) W_hh, blocks of K steps with the _LO/_HI guard."""
    T, H = D.shape
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


def lyapunov_spectrum(
    model: Any,
    x: Any,
    k: int | None = None,
    h0: Any = None,
    *,
    reorthonormalize_every: int = 1,
) -> np.ndarray:
    r"""Finite-T estimates of the k largest Lyapunov exponents (QR method), shape (k,).

    Evolves an orthonormal (S, k) basis :math:`Q \leftarrow J_t Q` (S = H, or 2H for LSTM),
    re-orthonormalises it with a QR factorisation every ``reorthonormalize_every`` steps and
    returns :math:`\frac1T\sum \ln|R_{ii}|` per column, in column order (the i-th column
    converges to the i-th exponent). The initial basis is the first k columns of the identity.
    ``k`` defaults to S. A zero ``R_ii`` gives ``-inf``. With ``reorthonormalize_every > 1`` the
    columns are not protected against overflow or alignment between factorisations.
    """
    if _torch_cell.is_torch_cell(model):
        return _torch_cell.torch_cell_lyapunov_spectrum(model, x, k, h0, reorthonormalize_every=reorthonormalize_every)
    model, x, states0 = _prepare(model, x, h0, "lyapunov_spectrum")
    every = _check_every(reorthonormalize_every)
    S = model.hidden_size * model._n_states
    k = S if k is None else check_positive_int(k, "k")
    if k > S:
        raise ValueError(f"k must be <= the state dimension {S}, got {k}")
    T = x.shape[0]
    _, W_hh, _, b_hh = _layer(model)
    Q = np.eye(S)[:, :k]
    total = np.zeros(k)
    if _is_fast_rnn(model):
        D = _rnn_derivatives(model, x, states0[0])

        def step(t, Q):
            return D[t - 1][:, None] * (W_hh @ Q)

    else:
        cell, gi, states = _generic_forward(model, x, states0)

        def step(t, Q):
            return cell.step_jacobian(_generic_cache(cell, gi, states, t, W_hh, b_hh), W_hh)[0] @ Q

    comp = np.zeros(k)  # Neumaier compensation, as _add, elementwise
    for t in range(1, T + 1):
        Q = step(t, Q)
        if t % every == 0 or t == T:
            Q, R = np.linalg.qr(Q)
            with np.errstate(divide="ignore", invalid="ignore"):
                term = np.log(np.abs(np.diag(R)))
                new = total + term
                comp += np.where(np.abs(total) >= np.abs(term), (total - new) + term, (term - new) + total)
            total = new
    with np.errstate(invalid="ignore"):
        out = total + comp
    return np.where(np.isneginf(total), -np.inf, out) / T
