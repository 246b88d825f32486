"""Reference recurrent models in numpy float64 with hand-written BPTT."""

from .activations import ACTIVATIONS, Activation, get_activation
from .compose import GRU, LSTM, RNN, ForwardResult, Gradients, HighwayRNN, RecurrentModel, ResidualRNN
from .torch_cell import CellForwardResult, TorchCellModel, from_torch_cell

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "get_activation",
    "RecurrentModel",
    "RNN",
    "LSTM",
    "GRU",
    "ResidualRNN",
    "HighwayRNN",
    "ForwardResult",
    "Gradients",
    "from_torch_cell",
    "TorchCellModel",
    "CellForwardResult",
]
