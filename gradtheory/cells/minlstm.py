r"""minLSTM cell (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, 2024, "Were RNNs All We Needed?", Sec. 3.2).

.. math::
    f_t = \sigma(W_{if} x_t + b_f), \quad i_t = \sigma(W_{ii} x_t + b_i), \quad
    \tilde h_t = W_{ih} x_t + b_h,

    f'_t = \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t}, \qquad
    h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

    \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(f'_t)
    \quad\text{(independent of } h\text{)}

The normalised gates sum to 1, so :math:`h_t` is a convex combination of :math:`h_{t-1}` and
:math:`\tilde h_t`. The gates read :math:`x_t` only: the recurrence is
``NONE`` (:mod:`gradtheory.cells._base`) (``weight_hh`` has shape (3H, 0)). Gate rows of ``weight_ih``:
``f``, ``i``, ``h~`` (the candidate is linear: the paper's plain minLSTM, not its log-space
variant with :math:`g`; the parallel scan handles signed candidates, see
:mod:`gradtheory.cells._parallel`). ``bias_ih + bias_hh`` is the bias. Derived in
``proofs/minlstm.tex``. Twin: the torch twin built from :meth:`MinLSTMCell.torch_step`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.activations import sigmoid
from ._base import NONE, CellSpec
from ._parallel import ParallelScanModel

__all__ = ["SPEC", "MinLSTM", "MinLSTMCell", "derive"]


class MinLSTMCell:
    """h_t = f'_t h_{t-1} + i'_t h~_t with f' = f/(f+i), i' = i/(f+i). Gates: 3 (f, i, h~); state: (h,)."""

    name = "minlstm"
    gates = 3
    gate_names: tuple[str, ...] = ("f", "i", "h_tilde")
    n_states = 1
    additive = True  # the step uses gi and gh only through gi + gh (gh = b_hh: no recurrent weight)
    recurrence = NONE
    activation = None
    rational = False

    def step(self, gi, gh, state):
        (h_prev,) = state
        a = gi + gh
        H = h_prev.shape[-1]
        f = sigmoid(a[:, :H])
        i = sigmoid(a[:, H : 2 * H])
        h_tilde = a[:, 2 * H :]
        s = f + i
        f_n, i_n = f / s, i / s
        h = f_n * h_prev + i_n * h_tilde
        return (h,), (f, i, f_n, i_n, h_tilde, h_prev)

    def step_backward(self, d_state, cache):
        f, i, f_n, i_n, h_tilde, h_prev = cache
        (dh,) = d_state
        # d f'/d f = i/(f+i)^2 = f' i'/f, d f'/d i = -f' i'/i, and i' = 1 - f'
        d_fn = dh * (h_prev - h_tilde) * f_n * i_n
        da_f = d_fn * (1.0 - f)
        da_i = -d_fn * (1.0 - i)
        da = np.concatenate([da_f, da_i, dh * i_n], axis=1)
        return da, da, (dh * f_n,)

    def step_jacobian(self, cache, W_hh):
        """diag(f'_t): (B, H, H)."""
        f_n = cache[2]
        J = np.zeros(f_n.shape + f_n.shape[-1:], dtype=f_n.dtype)
        idx = np.arange(f_n.shape[-1])
        J[:, idx, idx] = f_n
        return J

    def equations(self, gi: list, gh: list, prev: tuple, ops: Any) -> tuple[tuple[list, ...], dict]:
        """Independent scalar form (oracles, SymPy), with the gates f, i, the normalised f', i' and h~."""
        (h_prev,) = prev
        H = len(h_prev)
        f = [ops.sigmoid(gi[k] + gh[k]) for k in range(H)]
        i = [ops.sigmoid(gi[H + k] + gh[H + k]) for k in range(H)]
        h_tilde = [gi[2 * H + k] + gh[2 * H + k] for k in range(H)]
        f_n = [f[k] / (f[k] + i[k]) for k in range(H)]
        i_n = [i[k] / (f[k] + i[k]) for k in range(H)]
        h = [f_n[k] * h_prev[k] + i_n[k] * h_tilde[k] for k in range(H)]
        return (h,), {"f": f, "i": i, "f_n": f_n, "i_n": i_n, "h_tilde": h_tilde}

    def torch_step(self, gi: Any, gh: Any, state: tuple) -> tuple:
        """The step in torch operations (the torch twin; gh = b_hh)."""
        import torch

        (h_prev,) = state
        H = h_prev.shape[-1]
        a = gi + gh
        f, i = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H : 2 * H])
        return ((f / (f + i)) * h_prev + (i / (f + i)) * a[:, 2 * H :],)

    @staticmethod
    def scan_coefficients(gi: np.ndarray, hidden_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""(log a_t, b_t, log|b_t|) of h_t = a_t h_{t-1} + b_t for all steps: a = f', b = i' h~.

        ``gi`` (T, B, 3H) includes both biases. :math:`\log f = -\mathrm{softplus}(-a_f)`,
        :math:`\log f' = \log f - \operatorname{logaddexp}(\log f, \log i)` (and likewise
        :math:`\log i'`): each to ~u relative, no cancellation in forming f + i.
        """
        H = hidden_size
        log_f = -np.logaddexp(0.0, -gi[..., :H])
        log_i = -np.logaddexp(0.0, -gi[..., H : 2 * H])
        h_tilde = gi[..., 2 * H :]
        log_s = np.logaddexp(log_f, log_i)
        log_i_n = log_i - log_s
        with np.errstate(divide="ignore"):
            log_abs_b = log_i_n + np.log(np.abs(h_tilde))
        return log_f - log_s, np.exp(log_i_n) * h_tilde, log_abs_b


class MinLSTM(ParallelScanModel):
    r"""minLSTM (Feng et al., 2024): :math:`h_t = f'_t h_{t-1} + i'_t \tilde h_t` with the normalised
    gates :math:`f' = f/(f+i)`, :math:`i' = i/(f+i)` (gates from :math:`x_t` only).

    ``weight_ih_l{k}`` stacks the f, i and h~ rows (3H, I); ``weight_hh_l{k}`` has shape (3H, 0)
    (no recurrent weight). :meth:`forward` is the sequential loop, :meth:`parallel_forward` the
    log-space scan; BPTT, Jacobians and stacking as every model.
    """

    mode = "MinLSTM"
    cell_class = MinLSTMCell


def derive() -> Any:
    """The MinLSTM derivation (``proofs/minlstm.tex``): diagonal Jacobian independent of h, the scan's closed
    form, the convex-combination bound, the gradient through time."""
    from ._min_derivation import derive as _derive

    return _derive("minlstm")


SPEC = CellSpec("minlstm", MinLSTMCell, MinLSTM, derivation=derive)
