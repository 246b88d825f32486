r"""The :class:`Cell` protocol, the two recurrence layouts, and the registry entry :class:`CellSpec`.

A cell answers every question the tools ask about one recurrent step:

* ``step(gi, gh, state) -> (new_state, cache)``, with ``gi = x_t W_ih^T + b_ih`` and
  ``gh = R(h_{t-1}, W_hh) + b_hh`` (both (B, G*H)), ``R`` the cell's :class:`Recurrence`;
* ``step_backward(d_state, cache) -> (d_gi, d_gh, direct)``: the gradients with respect to ``gi``
  and ``gh`` and the part of the gradient with respect to the previous state that does not pass
  through ``W_hh`` (``None`` for a zero part), given the gradient with respect to the new state;
* ``step_jacobian(cache, W_hh) -> (B, S, S)``: the one-step Jacobian of the joint state;
* ``equations(gi, gh, prev, ops) -> (new_state, parts)``: the same step written again,
  independently, on plain lists of scalars, used only by the oracles and the SymPy derivations
  (never by the numeric code). Only ``+``, ``-``, ``*``, ``/`` between scalars, integer or exactly
  representable constants, and the functions of ``ops`` (:class:`ScalarOps`) may be used, so that
  the same code runs on Fractions, mpmath numbers, dual numbers and SymPy expressions;
  ``parts`` names intermediate quantities (gates) for the derivations;
* optionally ``torch_step(gi, gh, state)``: the step in torch operations (the torch twin).

**A cell with its own layer layout** (LRU, selective SSM: parameters other than torch's
``weight_ih``/``weight_hh``/biases, transitions that depend on the input, an output that is a
readout of the state) defines ``layout`` and the hooks below; every hook is optional, and a
cell without ``layout`` is untouched by them (:func:`has_layout`):

* ``layout(input_size, hidden_size) -> {base name: shape}``: the parameters of one layer and
  direction in torch's order (the model names them ``<base>_l<k>`` as torch does);
* ``init_params(rng, input_size, hidden_size) -> {base name: array}``: the default weights
  (default: torch's U(-1/sqrt(H), 1/sqrt(H)) for every entry);
* ``draw_params(draw, input_size, hidden_size, scale) -> {base name: array}``: weights with the
  cell's meaningful structure for :func:`gradtheory.strategies.parameters` (``draw`` is
  Hypothesis's; ``scale`` None or a bound for the weight matrices);
* ``output_size(input_size, hidden_size) -> int``: features of the output ``y_t`` (default H);
* ``project(x, p) -> (inputs, ctx)``: from the layer input ``x`` (T, B, I) and the layer's
  parameters ``p`` (base name -> array), the T per-step inputs (``inputs[t]`` is passed to
  ``step`` as ``gi``, with ``gh = None``: no recurrent weight) and a context ``ctx`` the other
  hooks reuse. Input-dependent transitions (the selective SSM's :math:`e^{\Delta_t A}`) are
  per-step inputs;
* ``step_backward`` returns ``(None, None, direct)``: only the gradient with respect to the
  previous state is propagated step by step; then
  ``project_backward(d_states, states, x, p, ctx) -> (dx, grads)`` forms the input and parameter
  gradients at once from ``d_states`` (per component, (T, B, H): the total gradient with respect
  to the state after each step) and ``states`` (per component, (T + 1, B, H));
* ``readout(states, x, p, ctx) -> y`` (T, B, O) from the states after each step (per component,
  (T, B, H)); default ``y_t = h_t``; ``readout_backward(d_y, states, x, p, ctx) -> (d_states,
  dx, grads)`` its hand-written backward (``d_states`` per component, (T, B, H));
* ``torch_layer(p, x, state) -> (y, state)``: the layer in torch operations (the torch twin);
* ``layer_options``: the model options the cell fixes, e.g. ``{"bidirectional": False}``
  (a model rejects other values; the strategies draw only these).

The time loop, stacking and bidirectionality live once in :mod:`gradtheory.models`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..models.activations import Activation

__all__ = [
    "DENSE",
    "DIAGONAL",
    "NONE",
    "Cell",
    "CellSpec",
    "Recurrence",
    "ScalarOps",
    "recurrent_input",
    "has_layout",
    "torch_activation",
]


class Recurrence:
    """How a cell forms its recurrent term ``R(h, W_hh)`` from ``weight_hh`` (rows = G*H)."""

    name = ""
    #: how many leading state components R reads: 1 (``h`` alone, every built-in recurrence but
    #: coRNN's) or more (the components concatenated, e.g. coRNN's ``W y + W_z z`` on ``(y, z)``);
    #: then ``apply``/``weight_grad`` take the concatenated state and ``input_grad`` returns its
    #: gradient, which the time loop splits between the components (see :func:`recurrent_input`)
    reads_states: int = 1

    def weight_shape(self, rows: int, hidden_size: int) -> tuple[int, ...]:
        raise NotImplementedError

    def apply(self, h: np.ndarray, W: np.ndarray) -> np.ndarray:
        """R(h, W) for h (B, H): shape (B, rows)."""
        raise NotImplementedError

    def input_grad(self, d_gh: np.ndarray, W: np.ndarray, hidden_size: int) -> np.ndarray:
        """d_gh (B, rows) pulled back to h: (B, H)."""
        raise NotImplementedError

    def weight_grad(self, d_gh: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Gradient with respect to W from d_gh (N, rows) and the states h (N, H) summed over N."""
        raise NotImplementedError

    def exact(self, W: Sequence[Any], h: Sequence[Any]) -> list[Any]:
        """R(h, W) on nested lists of scalars (any field: Fraction, mpmath, SymPy, dual numbers)."""
        raise NotImplementedError

    def torch(self, h: Any, W: Any) -> Any:
        """R(h, W) on torch tensors (for the torch twin)."""
        raise NotImplementedError


class _Dense(Recurrence):
    r"""A full matrix: :math:`R(h, W) = W h` with ``W`` of shape (G*H, H)."""

    name = "dense"

    def weight_shape(self, rows, hidden_size):
        return (rows, hidden_size)

    def apply(self, h, W):
        return h @ W.T

    def input_grad(self, d_gh, W, hidden_size):
        return d_gh @ W

    def weight_grad(self, d_gh, h):
        return d_gh.T @ h

    def exact(self, W, h):
        out = []
        for row in W:
            acc = row[0] * h[0]
            for w, e in zip(row[1:], h[1:]):
                acc = acc + w * e
            out.append(acc)
        return out

    def torch(self, h, W):
        return h @ W.T


class _Diagonal(Recurrence):
    r"""One weight per row: :math:`R(h, u) = u \odot (h; \dots; h)` with ``u`` of shape (G*H,)."""

    name = "diagonal"

    def weight_shape(self, rows, hidden_size):
        return (rows,)

    def apply(self, h, W):
        G = W.shape[0] // h.shape[-1]
        return (np.tile(h, (1, G)) if G > 1 else h) * W

    def input_grad(self, d_gh, W, hidden_size):
        prod = d_gh * W
        return prod if prod.shape[-1] == hidden_size else prod.reshape(prod.shape[0], -1, hidden_size).sum(axis=1)

    def weight_grad(self, d_gh, h):
        G = d_gh.shape[1] // h.shape[1]
        return np.sum(d_gh * (np.tile(h, (1, G)) if G > 1 else h), axis=0)

    def exact(self, W, h):
        H = len(h)
        return [w * h[r % H] for r, w in enumerate(W)]

    def torch(self, h, W):
        G = W.shape[0] // h.shape[-1]
        return (h.repeat(1, G) if G > 1 else h) * W


class _NoRecurrence(Recurrence):
    r"""No recurrent weight: :math:`R(h, W) = 0`, ``W`` of shape (G*H, 0) (a matrix with no columns).

    For cells whose gates read :math:`x_t` only (minGRU, minLSTM): the previous state enters the
    step only through the cell's direct path. ``R(h, W) = h_{[:0]} W^T`` is the product with an
    empty matrix, so ``weight_hh`` keeps its place in torch's layout (and in the torch twin's
    autograd graph, with an empty gradient) while contributing exactly zero.
    """

    name = "none"

    def weight_shape(self, rows, hidden_size):
        return (rows, 0)

    def apply(self, h, W):
        return np.zeros((h.shape[0], W.shape[0]), dtype=np.result_type(h, W))

    def input_grad(self, d_gh, W, hidden_size):
        return np.zeros((d_gh.shape[0], hidden_size), dtype=d_gh.dtype)

    def weight_grad(self, d_gh, h):
        return np.zeros((d_gh.shape[1], 0), dtype=d_gh.dtype)

    def exact(self, W, h):
        return [0 for _ in W]

    def torch(self, h, W):
        return h[..., :0] @ W.T


DENSE: Recurrence = _Dense()
DIAGONAL: Recurrence = _Diagonal()
NONE: Recurrence = _NoRecurrence()


def recurrent_input(recurrence: Recurrence, state: Sequence[Any], join: Callable[[list], Any]) -> Any:
    """The argument of ``R``: ``state[0]``, or the first ``recurrence.reads_states`` components
    joined by ``join`` (``np.concatenate`` on the last axis, ``torch.cat``, list concatenation)."""
    n = getattr(recurrence, "reads_states", 1)
    return state[0] if n == 1 else join(list(state[:n]))


@dataclass(frozen=True)
class ScalarOps:
    """Scalar functions for :meth:`Cell.equations`: the cell's activation ``phi``, ``sigmoid``, ``tanh``."""

    phi: Callable[[Any], Any]
    sigmoid: Callable[[Any], Any]
    tanh: Callable[[Any], Any]


@runtime_checkable
class Cell(Protocol):
    """What a recurrent cell provides (see the module docstring for each method's contract).

    Attributes: ``name`` (registry key), ``gates`` (G: rows of W_ih are G*H), ``gate_names``,
    ``n_states`` (1 for (h,), 2 for (h, c)), ``additive`` (gi and gh are used only through
    gi + gh, so the scan may fold b_hh into the input projection), ``recurrence`` (:data:`DENSE`,
    :data:`DIAGONAL` or :data:`NONE`), ``activation`` (an :class:`Activation`, or None).
    """

    name: str
    gates: int
    gate_names: tuple[str, ...]
    n_states: int
    additive: bool
    recurrence: Recurrence
    activation: Activation | None

    def step(
        self, gi: np.ndarray, gh: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[tuple[np.ndarray, ...], Any]: ...

    def step_backward(
        self, d_state: tuple[np.ndarray, ...], cache: Any
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray | None, ...]]: ...

    def step_jacobian(self, cache: Any, W_hh: np.ndarray) -> np.ndarray: ...


def has_layout(cell: Any) -> bool:
    """True for a cell with its own layer layout (``layout`` and the hooks of the module docstring)."""
    return callable(getattr(cell, "layout", None))


def check_cell(cell: Any, name: str = "cell") -> Cell:
    """Validate that ``cell`` implements the :class:`Cell` protocol; return it."""
    missing = [
        a
        for a in ("gates", "n_states", "additive", "recurrence", "step", "step_backward", "step_jacobian")
        if not hasattr(cell, a)
    ]
    if missing:
        raise TypeError(f"{name} must implement gradtheory.cells.Cell, got {type(cell).__name__} without {missing}")
    if not isinstance(cell.recurrence, Recurrence):
        raise TypeError(
            f"{name}.recurrence must be gradtheory.cells.DENSE, DIAGONAL or NONE (a Recurrence), got {cell.recurrence!r}"
        )
    for attr in ("gates", "n_states"):
        value = getattr(cell, attr)
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name}.{attr} must be a positive int, got {value!r}")
    reads = getattr(cell.recurrence, "reads_states", 1)
    if not (isinstance(reads, int) and 1 <= reads <= cell.n_states):
        raise ValueError(
            f"{name}.recurrence.reads_states must be an int in [1, n_states={cell.n_states}], got {reads!r}"
        )
    if has_layout(cell):
        missing = [a for a in ("project", "project_backward") if not callable(getattr(cell, a, None))]
        if callable(getattr(cell, "readout", None)) != callable(getattr(cell, "readout_backward", None)):
            missing.append("readout_backward" if callable(getattr(cell, "readout", None)) else "readout")
        if missing:
            raise TypeError(f"{name} defines layout, so it must also define {missing}")
    if cell.n_states > 2:
        raise NotImplementedError(
            f"{name}.n_states={cell.n_states}: models carry the state (h,) or (h, c), not more components"
        )
    return cell


@dataclass(frozen=True)
class CellSpec:
    """One registry entry: a cell class and everything the tools read about it.

    ``model``: the :class:`~gradtheory.models.RecurrentModel` subclass built on the cell;
    ``nonlinearities``: the activations the cell accepts (empty: none); ``torch_mode``: the
    ``torch.nn`` module that is the cell's native twin (``"RNN"``, ``"LSTM"``, ``"GRU"``) or None
    (then the twin is built from the cell's ``torch_step``); ``fast_kernel``: optional
    ``"module"`` or ``"module:attribute"`` naming a fast ``gradient_flow``/Lyapunov kernel for
    exactly this cell (see :func:`gradtheory.flow`);
    ``derivation``: optional ``derive() -> Derivation`` written to ``proofs/<name>.tex``.
    """

    name: str
    cell: type
    model: type
    nonlinearities: tuple[str, ...] = ()
    torch_mode: str | None = None
    fast_kernel: str | None = None
    derivation: Callable[[], Any] | None = None


def torch_activation(name: str) -> Callable[[Any], Any]:
    """The torch function for an activation name (for ``torch_step``)."""
    import torch

    return {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "identity": lambda a: a}[name]
