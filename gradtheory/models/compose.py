r"""The model around any cell: parameters by torch names, stacked and bidirectional composition.

The cell (``gradtheory.cells``) supplies one step; the time loop is :mod:`._scan`. Stacking and bidirectionality follow ``torch.nn.RNNBase``: layer ``l > 0`` reads the
concatenated outputs of layer ``l - 1`` (forward half first); the reverse direction reads the
sequence backwards, its outputs are flipped back into place, and its final state is the one
after reading ``x_0`` (so ``h_n[reverse] == output[0, ..., H:]``).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._validation import as_float_array, check_bool, check_positive_int, time_major_sequence
from ._scan import LayerParams, LayerTrace, LayoutParams, scan_backward, scan_forward, scan_jacobians
from .activations import get_activation

__all__ = [
    "ForwardResult",
    "Parametrization",
    "parametrized_name",
    "Gradients",
    "LayerParams",
    "LayoutParams",
    "RecurrentModel",
    "ActivationModel",
]

_BUILTIN_MODELS = ("RNN", "LSTM", "GRU", "ResidualRNN", "HighwayRNN")


def __getattr__(name: str) -> Any:
    # The built-in model classes live beside their cells (gradtheory.cells); kept importable here.
    if name in _BUILTIN_MODELS:
        from .. import cells

        for spec in cells.REGISTRY.values():
            if spec.model.__name__ == name:
                return spec.model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class ForwardResult:
    """Result of :meth:`RecurrentModel.forward`, laid out as the torch module's return value.

    ``output``: (T, B, D*H) time-major, (B, T, D*H) with batch_first, (T, D*H) unbatched (H is
    ``output_size`` for a cell with a readout: the LRU's and the selective SSM's y has the input's size).
    ``h_n`` (and ``c_n`` for LSTM): (num_layers*D, B, H), or (num_layers*D, H) unbatched.
    """

    output: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray | None
    traces: tuple[LayerTrace, ...] = field(repr=False)
    batched: bool = field(repr=False)
    batch_first: bool = field(repr=False)
    #: the parameters the forward ran with (the model's own, or those given to ``apply``): the
    #: backward pulls the gradients of parametrized weights back to these free parameters
    params: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Gradients:
    """Gradients returned by :meth:`RecurrentModel.backward`.

    ``params``: torch parameter name -> ndarray (same shape as the parameter).
    ``x``: same shape as the input. ``h0`` (and ``c0`` for LSTM): torch's initial-state layout.
    ``dh`` (and ``dc`` for LSTM): the gradient flowing back through time, shape
    (num_layers*D, T, B, H) (or (num_layers*D, T, H) unbatched), always time-major:
    ``dh[l*D + d, t]`` is the total derivative of the loss with respect to the state of layer
    ``l``, direction ``d``, after it has read ``x_t`` (for LSTM, ``dc`` is taken at fixed h, the
    joint-state convention).
    """

    params: dict[str, np.ndarray]
    x: np.ndarray
    h0: np.ndarray
    c0: np.ndarray | None
    dh: np.ndarray
    dc: np.ndarray | None


def _flip(a: np.ndarray) -> np.ndarray:
    return a[::-1]


@runtime_checkable
class Parametrization(Protocol):
    r"""A weight computed from a free parameter, :math:`W = f(A)` (e.g. ``W_hh = expm(A - A^T)``).

    A model lists its parametrizations in :attr:`RecurrentModel.parametrizations`, keyed by the
    weight's base name (``"weight_hh"``); every layer and direction then carries the free
    parameter under torch's name ``parametrizations.<weight>.original`` (as
    ``torch.nn.utils.parametrize`` names it). ``forward(A)`` gives :math:`W` (real or complex
    ``A``: analytic maps keep the complex step valid); ``vjp(A, G)`` gives
    :math:`\partial \langle G, f(A)\rangle / \partial A`; ``torch_module()`` returns the
    ``torch.nn.Module`` registered on the torch twin with ``register_parametrization``.
    """

    def forward(self, value: np.ndarray) -> np.ndarray: ...

    def vjp(self, value: np.ndarray, d_weight: np.ndarray) -> np.ndarray: ...

    def torch_module(self) -> Any: ...


def parametrized_name(weight: str) -> str:
    """torch's name of the free parameter behind a parametrized weight (``weight_hh_l0`` ->
    ``parametrizations.weight_hh_l0.original``)."""
    return f"parametrizations.{weight}.original"


class RecurrentModel:
    """A recurrent model of any cell: parameters keyed by torch names, stacking, bidirectionality.

    ``cell`` is any object implementing :class:`gradtheory.cells.Cell` (a subclass such as
    :class:`RNN` or :class:`LSTM` supplies its own). ``params`` (torch names -> arrays) sets the
    weights; otherwise they are drawn like torch's default, U(-1/sqrt(H), 1/sqrt(H)), from
    ``numpy.random.default_rng(seed)``.
    """

    mode: str = ""
    cell_class: Any = None
    #: base weight name (``"weight_hh"``) -> :class:`Parametrization`; empty: every weight is free
    parametrizations: Mapping[str, Any] = MappingProxyType({})

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        cell: Any = None,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        params: Mapping[str, Any] | None = None,
        seed: int | None = 0,
    ) -> None:
        from ..cells import check_cell

        if cell is None:
            if self.cell_class is None:
                raise TypeError("cell must be given: an object implementing gradtheory.cells.Cell")
            cell = self.cell_class()
        self._cell = check_cell(cell)
        self.input_size = check_dimension(input_size, "input_size")
        self.hidden_size = check_dimension(hidden_size, "hidden_size")
        # h0 and h_n have a num_layers * num_directions axis: numpy's largest dimension bounds it
        # (num_layers=2**63 used to build parameter names until memory ran out)
        self.num_layers = check_dimension(num_layers, "num_layers")
        self.bias = check_bool(bias, "bias")
        self.batch_first = check_bool(batch_first, "batch_first")
        self.bidirectional = check_bool(bidirectional, "bidirectional")
        self.num_directions = 2 if self.bidirectional else 1
        for option, fixed in getattr(self._cell, "layer_options", {}).items():
            if getattr(self, option) != fixed:
                raise NotImplementedError(
                    f"{option}={getattr(self, option)!r} is not supported by the cell {type(self._cell).__name__} "
                    f"(it fixes {option}={fixed!r})"
                )
        if params is None:
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
                raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
            rng = np.random.default_rng(seed)
            if callable(getattr(self._cell, "init_params", None)):
                params = self.per_layer(lambda n_in: self._cell.init_params(rng, n_in, self.hidden_size))
            else:
                bound = 1.0 / np.sqrt(self.hidden_size)  # torch's default: U(-1/sqrt(H), 1/sqrt(H))
                params = {k: rng.uniform(-bound, bound, size=s) for k, s in self.param_shapes().items()}
        self.params = params

    @property
    def cell(self) -> Any:
        """The cell (read-only): one step, its backward and its one-step Jacobian."""
        return self._cell

    @property
    def num_states(self) -> int:
        """Number of state components: 1 for (h,), 2 for LSTM's (h, c)."""
        return int(self._cell.n_states)

    @property
    def state_size(self) -> int:
        """Dimension S of the joint state (num_states * hidden_size)."""
        return self.num_states * self.hidden_size

    @property
    def output_size(self) -> int:
        """Features of each direction's output y_t: hidden_size (y_t = h_t), or the cell's readout size."""
        size = getattr(self._cell, "output_size", None)
        return self.hidden_size if size is None else int(size(self.input_size, self.hidden_size))

    def _layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.output_size

    def per_layer(self, make: Any) -> dict[str, Any]:
        """Parameters by torch's names from ``make(input_size) -> {base name: value}`` called once per
        layer and direction with that layer's input width (``<base>_l<k>[_reverse]``, in torch's order).

        Parameters
        ----------
        make : callable
            ``make(n_in)`` for a layer reading ``n_in`` features: a mapping of base names to values.

        Returns
        -------
        dict
            Every layer's and direction's values under torch's parameter names.
        """
        out: dict[str, Any] = {}
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                out.update({base + sfx: v for base, v in make(self._layer_input_size(layer)).items()})
        return out

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Parameters keyed by torch's names (float64 arrays; assigning a mapping validates and copies it)."""
        return self._params

    @params.setter
    def params(self, params: Mapping[str, Any]) -> None:
        self._check_names(params)
        shapes = self.param_shapes()
        self._params = {k: as_float_array(params[k], f"params[{k!r}]", shape=s) for k, s in shapes.items()}

    def _check_names(self, params: Any) -> None:
        shapes = self.param_shapes()
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping of parameter name -> array, got {type(params).__name__}")
        missing = sorted(set(shapes) - set(params))
        extra = sorted(set(params) - set(shapes))
        if missing or extra:
            raise ValueError(
                f"params has the wrong names: missing {missing}, unexpected {extra}; expected {sorted(shapes)}"
            )

    # -- layout -----------------------------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Torch parameter names and shapes, in torch's order (``weight_hh`` as the cell's recurrence lays it out)."""
        G, H = self._cell.gates, self.hidden_size
        if callable(getattr(self._cell, "layout", None)):  # the cell's own layer layout
            return self.per_layer(lambda n_in: self._cell.layout(n_in, H))
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            n_in = self.input_size if layer == 0 else self.num_directions * H
            for d in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes["weight_ih" + sfx] = (G * H, n_in)
                shapes["weight_hh" + sfx] = self._cell.recurrence.weight_shape(G * H, H)
                if self.bias:
                    shapes["bias_ih" + sfx] = (G * H,)
                    shapes["bias_hh" + sfx] = (G * H,)
        if self.parametrizations:  # torch lists the free parameters after the module's own
            free = {k: v for k, v in shapes.items() if self._parametrization_of(k) is None}
            free.update({parametrized_name(k): v for k, v in shapes.items() if self._parametrization_of(k) is not None})
            shapes = free
        return shapes

    def _parametrization_of(self, weight: str) -> Any:
        """The parametrization of a weight name (``weight_hh_l0_reverse``), or None."""
        base = weight.split("_l", 1)[0]
        return self.parametrizations.get(base) if weight.startswith(("weight_", "bias_")) else None

    def layer_params(
        self, layer: int = 0, direction: int = 0, params: Mapping[str, Any] | None = None
    ) -> LayerParams | LayoutParams:
        """The weights of one layer and direction (from ``params``, default the model's own): a
        :class:`LayerParams` in torch's layout, or the :class:`LayoutParams` of a cell with its own."""
        p = self.params if params is None else params
        sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        if callable(getattr(self._cell, "layout", None)):
            base = self._cell.layout(self._layer_input_size(layer), self.hidden_size)
            return LayoutParams({k: p[k + sfx] for k in base})

        def value(name):
            P = self._parametrization_of(name)
            if P is None:
                return p.get(name)
            return P.forward(p[parametrized_name(name)])

        return LayerParams(
            value("weight_ih" + sfx), value("weight_hh" + sfx), value("bias_ih" + sfx), value("bias_hh" + sfx)
        )

    def unparametrized(self) -> RecurrentModel:
        """The model with every parametrized weight replaced by its value (``self`` when there is
        none): same outputs; its gradients are those with respect to the weights themselves."""
        if not self.parametrizations:
            return self
        raise NotImplementedError(f"{type(self).__name__} does not say which model its weights form")

    def num_parameters(self) -> int:
        return int(sum(np.prod(s) for s in self.param_shapes().values()))

    def __repr__(self) -> str:
        extra = f", nonlinearity={self.nonlinearity!r}" if hasattr(self, "nonlinearity") else ""
        return (
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
            f"{extra}, bias={self.bias}, batch_first={self.batch_first}, bidirectional={self.bidirectional})"
        )

    # -- input handling ---------------------------------------------------------------------
    def _prepare_x(self, x, allow_complex=False):
        x = as_float_array(x, "x", ndim=(2, 3), allow_complex=allow_complex)
        return time_major_sequence(x, self.input_size, batch_first=self.batch_first)

    def _prepare_state(self, value, name, B, batched, dtype, allow_complex=False):
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        if value is None:
            return np.zeros((LD, B, H), dtype=dtype)
        shape = (LD, B, H) if batched else (LD, H)
        arr = as_float_array(value, name, shape=shape, allow_complex=allow_complex)
        return arr if batched else arr[:, None, :]

    # -- forward ------------------------------------------------------------------------------
    def forward(self, x: Any, h0: Any = None) -> ForwardResult:
        """Run the model over ``x`` (torch layout) from initial state ``h0`` (zeros if None).

        For LSTM ``h0`` is a tuple ``(h0, c0)``. Returns a :class:`ForwardResult`.
        """
        shapes = self.param_shapes()
        for name, value in self._params.items():
            if not isinstance(value, np.ndarray) or value.shape != shapes[name]:
                # an entry replaced through the dict (model.params[name] = ...) bypasses the setter
                raise ValueError(
                    f"params[{name!r}] must be an array of shape {shapes[name]}, got {type(value).__name__} "
                    f"of shape {np.shape(value)} (assign model.params = {{...}} to validate a new set)"
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(f"params[{name!r}] must be finite, got a non-finite entry (NaN or Inf)")
        result = self._run(x, h0, None, False)
        _check_finite_states(result)
        return result

    __call__ = forward

    def apply(self, params: Mapping[str, Any], x: Any, h0: Any = None) -> ForwardResult:
        """The forward pass as a function of the parameters: ``forward`` with ``params`` in place of
        the model's own (same names and shapes; the model is not changed).

        Real or complex arrays are accepted for ``params``, ``x`` and ``h0`` (complex: for the
        complex-step oracle; every operation of the analytic cells extends to complex arguments).
        ``params`` are read, not copied or checked for finiteness.
        """
        self._check_names(params)
        shapes = self.param_shapes()
        for k, s in shapes.items():
            if np.shape(params[k]) != s:
                raise ValueError(f"params[{k!r}] must have shape {s}, got {np.shape(params[k])}")
        return self._run(x, h0, params, True)

    def _run(self, x, h0, params, allow_complex) -> ForwardResult:
        x_tm, batched = self._prepare_x(x, allow_complex=allow_complex)
        B = x_tm.shape[1]
        dtype = np.result_type(x_tm, np.float64)
        states0 = self._initial_states(h0, B, batched, dtype, allow_complex)
        traces = []
        finals: list[list[np.ndarray]] = [[] for _ in states0]
        layer_in = x_tm
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                ld = layer * self.num_directions + d
                inp = _flip(layer_in) if d == 1 else layer_in
                tr = scan_forward(self._cell, inp, tuple(s[ld] for s in states0), self.layer_params(layer, d, params))
                traces.append(tr)
                out = tr.states[0][1:] if tr.output is None else tr.output
                outs.append(_flip(out) if d == 1 else out)
                for k in range(len(finals)):
                    finals[k].append(tr.states[k][-1])
            layer_in = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)
        output = layer_in
        final_states = [np.stack(f) for f in finals]
        if not batched:
            output = output[:, 0]
            final_states = [f[:, 0] for f in final_states]
        elif self.batch_first:
            output = np.swapaxes(output, 0, 1)
        return ForwardResult(
            output=output.copy(),  # never a view of the trace that backward reads
            h_n=final_states[0],
            c_n=final_states[1] if len(final_states) > 1 else None,
            traces=tuple(traces),
            batched=batched,
            batch_first=self.batch_first,
            params=self.params if params is None else params,
        )

    def _initial_states(self, h0, B, batched, dtype, allow_complex):
        if self.num_states == 1:
            if isinstance(h0, tuple):
                raise TypeError(f"h0 must be an array for {type(self).__name__}, got a tuple")
            return (self._prepare_state(h0, "h0", B, batched, dtype, allow_complex),)
        if h0 is None:
            h0 = (None, None)
        if not (isinstance(h0, tuple) and len(h0) == 2):
            raise TypeError(f"h0 must be a tuple (h0, c0) for {type(self).__name__}, got {type(h0).__name__}")
        return (
            self._prepare_state(h0[0], "h0[0]", B, batched, dtype, allow_complex),
            self._prepare_state(h0[1], "h0[1]", B, batched, dtype, allow_complex),
        )

    def _check_result(self, result: Any) -> None:
        """``result`` must come from a forward of a model with this one's layout (any weights)."""
        if not isinstance(result, ForwardResult):
            raise TypeError(f"result must be the ForwardResult of this model's forward, got {type(result).__name__}")
        LD = self.num_layers * self.num_directions

        def weights(p):  # the recurrent weight's shape, or a cell's own layout
            return p.W_hh.shape if p.named is None else tuple((k, np.shape(v)) for k, v in p.named.items())

        layout = [
            (
                type(tr.cell),
                weights(LayerParams(tr.W_ih, tr.W_hh, None, None) if tr.named is None else LayoutParams(tr.named)),
                tr.x.shape[-1],
                tr.has_bias,
            )
            for tr in result.traces
        ]
        expected = [
            (
                type(self._cell),
                weights(self.layer_params(layer, d)),
                self._layer_input_size(layer),
                self.bias and _torch_layout(self._cell),
            )
            for layer in range(self.num_layers)
            for d in range(self.num_directions)
        ]
        if len(result.traces) != LD or layout != expected or result.batch_first != self.batch_first:
            raise ValueError(
                f"result must be the ForwardResult of a {type(self).__name__} with this model's layout "
                f"(cell, sizes, layers, directions, bias, batch_first); it comes from a different model"
            )

    # -- backward -----------------------------------------------------------------------------
    def backward(
        self,
        result: ForwardResult,
        d_output,
        d_h_n=None,
        d_c_n=None,
        *,
        truncate: int | None = None,
    ) -> Gradients:
        r"""Backpropagation through time for :math:`L = \langle d_{output}, output\rangle +
        \langle d_{h_n}, h_n\rangle + \langle d_{c_n}, c_n\rangle`.

        ``truncate=k`` traverses only the last ``k`` steps (truncated BPTT): it equals the exact
        gradient of the outputs at those steps (plus the final-state terms) with the states
        before them treated as constants. Not defined for bidirectional models.
        """
        self._check_result(result)
        if truncate is not None:
            truncate = check_positive_int(truncate, "truncate")
            if self.bidirectional:
                raise NotImplementedError("truncate is not supported for bidirectional models")
        allow_c = np.iscomplexobj(result.output)
        d_out = as_float_array(d_output, "d_output", shape=result.output.shape, allow_complex=allow_c)
        if result.batched and result.batch_first:
            d_out = np.swapaxes(d_out, 0, 1)
        if not result.batched:
            d_out = d_out[:, None]
        T, B = d_out.shape[:2]
        LD, H, D = self.num_layers * self.num_directions, self.hidden_size, self.num_directions
        O = self.output_size

        def final(value, name, like):
            if value is None:
                return np.zeros((LD, B, H))
            if like is None:
                raise TypeError(f"{name} is only defined for LSTM")
            arr = as_float_array(value, name, shape=like.shape, allow_complex=allow_c)
            return arr if result.batched else arr[:, None]

        dfin = [final(d_h_n, "d_h_n", result.h_n)]
        if self.num_states == 2:
            dfin.append(final(d_c_n, "d_c_n", result.c_n))
        elif d_c_n is not None:
            raise TypeError(f"d_c_n is only defined for LSTM, not {type(self).__name__}")

        grads: dict[str, np.ndarray] = {}
        dtype = np.result_type(d_out, result.output, *dfin)  # real cotangents of a complex forward: complex
        d_init = [np.zeros((LD, B, H), dtype=dtype) for _ in dfin]
        d_steps = [np.zeros((LD, T, B, H), dtype=dtype) for _ in dfin]
        d_above = d_out
        for layer in range(self.num_layers - 1, -1, -1):
            d_below: np.ndarray | None = None
            for d in range(D):
                ld = layer * D + d
                tr = result.traces[ld]
                d_o = d_above[..., d * O : (d + 1) * O]
                if d == 1:
                    d_o = _flip(d_o)
                dx, d0, g, steps = scan_backward(tr, d_o, tuple(f[ld] for f in dfin), truncate)
                if d == 1:
                    dx = _flip(dx)
                    steps = tuple(_flip(s) for s in steps)
                d_below = dx if d_below is None else d_below + dx
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                for k, v in g.items():
                    grads[k + sfx] = v
                for k in range(len(dfin)):
                    d_init[k][ld] = d0[k]
                    d_steps[k][ld] = steps[k]
            assert d_below is not None  # D >= 1 directions were traversed
            d_above = d_below
        dx = d_above
        if not result.batched:
            dx = dx[:, 0]
            d_init = [v[:, 0] for v in d_init]
            d_steps = [v[:, :, 0] for v in d_steps]
        elif result.batch_first:
            dx = np.swapaxes(dx, 0, 1)
        if self.parametrizations:  # pull the weights' gradients back to the free parameters
            raw = self.params if result.params is None else result.params
            for k in list(grads):
                P = self._parametrization_of(k)
                if P is not None:
                    grads[parametrized_name(k)] = P.vjp(raw[parametrized_name(k)], grads.pop(k))
        ordered = {k: grads[k] for k in self.param_shapes()}
        for name, value in (*ordered.items(), ("x", dx)):
            if not (np.isfinite(np.min(value)) and np.isfinite(np.max(value))) if value.size else False:
                raise FloatingPointError(
                    f"backward overflowed: the gradient of {name} is not finite although the forward "
                    f"states and d_output are; scale d_output, x or the weights down"
                )
        return Gradients(
            params=ordered,
            x=dx,
            h0=d_init[0],
            c0=d_init[1] if len(d_init) > 1 else None,
            dh=d_steps[0],
            dc=d_steps[1] if len(d_steps) > 1 else None,
        )

    # -- Jacobians ----------------------------------------------------------------------------
    def jacobians(self, result: ForwardResult, layer: int = 0, direction: int = 0) -> np.ndarray:
        r"""One-step Jacobians of the recurrent state of one layer and direction.

        Shape (T, B, S, S) (or (T, S, S) unbatched), S = H, or 2H for LSTM's joint state (h, c).
        For the forward direction ``J[t]`` is :math:`\partial s_t / \partial s_{t-1}` (``s_{-1}``
        the initial state); for the reverse direction it is the derivative of the state at
        position ``t`` with respect to the state at position ``t + 1`` (the one it was computed
        from), so indices always follow sequence positions.
        """
        self._check_result(result)
        layer = check_positive_int(layer, "layer", minimum=0)
        direction = check_positive_int(direction, "direction", minimum=0)
        if layer >= self.num_layers:
            raise ValueError(f"layer must be < num_layers={self.num_layers}, got {layer}")
        if direction >= self.num_directions:
            raise ValueError(f"direction must be < {self.num_directions}, got {direction}")
        J = scan_jacobians(result.traces[layer * self.num_directions + direction])
        if direction == 1:
            J = _flip(J)
        return J if result.batched else J[:, 0]


def check_dimension(value: Any, name: str) -> int:
    """A positive int that numpy can use as an array dimension (ValueError naming ``name`` otherwise)."""
    value = check_positive_int(value, name)
    if value > np.iinfo(np.intp).max:
        raise ValueError(f"{name} must be at most {np.iinfo(np.intp).max} (numpy's largest dimension), got {value}")
    return value


def _torch_layout(cell: Any) -> bool:
    """True when the cell has torch's layout (a trace records its biases); False for its own layout."""
    return not callable(getattr(cell, "layout", None))


def _check_finite_states(result: ForwardResult) -> None:
    """Finite inputs and parameters that overflow inside the recurrence (e.g. ReLU with x ~ 1e308)
    are an error, not a silent inf/NaN output."""
    for index, tr in enumerate(result.traces):
        for k, states in enumerate(tr.states):
            if not (np.isfinite(np.min(states)) and np.isfinite(np.max(states))):
                name = "h" if k == 0 else "c"
                raise FloatingPointError(
                    f"forward overflowed: state {name} of layer/direction {index} is not finite although x, "
                    f"h0 and params are (input magnitude up to {np.max(np.abs(tr.x)):.3g}); "
                    f"scale x or the weights down"
                )


class ActivationModel(RecurrentModel):
    """A model whose cell takes an activation: ``Model(input_size, hidden_size, num_layers, nonlinearity)``.

    Subclasses set ``cell_class`` (a cell constructed from the activation name) and may change
    ``default_nonlinearity``.
    """

    default_nonlinearity = "tanh"

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str | None = None, **kwargs: Any
    ) -> None:
        self.nonlinearity = get_activation(self.default_nonlinearity if nonlinearity is None else nonlinearity).name
        super().__init__(input_size, hidden_size, num_layers, cell=self.cell_class(self.nonlinearity), **kwargs)
