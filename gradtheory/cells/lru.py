r"""Linear Recurrent Unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De, ICML 2023): the cell.

.. math::
    \lambda = \exp(-e^{\nu} + i e^{\theta}), \qquad \gamma = \sqrt{1 - |\lambda|^2}, \qquad
    x_k = \operatorname{diag}(\lambda) x_{k-1} + \gamma \odot (B u_k), \qquad
    y_k = \operatorname{Re}(C x_k) + D \odot u_k

with ``nu_log`` = :math:`\nu`, ``theta_log`` = :math:`\theta` (N,), ``B = B_re + i B_im`` (N, I),
``C = C_re + i C_im`` (I, N), ``D`` (I,) (the paper's elementwise skip, so the output has the
input's I features and layers stack: each layer's output is the next layer's input). Complex
matrices are stored as two real parameters (torch optimisers and ``gradtheory``'s checkers see
real leaves). :math:`\gamma` here is the function of :math:`\lambda` stated in the paper's Sec. 3.3
(its released code instead trains ``gamma_log`` initialised to this value).

**The complex state is carried as its real and imaginary parts**, the two state components
``(h, c) = (Re x, Im x)`` (each (B, N)): every operation is then real, so the complex step, torch's
``jacrev`` and every real oracle apply unchanged, and the one-step Jacobian of the joint state
(Re x, Im x) is the real form of :math:`\operatorname{diag}(\lambda)`,
:math:`\begin{pmatrix}\operatorname{diag}\lambda_r & -\operatorname{diag}\lambda_i\\
\operatorname{diag}\lambda_i & \operatorname{diag}\lambda_r\end{pmatrix}`.

**Complex-gradient convention** (torch's, "Autograd for Complex Numbers" in the torch docs): for
a real loss L and a complex quantity :math:`z = a + ib`, the gradient is
:math:`\partial L/\partial a + i\,\partial L/\partial b = 2\,\partial L/\partial\bar z`. The pair of
real gradients (``h0``, ``c0``; ``dh``, ``dc``; ``B_re``, ``B_im``) is exactly that complex gradient
split into its parts, so :math:`g_{x_{k-1}} = \bar\lambda\, g_{x_k}` is the backward step
(:meth:`LRUCell.step_backward`); ``tests/test_lru.py`` checks the convention against a torch twin
with complex leaves (:func:`lru_complex_twin`). Derivation: ``proofs/lru.tex``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..models.compose import RecurrentModel, check_dimension
from ._base import NONE, CellSpec

__all__ = ["LRU", "SPEC", "LRUCell", "lru_complex_twin"]


def eigenvalues(p: Any) -> tuple[Any, Any]:
    r"""(Re, Im) of :math:`\lambda = \exp(-e^\nu + i e^\theta)` from a layer's ``nu_log``, ``theta_log``
    (real arithmetic: analytic in the parameters, so the complex step applies)."""
    modulus, phase = np.exp(-np.exp(p["nu_log"])), np.exp(p["theta_log"])
    return modulus * np.cos(phase), modulus * np.sin(phase)


def gamma(p: Any) -> Any:
    r""":math:`\gamma = \sqrt{1 - |\lambda|^2} = \sqrt{-\mathrm{expm1}(-2e^\nu)}` (N,), without cancellation."""
    return np.sqrt(-np.expm1(-2.0 * np.exp(p["nu_log"])))


class LRUCell:
    r"""x_k = diag(lambda) x_{k-1} + gamma (B u_k), y_k = Re(C x_k) + D u_k; state (Re x, Im x).

    ``r_min``, ``r_max``, ``max_phase``: the initialisation ring :math:`r_{min} \le |\lambda| \le r_{max}`
    and phase range (paper: 0, 1, 6.28) of :meth:`init_params`.
    """

    name = "lru"
    gates = 1
    gate_names: tuple[str, ...] = ("x",)
    n_states = 2  # (Re x, Im x)
    additive = False
    recurrence = NONE  # no recurrent weight matrix: lambda enters through the step
    activation = None
    rational = False
    #: no optional biases; a reverse direction would change the layer widths (y has the input's size)
    layer_options = {"bias": True, "bidirectional": False}

    def __init__(self, r_min: float = 0.0, r_max: float = 1.0, max_phase: float = 6.28) -> None:
        if not (0.0 <= r_min < r_max <= 1.0):
            raise ValueError(f"need 0 <= r_min < r_max <= 1, got r_min={r_min!r}, r_max={r_max!r}")
        self.ring = (float(r_min), float(r_max), float(max_phase))

    # -- parameter layout -----------------------------------------------------------------------
    def layout(self, input_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
        N, I = hidden_size, input_size
        return {
            "nu_log": (N,),
            "theta_log": (N,),
            "B_re": (N, I),
            "B_im": (N, I),
            "C_re": (I, N),
            "C_im": (I, N),
            "D": (I,),
        }

    def output_size(self, input_size: int, hidden_size: int) -> int:
        return input_size

    def init_params(self, rng: np.random.Generator, input_size: int, hidden_size: int) -> dict[str, np.ndarray]:
        """The paper's initialisation (Orvieto et al. 2023, Sec. 3.2-3.3 and App. A)."""
        r_min, r_max, max_phase = self.ring
        N, I = hidden_size, input_size
        u1 = rng.uniform(np.nextafter(0.0, 1.0), 1.0, N)  # u1 > 0: |lambda| < r_max strictly
        u2 = rng.uniform(size=N)
        return {
            "nu_log": np.log(-0.5 * np.log(u1 * (r_max**2 - r_min**2) + r_min**2)),
            "theta_log": np.log(max_phase * u2 + 1e-300),
            "B_re": rng.standard_normal((N, I)) / np.sqrt(2 * I),
            "B_im": rng.standard_normal((N, I)) / np.sqrt(2 * I),
            "C_re": rng.standard_normal((I, N)) / np.sqrt(N),
            "C_im": rng.standard_normal((I, N)) / np.sqrt(N),
            "D": rng.standard_normal(I),
        }

    def draw_params(self, draw: Any, input_size: int, hidden_size: int, scale: float | None) -> dict[str, np.ndarray]:
        r"""Eigenvalues in a drawn ring :math:`r_{min} \le |\lambda| \le r_{max} < 1` (r_max in [0.3, 0.99]),
        phases in [0.01, 6.28], B, C entries up to ``scale`` (default the paper's 1/sqrt(2I), 1/sqrt(N))."""
        from hypothesis import strategies as st
        from hypothesis.extra import numpy as hnp

        from ..strategies import reals

        N, I = hidden_size, input_size
        r_max = draw(st.floats(0.3, 0.99))
        r_min = draw(st.floats(0.0, 0.99 * r_max))
        # |lambda| = exp(-e^nu) in [r_min, r_max]  <=>  nu in [ln(-ln r_max), ln(-ln r_min)] (capped at 3)
        lo, hi = math.log(-math.log(r_max)), min(3.0, math.log(-math.log(r_min)) if r_min > 0 else 3.0)
        arr = lambda shape, elements: draw(hnp.arrays(np.float64, shape, elements=elements))  # noqa: E731
        b, c = (1.0 / math.sqrt(2 * I), 1.0 / math.sqrt(N)) if scale is None else (scale, scale)
        return {
            "nu_log": arr((N,), st.floats(lo, hi)),
            "theta_log": arr((N,), st.floats(math.log(0.01), math.log(6.28))),
            "B_re": arr((N, I), reals(b)),
            "B_im": arr((N, I), reals(b)),
            "C_re": arr((I, N), reals(c)),
            "C_im": arr((I, N), reals(c)),
            "D": arr((I,), reals(1.0 if scale is None else scale)),
        }

    # -- forward: the per-step inputs, the step, the readout ------------------------------------------
    def project(self, x: np.ndarray, p: Any) -> tuple[list, dict]:
        """Step t reads (Re lambda, Im lambda, Re w_t, Im w_t), w_t = gamma (B u_t)."""
        lam_r, lam_i = eigenvalues(p)
        gam = gamma(p)
        v_r, v_i = x @ p["B_re"].T, x @ p["B_im"].T  # (T, B, N): B u
        w_r, w_i = gam * v_r, gam * v_i
        inputs = [(lam_r, lam_i, w_r[t], w_i[t]) for t in range(x.shape[0])]
        return inputs, {"lam": (lam_r, lam_i), "gamma": gam, "v": (v_r, v_i)}

    def step(self, gi, gh, state):
        lam_r, lam_i, w_r, w_i = gi
        h_r, h_i = state
        new_r = lam_r * h_r - lam_i * h_i + w_r  # Re(lambda x + w)
        new_i = lam_i * h_r + lam_r * h_i + w_i  # Im(lambda x + w)
        return (new_r, new_i), (lam_r, lam_i, h_r.shape[0])

    def step_backward(self, d_state, cache):
        """g_{x_{k-1}} = conj(lambda) g_{x_k} (torch's convention, in real and imaginary parts)."""
        lam_r, lam_i, _ = cache
        d_r, d_i = d_state
        return None, None, (lam_r * d_r + lam_i * d_i, lam_r * d_i - lam_i * d_r)

    def step_jacobian(self, cache, W_hh):
        """The real form of diag(lambda) on (Re x, Im x): (B, 2N, 2N)."""
        lam_r, lam_i, B = cache
        N = lam_r.shape[-1]
        J = np.zeros((B, 2 * N, 2 * N), dtype=np.result_type(lam_r, lam_i))
        idx = np.arange(N)
        J[:, idx, idx] = J[:, N + idx, N + idx] = lam_r
        J[:, idx, N + idx] = -lam_i
        J[:, N + idx, idx] = lam_i
        return J

    def readout(self, states, x, p, ctx):
        h_r, h_i = states
        return h_r @ p["C_re"].T - h_i @ p["C_im"].T + p["D"] * x  # Re(C x) + D u

    # -- backward: readout, then the projection, each vectorised over time ----------------------------
    def readout_backward(self, d_y, states, x, p, ctx):
        h_r, h_i = states
        TB = d_y.shape[0] * d_y.shape[1]
        dyf = d_y.reshape(TB, -1)
        grads = {
            "C_re": dyf.T @ h_r.reshape(TB, -1),
            "C_im": -(dyf.T @ h_i.reshape(TB, -1)),
            "D": np.sum(dyf * x.reshape(TB, -1), axis=0),
        }
        return (d_y @ p["C_re"], -(d_y @ p["C_im"])), d_y * p["D"], grads

    def project_backward(self, d_states, states, x, p, ctx):
        g_r, g_i = d_states  # (T, B, N): torch's gradient of x_k, g_r + i g_i
        h_r, h_i = states[0][:-1], states[1][:-1]  # x_{k-1}
        lam_r, lam_i = ctx["lam"]
        gam, (v_r, v_i) = ctx["gamma"], ctx["v"]
        # x_k = lambda x_{k-1} + w_k  =>  g_lambda = sum conj(x_{k-1}) g_k
        gl_r = np.einsum("tbn,tbn->n", h_r, g_r) + np.einsum("tbn,tbn->n", h_i, g_i)
        gl_i = np.einsum("tbn,tbn->n", h_r, g_i) - np.einsum("tbn,tbn->n", h_i, g_r)
        e_nu, e_th = np.exp(p["nu_log"]), np.exp(p["theta_log"])
        g_gam = np.einsum("tbn,tbn->n", v_r, g_r) + np.einsum("tbn,tbn->n", v_i, g_i)  # gamma real
        dgam_dnu = np.exp(-2.0 * e_nu) * e_nu / gam
        # lambda = exp(mu), mu = -e^nu + i e^theta: g_mu = conj(lambda) g_lambda
        d_nu = -e_nu * (gl_r * lam_r + gl_i * lam_i) + g_gam * dgam_dnu
        d_th = e_th * (gl_i * lam_r - gl_r * lam_i)
        gw_r, gw_i = gam * g_r, gam * g_i
        TB = x.shape[0] * x.shape[1]
        xf = x.reshape(TB, -1)
        grads = {
            "nu_log": d_nu,
            "theta_log": d_th,
            "B_re": gw_r.reshape(TB, -1).T @ xf,
            "B_im": gw_i.reshape(TB, -1).T @ xf,
        }
        return gw_r @ p["B_re"] + gw_i @ p["B_im"], grads

    # -- torch twin: the layer written again with torch's complex operations ---------------------------
    def torch_layer(self, p: Any, x: Any, state: tuple) -> tuple[Any, tuple]:
        import torch

        lam = torch.exp(torch.complex(-torch.exp(p["nu_log"]), torch.exp(p["theta_log"])))
        gam = torch.sqrt(1 - torch.abs(lam) ** 2)
        B, C = torch.complex(p["B_re"], p["B_im"]), torch.complex(p["C_re"], p["C_im"])
        s = torch.complex(state[0], state[1])
        ys = []
        for k in range(x.shape[0]):
            s = lam * s + gam * (x[k].to(torch.complex128) @ B.T)
            ys.append((s @ C.T).real + p["D"] * x[k])
        return torch.stack(ys), (s.real, s.imag)


class LRU(RecurrentModel):
    r"""Linear Recurrent Unit: complex diagonal recurrence, :math:`\gamma`-normalised input, real readout.

    Parameters
    ----------
    input_size : int
        I, the number of input (and output) features.
    state_size : int
        N, the number of complex state entries (``hidden_size``; the joint real state (Re x, Im x)
        has 2N entries, ``model.state_size``).
    num_layers : int
        Stacked layers, each reading the previous layer's output y (I features).
    params : mapping, optional
        ``nu_log_l<k>``, ``theta_log_l<k>`` (N,), ``B_re_l<k>``, ``B_im_l<k>`` (N, I), ``C_re_l<k>``,
        ``C_im_l<k>`` (I, N), ``D_l<k>`` (I,). Default: the paper's initialisation (ring
        :math:`r_{min} \le |\lambda| \le r_{max}`, phase in :math:`[0, \text{max\_phase}]`, Glorot-like
        B and C) from ``seed``.
    r_min, r_max, max_phase : float
        The initialisation ring and phase range (paper: 0, 1, 6.28).
    \*\*kwargs
        ``batch_first``, ``params``, ``seed`` as for every model (:class:`gradtheory.RecurrentModel`).

    Raises
    ------
    ValueError
        Unless 0 <= r_min < r_max <= 1.

    Notes
    -----
    The initial state ``h0`` is the pair ``(Re x_0, Im x_0)``; ``h_n`` and ``c_n`` are Re and Im of
    the final state, and the gradients ``h0`` and ``c0`` (``dh`` and ``dc``) of ``backward`` are the
    real and imaginary parts of torch's complex gradient (see :mod:`gradtheory.cells.lru`).
    """

    mode = "LRU"
    cell_class = LRUCell

    def __init__(
        self,
        input_size: int,
        state_size: int,
        num_layers: int = 1,
        *,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 6.28,
        **kwargs: Any,
    ) -> None:
        state_size = check_dimension(state_size, "state_size")
        super().__init__(input_size, state_size, num_layers, cell=LRUCell(r_min, r_max, max_phase), **kwargs)

    def eigenvalues(self, params: Any = None, layer: int = 0) -> np.ndarray:
        r""":math:`\lambda = \exp(-e^\nu + i e^\theta)` of one layer, shape (N,), complex."""
        lam_r, lam_i = eigenvalues(self.layer_params(layer, 0, params).named)
        return lam_r + 1j * lam_i

    def gamma(self, params: Any = None, layer: int = 0) -> np.ndarray:
        r""":math:`\gamma = \sqrt{1 - |\lambda|^2}` of one layer, shape (N,)."""
        return gamma(self.layer_params(layer, 0, params).named)

    @staticmethod
    def complex_state(real: Any, imag: Any) -> np.ndarray:
        """The complex state (or its torch-convention gradient) from its two parts: ``real + 1j * imag``
        (e.g. ``LRU.complex_state(result.h_n, result.c_n)``)."""
        return np.asarray(real) + 1j * np.asarray(imag)


def lru_complex_twin(model: LRU) -> Any:
    """A single-layer torch twin of ``model`` whose ``B`` and ``C`` are complex leaves and whose state is
    complex: ``forward(u (T, B, I), x0 complex (B, N) or None) -> (y, x_T complex)``. Its autograd
    gives torch's complex gradients, to check the convention against the ``_re``/``_im`` split."""
    import torch

    if model.num_layers != 1:
        raise NotImplementedError(f"lru_complex_twin takes a single-layer LRU, got num_layers={model.num_layers}")

    class LRUComplexTwin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            P = {k[: -len("_l0")]: torch.tensor(v, dtype=torch.float64) for k, v in model.params.items()}
            self.nu_log = torch.nn.Parameter(P["nu_log"])
            self.theta_log = torch.nn.Parameter(P["theta_log"])
            self.D = torch.nn.Parameter(P["D"])
            self.B = torch.nn.Parameter(torch.complex(P["B_re"], P["B_im"]))
            self.C = torch.nn.Parameter(torch.complex(P["C_re"], P["C_im"]))

        def forward(self, u, x0=None):
            lam = torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))
            gam = torch.sqrt(1 - torch.abs(lam) ** 2)
            x = torch.zeros(u.shape[1], self.B.shape[0], dtype=torch.complex128) if x0 is None else x0
            ys = []
            for k in range(u.shape[0]):
                x = lam * x + gam * (u[k].to(torch.complex128) @ self.B.T)
                ys.append((x @ self.C.T).real + self.D * u[k])
            return torch.stack(ys), x

    return LRUComplexTwin()


SPEC = CellSpec("lru", LRUCell, LRU, fast_kernel="gradtheory.cells._diagonal_kernel:LRU_KERNEL")
