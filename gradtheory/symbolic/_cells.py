r"""Every registered cell as SymPy expressions, and BPTT of whole models by the derived formula at high precision.

A cell's SymPy form is its own scalar equations (``cell.equations`` in ``gradtheory/cells/``,
written once, independently of the numpy step) evaluated on SymPy symbols. For one step SymPy
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
from functools import cache
from typing import Any

import numpy as np
import sympy as sp

from ._core import sig
from ._elman import _to_obj
from .activation_bounds import phi

__all__ = ["cell_equations", "sympy_ops", "cell_step", "model_gradient_by_formula"]


def sympy_ops(activation: Any = "tanh") -> Any:
    """:class:`gradtheory.cells.ScalarOps` over SymPy: ``phi`` the activation (a name, or any
    callable such as an undefined ``sympy.Function``), ``sigmoid`` the opaque :class:`sig`."""
    from ..cells import ScalarOps

    act = (lambda e: phi(activation, e)) if isinstance(activation, str) else activation
    return ScalarOps(phi=act, sigmoid=sig, tanh=sp.tanh)


def cell_equations(cell: Any, gi: Any, gh: Any, prev: tuple, activation: Any = None):
    """A cell's own scalar equations (``cell.equations``) on SymPy column matrices.

    ``gi``, ``gh``: (G*H, 1) matrices (input projection and recurrent term, biases included as the
    caller wishes); ``prev``: the previous state components as (H, 1) matrices; ``activation``:
    a name or a SymPy callable (default: the cell's own activation). Returns ``(state, parts)``:
    the new state components and the cell's named intermediates (gates) as (H, 1) matrices.
    """
    if activation is None:
        act = getattr(cell, "activation", None)
        activation = act.name if act is not None else "identity"
    state, parts = cell.equations(list(gi), list(gh), tuple(list(p) for p in prev), sympy_ops(activation))
    return tuple(sp.Matrix(c) for c in state), {k: sp.Matrix(v) for k, v in parts.items()}


def _make_cell(name: str, activation: str) -> Any:
    from ..cells import get

    spec = get(name)
    return spec.cell(activation) if spec.nonlinearities else spec.cell()


def _mp_sig(a):
    import mpmath

    return 1 / (1 + mpmath.exp(-a))


@cache
def cell_step(family: str, hidden_size: int, input_size: int, activation: str = "tanh") -> dict[str, Any]:
    """SymPy-derived one-step derivatives of a registered cell (cached), lambdified.

    ``family`` is the cell's registry name (``rnn``, ``lstm``, ...). ``fn(W_ih, W_hh, b_ih, b_hh,
    x, s_prev)`` (flat sequences) returns ``(s, J_s, J_theta, J_x)`` with shapes (S,), (S, S),
    (S, P), (S, I); ``theta`` is ``W_ih, W_hh, b_ih, b_hh`` flattened in that order (P entries),
    S = n_states * H. The state is the cell's own :meth:`equations`.
    """
    from ..cells import recurrent_input

    cell = _make_cell(family, activation)
    H, I, G = hidden_size, input_size, cell.gates
    prev = [sp.Matrix(sp.symbols(f"{n}0:{H}", real=True)) for n in ("hp", "cp", "sp")[: cell.n_states]]
    x = sp.Matrix(sp.symbols(f"x0:{I}", real=True))
    W_ih = sp.Matrix(G * H, I, sp.symbols(f"Wi0:{G * H * I}", real=True))
    hh_shape = cell.recurrence.weight_shape(G * H, H)
    n_hh = int(np.prod(hh_shape))
    W_hh_syms = sp.symbols(f"Wh0:{n_hh}", real=True)
    W_hh = sp.Matrix(*hh_shape, W_hh_syms) if len(hh_shape) == 2 else list(W_hh_syms)
    b_ih = sp.Matrix(sp.symbols(f"bi0:{G * H}", real=True))
    b_hh = sp.Matrix(sp.symbols(f"bh0:{G * H}", real=True))
    gi = W_ih * x + b_ih
    rec_in = recurrent_input(cell.recurrence, [list(v) for v in prev], lambda parts: sum(parts, []))
    gh = sp.Matrix(cell.recurrence.exact(W_hh.tolist() if len(hh_shape) == 2 else W_hh, rec_in)) + b_hh
    state_parts, _ = cell_equations(cell, gi, gh, tuple(prev), activation if cell.activation is not None else None)
    state, prev_v = sp.Matrix.vstack(*state_parts), sp.Matrix.vstack(*prev)
    theta = list(W_ih) + list(W_hh_syms) + list(b_ih) + list(b_hh)
    exprs = [
        state.T.tolist()[0],
        state.jacobian(prev_v).tolist(),
        state.jacobian(theta).tolist(),
        state.jacobian(x).tolist(),
    ]
    args = [list(W_ih), list(W_hh_syms), list(b_ih), list(b_hh), list(x), list(prev_v)]
    exact = bool(getattr(cell, "rational", False))
    if exact:
        fn = sp.lambdify(args, exprs, modules=[{}])
    else:
        fn = sp.lambdify(args, exprs, modules=[{"sig": _mp_sig}, "mpmath"], cse=True)
    return {
        "fn": fn,
        "exact": exact,
        "S": prev_v.rows,
        "P": len(theta),
        "state": state,
        "prev": prev_v,
        "hh_shape": hh_shape,
    }


def model_gradient_by_formula(
    model: Any, x: Any, h0: Any = None, *, d_output: Any, d_h_n: Any = None, d_c_n: Any = None, dps: int = 40
) -> dict[str, np.ndarray]:
    r"""Gradients of :math:`L = \sum_t\langle g_t, h_t\rangle + \langle d_{h_n}, h_T\rangle (+\langle d_{c_n}, c_T\rangle)`
    for a single-layer unidirectional gradtheory model, by the derived sum of products of one-step
    Jacobians, at ``dps`` digits (or exactly, when every operation is rational).

    ``x`` (T, I) unbatched; ``h0`` (H,) or for LSTM a pair of (H,) arrays; ``d_output`` (T, H).
    Returns object arrays keyed by torch parameter names (present ones only), ``"x"``, ``"h0"``
    (and ``"c0"``), holding Fraction or mpmath.mpf.
    """
    import mpmath

    from ..cells import spec_of

    spec = spec_of(model.cell)
    if spec is None or model.num_layers != 1 or model.bidirectional:
        raise NotImplementedError(
            "model_gradient_by_formula takes a single-layer unidirectional model of a registered cell"
        )
    if getattr(model.cell, "equations", None) is None:
        raise NotImplementedError(
            f"model_gradient_by_formula needs the cell's independent scalar form (cell.equations); "
            f"{type(model.cell).__name__} has none"
        )
    H, I, G = model.hidden_size, model.input_size, model.cell.gates
    step = cell_step(spec.name, H, I, getattr(model, "nonlinearity", "tanh"))
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
        if model.num_states > 1:
            parts0 = [np.zeros(H)] * model.num_states if h0 is None else h0
            s0 = np.concatenate([np.asarray(v, float).ravel() for v in parts0])
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
    sizes = [G * H * I, int(np.prod(step["hh_shape"])), G * H, G * H]
    chunks = np.split(d_theta, np.cumsum(sizes)[:-1])
    out = {"weight_ih_l0": chunks[0].reshape(G * H, I), "weight_hh_l0": chunks[1].reshape(step["hh_shape"])}
    if model.bias:
        out["bias_ih_l0"], out["bias_hh_l0"] = chunks[2], chunks[3]
    out["x"] = dx
    out["h0"] = ds0[:H]
    if model.num_states > 1:
        out["c0"] = ds0[H : 2 * H]
    return out
