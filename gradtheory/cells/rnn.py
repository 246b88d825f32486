r"""Elman RNN cell: forward step, its hand-written backward right below, its one-step Jacobian.

.. math::
    a_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}, \qquad h_t = \phi(a_t)

    \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(\phi'(a_t))\, W_{hh}

(torch's layout; Pascanu et al. write the transpose). Derived in ``proofs/rnn_bptt.tex``.
Twin: ``torch.nn.RNN`` (tanh, relu).
"""

from __future__ import annotations

from typing import Any

from ..models.activations import Activation, get_activation
from ..models.compose import ActivationModel
from ._base import DENSE, CellSpec

__all__ = ["RNN", "SPEC", "ElmanCell"]


class ElmanCell:
    """h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh). Gates: 1; state: (h,)."""

    name = "rnn"
    gates = 1
    gate_names: tuple[str, ...] = ("h",)
    n_states = 1
    additive = True  # the step uses gi and gh only through gi + gh
    recurrence = DENSE

    def __init__(self, activation: str | Activation = "tanh"):
        self.activation = get_activation(activation)

    @property
    def rational(self) -> bool:
        """True when every operation of the step is rational (identity, relu)."""
        return self.activation.name in ("identity", "relu")

    def step(self, gi, gh, state):
        a = gi + gh
        h = self.activation.phi(a)
        return (h,), (a, h)

    def step_backward(self, d_state, cache):
        a, h = cache
        (dh,) = d_state
        da = dh * self.activation.grad(a, h)
        return da, da, (None,)

    def step_jacobian(self, cache, W_hh):
        a, h = cache
        return self.activation.grad(a, h)[:, :, None] * W_hh

    def equations(self, gi: list, gh: list, prev: tuple, ops: Any) -> tuple[tuple[list, ...], dict]:
        """Independent scalar form (oracles, SymPy): h_k = phi(gi_k + gh_k)."""
        return ([ops.phi(p + q) for p, q in zip(gi, gh)],), {}


class RNN(ActivationModel):
    r"""Elman RNN, twin of ``torch.nn.RNN``: :math:`h_t = \phi(W_{ih}x_t + b_{ih} + W_{hh}h_{t-1} + b_{hh})`.

    ``nonlinearity`` is one of ``tanh``, ``relu`` (as torch), ``sigmoid``, ``identity`` (ours).
    """

    mode = "RNN"
    cell_class = ElmanCell


SPEC = CellSpec(
    "rnn",
    ElmanCell,
    RNN,
    nonlinearities=("tanh", "relu", "sigmoid", "identity"),
    torch_mode="RNN",
    fast_kernel="gradtheory._elman_kernel",
)
