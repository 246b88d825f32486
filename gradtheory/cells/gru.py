r"""GRU cell in torch's convention (gate rows r, z, n).

.. math::
    r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}),\quad
    z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}),

    n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})),\quad
    h_t = (1 - z) \odot n + z \odot h_{t-1}

r multiplies ``W_hn h + b_hn`` (the cuDNN form torch follows), so b_hn cannot be merged into
b_in. The direct path gives ``diag(z)`` in the one-step Jacobian. Derived in ``proofs/gru.tex``.
Twin: ``torch.nn.GRU``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.activations import sigmoid
from ..models.compose import RecurrentModel
from ._base import DENSE, CellSpec

__all__ = ["GRU", "SPEC", "GRUCell"]


class GRUCell:
    """The torch GRU cell. Gates: 3 (r, z, n); state: (h,)."""

    name = "gru"
    gates = 3
    gate_names: tuple[str, ...] = ("r", "z", "n")
    n_states = 1
    additive = False  # r multiplies W_hn h + b_hn: gi and gh enter separately
    recurrence = DENSE
    activation = None
    rational = False

    def step(self, gi, gh, state):
        (h_prev,) = state
        H = h_prev.shape[-1]
        r = sigmoid(gi[:, :H] + gh[:, :H])
        z = sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        gh_n = gh[:, 2 * H :]
        n = np.tanh(gi[:, 2 * H :] + r * gh_n)
        h = (1.0 - z) * n + z * h_prev
        return (h,), (r, z, n, gh_n, h_prev)

    def step_backward(self, d_state, cache):
        r, z, n, gh_n, h_prev = cache
        (dh,) = d_state
        dn = dh * (1.0 - z)
        dz = dh * (h_prev - n)
        da_n = dn * (1.0 - n * n)
        da_r = da_n * gh_n * r * (1.0 - r)
        da_z = dz * z * (1.0 - z)
        d_gi = np.concatenate([da_r, da_z, da_n], axis=1)
        d_gh = np.concatenate([da_r, da_z, da_n * r], axis=1)
        return d_gi, d_gh, (dh * z,)

    def step_jacobian(self, cache, W_hh):
        r, z, n, gh_n, h_prev = cache
        H = r.shape[-1]
        W_r, W_z, W_n = (W_hh[k * H : (k + 1) * H] for k in range(3))
        dn_da = (1 - z) * (1 - n * n)
        J = (
            ((h_prev - n) * z * (1 - z))[:, :, None] * W_z
            + (dn_da * r)[:, :, None] * W_n
            + (dn_da * gh_n * r * (1 - r))[:, :, None] * W_r
        )
        idx = np.arange(H)
        J[:, idx, idx] += z
        return J

    def equations(self, gi: list, gh: list, prev: tuple, ops: Any) -> tuple[tuple[list, ...], dict]:
        """Independent scalar form (oracles, SymPy), with the gates r, z, n."""
        (h_prev,) = prev
        H = len(h_prev)
        r = [ops.sigmoid(gi[k] + gh[k]) for k in range(H)]
        z = [ops.sigmoid(gi[H + k] + gh[H + k]) for k in range(H)]
        n = [ops.tanh(gi[2 * H + k] + r[k] * gh[2 * H + k]) for k in range(H)]
        h = [(1 - z[k]) * n[k] + z[k] * h_prev[k] for k in range(H)]
        return (h,), {"r": r, "z": z, "n": n}


class GRU(RecurrentModel):
    """GRU, twin of ``torch.nn.GRU`` (gates r, z, n; h' = (1 - z) n + z h)."""

    mode = "GRU"
    cell_class = GRUCell


SPEC = CellSpec("gru", GRUCell, GRU, torch_mode="GRU", fast_kernel="gradtheory._gated_kernels:GRU")
