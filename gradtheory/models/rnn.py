r"""Elman RNN cell: forward step, its hand-written backward right below, its one-step Jacobian.

.. math::
    a_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}, \qquad h_t = \phi(a_t)

    \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(\phi'(a_t))\, W_{hh}

(torch's layout; Pascanu et al. write the transpose). Derived in ``proofs/rnn_bptt.tex``.
"""

from __future__ import annotations

import numpy as np

from .activations import Activation, get_activation


class ElmanCell:
    """h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh). Gates: 1; state: (h,)."""

    gates = 1
    n_states = 1
    additive = True  # the step uses gi and gh only through gi + gh

    def __init__(self, activation: str | Activation = "tanh"):
        self.activation = get_activation(activation)

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
