r"""The linear RNN: :math:`\partial h_T/\partial h_k = W^{T-k}`, eigendecomposition, spectral radius
(Gelfand) versus spectral norm, and the transient growth of non-normal matrices."""

from __future__ import annotations

from functools import cache

import sympy as sp

from ._core import Derivation, Limit_, M, Norm, Partial, Step, assert_zero, eq, le, named, text

__all__ = ["derive", "jordan_power", "transient_example"]

m = sp.Symbol("m", integer=True, nonnegative=True)
lam, alpha = sp.symbols(r"lambda alpha", real=True)
POWER_CHECK = 4  # SymPy unrolls this many steps for n = 2 to confirm dh_T/dh_k = W^(T-k)


@cache
def jordan_power():
    r"""SymPy's closed form of :math:`\begin{pmatrix}\lambda & \alpha\\ 0 & \lambda\end{pmatrix}^m`."""
    J = sp.Matrix([[lam, alpha], [0, lam]])
    return J, sp.simplify(J**m)


@cache
def transient_example():
    r"""The example :math:`\lambda = 9/10`, :math:`\alpha = 1`: spectral radius, spectral norm,
    the peak of :math:`m \alpha \lambda^{m-1}` (a lower bound on :math:`\|W^m\|_2`)."""
    lv, av = sp.Rational(9, 10), sp.Integer(1)
    J = sp.Matrix([[lv, av], [0, lv]])
    radius = sp.Abs(lv)
    norm = sp.sqrt(max((J.T * J).eigenvals(), key=lambda e: float(e)))
    entry = m * av * lv ** (m - 1)
    x = sp.Symbol("x", positive=True)
    crit = sp.solve(sp.diff(x * av * lv ** (x - 1), x), x)
    assert len(crit) == 1
    m_star = sp.simplify(crit[0])
    m_int = max((sp.floor(m_star), sp.ceiling(m_star)), key=lambda v: entry.subs(m, v))
    return {
        "W": J,
        "radius": radius,
        "norm": sp.nsimplify(sp.simplify(norm)),
        "entry": entry,
        "m_star": m_star,
        "m_peak": m_int,
        "peak": entry.subs(m, m_int),
    }


def derive() -> Derivation:
    W = M("W")
    h = lambda i: M(f"h_{{{sp.latex(i)}}}")  # noqa: E731
    T, k = sp.symbols("T k", integer=True, positive=True)
    steps = [
        Step(
            eq(h(sp.Symbol("t")), W * h(sp.Symbol("t") - 1) + M("U") * M("x_t")),
            r"The linear RNN ($\phi = \mathrm{id}$, so $\gamma = 1$ and every $\operatorname{diag}(\phi') = I$).",
        )
    ]
    n = 2
    Wm = sp.Matrix(n, n, lambda r, c: sp.Symbol(f"w_{{{r + 1}{c + 1}}}"))
    hk = sp.Matrix(sp.symbols(f"h0:{n}"))
    hT = hk
    for s in range(POWER_CHECK):
        hT = Wm * hT + sp.Matrix(sp.symbols(f"v{s}_0:{n}"))
    assert_zero(hT.jacobian(hk) - Wm**POWER_CHECK, "dh_T/dh_k - W^(T-k) (n = 2, T - k = 4)")
    steps.append(
        Step(
            eq(Partial(h(T), h(k)), W ** (T - k)),
            rf"Product of $T - k$ equal Jacobians; SymPy's Jacobian of the unrolled map equals $W^{{{POWER_CHECK}}}$ for $n = 2$, $T - k = {POWER_CHECK}$.",
        )
    )
    V, Lam = M("V"), M(r"\Lambda")
    steps.append(
        Step(
            eq(W**m, V * Lam**m * M("V^{-1}")),
            r"If $W = V\Lambda V^{-1}$ is diagonalisable, the inner factors $V^{-1}V$ cancel; $\Lambda^m = \operatorname{diag}(\lambda_i^m)$.",
        )
    )
    a, b, d = sp.symbols("a b d", real=True)
    A = sp.Matrix([[a, b], [0, d]])
    P, Dg = A.diagonalize()
    Am = sp.simplify(P * Dg**m * P.inv())
    assert_zero(Am.subs(m, 3) - A**3, "V Lambda^3 V^-1 - W^3 (2x2 triangular)")
    steps.append(
        Step(
            eq(sp.MatPow(sp.ImmutableMatrix(A), m), Am),
            r"Example (SymPy \texttt{diagonalize}, $a \neq d$): the entries grow or decay like $|a|^m$ and $|d|^m$.",
        )
    )
    rho = named(r"\rho", W)
    steps.append(Step(eq(rho, text(r"\max_i |\lambda_i(W)|")), r"The spectral radius."))
    steps.append(
        Step(
            eq(rho, Limit_(Norm(W**m) ** (1 / m), m, sp.oo)),
            r"Gelfand's formula: asymptotically $\|W^m\|_2 \approx \rho(W)^m$, so $\rho(W) < 1$ is sufficient for vanishing and $\rho(W) > 1$ makes $\|W^m\|_2 \to \infty$.",
        )
    )
    steps.append(
        Step(
            le(rho, Norm(W**m) ** (1 / m)),
            r"For every $m \ge 1$: $\lambda^m$ is an eigenvalue of $W^m$ and $|\lambda_i(A)| \le \|A\|_2$.",
            chain=((r"\leq", Norm(W)),),
        )
    )
    J, Jm = jordan_power()
    steps.append(
        Step(
            eq(sp.MatPow(sp.ImmutableMatrix(J), m), Jm),
            r"A non-normal matrix ($W W^\top \neq W^\top W$ for $\alpha \neq 0$): SymPy's power of the Jordan-type block.",
        )
    )
    ex = transient_example()
    steps.append(
        Step(
            le(sp.Abs(m * alpha * lam ** (m - 1)), Norm(sp.MatPow(sp.ImmutableMatrix(J), m))),
            r"An entry never exceeds the spectral norm. With $|\lambda| < 1$ the left side still grows while $m < -1/\ln|\lambda|$: transient growth.",
        )
    )
    steps.append(
        Step(
            eq(sp.Symbol(r"\rho(W_{\mathrm{ex}})"), ex["radius"]),
            r"Example $W_{\mathrm{ex}}$: $\lambda = 9/10$, $\alpha = 1$; the spectral radius is below $1$ \ldots",
            chain=((r"<", 1),),
        )
    )
    steps.append(
        Step(
            eq(sp.Symbol(r"\|W_{\mathrm{ex}}\|_2"), ex["norm"]),
            r"\ldots but the spectral norm ($\sqrt{\lambda_{\max}(W^\top W)}$, SymPy) is above $1$.",
            chain=((r"\approx", sp.N(ex["norm"], 6)),),
        )
    )
    steps.append(
        Step(
            eq(sp.Symbol("m^{*}"), ex["m_star"]),
            r"$\frac{d}{dm}\, m\alpha\lambda^{m-1} = 0$ (SymPy \texttt{solve}): the transient peaks near $m^* \approx %s$."
            % sp.latex(sp.N(ex["m_star"], 4)),
        )
    )
    steps.append(
        Step(
            le(ex["peak"], sp.Symbol(r"\|W_{\mathrm{ex}}^{%s}\|_2" % ex["m_peak"])),
            r"At the integer peak $m = %s$: $\approx %s > 1$ although $\rho(W_{\mathrm{ex}})^{m} \to 0$; the gradient first grows, then vanishes."
            % (ex["m_peak"], sp.latex(sp.N(ex["peak"], 4))),
        )
    )
    return Derivation(
        name="linear_rnn",
        title="The linear RNN: powers, spectral radius and non-normal transients",
        intro=(
            r"Without a nonlinearity the product of Jacobians is a matrix power, and its size is "
            r"governed by the eigenvalues asymptotically but by the singular values at every finite "
            r"horizon. The checks compare the closed forms with \texttt{numpy.linalg.matrix\_power} "
            r"and with the Jacobian products of an identity-activation \texttt{gradtheory.RNN}."
        ),
        steps=tuple(steps),
        result={
            "jordan_power": (J, Jm),
            "diagonal_example": (A, Am),
            "transient": ex,
            "symbols": (lam, alpha, m, a, b, d),
        },
    )
