"""gradtheory: an executable theory of vanishing and exploding gradients in recurrent networks.

Reference numpy float64 models with hand-written BPTT (twins of ``torch.nn.RNN/LSTM/GRU``),
independent derivative oracles, bounds and long-horizon gradient flow, clipping, a gradient
checker, Hypothesis strategies (``gradtheory.strategies``), SymPy derivations
(``gradtheory.symbolic``) and the claims audit (``gradtheory.claims``). The heavy submodules
(SymPy, Hypothesis) load on first attribute access.
"""

# Import order matters here: gradtheory.models loads the cell registry before anything reads it.
from __future__ import annotations  # noqa: I001

import importlib
from typing import Any

from .models import (  # first: the models package loads the cell registry
    ACTIVATIONS,
    GRU,
    LSTM,
    RNN,
    Activation,
    CellForwardResult,
    ForwardResult,
    Gradients,
    HighwayRNN,
    RecurrentModel,
    ResidualRNN,
    TorchCellModel,
    from_torch_cell,
    get_activation,
)
from . import cells
from .bounds import envelope, spectral_norm, spectral_radius
from .check import (
    CheckTarget,
    GradientCheckError,
    GradientReport,
    StabilityReport,
    assert_gradients_match,
    check_gradients,
    check_stability,
    gradcheck,
    gradgradcheck,
)
from .claims import Claim, ClaimResult, Verdict, all_claims, get_claim, run_audit
from .clipping import clip_grad_norm, clip_grad_value
from .cells.lru import LRU
from .cells.selective_ssm import SelectiveSSM
from .flow import gradient_flow, jacobian_norms, lyapunov_exponent, lyapunov_spectrum
from .models.torch_interop import from_torch, to_torch

# Every registered cell's model class (gradtheory.RNN, ..., and any cell added to the registry).
_MODELS = {spec.model.__name__: spec.model for spec in cells.REGISTRY.values()}
globals().update(_MODELS)

__version__ = "0.1.0"

__all__ = [
    # models
    "ACTIVATIONS",
    "Activation",
    "get_activation",
    "RecurrentModel",
    "RNN",
    "LSTM",
    "GRU",
    "LRU",
    "SelectiveSSM",
    "ResidualRNN",
    "HighwayRNN",
    "cells",
    "ForwardResult",
    "Gradients",
    "from_torch",
    "to_torch",
    "from_torch_cell",
    "TorchCellModel",
    "CellForwardResult",
    # bounds and gradient flow
    "spectral_norm",
    "spectral_radius",
    "envelope",
    "jacobian_norms",
    "gradient_flow",
    "lyapunov_exponent",
    "lyapunov_spectrum",
    # clipping
    "clip_grad_norm",
    "clip_grad_value",
    # checker
    "check_gradients",
    "gradcheck",
    "gradgradcheck",
    "check_stability",
    "assert_gradients_match",
    "GradientReport",
    "StabilityReport",
    "GradientCheckError",
    "CheckTarget",
    # claims audit
    "Claim",
    "ClaimResult",
    "Verdict",
    "all_claims",
    "get_claim",
    "run_audit",
    "__version__",
]

__all__ += [name for name in _MODELS if name not in __all__]  # models of cells registered beyond the built-ins

_LAZY_SUBMODULES = ("oracles", "strategies", "symbolic")


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gradtheory' has no attribute {name!r}")
