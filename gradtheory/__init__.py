"""gradtheory: an executable theory of vanishing and exploding gradients in recurrent networks.

Reference numpy float64 models with hand-written BPTT (twins of ``torch.nn.RNN/LSTM/GRU``),
independent derivative oracles, Hypothesis strategies, SymPy derivations and checks.
"""

from __future__ import annotations

from typing import Any

from .models import (
    ACTIVATIONS,
    GRU,
    LSTM,
    RNN,
    Activation,
    ForwardResult,
    Gradients,
    HighwayRNN,
    RecurrentModel,
    ResidualRNN,
    get_activation,
)
from .models.torch_interop import from_torch, to_torch

__version__ = "0.1.0"

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
    "from_torch",
    "to_torch",
    "__version__",
]
