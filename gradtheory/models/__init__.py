"""Reference recurrent models in numpy float64 with hand-written BPTT.

The model classes of the registered cells (:mod:`gradtheory.cells`) are exported here.
"""

from typing import Any

from .. import cells as _cells
from .activations import ACTIVATIONS, Activation, get_activation
from .compose import (
    ActivationModel,
    ForwardResult,
    Gradients,
    LayerParams,
    RecurrentModel,
)

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
    *_MODELS,
]
