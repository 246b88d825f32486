r"""Highway cell (rows: candidate F, then transform gate T).

.. math:: h_t = T \odot F + (1 - T) \odot h_{t-1},\quad F = \phi(a^F_t),\quad T = \sigma(a^T_t)

    \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(1 - T) + \operatorname{diag}(T \odot \phi'(a^F)) W_F
        + \operatorname{diag}((F - h_{t-1}) \odot T \odot (1 - T)) W_T

Derived in ``proofs/residual_highway.tex``. Twin: the generic torch twin built from ``torch_step``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.activations import sigmoid
from ..models.compose import ActivationModel
from ._base import CellSpec, torch_activation
from .rnn import ElmanCell

__all__ = ["SPEC", "HighwayCell", "HighwayRNN"]


class HighwayCell(ElmanCell):
    """h_t = T*F + (1-T)*h_{t-1}, F = phi(a^F), T = sigmoid(a^T). Gates: 2 (F, T); state: (h,)."""

    name = "highway"
    gates = 2
    gate_names = ("F", "T")

    @property
    def rational(self) -> bool:
        return False  # the transform gate is a sigmoid

    def step(self, gi, gh, state):
        (h_prev,) = state
        H = h_prev.shape[-1]
        a = gi + gh
        a_F = a[:, :H]
        F = self.activation.phi(a_F)
        T = sigmoid(a[:, H:])
        return (T * F + (1.0 - T) * h_prev,), (a_F, F, T, h_prev)

    def step_backward(self, d_state, cache):
        a_F, F, T, h_prev = cache
        (dh,) = d_state
        da = np.concatenate([dh * T * self.activation.grad(a_F, F), dh * (F - h_prev) * T * (1.0 - T)], axis=1)
        return da, da, (dh * (1.0 - T),)

    def step_jacobian(self, cache, W_hh):
        a_F, F, T, h_prev = cache
        H = F.shape[-1]
        J = (T * self.activation.grad(a_F, F))[:, :, None] * W_hh[:H] + ((F - h_prev) * T * (1 - T))[:, :, None] * W_hh[
            H:
        ]
        idx = np.arange(H)
        J[:, idx, idx] += 1.0 - T
        return J

    def equations(self, gi: list, gh: list, prev: tuple, ops: Any) -> tuple[tuple[list, ...], dict]:
        """Independent scalar form (oracles, SymPy), with the candidate F and the gate T."""
        (h_prev,) = prev
        H = len(h_prev)
        a = [p + q for p, q in zip(gi, gh)]
        F = [ops.phi(v) for v in a[:H]]
        T = [ops.sigmoid(v) for v in a[H:]]
        return ([T[k] * F[k] + (1 - T[k]) * h_prev[k] for k in range(H)],), {"F": F, "T": T, "a": a}

    def torch_step(self, gi: Any, gh: Any, state: tuple) -> tuple:
        """The step in torch operations (the torch twin)."""
        H = state[0].shape[-1]
        a = gi + gh
        F = torch_activation(self.activation.name)(a[:, :H])
        T = a[:, H:].sigmoid()
        return (T * F + (1 - T) * state[0],)


class HighwayRNN(ActivationModel):
    r"""Highway recurrent model :math:`h_t = T\odot\phi(a^F) + (1-T)\odot h_{t-1}`, :math:`T = \sigma(a^T)`.

    Parameter rows are stacked as (F, T), so weight_ih is (2H, I) and weight_hh (2H, H).
    """

    mode = "HighwayRNN"
    cell_class = HighwayCell


SPEC = CellSpec("highway", HighwayCell, HighwayRNN, nonlinearities=("tanh", "relu", "sigmoid", "identity"))
