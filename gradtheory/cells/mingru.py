r"""minGRU cell (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, 2024, "Were RNNs All We Needed?", Sec. 3.1).

.. math::
    z_t = \sigma(W_{iz} x_t + b_z), \qquad \tilde h_t = W_{ih} x_t + b_h, \qquad
    h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(1 - z_t)
    \quad\text{(independent of } h\text{)}

The gates read :math:`x_t` only: the recurrence is ``NONE`` (:mod:`gradtheory.cells._base`) (``weight_hh``
has shape (2H, 0)) and the state enters through the direct path alone. Gate rows of
``weight_ih``: ``z`` then ``h~`` (the candidate, linear: the paper's plain minGRU, not its
log-space variant with :math:`g`; the parallel scan handles signed candidates, see
:mod:`gradtheory.cells._parallel`). ``bias_ih + bias_hh`` is the bias (torch's RNN layout keeps
both). Derived in ``proofs/mingru.tex``. Twin: the torch twin built from :meth:`MinGRUCell.torch_step`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.activations import sigmoid
from ._base import NONE, CellSpec
from ._parallel import ParallelScanModel

__all__ = ["SPEC", "MinGRU", "MinGRUCell", "derive"]


class MinGRUCell:
    """h_t = (1 - z_t) h_{t-1} + z_t h~_t, z_t = sigmoid(a_z), h~_t = a_h. Gates: 2 (z, h~); state: (h,)."""

    name = "mingru"
    gates = 2
    gate_names: tuple[str, ...] = ("z", "h_tilde")
    n_states = 1
    additive = True  # the step uses gi and gh only through gi + gh (gh = b_hh: no recurrent weight)
    recurrence = NONE
    activation = None
    rational = False

    def step(self, gi, gh, state):
        (h_prev,) = state
        a = gi + gh
        H = h_prev.shape[-1]
        z = sigmoid(a[:, :H])
        # the retain gate 1 - z as sigma(-a_z): ~2u relative even where z -> 1 (1.0 - z would lose
        # log2(1/(1 - z)) bits there, and the gradient through time is a product of these factors)
        r = sigmoid(-a[:, :H])
        h_tilde = a[:, H:]
        h = r * h_prev + z * h_tilde
        return (h,), (z, r, h_tilde, h_prev)

    def step_backward(self, d_state, cache):
        z, r, h_tilde, h_prev = cache
        (dh,) = d_state
        da_z = dh * (h_tilde - h_prev) * z * r
        da_h = dh * z
        da = np.concatenate([da_z, da_h], axis=1)
        return da, da, (dh * r,)

    def step_jacobian(self, cache, W_hh):
        """diag(1 - z_t): (B, H, H)."""
        r = cache[1]
        J = np.zeros(r.shape + r.shape[-1:], dtype=r.dtype)
        idx = np.arange(r.shape[-1])
        J[:, idx, idx] = r
        return J

    def equations(self, gi: list, gh: list, prev: tuple, ops: Any) -> tuple[tuple[list, ...], dict]:
        """Independent scalar form (oracles, SymPy), with the gate z and the candidate h~."""
        (h_prev,) = prev
        H = len(h_prev)
        z = [ops.sigmoid(gi[k] + gh[k]) for k in range(H)]
        h_tilde = [gi[H + k] + gh[H + k] for k in range(H)]
        h = [(1 - z[k]) * h_prev[k] + z[k] * h_tilde[k] for k in range(H)]
        return (h,), {"z": z, "h_tilde": h_tilde}

    def torch_step(self, gi: Any, gh: Any, state: tuple) -> tuple:
        """The step in torch operations (the torch twin; gh = b_hh)."""
        import torch

        (h_prev,) = state
        H = h_prev.shape[-1]
        a = gi + gh
        z = torch.sigmoid(a[:, :H])
        return ((1 - z) * h_prev + z * a[:, H:],)

    @staticmethod
    def scan_coefficients(gi: np.ndarray, hidden_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""(log a_t, b_t, log|b_t|) of h_t = a_t h_{t-1} + b_t for all steps: a = 1 - z, b = z h~.

        ``gi`` (T, B, 2H) includes both biases. :math:`\log(1 - z) = -\mathrm{softplus}(a_z)`,
        :math:`\log z = -\mathrm{softplus}(-a_z)`, each to relative accuracy ~u (no cancellation).
        """
        H = hidden_size
        a_z, h_tilde = gi[..., :H], gi[..., H:]
        z = sigmoid(a_z)
        with np.errstate(divide="ignore"):
            log_abs_b = -np.logaddexp(0.0, -a_z) + np.log(np.abs(h_tilde))
        return -np.logaddexp(0.0, a_z), z * h_tilde, log_abs_b


class MinGRU(ParallelScanModel):
    r"""minGRU (Feng et al., 2024): :math:`h_t = (1 - z_t) h_{t-1} + z_t \tilde h_t` with
    :math:`z_t = \sigma(W_z x_t + b_z)`, :math:`\tilde h_t = W_h x_t + b_h` (gates from :math:`x_t` only).

    ``weight_ih_l{k}`` stacks the z and h~ rows (2H, I); ``weight_hh_l{k}`` has shape (2H, 0) (no
    recurrent weight). :meth:`forward` is the sequential loop, :meth:`parallel_forward` the
    log-space scan; BPTT, Jacobians and stacking as every model.
    """

    mode = "MinGRU"
    cell_class = MinGRUCell


def derive() -> Any:
    """The MinGRU derivation (``proofs/mingru.tex``): diagonal Jacobian independent of h, the scan's closed
    form, the convex-combination bound, the gradient through time."""
    from ._min_derivation import derive as _derive

    return _derive("mingru")


SPEC = CellSpec("mingru", MinGRUCell, MinGRU, derivation=derive)
