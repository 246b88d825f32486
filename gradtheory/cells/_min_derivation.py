r"""The derivations of minGRU and minLSTM (``proofs/mingru.tex``, ``proofs/minlstm.tex``): one-step
Jacobian from SymPy's differentiation of the cell's own equations, independence of h, the closed
form the parallel scan evaluates, the convex-combination bound and the gradient through time."""

from __future__ import annotations

from typing import Any

__all__ = ["derive"]

_TEXT = {
    "mingru": dict(
        display="minGRU",
        title="minGRU: a gate-only recurrence, its parallel scan and its gradients",
        paper=r"Feng, Tung, Ahmed, Bengio and Hajimirsadeghi (2024), \emph{Were RNNs All We Needed?}, Sec.~3.1",
        step=r"(1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t,\ z_t = \sigma(W_z x_t + b_z),\ \tilde h_t = W_h x_t + b_h",
        a=r"1 - z_t",
        b=r"z_t \odot \tilde h_t",
        vanish=r"1 - z_{j,n}",
    ),
    "minlstm": dict(
        display="minLSTM",
        title="minLSTM: normalised gates, its parallel scan and its gradients",
        paper=r"Feng, Tung, Ahmed, Bengio and Hajimirsadeghi (2024), \emph{Were RNNs All We Needed?}, Sec.~3.2",
        step=r"f'_t \odot h_{t-1} + i'_t \odot \tilde h_t,\ f'_t = \tfrac{f_t}{f_t + i_t},\ i'_t = \tfrac{i_t}{f_t + i_t}",
        a=r"f'_t",
        b=r"i'_t \odot \tilde h_t",
        vanish=r"f'_{j,n} = 1/(1 + i_{j,n}/f_{j,n})",
    ),
}


def derive(name: str) -> Any:
    """The derivation of cell ``name`` (``"mingru"`` or ``"minlstm"``)."""
    import sympy as sp

    from ..symbolic.notation import (
        Derivation,
        Diag,
        M,
        Norm,
        Partial,
        Step,
        assert_zero,
        cell_equations,
        eq,
        le,
        sig,
        text,
    )
    from . import get

    cell = get(name).cell()
    H, G = 2, cell.gates
    hp = sp.Matrix(sp.symbols(f"h0:{H}", real=True))
    w = sp.Matrix(sp.symbols(f"w0:{G * H}", real=True))  # W_ih x_t + b_ih + b_hh, gate rows
    (h,), parts = cell_equations(cell, w, sp.zeros(G * H, 1), (hp,))  # the cell's own equations
    J = h.jacobian(hp)
    if name == "mingru":
        a = [1 - sig(w[n]) for n in range(H)]
        weight = list(parts["z"])
    else:
        f, i = [sig(w[n]) for n in range(H)], [sig(w[H + n]) for n in range(H)]
        a = [f[n] / (f[n] + i[n]) for n in range(H)]
        weight = list(parts["i_n"])
        assert_zero(parts["f_n"] + parts["i_n"] - sp.ones(H, 1), "f' + i' - 1 (H = 2)")
    assert_zero(J - sp.diag(*a), f"{name} Jacobian - diag(retain gate) (H = 2)")
    assert all(sp.diff(J, v) == sp.zeros(H, H) for v in hp), "the Jacobian does not depend on h_{t-1}"
    h_tilde = parts["h_tilde"]
    convex = [(1 - weight[n]) * hp[n] + weight[n] * h_tilde[n] for n in range(H)]
    assert_zero(h - sp.Matrix(convex), f"{name}: h_t - ((1 - w) h_(t-1) + w h~_t)")
    # the closed form the parallel scan evaluates, three steps, scalar
    a3, b3 = sp.symbols("a1:4", positive=True), sp.symbols("b1:4", real=True)
    h0 = sp.Symbol("h_0", real=True)
    loop = h0
    for k in range(3):
        loop = a3[k] * loop + b3[k]
    A = [sp.Integer(1), a3[0], a3[0] * a3[1], a3[0] * a3[1] * a3[2]]
    closed = A[3] * (h0 + sum(b3[k] / A[k + 1] for k in range(3)))
    assert_zero(loop - closed, "h_3 - A_3 (h_0 + sum_k b_k / A_k)")

    T = _TEXT[name]
    ht, hprev = M("h_t"), M("h_{t-1}")
    j, k, t = sp.symbols("j k t", integer=True)
    steps = (
        Step(eq(ht, text(T["step"])), f"The step ({T['paper']}); every gate reads $x_t$ only."),
        Step(
            eq(Partial(ht, hprev), Diag(text(T["a"]))),
            r"SymPy's Jacobian of the cell's own equations ($H = 2$); its derivative with respect to "
            r"$h_{t-1}$ is zero: the one-step Jacobian does not depend on the state.",
        ),
        Step(
            eq(ht, text(r"a_t \odot h_{t-1} + b_t,\quad a_t = %s \in (0, 1),\ b_t = %s" % (T["a"], T["b"]))),
            r"Hence the recurrence is linear in $h$ with input-only coefficients.",
        ),
        Step(
            eq(ht, text(r"A_t \bigl(h_0 + \textstyle\sum_{k=1}^{t} b_k / A_k\bigr),\quad A_t = \prod_{j \le t} a_j")),
            r"Unrolling (checked by expansion for $t = 3$): the sequential loop and this closed form are "
            r"the same function, so the model can be evaluated by a parallel scan.",
        ),
        Step(
            eq(ht, text(r"\textstyle\sum_{k=0}^{t} c_k\, e^{\log A_t - \log A_k},\ c_0 = h_0,\ c_k = b_k")),
            r"Log-space form (cumulative sums of $\log a_j$, cumulative log-sum-exp of the positive and the "
            r"negative $c_k$ separately): no $1/A_k$ is formed, and $\tilde h$ may take either sign "
            r"(\texttt{gradtheory.cells.\_parallel} derives its rounding error).",
        ),
        Step(
            le(sp.Abs(M("h_{t,n}")), text(r"\max(|h_{0,n}|, \max_{k \le t} |\tilde h_{k,n}|)")),
            r"The weights of $h_{t-1}$ and $\tilde h_t$ sum to 1 (SymPy: $h_t = (1 - w_t) h_{t-1} + w_t \tilde h_t$"
            r" with $w_t \in (0,1)$), so $h_t$ is a convex combination; by induction.",
        ),
        Step(
            eq(Partial(ht, M("h_k")), Diag(text(r"\textstyle\prod_{j=k+1}^{t} a_j"))),
            r"Product of diagonal one-step Jacobians (they commute).",
        ),
        Step(
            le(text(r"\bigl(\min_{j,n} a_{j,n}\bigr)^{t-k}"), Norm(Partial(ht, M("h_k")))),
            r"Every $a_{j,n} \in (0,1)$: the gradient through time never explodes. It tends to 0 unless "
            r"$\sum_j (1 - a_{j,n}) < \infty$ for some $n$ (the retain gate "
            f"$a_{{j,n}} = {T['vanish']}$ must saturate at 1 fast enough), and geometrically while "
            r"$a_{j,n} \le 1 - \epsilon$.",
            chain=((r"\leq", text(r"\max_n \textstyle\prod_{j=k+1}^{t} a_{j,n} < 1")),),
        ),
    )
    return Derivation(
        name=name,
        title=T["title"],
        intro=(
            f"The {T['display']} recurrence ({T['paper']}) has gates that read the input only. Its one-step "
            r"Jacobian is therefore diagonal and independent of the state, the recurrence is linear in "
            r"the state, and the sequential loop equals a closed form that a parallel scan evaluates. "
            r"The checks compare \texttt{jacobians} with the diagonal, \texttt{parallel\_forward} with "
            r"\texttt{forward} within the derived rounding bound, BPTT's $\partial L/\partial h_0$ with "
            r"the product of retain gates in 50-digit arithmetic (\texttt{tests/test\_min\_rnn.py})."
        ),
        steps=steps,
        result={"jacobian": J, "retain": a, "closed_form": (loop, closed)},
        source=f"gradtheory/cells/{name}.py",
    )
