r"""AntisymmetricRNN cell (Chang, Chen, Haber & Chi, ICLR 2019): a forward-Euler step of an ODE
whose recurrent matrix is antisymmetric, with diffusion :math:`\gamma`.

.. math::
    a_t = V x_t + b_{ih} + (W - W^\top - \gamma I) h_{t-1} + b_{hh}, \qquad
    h_t = h_{t-1} + \varepsilon\, \phi(a_t)

    \frac{\partial h_t}{\partial h_{t-1}} = I + \varepsilon \operatorname{diag}(\phi'(a_t))\,(W - W^\top - \gamma I)

Parameters in torch's names: ``weight_ih_l0`` is :math:`V`, ``weight_hh_l0`` is the free matrix
:math:`W` (only its antisymmetric part :math:`W - W^\top` acts), ``bias_ih_l0 + bias_hh_l0`` is
:math:`b`; ``eps`` and ``gamma`` are hyperparameters. The paper uses :math:`\phi = \tanh` (the
default). Derived in ``proofs/antisymmetric.tex`` (:func:`derive` below): the eigenvalues of
:math:`W - W^\top` are purely imaginary, but the forward-Euler Jacobian in the linear regime has
eigenvalues :math:`1 - \varepsilon\gamma \pm i\varepsilon\mu`, of modulus above 1 unless
:math:`\varepsilon(\gamma^2 + \mu^2) \le 2\gamma`. Twin: the torch twin built from
:meth:`AntisymmetricCell.torch_step`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..models.activations import Activation, get_activation
from ..models.compose import RecurrentModel
from ._base import CellSpec, Recurrence, torch_activation

__all__ = ["SPEC", "AntisymmetricCell", "AntisymmetricRNN", "AntisymmetricRecurrence", "derive"]

#: Defaults of the hyperparameters (the paper tunes both; these lie in the ranges it reports).
DEFAULT_EPS = 0.1
DEFAULT_GAMMA = 0.01


def _check_hyper(value: Any, name: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be a finite {'positive' if positive else 'non-negative'} number, got {value!r}")
    return v


class AntisymmetricRecurrence(Recurrence):
    r""":math:`R(h, W) = (W - W^\top - \gamma I) h` for a square ``W`` (H, H)."""

    name = "antisymmetric"

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def weight_shape(self, rows, hidden_size):
        if rows != hidden_size:
            raise NotImplementedError("the antisymmetric recurrence has one gate (rows == hidden_size)")
        return (hidden_size, hidden_size)

    def matrix(self, W: np.ndarray) -> np.ndarray:
        r""":math:`M = W - W^\top - \gamma I` (the matrix acting on :math:`h_{t-1}`)."""
        M = W - W.T
        idx = np.arange(W.shape[0])
        M[idx, idx] -= self.gamma
        return M

    def apply(self, h, W):
        return h @ self.matrix(W).T

    def input_grad(self, d_gh, W, hidden_size):
        return d_gh @ self.matrix(W)

    def weight_grad(self, d_gh, h):
        # <G, W - W^T> with G = d_gh^T h: the gradient with respect to W is G - G^T (gamma is fixed)
        G = d_gh.T @ h
        return G - G.T

    def exact(self, W, h):
        H = len(h)
        out = []
        for i in range(H):
            acc = (W[i][0] - W[0][i]) * h[0]
            for j in range(1, H):
                acc = acc + (W[i][j] - W[j][i]) * h[j]
            out.append(acc - h[i] * self.gamma)
        return out

    def torch(self, h, W):
        return h @ (W - W.T).T - self.gamma * h


class AntisymmetricCell:
    r"""h_t = h_{t-1} + eps * phi(a_t), a_t = V x_t + (W - W^T - gamma I) h_{t-1} + b. State: (h,)."""

    name = "antisymmetric"
    gates = 1
    gate_names: tuple[str, ...] = ("h",)
    n_states = 1
    additive = True  # the step uses gi and gh only through gi + gh
    # eps and gamma are floats multiplying the exact scalars: the oracles run at 50 digits (mpmath)
    rational = False

    def __init__(
        self, activation: str | Activation = "tanh", eps: float = DEFAULT_EPS, gamma: float = DEFAULT_GAMMA
    ) -> None:
        self.activation = get_activation(activation)
        self.eps = _check_hyper(eps, "eps", positive=True)
        self.gamma = _check_hyper(gamma, "gamma", positive=False)
        self.recurrence = AntisymmetricRecurrence(self.gamma)

    @property
    def hyperparameters(self) -> dict[str, float]:
        """The model keyword arguments that rebuild this cell (read by ``from_torch`` on the twin)."""
        return {"eps": self.eps, "gamma": self.gamma}

    def step(self, gi, gh, state):
        (h_prev,) = state
        a = gi + gh
        F = self.activation.phi(a)
        return (h_prev + self.eps * F,), (a, F)

    def step_backward(self, d_state, cache):
        a, F = cache
        (dh,) = d_state
        da = (self.eps * dh) * self.activation.grad(a, F)
        return da, da, (dh,)  # the identity path h_{t-1} -> h_t

    def step_jacobian(self, cache, W_hh):
        a, F = cache
        J = (self.eps * self.activation.grad(a, F))[:, :, None] * self.recurrence.matrix(W_hh)
        idx = np.arange(W_hh.shape[1])
        J[:, idx, idx] += 1.0
        return J

    def equations(self, gi: list, gh: list, prev: tuple, ops: Any) -> tuple[tuple[list, ...], dict]:
        """Independent scalar form (oracles, SymPy): h_k = h_prev_k + eps phi(gi_k + gh_k)."""
        (h_prev,) = prev
        return ([h + ops.phi(p + q) * self.eps for h, p, q in zip(h_prev, gi, gh)],), {}

    def torch_step(self, gi: Any, gh: Any, state: tuple) -> tuple:
        """The step in torch operations (the torch twin)."""
        return (state[0] + self.eps * torch_activation(self.activation.name)(gi + gh),)


class AntisymmetricRNN(RecurrentModel):
    r"""AntisymmetricRNN :math:`h_t = h_{t-1} + \varepsilon\phi((W - W^\top - \gamma I)h_{t-1} + V x_t + b)`.

    Parameters
    ----------
    input_size, hidden_size, num_layers
        As ``torch.nn.RNN``.
    nonlinearity : str, optional
        ``tanh`` (the paper's, default), ``relu``, ``sigmoid`` or ``identity``.
    eps : float
        Step size :math:`\varepsilon > 0` (default 0.1).
    gamma : float
        Diffusion :math:`\gamma \ge 0` (default 0.01).
    **kwargs
        ``bias``, ``batch_first``, ``bidirectional``, ``params``, ``seed`` as :class:`RecurrentModel`.

    Raises
    ------
    TypeError, ValueError
        For ``eps``/``gamma`` that are not finite reals, ``eps <= 0`` or ``gamma < 0``.
    """

    mode = "AntisymmetricRNN"
    cell_class = AntisymmetricCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str | None = None,
        *,
        eps: float = DEFAULT_EPS,
        gamma: float = DEFAULT_GAMMA,
        **kwargs: Any,
    ) -> None:
        self.nonlinearity = get_activation("tanh" if nonlinearity is None else nonlinearity).name
        cell = AntisymmetricCell(self.nonlinearity, eps, gamma)
        self.eps, self.gamma = cell.eps, cell.gamma
        super().__init__(input_size, hidden_size, num_layers, cell=cell, **kwargs)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", eps={self.eps!r}, gamma={self.gamma!r})"


def derive() -> Any:
    r"""The AntisymmetricRNN derivation (``proofs/antisymmetric.tex``): the one-step Jacobian of the
    cell's own equations, the purely imaginary spectrum of :math:`W - W^\top`, and the modulus of
    the forward-Euler eigenvalues :math:`|1 - \varepsilon\gamma \pm i\varepsilon\mu|`."""
    import sympy as sp

    from ..symbolic.notation import Derivation, M, Norm, Partial, Step, assert_zero, cell_equations, eq, le, text

    H = 2
    phi = sp.Function("phi")
    eps, gam = sp.symbols(r"\varepsilon \gamma", positive=True)
    hp = sp.Matrix(sp.symbols(f"h0:{H}", real=True))
    w = sp.Matrix(sp.symbols(f"w0:{H}", real=True))  # V x_t + b_ih + b_hh
    W = sp.Matrix(H, H, sp.symbols(f"W0:{H * H}", real=True))
    cell = AntisymmetricCell("tanh")
    cell.eps, cell.recurrence.gamma = eps, gam  # symbolic hyperparameters for the derivation
    gh = sp.Matrix(cell.recurrence.exact(W.tolist(), list(hp)))
    (h,), _ = cell_equations(cell, w, gh, (hp,), activation=phi)  # the cell's own equations
    J = h.jacobian(hp)
    Mmat = W - W.T - gam * sp.eye(H)
    a = w + Mmat * hp
    z = sp.Symbol("_z")
    dphi = sp.diag(*[sp.Derivative(phi(z), z).subs(z, a[n]) for n in range(H)])
    assert_zero(J - (sp.eye(H) + eps * dphi * Mmat), "AntisymmetricRNN Jacobian - (I + eps diag(phi') M) (H = 2)")
    # the antisymmetric part has purely imaginary eigenvalues (H = 2: +- i mu, mu = W01 - W10)
    mu = sp.Symbol(r"\mu", real=True)
    S = sp.Matrix([[0, mu], [-mu, 0]])
    lam = sp.Symbol(r"\lambda")
    assert_zero(sp.expand(S.charpoly(lam).as_expr() - (lam**2 + mu**2)), "charpoly of [[0, mu], [-mu, 0]]")
    assert_zero(sp.expand((W - W.T) - S.subs(mu, W[0, 1] - W[1, 0])), "W - W^T = [[0, mu], [-mu, 0]] (H = 2)")
    # linear regime (phi' = 1): J = I + eps (S - gamma I), eigenvalues 1 - eps gamma +- i eps mu
    J_lin = sp.eye(2) + eps * (S - gam * sp.eye(2))
    cp = sp.expand(J_lin.charpoly(lam).as_expr())
    assert_zero(sp.expand(cp - ((lam - 1 + eps * gam) ** 2 + eps**2 * mu**2)), "charpoly of I + eps (S - gamma I)")
    mod2 = (1 - eps * gam) ** 2 + eps**2 * mu**2
    # normal matrix: the spectral norm is the modulus; J_lin^T J_lin = mod2 I
    assert_zero(sp.expand(J_lin.T * J_lin - mod2 * sp.eye(2)), "J_lin^T J_lin - |lambda|^2 I")
    # gamma = 0: |lambda|^2 = 1 + eps^2 mu^2 > 1 for mu != 0 (slow explosion)
    assert_zero(sp.expand(mod2.subs(gam, 0) - (1 + eps**2 * mu**2)), "|lambda|^2 at gamma = 0")
    # |lambda|^2 <= 1  <=>  eps (gamma^2 + mu^2) <= 2 gamma
    assert_zero(sp.expand((mod2 - 1) - eps * (eps * (gam**2 + mu**2) - 2 * gam)), "|lambda|^2 - 1 factorisation")

    ht, hprev, k, t = M("h_t"), M("h_{t-1}"), sp.Symbol("k"), sp.Symbol("t")
    steps = (
        Step(
            eq(ht, text(r"h_{t-1} + \varepsilon\,\phi\bigl((W - W^\top - \gamma I) h_{t-1} + V x_t + b\bigr)")),
            r"AntisymmetricRNN step (Chang et al., 2019): forward Euler with step $\varepsilon$ of "
            r"$\dot h = \phi((W - W^\top - \gamma I)h + Vx + b)$; \texttt{weight\_hh} is $W$, \texttt{weight\_ih} is $V$.",
        ),
        Step(
            eq(Partial(ht, hprev), text(r"I + \varepsilon\,\operatorname{diag}(\phi'(a_t))\,(W - W^\top - \gamma I)")),
            r"SymPy's Jacobian of the cell's own equations ($H = 2$, generic $\phi$, symbolic $\varepsilon, \gamma$).",
        ),
        Step(
            eq(text(r"\operatorname{spec}(W - W^\top)"), text(r"\{\pm i\mu_j\} \subset i\mathbb{R}")),
            r"$W - W^\top$ is real antisymmetric, hence normal with purely imaginary eigenvalues "
            r"(for $H = 2$ the characteristic polynomial is $\lambda^2 + \mu^2$, $\mu = W_{01} - W_{10}$): "
            r"the paper's continuous-time argument.",
        ),
        Step(
            eq(
                text(r"\lambda(I + \varepsilon(W - W^\top - \gamma I))"),
                text(r"1 - \varepsilon\gamma \pm i\varepsilon\mu_j"),
            ),
            r"Linear regime $\phi' = 1$ (e.g. $a_t$ near 0 for $\tanh$): the characteristic polynomial is "
            r"$(\lambda - 1 + \varepsilon\gamma)^2 + \varepsilon^2\mu^2$.",
        ),
        Step(
            eq(
                Norm(text(r"I + \varepsilon(W - W^\top - \gamma I)")),
                text(r"\max_j \sqrt{(1 - \varepsilon\gamma)^2 + \varepsilon^2\mu_j^2}"),
            ),
            r"The matrix is normal ($J^\top J = |\lambda|^2 I$ for $H = 2$): its spectral norm is the largest modulus.",
        ),
        Step(
            eq(text(r"|\lambda|^2\big|_{\gamma = 0}"), text(r"1 + \varepsilon^2\mu^2 > 1")),
            r"Without diffusion, forward Euler is not stable: in the linear regime the gradient grows like "
            r"$(1 + \varepsilon^2\mu^2)^{(t-k)/2}$ (slow explosion), although the ODE's eigenvalues are imaginary.",
        ),
        Step(
            le(text(r"|\lambda|"), sp.Integer(1)),
            r"exactly when $\varepsilon(\gamma^2 + \mu_j^2) \le 2\gamma$ for every $j$, since "
            r"$|\lambda|^2 - 1 = \varepsilon(\varepsilon(\gamma^2 + \mu^2) - 2\gamma)$ (SymPy). "
            r"A small $\gamma$ stabilises only modes with $\mu_j^2 \le 2\gamma/\varepsilon - \gamma^2$.",
        ),
        Step(
            le(Norm(Partial(ht, M("h_k"))), text(r"\bigl(1 + \varepsilon\,\|W - W^\top - \gamma I\|_2\bigr)^{t-k}")),
            r"With $0 \le \phi' \le 1$ ($\tanh$): the bound drawn by \texttt{gradtheory plot}; "
            r"$\|W - W^\top - \gamma I\|_2 = \max_j\sqrt{\gamma^2 + \mu_j^2}$ (normal).",
        ),
    )
    return Derivation(
        name="antisymmetric",
        title="AntisymmetricRNN: imaginary spectrum, forward Euler and diffusion",
        intro=(
            r"The AntisymmetricRNN (Chang, Chen, Haber and Chi, ICLR 2019) discretises an ODE whose "
            r"recurrent matrix $W - W^\top$ has purely imaginary eigenvalues. The continuous system "
            r"neither explodes nor vanishes; its forward-Euler step does, unless the diffusion $\gamma$ "
            r"is large enough. The checks compare \texttt{AntisymmetricRNN.jacobians} with the formula "
            r"below and the audit's claims with the moduli derived here."
        ),
        steps=steps,
        result={"jacobian": J, "phi": phi, "symbols": (eps, gam, mu), "modulus_squared": mod2, "t": (k, t)},
        source="gradtheory/cells/antisymmetric.py",
    )


SPEC = CellSpec(
    "antisymmetric",
    AntisymmetricCell,
    AntisymmetricRNN,
    nonlinearities=("tanh", "relu", "sigmoid", "identity"),
    derivation=derive,
)
