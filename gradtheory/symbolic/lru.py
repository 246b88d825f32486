r"""The LRU (Orvieto et al. 2023): exponential parametrisation, the one-step Jacobian
:math:`\operatorname{diag}(\lambda)` under torch's complex-gradient convention, exact powers
through time, and what the :math:`\gamma` normalisation preserves (``gradtheory/cells/lru.py``)."""

from __future__ import annotations

import sympy as sp

from ._core import Derivation, Diag, M, Norm, Partial, Step, assert_zero, eq, le, text

__all__ = ["derive"]

UNROLL = 3  # SymPy unrolls this many steps to confirm dx_T/dx_k = lambda^(T-k)


def derive() -> Derivation:
    nu, theta, a, b, gr, gi = sp.symbols(r"\nu \theta a b g_r g_i", real=True)
    rho = sp.exp(-sp.exp(nu))  # |lambda|
    omega = sp.exp(theta)  # arg lambda
    lam = rho * sp.exp(sp.I * omega)
    # 1. |lambda| = exp(-e^nu): ln|lambda| = -e^nu < 0 for every real nu
    assert_zero(sp.simplify(sp.Abs(lam) - rho), "|lambda| - exp(-exp(nu))")
    log_mod = sp.log(rho)
    assert sp.simplify(log_mod + sp.exp(nu)) == 0 and (-sp.exp(nu)).is_negative, "ln|lambda| = -e^nu < 0"
    # 2. real 2x2 Jacobian of x -> lambda x: rho * rotation (Cauchy-Riemann: multiplication by lambda)
    x = a + sp.I * b
    new = sp.expand_complex(lam * x)
    J = sp.Matrix([sp.re(new), sp.im(new)]).jacobian([a, b])
    R = rho * sp.Matrix([[sp.cos(omega), -sp.sin(omega)], [sp.sin(omega), sp.cos(omega)]])
    assert_zero(J - R, "real Jacobian of x -> lambda x minus |lambda| * rotation(arg lambda)")
    # 3. torch's convention: g = dL/da + i dL/db; L through w = lambda x with g_w = g_r + i g_i
    #    dL/da = g_r dRe(w)/da + g_i dIm(w)/da, likewise for b; g_x = conj(lambda) g_w
    g_x = (gr * J[0, 0] + gi * J[1, 0]) + sp.I * (gr * J[0, 1] + gi * J[1, 1])
    assert_zero(sp.expand_complex(g_x - sp.conjugate(lam) * (gr + sp.I * gi)), "g_x - conj(lambda) g_w")
    # 4. UNROLL steps: dx_{k+m}/dx_k = lambda^m (holomorphic, the inputs enter additively)
    lsym, x0 = sp.symbols("lambda x_0")
    w = sp.symbols(f"w1:{UNROLL + 1}")
    xm = x0
    for wj in w:
        xm = lsym * xm + wj
    assert_zero(sp.diff(xm, x0) - lsym**UNROLL, "dx_{k+3}/dx_k - lambda^3")
    # 5. gamma normalisation: E|x_k|^2 = gamma^2 sum_{j<k} |lambda|^(2j) ||B_n||^2 = (1 - |lambda|^(2k)) ||B_n||^2
    r, j = sp.symbols("r j", positive=True)
    k = sp.Symbol("k", integer=True, positive=True)
    second_moment = (1 - r**2) * sp.summation(r ** (2 * j), (j, 0, k - 1))
    assert_zero(sp.simplify(second_moment - (1 - r ** (2 * k))), "gamma^2 sum |lambda|^(2j) - (1 - |lambda|^(2k))")
    assert sp.limit(second_moment.subs(r, sp.Rational(9, 10)), k, sp.oo) == 1, "stationary second moment"
    # 6. gamma'(nu): the hand-written backward's term
    gam = sp.sqrt(1 - rho**2)
    dgam = sp.exp(-2 * sp.exp(nu)) * sp.exp(nu) / gam
    assert_zero(sp.simplify(sp.diff(gam, nu) - dgam), "dgamma/dnu - exp(-2e^nu) e^nu / gamma")

    xk, xk1 = M("x_k"), M("x_{k-1}")
    T, kk = sp.symbols("T k", integer=True, positive=True)
    steps = (
        Step(
            eq(xk, text(r"\operatorname{diag}(\lambda)\, x_{k-1} + \gamma \odot (B u_k)")),
            r"LRU step, $\lambda = \exp(-e^{\nu} + i e^{\theta})$, $\gamma = \sqrt{1 - |\lambda|^2}$, "
            r"$y_k = \operatorname{Re}(C x_k) + D \odot u_k$ (Orvieto et al., 2023, Sec.~3).",
        ),
        Step(
            eq(text(r"\ln|\lambda_n|"), -sp.exp(sp.Symbol(r"\nu_n", real=True))),
            r"SymPy: $|\lambda| = e^{-e^{\nu}}$, so $\ln|\lambda| < 0$ for every real $\nu$: the exponential "
            r"parametrisation keeps every eigenvalue strictly inside the unit disc (exact arithmetic).",
            chain=((r"<", 0),),
        ),
        Step(
            eq(Partial(xk, xk1), Diag(sp.Symbol(r"\lambda"))),
            r"Holomorphic Jacobian; as a real map on $(\operatorname{Re} x, \operatorname{Im} x)$ each "
            r"entry is $|\lambda|$ times the rotation by $\arg\lambda = e^{\theta}$ (SymPy, Cauchy--Riemann).",
        ),
        Step(
            eq(sp.Symbol(r"g_{x_{k-1}}"), sp.Symbol(r"\bar\lambda \odot g_{x_k}")),
            r"Torch's convention $g_z = \partial L/\partial \operatorname{Re} z + i\,\partial L/\partial "
            r"\operatorname{Im} z$ ($= 2\,\partial L/\partial\bar z$) pulls back through $w = \lambda z$ as "
            r"$\bar\lambda g_w$ (SymPy, from the real chain rule).",
        ),
        Step(
            eq(Partial(M("x_T"), M("x_k")), Diag(sp.Symbol(r"\lambda")) ** (T - kk)),
            rf"Exact for every input (SymPy unrolls {UNROLL} steps); so "
            r"$\|\partial L/\partial x_k\| = \|(|\lambda_n|^{T-k} g_{T,n})_n\|$: never grows, "
            r"vanishes at rate $\ln|\lambda_n| = -e^{\nu_n}$ per step (the Lyapunov exponents).",
        ),
        Step(
            le(Norm(Partial(M("x_T"), M("x_k"))), text(r"\max_n |\lambda_n|^{T-k}")),
            r"Spectral norm of a diagonal matrix.",
            chain=((r"\leq", 1),),
        ),
        Step(
            eq(
                sp.Symbol(r"\mathbb{E}|x_{k,n}|^2"),
                text(r"\gamma_n^2 \textstyle\sum_{j<k} |\lambda_n|^{2j} \|B_n\|^2 = (1 - |\lambda_n|^{2k}) \|B_n\|^2"),
            ),
            r"White-noise input ($\mathbb{E}\,u u^\top = I$, $x_0 = 0$), SymPy's sum: the normalisation makes the "
            r"stationary second moment $\|B_n\|^2$ independent of $\lambda$; it is not constant in $k$ (from $x_0 = 0$ it "
            r"grows as $1 - |\lambda_n|^{2k}$). The same sum is the squared sensitivity of $x_{k,n}$ to the whole "
            r"input sequence, so the normalisation bounds the input gradient, not the state gradient.",
        ),
        Step(
            eq(sp.Symbol(r"\partial\gamma/\partial\nu"), text(r"e^{-2e^{\nu}} e^{\nu} / \gamma")),
            r"The term of the hand-written backward through $\gamma$ (SymPy).",
        ),
    )
    return Derivation(
        name="lru",
        title="LRU: complex diagonal recurrence, torch's complex gradients, the gamma normalisation",
        intro=(
            r"The Linear Recurrent Unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu and De, 2023) has a "
            r"complex diagonal state matrix $\operatorname{diag}(\lambda)$ in an exponential parametrisation and "
            r"normalises its input by $\gamma = \sqrt{1-|\lambda|^2}$. The model carries the state as its real "
            r"and imaginary parts; the checks compare \texttt{LRU.jacobians} with the real form of "
            r"$\operatorname{diag}(\lambda)$, the backward with torch autograd (complex leaves included) and with "
            r"$\bar\lambda^{T}$ at 30 digits, and \texttt{gradient\_flow}/\texttt{lyapunov\_spectrum} with the closed forms."
        ),
        steps=steps,
        result={"log_modulus": log_mod, "real_jacobian": J, "second_moment": second_moment, "symbols": (nu, theta)},
        source="gradtheory/symbolic/lru.py",
    )
