r"""Linear Recurrent Unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De, ICML 2023).

.. math::
    \lambda = \exp(-e^{\nu} + i e^{\theta}), \qquad \gamma = \sqrt{1 - |\lambda|^2}, \qquad
    x_k = \operatorname{diag}(\lambda) x_{k-1} + \gamma \odot (B u_k), \qquad
    y_k = \operatorname{Re}(C x_k) + D \odot u_k

with ``nu_log`` = :math:`\nu`, ``theta_log`` = :math:`\theta` (N,), ``B = B_re + i B_im`` (N, H),
``C = C_re + i C_im`` (H, N), ``D`` (H,) (the paper's elementwise skip, so the output has the
input's H features). Complex matrices are stored as two real parameters (torch optimisers and
``gradtheory``'s checkers see real leaves); :func:`to_torch` can also build the twin with complex
leaves ``B``, ``C`` to check torch's convention. :math:`\gamma` here is the function of
:math:`\lambda` stated in the paper's Sec. 3.3 (its released code instead trains ``gamma_log``
initialised to this value).

**Complex-gradient convention** (torch's, "Autograd for Complex Numbers" in the torch docs): for
a real loss L and a complex quantity :math:`z = a + ib`, the gradient is
:math:`\partial L/\partial a + i\,\partial L/\partial b = 2\,\partial L/\partial\bar z` (twice the
conjugate Wirtinger derivative). Under it a holomorphic map :math:`w = f(z)` pulls back as
:math:`g_z = \overline{f'(z)}\,g_w`; so :math:`g_{x_{k-1}} = \bar\lambda\, g_{x_k}`, and
:math:`\partial x_T/\partial x_k = \operatorname{diag}(\lambda)^{T-k}` (holomorphic Jacobian,
:meth:`LRU.jacobians`). ``backward``'s ``h0``, ``dh`` and the ``d_h_n`` it accepts follow it;
``B_re``/``B_im`` gradients are the real and imaginary parts of the gradient of ``B``.
Derivation: ``proofs/lru.tex``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import FamilyForward, FamilyGradients, FamilyModel

__all__ = ["LRU", "lru_torch_twin"]


class LRU(FamilyModel):
    r"""Linear Recurrent Unit: complex diagonal recurrence, :math:`\gamma`-normalised input, real readout.

    Parameters
    ----------
    input_size : int
        H, the number of input (and output) features.
    state_size : int
        N, the number of complex state entries.
    params : mapping, optional
        ``nu_log``, ``theta_log`` (N,), ``B_re``, ``B_im`` (N, H), ``C_re``, ``C_im`` (H, N), ``D`` (H,).
        Default: the paper's initialisation (ring :math:`r_{min} \le |\lambda| \le r_{max}`,
        phase in :math:`[0, \text{max\_phase}]`, Glorot-like B and C) from ``seed``.
    seed : int, optional
    r_min, r_max, max_phase : float
        The initialisation ring and phase range (paper: 0, 1, 6.28).
    """

    complex_state = True

    def __init__(
        self,
        input_size: int,
        state_size: int,
        *,
        params: Any = None,
        seed: int | None = 0,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 6.28,
    ) -> None:
        from .._validation import check_positive_int

        self.n_state = check_positive_int(state_size, "state_size")
        if not (0.0 <= r_min < r_max <= 1.0):
            raise ValueError(f"need 0 <= r_min < r_max <= 1, got r_min={r_min!r}, r_max={r_max!r}")
        self._ring = (float(r_min), float(r_max), float(max_phase))
        super().__init__(input_size, params, seed)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        N, H = self.n_state, self.input_size
        return {
            "nu_log": (N,),
            "theta_log": (N,),
            "B_re": (N, H),
            "B_im": (N, H),
            "C_re": (H, N),
            "C_im": (H, N),
            "D": (H,),
        }

    def init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The paper's initialisation (Orvieto et al. 2023, Sec. 3.2-3.3 and App. A)."""
        r_min, r_max, max_phase = self._ring
        N, H = self.n_state, self.input_size
        u1 = rng.uniform(np.nextafter(0.0, 1.0), 1.0, N)  # u1 > 0: |lambda| < r_max strictly
        u2 = rng.uniform(size=N)
        nu_log = np.log(-0.5 * np.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        theta_log = np.log(max_phase * u2 + 1e-300)
        return {
            "nu_log": nu_log,
            "theta_log": theta_log,
            "B_re": rng.standard_normal((N, H)) / np.sqrt(2 * H),
            "B_im": rng.standard_normal((N, H)) / np.sqrt(2 * H),
            "C_re": rng.standard_normal((H, N)) / np.sqrt(N),
            "C_im": rng.standard_normal((H, N)) / np.sqrt(N),
            "D": rng.standard_normal(H),
        }

    def state_shape(self) -> tuple[int, ...]:
        return (self.n_state,)

    def eigenvalues(self, params: Any = None) -> np.ndarray:
        r""":math:`\lambda = \exp(-e^\nu + i e^\theta)`, shape (N,), complex."""
        p = self._params if params is None else params
        return np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))

    def gamma(self, params: Any = None) -> np.ndarray:
        r""":math:`\gamma = \sqrt{1 - |\lambda|^2} = \sqrt{-\mathrm{expm1}(-2e^\nu)}` (N,), computed without cancellation."""
        p = self._params if params is None else params
        return np.sqrt(-np.expm1(-2.0 * np.exp(p["nu_log"])))

    # -- forward ------------------------------------------------------------------------------
    def _forward(self, p, x, h0, batched) -> FamilyForward:
        lam, gam = self.eigenvalues(p), self.gamma(p)
        Bc = p["B_re"] + 1j * p["B_im"]
        v = x @ Bc.T  # (T, B, N): B u_k
        w = gam * v
        T = x.shape[0]
        states = np.empty((T + 1,) + h0.shape, dtype=np.complex128)
        states[0] = h0
        s = h0
        for k in range(T):
            s = lam * s + w[k]
            states[k + 1] = s
        xs = states[1:]
        y = xs.real @ p["C_re"].T - xs.imag @ p["C_im"].T + p["D"] * x
        out, h_n = self._unbatch(y, states[-1], batched)
        return FamilyForward(out, h_n, states, {"x": x, "v": v, "lam": lam, "gamma": gam, "p": p}, batched)

    # -- backward (hand-written BPTT) ------------------------------------------------------------
    def backward(self, result: FamilyForward, d_output: Any, d_h_n: Any = None) -> FamilyGradients:
        r"""BPTT for :math:`L = \langle d_{output}, y\rangle + \operatorname{Re}\langle d_{h_n}, x_T\rangle`.

        ``d_h_n`` (complex, torch's convention: :math:`\partial L/\partial\operatorname{Re}x_T + i\,\partial L/\partial\operatorname{Im}x_T`).
        Returns :class:`~gradtheory.families.FamilyGradients`; ``h0`` and ``dh`` are complex in the same convention.
        """
        from .._validation import as_float_array

        if not isinstance(result, FamilyForward):
            raise TypeError(f"result must be the FamilyForward of this model's forward, got {type(result).__name__}")
        c = result.cache
        x, v, lam, gam, p = c["x"], c["v"], c["lam"], c["gamma"], c["p"]
        dy = as_float_array(d_output, "d_output", shape=result.output.shape)
        dT = (
            np.zeros(result.h_n.shape, np.complex128)
            if d_h_n is None
            else as_float_array(d_h_n, "d_h_n", shape=result.h_n.shape, allow_complex=True).astype(np.complex128)
        )
        if not result.batched:
            dy, dT = dy[:, None], dT[None]
        T = x.shape[0]
        states = result.states
        Cc = p["C_re"] + 1j * p["C_im"]
        g_read = dy @ np.conj(Cc)  # (T, B, N): y = Re(C x) pulls back as conj(C)^T dy
        g = np.empty_like(g_read)
        s = dT
        lam_c = np.conj(lam)
        for k in range(T - 1, -1, -1):
            s = s + g_read[k]
            g[k] = s
            s = lam_c * s  # g_{x_{k-1}} = conj(lambda) g_{x_k}
        g0 = s
        # lambda: x_k = lambda x_{k-1} + w_k  =>  g_lambda = sum conj(x_{k-1}) g_k
        g_lam = np.einsum("tbn,tbn->n", np.conj(states[:-1]), g)
        g_mu = np.conj(lam) * g_lam  # lambda = exp(mu), holomorphic
        e_nu, e_th = np.exp(p["nu_log"]), np.exp(p["theta_log"])
        g_gam = np.einsum("tbn,tbn->n", np.conj(v), g).real  # gamma real: Re(conj(v) g)
        dgam_dnu = np.exp(-2.0 * e_nu) * e_nu / gam
        d_nu = -g_mu.real * e_nu + g_gam * dgam_dnu
        d_th = g_mu.imag * e_th
        g_v = gam * g  # (T, B, N)
        TB = T * x.shape[1]
        gB = g_v.reshape(TB, -1).T @ x.reshape(TB, -1)  # B u, u real: g_B = g_v u^T
        Bc = p["B_re"] + 1j * p["B_im"]
        dx = (np.conj(g_v) @ Bc).real + dy * p["D"]
        xs = states[1:].reshape(TB, -1)
        dyf = dy.reshape(TB, -1)
        grads = {
            "nu_log": d_nu,
            "theta_log": d_th,
            "B_re": gB.real,
            "B_im": gB.imag,
            "C_re": dyf.T @ xs.real,
            "C_im": -(dyf.T @ xs.imag),
            "D": np.sum(dyf * x.reshape(TB, -1), axis=0),
        }
        if not result.batched:
            dx, g0, g = dx[:, 0], g0[0], g[:, 0]
        return FamilyGradients(grads, dx, g0, g)

    def jacobians(self, result: FamilyForward) -> np.ndarray:
        r"""One-step Jacobians :math:`\partial x_k/\partial x_{k-1} = \operatorname{diag}(\lambda)`, (T, B, N, N) complex
        ((T, N, N) unbatched): the same matrix at every step, whatever the input."""
        T = result.states.shape[0] - 1
        J = np.broadcast_to(np.diag(result.cache["lam"]), (T,) + result.states.shape[1:-1] + (self.n_state,) * 2)
        J = np.array(J)
        return J if result.batched else J[:, 0]

    def state_jacobian_diagonals(self, x: Any, h0: Any = None) -> np.ndarray:
        r"""The diagonals of the one-step state Jacobians along one sequence ``x`` (T, H): (T, N), all :math:`\lambda`."""
        xt, _ = self._prepare_x(x)
        return np.broadcast_to(self.eigenvalues(), (xt.shape[0], self.n_state)).copy()

    def torch_twin(self, *, complex_leaves: bool = False) -> Any:
        """The torch twin (:func:`lru_torch_twin`); ``gradtheory.to_torch(model)`` returns it."""
        return lru_torch_twin(self, complex_leaves=complex_leaves)


def lru_torch_twin(model: LRU, *, complex_leaves: bool = False) -> Any:
    """The torch twin of ``model`` (float64/complex128), written independently with torch complex ops.

    ``complex_leaves=True`` makes ``B`` and ``C`` single complex parameters (to check torch's
    complex-gradient convention against the ``_re``/``_im`` split).
    """
    import torch

    class LRUTwin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            P = {k: torch.tensor(v, dtype=torch.float64) for k, v in model.params.items()}
            self.complex_leaves = complex_leaves
            self.nu_log = torch.nn.Parameter(P["nu_log"])
            self.theta_log = torch.nn.Parameter(P["theta_log"])
            self.D = torch.nn.Parameter(P["D"])
            if complex_leaves:
                self.B = torch.nn.Parameter(torch.complex(P["B_re"], P["B_im"]))
                self.C = torch.nn.Parameter(torch.complex(P["C_re"], P["C_im"]))
            else:
                for k in ("B_re", "B_im", "C_re", "C_im"):
                    setattr(self, k, torch.nn.Parameter(P[k]))

        def forward(self, u, x0=None):
            """u (T, B, H) float64; returns (y (T, B, H), x_T (B, N) complex)."""
            lam = torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))
            gamma = torch.sqrt(1 - torch.abs(lam) ** 2)
            if self.complex_leaves:
                B, C = self.B, self.C
            else:
                B, C = torch.complex(self.B_re, self.B_im), torch.complex(self.C_re, self.C_im)
            x = torch.zeros(u.shape[1], B.shape[0], dtype=torch.complex128) if x0 is None else x0
            ys = []
            for k in range(u.shape[0]):
                x = lam * x + gamma * (u[k].to(torch.complex128) @ B.T)
                ys.append((x @ C.T).real + self.D * u[k])
            return torch.stack(ys), x

    return LRUTwin()
