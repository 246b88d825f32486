"""The time loop shared by every cell: forward over a sequence, then BPTT back over it.

A *cell* supplies the per-step maths (in its family module, forward beside backward):

* ``step(gi, gh, state) -> (new_state, cache)`` where ``gi = x_t W_ih^T + b_ih`` and
  ``gh = R(h_{t-1}, W_hh) + b_hh`` (both (B, G*H); ``R`` is the cell's ``recurrence``: ``h W_hh^T``
  for a dense matrix, ``u * h`` for a diagonal one) and ``state`` is a tuple ``(h,)`` or ``(h, c)``;
* ``step_backward(d_state, cache) -> (d_gi, d_gh, d_prev)``: given the total gradient of the loss
  with respect to the new state, the gradients with respect to ``gi`` and ``gh`` and the part of
  the gradient with respect to the previous state that does *not* pass through ``W_hh``
  (``None`` for a zero part);
* ``step_jacobian(cache, W_hh) -> (B, S, S)``: the one-step Jacobian of the state.

The engine adds the pull-back of ``d_gh`` through ``R`` to the previous-state gradient, and forms the weight gradients
as single matrix products over all time steps (this is what makes numpy competitive). A cell
with ``additive = True`` uses ``gi`` and ``gh`` only through ``gi + gh``: the engine then folds
``b_hh`` into the input projection once, and stores ``d_gi`` (equal to ``d_gh``) once.
All arrays are time-major and batched: x (T, B, I), states (B, H).

A cell with its own layer layout (:func:`gradtheory.cells.has_layout`: LRU, selective SSM) runs
through the same loop: its ``project`` hook gives the per-step inputs (``gh`` is None), its
``readout`` the outputs; BPTT propagates the state gradient step by step through the cell's
``step_backward`` and hands the per-step state gradients to ``project_backward``/``readout_backward``,
which form the input and parameter gradients at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class LayerParams(NamedTuple):
    """The weights of one layer and direction (torch layout; biases None without bias)."""

    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: np.ndarray | None
    b_hh: np.ndarray | None

    @property
    def named(self) -> None:
        """None: torch's layout (see :class:`LayoutParams`)."""
        return None


class LayoutParams(NamedTuple):
    """The parameters of one layer and direction of a cell with its own layout, by base name
    (``nu_log``, ``B_re``, ...); it has no ``W_ih``/``W_hh``/biases (all None)."""

    named: Mapping[str, np.ndarray]
    # not fields (no annotation): class attributes, so code reading torch's layout sees None
    W_ih = W_hh = b_ih = b_hh = None


@dataclass
class LayerTrace:
    """What one layer, one direction, remembers from its forward pass for BPTT."""

    cell: Any
    x: np.ndarray  # (T, B, I)
    states: tuple[np.ndarray, ...]  # each (T+1, B, H); index 0 is the initial state
    caches: list
    W_ih: np.ndarray | None
    W_hh: np.ndarray | None
    has_bias: bool
    #: a cell with its own layout: its parameters, ``project``'s context and the readout (else None)
    named: Mapping[str, np.ndarray] | None = None
    ctx: Any = None
    output: np.ndarray | None = None


def _layout(cell) -> bool:
    return callable(getattr(cell, "layout", None))


def layer_inputs(cell, x: np.ndarray, p: LayerParams | LayoutParams) -> tuple[Any, Any]:
    """The per-step inputs of every step and the cell's context: ``(input_projection(...), None)``,
    or a cell's own ``project(x, p.named)`` (a cell with its own layout)."""
    if _layout(cell):
        return cell.project(x, p.named)
    return input_projection(cell, x, p), None


def input_projection(cell, x: np.ndarray, p: LayerParams) -> np.ndarray:
    """gi for every step, ``x W_ih^T + b_ih`` (with ``b_hh`` folded in for an additive cell)."""
    gi = x @ p.W_ih.T
    if p.b_ih is not None:
        gi = gi + p.b_ih
    if cell.additive and p.b_hh is not None:
        gi = gi + p.b_hh
    return gi


def _joined(cell, state):
    """R's argument: h, or the joint state for a recurrence reading several components (coRNN)."""
    n = getattr(cell.recurrence, "reads_states", 1)
    return state[0] if n == 1 else np.concatenate(state[:n], axis=-1)


def step_forward(cell, gi_t: Any, state: tuple, p: LayerParams | LayoutParams):
    """One step from ``state`` given its input projection ``gi_t`` (from :func:`input_projection`,
    or step t of :func:`layer_inputs`)."""
    if p.W_hh is None:  # a cell with its own layout: the recurrence is inside its step
        return cell.step(gi_t, None, state)
    gh = cell.recurrence.apply(_joined(cell, state), p.W_hh)
    if p.b_hh is not None and not cell.additive:
        gh = gh + p.b_hh
    return cell.step(gi_t, gh, state)


class StepGrads(NamedTuple):
    """One BPTT step's gradients: w.r.t. gi and gh (B, G*H), and the full gradient w.r.t. the previous state."""

    d_gi: np.ndarray
    d_gh: np.ndarray
    d_prev: tuple[np.ndarray, ...]


def step_backward(cell, d_state: Sequence[np.ndarray], cache, W_hh: np.ndarray) -> StepGrads:
    """One BPTT step through ``cell`` (the recurrent term pulled back through the cell's recurrence)."""
    d_gi, d_gh, direct = cell.step_backward(tuple(d_state), cache)
    if W_hh is None:  # a cell with its own layout: the previous state only through the direct path
        d_prev = tuple(np.zeros_like(d) if g is None else g for d, g in zip(d_state, direct))
        return StepGrads(d_gi, d_gh, d_prev)
    if getattr(cell.recurrence, "reads_states", 1) > 1:
        return _joint_step_backward(cell, d_state, W_hh, StepGrads(d_gi, d_gh, direct))
    d_h_prev = cell.recurrence.input_grad(d_gh, W_hh, d_state[0].shape[-1])
    if direct[0] is not None:
        d_h_prev = d_h_prev + direct[0]
    d_prev = (d_h_prev,) + tuple(
        np.zeros_like(d_state[k]) if direct[k] is None else direct[k] for k in range(1, len(d_state))
    )
    return StepGrads(d_gi, d_gh, d_prev)


def _joint_step_backward(cell, d_state, W_hh, own: StepGrads) -> StepGrads:
    """:func:`step_backward` for a recurrence reading the first n state components: the pull-back
    of d_gh is split between them and added to each component's direct part."""
    n, H = cell.recurrence.reads_states, d_state[0].shape[-1]
    d_rec = cell.recurrence.input_grad(own.d_gh, W_hh, n * H)
    d_prev = []
    for k, direct in enumerate(own.d_prev):
        part = d_rec[..., k * H : (k + 1) * H] if k < n else None
        if part is None:
            d_prev.append(np.zeros_like(d_state[k]) if direct is None else direct)
        else:
            d_prev.append(part if direct is None else part + direct)
    return StepGrads(own.d_gi, own.d_gh, tuple(d_prev))


def scan_forward(cell, x, state0, p: LayerParams | LayoutParams) -> LayerTrace:
    if _layout(cell):
        return _layout_forward(cell, x, state0, p)
    T, B, _ = x.shape
    gi_all = input_projection(cell, x, p)
    dtype = np.result_type(gi_all, p.W_hh, *state0, *(() if p.b_hh is None else (p.b_hh,)))
    states = tuple(np.empty((T + 1,) + s.shape, dtype=dtype) for s in state0)
    for k, s in enumerate(state0):
        states[k][0] = s
    state = tuple(state0)
    caches = []
    for t in range(T):
        state, cache = step_forward(cell, gi_all[t], state, p)
        caches.append(cache)
        for k, s in enumerate(state):
            states[k][t + 1] = s
    return LayerTrace(cell, x, states, caches, p.W_ih, p.W_hh, p.b_ih is not None)


def _layout_forward(cell, x, state0, p: LayoutParams) -> LayerTrace:
    T = x.shape[0]
    inputs, ctx = cell.project(x, p.named)
    dtype = np.result_type(x, *state0, *p.named.values())
    states = tuple(np.empty((T + 1,) + s.shape, dtype=dtype) for s in state0)
    for k, s in enumerate(state0):
        states[k][0] = s
    state = tuple(state0)
    caches = []
    for t in range(T):
        state, cache = cell.step(inputs[t], None, state)
        caches.append(cache)
        for k, s in enumerate(state):
            states[k][t + 1] = s
    after = tuple(s[1:] for s in states)
    output = cell.readout(after, x, p.named, ctx) if callable(getattr(cell, "readout", None)) else None
    return LayerTrace(cell, x, states, caches, None, None, False, p.named, ctx, output)


def _layout_backward(trace: LayerTrace, d_out, d_final, truncate):
    """BPTT through a layer of a cell with its own layout (see :func:`scan_backward`)."""
    cell, x, T = trace.cell, trace.x, trace.x.shape[0]
    first = 0 if truncate is None else max(0, T - truncate)
    if first > 0:  # outputs before the window receive no gradient
        d_out = np.array(d_out)
        d_out[:first] = 0.0
    after = tuple(s[1:] for s in trace.states)
    dtype = np.result_type(trace.states[0], d_out, *d_final)
    grads: dict[str, np.ndarray] = {}
    dx = None
    if callable(getattr(cell, "readout", None)):
        d_read, dx, grads = cell.readout_backward(d_out, after, x, trace.named, trace.ctx)
        grads = dict(grads)
    else:
        d_read = (d_out,) + tuple(None for _ in trace.states[1:])
    d_steps = tuple(np.zeros((T,) + s.shape[1:], dtype=dtype) for s in trace.states)
    d_state = [np.array(d, dtype=dtype) for d in d_final]
    for t in range(T - 1, first - 1, -1):
        for k, d in enumerate(d_read):
            if d is not None:
                d_state[k] = d_state[k] + d[t]
            d_steps[k][t] = d_state[k]
        d_state = list(step_backward(cell, d_state, trace.caches[t], None).d_prev)
    d_state0 = tuple(np.zeros_like(d) for d in d_state) if first > 0 else tuple(d_state)
    dx_proj, g_proj = cell.project_backward(d_steps, trace.states, x, trace.named, trace.ctx)
    for k, v in g_proj.items():
        grads[k] = grads[k] + v if k in grads else v
    dx = dx_proj if dx is None else dx + dx_proj
    return dx, d_state0, {k: grads[k] for k in trace.named}, d_steps


def scan_backward(trace: LayerTrace, d_out, d_final, truncate=None):
    """BPTT through one layer.

    ``d_out`` (T, B, H) is the gradient arriving at each output h_t from above (or the loss);
    ``d_final`` is a tuple with the gradient arriving at each final state component.
    With ``truncate=k`` only the last ``k`` steps are traversed: outputs before them receive no
    gradient and the state before them is treated as a constant.

    Returns ``(dx, d_state0, grads, d_steps)`` where ``d_steps`` is a tuple of (T, B, H) arrays,
    the total gradient of the loss with respect to each state component after each step.
    """
    cell = trace.cell
    if _layout(cell):
        return _layout_backward(trace, d_out, d_final, truncate)
    x, W_hh = trace.x, trace.W_hh
    T, B, _ = x.shape
    first = 0 if truncate is None else max(0, T - truncate)
    GH = trace.W_ih.shape[0]
    dtype = np.result_type(trace.states[0], d_out, *d_final)
    d_gi = np.zeros((T, B, GH), dtype=dtype)
    d_gh = d_gi if cell.additive else np.zeros((T, B, GH), dtype=dtype)
    d_steps = tuple(np.zeros((T,) + s.shape[1:], dtype=dtype) for s in trace.states)
    d_state = [np.array(d, dtype=dtype) for d in d_final]
    for t in range(T - 1, first - 1, -1):
        d_state[0] = d_state[0] + d_out[t]
        for k, d in enumerate(d_state):
            d_steps[k][t] = d
        step = step_backward(cell, d_state, trace.caches[t], W_hh)
        d_gi[t] = step.d_gi
        if not cell.additive:
            d_gh[t] = step.d_gh
        d_state = list(step.d_prev)
    if first > 0:
        d_state0 = tuple(np.zeros_like(d) for d in d_state)
    else:
        d_state0 = tuple(d_state)
    flat_gi = d_gi.reshape(T * B, GH)
    flat_gh = d_gh.reshape(T * B, GH)
    grads = {
        "weight_ih": flat_gi.T @ x.reshape(T * B, -1),
        "weight_hh": cell.recurrence.weight_grad(
            flat_gh, _joined(cell, [s[:-1] for s in trace.states]).reshape(T * B, -1)
        ),
    }
    if trace.has_bias:
        grads["bias_ih"] = flat_gi.sum(axis=0)
        grads["bias_hh"] = flat_gh.sum(axis=0)
    dx = d_gi @ trace.W_ih
    return dx, d_state0, grads, d_steps


def scan_jacobians(trace: LayerTrace) -> np.ndarray:
    """One-step Jacobians ds_t/ds_{t-1}, shape (T, B, S, S)."""
    return np.stack([trace.cell.step_jacobian(c, trace.W_hh) for c in trace.caches])
