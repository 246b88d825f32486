r"""Every cell as SymPy expressions, and BPTT of whole models by the derived formula at high precision.

For one step of a cell (Elman, residual, highway, LSTM, GRU in torch's parameter layout) SymPy
derives the one-step Jacobian of the state :math:`s_t` (``h``, or the joint ``(h, c)`` for the
LSTM), and the immediate partials :math:`\partial^+ s_t/\partial\theta` and
:math:`\partial^+ s_t/\partial x_t`. :func:`model_gradient_by_formula` evaluates

.. math:: \frac{\partial L}{\partial\theta} = \sum_{t} \sum_{k \le t}
          g_t^\top \Big(\prod_{j=k+1}^{t} \frac{\partial s_j}{\partial s_{j-1}}\Big)
          \frac{\partial^+ s_k}{\partial\theta}

in ``dps``-digit mpmath arithmetic (or exact rationals for the Elman/residual cells with identity
or relu), step by step: no unrolled expression is ever built.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from ._core import sig
from ._elman import _to_obj
from .activation_bounds import phi

__all__ = ["cell_step", "model_gradient_by_formula", "FAMILIES"]

FAMILIES = {"RNN": 1, "ResidualRNN": 1, "HighwayRNN": 2, "LSTM": 4, "GRU": 3}


def _mp_sig(a):
    import mpmath

    return 1 / (1 + mpmath.exp(-a))


@lru_cache(maxsize=None)
def cell_step(family: str, hidden_size: int, input_size: int, activation: str = "tanh") -> dict[str, Any]:
    """SymPy-derived one-step derivatives of a cell (cached), lambdified.

    ``fn(W_ih, W_hh, b_ih, b_hh, x, s_prev)`` (flat sequences) returns
    ``(s, J_s, J_theta, J_x)`` with shapes (S,), (S, S), (S, P), (S, I); ``theta`` is
    ``W_ih, W_hh, b_ih, b_hh`` flattened in that order (P entries), S = H or 2H (LSTM).
    """
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is unknown; expected one of {sorted(FAMILIES)}")
    H, I, G = hidden_size, input_size, FAMILIES[family]
    hp = sp.Matrix(sp.symbols(f"hp0:{H}", real=True))
    cp = sp.Matrix(sp.symbols(f"cp0:{H}", real=True))
    x = sp.Matrix(sp.symbols(f"x0:{I}", real=True))
    W_ih = sp.Matrix(G * H, I, sp.symbols(f"Wi0:{G * H * I}", real=True))
    W_hh = sp.Matrix(G * H, H, sp.symbols(f"Wh0:{G * H * H}", real=True))
    b_ih = sp.Matrix(sp.symbols(f"bi0:{G * H}", real=True))
    b_hh = sp.Matrix(sp.symbols(f"bh0:{G * H}", real=True))
    gi, gh = W_ih * x + b_ih, W_hh * hp + b_hh
    a = gi + gh
    act = lambda e: phi(activation, e)  # noqa: E731
    one = sp.ones(H, 1)
    em = lambda p, q: p.multiply_elementwise(q)  # noqa: E731
    if family == "RNN":
        state, prev = a.applyfunc(act), hp
    elif family == "ResidualRNN":
        state, prev = hp + a.applyfunc(act), hp
    elif family == "HighwayRNN":
        F, T = a[:H, :].applyfunc(act), a[H:, :].applyfunc(sig)
        state, prev = em(T, F) + em(one - T, hp), hp
    elif family == "LSTM":
        i, f = a[:H, :].applyfunc(sig), a[H:2 * H, :].applyfunc(sig)
        g, o = a[2 * H:3 * H, :].applyfunc(sp.tanh), a[3 * H:, :].applyfunc(sig)
        c = em(f, cp) + em(i, g)
        state, prev = sp.Matrix.vstack(em(o, c.applyfunc(sp.tanh)), c), sp.Matrix.vstack(hp, cp)
    else:  # GRU, torch's form: r multiplies (W_hn h + b_hn)
        r = (gi[:H, :] + gh[:H, :]).applyfunc(sig)
        z = (gi[H:2 * H, :] + gh[H:2 * H, :]).applyfunc(sig)
        n = (gi[2 * H:, :] + em(r, gh[2 * H:, :])).applyfunc(sp.tanh)
        state, prev = em(one - z, n) + em(z, hp), hp
    theta = list(W_ih) + list(W_hh) + list(b_ih) + list(b_hh)
    exprs = [state.T.tolist()[0], state.jacobian(prev).tolist(), state.jacobian(theta).tolist(), state.jacobian(x).tolist()]
    args = [list(W_ih), list(W_hh), list(b_ih), list(b_hh), list(x), list(prev)]
    exact = family in ("RNN", "ResidualRNN") and activation in ("identity", "relu")
    if exact:
        fn = sp.lambdify(args, exprs, modules=[{}])
    else:
        fn = sp.lambdify(args, exprs, modules=[{"sig": _mp_sig}, "mpmath"], cse=True)
    return {"fn": fn, "exact": exact, "S": prev.rows, "P": len(theta), "state": state, "prev": prev}


def model_gradient_by_formula(model: Any, x: Any, h0: Any = None, *, d_output: Any, d_h_n: Any = None,
                              d_c_n: Any = None, dps: int = 40) -> dict[str, np.ndarray]:
    r"""Gradients of :math:`L = \sum_t\langle g_t, h_t\rangle + \langle d_{h_n}, h_T\rangle (+\langle d_{c_n}, c_T\rangle)`
    for a single-layer unidirectional gradtheory model, by the derived sum of products of one-step
    Jacobians, at ``dps`` digits (or exactly, when every operation is rational).

    ``x`` (T, I) unbatched; ``h0`` (H,) or for LSTM a pair of (H,) arrays; ``d_output`` (T, H).
    Returns object arrays keyed by torch parameter names (present ones only), ``"x"``, ``"h0"``
    (and ``"c0"``), holding Fraction or mpmath.mpf.
    """
    import mpmath

    family = type(model).__name__
    if family not in FAMILIES or model.num_layers != 1 or model.bidirectional:
        raise NotImplementedError("model_gradient_by_formula takes a single-layer unidirectional RNN, "
                                  "ResidualRNN, HighwayRNN, LSTM or GRU")
    H, I, G = model.hidden_size, model.input_size, FAMILIES[family]
    step = cell_step(family, H, I, getattr(model, "nonlinearity", "tanh"))
    x = np.asarray(x, dtype=float)
    T = x.shape[0]
    S = step["S"]
    zeros = np.zeros(G * H)
    p = model.params
    with mpmath.mp.workdps(dps):
        lift = Fraction if step["exact"] else mpmath.mpf
        L = lambda v: _to_obj(v, lift)  # noqa: E731
        W_ih, W_hh = L(p["weight_ih_l0"]).ravel(), L(p["weight_hh_l0"]).ravel()
        b_ih = L(p["bias_ih_l0"] if model.bias else zeros)
        b_hh = L(p["bias_hh_l0"] if model.bias else zeros)
        if family == "LSTM":
            hh, cc = (np.zeros(H), np.zeros(H)) if h0 is None else h0
            s0 = np.concatenate([np.asarray(hh, float).ravel(), np.asarray(cc, float).ravel()])
        else:
            s0 = np.zeros(H) if h0 is None else np.asarray(h0, float).ravel()
        g = np.zeros((T, S))
        g[:, :H] = np.asarray(d_output, float).reshape(T, H)
        if d_h_n is not None:
            g[T - 1, :H] += np.asarray(d_h_n, float).ravel()
        if d_c_n is not None:
            g[T - 1, H:] += np.asarray(d_c_n, float).ravel()
        g = L(g)
        xs = L(x)
        s = L(s0)
        parts = []
        for t in range(T):
            s_new, J_s, J_p, J_x = step["fn"](list(W_ih), list(W_hh), list(b_ih), list(b_hh), list(xs[t]), list(s))
            parts.append((np.array(J_s, dtype=object), np.array(J_p, dtype=object), np.array(J_x, dtype=object)))
            s = np.array(s_new, dtype=object)
        zero = lift(0)
        d_theta = np.full(step["P"], zero, dtype=object)
        dx = np.full((T, I), zero, dtype=object)
        ds0 = np.full(S, zero, dtype=object)
        for t in range(T):
            v = g[t]
            for k in range(t, -1, -1):
                J_s, J_p, J_x = parts[k]
                d_theta = d_theta + v.dot(J_p)
                dx[k] = dx[k] + v.dot(J_x)
                v = v.dot(J_s)
            ds0 = ds0 + v
    sizes = [G * H * I, G * H * H, G * H, G * H]
    chunks = np.split(d_theta, np.cumsum(sizes)[:-1])
    out = {"weight_ih_l0": chunks[0].reshape(G * H, I), "weight_hh_l0": chunks[1].reshape(G * H, H)}
    if model.bias:
        out["bias_ih_l0"], out["bias_hh_l0"] = chunks[2], chunks[3]
    out["x"] = dx
    out["h0"] = ds0[:H]
    if family == "LSTM":
        out["c0"] = ds0[H:]
    return out
