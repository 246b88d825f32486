r"""LSTM cell in torch's convention (gate rows i, f, g, o; both b_ih and b_hh).

.. math::
    i = \sigma(\cdot),\ f = \sigma(\cdot),\ g = \tanh(\cdot),\ o = \sigma(\cdot), \qquad
    c_t = f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t)

The state is the pair (h, c); BPTT carries the gradient of the loss with respect to each
component, with c's gradient taken at fixed h (the joint-state convention, so that products of
the joint one-step Jacobians reproduce it). Derived in ``proofs/lstm.tex``. Twin: ``torch.nn.LSTM``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.activations import sigmoid
from ..models.compose import RecurrentModel
from ._base import DENSE, CellSpec

__all__ = ["LSTM", "SPEC", "LSTMCell"]


class LSTMCell:
    """The torch LSTM cell. Gates: 4 (i, f, g, o); state: (h, c)."""

    name = "lstm"
    gates = 4
    gate_names: tuple[str, ...] = ("i", "f", "g", "o")
    n_states = 2
    additive = True  # the step uses gi and gh only through gi + gh
    recurrence = DENSE
    activation = None
    rational = False

    def step(self, gi, gh, state):
        h_prev, c_prev = state
        a = gi + gh
        H = h_prev.shape[-1]
        i = sigmoid(a[:, :H])
        f = sigmoid(a[:, H : 2 * H])
        g = np.tanh(a[:, 2 * H : 3 * H])
        o = sigmoid(a[:, 3 * H :])
        c = f * c_prev + i * g
        tc = np.tanh(c)
        h = o * tc
        return (h, c), (i, f, g, o, c_prev, tc)

    def step_backward(self, d_state, cache):
        i, f, g, o, c_prev, tc = cache
        dh, dc = d_state
        do = dh * tc
        dc = dc + dh * o * (1.0 - tc * tc)
        di = dc * g
        df = dc * c_prev
        dg = dc * i
        da = np.concatenate([di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g * g), do * o * (1.0 - o)], axis=1)
        return da, da, (None, dc * f)

    def step_jacobian(self, cache, W_hh):
        r"""Joint Jacobian of (h_t, c_t) with respect to (h_{t-1}, c_{t-1}): (B, 2H, 2H)."""
        i, f, g, o, c_prev, tc = cache
        H = i.shape[-1]
        W_i, W_f, W_g, W_o = (W_hh[k * H : (k + 1) * H] for k in range(4))
        dc_dh = (
            (c_prev * f * (1 - f))[:, :, None] * W_f
            + (g * i * (1 - i))[:, :, None] * W_i
            + (i * (1 - g * g))[:, :, None] * W_g
        )
        dtanh = o * (1 - tc * tc)
        dh_dh = (tc * o * (1 - o))[:, :, None] * W_o + dtanh[:, :, None] * dc_dh
        eye = np.eye(H)
        dc_dc = f[:, :, None] * eye
        dh_dc = (dtanh * f)[:, :, None] * eye
        top = np.concatenate([dh_dh, dh_dc], axis=2)
        bottom = np.concatenate([dc_dh, dc_dc], axis=2)
        return np.concatenate([top, bottom], axis=1)

    def equations(self, gi: list, gh: list, prev: tuple, ops: Any) -> tuple[tuple[list, ...], dict]:
        """Independent scalar form (oracles, SymPy), with the gates i, f, g, o and c."""
        h_prev, c_prev = prev
        H = len(h_prev)
        a = [p + q for p, q in zip(gi, gh)]
        i = [ops.sigmoid(v) for v in a[:H]]
        f = [ops.sigmoid(v) for v in a[H : 2 * H]]
        g = [ops.tanh(v) for v in a[2 * H : 3 * H]]
        o = [ops.sigmoid(v) for v in a[3 * H :]]
        c = [f[k] * c_prev[k] + i[k] * g[k] for k in range(H)]
        h = [o[k] * ops.tanh(c[k]) for k in range(H)]
        return (h, c), {"i": i, "f": f, "g": g, "o": o}


class LSTM(RecurrentModel):
    """LSTM, twin of ``torch.nn.LSTM`` (gates i, f, g, o; state (h, c))."""

    mode = "LSTM"
    cell_class = LSTMCell


SPEC = CellSpec("lstm", LSTMCell, LSTM, torch_mode="LSTM", fast_kernel="gradtheory._gated_kernels:LSTM")
