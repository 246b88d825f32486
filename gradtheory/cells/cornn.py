r"""coRNN cell (Rusch & Mishra, ICLR 2021): an IMEX step of a network of damped, driven oscillators
:math:`y'' = \sigma(W y + W_z y' + V u + b) - \gamma y - \varepsilon y'`.

.. math::
    a_n = V u_n + b_{ih} + W y_{n-1} + W_z z_{n-1} + b_{hh}, \qquad
    z_n = z_{n-1} + \Delta t\,\bigl(\sigma(a_n) - \gamma y_{n-1} - \varepsilon z_{n-1}\bigr), \qquad
    y_n = y_{n-1} + \Delta t\, z_n

The order of the updates is that of the authors' reference implementation
(``coRNNCell.forward`` in github.com/tk-rusch/coRNN: ``hz`` first, from the old ``hy`` and
``hz``, then ``hy`` from the new ``hz``; the damping acts on the old ``z``). The state is the pair
``(y, z)`` (position and velocity; ``h_n`` is :math:`y`, ``c_n`` is :math:`z`); ``y`` is the output.

Parameters in torch's names: ``weight_ih_l0`` is :math:`V` (H, I); ``weight_hh_l0`` is
:math:`[W \mid W_z]` (H, 2H), one dense matrix acting on the joint state :math:`(y, z)` (the
reference's ``i2h`` weight is :math:`[V \mid W_z \mid W]`, the same three blocks in another
order); ``bias_ih_l0 + bias_hh_l0`` is :math:`b`. ``dt``, ``gamma``, ``epsilon`` are
hyperparameters (defaults: the reference's sMNIST run). One-step Jacobian of :math:`(y, z)`, with
:math:`D = \operatorname{diag}(\sigma'(a_n))`:

.. math::
    \frac{\partial z_n}{\partial y_{n-1}} = \Delta t (D W - \gamma I), \quad
    \frac{\partial z_n}{\partial z_{n-1}} = (1 - \Delta t\varepsilon) I + \Delta t D W_z, \quad
    \frac{\partial y_n}{\partial (y, z)_{n-1}} = (I, 0) + \Delta t \frac{\partial z_n}{\partial (y, z)_{n-1}}

Derived in ``proofs/cornn.tex`` (:func:`derive`). Twin: the torch twin built from
:meth:`CoRNNCell.torch_step`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_real
from ..models.activations import Activation, get_activation
from ..models.compose import RecurrentModel
from ._base import DENSE, CellSpec, Recurrence, torch_activation

__all__ = ["SPEC", "CoRNN", "CoRNNCell", "CoupledRecurrence", "derive"]

#: Defaults of the hyperparameters: the reference implementation's sMNIST run (sMNIST_task.py).
DEFAULT_DT = 0.042
DEFAULT_GAMMA = 2.7
DEFAULT_EPSILON = 4.7


class CoupledRecurrence(Recurrence):
    r""":math:`R((y, z), [W \mid W_z]) = W y + W_z z`: one dense (H, 2H) matrix on the joint state."""

    name = "coupled"
    reads_states = 2

    def weight_shape(self, rows, hidden_size):
        return (rows, 2 * hidden_size)

    def apply(self, h, W):
        return h @ W.T

    def input_grad(self, d_gh, W, hidden_size):
        return d_gh @ W

    def weight_grad(self, d_gh, h):
        return d_gh.T @ h

    def exact(self, W, h):
        return DENSE.exact(W, h)

    def torch(self, h, W):
        return h @ W.T


class CoRNNCell:
    r"""z_n = z + dt (sigma(a_n) - gamma y - eps z), y_n = y + dt z_n, a_n = V u_n + W y + W_z z + b. State (y, z)."""

    name = "cornn"
    gates = 1
    gate_names: tuple[str, ...] = ("a",)
    n_states = 2
    additive = True  # the step uses gi and gh only through gi + gh
    recurrence = CoupledRecurrence()
    # dt, gamma, eps are floats multiplying the exact scalars: the oracles run at 50 digits (mpmath)
    rational = False

    def __init__(
        self,
        activation: str | Activation = "tanh",
        dt: float = DEFAULT_DT,
        gamma: float = DEFAULT_GAMMA,
        epsilon: float = DEFAULT_EPSILON,
    ) -> None:
        self.activation = get_activation(activation)
        self.dt = check_real(dt, "dt", positive=True)
        self.gamma = check_real(gamma, "gamma", minimum=0.0)
        self.epsilon = check_real(epsilon, "epsilon", minimum=0.0)

    @property
    def hyperparameters(self) -> dict[str, float]:
        """The model keyword arguments that rebuild this cell (read by ``from_torch`` on the twin)."""
        return {"dt": self.dt, "gamma": self.gamma, "epsilon": self.epsilon}

    def step(self, gi, gh, state):
        y_prev, z_prev = state
        a = gi + gh
        s = self.activation.phi(a)
        z = z_prev + self.dt * (s - self.gamma * y_prev - self.epsilon * z_prev)
        y = y_prev + self.dt * z
        return (y, z), (a, s)

    def step_backward(self, d_state, cache):
        a, s = cache
        dy, dz = d_state
        dz = dz + self.dt * dy  # z_n also reaches the loss through y_n = y_{n-1} + dt z_n
        da = (self.dt * dz) * self.activation.grad(a, s)
        return da, da, (dy - (self.dt * self.gamma) * dz, (1.0 - self.dt * self.epsilon) * dz)

    def step_jacobian(self, cache, W_hh):
        r"""Joint Jacobian of (y_n, z_n) with respect to (y_{n-1}, z_{n-1}): (B, 2H, 2H)."""
        a, s = cache
        H = a.shape[-1]
        dt_d = (self.dt * self.activation.grad(a, s))[:, :, None]
        idx = np.arange(H)
        dz_dy = dt_d * W_hh[:, :H]
        dz_dy[:, idx, idx] -= self.dt * self.gamma
        dz_dz = dt_d * W_hh[:, H:]
        dz_dz[:, idx, idx] += 1.0 - self.dt * self.epsilon
        dy_dy = self.dt * dz_dy
        dy_dy[:, idx, idx] += 1.0
        top = np.concatenate([dy_dy, self.dt * dz_dz], axis=2)
        bottom = np.concatenate([dz_dy, dz_dz], axis=2)
        return np.concatenate([top, bottom], axis=1)

    def equations(self, gi: list, gh: list, prev: tuple, ops: Any) -> tuple[tuple[list, ...], dict]:
        """Independent scalar form (oracles, SymPy): z_k, then y_k from the new z_k."""
        y_prev, z_prev = prev
        sig = [ops.phi(p + q) for p, q in zip(gi, gh)]
        z = [zp + (f - yp * self.gamma - zp * self.epsilon) * self.dt for f, yp, zp in zip(sig, y_prev, z_prev)]
        y = [yp + zn * self.dt for yp, zn in zip(y_prev, z)]
        return (y, z), {"sigma": sig}

    def torch_step(self, gi: Any, gh: Any, state: tuple) -> tuple:
        """The step in torch operations (the torch twin), in the reference's order."""
        y_prev, z_prev = state
        s = torch_activation(self.activation.name)(gi + gh)
        z = z_prev + self.dt * (s - self.gamma * y_prev - self.epsilon * z_prev)
        return (y_prev + self.dt * z, z)


class CoRNN(RecurrentModel):
    r"""coRNN (Rusch & Mishra 2021): :math:`z_n = z_{n-1} + \Delta t(\sigma(W y_{n-1} + W_z z_{n-1} + V u_n
    + b) - \gamma y_{n-1} - \varepsilon z_{n-1})`, :math:`y_n = y_{n-1} + \Delta t z_n`.

    The state is ``(y, z)``: ``h0`` is a tuple ``(y0, z0)``, ``h_n``/``c_n`` of the forward are
    :math:`y_N`/:math:`z_N`, ``output`` holds :math:`y_n`. ``weight_hh_l0`` is :math:`[W \mid W_z]`.

    Parameters
    ----------
    input_size, hidden_size, num_layers
        As ``torch.nn.RNN`` (a layer above the first reads the :math:`y_n` of the layer below).
    nonlinearity : str, optional
        :math:`\sigma`: ``tanh`` (the reference's, default), ``relu``, ``sigmoid`` or ``identity``.
    dt : float
        Time step :math:`\Delta t > 0` (default 0.042).
    gamma : float
        Stiffness :math:`\gamma \ge 0` (default 2.7).
    epsilon : float
        Damping :math:`\varepsilon \ge 0` (default 4.7).
    **kwargs
        ``bias``, ``batch_first``, ``bidirectional``, ``params``, ``seed`` as :class:`RecurrentModel`.

    Raises
    ------
    TypeError, ValueError
        For hyperparameters that are not finite reals, ``dt <= 0``, ``gamma < 0`` or ``epsilon < 0``.
    """

    mode = "coRNN"
    cell_class = CoRNNCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str | None = None,
        *,
        dt: float = DEFAULT_DT,
        gamma: float = DEFAULT_GAMMA,
        epsilon: float = DEFAULT_EPSILON,
        **kwargs: Any,
    ) -> None:
        self.nonlinearity = get_activation("tanh" if nonlinearity is None else nonlinearity).name
        cell = CoRNNCell(self.nonlinearity, dt, gamma, epsilon)
        self.dt, self.gamma, self.epsilon = cell.dt, cell.gamma, cell.epsilon
        super().__init__(input_size, hidden_size, num_layers, cell=cell, **kwargs)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", dt={self.dt!r}, gamma={self.gamma!r}, epsilon={self.epsilon!r})"


def derive() -> Any:
    r"""The coRNN derivation (``proofs/cornn.tex``): the one-step Jacobian of the cell's own
    equations, its determinant, the linear part :math:`A` that acts on each unit, the
    characteristic polynomial of :math:`A` (and of the fixed point's Jacobian), the sharp bound on
    the hidden states and the row-sum bound on the Jacobian."""
    import sympy as sp

    from ..symbolic.notation import Derivation, M, Step, assert_zero, cell_equations, eq, le, text

    H = 2
    phi = sp.Function("phi")
    dt, gam, eps = sp.symbols(r"\Delta{t} \gamma \varepsilon", positive=True)
    yp = sp.Matrix(sp.symbols(f"y0:{H}", real=True))
    zp = sp.Matrix(sp.symbols(f"z0:{H}", real=True))
    w = sp.Matrix(sp.symbols(f"w0:{H}", real=True))  # V u_n + b_ih + b_hh
    W = sp.Matrix(H, H, sp.symbols(f"W0:{H * H}", real=True))
    Wz = sp.Matrix(H, H, sp.symbols(f"Wz0:{H * H}", real=True))
    cell = CoRNNCell("tanh")
    cell.dt, cell.gamma, cell.epsilon = dt, gam, eps  # symbolic hyperparameters for the derivation
    W_hh = W.row_join(Wz)
    gh = sp.Matrix(cell.recurrence.exact(W_hh.tolist(), list(yp) + list(zp)))
    (y, z), _ = cell_equations(cell, w, gh, (yp, zp), activation=phi)  # the cell's own equations
    s, sp_ = sp.Matrix.vstack(y, z), sp.Matrix.vstack(yp, zp)
    J = s.jacobian(sp_)
    a = w + W * yp + Wz * zp
    x_ = sp.Symbol("_x")
    D = sp.diag(*[sp.Derivative(phi(x_), x_).subs(x_, a[n]) for n in range(H)])
    I2 = sp.eye(H)
    Jzy = dt * (D * W - gam * I2)
    Jzz = (1 - dt * eps) * I2 + dt * D * Wz
    J_formula = sp.Matrix.vstack((I2 + dt * Jzy).row_join(dt * Jzz), Jzy.row_join(Jzz))
    assert_zero(J - J_formula, "coRNN Jacobian - [[I + dt Jzy, dt Jzz], [Jzy, Jzz]] (H = 2)")
    # det J = det(J_zz): L J = [[I, 0], [J_zy, J_zz]] with L = [[I, -dt I], [0, I]] (det L = 1), a
    # block lower-triangular matrix (the z rows times dt subtracted from the y rows)
    L = sp.Matrix.vstack(I2.row_join(-dt * I2), sp.zeros(H).row_join(I2))
    lower = sp.Matrix.vstack(I2.row_join(sp.zeros(H)), Jzy.row_join(Jzz))
    assert_zero(L * J - lower, "[[I, -dt I], [0, I]] J - [[I, 0], [J_zy, J_zz]] (H = 2)")
    # the linear part: with W = W_z = 0, s_n = (A (x) I) s_{n-1} + dt sigma(a_n) (x) b, per unit
    A = sp.Matrix([[1 - dt**2 * gam, dt * (1 - dt * eps)], [-dt * gam, 1 - dt * eps]])
    b = sp.Matrix([dt, 1])
    sig0 = sp.Symbol(r"\sigma_0", real=True)
    zero = {**{e: 0 for e in W}, **{e: 0 for e in Wz}}
    lin = s.subs(zero).subs(phi(w[0]), sig0)
    assert_zero(
        sp.expand(sp.Matrix([lin[0], lin[H]]) - (A * sp.Matrix([yp[0], zp[0]]) + dt * sig0 * b)),
        "unit 0 of the coRNN step at W = W_z = 0: A (y, z) + dt sigma b",
    )
    lam = sp.Symbol(r"\lambda")
    p = sp.expand(A.charpoly(lam).as_expr())
    assert_zero(p - (lam**2 - (2 - dt * eps - dt**2 * gam) * lam + (1 - dt * eps)), "charpoly of A")
    assert_zero(sp.expand(p.subs(lam, 1) - dt**2 * gam), "p_A(1) = dt^2 gamma")
    assert_zero(sp.expand(p.subs(lam, -1) - (4 - 2 * dt * eps - dt**2 * gam)), "p_A(-1)")
    # the fixed point y = z = 0 of a scalar unit (u = 0, b = 0, sigma(0) = 0, sigma'(0) = 1), W = w, W_z = 0
    wsc = sp.Symbol("w", real=True)
    J0 = sp.Matrix([[1 + dt**2 * (wsc - gam), dt * (1 - dt * eps)], [dt * (wsc - gam), 1 - dt * eps]])
    p0 = sp.expand(J0.charpoly(lam).as_expr())
    assert_zero(sp.expand(p0.subs(lam, 1) + dt**2 * (wsc - gam)), "p_J0(1) = -dt^2 (w - gamma)")

    n, k = sp.symbols("n k", integer=True, nonnegative=True)
    steps = (
        Step(
            eq(
                M("z_n"),
                text(
                    r"z_{n-1} + \Delta t\,\bigl(\sigma(W y_{n-1} + W_z z_{n-1} + V u_n + b) - \gamma y_{n-1} - \varepsilon z_{n-1}\bigr)"
                ),
            ),
            r"coRNN step (Rusch and Mishra, ICLR 2021), in the order of the reference implementation "
            r"(\texttt{coRNNCell.forward}): $z$ first, from the old $(y, z)$; then $y_n = y_{n-1} + \Delta t\, z_n$. "
            r"\texttt{weight\_hh} is $[W \mid W_z]$, \texttt{weight\_ih} is $V$.",
        ),
        Step(
            eq(
                text(r"\frac{\partial (y_n, z_n)}{\partial (y_{n-1}, z_{n-1})}"),
                text(
                    r"\begin{pmatrix} I + \Delta t J_{zy} & \Delta t J_{zz} \\ J_{zy} & J_{zz}\end{pmatrix},\ "
                    r"J_{zy} = \Delta t(DW - \gamma I),\ J_{zz} = (1 - \Delta t\varepsilon) I + \Delta t D W_z"
                ),
            ),
            r"SymPy's Jacobian of the cell's own equations ($H = 2$, generic $\sigma$, symbolic "
            r"$\Delta t, \gamma, \varepsilon$), $D = \operatorname{diag}(\sigma'(a_n))$.",
        ),
        Step(
            eq(
                text(r"\det \frac{\partial (y_n, z_n)}{\partial (y_{n-1}, z_{n-1})}"),
                text(r"\det\bigl((1 - \Delta t\varepsilon) I + \Delta t D W_z\bigr)"),
            ),
            r"Subtract $\Delta t$ times the $z$ rows from the $y$ rows (SymPy, $H = 2$). For $W_z = 0$ it is "
            r"$(1 - \Delta t\varepsilon)^m$ whatever $W$, the input and $\sigma$: the product of the singular values of "
            r"$\partial s_n/\partial s_k$ is $(1 - \Delta t\varepsilon)^{m(n-k)}$, so its smallest singular value is at most "
            r"$(1 - \Delta t\varepsilon)^{(n-k)/2} \le e^{-\varepsilon (t_n - t_k)/2}$.",
        ),
        Step(
            eq(
                text(r"(y_n^i, z_n^i)"),
                text(
                    r"A\,(y_{n-1}^i, z_{n-1}^i) + \Delta t\,\sigma_n^i\, b,\ "
                    r"A = \begin{pmatrix} 1 - \Delta t^2\gamma & \Delta t(1 - \Delta t\varepsilon) \\ -\Delta t\gamma & 1 - \Delta t\varepsilon\end{pmatrix},\ b = (\Delta t, 1)"
                ),
            ),
            r"Each unit $i$ is a linear system driven by $\sigma_n^i = \sigma(a_n)_i$: the weights enter only through "
            r"$a_n$ (SymPy, unit 0 at $W = W_z = 0$; the step is linear in $(y, z, \sigma)$).",
        ),
        Step(
            eq(
                text(r"p_A(\lambda)"),
                text(r"\lambda^2 - (2 - \Delta t\varepsilon - \Delta t^2\gamma)\lambda + 1 - \Delta t\varepsilon"),
            ),
            r"$p_A(1) = \Delta t^2\gamma$, $p_A(-1) = 4 - 2\Delta t\varepsilon - \Delta t^2\gamma$, $\det A = 1 - \Delta t\varepsilon$: "
            r"by Jury's conditions $\rho(A) < 1$ exactly when $\gamma > 0$, $0 < \Delta t\varepsilon < 2$ and "
            r"$2\Delta t\varepsilon + \Delta t^2\gamma < 4$.",
        ),
        Step(
            le(
                text(r"|y_n^i|"),
                text(r"|(A^n s_0^i)_1| + \Delta t \sum_{k=0}^{n-1} |(A^k b)_1| =: Y_n"),
            ),
            r"From Step 4 with $|\sigma| \le 1$ ($\tanh$): $y_n^i = (A^n s_0^i)_1 + \Delta t\sum_k \sigma^i_{n-k} (A^k b)_1$. "
            r"The bound is sharp (attained by $\sigma^i_{n-k} = \operatorname{sign}(A^k b)_1$, e.g. identity $\sigma$, "
            r"$W = W_z = 0$ and $\pm 1$ inputs), the same with index 2 bounds $|z_n^i|$, and for $\rho(A) < 1$ "
            r"the sums converge: the hidden states are bounded uniformly in $n$, independently of the weights.",
        ),
        Step(
            eq(text(r"p_{J_0}(1)"), -(dt**2) * (wsc - gam)),
            r"At the fixed point $y = z = 0$ of a unit with $u = 0$, $b = 0$, $\sigma'(0) = 1$, $W = w$, $W_z = 0$: "
            r"for $w > \gamma$ the Jacobian has a real eigenvalue above 1 and $\|\partial s_n/\partial s_0\|$ grows "
            r"exponentially in $n$, however small $\Delta t$ is.",
        ),
        Step(
            le(
                text(r"\left\|\frac{\partial s_n}{\partial s_{n-1}}\right\|_\infty"),
                text(
                    r"1 + \Delta t\,\Gamma,\ \Gamma = \max(c, 1 + \Delta t c),\ c = \gamma + \|W\|_\infty + \|W_z\|_\infty - \varepsilon"
                ),
            ),
            r"Row sums of Step 2 with $0 \le \sigma' \le 1$ and $\Delta t\varepsilon \le 1$ ($\infty$-norm). Hence "
            r"$\|\partial s_n/\partial s_k\|_\infty \le (1 + \Delta t\Gamma)^{n-k} \le e^{\Gamma (t_n - t_k)}$: "
            r"bounded on a horizon of physical time $t_n - t_k = (n - k)\Delta t$, not uniformly in $n - k$.",
        ),
    )
    return Derivation(
        name="cornn",
        title="coRNN: the IMEX oscillator step, its Jacobian and its bounds",
        intro=(
            r"The coupled oscillatory RNN (Rusch and Mishra, ICLR 2021) discretises a network of damped "
            r"oscillators $y'' = \sigma(Wy + W_z y' + Vu + b) - \gamma y - \varepsilon y'$ with a step in which "
            r"the position $y$ is updated from the new velocity $z$. The joint state is $s = (y, z)$. "
            r"The paper's text could not be read here: the step is the authors' reference implementation "
            r"(\texttt{coRNNCell.forward}, github.com/tk-rusch/coRNN), whose damping acts on the old $z$. "
            r"The audit's coRNN claims use the Jacobian, its determinant, the linear part $A$ acting on "
            r"each unit and the bounds derived here; the checks compare them with \texttt{CoRNN.jacobians} "
            r"and BPTT."
        ),
        steps=steps,
        result={
            "jacobian": J,
            "phi": phi,
            "symbols": (dt, gam, eps),
            "A": A,
            "b": b,
            "charpoly_A": p,
            "fixed_point_charpoly": (p0, wsc),
            "lambda": lam,
            "n": (n, k),
        },
        source="gradtheory/cells/cornn.py",
    )


SPEC = CellSpec(
    "cornn",
    CoRNNCell,
    CoRNN,
    nonlinearities=("tanh", "relu", "sigmoid", "identity"),
    derivation=derive,
)
