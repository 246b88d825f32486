r"""The user's own recurrent cell, written in torch: the whole theory without a hand-written twin.

:func:`from_torch_cell` wraps any ``torch.nn.Module`` (or plain function) whose
``forward(x_t, state)`` returns the next state, a tensor or a tuple whose first entry is ``h``
(``nn.RNNCell``, ``nn.GRUCell``, ``nn.LSTMCell`` with its ``(h, c)``, or your own), in a
:class:`TorchCellModel` with ``forward``, ``backward`` and ``jacobians``, stacked and
bidirectional as ``torch.nn.RNNBase`` composes layers. :func:`torch_cell_gradient_flow`,
:func:`torch_cell_lyapunov_exponent`, :func:`torch_cell_lyapunov_spectrum` and
:func:`torch_cell_check_stability` are what :func:`gradtheory.gradient_flow` and friends run
for such a model.

Inside, every cell is seen as one map of the *flattened* state
:math:`s_t = (h_t, \dots) \in \mathbb{R}^S` (the tuple entries concatenated, so LSTM's joint
state ``(h, c)``, with ``dc`` taken at fixed h exactly as in :class:`gradtheory.LSTM`):
:math:`s_t = f(x_t, s_{t-1})`. A stack of unidirectional layers is again such a map on the
concatenated states of all layers, so the flow and Lyapunov functions study stacks too (readout
on the top layer's ``h_T``).

Everything runs in float64 on a deep copy of the module (``.double().eval()``): the user's module,
its parameters and torch's random number generator are left as they were.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._logspace import start_vector
from .._validation import as_float_array, check_bool, check_positive_int, check_real, time_major_sequence
from .compose import Gradients

__all__ = [
    "CellForwardResult",
    "TorchCellModel",
    "from_torch_cell",
    "is_torch_cell",
    "is_torch_rnn",
    "torch_cell_check_stability",
    "torch_cell_gradient_flow",
    "torch_cell_lyapunov_exponent",
    "torch_cell_lyapunov_spectrum",
]

# Steps of one chunk of the chunked backward pass. Between chunks the cotangent is renormalised
# to a unit vector and its log-norm added to a running log-scale. Inside a chunk the cotangent is
# not renormalised: with a per-step contraction or growth of at most e^{+-20} (tanh/sigmoid gates
# saturate long before), 32 steps move it by at most e^{640}... which could leave float64, so a
# chunk is accepted only if every gradient norm in it lies in [_CHUNK_LO, _CHUNK_HI]; otherwise
# it is redone one step at a time with per-step renormalisation (no precision is lost either
# way; a rejected chunk only costs its backward pass twice).
_CHUNK = 32
# Accepted gradient norms inside a chunk: 1e-200 leaves 108 decades above the subnormal range
# (2.2e-308), so even components 1e100 times smaller than the norm keep full relative precision;
# 1e200 leaves the same margin below overflow (1.8e308) for the backward's intermediate products.
_CHUNK_LO = 1e-200
_CHUNK_HI = 1e200
# Up to this many steps, gradient_flow keeps the autograd graph of the forward pass (one forward
# and one backward, the cost of torch's own loss.backward()); beyond it, it stores only each
# chunk's initial state and recomputes the chunk during the backward pass (2 forwards + 1
# backward, memory O(T / _CHUNK * S) instead of O(T * graph per step)). A GRUCell(64, 64) step
# keeps ~15 small tensors (~10 KiB) alive: 2**15 steps ~ 0.3 GiB.
_KEEP_GRAPH_STEPS = 2**15
# Steps whose one-step Jacobians are formed at once (as rows of one batched call) in the Lyapunov
# functions: 256 * S * S floats = 8 MiB at S = 64.
_JAC_BLOCK = 256
# The construction probe checks that the cell treats the rows of a batch independently (every
# Jacobian here is formed as rows of one batched call): two rows at once against each row alone.
# Both evaluate the same float64 operations on the same values; only BLAS blocking may differ, so
# they agree to a few ulps of the state's size: 64 u relative (u = 2^-53) plus the same absolute
# amount at unit scale.
_ROW_INDEPENDENCE_RTOL = 64 * 2.0**-53


def _torch():
    import torch

    return torch


def is_torch_cell(obj: Any) -> bool:
    """True for a :class:`TorchCellModel` and for a ``torch.nn.Module`` that is not an
    ``nn.RNN``/``LSTM``/``GRU`` (those go through :func:`gradtheory.from_torch`). Never imports torch."""
    if isinstance(obj, TorchCellModel):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module) and not isinstance(obj, torch.nn.RNNBase)


def is_torch_rnn(obj: Any) -> bool:
    """True for an instance of ``torch.nn.RNNBase`` (``nn.RNN``/``LSTM``/``GRU`` and subclasses)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.RNNBase)


# -- one cell as a map of the flattened state ---------------------------------------------------
class _FlatCell:
    """A float64 copy of the user's cell seen as ``s' = f(x, s)`` on flattened states (B, S)."""

    def __init__(self, cell: Any, state_sizes: tuple[int, ...], tuple_state: bool, where: str) -> None:
        torch = _torch()
        self.where = where
        if isinstance(cell, torch.nn.Module):
            try:
                self.module = copy.deepcopy(cell).to(device="cpu", dtype=torch.float64).eval()
            except Exception as exc:
                raise TypeError(f"cell {where} could not be copied to float64 (copy.deepcopy, .to): {exc}") from exc
            self.fn: Callable = self.module
        else:
            self.module = None
            self.fn = cell
        self.state_sizes = state_sizes
        self.tuple_state = tuple_state
        self.S = sum(state_sizes)

    def unpack(self, s):
        if self.tuple_state:
            return tuple(s.split(self.state_sizes, dim=-1))
        return s

    def __call__(self, x, s):
        out = self.fn(x, self.unpack(s))
        if self.tuple_state:
            return out[0] if len(out) == 1 else _torch().cat(tuple(out), dim=-1)
        return out

    def named_parameters(self):
        return [] if self.module is None else list(self.module.named_parameters())


def _describe(obj: Any) -> str:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        return f"a tensor of shape {tuple(obj.shape)} and dtype {obj.dtype}"
    if isinstance(obj, tuple):
        return "a tuple (" + ", ".join(_describe(o) for o in obj) + ")"
    return f"a {type(obj).__name__}"


def _probe(flat: _FlatCell, input_size: int, hidden_size: int) -> None:
    """One step on two random rows: checks the returned structure, dtype, shape and row independence."""
    torch = _torch()
    g = torch.Generator().manual_seed(0)  # a private generator: torch's global RNG is not touched
    x = torch.randn(2, input_size, generator=g, dtype=torch.float64)
    s = 0.5 * torch.randn(2, flat.S, generator=g, dtype=torch.float64)
    with torch.no_grad():
        try:
            out = flat.fn(x, flat.unpack(s))
        except Exception as exc:
            raise ValueError(
                f"cell {flat.where} failed on x_t of shape (2, {input_size}) and a state of "
                f"{_describe(flat.unpack(s))}: {type(exc).__name__}: {exc} (check input_size, hidden_size, state_sizes; a plain function must compute in float64)"
            ) from exc
        if flat.tuple_state:
            ok = (
                isinstance(out, (tuple, list))
                and len(out) == len(flat.state_sizes)
                and all(isinstance(o, torch.Tensor) and tuple(o.shape) == (2, n) for o, n in zip(out, flat.state_sizes))
            )
            expected = "a tuple of tensors of shapes " + ", ".join(f"(2, {n})" for n in flat.state_sizes)
        else:
            ok = isinstance(out, torch.Tensor) and tuple(out.shape) == (2, flat.S)
            expected = f"a tensor of shape (2, {flat.S})"
        if not ok:
            hint = ""
            if not flat.tuple_state and isinstance(out, (tuple, list)):
                hint = f"; a cell whose state is a tuple (like LSTMCell's (h, c)) needs state_sizes=(H, ...), e.g. ({hidden_size}, {hidden_size})"
            raise ValueError(f"cell {flat.where} must return the next state as {expected}, got {_describe(out)}{hint}")
        if flat.state_sizes[0] != hidden_size:
            raise ValueError(
                f"state_sizes[0] (the size of h) must equal hidden_size={hidden_size}, got {flat.state_sizes[0]}"
            )
        both = flat(x, s)
        if both.dtype != torch.float64:
            raise TypeError(
                f"cell {flat.where} must compute in float64 when given float64 inputs, got {both.dtype} "
                "(a plain function must not close over float32 tensors; a Module is converted automatically)"
            )
        alone = torch.cat([flat(x[i : i + 1], s[i : i + 1]) for i in range(2)])
    if not torch.all(torch.isfinite(both)):
        raise ValueError(f"cell {flat.where} returned a non-finite state on a standard normal probe input")
    err = float((both - alone).abs().max())
    if err > _ROW_INDEPENDENCE_RTOL * (1.0 + float(both.abs().max())):
        raise ValueError(
            f"cell {flat.where} mixes the rows of a batch (two rows at once differ from each row alone by {err:.3g}); "
            "it must treat each row as an independent sequence (e.g. no batch statistics)"
        )


# -- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellForwardResult:
    """Result of :meth:`TorchCellModel.forward`, laid out as a ``torch.nn.RNNBase`` return value.

    ``output``: (T, B, D*H) time-major, or (T, D*H) unbatched. ``h_n``: (num_layers*D, B, H).
    ``c_n``: the state entries after h, concatenated (LSTM's c), (num_layers*D, B, S - H), or
    None for a cell whose state is h alone. ``states``: per layer and direction, the flattened
    states s_0..s_T (T + 1, B, S) in reading order (reverse direction: s_0 is the state before
    reading x_{T-1}).
    """

    output: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray | None
    states: tuple[np.ndarray, ...] = field(repr=False)
    inputs: tuple[np.ndarray, ...] = field(repr=False)
    batched: bool = field(repr=False)


class TorchCellModel:
    """A recurrent model built from torch cells by :func:`from_torch_cell`.

    Attributes: ``input_size``, ``hidden_size``, ``num_layers``, ``bidirectional``,
    ``num_directions``, ``state_sizes`` (sizes of the state's tuple entries, h first),
    ``state_size`` (S, their sum).
    """

    def __init__(
        self,
        cells,
        input_size: int,
        hidden_size: int,
        state_sizes: tuple[int, ...],
        tuple_state: bool,
        bidirectional: bool,
        names: dict,
    ) -> None:
        self._cells = cells  # [layer][direction] -> _FlatCell (shared cells are the same object)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = len(cells)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.state_sizes = state_sizes
        self.state_size = sum(state_sizes)
        self.tuple_state = tuple_state
        self._names = names  # id(_FlatCell) -> parameter-name suffix

    def __repr__(self) -> str:
        kinds = sorted({type(c.fn).__name__ for layer in self._cells for c in layer})
        return (
            f"TorchCellModel({'/'.join(kinds)}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, state_sizes={self.state_sizes})"
        )

    def cell(self, layer: int = 0, direction: int = 0) -> Callable:
        """The float64 step ``s' = f(x, s)`` on flattened states (B, S) of one layer and direction."""
        return self._cells[layer][direction]

    # -- parameters ---------------------------------------------------------------------------
    def _unique_cells(self) -> list[_FlatCell]:
        seen: dict[int, _FlatCell] = {}
        for layer in self._cells:
            for c in layer:
                seen.setdefault(id(c), c)
        return list(seen.values())

    def named_parameters(self) -> list[tuple[str, Any]]:
        """(name, float64 tensor) of every parameter of the model's copies of the cells.

        Names are the cell's own, suffixed ``_l{layer}`` (``_reverse``) like torch's stacked
        modules when there are several distinct cells; unsuffixed when one cell is used throughout.
        """
        return [(n + self._names[id(c)], p) for c in self._unique_cells() for n, p in c.named_parameters()]

    # -- input handling ---------------------------------------------------------------------
    def _prepare_x(self, x):
        torch = _torch()
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x, batched = time_major_sequence(as_float_array(x, "x", ndim=(2, 3)), self.input_size)
        return torch.from_numpy(np.ascontiguousarray(x)), batched

    def _initial_states(self, h0, B: int, batched: bool):
        """h0 -> (L*D, B, S) float64 tensor of flattened initial states."""
        torch = _torch()
        LD = self.num_layers * self.num_directions
        if h0 is None:
            return torch.zeros(LD, B, self.state_size, dtype=torch.float64)
        if self.tuple_state:
            if not (isinstance(h0, tuple) and len(h0) == len(self.state_sizes)):
                raise TypeError(
                    f"h0 must be a tuple of {len(self.state_sizes)} arrays (the state's entries), got {_describe(h0)}"
                )
            parts, names = h0, [f"h0[{i}]" for i in range(len(h0))]
        else:
            if isinstance(h0, tuple):
                raise TypeError(f"h0 must be an array for a cell whose state is a single tensor, got {_describe(h0)}")
            parts, names = (h0,), ["h0"]
        out = []
        for value, name, n in zip(parts, names, self.state_sizes):
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            shape = (LD, B, n) if batched else (LD, n)
            arr = as_float_array(value, name, shape=shape)
            out.append(arr if batched else arr[:, None, :])
        return torch.from_numpy(np.concatenate(out, axis=-1))

    # -- forward ------------------------------------------------------------------------------
    def _run(self, x, s0, grad: bool):
        """Unrolled forward over all layers and directions; returns (output, per-(l, d) state lists, inputs)."""
        torch = _torch()
        H, D = self.hidden_size, self.num_directions
        trajectories, inputs = [], []
        layer_in = x
        with torch.set_grad_enabled(grad):
            for layer, cells in enumerate(self._cells):
                outs = []
                for d, cell in enumerate(cells):
                    inp = layer_in.flip(0) if d == 1 else layer_in
                    s = s0[layer * D + d]
                    states = [s]
                    for t in range(inp.shape[0]):
                        s = cell(inp[t], s)
                        states.append(s)
                    trajectories.append(states)
                    inputs.append(inp)
                    out = torch.stack([st[:, :H] for st in states[1:]])
                    outs.append(out.flip(0) if d == 1 else out)
                layer_in = outs[0] if D == 1 else torch.cat(outs, dim=-1)
        return layer_in, trajectories, inputs

    def forward(self, x: Any, h0: Any = None) -> CellForwardResult:
        """Run the model over ``x`` ((T, B, input_size) or (T, input_size); array or tensor).

        ``h0``: zeros by default; else (num_layers*D, B, H) (or (num_layers*D, H) unbatched), a
        tuple of such arrays (one per state entry) for a cell with a tuple state.

        Returns
        -------
        CellForwardResult

        Raises
        ------
        ValueError, TypeError
            For inputs of the wrong shape or type (the message names the argument).
        """
        torch = _torch()
        xt, batched = self._prepare_x(x)
        s0 = self._initial_states(h0, xt.shape[1], batched)
        with torch.random.fork_rng(devices=[]):
            output, trajectories, inputs = self._run(xt, s0, grad=False)
        states = tuple(torch.stack(tr).numpy() for tr in trajectories)
        for k, st in enumerate(states):
            if not np.all(np.isfinite(st)):
                bad = int(np.argwhere(~np.all(np.isfinite(st), axis=(1, 2)))[0, 0])
                raise FloatingPointError(
                    f"the forward pass overflowed at step t={bad} of layer/direction {k} (state not finite)"
                )
        finals = np.stack([st[-1] for st in states])
        H = self.hidden_size
        out = output.numpy()
        h_n, c_n = finals[..., :H], (finals[..., H:] if self.state_size > H else None)
        if not batched:
            out, h_n = out[:, 0], h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        return CellForwardResult(
            output=out,
            h_n=h_n,
            c_n=c_n,
            states=states,
            inputs=tuple(i.numpy() for i in inputs),
            batched=batched,
        )

    __call__ = forward

    # -- backward -----------------------------------------------------------------------------
    def backward(
        self,
        result: CellForwardResult,
        d_output: Any,
        d_h_n: Any = None,
        d_c_n: Any = None,
    ) -> Gradients:
        r"""Gradients of :math:`L = \langle d_{output}, output\rangle + \langle d_{h_n}, h_n\rangle
        + \langle d_{c_n}, c_n\rangle` by torch autograd through the unrolled cell.

        Returns :class:`gradtheory.Gradients` with the layout of the numpy models: ``params``
        (names of :meth:`named_parameters`), ``x``, ``h0``/``c0`` (c0: the state entries after h),
        ``dh``/``dc`` (num_layers*D, T, B, ·) time-major, the derivative with respect to the state
        after reading ``x_t`` with the other state entries held fixed (LSTM: dc at fixed h).

        Parameters
        ----------
        result : CellForwardResult
            This model's forward result.
        d_output : array
            Same shape as ``result.output``.
        d_h_n, d_c_n : array, optional
            Same shapes as ``result.h_n`` and ``result.c_n`` (zeros if None).

        Returns
        -------
        gradtheory.Gradients

        Raises
        ------
        TypeError, ValueError
            A result of another kind, arrays of the wrong shape, ``d_c_n`` for a cell whose state
            is h alone.
        """
        torch = _torch()
        if not isinstance(result, CellForwardResult):
            raise TypeError(
                f"result must be the CellForwardResult of this model's forward, got {type(result).__name__}"
            )
        H, S, LD = (
            self.hidden_size,
            self.state_size,
            self.num_layers * self.num_directions,
        )
        d_out = as_float_array(d_output, "d_output", shape=result.output.shape)
        batched = result.batched
        x = torch.from_numpy(result.inputs[0].copy()).requires_grad_(True)
        s0 = torch.from_numpy(np.stack([st[0] for st in result.states])).requires_grad_(True)
        if not batched:
            d_out = d_out[:, None]

        def final(value, name, size):
            if value is None:
                return None
            if size == 0:
                raise TypeError(f"{name} is only defined for a cell with a tuple state (h, ...)")
            shape = (LD, x.shape[1], size) if batched else (LD, size)
            arr = as_float_array(value, name, shape=shape)
            return torch.from_numpy(arr if batched else arr[:, None])

        dh_n, dc_n = final(d_h_n, "d_h_n", H), final(d_c_n, "d_c_n", S - H)
        params = self.named_parameters()
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            output, trajectories, _ = self._run(x, s0, grad=True)
            loss = (output * torch.from_numpy(d_out)).sum()
            finals = torch.stack([tr[-1] for tr in trajectories])
            if dh_n is not None:
                loss = loss + (finals[..., :H] * dh_n).sum()
            if dc_n is not None:
                loss = loss + (finals[..., H:] * dc_n).sum()
            steps = [s for tr in trajectories for s in tr[1:]]
            grads = torch.autograd.grad(loss, [x, s0, *steps, *(p for _, p in params)], allow_unused=True)
        T = x.shape[0]
        zero = torch.zeros(x.shape[1], S, dtype=torch.float64)
        step_grads = [zero if g is None else g for g in grads[2 : 2 + len(steps)]]
        d_states = torch.stack(step_grads).reshape(LD, T, x.shape[1], S).numpy()
        for ld in range(LD):
            if ld % self.num_directions == 1:  # reverse direction: reading order -> sequence positions
                d_states[ld] = d_states[ld][::-1]
        dx = grads[0].numpy() if grads[0] is not None else np.zeros(x.shape)
        d0 = grads[1].numpy() if grads[1] is not None else np.zeros(s0.shape)
        pgrads = {
            n: (np.zeros(tuple(p.shape)) if g is None else g.numpy())
            for (n, p), g in zip(params, grads[2 + len(steps) :])
        }
        if not batched:
            dx, d0, d_states = dx[:, 0], d0[:, 0], d_states[:, :, 0]
        rest = S > H
        return Gradients(
            params=pgrads,
            x=dx,
            h0=d0[..., :H],
            c0=d0[..., H:] if rest else None,
            dh=d_states[..., :H],
            dc=d_states[..., H:] if rest else None,
        )

    # -- Jacobians ----------------------------------------------------------------------------
    def jacobians(self, result: CellForwardResult, layer: int = 0, direction: int = 0) -> np.ndarray:
        r"""One-step Jacobians :math:`\partial s_t/\partial s_{t-1}` of one layer and direction.

        Shape (T, B, S, S) (or (T, S, S) unbatched), formed with ``torch.func.jacrev`` of the
        step with respect to the flattened state. Indices follow sequence positions as in
        :meth:`gradtheory.RecurrentModel.jacobians` (reverse direction: ``J[t]`` is the
        derivative of the state at position t with respect to the one at t + 1).

        Parameters
        ----------
        result : CellForwardResult
        layer, direction : int
            Which layer (0-based) and direction (0 forward, 1 reverse).

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        ValueError
            ``layer`` or ``direction`` out of range.
        """
        layer = check_positive_int(layer, "layer", minimum=0)
        direction = check_positive_int(direction, "direction", minimum=0)
        if layer >= self.num_layers:
            raise ValueError(f"layer must be < num_layers={self.num_layers}, got {layer}")
        if direction >= self.num_directions:
            raise ValueError(f"direction must be < {self.num_directions}, got {direction}")
        torch = _torch()
        ld = layer * self.num_directions + direction
        states = torch.from_numpy(result.states[ld][:-1])
        inp = torch.from_numpy(result.inputs[ld])
        T, B, S = states.shape
        with torch.random.fork_rng(devices=[]):
            J = _row_jacobians(
                self._cells[layer][direction],
                inp.reshape(T * B, -1),
                states.reshape(T * B, S),
            )
        J = J.reshape(T, B, S, S).numpy()
        if direction == 1:
            J = J[::-1]
        return J if result.batched else J[:, 0]

    # -- the joint step of a unidirectional stack -----------------------------------------------
    def _joint_step(self) -> tuple[Callable, int]:
        """(f, S_joint): s' = f(x, s) on the concatenated flattened states of all layers."""
        if self.bidirectional:
            raise NotImplementedError(
                "the flow and Lyapunov functions need a unidirectional model (a bidirectional "
                "model has no single state that evolves forward in time)"
            )
        cells = [layer[0] for layer in self._cells]
        if len(cells) == 1:
            return cells[0], cells[0].S
        torch = _torch()
        S, H = cells[0].S, self.hidden_size

        def step(x, s):
            parts = s.split(S, dim=-1)
            out, inp = [], x
            for cell, part in zip(cells, parts):
                new = cell(inp, part)
                out.append(new)
                inp = new[:, :H]
            return torch.cat(out, dim=-1)

        return step, S * len(cells)


def _row_jacobians(step: Callable, x, s):
    """J[r] = d step(x, s)[r] / d s[r] for every row r (rows are independent sequences): (R, S, S).

    One ``torch.func.jacrev`` of the row-sum, i.e. S vector-Jacobian products over all rows at
    once; cells that torch.func cannot transform (in-place ops, .item()) fall back to S plain
    autograd passes.
    """
    torch = _torch()
    S = s.shape[-1]
    try:
        J = torch.func.jacrev(lambda st: step(x, st).sum(0))(s)  # (S_out, R, S_in)
    except Exception:  # noqa: BLE001 - any torch.func limitation: the plain autograd fallback is exact
        with torch.enable_grad():
            st = s.detach().clone().requires_grad_(True)
            out = step(x, st)
            rows = []
            for i in range(S):
                e = torch.zeros_like(out)
                e[:, i] = 1.0
                (g,) = torch.autograd.grad(out, st, e, retain_graph=True, allow_unused=True)
                rows.append(torch.zeros_like(st) if g is None else g)
            J = torch.stack(rows)
    return J.permute(1, 0, 2).detach()


# -- construction -------------------------------------------------------------------------------
def _size_of(cell: Any, attr: str, given: int | None) -> int:
    if given is not None:
        return check_positive_int(given, attr)
    value = getattr(cell, attr, None)
    if value is None:
        raise ValueError(f"{attr} must be given for cell {type(cell).__name__} (it has no {attr} attribute)")
    return check_positive_int(value, f"cell.{attr}")


def _check_cell(cell: Any, name: str) -> None:
    torch = _torch()
    if isinstance(cell, TorchCellModel):
        raise TypeError(f"{name} must be a cell, got a TorchCellModel (it is already wrapped: use it directly)")
    if isinstance(cell, torch.nn.RNNBase):
        raise TypeError(
            f"{name} must be a cell (one step), got the sequence module {type(cell).__name__}: "
            "use gradtheory.from_torch for nn.RNN/LSTM/GRU"
        )
    if not (isinstance(cell, torch.nn.Module) or callable(cell)):
        raise TypeError(
            f"{name} must be a torch.nn.Module or a callable forward(x_t, state) -> next state, "
            f"got {type(cell).__name__}"
        )


def from_torch_cell(
    cell: Any,
    *,
    input_size: int | None = None,
    hidden_size: int | None = None,
    state_sizes: int | Sequence[int] | None = None,
    num_layers: int | None = None,
    bidirectional: bool = False,
) -> TorchCellModel:
    r"""Wrap a torch cell ``forward(x_t, state) -> next state`` as a model the theory runs on.

    Parameters
    ----------
    cell : torch.nn.Module or callable, or a sequence of them
        One step: ``x_t`` (B, input_size) and the state, a (B, H) tensor or a tuple of
        (B, ·) tensors whose first entry is h, to the next state in the same form (e.g.
        ``nn.RNNCell``, ``nn.GRUCell``, ``nn.LSTMCell``). A sequence stacks layers (layer l > 0
        reads layer l - 1's h, both directions concatenated when bidirectional); with
        ``bidirectional=True`` an entry may be a pair ``(forward_cell, reverse_cell)``, a single
        cell is then used for both directions. Modules are deep-copied and converted to float64
        in eval mode; a plain function must compute in float64.
    input_size, hidden_size : int, optional
        Read from the cell's attributes of these names when not given (torch's cells have them).
    state_sizes : int or sequence of int, optional
        Sizes of the state's tuple entries (h first); default ``(H, H)`` for ``nn.LSTMCell``,
        else ``H`` (the state is one tensor).
    num_layers : int, optional
        With a single cell: apply that same cell (shared weights) at every layer, which needs
        its input size to equal (1 or 2) * H. Default: the length of ``cell`` if a sequence, else 1.
    bidirectional : bool
        Read the sequence in both directions and concatenate the outputs, as torch does.

    Returns
    -------
    TorchCellModel

    Raises
    ------
    TypeError
        ``cell`` is neither a module nor callable (or is an ``nn.RNN``/``LSTM``/``GRU``).
    ValueError
        Sizes that are missing or not positive, or a cell whose probe step returns the wrong
        structure, shape or non-finite values, or mixes batch rows.
    """
    torch = _torch()
    bidirectional = check_bool(bidirectional, "bidirectional")
    per_position = _cells_by_position(cell, num_layers, bidirectional)
    first = per_position[0][0]
    I = _size_of(first, "input_size", input_size)
    H = _size_of(first, "hidden_size", hidden_size)
    sizes, tuple_state = _state_layout(first, H, state_sizes)
    with torch.random.fork_rng(devices=[]):
        cells, names = _wrap(per_position, I, H, sizes, tuple_state)
    return TorchCellModel(cells, I, H, sizes, tuple_state, bidirectional, names)


def _cells_by_position(cell: Any, num_layers: int | None, bidirectional: bool) -> list[list[Any]]:
    """The user's cells laid out [layer][direction] (the same object where one is shared)."""
    D = 2 if bidirectional else 1
    if isinstance(cell, (list, tuple)):
        if len(cell) == 0:
            raise ValueError("cell must be a cell or a non-empty sequence of cells, got an empty sequence")
        if num_layers is not None and check_positive_int(num_layers, "num_layers") != len(cell):
            raise ValueError(f"num_layers={num_layers} must equal the number of cells given ({len(cell)})")
        layers = list(cell)
    else:
        n = 1 if num_layers is None else check_positive_int(num_layers, "num_layers")
        layers = [cell] * n
    per_position = []
    for i, entry in enumerate(layers):
        pair = isinstance(entry, (list, tuple))
        if pair and not (bidirectional and len(entry) == 2):
            raise ValueError(
                f"cell[{i}] is a sequence of {len(entry)}: a (forward, reverse) pair is only "
                "allowed with bidirectional=True"
            )
        dirs = list(entry) if pair else [entry] * D
        for d, c in enumerate(dirs):
            name = "cell" if len(layers) == 1 and not pair else f"cell[{i}]" + (f"[{d}]" if pair else "")
            _check_cell(c, name)
        per_position.append(dirs)
    return per_position


def _state_layout(first: Any, H: int, state_sizes: Any) -> tuple[tuple[int, ...], bool]:
    """(sizes of the state's entries, whether the state is a tuple) from state_sizes or the cell type."""
    torch = _torch()
    if state_sizes is None:
        is_lstm = isinstance(first, torch.nn.LSTMCell)
        sizes, tuple_state = ((H, H) if is_lstm else (H,)), is_lstm
    elif isinstance(state_sizes, (int, np.integer)) and not isinstance(state_sizes, bool):
        sizes, tuple_state = (check_positive_int(state_sizes, "state_sizes"),), False
    elif isinstance(state_sizes, (list, tuple)) and len(state_sizes) > 0:
        sizes = tuple(check_positive_int(v, f"state_sizes[{k}]") for k, v in enumerate(state_sizes))
        tuple_state = True
    else:
        raise TypeError(f"state_sizes must be an int or a non-empty sequence of ints, got {state_sizes!r}")
    if sizes[0] != H:
        raise ValueError(f"state_sizes[0] (the size of h) must equal hidden_size={H}, got {sizes[0]}")
    return sizes, tuple_state


def _wrap(per_position, I: int, H: int, sizes: tuple[int, ...], tuple_state: bool):
    """Float64 copies of the distinct cells, each probed at its input width; parameter-name suffixes."""
    D = len(per_position[0])
    wrapped: dict[int, _FlatCell] = {}
    names: dict[int, str] = {}
    distinct = len({id(c) for dirs in per_position for c in dirs}) > 1
    cells = []
    for layer, dirs in enumerate(per_position):
        n_in = I if layer == 0 else D * H
        row = []
        for d, c in enumerate(dirs):
            position = f"_l{layer}" + ("_reverse" if d else "")
            if id(c) not in wrapped:
                where = type(c).__name__ + (f" (layer {layer}" + (", reverse)" if d else ")") if distinct else "")
                flat = _FlatCell(c, sizes, tuple_state, where)
                _probe(flat, n_in, H)
                wrapped[id(c)] = flat
                names[id(flat)] = position if distinct else ""
            elif layer > 0 and n_in != I:
                _probe(wrapped[id(c)], n_in, H)  # a shared cell must also accept the stacked input width
            row.append(wrapped[id(c)])
        cells.append(row)
    return cells, names


# -- measurements -------------------------------------------------------------------------------
def _as_cell_model(model: Any) -> TorchCellModel:
    if isinstance(model, TorchCellModel):
        return model
    return from_torch_cell(model)


def _sequence(model: TorchCellModel, x: Any):
    torch = _torch()
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = as_float_array(x, "x", copy=False)
    if x.ndim != 2 or x.shape[1] != model.input_size or x.shape[0] == 0:
        raise ValueError(
            f"x must be one unbatched sequence of shape (T, {model.input_size}) with T >= 1, got shape {x.shape}"
            + (" (batched input: call once per sequence)" if x.ndim == 3 else "")
        )
    return torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1)  # (T, 1, I)


def _joint_h0(model: TorchCellModel, h0: Any, S_joint: int):
    """Initial joint state (1, S_joint): zeros, or h0 laid out as in forward (num_layers entries)."""
    torch = _torch()
    if h0 is None:
        return torch.zeros(1, S_joint, dtype=torch.float64)
    if model.num_layers * model.num_directions == 1:  # one layer: (H,) as in gradient_flow's contract
        if isinstance(h0, tuple):  # a tuple of the wrong length is left for _initial_states to name
            if len(h0) == len(model.state_sizes):
                h0 = tuple(_one_layer(v, n) for v, n in zip(h0, model.state_sizes))
        else:
            h0 = _one_layer(h0, model.state_sizes[0])
    s0 = model._initial_states(h0, 1, False)  # (L, 1, S)
    return s0.permute(1, 0, 2).reshape(1, S_joint)


def _one_layer(value: Any, n: int) -> Any:
    """A one-layer model's initial state entry of shape (n,) as (1, n); anything else unchanged (checked later)."""
    if isinstance(value, _torch().Tensor):
        return value[None] if value.shape == (n,) else value
    try:
        ndim = np.ndim(value)
    except (TypeError, ValueError):  # ragged or odd input: as_float_array names it later
        return value
    return [value] if ndim == 1 and len(value) == n else value


def _readout_vector(model: TorchCellModel, readout: Any, S_joint: int) -> np.ndarray:
    H = model.hidden_size
    if readout is None:
        r = np.zeros(H)
        r[0] = 1.0
    else:
        torch = _torch()
        if isinstance(readout, torch.Tensor):
            readout = readout.detach().cpu().numpy()
        r = as_float_array(readout, "readout", shape=(H,))
    v = np.zeros(S_joint)
    top = S_joint - model.state_size  # the top layer's h comes first in its block
    v[top : top + H] = r
    return v


class _Sum:
    """Neumaier-compensated running sum: accurate to ~u * |total| after any number of terms."""

    def __init__(self, value: float = 0.0) -> None:
        self.total, self.comp = value, 0.0

    def add(self, term: float) -> None:
        t = self.total + term
        if abs(self.total) >= abs(term):
            self.comp += (self.total - t) + term
        else:
            self.comp += (term - t) + self.total
        self.total = t

    @property
    def value(self) -> float:
        return self.total + self.comp


def _params_frozen(model: TorchCellModel):
    """Context: the copies' parameters stop requiring grad (the flow needs state gradients only)."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        params = [p for c in model._unique_cells() for _, p in c.named_parameters()]
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)

    return ctx()


def torch_cell_gradient_flow(model: Any, x: Any, readout: Any = None, h0: Any = None) -> np.ndarray:
    r"""``ln||dL/ds_k||`` for k = 0..T, :math:`L = \langle r, h_T\rangle`, for a torch cell model.

    Same contract as :func:`gradtheory.gradient_flow` (entry T is ``ln||r||``; -inf for an
    exactly zero gradient), with s_k the flattened state (of all layers, for a stack; readout on
    the top layer). Chunked autograd: vector-Jacobian products through chunks of ``_CHUNK`` steps,
    the cotangent renormalised between chunks and its log-scale accumulated, so no horizon
    underflows or overflows. Up to ``_KEEP_GRAPH_STEPS`` steps the forward pass keeps its graph
    (one forward + one backward); beyond, chunks are recomputed on the way back.

    Raises
    ------
    FloatingPointError
        If the forward pass or one backward step leaves the float64 range.
    """
    torch = _torch()
    model = _as_cell_model(model)
    step, S = model._joint_step()
    xs = _sequence(model, x)
    r = _readout_vector(model, readout, S)
    s = _joint_h0(model, h0, S)
    T = xs.shape[0]
    out = np.full(T + 1, -np.inf)
    r_norm = float(np.linalg.norm(r))
    if r_norm == 0.0:
        return out
    keep = T <= _KEEP_GRAPH_STEPS
    with torch.random.fork_rng(devices=[]), _params_frozen(model):
        chunks = _flow_forward(step, xs, s, keep)
        log_scale = _Sum(math.log(r_norm))
        out[T] = log_scale.value
        v = torch.from_numpy(r / r_norm).reshape(1, S)
        for t0, chunk in reversed(chunks):
            states = chunk if keep else _chunk_states(step, xs, t0, chunk, grad=True)
            v = _flow_chunk(states, v, t0, log_scale, out)
            if v is None:
                break
            chunks.pop()
    return out


def _chunk_states(step, xs, t0: int, s, grad: bool):
    torch = _torch()
    with torch.set_grad_enabled(grad):
        s = s.detach().requires_grad_(grad)
        states = [s]
        for t in range(t0, min(t0 + _CHUNK, xs.shape[0])):
            s = step(xs[t], s)
            states.append(s)
    return states


def _flow_forward(step, xs, s, keep: bool) -> list:
    """Chunks (t0, states with graph) if keep, else (t0, initial state of the chunk)."""
    torch = _torch()
    chunks = []
    T = xs.shape[0]
    for t0 in range(0, T, _CHUNK):
        if keep:
            states = _chunk_states(step, xs, t0, s, grad=True)
            chunks.append((t0, states))
            s = states[-1]
        else:
            chunks.append((t0, s))
            with torch.no_grad():
                for t in range(t0, min(t0 + _CHUNK, T)):
                    s = step(xs[t], s)
        if not bool(torch.isfinite(s).all()):
            raise FloatingPointError(
                f"the forward pass overflowed before step t={min(t0 + _CHUNK, T)} (state not finite)"
            )
    return chunks


def _flow_chunk(states, v, t0: int, log_scale: _Sum, out: np.ndarray):
    """Backward through one chunk from its last state with cotangent v (unit norm, scale e^log_scale).

    Writes out[t0 .. t0+K-1]; returns the renormalised cotangent at the chunk's first state, or
    None if the gradient became exactly zero (out below stays -inf).
    """
    torch = _torch()
    K = len(states) - 1
    grads = torch.autograd.grad(states[-1], states[:-1], v, retain_graph=True, allow_unused=True)
    G = torch.stack([torch.zeros_like(v) if g is None else g for g in grads]).reshape(K, -1)
    norms = torch.linalg.vector_norm(G, dim=1).numpy()
    if np.all((norms >= _CHUNK_LO) & (norms <= _CHUNK_HI)):
        base = log_scale.value
        out[t0 : t0 + K] = base + np.log(norms)
        log_scale.add(math.log(norms[0]))
        return G[0].reshape(v.shape) / norms[0]
    for j in range(K - 1, -1, -1):  # one step at a time, renormalising after each
        (g,) = torch.autograd.grad(states[j + 1], states[j], v, retain_graph=True, allow_unused=True)
        nrm = 0.0 if g is None else float(_safe_norm(g))
        if nrm == 0.0:
            return None
        if not math.isfinite(nrm):
            raise FloatingPointError(f"one backward step overflowed at t={t0 + j + 1} (||J_t|| too large for float64)")
        log_scale.add(math.log(nrm))
        out[t0 + j] = log_scale.value
        v = g / nrm
    return v


def _safe_norm(g) -> float:
    """Euclidean norm of a tensor without underflow or overflow of the sum of squares."""
    m = float(g.abs().max())
    if m == 0.0 or not math.isfinite(m):
        return m
    return m * float(_torch().linalg.vector_norm(g / m))


def _jacobian_blocks(model: TorchCellModel, x: Any, h0: Any):
    """Yield (S, block of one-step Jacobians (K, S, S) as numpy) along the trajectory, in time order."""
    torch = _torch()
    step, S = model._joint_step()
    xs = _sequence(model, x)
    s = _joint_h0(model, h0, S)
    T = xs.shape[0]
    with torch.random.fork_rng(devices=[]), _params_frozen(model):
        for t0 in range(0, T, _JAC_BLOCK):
            t1 = min(t0 + _JAC_BLOCK, T)
            states = [s]
            with torch.no_grad():
                for t in range(t0, t1):
                    states.append(step(xs[t], states[-1]))
            s = states[-1]
            if not bool(torch.isfinite(s).all()):
                raise FloatingPointError(f"the forward pass overflowed before step t={t1} (state not finite)")
            prev = torch.cat(states[:-1])  # (K, S): rows are the states each step reads
            yield _row_jacobians(step, xs[t0:t1, 0], prev).numpy()


def torch_cell_lyapunov_exponent(
    model: Any,
    x: Any,
    h0: Any = None,
    *,
    reorthonormalize_every: int = 1,
    v0: Any = None,
) -> float:
    r""":math:`\frac1T\ln\|J_T\cdots J_1 v_0\|` for a torch cell model (see :func:`gradtheory.lyapunov_exponent`).

    The Jacobians come from ``torch.func.jacrev`` of the step (blocks of ``_JAC_BLOCK`` steps at
    once); the vector is renormalised after every step (``reorthonormalize_every`` is accepted for
    signature compatibility: the result does not depend on it beyond round-off).
    """
    check_positive_int(reorthonormalize_every, "reorthonormalize_every")
    model = _as_cell_model(model)
    _, S = model._joint_step()
    v = start_vector(S, v0)  # the numpy models' default (same draw)
    total = _Sum()
    T = 0
    for J in _jacobian_blocks(model, x, h0):
        for Jt in J:
            v = Jt @ v
            nrm = float(np.linalg.norm(v))
            if nrm == 0.0:
                return -math.inf
            total.add(math.log(nrm))
            v = v / nrm
        T += J.shape[0]
    return total.value / T


def torch_cell_lyapunov_spectrum(
    model: Any,
    x: Any,
    k: int | None = None,
    h0: Any = None,
    *,
    reorthonormalize_every: int = 1,
) -> np.ndarray:
    r"""The k largest finite-T Lyapunov exponents by the QR method, shape (k,), for a torch cell model.

    As :func:`gradtheory.lyapunov_spectrum`: the basis starts as the first k columns of the
    identity, :math:`Q \leftarrow J_t Q` with a QR factorisation every ``reorthonormalize_every``
    steps (and at T), returning :math:`\frac1T\sum\ln|R_{ii}|` per column.
    """
    every = check_positive_int(reorthonormalize_every, "reorthonormalize_every")
    model = _as_cell_model(model)
    _, S = model._joint_step()
    k = S if k is None else check_positive_int(k, "k")
    if k > S:
        raise ValueError(f"k must be <= the state dimension {S}, got {k}")
    Q = np.eye(S)[:, :k]
    sums = [_Sum() for _ in range(k)]
    dead = np.zeros(k, dtype=bool)
    T = _sequence(model, x).shape[0]
    t = 0
    for J in _jacobian_blocks(model, x, h0):
        for Jt in J:
            t += 1
            Q = Jt @ Q
            if t % every == 0 or t == T:
                Q, R = np.linalg.qr(Q)
                d = np.abs(np.diag(R))
                dead |= d == 0.0
                for i in np.nonzero(d > 0.0)[0]:
                    sums[i].add(math.log(d[i]))
    out = np.array([s.value for s in sums]) / T
    out[dead] = -np.inf
    return out


def torch_cell_check_stability(model: Any, x: Any, *, readout: Any = None, neutral_band: float = 1e-2):
    """:func:`gradtheory.check_stability` for a torch cell model: regime, measured rate and Lyapunov
    exponent (no envelope: that theorem is for the Elman cell; those fields are None)."""
    from ..check import StabilityReport

    neutral_band = check_real(neutral_band, "neutral_band", minimum=0.0)
    model = _as_cell_model(model)
    flow = torch_cell_gradient_flow(model, x, readout=readout)
    T = flow.shape[0] - 1
    s = T - np.arange(T + 1)
    finite = np.isfinite(flow)
    rate = float(np.polyfit(s[finite], flow[finite], 1)[0]) if finite.sum() >= 2 else -math.inf
    lyap = float(torch_cell_lyapunov_exponent(model, x))
    regime = "vanishing" if lyap < -neutral_band else "exploding" if lyap > neutral_band else "neutral"
    kind = "TorchCell(" + "/".join(sorted({type(c.fn).__name__ for layer in model._cells for c in layer})) + ")"
    return StabilityReport(
        regime=regime,
        rate=rate,
        lyapunov=lyap,
        kind=kind,
        gamma=None,
        spectral_norm=None,
        bound_rate=None,
        distance=None,
        envelope_ok=None,
        flow=flow,
        envelope=None,
    )
