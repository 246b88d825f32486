r"""Selective diagonal state-space layer: the S6 recurrence of Mamba (Gu & Dao 2023, Sec. 3.2, Alg. 2).

Shapes follow Mamba: D input channels, each with its own N-dimensional diagonal state, so the state
is :math:`h_t \in \mathbb{R}^{D \times N}` (carried flattened, index d*N + n: ``hidden_size`` = D*N) and

.. math::
    \Delta_t = \operatorname{softplus}(W_\Delta x_t + b_\Delta) \in \mathbb{R}^D, \quad
    B_t = W_B x_t,\; C_t = W_C x_t \in \mathbb{R}^N, \quad A = -\exp(A_{\log}) \in \mathbb{R}^{D\times N}

    h_{t,dn} = e^{\Delta_{t,d} A_{dn}} h_{t-1,dn} + \Delta_{t,d} B_{t,n} x_{t,d}, \qquad
    y_{t,d} = \sum_n C_{t,n} h_{t,dn}

(zero-order hold for A, Euler for B, as in Mamba's reference code; no convolution, gate or skip;
stacked layers read the previous layer's y). The transition :math:`e^{\Delta_t A}` depends on the
input: it is part of each step's input (:meth:`SelectiveSSMCell.project`). Parameters per layer:
``A_log`` (D, N), ``W_delta`` (D, D) (Mamba factors it through a low rank; here full), ``b_delta``
(D,), ``W_B``, ``W_C`` (N, D). The state Jacobian is diagonal,
:math:`\partial h_{t,dn}/\partial h_{t-1,dn} = e^{\Delta_{t,d} A_{dn}} \in (0, 1)`
(``proofs/selective_ssm.tex``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..models.compose import RecurrentModel, check_dimension
from ._base import NONE, CellSpec

__all__ = ["SPEC", "SelectiveSSM", "SelectiveSSMCell"]


def softplus(z: Any) -> Any:
    """log(1 + e^z) without overflow, analytic (``log1p``/``exp``: the complex step applies)."""
    positive = np.real(z) > 0
    return np.where(positive, z, 0.0) + np.log1p(np.exp(np.where(positive, -z, z)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def delta_A(p: Any, x: Any) -> Any:
    r""":math:`\Delta_{t,d} A_{dn}` (the log of the one-step factor) for inputs ``x`` (..., D): (..., D, N)."""
    delta = softplus(x @ p["W_delta"].T + p["b_delta"])
    return delta[..., None] * -np.exp(p["A_log"])


class SelectiveSSMCell:
    r"""h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t, y_t = C_t h_t, per channel d; state (D*N,).

    ``state_size``: N, the state dimension per channel.
    """

    name = "selective_ssm"
    gates = 1
    gate_names: tuple[str, ...] = ("h",)
    n_states = 1
    additive = False
    recurrence = NONE  # no recurrent weight matrix: exp(Delta_t A) enters through the step
    activation = None
    rational = False
    #: b_delta is not optional; a reverse direction would change the layer widths (y has D channels)
    layer_options = {"bias": True, "bidirectional": False}

    def __init__(self, state_size: int) -> None:
        self.state_size = state_size

    def _D(self, input_size: int, hidden_size: int) -> int:
        if hidden_size != input_size * self.state_size:
            raise ValueError(
                f"hidden_size must be input_size * state_size = {input_size} * {self.state_size}, got {hidden_size}"
            )
        return input_size

    # -- parameter layout ---------------------------------------------------------------------------
    def layout(self, input_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
        D, N = self._D(input_size, hidden_size), self.state_size
        return {"A_log": (D, N), "W_delta": (D, D), "b_delta": (D,), "W_B": (N, D), "W_C": (N, D)}

    def output_size(self, input_size: int, hidden_size: int) -> int:
        return input_size

    def init_params(self, rng: np.random.Generator, input_size: int, hidden_size: int) -> dict[str, np.ndarray]:
        r"""Mamba's S4D-real initialisation :math:`A_{dn} = -(n + 1)`, :math:`b_\Delta = \operatorname{softplus}^{-1}
        (\Delta_0)` with :math:`\Delta_0` log-uniform in [0.001, 0.1], weights U(-1/sqrt(D), 1/sqrt(D))."""
        D, N = self._D(input_size, hidden_size), self.state_size
        bound = 1.0 / np.sqrt(D)
        dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), D))
        return {
            "A_log": np.log(np.tile(np.arange(1, N + 1, dtype=float), (D, 1))),
            "W_delta": rng.uniform(-bound, bound, (D, D)),
            "b_delta": dt + np.log(-np.expm1(-dt)),  # softplus^{-1}(dt)
            "W_B": rng.uniform(-bound, bound, (N, D)),
            "W_C": rng.uniform(-bound, bound, (N, D)),
        }

    def draw_params(self, draw: Any, input_size: int, hidden_size: int, scale: float | None) -> dict[str, np.ndarray]:
        r""":math:`A = -e^{A_{\log}}` with ``A_log`` in [-2, 2], ``b_delta`` in [-7, 10] (:math:`\Delta` from
        ~1e-3, the state persists, to ~10, the state resets), weights up to ``scale`` (default 1/sqrt(D))."""
        from hypothesis import strategies as st
        from hypothesis.extra import numpy as hnp

        from ..strategies import reals

        D, N = self._D(input_size, hidden_size), self.state_size
        w = reals(1.0 / math.sqrt(D) if scale is None else scale)
        arr = lambda shape, elements: draw(hnp.arrays(np.float64, shape, elements=elements))  # noqa: E731
        return {
            "A_log": arr((D, N), st.floats(-2.0, 2.0)),
            "W_delta": arr((D, D), w),
            "b_delta": arr((D,), st.floats(-7.0, 10.0)),
            "W_B": arr((N, D), w),
            "W_C": arr((N, D), w),
        }

    # -- forward ------------------------------------------------------------------------------------
    def project(self, x: np.ndarray, p: Any) -> tuple[Any, dict]:
        """Step t reads exp(Delta_t A) (flattened to (B, D*N)), Delta_t x_t (B, D) and B_t (B, N)."""
        T, B, D = x.shape
        z = x @ p["W_delta"].T + p["b_delta"]  # (T, B, D)
        delta = softplus(z)
        Bt, Ct = x @ p["W_B"].T, x @ p["W_C"].T  # (T, B, N)
        A = -np.exp(p["A_log"])  # (D, N)
        Abar = np.exp(delta[..., None] * A).reshape(T, B, -1)  # (T, B, D*N)
        inputs = list(zip(Abar, delta * x, Bt))
        return inputs, {"z": z, "delta": delta, "Bt": Bt, "Ct": Ct, "A": A, "Abar": Abar}

    def step(self, gi, gh, state):
        a, dx, b = gi
        (h_prev,) = state
        u = (dx[:, :, None] * b[:, None, :]).reshape(a.shape)  # Delta_t x_t (outer) B_t
        return (a * h_prev + u,), a

    def step_backward(self, d_state, cache):
        """dh_t/dh_{t-1} = diag(exp(Delta_t A)): the state gradient is multiplied by the factor."""
        return None, None, (cache * d_state[0],)

    def step_jacobian(self, cache, W_hh):
        """diag(exp(Delta_t A)) of the flattened state: (B, D*N, D*N)."""
        J = np.zeros(cache.shape + cache.shape[-1:], dtype=cache.dtype)
        idx = np.arange(cache.shape[-1])
        J[:, idx, idx] = cache
        return J

    def readout(self, states, x, p, ctx):
        (h,) = states
        T, B, D = x.shape
        return (h.reshape(T, B, D, -1) @ ctx["Ct"][..., None])[..., 0]  # y_{t,d} = sum_n h_{t,dn} C_{t,n}

    # -- backward -----------------------------------------------------------------------------------
    def readout_backward(self, d_y, states, x, p, ctx):
        (h,) = states
        T, B, D = x.shape
        d_h = (d_y[..., None] * ctx["Ct"][:, :, None, :]).reshape(T, B, -1)
        dC = (d_y[:, :, None, :] @ h.reshape(T, B, D, -1))[:, :, 0]  # (T, B, N): sum_d dy_d h_dn
        TB = T * B
        grads = {"W_C": dC.reshape(TB, -1).T @ x.reshape(TB, -1)}
        return (d_h,), dC @ p["W_C"], grads

    def project_backward(self, d_states, states, x, p, ctx):
        T, B, D = x.shape
        g = d_states[0].reshape(T, B, D, -1)  # total gradient of h_t
        h_prev = states[0][:-1].reshape(T, B, D, -1)
        z, delta, Bt, A, Abar = ctx["z"], ctx["delta"], ctx["Bt"], ctx["A"], ctx["Abar"]
        gA = g * h_prev
        gA *= Abar.reshape(T, B, D, -1)  # d/d(Delta A) of exp(Delta A) h_{t-1}
        g_Bx = (g @ Bt[..., None])[..., 0]  # d/d(Delta x) through Delta B x: (T, B, D)
        d_delta = np.einsum("tbdn,dn->tbd", gA, A)
        d_delta += g_Bx * x
        dA = np.einsum("tbdn,tbd->dn", gA, delta)
        dB = ((delta * x)[:, :, None, :] @ g)[:, :, 0]  # (T, B, N)
        dz = d_delta * _sigmoid(z)
        TB = T * B
        xf = x.reshape(TB, -1)
        dzf, dBf = dz.reshape(TB, -1), dB.reshape(TB, -1)
        dx = g_Bx * delta + dz @ p["W_delta"] + dB @ p["W_B"]
        grads = {"A_log": dA * A, "W_delta": dzf.T @ xf, "b_delta": dzf.sum(axis=0), "W_B": dBf.T @ xf}
        return dx, grads

    # -- torch twin: the layer written again in torch operations ----------------------------------------
    def torch_layer(self, p: Any, x: Any, state: tuple) -> tuple[Any, tuple]:
        import torch

        A = -torch.exp(p["A_log"])
        h = state[0].reshape(x.shape[1], *A.shape)
        ys = []
        for t in range(x.shape[0]):
            delta = torch.nn.functional.softplus(x[t] @ p["W_delta"].T + p["b_delta"])
            Bt, Ct = x[t] @ p["W_B"].T, x[t] @ p["W_C"].T
            h = torch.exp(delta[:, :, None] * A) * h + (delta * x[t])[:, :, None] * Bt[:, None, :]
            ys.append((h * Ct[:, None, :]).sum(-1))
        return torch.stack(ys), (h.reshape(x.shape[1], -1),)


class SelectiveSSM(RecurrentModel):
    r"""Selective diagonal SSM (S6): input-dependent step :math:`\Delta_t`, B_t, C_t; state D x N per layer.

    Parameters
    ----------
    input_size : int
        D, the number of channels (input and output features of every layer).
    state_size : int
        N, the state dimension per channel; the flattened state has ``hidden_size`` = D*N entries
        (index d*N + n), so ``h0`` is (num_layers, B, D*N).
    num_layers : int
        Stacked layers, each reading the previous layer's output y (D channels).
    \*\*kwargs
        ``params`` (``A_log_l<k>`` (D, N), ``W_delta_l<k>`` (D, D), ``b_delta_l<k>`` (D,), ``W_B_l<k>``,
        ``W_C_l<k>`` (N, D)), ``seed``, ``batch_first`` as for every model. Default weights: Mamba's
        S4D-real initialisation (:meth:`SelectiveSSMCell.init_params`).
    """

    mode = "SelectiveSSM"
    cell_class = SelectiveSSMCell

    def __init__(self, input_size: int, state_size: int, num_layers: int = 1, **kwargs: Any) -> None:
        D, N = check_dimension(input_size, "input_size"), check_dimension(state_size, "state_size")
        if D * N > np.iinfo(np.intp).max:
            raise ValueError(f"input_size * state_size must be at most {np.iinfo(np.intp).max}, got {D} * {N}")
        super().__init__(D, D * N, num_layers, cell=SelectiveSSMCell(N), **kwargs)

    @property
    def size_argument(self) -> int:
        """N, the constructor's ``state_size`` (``hidden_size`` is D*N): what ``from_torch`` passes back."""
        return int(self.cell.state_size)

    def state_jacobian_log_diagonals(self, x: Any, layer: int = 0) -> np.ndarray:
        r""":math:`\ln e^{\Delta_{t,d} A_{dn}} = \Delta_{t,d} A_{dn}` along one sequence ``x`` (T, D) for one
        layer's own input: (T, D*N). They depend on the input only, not on the state."""
        return delta_A(self.layer_params(layer, 0).named, np.asarray(x, dtype=float)).reshape(len(x), -1)


SPEC = CellSpec(
    "selective_ssm", SelectiveSSMCell, SelectiveSSM, fast_kernel="gradtheory.cells._diagonal_kernel:SSM_KERNEL"
)
