r"""IndRNN cell (Li, Li, Cook, Zhu & Gao, 2018): an elementwise recurrence, one weight per neuron.

.. math::
    a_t = W_{ih} x_t + b_{ih} + u \odot h_{t-1} + b_{hh}, \qquad h_t = \phi(a_t)

    \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(\phi'(a_t) \odot u)

``weight_hh_l0`` is the vector ``u`` of shape (H,) (the cell's recurrence is
:data:`~gradtheory.cells.DIAGONAL`). The Jacobians are diagonal, so they commute and each neuron
carries its own gradient: :math:`\partial h_{t,n}/\partial h_{k,n} = u_n^{t-k}\prod_{j=k+1}^t
\phi'(a_{j,n})`. Derived in ``proofs/indrnn.tex`` (by :func:`derive` below), with the paper's
range for :math:`|u_n|` that keeps that product within :math:`[\varepsilon, \Gamma]`. The paper
uses relu, the default here. Twin: the torch twin built from :meth:`IndRNNCell.torch_step`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.activations import Activation
from ..models.compose import ActivationModel
from ._base import DIAGONAL, CellSpec, torch_activation
from .rnn import ElmanCell

__all__ = ["SPEC", "IndRNN", "IndRNNCell", "derive"]


class IndRNNCell(ElmanCell):
    """h_t = phi(W_ih x_t + b_ih + u * h_{t-1} + b_hh). Gates: 1; state: (h,); weight_hh: u (H,).

    The step and its backward are the Elman cell's (phi of gi + gh; the scan pulls da back through u
    elementwise to h_{t-1}); the recurrence, the default activation and the Jacobian differ."""

    name = "indrnn"
    recurrence = DIAGONAL

    def __init__(self, activation: str | Activation = "relu"):
        super().__init__(activation)

    def step_jacobian(self, cache, W_hh):
        """diag(phi'(a_t) * u): (B, H, H), zero off the diagonal."""
        a, h = cache
        d = self.activation.grad(a, h) * W_hh
        J = np.zeros(d.shape + d.shape[-1:], dtype=d.dtype)
        idx = np.arange(d.shape[-1])
        J[:, idx, idx] = d
        return J

    def torch_step(self, gi: Any, gh: Any, state: tuple) -> tuple:
        """The step in torch operations (the torch twin; gh = u * h_{t-1} + b_hh)."""
        return (torch_activation(self.activation.name)(gi + gh),)


class IndRNN(ActivationModel):
    r"""Independently recurrent network :math:`h_t = \phi(W_{ih}x_t + b_{ih} + u\odot h_{t-1} + b_{hh})`.

    ``weight_hh_l{k}`` has shape (H,). ``nonlinearity`` defaults to relu (the paper's choice).
    """

    mode = "IndRNN"
    cell_class = IndRNNCell
    default_nonlinearity = "relu"


def derive() -> Any:
    """The IndRNN derivation (``proofs/indrnn.tex``): diagonal Jacobian, per-neuron products, the
    range of :math:`|u_n|` for neither vanishing nor exploding (Li et al. 2018, Sec. 3.1)."""
    import sympy as sp

    from ..symbolic.notation import (
        Derivation,
        Diag,
        M,
        Norm,
        OrderedProduct,
        Partial,
        Step,
        assert_zero,
        cell_equations,
        eq,
        le,
        text,
    )

    H = 2
    phi = sp.Function("phi")
    hp = sp.Matrix(sp.symbols(f"h0:{H}", real=True))
    u = sp.Matrix(sp.symbols(f"u0:{H}", real=True))
    w = sp.Matrix(sp.symbols(f"w0:{H}", real=True))  # W_ih x_t + b_ih + b_hh
    gh = sp.Matrix(DIAGONAL.exact(list(u), list(hp)))
    (h,), _ = cell_equations(IndRNNCell(), w, gh, (hp,), activation=phi)  # the cell's own equations
    J = h.jacobian(hp)
    z = sp.Symbol("_z")
    dphi = [sp.Derivative(phi(z), z).subs(z, w[n] + u[n] * hp[n]) for n in range(H)]
    assert_zero(J - sp.diag(*[dphi[n] * u[n] for n in range(H)]), "IndRNN Jacobian - diag(phi'(a) u) (H = 2)")
    # three steps: diagonal factors commute, and their product is the per-neuron product
    p = sp.Matrix(3, H, sp.symbols(f"p0:{3 * H}", positive=True))  # phi'(a_{j,n})
    factors = [sp.diag(*[p[j, n] * u[n] for n in range(H)]) for j in range(3)]
    prod = factors[2] * factors[1] * factors[0]
    assert_zero(prod - factors[0] * factors[1] * factors[2], "diagonal Jacobians commute (H = 2)")
    assert_zero(
        prod - sp.diag(*[u[n] ** 3 * p[0, n] * p[1, n] * p[2, n] for n in range(H)]),
        "product of three IndRNN Jacobians - diag(u_n^3 prod_j phi'(a_{j,n})) (H = 2)",
    )
    # the paper's range: eps <= |u|^m P <= Gamma  <=>  (eps/P)^(1/m) <= |u| <= (Gamma/P)^(1/m)
    eps, Gam, P, m, U = sp.symbols(r"\varepsilon \Gamma P_n m U", positive=True)  # U stands for |u_n|
    abs_u = sp.Abs(sp.Symbol("u_n", real=True))
    lo, hi = (eps / P) ** (1 / m), (Gam / P) ** (1 / m)
    assert_zero(lo**m * P - eps, "|u| = (eps/P)^(1/m) gives |u|^m P = eps")
    assert_zero(hi**m * P - Gam, "|u| = (Gamma/P)^(1/m) gives |u|^m P = Gamma")
    assert sp.diff(U**m * P, U).is_positive, "|u|^m P increases with |u|: the range is exact"

    t, k, j = sp.symbols("t k j", integer=True)
    ht, hprev = M("h_t"), M("h_{t-1}")
    gain = text(r"u_n^{t-k} \textstyle\prod_{j=k+1}^{t} \phi'(a_{j,n})")
    steps = (
        Step(
            eq(ht, text(r"\phi(W_{ih} x_t + b_{ih} + u \odot h_{t-1} + b_{hh})")),
            r"IndRNN step; \texttt{weight\_hh} is the vector $u \in \mathbb{R}^H$ (torch layout otherwise).",
        ),
        Step(
            eq(Partial(ht, hprev), Diag(text(r"\phi'(a_t) \odot u"))),
            r"SymPy's Jacobian of the cell's own equations ($H = 2$, generic $\phi$): no neuron reads another.",
        ),
        Step(
            eq(
                OrderedProduct(Diag(text(r"\phi'(a_j) \odot u")), sp.Tuple(j, k + 1, t)),
                Diag(text(r"\bigl(u_n^{t-k} \textstyle\prod_{j=k+1}^{t} \phi'(a_{j,n})\bigr)_n")),
            ),
            r"Diagonal matrices commute; checked for three steps by expansion ($H = 2$).",
        ),
        Step(
            eq(Partial(M("h_{t,n}"), M("h_{k,n}")), gain),
            r"Each neuron carries its own gradient; $\partial h_{t,n}/\partial h_{k,m} = 0$ for $m \ne n$.",
        ),
        Step(
            eq(Norm(Partial(ht, M("h_k"))), text(r"\max_n |u_n|^{t-k} \textstyle\prod_{j=k+1}^{t} |\phi'(a_{j,n})|")),
            r"The spectral norm of a diagonal matrix is its largest entry in absolute value.",
            chain=((r"\leq", text(r"(\gamma \max_n |u_n|)^{t-k}")),),
        ),
        Step(
            le(eps, sp.Abs(sp.Symbol(r"\partial h_{t,n} / \partial h_{k,n}"))),
            r"Neither vanishing nor exploding over $m = t - k$ steps (Li et al., 2018, Sec.~3.1): the gain stays between the smallest and largest acceptable values $\varepsilon \le \Gamma$.",
            chain=((r"\leq", Gam),),
        ),
        Step(
            le(lo, abs_u),
            r"With $P_n = \prod_{j=k+1}^{t} |\phi'(a_{j,n})| > 0$ and $|u_n|^m P_n$ increasing in $|u_n|$, the condition is exactly this range (SymPy checks both ends).",
            chain=((r"\leq", hi),),
        ),
        Step(
            le(eps ** (1 / m), abs_u),
            r"relu with neuron $n$ active at every step ($P_n = 1$): the paper's range; both ends tend to 1 as $m \to \infty$.",
            chain=((r"\leq", Gam ** (1 / m)),),
        ),
    )
    return Derivation(
        name="indrnn",
        title="IndRNN: diagonal recurrence and per-neuron gradients",
        intro=(
            r"The independently recurrent network (Li, Li, Cook, Zhu and Gao, 2018) replaces $W_{hh}$ by a "
            r"vector $u$: every one-step Jacobian is diagonal, so gradients through time are per-neuron "
            r"products $u_n^{t-k}\prod_j \phi'(a_{j,n})$, and each neuron's recurrent weight alone decides "
            r"whether its gradient vanishes or explodes. The checks compare \texttt{IndRNN.jacobians} with "
            r"these diagonals, \texttt{gradient\_flow} with the per-neuron products, and gradients at the "
            r"ends of the range with $\varepsilon$ and $\Gamma$."
        ),
        steps=steps,
        result={"jacobian": J, "phi": phi, "range": (lo, hi), "symbols": (eps, Gam, P, m)},
        source="gradtheory/cells/indrnn.py",
    )


SPEC = CellSpec("indrnn", IndRNNCell, IndRNN, nonlinearities=("relu", "tanh", "sigmoid", "identity"), derivation=derive)
