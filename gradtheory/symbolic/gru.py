r"""GRU in torch's convention: equations, the direct path :math:`\operatorname{diag}(z_t)`, the full
one-step Jacobian; parameter counts of RNN, GRU and LSTM as formulas."""

from __future__ import annotations

import numbers
from functools import cache

import sympy as sp

from ..cells import get
from ._cells import cell_equations
from ._core import LAMBDIFY_MODULES, Derivation, Diag, Hadamard, M, Partial, Step, assert_expand_zero, eq, text

__all__ = ["derive", "parameter_count", "gru_step", "GATES"]

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
I_, H_, L_, D_, B_ = sp.symbols("I H L D beta", integer=True, nonnegative=True)


def parameter_count(mode: str, input_size, hidden_size, num_layers, directions, bias: bool = True) -> sp.Expr:
    r"""Number of parameters of ``torch.nn.{RNN,LSTM,GRU}`` as a SymPy expression.

    With :math:`G` gates (1, 4, 3), per layer and direction there are :math:`G H (I_l + H)` weights
    and :math:`2GH` biases, :math:`I_0 = I` and :math:`I_l = D H` above the first layer:

    .. math:: N = D\,G H\,(I + H + 2\beta) + (L - 1)\, D\, G H\,(D H + H + 2\beta)

    Parameters
    ----------
    mode : str
        ``"RNN"``, ``"LSTM"`` or ``"GRU"`` (G = 1, 4, 3 gates).
    input_size, hidden_size, num_layers : int or sympy.Symbol
        I, H and L as in ``torch.nn``.
    directions : int or sympy.Symbol
        D: 1, or 2 for a bidirectional model.
    bias : bool, default True
        Whether the model has the biases ``b_ih`` and ``b_hh`` (:math:`\beta = 1`) or not (0).

    Returns
    -------
    sympy.Expr
        The count; an Integer when every argument is an integer.

    Raises
    ------
    ValueError
        ``mode`` is unknown, ``directions`` is not 1 or 2, or a size or ``num_layers`` is below 1.
    TypeError
        A size is neither an int nor a sympy.Symbol, or ``bias`` is not a bool.
    """
    if mode not in GATES:
        raise ValueError(f"mode={mode!r} is unknown; expected one of {sorted(GATES)}")
    if directions not in (1, 2) and not isinstance(directions, sp.Symbol):
        raise ValueError(f"directions must be 1 or 2, got {directions!r}")
    if not isinstance(bias, (bool, sp.Symbol)):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if isinstance(value, sp.Symbol):
            continue
        if isinstance(value, bool) or not isinstance(value, (numbers.Integral, sp.Integer)):
            raise TypeError(f"{name} must be an int or a sympy.Symbol, got {type(value).__name__} {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    G = GATES[mode]
    I, H, L, D = (sp.sympify(v) for v in (input_size, hidden_size, num_layers, directions))
    beta = bias if isinstance(bias, sp.Symbol) else sp.Integer(int(bias))
    per = lambda n_in: G * H * (n_in + H) + 2 * G * H * beta  # noqa: E731
    return sp.expand(D * per(I) + (L - 1) * D * per(D * H))


@cache
def gru_step(H: int):
    """Symbols and the SymPy Jacobian dh_t/dh_{t-1} of one GRU step with hidden size H.

    ``u`` stands for the input part ``W_ih x_t + b_ih`` (3H), ``b_hn`` for the hidden bias of n;
    the biases b_hr, b_hz merge into u. Returns a dict with ``fn``: lambdified
    (W_hh (3H,H), u (3H,), b_hn (H,), h_prev (H,)) -> (H, H) Jacobian.
    """
    hp = sp.Matrix(sp.symbols(f"hp0:{H}", real=True))
    W = sp.Matrix(3 * H, H, sp.symbols(f"W0:{3 * H * H}", real=True))
    u = sp.Matrix(sp.symbols(f"u0:{3 * H}", real=True))
    bn = sp.Matrix(sp.symbols(f"bn0:{H}", real=True))
    gh = W * hp + sp.Matrix.vstack(sp.zeros(2 * H, 1), bn)
    hn = gh[2 * H :, :]
    (h,), gates = cell_equations(get("gru").cell(), u, gh, (hp,))  # the cell's own equations
    r, z, nn = gates["r"], gates["z"], gates["n"]
    J = h.jacobian(hp)
    args = [list(W), list(u), list(bn), list(hp)]
    fn = sp.lambdify(args, J, modules=LAMBDIFY_MODULES)
    return {"h_prev": hp, "W": W, "u": u, "b_hn": bn, "r": r, "z": z, "n": nn, "hn": hn, "h": h, "J": J, "fn": fn}


def derive() -> Derivation:
    hp, ht = M("h_{t-1}"), M("h_t")
    r, z, nn = M("r_t"), M("z_t"), M("n_t")
    steps = [
        Step(eq(r, text(r"\sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr})")), "Reset gate (torch rows r, z, n)."),
        Step(eq(z, text(r"\sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})")), "Update gate."),
        Step(
            eq(nn, text(r"\tanh\bigl(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})\bigr)")),
            r"Candidate; torch (cuDNN form) applies $r_t$ after the product, so $b_{hn}$ cannot merge into $b_{in}$.",
        ),
        Step(
            eq(ht, Hadamard(1 - z, nn) + Hadamard(z, hp)),
            r"Interpolation: $z_t$ keeps the old state (some texts swap $z$ and $1 - z$).",
        ),
    ]
    G = gru_step(2)
    Hh = 2
    # symbolic check of the direct path and of the block formula for H = 2
    J = G["J"]
    W = G["W"]
    Wr, Wz, Wn = W[:Hh, :], W[Hh : 2 * Hh, :], W[2 * Hh :, :]
    rv, zv, nv, hn, hpv = G["r"], G["z"], G["n"], G["hn"], G["h_prev"]
    one = sp.ones(Hh, 1)
    dg = lambda v: sp.diag(*v)  # noqa: E731
    formula = (
        dg(zv)
        + dg((hpv - nv).multiply_elementwise(zv).multiply_elementwise(one - zv)) * Wz
        + dg((one - zv).multiply_elementwise(one - nv.multiply_elementwise(nv)))
        * (dg(rv) * Wn + dg(hn.multiply_elementwise(rv).multiply_elementwise(one - rv)) * Wr)
    )
    assert_expand_zero(J - formula, "GRU Jacobian - block formula (H = 2)")
    Wzero = {w: 0 for w in W}
    assert_expand_zero(J.xreplace(Wzero) - dg(zv.xreplace(Wzero)), "GRU direct path - diag(z) (H = 2)")
    steps.append(
        Step(
            eq(Partial(ht, hp, True), Diag(z)),
            r"The direct path (the term that does not pass through $W_{hh}$; SymPy's Jacobian with $W_{hh} = 0$): an identity-like carry gated by $z_t$.",
        )
    )
    D = lambda e: Diag(text(e))  # noqa: E731
    full = (
        Diag(z)
        + D(r"(h_{t-1} - n_t) \odot z_t \odot (1 - z_t)") * M("W_{hz}")
        + D(r"(1 - z_t) \odot (1 - n_t^2)")
        * (Diag(r) * M("W_{hn}") + D(r"(W_{hn}h_{t-1} + b_{hn}) \odot r_t \odot (1 - r_t)") * M("W_{hr}"))
    )
    steps.append(
        Step(
            eq(Partial(ht, hp), full),
            r"The full one-step Jacobian; SymPy's Jacobian of the elementwise step ($H = 2$) is checked to equal it by expansion.",
        )
    )
    for mode in ("RNN", "LSTM", "GRU"):
        expr = parameter_count(mode, I_, H_, L_, D_, B_)
        steps.append(
            Step(
                eq(sp.Symbol(rf"N_{{\mathrm{{{mode}}}}}"), sp.factor(expr)),
                rf"Parameters of \texttt{{torch.nn.{mode}}} ($G = {GATES[mode]}$): $G H (I_l + H) + 2 G H \beta$ per layer and direction, $I_0 = I$, $I_{{l>0}} = D H$; $\beta = 1$ with biases, $D = 2$ if bidirectional.",
            )
        )
    return Derivation(
        name="gru",
        title="GRU (torch convention) and parameter counts",
        intro=(
            r"The GRU's one-step Jacobian contains $\operatorname{diag}(z_t)$, a path that does not "
            r"pass through $W_{hh}$: with $z_t \approx 1$ the gradient is carried almost unchanged. "
            r"The checks lambdify SymPy's Jacobian and compare it with \texttt{GRU.jacobians}, and "
            r"the 40-digit sum of products of Jacobians with the numpy BPTT; "
            r"the parameter counts are compared with \texttt{torch.nn} modules and "
            r"\texttt{num\_parameters()}."
        ),
        steps=tuple(steps),
        result={
            "jacobian": J,
            "formula": formula,
            "parameter_count": {mode: parameter_count(mode, I_, H_, L_, D_, B_) for mode in GATES},
        },
    )
