r"""The selective diagonal SSM (S6 of Mamba, Gu & Dao 2023): the one-step Jacobian
:math:`\operatorname{diag}(e^{\Delta_t A})`, its limits in :math:`\Delta`, and the products through time
(``gradtheory/cells/selective_ssm.py``)."""

from __future__ import annotations

import sympy as sp

from ._core import Derivation, Diag, M, Norm, Partial, Step, assert_zero, eq, le, text

__all__ = ["derive"]


def derive() -> Derivation:
    z, Alog, Bn, Cn, xd, h = sp.symbols(r"z A_{\log} B_n C_n x_d h", real=True)
    Delta = sp.log(1 + sp.exp(z))  # softplus
    A = -sp.exp(Alog)
    h_new = sp.exp(Delta * A) * h + Delta * Bn * xd
    J = sp.diff(h_new, h)
    assert_zero(J - sp.exp(Delta * A), "dh_t/dh_{t-1} - exp(Delta A)")
    # the factor lies in (0, 1): Delta > 0, A < 0
    d, a = sp.symbols(r"\Delta a", positive=True)  # a = |A|
    factor = sp.exp(-d * a)
    assert factor.is_positive and sp.simplify(sp.log(factor) + d * a) == 0 and (-d * a).is_negative
    assert sp.limit(factor, d, sp.oo) == 0, "large Delta: the state is reset"
    assert sp.limit(factor, d, 0) == 1, "small Delta: the state persists"
    inp = d * sp.Symbol("b") * sp.Symbol("x")
    assert sp.limit(inp, d, 0) == 0, "small Delta: the current input is ignored"
    # softplus' = sigmoid: the backward's dz = dDelta * sigmoid(z)
    assert_zero(sp.simplify(sp.diff(Delta, z) - 1 / (1 + sp.exp(-z))), "softplus' - sigmoid")
    # three steps: the product of the factors (diagonal, so per entry)
    d1, d2, d3, h0 = sp.symbols("Delta_1 Delta_2 Delta_3 h_0", positive=True)
    hh = h0
    for dj in (d1, d2, d3):
        hh = sp.exp(-dj * a) * hh + dj * sp.Symbol(f"v_{dj}")
    assert_zero(sp.diff(hh, h0) - sp.exp(-a * (d1 + d2 + d3)), "dh_3/dh_0 - exp(-|A| (Delta_1+Delta_2+Delta_3))")

    ht, hp = M("h_t"), M("h_{t-1}")
    T, k, t = sp.symbols("T k t", integer=True, positive=True)
    steps = (
        Step(
            eq(ht, text(r"e^{\Delta_t A} \odot h_{t-1} + \Delta_t\, (x_t \otimes B_t)")),
            r"S6 step (Gu and Dao, 2023, Alg.~2, zero-order hold for $A$, Euler for $B$ as in Mamba's code): "
            r"$h_t \in \mathbb{R}^{D\times N}$, $\Delta_t = \operatorname{softplus}(W_\Delta x_t + b_\Delta)$, "
            r"$B_t = W_B x_t$, $C_t = W_C x_t$, $A = -e^{A_{\log}}$, $y_{t,d} = \sum_n C_{t,n} h_{t,dn}$.",
        ),
        Step(
            eq(Partial(ht, hp), Diag(text(r"e^{\Delta_{t,d} A_{dn}}"))),
            r"SymPy: the state enters linearly and elementwise; $\Delta_t$, $B_t$, $C_t$ depend on $x_t$ only.",
        ),
        Step(
            le(0, text(r"e^{\Delta_{t,d} A_{dn}}")),
            r"$\Delta > 0$ (softplus) and $A < 0$: every factor is in the open unit interval; it tends to $0$ as "
            r"$\Delta \to \infty$ (reset: the state forgets, $h_t$ is the current input's term) and to $1$ as "
            r"$\Delta \to 0$ (persist: the input term $\Delta B x \to 0$ too) -- SymPy's limits.",
            chain=((r"<", 1),),
        ),
        Step(
            eq(
                Partial(M("h_{T,dn}"), M("h_{k,dn}")),
                text(r"\exp\bigl(A_{dn} \textstyle\sum_{t=k+1}^{T} \Delta_{t,d}\bigr)"),
            ),
            r"Diagonal factors multiply entrywise (SymPy, three steps).",
        ),
        Step(
            le(
                Norm(Partial(M("h_T"), M("h_k"))),
                text(r"\exp\bigl(-\min_{d,n} |A_{dn}| \textstyle\sum_{t>k} \Delta_{t,d}\bigr)"),
            ),
            r"So gradients through the state never explode (the bound is $\le 1$ for every input), and they vanish "
            r"exponentially unless $\sum_{t>k}\Delta_{t,d}|A_{dn}|$ stays bounded: persistence over $T - k$ steps needs "
            r"$\Delta = O(1/(T-k))$.",
            chain=((r"\leq", 1),),
        ),
    )
    return Derivation(
        name="selective_ssm",
        title="Selective SSM (S6): input-dependent diagonal transitions",
        intro=(
            r"The selective state-space recurrence of Mamba (Gu and Dao, 2023) discretises a diagonal "
            r"$A < 0$ with an input-dependent step $\Delta_t$. Its state Jacobian is diagonal with entries "
            r"$e^{\Delta_t A} \in (0, 1)$. The checks compare \texttt{SelectiveSSM.jacobians} with these "
            r"factors, the backward with torch autograd, and \texttt{gradient\_flow} with their products."
        ),
        steps=steps,
        result={"jacobian": J, "factor": factor, "symbols": (z, Alog, d, a)},
        source="gradtheory/symbolic/selective_ssm.py",
    )
