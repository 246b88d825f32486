r"""Gradient flow through time and Lyapunov exponents, for any cell.

For a single-layer recurrent model with state :math:`s_t` (``h_t``, or the joint ``(h_t, c_t)``
for LSTM) and one-step Jacobians :math:`J_t = \partial s_t / \partial s_{t-1}` (``t = 1..T``,
``s_0`` the initial state), the chain rule gives, for the scalar loss
:math:`L = \langle r, h_T\rangle`,

.. math:: \frac{\partial L}{\partial s_k} = r^\top J_T J_{T-1} \cdots J_{k+1}.

Over long horizons the gradient behaves like :math:`e^{\lambda_1 (T-k)}`, where
:math:`\lambda_1 = \lim_T \frac1T \ln \sigma_1(J_T\cdots J_1)` is the top Lyapunov exponent of
the trajectory. :func:`gradient_flow` evaluates :math:`\ln\|\partial L/\partial s_k\|` for every
``k`` in log space (a unit vector and a running log-scale), so ``T = 10**6`` neither underflows
nor overflows; :func:`lyapunov_exponent` and :func:`lyapunov_spectrum` estimate the exponents
with the QR method (Benettin et al. 1980; Engelken, Wolf & Abbott 2020).

Any cell works: the generic path runs the cell's own step, backward and one-step Jacobian
through the per-step functions of the one time loop (``gradtheory.models.step_forward`` and ``step_backward``), storing
the states and recomputing each step's cache on the way back. A registered cell may name a
fast kernel (``CellSpec.fast_kernel``, e.g. :mod:`gradtheory._elman_kernel` for the Elman RNN).
The bounds themselves (gamma, norms, envelope) are in :mod:`gradtheory.bounds`.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from ._logspace import add as _add
from ._logspace import norm as _norm
from ._logspace import start_vector
from ._validation import as_float_array, check_positive_int
from .models import (
    LayerParams,
    RecurrentModel,
    input_projection,
    layer_inputs,
    step_backward,
    step_forward,
)
from .models import torch_cell as _torch_cell

__all__ = [
    "gradient_flow",
    "jacobian_norms",
    "lyapunov_exponent",
    "lyapunov_spectrum",
]


# -- input preparation --------------------------------------------------------------------------
def as_single_layer_model(model: Any, func: str) -> RecurrentModel:
    """``model`` as a single-layer unidirectional gradtheory model (a torch module is converted),
    or TypeError/NotImplementedError naming ``func``."""
    if not isinstance(model, RecurrentModel):
        if _torch_cell.is_torch_rnn(model):
            from .models.torch_interop import from_torch

            model = from_torch(model)  # TypeError for torch objects that are not RNN/LSTM/GRU
        else:
            raise TypeError(
                f"model must be a gradtheory RecurrentModel (any cell), a torch.nn.RNN/LSTM/GRU "
                "or a torch cell (gradtheory.from_torch_cell), "
                f"got {type(model).__name__}"
            )
    if model.num_layers != 1:
        raise NotImplementedError(
            f"{func} supports single-layer models; model has num_layers={model.num_layers} "
            "(build a one-layer model from the layer you want to study)"
        )
    if model.bidirectional:
        raise NotImplementedError(f"{func} supports unidirectional models; model has bidirectional=True")
    return model


def _prepare(model: Any, x: Any, h0: Any, func: str):
    """Return (model, x (T, I), initial states: tuple of (H,) arrays)."""
    model = as_single_layer_model(model, func)
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

    if model.num_states == 2:
        if h0 is None:
            h0 = (None, None)
        if not (isinstance(h0, tuple) and len(h0) == 2):
            raise TypeError(f"h0 must be a tuple (h0, c0) for {type(model).__name__}, got {type(h0).__name__}")
        states0: tuple[np.ndarray, ...] = (one(h0[0], "h0[0]"), one(h0[1], "h0[1]"))
    else:
        if isinstance(h0, tuple):
            raise TypeError(f"h0 must be an array for {type(model).__name__}, got a tuple")
        states0 = (one(h0, "h0"),)
    return model, x, states0


def _fast_kernel(model: RecurrentModel) -> Any:
    """The fast kernel named by the registry entry of exactly this model's cell, or None.

    ``CellSpec.fast_kernel`` is a module name (``"gradtheory._elman_kernel"``) or
    ``"module:attribute"`` (one object per cell in a shared module). The kernel may define any of
    ``gradient_flow(model, x, states0, readout)``, ``lyapunov_exponent(model, x, states0, v, every)``,
    ``lyapunov_spectrum(model, x, states0, k, every)`` and ``jacobian_stepper(model, x, states0)``;
    the generic path covers the others.
    """
    from .cells import spec_of

    spec = spec_of(model.cell)
    if spec is None or spec.fast_kernel is None or type(model) is not spec.model:
        return None
    module, _, attribute = spec.fast_kernel.partition(":")
    kernel = importlib.import_module(module)
    return getattr(kernel, attribute) if attribute else kernel


# -- any cell: forward storing the states, backward recomputing each step's cache ---------------
class _Trajectory:
    """The states of one sequence (T + 1 rows each) and the per-step machinery of ``_scan``."""

    def __init__(self, model: RecurrentModel, x: np.ndarray, states0: tuple) -> None:
        self.cell = model.cell
        self.p: LayerParams = model.layer_params(0, 0)
        if self.p.named is None:
            self.gi = input_projection(self.cell, x, self.p)
        else:  # a cell with its own layout: its per-step inputs for a batch of one
            self.gi, _ = layer_inputs(self.cell, x[:, None, :], self.p)
        T = x.shape[0]
        self.T = T
        self.states = tuple(np.empty((T + 1, s.shape[0])) for s in states0)
        for k, s in enumerate(states0):
            self.states[k][0] = s
        state = tuple(s[None, :] for s in states0)
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite states are reported below
            for t in range(T):
                state, _ = step_forward(self.cell, self._input(t), state, self.p)
                for k, s in enumerate(state):
                    self.states[k][t + 1] = s[0]
        for s in self.states:
            if not np.all(np.isfinite(s)):
                bad = int(np.argwhere(~np.isfinite(s))[0, 0])
                raise FloatingPointError(f"the forward pass overflowed at step t={bad} (state not finite)")

    def cache(self, t: int) -> Any:
        """Cache of step t (1-based) recomputed from the stored state s_{t-1}: bitwise the forward's."""
        prev = tuple(s[t - 1][None, :] for s in self.states)
        return step_forward(self.cell, self._input(t - 1), prev, self.p)[1]

    def _input(self, t: int) -> Any:
        """Step t's input (0-based): a (1, G*H) slice of gi, or a layout cell's own step input."""
        return self.gi[t : t + 1] if self.p.named is None else self.gi[t]

    def jacobian(self, t: int) -> np.ndarray:
        return self.cell.step_jacobian(self.cache(t), self.p.W_hh)[0]


def _generic_backward_log_norms(traj: _Trajectory, readout: np.ndarray) -> np.ndarray:
    T = traj.T
    out = np.full(T + 1, -np.inf)
    r_norm = _norm(readout)
    if r_norm == 0.0:
        return out
    L, comp = math.log(r_norm), 0.0
    out[T] = L
    d_state = (readout[None, :] / r_norm,) + tuple(np.zeros((1, readout.shape[0])) for _ in traj.states[1:])
    for t in range(T, 0, -1):
        d_state = step_backward(traj.cell, d_state, traj.cache(t), traj.p.W_hh).d_prev
        nrm = _norm(np.concatenate([d.ravel() for d in d_state]))
        if nrm == 0.0:
            break  # every earlier gradient is zero: entries stay -inf
        if not math.isfinite(nrm):
            raise FloatingPointError(f"one backward step overflowed at t={t} (||J_t|| too large for float64)")
        L, comp = _add(L, comp, math.log(nrm))
        out[t - 1] = L + comp
        d_state = tuple(d / nrm for d in d_state)
    return out


def _readout(model: RecurrentModel, readout: Any) -> np.ndarray:
    H = model.hidden_size
    if readout is None:
        r = np.zeros(H)
        r[0] = 1.0
        return r
    return as_float_array(readout, "readout", shape=(H,))


def jacobian_norms(model: Any, x: Any, h0: Any = None) -> np.ndarray:
    r"""Spectral norms :math:`\|J_t\|_2` of the one-step Jacobians along the trajectory, shape (T,).

    ``J_t = ds_t/ds_{t-1}`` from ``model.jacobians`` (joint (h, c) state for LSTM). ``x`` is one
    sequence (T, input_size); this materialises all T Jacobians (T * S * S floats).
    """
    model, x, states0 = _prepare(model, x, h0, "jacobian_norms")
    if model.num_states == 2:
        h0m = (states0[0][None, :], states0[1][None, :])
    else:
        h0m = states0[0][None, :]
    result = model.forward(x, h0m)
    J = model.jacobians(result)
    return np.linalg.norm(J, 2, axis=(1, 2))


def gradient_flow(model: Any, x: Any, readout: Any = None, h0: Any = None) -> np.ndarray:
    r"""Log-norms of the gradient through time: entry k is :math:`\ln\|\partial L/\partial s_k\|_2`.

    ``model``: a single-layer unidirectional gradtheory model of any cell, or a
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
    gradient (e.g. relu units all off, or ``readout = 0``) gives ``-inf``; so does a step where
    every unit is saturated, since :math:`\phi'` is evaluated as the model's BPTT (and torch)
    evaluates it, e.g. :math:`1 - h^2` for tanh, which is exactly 0 for :math:`|a| > 19.1`. Memory: the forward
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
    kernel = _fast_kernel(model)
    if kernel is not None and hasattr(kernel, "gradient_flow"):
        return kernel.gradient_flow(model, x, states0, r)
    return _generic_backward_log_norms(_Trajectory(model, x, states0), r)


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
        return _torch_cell.torch_cell_lyapunov_exponent(
            model, x, h0, reorthonormalize_every=reorthonormalize_every, v0=v0
        )
    model, x, states0 = _prepare(model, x, h0, "lyapunov_exponent")
    every = _check_every(reorthonormalize_every)
    v = start_vector(model.state_size, v0)
    T = x.shape[0]
    kernel = _fast_kernel(model)
    if kernel is not None and hasattr(kernel, "lyapunov_exponent"):
        return kernel.lyapunov_exponent(model, x, states0, v, every)
    traj = _Trajectory(model, x, states0)
    total, comp = 0.0, 0.0
    for t in range(1, T + 1):
        v = traj.jacobian(t) @ v
        nrm = _norm(v)
        if nrm == 0.0:
            return -math.inf
        total, comp = _add(total, comp, math.log(nrm))
        v = v / nrm
    return (total + comp) / T


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
    S = model.state_size
    k = S if k is None else check_positive_int(k, "k")
    if k > S:
        raise ValueError(f"k must be <= the state dimension {S}, got {k}")
    T = x.shape[0]
    Q = np.eye(S)[:, :k]
    total = np.zeros(k)
    kernel = _fast_kernel(model)
    if kernel is not None and hasattr(kernel, "lyapunov_spectrum"):
        return kernel.lyapunov_spectrum(model, x, states0, k, every)
    if kernel is not None and hasattr(kernel, "jacobian_stepper"):
        step = kernel.jacobian_stepper(model, x, states0)
    else:
        traj = _Trajectory(model, x, states0)

        def step(t, Q):
            return traj.jacobian(t) @ Q

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
