r"""Orthogonal RNN in the expRNN parametrization (Arjovsky, Shah & Bengio 2016; Lezcano-Casado &
Martinez-Rubio 2019): an Elman cell whose recurrent matrix is the exponential of a skew matrix.

.. math::
    W_{hh} = \exp(S), \quad S = A - A^\top, \qquad
    h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(\phi'(a_t))\, W_{hh}, \qquad
    \frac{\partial L}{\partial A} = D - D^\top, \quad D = L_{\exp}(S^\top, G)

with :math:`G = \partial L/\partial W_{hh}` (the Elman BPTT gradient) and :math:`L_{\exp}(X, E)` the
Fréchet derivative of the exponential at :math:`X` in direction :math:`E`: the adjoint of
:math:`E \mapsto L_{\exp}(S, E)` under :math:`\langle X, Y\rangle = \operatorname{tr}(X^\top Y)`
is :math:`G \mapsto L_{\exp}(S^\top, G)` (``proofs/orthogonal.tex``), computed as the upper right
block of :math:`\exp\begin{pmatrix} S^\top & G \\ 0 & S^\top\end{pmatrix}`.

The free parameter is stored under torch's parametrization name
``parametrizations.weight_hh_l0.original`` (what ``torch.nn.utils.parametrize`` calls it); the
torch twin registers :class:`ExpSkew`'s torch module on ``weight_hh`` (scaling and squaring with a
Taylor polynomial in torch operations, not ``torch.linalg.matrix_exp``: see :func:`_torch_expm`).
Since :math:`\exp(S)^\top\exp(S) = \exp(-S)\exp(S) = I`, :math:`\|W_{hh}\|_2 = 1`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np

from ..models.compose import ActivationModel, parametrized_name
from ._base import CellSpec, torch_activation
from .rnn import ElmanCell

__all__ = ["SPEC", "ExpSkew", "OrthogonalCell", "OrthogonalRNN", "derive", "expm", "expm_frechet_adjoint"]


def expm(X: np.ndarray) -> np.ndarray:
    """The matrix exponential (scipy's scaling and squaring with Pade approximants; real or complex:
    a rational function of X with squarings, so it extends analytically and the complex step holds)."""
    import scipy.linalg

    return scipy.linalg.expm(X)


def expm_frechet_adjoint(S: np.ndarray, G: np.ndarray) -> np.ndarray:
    r"""The adjoint of the Fréchet derivative of ``expm`` at ``S`` applied to ``G``: the matrix
    :math:`D` with :math:`\langle D, E\rangle = \langle G, L_{\exp}(S, E)\rangle` for every ``E``,
    i.e. :math:`D = L_{\exp}(S^\top, G)`, the upper right block of ``expm([[S^T, G], [0, S^T]])``."""
    n = S.shape[0]
    block = np.zeros((2 * n, 2 * n), dtype=np.result_type(S, G))
    block[:n, :n] = S.T
    block[n:, n:] = S.T
    block[:n, n:] = G
    return expm(block)[:n, n:]


class ExpSkew:
    r"""The expRNN parametrization :math:`W = \exp(A - A^\top)` (orthogonal, determinant 1)."""

    def forward(self, value: np.ndarray) -> np.ndarray:
        return expm(value - value.T)

    def vjp(self, value: np.ndarray, d_weight: np.ndarray) -> np.ndarray:
        D = expm_frechet_adjoint(value - value.T, d_weight)
        return D - D.T

    def torch_module(self) -> Any:
        import torch

        class _ExpSkew(torch.nn.Module):
            def forward(self, A):
                return _torch_expm(A - A.T)

        return _ExpSkew()


# torch.linalg.matrix_exp (torch 2.13, float64) is off by 3.5e-11 for the 2x2 rotation generator
# with angle 0.034 (exact: cos/sin; scipy's expm: exact to the last bit): it picks a low-degree
# Taylor polynomial from thresholds that do not reach float64's unit round-off. The twin is the
# oracle of a 1e-12 forward comparison, so it computes exp(S) itself, independently of scipy's Pade:
# scaling and squaring with a degree-18 Taylor polynomial. With ||S / 2^s||_1 <= 1/2 the truncation
# error is <= (1/2)^19 / 19! < 1e-22 (relative, far below u); each of the s squarings of an
# orthogonal matrix adds ~n u. Autograd differentiates it as written.
_TAYLOR_DEGREE = 18
_SCALED_NORM = 0.5


def _torch_expm(S: Any) -> Any:
    import torch

    norm = float(torch.linalg.matrix_norm(S.detach(), ord=1)) if S.numel() else 0.0
    s = max(0, int(np.ceil(np.log2(norm / _SCALED_NORM)))) if norm > _SCALED_NORM else 0
    X = S / 2.0**s
    eye = torch.eye(S.shape[-1], dtype=S.dtype)
    E, term = eye, eye
    for k in range(1, _TAYLOR_DEGREE + 1):
        term = term @ X / k
        E = E + term
    for _ in range(s):
        E = E @ E
    return E


class OrthogonalCell(ElmanCell):
    """The Elman step (the recurrent matrix arrives already formed as expm(A - A^T)). State: (h,)."""

    name = "orthogonal"

    def torch_step(self, gi: Any, gh: Any, state: tuple) -> tuple:
        """The step in torch operations (the torch twin; gh = W_hh h_{t-1} + b_hh)."""
        return (torch_activation(self.activation.name)(gi + gh),)


class OrthogonalRNN(ActivationModel):
    r"""Elman RNN with :math:`W_{hh} = \exp(A - A^\top)` (expRNN); the gradient is taken with respect to :math:`A`.

    Parameters are torch's: ``weight_ih_l{k}``, biases, and ``parametrizations.weight_hh_l{k}.original``
    (the free matrix :math:`A`, shape (H, H)). ``nonlinearity``: ``tanh`` (default), ``relu``,
    ``sigmoid``, ``identity`` (expRNN uses modrelu; not provided).
    """

    mode = "OrthogonalRNN"
    cell_class = OrthogonalCell
    parametrizations = MappingProxyType({"weight_hh": ExpSkew()})

    def unparametrized(self) -> Any:
        """The Elman :class:`~gradtheory.RNN` with ``weight_hh = expm(A - A^T)``: same outputs; its
        gradients are those with respect to ``W_hh`` itself."""
        from .rnn import RNN

        params = {}
        for k, v in self.params.items():
            if k.startswith("parametrizations."):
                weight = k[len("parametrizations.") : -len(".original")]
                params[weight] = self.parametrizations["weight_hh"].forward(v)
            else:
                params[k] = v
        kw = dict(bias=self.bias, batch_first=self.batch_first, bidirectional=self.bidirectional)
        model = RNN(
            self.input_size, self.hidden_size, self.num_layers, nonlinearity=self.nonlinearity, params=params, **kw
        )
        assert parametrized_name("weight_hh_l0") in self.params
        return model


def derive() -> Any:
    r"""The OrthogonalRNN derivation (``proofs/orthogonal.tex``): the Elman Jacobian with an
    orthogonal :math:`W_{hh}`, its singular values, and the adjoint of the Fréchet derivative of
    the exponential (checked term by term on the power series, 2x2 symbolic matrices)."""
    import sympy as sp

    from ..symbolic.notation import Derivation, M, Norm, Partial, Step, assert_zero, cell_equations, eq, le, text

    H = 2
    phi = sp.Function("phi")
    hp = sp.Matrix(sp.symbols(f"h0:{H}", real=True))
    w = sp.Matrix(sp.symbols(f"w0:{H}", real=True))
    W = sp.Matrix(H, H, sp.symbols(f"W0:{H * H}", real=True))
    (h,), _ = cell_equations(OrthogonalCell("tanh"), w, W * hp, (hp,), activation=phi)
    J = h.jacobian(hp)
    z = sp.Symbol("_z")
    a = w + W * hp
    D = sp.diag(*[sp.Derivative(phi(z), z).subs(z, a[n]) for n in range(H)])
    assert_zero(J - D * W, "OrthogonalRNN Jacobian - diag(phi') W_hh (H = 2)")
    # exp of a 2x2 skew matrix is a rotation: orthogonal
    th = sp.Symbol(r"\theta", real=True)
    # exp(theta K), K = [[0, 1], [-1, 0]], is the rotation R: R(0) = I and R' = K R (ODE uniqueness)
    K = sp.Matrix([[0, 1], [-1, 0]])
    R = sp.Matrix([[sp.cos(th), sp.sin(th)], [-sp.sin(th), sp.cos(th)]])
    assert_zero(R.subs(th, 0) - sp.eye(2), "R(0) - I")
    assert_zero(R.diff(th) - K * R, "R' - K R")
    assert_zero(sp.trigsimp(R.T * R - sp.eye(2)), "exp(S)^T exp(S) - I (2x2)")
    # singular values of diag(d) R are |d|: (D R)^T (D R) = R^T D^2 R, similar to D^2
    d0, d1 = sp.symbols("d0 d1", positive=True)
    Dd = sp.diag(d0, d1)
    C = (Dd * R).T * (Dd * R)  # 2x2: its characteristic polynomial is lam^2 - tr C lam + det C
    assert_zero(sp.trigsimp(sp.expand(C.trace() - (d0**2 + d1**2))), "tr (D R)^T (D R) - (d0^2 + d1^2)")
    assert_zero(sp.trigsimp(sp.expand(C.det() - d0**2 * d1**2)), "det (D R)^T (D R) - d0^2 d1^2")
    # Frechet derivative of X^k: sum_j X^j E X^{k-1-j}; its adjoint under tr(A^T B) is the same sum
    # at X^T applied to G (term by term, k <= 4), and the block-triangular power's upper right block
    X = sp.Matrix(2, 2, sp.symbols("x0:4", real=True))
    E = sp.Matrix(2, 2, sp.symbols("e0:4", real=True))
    G = sp.Matrix(2, 2, sp.symbols("g0:4", real=True))
    for k in range(1, 5):
        L = sum((X**j * E * X ** (k - 1 - j) for j in range(k)), sp.zeros(2, 2))
        Ladj = sum(((X.T) ** j * G * (X.T) ** (k - 1 - j) for j in range(k)), sp.zeros(2, 2))
        assert_zero(sp.expand((G.T * L).trace() - (Ladj.T * E).trace()), f"<G, L_k(X, E)> - <L_k(X^T, G), E>, k = {k}")
        B = sp.Matrix(sp.BlockMatrix([[X, E], [sp.zeros(2, 2), X]]))
        assert_zero(sp.expand((B**k)[:2, 2:] - L), f"upper right block of [[X, E], [0, X]]^{k} - L_k(X, E)")
    # S = A - A^T: d<D, S>/dA = D - D^T
    A = sp.Matrix(2, 2, sp.symbols("a0:4", real=True))
    Dm = sp.Matrix(2, 2, sp.symbols("D0:4", real=True))
    pairing = (Dm.T * (A - A.T)).trace()
    grad = sp.Matrix(2, 2, lambda i, j: sp.diff(pairing, A[i, j]))
    assert_zero(grad - (Dm - Dm.T), "d<D, A - A^T>/dA - (D - D^T)")

    ht, hprev = M("h_t"), M("h_{t-1}")
    steps = (
        Step(
            eq(M("W_{hh}"), text(r"\exp(A - A^\top)")),
            r"expRNN (Lezcano-Casado and Mart\'inez-Rubio, 2019): the free parameter is $A$ "
            r"(\texttt{parametrizations.weight\_hh\_l0.original}); the step is Elman's.",
        ),
        Step(
            eq(text(r"W_{hh}^\top W_{hh}"), text(r"\exp(-S)\exp(S) = I")),
            r"$S = A - A^\top$ commutes with $-S = S^\top$; for $H = 2$ SymPy gives the rotation by $\theta$.",
        ),
        Step(
            eq(Partial(ht, hprev), text(r"\operatorname{diag}(\phi'(a_t))\, W_{hh}")),
            r"SymPy's Jacobian of the cell's own equations ($H = 2$, generic $\phi$).",
        ),
        Step(
            eq(text(r"\sigma(\operatorname{diag}(d)\, W_{hh})"), text(r"\{|d_i|\}")),
            r"$(DW)^\top DW = W^\top D^2 W$ is similar to $D^2$ (SymPy, $H = 2$).",
        ),
        Step(
            le(text(r"\textstyle\prod_{j=k+1}^{t} \min_i \phi'(a_{j,i})"), Norm(Partial(ht, M("h_k")))),
            r"Submultiplicativity of the largest and the smallest singular value.",
            chain=((r"\leq", text(r"\textstyle\prod_{j=k+1}^{t} \max_i \phi'(a_{j,i}) \leq 1")),),
        ),
        Step(
            eq(text(r"\langle G, L_{\exp}(S, E)\rangle"), text(r"\langle L_{\exp}(S^\top, G), E\rangle")),
            r"The Fréchet derivative of $X^k$ is $\sum_j X^j E X^{k-1-j}$; its adjoint under "
            r"$\operatorname{tr}(X^\top Y)$ is the same sum at $X^\top$ applied to $G$ (SymPy, $k \le 4$); sum over the series.",
        ),
        Step(
            eq(text(r"L_{\exp}(X, E)"), text(r"\bigl[\exp\begin{pmatrix} X & E \\ 0 & X\end{pmatrix}\bigr]_{12}")),
            r"The upper right block of the $k$-th power is $\sum_j X^j E X^{k-1-j}$ (SymPy, $k \le 4$).",
        ),
        Step(
            eq(Partial(M("L"), M("A")), text(r"D - D^\top, \quad D = L_{\exp}(S^\top, \partial L/\partial W_{hh})")),
            r"Chain rule through $S = A - A^\top$ (SymPy: $\partial\langle D, A - A^\top\rangle/\partial A = D - D^\top$).",
        ),
    )
    return Derivation(
        name="orthogonal",
        title="Orthogonal RNN (expRNN): orthogonal recurrence and the gradient with respect to A",
        intro=(
            r"An orthogonal $W_{hh}$ (Arjovsky, Shah and Bengio, 2016) has every singular value 1, so the "
            r"one-step Jacobian $\operatorname{diag}(\phi'(a_t))W_{hh}$ has singular values $|\phi'(a_{t,i})|$: "
            r"the recurrence cannot explode, and only the activation's saturation can make the gradient "
            r"vanish. expRNN keeps $W_{hh}$ orthogonal by the parametrization $W_{hh} = \exp(A - A^\top)$; "
            r"the gradient with respect to $A$ is the adjoint of the Fréchet derivative of the exponential."
        ),
        steps=steps,
        result={"jacobian": J, "phi": phi},
        source="gradtheory/cells/orthogonal.py",
    )


SPEC = CellSpec(
    "orthogonal",
    OrthogonalCell,
    OrthogonalRNN,
    nonlinearities=("tanh", "relu", "sigmoid", "identity"),
    derivation=derive,
)
