r"""Recurrent cells, one file each, and the one registry every tool reads.

A cell file holds the step, its hand-written backward right below it, its one-step Jacobian, its
parameter layout (``gates``, ``n_states``, ``recurrence``), an independent scalar form of its
equations (for the oracles and the SymPy derivations), optionally a torch step (its torch twin)
and a derivation for ``proofs/``; it ends with a :class:`CellSpec`. Registering that spec (one
line in :data:`_MODULES`, or :func:`register` for a user's cell) gives the cell its model
class, strategies, oracles, symbolic step, gradient flow, Lyapunov exponents and torch twin.

A cell need not be registered: any object implementing :class:`Cell` can be passed as
``RecurrentModel(input_size, hidden_size, cell=...)``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._base import (
    DENSE,
    DIAGONAL,
    Cell,
    CellSpec,
    Recurrence,
    ScalarOps,
    check_cell,
    has_layout,
    recurrent_input,
    torch_activation,
)

__all__ = [
    "DENSE",
    "DIAGONAL",
    "REGISTRY",
    "Cell",
    "CellSpec",
    "Recurrence",
    "ScalarOps",
    "check_cell",
    "get",
    "recurrent_input",
    "has_layout",
    "register",
    "spec_of",
    "torch_activation",
]

#: The built-in cells, in registry order (module names under ``gradtheory.cells``).
_MODULES = (
    "rnn",
    "lstm",
    "gru",
    "residual",
    "highway",
    "indrnn",
    "mingru",
    "minlstm",
    "antisymmetric",
    "orthogonal",
    "cornn",
    "lru",
    "selective_ssm",
)

#: name -> CellSpec, in registration order.
REGISTRY: dict[str, CellSpec] = {}


def register(spec: CellSpec) -> CellSpec:
    """Add a cell to the registry (its name must be new); returns the spec."""
    if not isinstance(spec, CellSpec):
        raise TypeError(f"spec must be a gradtheory.cells.CellSpec, got {type(spec).__name__}")
    if spec.name in REGISTRY and REGISTRY[spec.name] is not spec:
        raise ValueError(f"spec.name={spec.name!r} is already registered; expected a new name")
    REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> CellSpec:
    """The registered cell called ``name``."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"cell {name!r} is not registered; expected one of {sorted(REGISTRY)}") from None


def spec_of(cell: Any) -> CellSpec | None:
    """The registry entry whose cell class is exactly ``type(cell)``, or None (an unregistered cell)."""
    for spec in REGISTRY.values():
        if type(cell) is spec.cell:
            return spec
    return None


for _name in _MODULES:
    register(importlib.import_module(f"{__name__}.{_name}").SPEC)
