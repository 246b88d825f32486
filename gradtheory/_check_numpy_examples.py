r"""Numpy recurrent code as people write it, correct and with realistic bugs: the checker's test and
benchmark subjects for the common styles of hand-written BPTT.

* ``rnn``: CS231n-style vanilla RNN -- step functions returning ``(next_h, cache)`` tuples, a
  backward that accumulates **in place into its incoming gradient** (``dh[:, t] += dprev_h``);
  optionally with the hidden states stored in a float32 buffer and a float64 readout.
  Bug ``"wrong_h"``: ``dWh`` from the new state instead of the previous one.
* ``lstm``: CS231n-style LSTM (gates i, f, o, g) whose step backward updates ``dnext_c`` in place
  (``dnext_c += dnext_h * o * (1 - tanh_c**2)``); the final cell state is an output, so the
  checker's cotangent for it is what gets updated. Bug ``"forget"``: ``dprev_c = dnext_c`` (the
  factor f is forgotten).
* ``dict_rnn``: min-char-rnn style (Karpathy) with a parameter dict (and non-array entries, a
  hyper-parameter int and a learning rate float, that pass through) and per-step dicts of states.
  Bug ``"time_index"``: ``dWhy += outer(dy, hs[t - 1])``.
* ``gru_dropout``: a cached layer object (``forward`` stores ``self.cache``, ``backward`` reads
  it) whose output goes through dropout drawn from ``np.random`` (the global generator). Bugs
  ``"flip"``, ``"zero"``, ``"triple"``: the incoming gradient multiplied by -1, 0, 3.

The step and forward functions keep the signatures students write (``lstm_step_forward(x, prev_h,
prev_c, Wx, Wh, b)``): they stand for users' code, which the checker calls as ``fn(*inputs)``.
Each ``*_problem(bug, seed, *, sizes)`` returns a dict with ``fn``, ``inputs``, ``grad_fn``, ``names``
and ``time_axis`` (the keyword arguments of :func:`gradtheory.check_gradients`; also a factory
result for ``gradtheory check``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["STYLES", "dict_rnn_problem", "gru_dropout_problem", "lstm_problem", "rnn_problem"]


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


# ------------------------------------------------------------------------------------------------
# CS231n-style vanilla RNN: cache tuples, in-place accumulation into the incoming gradient


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache, bug="none"):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h**2)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = (next_h if bug == "wrong_h" else prev_h).T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b, *, h_dtype=np.float64):
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H), dtype=h_dtype)  # a float32 buffer rounds every stored state
    caches = []
    prev_h = h0
    for t in range(T):
        next_h, cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        h[:, t, :] = next_h
        prev_h = h[:, t, :]
        caches.append(cache)
    return h, caches


def rnn_backward(dh, caches, bug="none"):
    N, T, H = dh.shape
    x0, _, Wx, Wh, _ = caches[0]
    dx = np.zeros((N, T, x0.shape[1]))
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[0])
    dprev_h = np.zeros((N, H))
    for t in reversed(range(T)):
        dh[:, t, :] += dprev_h  # in place: the caller's upstream gradient is modified
        dx[:, t, :], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :], caches[t], bug)
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def rnn_problem(
    bug: str = "none", seed: int = 0, *, N: int = 2, T: int = 6, D: int = 3, H: int = 5, float32_states: bool = False
) -> dict[str, Any]:
    """CS231n-style RNN plus a float64 readout ``scores = h @ Wy`` (so that an input whose
    gradient stays exact sits next to the recurrent ones when the states are float32)."""
    if bug not in ("none", "wrong_h"):
        raise ValueError(f"bug must be 'none' or 'wrong_h', got {bug!r}")
    rng = np.random.default_rng(seed)
    inputs = (
        rng.standard_normal((N, T, D)),
        0.5 * rng.standard_normal((N, H)),
        rng.standard_normal((D, H)) / np.sqrt(D),
        rng.standard_normal((H, H)) / np.sqrt(H),
        0.1 * rng.standard_normal(H),
        rng.standard_normal((H, 2)) / np.sqrt(H),
    )
    h_dtype = np.float32 if float32_states else np.float64

    def fn(x, h0, Wx, Wh, b, Wy):
        h, _ = rnn_forward(x, h0, Wx, Wh, b, h_dtype=h_dtype)
        return h.astype(np.float64) @ Wy

    def grad_fn(dscores, x, h0, Wx, Wh, b, Wy):
        h, caches = rnn_forward(x, h0, Wx, Wh, b, h_dtype=h_dtype)
        h = h.astype(np.float64)
        dWy = np.einsum("nth,ntk->hk", h, dscores)
        dh = dscores @ Wy.T
        return (*rnn_backward(dh, caches, bug), dWy)

    return {"fn": fn, "inputs": inputs, "grad_fn": grad_fn, "names": ("x", "h0", "Wx", "Wh", "b", "Wy"), "time_axis": 1}


# ------------------------------------------------------------------------------------------------
# CS231n-style LSTM: dnext_c updated in place


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H : 2 * H]), _sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache, bug="none"):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dnext_c += dnext_h * o * (1 - tanh_c**2)  # in place on the incoming cell gradient
    do = dnext_h * tanh_c
    di, df, dg = dnext_c * g, dnext_c * prev_c, dnext_c * i
    dprev_c = dnext_c if bug == "forget" else dnext_c * f
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)])
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    prev_h, prev_c = h0, np.zeros_like(h0)
    caches = []
    for t in range(T):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t, :], prev_h, prev_c, Wx, Wh, b)
        h[:, t, :] = prev_h
        caches.append(cache)
    return h, prev_c, caches


def lstm_backward(dh, dc_T, caches, bug="none"):
    N, T, H = dh.shape
    x0, _, _, Wx, Wh = caches[0][:5]
    dx = np.zeros((N, T, x0.shape[1]))
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1])
    dprev_h, dprev_c = np.zeros((N, H)), dc_T  # the upstream gradient itself, updated in place below
    for t in reversed(range(T)):
        dx[:, t, :], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t, :] + dprev_h, dprev_c, caches[t], bug
        )
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def lstm_problem(bug: str = "none", seed: int = 0, *, N: int = 2, T: int = 5, D: int = 3, H: int = 4) -> dict[str, Any]:
    """CS231n-style LSTM returning ``(h, c_T)``."""
    if bug not in ("none", "forget"):
        raise ValueError(f"bug must be 'none' or 'forget', got {bug!r}")
    rng = np.random.default_rng(seed)
    inputs = (
        rng.standard_normal((N, T, D)),
        0.5 * rng.standard_normal((N, H)),
        rng.standard_normal((D, 4 * H)) / np.sqrt(D),
        rng.standard_normal((H, 4 * H)) / np.sqrt(H),
        0.1 * rng.standard_normal(4 * H),
    )

    def fn(x, h0, Wx, Wh, b):
        h, c_T, _ = lstm_forward(x, h0, Wx, Wh, b)
        return h, c_T

    def grad_fn(cot, x, h0, Wx, Wh, b):
        dh, dc_T = cot
        _, _, caches = lstm_forward(x, h0, Wx, Wh, b)
        return lstm_backward(dh, dc_T, caches, bug)

    return {"fn": fn, "inputs": inputs, "grad_fn": grad_fn, "names": ("x", "h0", "Wx", "Wh", "b"), "time_axis": 1}


# ------------------------------------------------------------------------------------------------
# min-char-rnn style: a parameter dict, dicts of per-step states


def dict_rnn_forward(xs, hprev, params):
    hs, ys = {-1: np.copy(hprev)}, {}
    for t in range(len(xs)):
        hs[t] = np.tanh(params["Wxh"] @ xs[t] + params["Whh"] @ hs[t - 1] + params["bh"])
        ys[t] = params["Why"] @ hs[t] + params["by"]
    return hs, ys


def dict_rnn_backward(dys, xs, hs, params, bug="none"):
    grads = {k: np.zeros_like(params[k]) for k in ("Wxh", "Whh", "Why", "bh", "by")}
    dxs = np.zeros_like(xs)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(xs))):
        dy = dys[t]
        grads["Why"] += np.outer(dy, hs[t - 1] if bug == "time_index" else hs[t])
        grads["by"] += dy
        dh = params["Why"].T @ dy + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        grads["bh"] += dhraw
        grads["Wxh"] += np.outer(dhraw, xs[t])
        grads["Whh"] += np.outer(dhraw, hs[t - 1])
        dxs[t] = params["Wxh"].T @ dhraw
        dhnext = params["Whh"].T @ dhraw
    return dxs, dhnext, grads


def dict_rnn_problem(
    bug: str = "none", seed: int = 0, *, T: int = 6, D: int = 4, H: int = 6, V: int = 3
) -> dict[str, Any]:
    """fn(xs, hprev, params) -> ys (T, V); params holds arrays and two non-array entries."""
    if bug not in ("none", "time_index"):
        raise ValueError(f"bug must be 'none' or 'time_index', got {bug!r}")
    rng = np.random.default_rng(seed)
    params = {
        "Wxh": rng.standard_normal((H, D)) * 0.4,
        "Whh": rng.standard_normal((H, H)) * 0.4,
        "Why": rng.standard_normal((V, H)) * 0.4,
        "bh": np.zeros(H) + 0.1,
        "by": np.zeros(V),
        "hidden_size": H,
        "learning_rate": 1e-1,
    }

    def fn(xs, hprev, params):
        _, ys = dict_rnn_forward(xs, hprev, params)
        return np.stack([ys[t] for t in range(len(xs))])

    def grad_fn(dys, xs, hprev, params):
        hs, _ = dict_rnn_forward(xs, hprev, params)
        return dict_rnn_backward(dys, xs, hs, params, bug)

    inputs = (rng.standard_normal((T, D)), 0.5 * rng.standard_normal(H), params)
    return {"fn": fn, "inputs": inputs, "grad_fn": grad_fn, "names": ("xs", "hprev", "params"), "time_axis": 0}


# ------------------------------------------------------------------------------------------------
# a cached GRU layer object with dropout from numpy's global generator

_FACTORS = {"none": 1.0, "flip": -1.0, "zero": 0.0, "triple": 3.0}


class GRULayer:
    """torch's GRU equations (gates r, z, n); ``forward`` caches, ``backward`` reads the cache."""

    def __init__(self, params: dict[str, np.ndarray], dropout: float = 0.5, bug: str = "none") -> None:
        self.p, self.dropout, self.factor = params, dropout, _FACTORS[bug]

    def forward(self, x, h0):
        p, H = self.p, h0.shape[1]
        h, hs, steps = h0, [], []
        for x_t in x:
            gi = x_t @ p["W_ih"].T + p["b_ih"]
            gh = h @ p["W_hh"].T + p["b_hh"]
            r = _sigmoid(gi[:, :H] + gh[:, :H])
            z = _sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
            n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
            steps.append((x_t, h, r, z, n, gh[:, 2 * H :]))
            h = (1 - z) * n + z * h
            hs.append(h)
        keep = 1.0 - self.dropout
        self.mask = (np.random.rand(len(x), *h0.shape) < keep) / keep  # the global generator
        self.cache = steps
        return np.stack(hs) * self.mask

    def backward(self, dout):
        p = self.p
        dout = dout * self.factor
        dhs = dout * self.mask
        grads = {k: np.zeros_like(v) for k, v in p.items()}
        dx = np.zeros((len(self.cache), *self.cache[0][0].shape))
        dh = np.zeros_like(self.cache[0][1])
        for t in reversed(range(len(self.cache))):
            x_t, h, r, z, n, ghn = self.cache[t]
            dh = dh + dhs[t]
            dn, dz, dh_prev = dh * (1 - z), dh * (h - n), dh * z
            dn_pre = dn * (1 - n**2)
            dr_pre = dn_pre * ghn * r * (1 - r)
            dz_pre = dz * z * (1 - z)
            dgi = np.hstack([dr_pre, dz_pre, dn_pre])
            dgh = np.hstack([dr_pre, dz_pre, dn_pre * r])
            grads["W_ih"] += dgi.T @ x_t
            grads["W_hh"] += dgh.T @ h
            grads["b_ih"] += dgi.sum(0)
            grads["b_hh"] += dgh.sum(0)
            dx[t] = dgi @ p["W_ih"]
            dh = dh_prev + dgh @ p["W_hh"]
        return dx, dh, grads


def gru_dropout_problem(
    bug: str = "none", seed: int = 0, *, T: int = 5, N: int = 2, D: int = 3, H: int = 4, dropout: float = 0.5
) -> dict[str, Any]:
    """fn(x, h0, params) -> dropout(GRU outputs) (T, N, H) with the mask from ``np.random``."""
    if bug not in _FACTORS:
        raise ValueError(f"bug must be one of {sorted(_FACTORS)}, got {bug!r}")
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(H)
    params = {
        "W_ih": rng.uniform(-s, s, (3 * H, D)),
        "W_hh": rng.uniform(-s, s, (3 * H, H)),
        "b_ih": rng.uniform(-s, s, 3 * H),
        "b_hh": rng.uniform(-s, s, 3 * H),
    }

    def fn(x, h0, params):
        return GRULayer(params, dropout).forward(x, h0)

    def grad_fn(dout, x, h0, params):
        layer = GRULayer(params, dropout, bug)
        layer.forward(x, h0)
        return layer.backward(dout)

    inputs = (rng.standard_normal((T, N, D)), 0.5 * rng.standard_normal((N, H)), params)
    return {"fn": fn, "inputs": inputs, "grad_fn": grad_fn, "names": ("x", "h0", "params"), "time_axis": 0}


#: the correct implementations, by style (the benchmark's false-alarm sweep draws from these)
STYLES = {"rnn": rnn_problem, "lstm": lstm_problem, "dict_rnn": dict_rnn_problem, "gru_dropout": gru_dropout_problem}
