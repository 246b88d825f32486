r"""Selective diagonal state-space layer: the S6 recurrence of Mamba (Gu & Dao 2023, Sec. 3.2, Alg. 2).

Shapes follow Mamba: D input channels, each with its own N-dimensional diagonal state, so the state
is :math:`h_t \in \mathbb{R}^{D \times N}` and

.. math::
    \Delta_t = \operatorname{softplus}(W_\Delta x_t + b_\Delta) \in \mathbb{R}^D, \quad
    B_t = W_B x_t,\; C_t = W_C x_t \in \mathbb{R}^N, \quad A = -\exp(A_{\log}) \in \mathbb{R}^{D\times N}

    h_{t,dn} = e^{\Delta_{t,d} A_{dn}} h_{t-1,dn} + \Delta_{t,d} B_{t,n} x_{t,d}, \qquad
    y_{t,d} = \sum_n C_{t,n} h_{t,dn}

(zero-order hold for A, Euler for B, as in Mamba's reference code; one layer, no convolution, gate or
skip). Parameters: ``A_log`` (D, N), ``W_delta`` (D, D) (Mamba factors it through a low rank;
here full), ``b_delta`` (D,), ``W_B``, ``W_C`` (N, D). The state Jacobian is diagonal,
:math:`\partial h_{t,dn}/\partial h_{t-1,dn} = e^{\Delta_{t,d} A_{dn}} \in (0, 1)`
(``proofs/selective_ssm.tex``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import FamilyForward, FamilyGradients, FamilyModel

__all__ = ["SelectiveSSM", "selective_ssm_torch_twin"]


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class SelectiveSSM(FamilyModel):
    r"""Selective diagonal SSM (S6): input-dependent step :math:`\Delta_t`, B_t, C_t; state (D, N).

    Parameters
    ----------
    input_size : int
        D, the number of channels (input and output features).
    state_size : int
        N, the state dimension per channel.
    params : mapping, optional
        ``A_log`` (D, N), ``W_delta`` (D, D), ``b_delta`` (D,), ``W_B``, ``W_C`` (N, D). Default:
        Mamba's S4D-real initialisation :math:`A_{dn} = -(n + 1)`, :math:`\Delta` from
        :math:`b_\Delta = \operatorname{softplus}^{-1}(\Delta_0)`, :math:`\Delta_0` log-uniform in
        [0.001, 0.1], weights U(-1/sqrt(D), 1/sqrt(D)), from ``seed``.
    seed : int, optional
    """

    def __init__(self, input_size: int, state_size: int, *, params: Any = None, seed: int | None = 0) -> None:
        from .._validation import check_positive_int

        self.n_state = check_positive_int(state_size, "state_size")
        super().__init__(input_size, params, seed)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        D, N = self.input_size, self.n_state
        return {"A_log": (D, N), "W_delta": (D, D), "b_delta": (D,), "W_B": (N, D), "W_C": (N, D)}

    def init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        D, N = self.input_size, self.n_state
        bound = 1.0 / np.sqrt(D)
        dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), D))
        return {
            "A_log": np.log(np.tile(np.arange(1, N + 1, dtype=float), (D, 1))),
            "W_delta": rng.uniform(-bound, bound, (D, D)),
            "b_delta": dt + np.log(-np.expm1(-dt)),  # softplus^{-1}(dt)
            "W_B": rng.uniform(-bound, bound, (N, D)),
            "W_C": rng.uniform(-bound, bound, (N, D)),
        }

    def state_shape(self) -> tuple[int, ...]:
        return (self.input_size, self.n_state)

    # -- forward ------------------------------------------------------------------------------
    def _forward(self, p, x, h0, batched) -> FamilyForward:
        z = x @ p["W_delta"].T + p["b_delta"]  # (T, B, D)
        delta = _softplus(z)
        Bt, Ct = x @ p["W_B"].T, x @ p["W_C"].T  # (T, B, N)
        A = -np.exp(p["A_log"])  # (D, N)
        Abar = np.exp(delta[..., None] * A)  # (T, B, D, N)
        dx = delta * x  # Delta_t x_t: (T, B, D); the input term is Delta_t x_t (outer) B_t
        T = x.shape[0]
        states = np.empty((T + 1,) + h0.shape)
        states[0] = h0
        for t in range(T):  # h_t = Abar_t * h_{t-1} + Delta_t B_t x_t, written in place
            np.multiply(Abar[t], states[t], out=states[t + 1])
            states[t + 1] += dx[t][:, :, None] * Bt[t][:, None, :]
        y = (states[1:] @ Ct[..., None])[..., 0]  # y_{t,d} = sum_n h_{t,dn} C_{t,n}
        out, h_n = self._unbatch(y, states[-1], batched)
        cache = {"x": x, "z": z, "delta": delta, "Bt": Bt, "Ct": Ct, "A": A, "Abar": Abar, "p": p}
        return FamilyForward(out, h_n, states, cache, batched)

    # -- backward (hand-written BPTT) ------------------------------------------------------------
    def backward(self, result: FamilyForward, d_output: Any, d_h_n: Any = None) -> FamilyGradients:
        r"""BPTT for :math:`L = \langle d_{output}, y\rangle + \langle d_{h_n}, h_T\rangle`.

        Returns :class:`~gradtheory.families.FamilyGradients` (``dh``: (T, B, D, N)).
        """
        from .._validation import as_float_array

        if not isinstance(result, FamilyForward):
            raise TypeError(f"result must be the FamilyForward of this model's forward, got {type(result).__name__}")
        c = result.cache
        x, z, delta, Bt, Ct, A, Abar, p = (c[k] for k in ("x", "z", "delta", "Bt", "Ct", "A", "Abar", "p"))
        dy = as_float_array(d_output, "d_output", shape=result.output.shape)
        dT = np.zeros(result.h_n.shape) if d_h_n is None else as_float_array(d_h_n, "d_h_n", shape=result.h_n.shape)
        if not result.batched:
            dy, dT = dy[:, None], dT[None]
        T = x.shape[0]
        states = result.states
        g = dy[..., None] * Ct[..., None, :]  # y_d = sum_n C_n h_dn; becomes the total gradient in place
        g[T - 1] += dT
        for t in range(T - 1, 0, -1):
            g[t - 1] += Abar[t] * g[t]  # dh_t/dh_{t-1} = Abar_t (diagonal)
        g0 = Abar[0] * g[0]
        dC = (dy[:, :, None, :] @ states[1:])[:, :, 0]  # sum_d dy_d h_dn
        gA = g * states[:-1]
        gA *= Abar  # d/d(Delta A) of exp(Delta A) h_{t-1}
        g_Bx = (g @ Bt[..., None])[..., 0]  # d/d(Delta x) through Delta B x
        d_delta = np.einsum("tbdn,dn->tbd", gA, A)
        d_delta += g_Bx * x
        dA = np.einsum("tbdn,tbd->dn", gA, delta)
        dB = ((delta * x)[:, :, None, :] @ g)[:, :, 0]
        dz = d_delta * _sigmoid(z)
        TB = T * x.shape[1]
        xf = x.reshape(TB, -1)
        dzf, dBf, dCf = dz.reshape(TB, -1), dB.reshape(TB, -1), dC.reshape(TB, -1)
        dx = g_Bx * delta + dz @ p["W_delta"] + dB @ p["W_B"] + dC @ p["W_C"]
        grads = {
            "A_log": dA * A,  # A = -exp(A_log)
            "W_delta": dzf.T @ xf,
            "b_delta": dzf.sum(axis=0),
            "W_B": dBf.T @ xf,
            "W_C": dCf.T @ xf,
        }
        if not result.batched:
            dx, g0, g = dx[:, 0], g0[0], g[:, 0]
        return FamilyGradients(grads, dx, g0, g)

    def jacobians(self, result: FamilyForward) -> np.ndarray:
        r"""One-step Jacobians of the flattened state (index d*N + n):
        :math:`\operatorname{diag}(e^{\Delta_{t,d} A_{dn}})`, shape (T, B, DN, DN) ((T, DN, DN) unbatched)."""
        Abar = result.cache["Abar"]
        T, B = Abar.shape[:2]
        d = Abar.reshape(T, B, -1)
        J = np.zeros(d.shape + d.shape[-1:])
        idx = np.arange(d.shape[-1])
        J[:, :, idx, idx] = d
        return J if result.batched else J[:, 0]

    def state_jacobian_diagonals(self, x: Any, h0: Any = None) -> np.ndarray:
        r"""The diagonals :math:`e^{\Delta_{t,d} A_{dn}}` along one sequence ``x`` (T, D): (T, D*N).

        They do not depend on the state (only on the input), so ``h0`` is not read."""
        xt, _ = self._prepare_x(x)
        delta = _softplus(xt[:, 0] @ self._params["W_delta"].T + self._params["b_delta"])
        return np.exp(delta[:, :, None] * -np.exp(self._params["A_log"])).reshape(xt.shape[0], -1)

    def torch_twin(self) -> Any:
        """The torch twin (:func:`selective_ssm_torch_twin`); ``gradtheory.to_torch(model)`` returns it."""
        return selective_ssm_torch_twin(self)


def selective_ssm_torch_twin(model: SelectiveSSM) -> Any:
    """The torch twin of ``model`` (float64), written independently in torch operations."""
    import torch

    class SelectiveSSMTwin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for k, v in model.params.items():
                setattr(self, k, torch.nn.Parameter(torch.tensor(v, dtype=torch.float64)))

        def forward(self, x, h0=None):
            """x (T, B, D); returns (y (T, B, D), h_T (B, D, N))."""
            A = -torch.exp(self.A_log)
            h = torch.zeros(x.shape[1], *A.shape, dtype=torch.float64) if h0 is None else h0
            ys = []
            for t in range(x.shape[0]):
                delta = torch.nn.functional.softplus(x[t] @ self.W_delta.T + self.b_delta)
                Bt, Ct = x[t] @ self.W_B.T, x[t] @ self.W_C.T
                h = torch.exp(delta[:, :, None] * A) * h + (delta * x[t])[:, :, None] * Bt[:, None, :]
                ys.append((h * Ct[:, None, :]).sum(-1))
            return torch.stack(ys), h

    return SelectiveSSMTwin()
