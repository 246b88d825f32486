r"""Residual cell: :math:`h_t = h_{t-1} + \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`.

.. math:: \frac{\partial h_t}{\partial h_{t-1}} = I + \operatorname{diag}(\phi'(a_t)) W_{hh}

Derived in ``proofs/residual_highway.tex``. Twin: the generic torch twin built from ``torch_step``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.compose import ActivationModel
from ._base import CellSpec, torch_activation
from .rnn import ElmanCell

__all__ = ["SPEC", "ResidualCell", "ResidualRNN"]


class ResidualCell(ElmanCell):
    """h_t = h_{t-1} + phi(a_t). Gates: 1; state: (h,)."""

    name = "residual"

    def step(self, gi, gh, state):
        (h_prev,) = state
        a = gi + gh
        F = self.activation.phi(a)
        return (h_prev + F,), (a, F)

    def step_backward(self, d_state, cache):
        a, F = cache
        (dh,) = d_state
        da = dh * self.activation.grad(a, F)
        return da, da, (dh,)

    def step_jacobian(self, cache, W_hh):
        a, F = cache
        J = self.activation.grad(a, F)[:, :, None] * W_hh
        idx = np.arange(W_hh.shape[1])
        J[:, idx, idx] += 1.0
        return J

    def equations(self, gi: list, gh: list, prev: tuple, ops: Any) -> tuple[tuple[list, ...], dict]:
        """Independent scalar form (oracles, SymPy): h_k = h_prev_k + phi(gi_k + gh_k)."""
        (h_prev,) = prev
        return ([h + ops.phi(p + q) for h, p, q in zip(h_prev, gi, gh)],), {}

    def torch_step(self, gi: Any, gh: Any, state: tuple) -> tuple:
        """The step in torch operations (the torch twin)."""
        return (state[0] + torch_activation(self.activation.name)(gi + gh),)


class ResidualRNN(ActivationModel):
    r"""Residual recurrent model :math:`h_t = h_{t-1} + \phi(W_{ih}x_t + b_{ih} + W_{hh}h_{t-1} + b_{hh})`."""

    mode = "ResidualRNN"
    cell_class = ResidualCell


SPEC = CellSpec("residual", ResidualCell, ResidualRNN, nonlinearities=("tanh", "relu", "sigmoid", "identity"))
