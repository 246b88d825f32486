r"""GRU cell in torch's convention (gate rows r, z, n).

.. math::
    r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}),\quad
    z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}),

    n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})),\quad
    h_t = (1 - z) \odot n + z \odot h_{t-1}

r multiplies ``W_hn h + b_hn`` (the cuDNN form torch follows), so b_hn cannot be merged into
b_in. The direct path gives ``diag(z)`` in the one-step Jacobian. Derived in ``proofs/gru.tex``.
"""

from __future__ import annotations

import numpy as np

from .activations import sigmoid


class GRUCell:
    """The torch GRU cell. Gates: 3 (r, z, n); state: (h,)."""

    gates = 3
    n_states = 1
    additive = False  # r multiplies W_hn h + b_hn: gi and gh enter separately

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
