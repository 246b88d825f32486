r"""Recurrent families outside the :class:`~gradtheory.cells.Cell` protocol: LRU and the selective SSM.

Both have a readout that differs from the state and (for the selective SSM) input-dependent
transitions and a matrix-valued state, and the LRU's state is complex; the Cell protocol
(``step(gi, gh, state)`` with ``gi = W_ih x + b``, ``gh = R(h, W_hh)``, output = state) expresses
none of this. Each family is therefore a model class (forward, hand-written BPTT, one-step
Jacobians of the state, torch twin) sharing the small base in :mod:`._base`; its state Jacobian
is diagonal, and :mod:`gradtheory.flow` reads the per-step diagonals
(``model.state_jacobian_diagonals``) through :mod:`._diagonal_flow`.
"""

from __future__ import annotations

from ._base import FamilyForward, FamilyGradients, FamilyModel
from .lru import LRU
from .selective_ssm import SelectiveSSM

__all__ = ["LRU", "FamilyForward", "FamilyGradients", "FamilyModel", "SelectiveSSM"]
