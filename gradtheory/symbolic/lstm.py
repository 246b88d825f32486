r"""LSTM (torch convention): equations, the direct cell path :math:`\operatorname{diag}(f_t)`, the full
one-step Jacobian of the joint state (h, c), and the constant-error carousel."""

from __future__ import annotations

from functools import cache

import sympy as sp

from ..cells import get
from ._cells import cell_equations
from ._core import (
    LAMBDIFY_MODULES,
    Derivation,
    Diag,
    Hadamard,
    M,
    OrderedProduct,
    Partial,
    Step,
    assert_expand_zero,
    eq,
    text,
)

__all__ = ["derive", "lstm_step"]


@cache
def lstm_step(H: int):
    """Symbols and SymPy's joint Jacobian d(h_t, c_t)/d(h_{t-1}, c_{t-1}) of one LSTM step.

    ``u`` is the input part ``W_ih x_t + b_ih + b_hh`` (4H, rows i, f, g, o). ``fn``: lambdified
    (W_hh (4H,H), u (4H,), h_prev (H,), c_prev (H,)) -> (2H, 2H) Jacobian, rows/cols (h, c).
    """
    hp = sp.Matrix(sp.symbols(f"hp0:{H}", real=True))
    cp = sp.Matrix(sp.symbols(f"cp0:{H}", real=True))
    W = sp.Matrix(4 * H, H, sp.symbols(f"W0:{4 * H * H}", real=True))
    u = sp.Matrix(sp.symbols(f"u0:{4 * H}", real=True))
    (h, c), gates = cell_equations(get("lstm").cell(), u, W * hp, (hp, cp))  # the cell's own equations
    i, f, g, o = gates["i"], gates["f"], gates["g"], gates["o"]
    state, prev = sp.Matrix.vstack(h, c), sp.Matrix.vstack(hp, cp)
    J = state.jacobian(prev)
    fn = sp.lambdify([list(W), list(u), list(hp), list(cp)], J, modules=LAMBDIFY_MODULES)
    return {
        "h_prev": hp,
        "c_prev": cp,
        "W": W,
        "u": u,
        "i": i,
        "f": f,
        "g": g,
        "o": o,
        "c": c,
        "h": h,
        "J": J,
        "fn": fn,
    }


def derive() -> Derivation:
    i, f, g, o = M("i_t"), M("f_t"), M("g_t"), M("o_t")
    c, cp, h, hp = M("c_t"), M("c_{t-1}"), M("h_t"), M("h_{t-1}")
    steps = [
        Step(
            eq(text(r"(i_t, f_t, g_t, o_t)"), text(r"(\sigma(a^i_t), \sigma(a^f_t), \tanh(a^g_t), \sigma(a^o_t))")),
            r"Gates, torch rows $i, f, g, o$; $a^\ast_t = W_{i\ast} x_t + b_{i\ast} + W_{h\ast} h_{t-1} + b_{h\ast}$.",
        ),
        Step(eq(c, Hadamard(f, cp) + Hadamard(i, g)), "Cell update."),
        Step(eq(h, Hadamard(o, text(r"\tanh(c_t)"))), "Output."),
    ]
    H = 2
    S = lstm_step(H)
    J, W = S["J"], S["W"]
    Wi, Wf, Wg, Wo = (W[q * H : (q + 1) * H, :] for q in range(4))
    iv, fv, gv, ov, cv, cpv = S["i"], S["f"], S["g"], S["o"], S["c"], S["c_prev"]
    one = sp.ones(H, 1)
    dg = lambda v: sp.diag(*v)  # noqa: E731
    em = lambda *vs: _em(*vs)  # noqa: E731
    tc = cv.applyfunc(sp.tanh)
    dtanh = one - em(tc, tc)
    dc_dh = (
        dg(em(cpv, fv, one - fv)) * Wf
        + dg(em(gv, iv, one - iv)) * Wi
        + dg(em(iv, one - gv.applyfunc(lambda e: e**2))) * Wg
    )
    dh_dh = dg(em(tc, ov, one - ov)) * Wo + dg(em(ov, dtanh)) * dc_dh
    blocks = {
        "hh": (J[:H, :H], dh_dh),
        "hc": (J[:H, H:], dg(em(ov, dtanh, fv))),
        "ch": (J[H:, :H], dc_dh),
        "cc": (J[H:, H:], dg(fv)),
    }
    for key, (sym, formula) in blocks.items():
        assert_expand_zero(sym - formula, f"LSTM Jacobian block {key} - formula (H = 2)")
    steps.append(
        Step(
            eq(Partial(c, cp), Diag(f)),
            r"The direct cell path (at fixed $h_{t-1}$; SymPy's block of the joint Jacobian, $H = 2$): no weight matrix, no squashing derivative.",
        )
    )
    D = lambda e: Diag(text(e))  # noqa: E731
    dcdh = (
        D(r"c_{t-1} \odot f_t \odot (1 - f_t)") * M("W_{hf}")
        + D(r"g_t \odot i_t \odot (1 - i_t)") * M("W_{hi}")
        + D(r"i_t \odot (1 - g_t^2)") * M("W_{hg}")
    )
    steps.append(Step(eq(Partial(c, hp), dcdh), r"The cell's dependence on $h_{t-1}$ through the gates $f, i, g$."))
    steps.append(Step(eq(Partial(h, cp), D(r"o_t \odot (1 - \tanh^2 c_t) \odot f_t")), r"Through $c_t$."))
    steps.append(
        Step(
            eq(
                Partial(h, hp),
                D(r"\tanh(c_t) \odot o_t \odot (1 - o_t)") * M("W_{ho}")
                + D(r"o_t \odot (1 - \tanh^2 c_t)") * Partial(c, hp),
            ),
            r"Through $o_t$ and through $c_t$; all four blocks agree with SymPy's Jacobian by expansion ($H = 2$).",
        )
    )
    s_t = M("s_t")
    steps.append(
        Step(
            eq(
                Partial(s_t, M("s_{t-1}")),
                text(
                    r"\begin{pmatrix} \partial h_t/\partial h_{t-1} & \partial h_t/\partial c_{t-1} \\ \partial c_t/\partial h_{t-1} & \partial c_t/\partial c_{t-1} \end{pmatrix}"
                ),
            ),
            r"The joint one-step Jacobian of $s_t = (h_t, c_t)$, which \texttt{LSTM.jacobians} returns ($2H \times 2H$).",
        )
    )
    k, t, j = sp.symbols("k t j", integer=True)
    steps.append(
        Step(
            eq(OrderedProduct(Diag(M("f_j")), sp.Tuple(j, k + 1, t)), Diag(text(r"\textstyle\prod_{j=k+1}^{t} f_j"))),
            r"Along the direct path the product of Jacobians is diagonal: each cell unit keeps its error scaled by its own forget gates.",
        )
    )
    steps.append(
        Step(
            eq(Partial(c, cp), text(r"I \quad\text{when } f_t = \mathbf{1}")),
            r"The constant-error carousel (Hochreiter and Schmidhuber, 1997): with the forget gate open the cell error passes unchanged over any span, $\prod_j \operatorname{diag}(f_j) = I$.",
        )
    )
    return Derivation(
        name="lstm",
        title="LSTM: the cell path and the joint Jacobian",
        intro=(
            r"The LSTM's joint one-step Jacobian has a block $\operatorname{diag}(f_t)$ with no "
            r"weight matrix in it; that is the path along which gradients survive long spans. "
            r"The checks lambdify SymPy's joint Jacobian and compare it with "
            r"\texttt{LSTM.jacobians} under Hypothesis; evaluate the gradient as the sum of "
            r"products of these Jacobians at 40 digits and compare it with the numpy BPTT to "
            r"$10^{-13}$; and run the carousel numerically."
        ),
        steps=tuple(steps),
        result={"jacobian": J, "blocks": {k2: v[1] for k2, v in blocks.items()}},
    )


def _em(*vs):
    out = vs[0]
    for v in vs[1:]:
        out = out.multiply_elementwise(v)
    return out
