r"""The Elman step as SymPy expressions, and BPTT evaluated from the derived formula at high precision.

This is the bridge between the derivations and the numeric models. SymPy derives, for one step
of :math:`h_t = \phi(W_{hh} h_{t-1} + W_{ih} x_t + b)` with symbolic entries, the one-step
Jacobian :math:`\partial h_t/\partial h_{t-1}` and the immediate partials
:math:`\partial^+ h_t/\partial\theta`; these small expressions are lambdified once per
(activation, sizes). :func:`bptt_by_formula` then evaluates the derived formula

.. math:: \frac{\partial L}{\partial\theta} = \sum_{t=1}^{T} \sum_{k=1}^{t}
          g_t^\top \Big(\prod_{j=k+1}^{t} \frac{\partial h_j}{\partial h_{j-1}}\Big)
          \frac{\partial^+ h_k}{\partial\theta}

step by step in exact rationals (identity, relu: every operation is rational) or in ``dps``
-digit mpmath arithmetic (tanh, sigmoid). Deriving step by step instead of differentiating the
unrolled loss avoids expression swell: the unrolled tanh case n = 3, T = 6 took 220 s to
differentiate and substitute; this takes milliseconds.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache
from typing import Any

import numpy as np
import sympy as sp

from ..cells import get

__all__ = ["elman_step", "bptt_by_formula", "EXACT_ACTIVATIONS"]

EXACT_ACTIVATIONS = ("identity", "relu")


@cache
def elman_step(activation: str, hidden_size: int, input_size: int) -> dict[str, Any]:
    """Symbols and SymPy-derived derivatives of one Elman step (cached).

    Keys: ``h_prev, x, W, U, b`` (symbols), ``h`` (the new state), ``J_h`` = dh/dh_prev
    (H, H), ``J_W`` (H, H*H), ``J_U`` (H, H*I), ``J_b`` (H, H), ``J_x`` (H, I), and ``fn``: the
    lambdified map (W, U, b, x, h_prev) -> (h, J_h, J_W, J_U, J_b, J_x).
    """
    H, I = hidden_size, input_size
    h_prev = sp.Matrix(sp.symbols(f"hp0:{H}", real=True))
    x = sp.Matrix(sp.symbols(f"x0:{I}", real=True))
    W = sp.Matrix(H, H, sp.symbols(f"W0:{H * H}", real=True))
    U = sp.Matrix(H, I, sp.symbols(f"U0:{H * I}", real=True))
    b = sp.Matrix(sp.symbols(f"b0:{H}", real=True))
    from ._cells import cell_equations  # (imports this module's _to_obj)

    a = W * h_prev + U * x + b
    (h,), _ = cell_equations(get("rnn").cell(activation), U * x + b, W * h_prev, (h_prev,))  # the cell's own equations
    out = {
        "h_prev": h_prev,
        "x": x,
        "W": W,
        "U": U,
        "b": b,
        "a": a,
        "h": h,
        "J_h": h.jacobian(h_prev),
        "J_W": h.jacobian(list(W)),
        "J_U": h.jacobian(list(U)),
        "J_b": h.jacobian(b),
        "J_x": h.jacobian(x),
    }
    args = list(W) + list(U) + list(b) + list(x) + list(h_prev)
    exprs = [out[k].tolist() for k in ("h", "J_h", "J_W", "J_U", "J_b", "J_x")]
    if activation in EXACT_ACTIVATIONS:
        # Rational arithmetic: plain Python code (integers stay integers, Piecewise becomes a
        # conditional expression), so Fraction inputs give Fraction outputs.
        if any(
            isinstance(e, sp.Rational) and not e.is_Integer for m in exprs for e in sp.preorder_traversal(sp.Matrix(m))
        ):
            raise AssertionError("non-integer rational constant would be printed as a float")
        out["fn"] = sp.lambdify(args, exprs, modules=[{}])
    else:
        out["fn"] = sp.lambdify(args, exprs, modules="mpmath")
    return out


def _to_obj(values: Any, lift) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        out[idx] = lift(float(v))
    return out


def bptt_by_formula(
    activation: str,
    W_hh: Any,
    W_ih: Any,
    b: Any,
    x: Any,
    h0: Any,
    d_output: Any,
    d_h_n: Any = None,
    *,
    dps: int = 40,
) -> dict[str, np.ndarray]:
    r"""Gradient of :math:`L = \sum_t \langle g_t, h_t\rangle + \langle g_N, h_T\rangle` by the
    derived sum-of-products formula, exactly (identity, relu) or at ``dps`` digits.

    Shapes: W_hh (H, H), W_ih (H, I), b (H,) (the sum b_ih + b_hh, or zeros), x (T, I), h0 (H,),
    d_output (T, H), d_h_n (H,). Returns object arrays (Fraction or mpmath.mpf):
    ``W_hh, W_ih, b, x, h0`` and the forward states ``h`` (T+1, H).
    """
    import mpmath

    W_hh = np.asarray(W_hh, dtype=float)
    H = W_hh.shape[0]
    W_ih = np.asarray(W_ih, dtype=float)
    I = W_ih.shape[1]
    x = np.asarray(x, dtype=float)
    T = x.shape[0]
    exact = activation in EXACT_ACTIVATIONS
    ctx = mpmath.mp
    with ctx.workdps(dps):
        lift = (lambda v: Fraction(v)) if exact else ctx.mpf
        Wo, Uo, bo, xo = _to_obj(W_hh, lift), _to_obj(W_ih, lift), _to_obj(b, lift), _to_obj(x, lift)
        g = _to_obj(d_output, lift)
        if d_h_n is not None:
            g[T - 1] = g[T - 1] + _to_obj(d_h_n, lift)
        step = elman_step(activation, H, I)["fn"]
        hs = [_to_obj(h0, lift)]
        parts = []
        for t in range(T):
            res = step(*Wo.ravel(), *Uo.ravel(), *bo, *xo[t], *hs[-1])
            h_new, J_h, J_W, J_U, J_b, J_x = (
                np.array(r.tolist() if hasattr(r, "tolist") else r, dtype=object).reshape(s)
                for r, s in zip(res, [(H,), (H, H), (H, H * H), (H, H * I), (H, H), (H, I)])
            )
            if exact:
                _check_exact(h_new, J_h)
            hs.append(h_new)
            parts.append((J_h, J_W, J_U, J_b, J_x))
        zero = lift(0.0)
        dW = np.full(H * H, zero, dtype=object)
        dU = np.full(H * I, zero, dtype=object)
        db = np.full(H, zero, dtype=object)
        dx = np.full((T, I), zero, dtype=object)
        dh0 = np.full(H, zero, dtype=object)
        for t in range(T):  # sum over t of g_t^T (prod of Jacobians) d+h_k/dtheta, k = t..1
            v = g[t]
            for k in range(t, -1, -1):
                J_h, J_W, J_U, J_b, J_x = parts[k]
                dW = dW + v.dot(J_W)
                dU = dU + v.dot(J_U)
                db = db + v.dot(J_b)
                dx[k] = dx[k] + v.dot(J_x)
                v = v.dot(J_h)
            dh0 = dh0 + v
    return {
        "W_hh": dW.reshape(H, H),
        "W_ih": dU.reshape(H, I),
        "b": db,
        "x": dx,
        "h0": dh0,
        "h": np.array(hs, dtype=object),
    }


def _check_exact(*arrays: np.ndarray) -> None:
    for arr in arrays:
        for v in arr.ravel():
            if not isinstance(v, (Fraction, int)):
                raise AssertionError(f"exact evaluation produced a non-rational {type(v).__name__}: {v!r}")


def model_point(model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W_hh, W_ih, b) of a single-layer gradtheory RNN, b = b_ih + b_hh (zeros without bias)."""
    p = model.params
    H = model.hidden_size
    b = p["bias_ih_l0"] + p["bias_hh_l0"] if model.bias else np.zeros(H)
    return p["weight_hh_l0"], p["weight_ih_l0"], b
