"""Reference recurrent models in numpy float64 with hand-written BPTT."""

from .activations import ACTIVATIONS, Activation, get_activation
from .compose import GRU, LSTM, RNN, ForwardResult, Gradients, HighwayRNN, RecurrentModel, ResidualRNN

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
]
