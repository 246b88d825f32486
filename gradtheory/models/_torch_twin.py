"""The torch twin of a cell that has no ``torch.nn`` module: a small ``torch.nn.Module`` running the
cell's own ``torch_step`` (torch operations, written beside the numpy step in the cell's file)
over time, layers and directions exactly as ``torch.nn.RNNBase`` does.

torch is imported at module level: import this module only when a conversion is asked for.
"""

from __future__ import annotations

from typing import Any

import torch

from ..cells import recurrent_input

__all__ = ["TorchTwin"]


class TorchTwin(torch.nn.Module):
    """``torch.nn.RNN``-like module for a registered cell (``cell_name``) with torch's parameter names.

    ``forward(x, hx=None)`` returns ``(output, h_n)``, or ``(output, (h_n, c_n))`` for a
    two-component state, with torch's layouts (batch_first, unbatched input, stacking, reverse
    direction).
    """

    def __init__(
        self,
        cell: Any,
        cell_name: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        nonlinearity: str | None = None,
        dtype: Any = torch.float64,
    ) -> None:
        super().__init__()
        layout = getattr(cell, "layout", None)
        if not (hasattr(cell, "torch_step") or (callable(layout) and hasattr(cell, "torch_layer"))):
            raise NotImplementedError(
                f"the cell {type(cell).__name__} has no torch_step (or torch_layer): no torch twin"
            )
        self.cell = cell
        self.cell_name = cell_name
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.nonlinearity = nonlinearity
        D, G, H = 2 if bidirectional else 1, cell.gates, hidden_size
        size = getattr(cell, "output_size", None)
        out = H if size is None else size(input_size, H)
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else D * out
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                if callable(layout):  # the cell's own layer layout
                    shapes = dict(layout(n_in, H))
                else:
                    shapes = {"weight_ih": (G * H, n_in), "weight_hh": cell.recurrence.weight_shape(G * H, H)}
                if bias and not callable(layout):
                    shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
                for name, shape in shapes.items():
                    self.register_parameter(name + sfx, torch.nn.Parameter(torch.zeros(shape, dtype=dtype)))

    def _run(self, x: torch.Tensor, state: tuple, sfx: str, reverse: bool) -> tuple[torch.Tensor, tuple]:
        if callable(getattr(self.cell, "layout", None)):  # the cell's own layer, in torch operations
            names = self.cell.layout(x.shape[-1], self.hidden_size)
            y, state = self.cell.torch_layer({k: getattr(self, k + sfx) for k in names}, x, state)
            return y, tuple(state)
        W_ih, W_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
        b_ih = getattr(self, "bias_ih" + sfx) if self.bias else None
        b_hh = getattr(self, "bias_hh" + sfx) if self.bias else None
        outs = []
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        for t in steps:
            gi = x[t] @ W_ih.T
            gh = self.cell.recurrence.torch(
                recurrent_input(self.cell.recurrence, state, lambda parts: torch.cat(parts, dim=-1)), W_hh
            )
            if b_ih is not None:
                gi, gh = gi + b_ih, gh + b_hh
            state = tuple(self.cell.torch_step(gi, gh, state))
            outs.append(state[0])
        if reverse:
            outs.reverse()
        return torch.stack(outs), state

    def forward(self, x: torch.Tensor, hx: Any = None) -> tuple[torch.Tensor, Any]:
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        n_states, D = self.cell.n_states, 2 if self.bidirectional else 1
        LD, B, H = self.num_layers * D, x.shape[1], self.hidden_size
        if hx is None:
            hx = tuple(x.new_zeros(LD, B, H) for _ in range(n_states))
        else:
            hx = tuple(hx) if n_states > 1 else (hx,)
            if not batched:
                hx = tuple(h.unsqueeze(1) for h in hx)
        finals: list[list[torch.Tensor]] = [[] for _ in range(n_states)]
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                out, state = self._run(layer_in, tuple(h[layer * D + d] for h in hx), sfx, d == 1)
                outs.append(out)
                for k in range(n_states):
                    finals[k].append(state[k])
            layer_in = torch.cat(outs, dim=-1)
        output, states = layer_in, [torch.stack(f) for f in finals]
        if not batched:
            output, states = output.squeeze(1), [s.squeeze(1) for s in states]
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (tuple(states) if n_states > 1 else states[0])
