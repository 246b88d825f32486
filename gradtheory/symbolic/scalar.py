r"""The scalar picture: :math:`h_t = w h_{t-1} + u x_t` gives :math:`\partial h_T/\partial h_k = w^{T-k}`."""

from __future__ import annotations

import sympy as sp

from ._core import Derivation, Limit_, Partial, Step, assert_zero, eq, text

__all__ = ["derive", "unrolled"]

w, u = sp.symbols("w u", real=True)
T, k, m = sp.symbols("T k m", integer=True, positive=True)
STEPS = 5  # the unrolled length SymPy differentiates


def unrolled(steps: int = STEPS):
    """(h_0, [x_1..x_T], [h_0..h_T]) for the scalar linear RNN, as SymPy expressions."""
    h0 = sp.Symbol("h_0")
    xs = [sp.Symbol(f"x_{{{s + 1}}}") for s in range(steps)]
    hs = [h0]
    for s in range(steps):
        hs.append(w * hs[-1] + u * xs[s])
    return h0, xs, hs


def dhT_dw_formula(hs, steps):
    """The derived :math:`\\partial h_T/\\partial w = \\sum_{k=1}^T w^{T-k} h_{k-1}`."""
    return sum((w ** (steps - kk) * hs[kk - 1] for kk in range(1, steps + 1)), sp.Integer(0))


def derive() -> Derivation:
    h0, xs, hs = unrolled()
    hsym = lambda i: sp.Symbol(f"h_{{{sp.latex(i)}}}")  # noqa: E731
    steps = [
        Step(
            eq(hsym(sp.Symbol("t")), w * hsym(sp.Symbol("t") - 1) + u * sp.Symbol("x_t")),
            r"A scalar linear RNN ($n = 1$, $\phi = \mathrm{id}$).",
        )
    ]
    # derivative with respect to an intermediate state: differentiate h_T as a function of h_k
    hk = sp.Symbol("h_k")
    for kk in (0, 2):
        tail = hk
        for s in range(kk, STEPS):
            tail = w * tail + u * xs[s]
        assert_zero(sp.diff(tail, hk) - w ** (STEPS - kk), f"dh_{STEPS}/dh_{kk} - w^{STEPS - kk}")
    steps.append(
        Step(
            eq(Partial(hsym(STEPS), hsym(0)), sp.diff(hs[STEPS], h0)),
            rf"SymPy differentiates the unrolled $h_{STEPS}$; likewise $\partial h_{STEPS}/\partial h_2 = w^{STEPS - 2}$.",
        )
    )
    steps.append(
        Step(
            eq(Partial(hsym(T), hsym(k)), w ** (T - k)),
            r"Induction on $T - k$: each step multiplies by $\partial h_t/\partial h_{t-1} = w$.",
        )
    )
    direct = sp.diff(hs[STEPS], w)
    formula = dhT_dw_formula(hs, STEPS)
    assert_zero(direct - formula, "dh_T/dw - sum_k w^(T-k) h_(k-1)")
    hk1 = sp.Symbol("h_{k-1}")
    steps.append(
        Step(
            eq(Partial(hsym(T), w), sp.Sum(w ** (T - k) * hk1, (k, 1, T))),
            rf"The BPTT sum: $\partial^+ h_k/\partial w = h_{{k-1}}$ times $\partial h_T/\partial h_k$; checked against SymPy's derivative of the unrolled $h_{STEPS}$.",
        )
    )
    eps = sp.Symbol(r"\varepsilon", positive=True)
    for label, wv, lim in ((r"|w| < 1", 1 / (1 + eps), 0), (r"|w| > 1", 1 + eps, sp.oo)):
        got = sp.limit(wv**m, m, sp.oo)
        assert got == lim
        steps.append(
            Step(
                eq(Limit_(sp.Abs(w) ** m, m, sp.oo), got),
                rf"For ${label}$ (SymPy, with $|w| = {sp.latex(wv)}$, $m = T - k$): the contribution of step $k$ {'vanishes' if got == 0 else 'explodes'} geometrically.",
            )
        )
    assert all(sp.Abs(wv**m) == 1 for wv in (1, -1))
    steps.append(
        Step(
            eq(text(r"\left.|w^{m}|\right|_{w = \pm 1}"), sp.Integer(1)),
            r"$|w| = 1$ is the only scalar that neither vanishes nor explodes: the constant-error carousel of Section~\ref{sec:lstm}.",
        )
    )
    return Derivation(
        name="scalar",
        title="The scalar picture",
        intro=(r"With one hidden unit and no nonlinearity the whole theory is one power, $w^{T-k}$."),
        steps=tuple(steps),
        result={"dhT_dhk": w**m, "dhT_dw": formula, "unrolled": hs, "symbols": (w, u, h0, xs)},
    )
