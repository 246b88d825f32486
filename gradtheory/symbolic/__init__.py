r"""Symbolic BPTT theory: SymPy derivations, exported to LaTeX under ``proofs/``.

Each topic module (one per derivation) exposes ``derive() -> Derivation``; so may each registered
cell (``CellSpec.derivation``, written in the cell's own file with :mod:`.notation`), and its
derivation follows the topics in the document. The derivations are checked against the numeric
models in ``tests/``. ``gradtheory derive`` writes the LaTeX document (see
:mod:`gradtheory.symbolic._document`).
"""

from __future__ import annotations

import importlib

from ._core import Derivation, Step
from .activation_bounds import gamma
from .gru import parameter_count

__all__ = ["Derivation", "Step", "all_derivations", "derive", "gamma", "parameter_count", "NAMES", "TOPICS"]

#: Topic derivations in document order (each is also the module name and the .tex file name).
TOPICS = (
    "rnn_bptt",
    "activation_bounds",
    "norm_bound",
    "linear_rnn",
    "scalar",
    "seed004_sigmoid",
    "clipping",
    "lstm",
    "gru",
    "residual_highway",
    "bidirectional_stacked",
    "lru",
    "selective_ssm",
)


def _cell_derivations() -> dict:
    from .. import cells

    return {spec.name: spec.derivation for spec in cells.REGISTRY.values() if spec.derivation is not None}


#: Derivation keys in document order: the topics, then the registered cells' own derivations.
NAMES = TOPICS + tuple(_cell_derivations())

_CACHE: dict[str, Derivation] = {}


def derive(name: str) -> Derivation:
    """Run one derivation by key (cached: derivations are deterministic).

    Parameters
    ----------
    name : str
        One of :data:`NAMES` (also the module and the ``.tex`` file name).

    Returns
    -------
    Derivation
        Its steps are SymPy objects with one-line justifications; ``result`` is what the tests
        lambdify and compare with the numeric models.

    Raises
    ------
    ValueError
        ``name`` is not one of :data:`NAMES`.
    """
    if name not in NAMES:
        raise ValueError(f"name={name!r} is unknown; expected one of {list(NAMES)}")
    if name not in _CACHE:
        cell_derive = _cell_derivations().get(name) if name not in TOPICS else None
        d = cell_derive() if cell_derive is not None else importlib.import_module(f"{__name__}.{name}").derive()
        if d.name != name:
            raise AssertionError(f"module {name} returned a derivation named {d.name!r}")
        _CACHE[name] = d
    return _CACHE[name]


def all_derivations() -> dict[str, Derivation]:
    """All derivations, keyed by name, in document order.

    Returns
    -------
    dict of str to Derivation
        Keyed by the names of :data:`NAMES`, in that order (about 3 s on first call, then cached).
    """
    return {name: derive(name) for name in NAMES}
