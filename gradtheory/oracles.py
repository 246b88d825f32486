r"""Independent derivative oracles: central, Richardson, complex step, JVP/VJP, full Jacobians,
and exact forward-mode arithmetic (rationals or mpmath) for small recurrent models.

Error model (``h`` the step, ``u`` the unit round-off, ``M_k`` a bound on the k-th derivative
along the direction):

* central difference: :math:`|D_h - f'| \le \tfrac{h^2}{6} M_3 + \tfrac{u |f|}{h}`, optimal
  near ``h ~ u^{1/3}`` with error ~ ``u^{2/3}`` ~ 1e-11 relative;
* Richardson (central differences at h, h/2, h/4, ...; eliminating h^2, h^4, ...): the
  truncation error after ``m`` eliminations is :math:`O(h^{2m+2})`, estimated by the difference of
  the last two diagonal entries; round-off is amplified by at most ~ 3 per level;
* complex step: :math:`\operatorname{Im} f(x + i h v)/h = f'(x)v + O(h^2)` with no cancellation,
  so ``h = 1e-20`` gives the derivative to round-off (~ u relative). Needs ``f`` analytic and
  written without ``abs``/comparisons/conjugation on the perturbed path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ._tolerances import UNIT_ROUNDOFF
from ._validation import as_float_array, check_choice, check_positive_int

__all__ = [
    "central_difference",
    "richardson",
    "RichardsonResult",
    "complex_step",
    "directional_derivative",
    "jacobian",
    "model_loss",
    "exact_directional_derivative",
]

ArrayFn = Callable[[np.ndarray], Any]


def _direction(x: np.ndarray, v: Any) -> np.ndarray:
    v = as_float_array(v, "v")
    if v.shape != x.shape:
        raise ValueError(f"v must have the shape of x {x.shape}, got {v.shape}")
    return v


def central_difference(f: ArrayFn, x: Any, v: Any, h: float = 1e-5) -> np.ndarray:
    r"""Central difference :math:`(f(x + hv) - f(x - hv)) / 2h` (error :math:`h^2 M_3/6 + u|f|/h`)."""
    x = as_float_array(x, "x")
    v = _direction(x, v)
    if not (isinstance(h, (int, float)) and h > 0):
        raise ValueError(f"h must be a positive float, got {h!r}")
    return (np.asarray(f(x + h * v)) - np.asarray(f(x - h * v))) / (2.0 * h)


@dataclass(frozen=True)
class RichardsonResult:
    """Richardson-extrapolated derivative with an error estimate (same shape as the value)."""

    value: np.ndarray
    error: np.ndarray


def _richardson_table(columns: list) -> list[list]:
    """Richardson table over central differences D(h_k), h_k = h / 2^k (eliminates h^2, h^4, ...)."""
    table: list[list] = []
    for k, d in enumerate(columns):
        row = [d]
        for j in range(1, k + 1):
            c = 4.0**j
            row.append((c * row[j - 1] - table[k - 1][j - 1]) / (c - 1.0))
        table.append(row)
    return table


def _richardson_weights(levels: int) -> np.ndarray:
    """Weights c_k of the final extrapolant as a combination of the central differences D(h_k)."""
    return _richardson_table(list(np.eye(levels)))[-1][-1]


def richardson(
    f: ArrayFn, x: Any, v: Any, h: float = 1e-2, levels: int = 4, *, f_error: float | None = None
) -> RichardsonResult:
    r"""Richardson extrapolation of central differences at h, h/2, ..., h/2^(levels-1).

    Eliminates the :math:`h^2, h^4, \dots` terms. ``error`` adds two parts:

    * truncation: the larger of the last two corrections, :math:`|T_{kk} - T_{k,k-1}|` and
      :math:`|T_{kk} - T_{k-1,k-1}|` (each estimates the error of a less extrapolated entry,
      so for an asymptotic expansion it bounds the error of :math:`T_{kk}`);
    * round-off: each ``D(h_k)`` carries at most ``f_error / h_k`` (two evaluations of ``f``,
      each within ``f_error``, divided by ``2 h_k``), weighted by the extrapolation weights:
      :math:`\sum_k |c_k|\, \epsilon_f / h_k`.

    ``f_error`` bounds the absolute error of one evaluation of ``f``; default ``8 u max|f|``.
    Pass a larger value when ``f`` sums terms much larger than its result (cancellation), e.g.
    ``c u S`` with ``S`` the sum of the absolute values of the terms.
    """
    x = as_float_array(x, "x")
    v = _direction(x, v)
    levels = check_positive_int(levels, "levels", minimum=2)
    steps = [h / 2**k for k in range(levels)]
    fvals, differences = [], []
    for hk in steps:
        fp, fm = np.asarray(f(x + hk * v), dtype=float), np.asarray(f(x - hk * v), dtype=float)
        fvals.append(max(np.max(np.abs(fp)), np.max(np.abs(fm))))
        differences.append((fp - fm) / (2 * hk))
    table = _richardson_table(differences)
    best = table[-1][-1]
    trunc = np.maximum(np.abs(best - table[-1][-2]), np.abs(best - table[-2][-1]))
    eps_f = 8 * UNIT_ROUNDOFF * max(fvals) if f_error is None else max(float(f_error), 8 * UNIT_ROUNDOFF * max(fvals))
    weights = _richardson_weights(levels)
    roundoff = eps_f * float(np.sum(np.abs(weights) / np.array(steps)))
    return RichardsonResult(value=best, error=trunc + roundoff)


def complex_step(f: ArrayFn, x: Any, v: Any, h: float = 1e-20) -> np.ndarray:
    r"""Complex-step derivative :math:`\operatorname{Im} f(x + i h v) / h` (exact to round-off).

    The imaginary part ``h f'(x) v`` must stay a normal float to carry full precision: when it
    falls below ``2**-969`` (53 bits above the subnormal range, e.g. for derivatives ~1e-290),
    the step is enlarged so that it lands near 1e-200, up to ``h = 1e-10``, where the relative
    truncation error (h^2/6) |f'''/f'| is still ~1e-21 for O(1) curvature.
    """
    x = as_float_array(x, "x")
    v = _direction(x, v)
    im = np.imag(np.asarray(f(x + 1j * h * v)))
    small = np.max(np.abs(im)) if im.size else 0.0
    if 0.0 < small < 2.0**-969 and h < 1e-10:
        h = min(1e-10, h * (1e-200 / small))  # 1e-200 / small >= 1e92: no underflow even for h ~ 1e-250
        im = np.imag(np.asarray(f(x + 1j * h * v)))
    return im / h


def directional_derivative(f: ArrayFn, x: Any, v: Any, method: str = "complex") -> np.ndarray:
    """Directional derivative (a JVP) of ``f`` at ``x`` along ``v`` by ``complex``,
    ``richardson`` or ``central``."""
    check_choice(method, "method", ("complex", "richardson", "central"))
    if method == "complex":
        return complex_step(f, x, v)
    if method == "richardson":
        return richardson(f, x, v).value
    return central_difference(f, x, v)


def jacobian(f: ArrayFn, x: Any, method: str = "complex") -> np.ndarray:
    """Full Jacobian of ``f`` at ``x``: shape ``f(x).shape + x.shape``, one column per element."""
    x = as_float_array(x, "x")
    if x.size == 0:  # an empty parameter (e.g. weight_hh of a cell without recurrent weight)
        return np.zeros(np.shape(f(x)) + x.shape)
    cols = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = 1.0
        cols.append(directional_derivative(f, x, e.reshape(x.shape), method))
    J = np.stack(cols, axis=-1)
    return J.reshape(J.shape[:-1] + x.shape)


def model_loss(
    model: Any,
    x: Any,
    *,
    wrt: str,
    d_output: Any,
    h0: Any = None,
    d_h_n: Any = None,
    d_c_n: Any = None,
) -> tuple[Callable[[np.ndarray], Any], np.ndarray]:
    r"""The scalar loss :math:`L = \langle d_{out}, out\rangle + \langle d_{h_n}, h_n\rangle
    (+ \langle d_{c_n}, c_n\rangle)` as a function of one argument, for the oracles.

    ``wrt`` is a parameter name, ``"x"``, ``"h0"`` or ``"c0"``. Returns ``(f, point)``; ``f``
    accepts real or complex arrays (complex step), running the model's own forward.
    """
    params = dict(model.params)
    is_lstm = model.num_states == 2

    def f(value):
        p, xx, hh = params, x, h0
        if wrt == "x":
            xx = value
        elif wrt == "h0":
            hh = (value, h0[1]) if is_lstm else value
        elif wrt == "c0":
            hh = (h0[0], value)
        else:
            p = dict(params)
            p[wrt] = value
        res = model.apply(p, xx, hh)
        L = np.sum(np.asarray(d_output) * res.output)
        if d_h_n is not None:
            L = L + np.sum(np.asarray(d_h_n) * res.h_n)
        if d_c_n is not None:
            L = L + np.sum(np.asarray(d_c_n) * res.c_n)
        return L

    if wrt == "x":
        point = np.asarray(x, dtype=float)
    elif wrt == "h0":
        point = np.asarray(h0[0] if is_lstm else h0, dtype=float)
    elif wrt == "c0":
        point = np.asarray(h0[1], dtype=float)
    elif wrt in params:
        point = params[wrt]
    else:
        raise ValueError(f"wrt={wrt!r} is unknown; expected 'x', 'h0', 'c0' or one of {sorted(params)}")
    return f, point


# ---------------------------------------------------------------------------------------------
# Exact forward-mode arithmetic for small cases: an implementation independent of the numpy
# kernels (plain Python loops over scalars), differentiated in forward mode with dual numbers
# over an exact field: Fraction for rational models (identity, relu), mpmath at ``dps`` digits
# otherwise.


class _Dual:
    """a + b*eps with eps^2 = 0, over any field (Fraction, mpmath.mpf)."""

    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __add__(self, o):
        return _Dual(self.a + o.a, self.b + o.b) if isinstance(o, _Dual) else _Dual(self.a + o, self.b)

    __radd__ = __add__

    def __sub__(self, o):
        return _Dual(self.a - o.a, self.b - o.b) if isinstance(o, _Dual) else _Dual(self.a - o, self.b)

    def __rsub__(self, o):
        return _Dual(o - self.a, -self.b)

    def __mul__(self, o):
        if isinstance(o, _Dual):
            return _Dual(self.a * o.a, self.a * o.b + self.b * o.a)
        return _Dual(self.a * o, self.b * o)

    __rmul__ = __mul__

    def __truediv__(self, o):
        if isinstance(o, _Dual):
            return _Dual(self.a / o.a, (self.b * o.a - self.a * o.b) / (o.a * o.a))
        return _Dual(self.a / o, self.b / o)

    def __rtruediv__(self, o):
        return _Dual(o / self.a, -o * self.b / (self.a * self.a))


def _make_scalar_ops(kind: str, dps: int):
    import mpmath

    ctx = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    ctx.dps = dps

    def lift(value: float):
        return Fraction(value) if kind == "exact" else ctx.mpf(value)

    def tanh(d):
        t = ctx.tanh(d.a)
        return _Dual(t, (1 - t * t) * d.b)

    def sig(d):
        s = 1 / (1 + ctx.exp(-d.a))
        return _Dual(s, s * (1 - s) * d.b)

    def relu(d):
        return d if d.a > 0 else _Dual(d.a * 0, d.b * 0)

    def ident(d):
        return d

    return lift, {"tanh": tanh, "sigmoid": sig, "relu": relu, "identity": ident}


def exact_directional_derivative(
    model: Any,
    x: Any,
    direction: Mapping[str, Any],
    *,
    d_output: Any,
    h0: Any = None,
    d_h_n: Any = None,
    d_c_n: Any = None,
    dps: int = 50,
) -> tuple[Any, Any]:
    r"""Exact value and directional derivative of the loss of ``model_loss`` for a small model.

    Single-layer, unidirectional model of any cell that carries an independent scalar form of its
    equations (``cell.equations``: every registered cell); unbatched ``x`` (T, n_in).
    ``direction`` maps parameter names and/or ``"x"``, ``"h0"``, ``"c0"`` to arrays (missing
    keys: zero). Returns ``(L, dL)``: :class:`fractions.Fraction` when every operation is
    rational (``cell.rational``: e.g. identity/relu RNN; the float64 inputs are converted
    exactly), else ``mpmath.mpf`` at ``dps`` digits. Cost grows like T * n^2 scalar operations:
    meant for n <= 4, T <= 8. The numpy step, backward and Jacobian are never called.
    """
    from .cells import DENSE, ScalarOps, recurrent_input
    from .models import RecurrentModel

    if not isinstance(model, RecurrentModel) or getattr(model.cell, "equations", None) is None:
        raise TypeError(
            f"model must be a gradtheory model whose cell has an independent scalar form (cell.equations), "
            f"got {type(model).__name__}"
        )
    if model.num_layers != 1 or model.bidirectional:
        raise NotImplementedError("exact_directional_derivative supports a single unidirectional layer")
    x = as_float_array(x, "x", ndim=2)
    T, n_in = x.shape
    H = model.hidden_size
    cell = model.cell
    lift, ops = _make_scalar_ops("exact" if getattr(cell, "rational", False) else "mp", dps)
    act = getattr(cell, "activation", None)
    scalar_ops = ScalarOps(
        phi=ops[act.name] if act is not None else ops["identity"], sigmoid=ops["sigmoid"], tanh=ops["tanh"]
    )
    zero = lift(0.0)

    def dual_array(value, tangent):
        value = np.asarray(value, dtype=float)
        tangent = np.zeros_like(value) if tangent is None else np.asarray(tangent, dtype=float)
        if value.ndim == 2:
            return [[_Dual(lift(a), lift(b)) for a, b in zip(rv, rt)] for rv, rt in zip(value, tangent)]
        return [_Dual(lift(a), lift(b)) for a, b in zip(value, tangent)]

    P = {k: dual_array(v, direction.get(k)) for k, v in model.params.items()}
    X = dual_array(x, direction.get("x"))
    S = model.num_states
    if h0 is None:
        values = [np.zeros(H)] * S
    else:
        values = [np.asarray(v, float).reshape(H) for v in (h0 if S > 1 else (h0,))]
    names = ["h0", "c0"][:S]
    state = tuple(
        dual_array(v, None if direction.get(n) is None else np.asarray(direction[n]).reshape(H))
        for v, n in zip(values, names)
    )

    W_ih, W_hh = P["weight_ih_l0"], P["weight_hh_l0"]
    b_ih, b_hh = P.get("bias_ih_l0"), P.get("bias_hh_l0")
    outputs = []
    for t in range(T):
        gi = DENSE.exact(W_ih, X[t])  # the input projection is always a dense matrix
        gh = cell.recurrence.exact(W_hh, recurrent_input(cell.recurrence, state, lambda parts: sum(parts, [])))
        if b_ih is not None:
            gi = [g + b for g, b in zip(gi, b_ih)]
            gh = [g + b for g, b in zip(gh, b_hh)]
        state, _ = cell.equations(gi, gh, state, scalar_ops)
        outputs.append(state[0])
    d_output = np.asarray(d_output, float).reshape(T, H)
    L = _Dual(zero, zero)
    for t in range(T):
        for k in range(H):
            L = L + outputs[t][k] * lift(d_output[t, k])
    for k_state, w_final in enumerate((d_h_n, d_c_n)[:S]):
        if w_final is not None:
            for k, w in enumerate(np.asarray(w_final, float).reshape(H)):
                L = L + state[k_state][k] * lift(w)
    return L.a, L.b
