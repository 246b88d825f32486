"""Reference recurrent models in numpy float64 with hand-written BPTT.

The model classes of the registered cells (:mod:`gradtheory.cells`) are exported here, with the
per-step functions of the one time loop (``input_projection``, ``step_forward``,
``step_backward``) for tools that walk a trajectory themselves (:mod:`gradtheory.flow`).
"""

from typing import Any

from .. import cells as _cells
from ..cells.gru import GRU
from ..cells.highway import HighwayRNN
from ..cells.lstm import LSTM
from ..cells.residual import ResidualRNN
from ..cells.rnn import RNN
from ._scan import StepGrads, input_projection, layer_inputs, step_backward, step_forward
from .activations import ACTIVATIONS, Activation, get_activation
from .compose import (
    ActivationModel,
    ForwardResult,
    Gradients,
    LayerParams,
    LayoutParams,
    RecurrentModel,
)
from .torch_cell import CellForwardResult, TorchCellModel, from_torch_cell

# every registered cell's model class (the built-ins above, and any cell added to the registry)
_MODELS: dict[str, Any] = {spec.model.__name__: spec.model for spec in _cells.REGISTRY.values()}
globals().update(_MODELS)

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "get_activation",
    "RecurrentModel",
    "ActivationModel",
    "ForwardResult",
    "Gradients",
    "LayerParams",
    "LayoutParams",
    "StepGrads",
    "input_projection",
    "layer_inputs",
    "step_forward",
    "step_backward",
    "RNN",
    "LSTM",
    "GRU",
    "ResidualRNN",
    "HighwayRNN",
    "from_torch_cell",
    "TorchCellModel",
    "CellForwardResult",
]
__all__ += [name for name in _MODELS if name not in __all__]  # models of cells registered beyond the built-ins
