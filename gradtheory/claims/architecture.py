r"""Claims about architectures: GRU vs LSTM size, residual connections, bidirectional models.

Residual cell: :math:`h_t = h_{t-1} + \phi(a_t)`, so :math:`J_t = I + J^F_t` with
:math:`J^F_t = \operatorname{diag}(\phi'(a_t)) W_{hh}`, and by Weyl's inequality every singular
value of :math:`J_t` lies in :math:`[1 - \|J^F_t\|_2, 1 + \|J^F_t\|_2]`
(``proofs/residual_highway.tex``). Bidirectional: the output at t concatenates the forward state
(a function of :math:`x_0..x_t`) and the reverse state (a function of :math:`x_t..x_{T-1}`)
(``proofs/bidirectional_stacked.tex``).
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

from .. import GRU, LSTM, RNN, HighwayRNN, ResidualRNN
from .. import strategies as gst
from .._tolerances import BPTT_VS_COMPLEX_STEP, JACOBIAN_PRODUCT
from ..oracles import jacobian as fd_jacobian
from ..symbolic import parameter_count
from ..symbolic.residual_highway import highway_step
from ._core import (
    AuditSettings,
    Findings,
    Quote,
    claim,
    counterexample,
    holds,
    proof_or_property,
    property_held,
    search,
)
from ._numeric import (
    complex_step_state_jacobian,
    derivation,
    jacobian_products,
    norms,
    rnn,
    spectral_norm,
)

# RESIDUAL_ONE_STEP_JACOBIAN_ABS (absolute tolerance): Absolute: J_t vs I + diag(phi'(a)) W, and the
# singular values of J_t vs [1 - ||J_F||, 1 + ||J_F||]: singular values of 3x3 matrices with O(1)
# entries: backward error ~ n u ||J||.
RESIDUAL_ONE_STEP_JACOBIAN_ABS = 1e-13
# RESIDUAL_SINGULAR_VALUE_PER_STEP (relative tolerance): sigma(dh_T/dh_0) in [(1 - eps)^T, (1 +
# eps)^T] with relative slack rtol * T: the complex-step oracle and its SVD carry ~ n u relative
# round-off per factor of the product.
RESIDUAL_SINGULAR_VALUE_PER_STEP = 1e-12
# HIGHWAY_CLOSED_GATE_IDENTITY_ABS (absolute tolerance): Absolute: transform gate closed by bias -60
# (T_t < 1e-23): dh_T/dh_0 = I up to O(1e-23 T ||W||); 1e-14 bounds it with room for the product's
# rounding.
HIGHWAY_CLOSED_GATE_IDENTITY_ABS = 1e-14
# HIGHWAY_OPEN_GATE_JACOBIAN_ABS (absolute tolerance): Absolute: transform gate open (T == 1.0
# exactly): J_t = diag(1 - F^2) W_F from the model vs recomputed from the same pre-activation summed
# in a possibly different order: a few u on entries of size ~ max|W_F| <= 1.
HIGHWAY_OPEN_GATE_JACOBIAN_ABS = 1e-15
# SYMBOLIC_NONZERO_ABS (absolute tolerance): Absolute threshold for 'this derived expression is not
# identically zero': it is evaluated with sympy evalf at 30 significant digits at a rational point
# where every term is O(1) (weights and inputs in [-1.25, 1.25], tanh' in (0, 1]), so evaluation
# noise is ~1e-30 and a value above 1e-20 is a genuine nonzero (the bidirectional reverse-half
# derivatives checked this way are ~1e-2 .. 1).
SYMBOLIC_NONZERO_ABS = 1e-20

__all__ = [
    "bidirectional_causality",
    "highway_gate_substitution",
    "output_jacobian_blocks",
    "parameter_ratio_holds",
    "residual_singular_values_hold",
]

# ---------------------------------------------------------------------------------------------
# gru-fewer-parameters


def _torch_count(mode: str, I: int, H: int, L: int, bidirectional: bool, bias: bool) -> int:
    import torch

    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[mode]
    m = cls(I, H, num_layers=L, bidirectional=bidirectional, bias=bias)
    return sum(p.numel() for p in m.parameters())


def parameter_ratio_holds(case) -> bool:
    """4 * #GRU == 3 * #LSTM for equal sizes: our models, torch's modules (oracle) and, when
    available, gradtheory.symbolic.parameter_count all agree; the per-step matrix multiply-adds
    (the weight count without biases) have the same ratio."""
    I, H, L, bi, bias = case
    kw = {"num_layers": L, "bidirectional": bi, "bias": bias}
    g, l = GRU(I, H, **kw), LSTM(I, H, **kw)
    ours = (g.num_parameters(), l.num_parameters())
    torch_ = (
        _torch_count("GRU", I, H, L, bi, bias),
        _torch_count("LSTM", I, H, L, bi, bias),
    )
    macs = tuple(sum(int(np.prod(s)) for k, s in m.param_shapes().items() if k.startswith("weight")) for m in (g, l))
    D = 2 if bi else 1
    sym_ok = (
        int(parameter_count("GRU", I, H, L, D, bias)),
        int(parameter_count("LSTM", I, H, L, D, bias)),
    ) == ours
    return bool(ours == torch_ and 4 * ours[0] == 3 * ours[1] and 4 * macs[0] == 3 * macs[1] and sym_ok)


@functools.cache
def _symbolic_ratio():
    import sympy as sp

    count = parameter_count
    I, H, L = sp.symbols("I H L", positive=True, integer=True)
    out = {}
    for D in (1, 2):
        for bias in (True, False):
            out[f"D={D},bias={bias}"] = sp.simplify(count("GRU", I, H, L, D, bias) / count("LSTM", I, H, L, D, bias))
    return out


@functools.cache
def _gru_counts(settings: AuditSettings):
    ratios = _symbolic_ratio()
    proved = all(r == sp_rational(3, 4) for r in ratios.values())
    cases = st.tuples(
        st.integers(1, 8),
        st.integers(1, 8),
        st.integers(1, 3),
        st.booleans(),
        st.booleans(),
    )
    prop = holds(cases, parameter_ratio_holds, 30, settings)
    return proved, prop


@claim(
    "gru-fewer-parameters",
    quotes=[Quote("003", "has fewer parameters", "Gated Recurrent Units (GRU)")],
    precise="At equal input size, hidden size, depth, directions and bias, a GRU has exactly 3/4 of an LSTM's "
    "parameters (3 gate blocks instead of 4: G H (I_l + H + 2 bias) per layer and direction).",
    proofs=("gru",),
)
def check_gru_fewer_parameters(settings: AuditSettings) -> Findings:
    proved, prop = _gru_counts(settings)
    held = not prop.ok
    ratios = _symbolic_ratio()
    return Findings(
        proof_or_property(proved, held),
        None,
        {
            "symbolic_ratio_gru_over_lstm": {k: str(v) for k, v in ratios.items()},
            "examples": prop.examples,
            "oracle": "torch.nn.GRU / torch.nn.LSTM parameter counts",
            "example_I4_H8": {
                "GRU": GRU(4, 8).num_parameters(),
                "LSTM": LSTM(4, 8).num_parameters(),
            },
            "counterexample": prop.found,
        },
    )


def sp_rational(p: int, q: int):
    import sympy as sp

    return sp.Rational(p, q)


# ---------------------------------------------------------------------------------------------
# residual-preserves-gradient

RES_STEPS = 20


def residual_fixed_point_norms(
    W_hh: np.ndarray, h0: np.ndarray, steps: int = RES_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    r"""Residual tanh RNN held at h_t = h_0 by the input x = -W_hh h_0 (so a_t = 0, tanh'(0) = 1):
    every one-step Jacobian is I + W_hh. Returns (norms of dh_t/dh_0 from the model's Jacobians,
    the complex-step oracle for dh_T/dh_0)."""
    model = rnn(W_hh, cls=ResidualRNN)
    x = np.tile(-W_hh @ h0, (steps, 1))
    P = jacobian_products(model, x, h0[None, :])
    return norms(P), complex_step_state_jacobian(model, x, h0)


@functools.cache
def _residual_counterexamples(settings: AuditSettings):
    strategy = st.tuples(
        gst.matrices(2, structures=("dense",)).map(lambda A: 2.0 * A),
        gst.vectors(2, bound=1.0),
    )
    vanish = search(
        strategy,
        lambda c: residual_fixed_point_norms(*c)[0][-1] < 1e-6,
        200,
        settings,
        key="residual-vanishes",
    )
    explode = search(
        strategy,
        lambda c: residual_fixed_point_norms(*c)[0][-1] > 1e6,
        200,
        settings,
        key="residual-explodes",
    )
    return vanish, explode


@st.composite
def residual_cases(draw):
    n = draw(st.integers(1, 3))
    eps = draw(st.floats(0.05, 0.95))
    W = draw(gst.matrices(n, spectral_norm=eps))
    W_ih = draw(gst.matrices(n))
    x = draw(gst.sequences(steps=st.integers(1, 10), input_size=n, scale=2.0))
    h0 = draw(gst.vectors(n, bound=1.0))
    nl = draw(st.sampled_from(["tanh", "sigmoid"]))
    return rnn(W, W_ih, nl, b=np.zeros(n), cls=ResidualRNN), x, h0


def residual_singular_values_hold(case) -> bool:
    r"""Every singular value of J_t = I + J^F_t lies in [1 - ||J^F_t||, 1 + ||J^F_t||] (J^F_t recomputed
    from the pre-activations: diag(phi'(a_t)) W_hh), and with eps = gamma ||W_hh||_2 < 1 the product
    dh_T/dh_0 (== complex-step oracle) has singular values in [(1-eps)^T, (1+eps)^T]."""
    model, x, h0 = case
    from ..models.activations import ACTIVATIONS

    act = ACTIVATIONS[model.nonlinearity]
    W, W_ih = model.params["weight_hh_l0"], model.params["weight_ih_l0"]
    res = model.forward(x, h0[None, :])
    J = model.jacobians(res)
    hs = np.concatenate([h0[None, :], res.output], axis=0)
    tol = RESIDUAL_ONE_STEP_JACOBIAN_ABS  # SVD of 3x3, O(1) entries: ~ n u ||J||
    for t in range(x.shape[0]):
        a = W_ih @ x[t] + W @ hs[t]
        JF = act.grad(a, act.phi(a))[:, None] * W
        if not np.allclose(J[t], np.eye(W.shape[0]) + JF, rtol=0, atol=tol):
            return False
        s = np.linalg.svd(J[t], compute_uv=False)
        e = spectral_norm(JF)
        if s.max() > 1 + e + tol or s.min() < 1 - e - tol:
            return False
    eps = float(act.gamma) * spectral_norm(W)
    T = x.shape[0]
    P = jacobian_products(model, x, h0[None, :])[-1]
    oracle = complex_step_state_jacobian(model, x, h0)
    s = np.linalg.svd(oracle, compute_uv=False)
    agree = np.allclose(
        P,
        oracle,
        rtol=0,
        atol=JACOBIAN_PRODUCT.value * max(1.0, np.abs(oracle).max()),
    )
    slack = RESIDUAL_SINGULAR_VALUE_PER_STEP * T
    return bool(agree and s.max() <= (1 + eps) ** T * (1 + slack) and s.min() >= (1 - eps) ** T * (1 - slack))


@functools.cache
def _residual(settings: AuditSettings) -> tuple[bool, bool, bool, dict]:
    vanish, explode = _residual_counterexamples(settings)
    ev: dict = {
        "searched_examples": vanish.examples + explode.examples,
        "found_by": [vanish.source, explode.source],
        "steps": RES_STEPS,
    }
    reverified = True
    for name, s, test in (
        ("vanishing", vanish, lambda n: n < 1e-6),
        ("exploding", explode, lambda n: n > 1e6),
    ):
        if s.ok:
            W, h0 = s.found
            n, oracle = residual_fixed_point_norms(W, h0)
            on = float(np.linalg.norm(oracle, 2))
            reverified &= bool(test(on) and test(n[-1]))
            ev[f"{name}_counterexample"] = {
                "nonlinearity": "tanh",
                "W_hh": W,
                "W_ih": np.eye(2),
                "h0": h0,
                "x_t (every t)": -W @ h0,
                "one_step_jacobian": np.eye(2) + W,
                "norm_dhT_dh0_every_5_steps": n[::5],
                "norm_dhT_dh0_oracle": on,
            }
    prec = holds(residual_cases(), residual_singular_values_hold, 30, settings)
    ev["refinement_examples"] = prec.examples
    ev["refinement_counterexample"] = None if not prec.ok else {"params": prec.found[0].params, "x": prec.found[1]}
    return vanish.ok or explode.ok, reverified, not prec.ok, ev


@claim(
    "residual-preserves-gradient",
    quotes=[
        Quote(
            "003",
            "The identity connection preserves information by default",
            "Identity residual/dense/skip connections",
        )
    ],
    precise="For h_t = h_{t-1} + phi(a_t), the gradient through time is preserved: ||dh_T/dh_0|| neither vanishes nor "
    "explodes.",
    refinement="The one-step Jacobian is I + J^F_t, J^F_t = diag(phi'(a_t)) W_hh, with singular values in "
    "[1 - ||J^F_t||_2, 1 + ||J^F_t||_2]: the gradient is preserved exactly when J^F = 0 (W_hh = 0: 'by default'), "
    "and within [(1-eps)^T, (1+eps)^T] when gamma ||W_hh||_2 = eps < 1. In general the identity does not preserve "
    "it: I + W_hh can be 0 (W_hh = -I) or expanding.",
    proofs=("residual_highway",),
)
def check_residual_preserves_gradient(settings: AuditSettings) -> Findings:
    found, reverified, refinement, ev = _residual(settings)
    return Findings(counterexample(found, reverified), property_held(refinement), ev)


def residual_annihilation_witness(steps: int = RES_STEPS) -> tuple[bool, bool, dict]:
    r"""Exact: the residual tanh RNN h_t = h_{t-1} + tanh(W_hh h_{t-1} + x_t) with W_hh = -I, x = 0, h_0 = 0
    stays at 0 and its one-step Jacobian is I + diag(tanh'(0)) (-I) = 0 (SymPy: tanh'(0) = 1), so
    dh_T/dh_0 = 0 for every T >= 1; the model's product and the complex-step oracle are exactly 0."""
    import sympy as sp

    a = sp.Symbol("a", real=True)
    slope = sp.diff(sp.tanh(a), a).subs(a, 0)
    exact = bool(sp.eye(2) + slope * (-sp.eye(2)) == sp.zeros(2, 2))
    W = -np.eye(2)
    norms_, oracle = residual_fixed_point_norms(W, np.zeros(2), steps)
    numeric = bool(np.all(norms_[1:] == 0.0) and np.all(oracle == 0.0))
    return (
        exact,
        numeric,
        {
            "W_hh": W,
            "W_ih": np.eye(2),
            "x": "zeros",
            "h0": [0.0, 0.0],
            "one_step_jacobian": np.eye(2) + W,
            "norm_dhT_dh0_every_5_steps": norms_[::5],
        },
    )


@claim(
    "skip-connections-fix-vanishing",
    quotes=[
        Quote(
            "003",
            "**Fixes for vanishing (or exploding) gradient:**\n- Gradient clipping\n- Skip connections",
            "Summary",
        ),
        Quote(
            "003",
            "We need to add more direct connections (thus allowing the gradient to flow).",
            "vanishing/exploding gradient in neural architectures",
        ),
    ],
    precise="With an identity skip connection h_t = h_{t-1} + phi(a_t) the gradient dh_T/dh_0 does not vanish.",
    refinement="A skip connection bounds the decay: with gamma ||W_hh||_2 = eps < 1 every singular value of dh_T/dh_0 "
    "is >= (1 - eps)^T (the plain RNN's is <= eps^T), so for small eps the gradient decays slowly; it is no fix in "
    "general (W_hh = -I makes I + J^F = 0 at a*=0 and the gradient vanishes).",
    proofs=("residual_highway",),
)
def check_skip_connections_fix_vanishing(settings: AuditSettings) -> Findings:
    exact, numeric, witness = residual_annihilation_witness()
    _, _, refinement, ev = _residual(settings)
    ev = {"witness": witness, **{k: v for k, v in ev.items() if k.startswith("refinement")}}
    return Findings(counterexample(exact, numeric), property_held(refinement), ev)


# ---------------------------------------------------------------------------------------------
# bidirectional-not-for-lm


def output_jacobian_blocks(model, x: np.ndarray) -> np.ndarray:
    r"""Complex-step Jacobian of the outputs w.r.t. the inputs, as blocks
    :math:`B[t, s] = \max |\partial y_t/\partial x_s|` split by half: shape (2, T, T) for
    (forward half, reverse half)."""
    H = model.hidden_size

    def f(xx):
        return model.apply(model.params, xx).output

    Jx = fd_jacobian(f, x, method="complex")  # (T, D*H, T, I)
    T = x.shape[0]
    out = np.zeros((2, T, T))
    for t in range(T):
        for s in range(T):
            out[0, t, s] = np.abs(Jx[t, :H, s]).max()
            out[1, t, s] = np.abs(Jx[t, H:, s]).max()
    return out


@st.composite
def bidirectional_cases(draw):
    fam = draw(st.sampled_from(["rnn", "lstm", "gru"]))
    L = draw(st.integers(1, 2))
    T = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**16))
    I, H = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    cls = {"rnn": RNN, "lstm": LSTM, "gru": GRU}[fam]
    model = cls(I, H, num_layers=L, bidirectional=True, seed=seed)  # torch's default initialisation
    x = draw(gst.sequences(steps=T, input_size=I))
    return model, x


def bidirectional_structure_holds(case) -> bool:
    r"""Exact zeros where there is no path, nonzero where there is one (generic weights):
    forward half of layer 1 is causal (dy^fwd_t/dx_s = 0 for s > t); every output y_t depends on
    the next input x_{t+1} through the reverse half; with two layers even the forward half reads
    the future. Cross-checked: BPTT's dL/dx for L = <e, y_t> equals the complex-step row."""
    model, x = case
    B = output_jacobian_blocks(model, x)
    T = x.shape[0]
    future = np.triu(np.ones((T, T), dtype=bool), 1)  # s > t
    if model.num_layers == 1 and np.any(B[0][future] != 0.0):
        return False
    leak = all(B[1, t, t + 1] > 0 for t in range(T - 1))
    if model.num_layers == 2:
        leak = leak and all(B[0, t, t + 1] > 0 for t in range(T - 1))
    res = model.forward(x)
    d = np.zeros_like(res.output)
    d[0] = 1.0
    g = model.backward(res, d)

    def f(xx):
        return model.apply(model.params, xx).output[0].sum()

    row = fd_jacobian(f, x, method="complex")
    agree = np.allclose(
        g.x,
        row,
        rtol=0,
        atol=BPTT_VS_COMPLEX_STEP.value * max(1.0, np.abs(row).max()),
    )
    return bool(leak and agree)


# rational evaluation point for the derived scalar expressions (phi -> tanh): all O(1)
_BIDIRECTIONAL_POINT = {
    "w_f": sp_rational(1, 2),
    "v_f": sp_rational(3, 4),
    "w_b": sp_rational(-2, 3),
    "v_b": sp_rational(5, 4),
    "x_{1}": sp_rational(1, 3),
    "x_{2}": sp_rational(-1, 2),
    "x_{3}": sp_rational(1, 5),
}


def bidirectional_causality(d) -> tuple[bool, dict]:
    r"""Read the causal structure off the ``bidirectional_stacked`` derivation's scalar bidirectional
    layer (``d.result["bidirectional"]``: :math:`L = \sum_t g^f_t \overrightarrow h_t + g^b_t \overleftarrow h_t`,
    :math:`\partial L/\partial x_s` both as SymPy's derivative of the unrolled model, ``direct``, and as
    the derived two-direction formula, ``formula``; generic :math:`\phi`, T = 3).

    :math:`\partial\overrightarrow h_t/\partial x_s = \partial^2 L/\partial g^f_t\,\partial x_s` and
    likewise for the reverse half with :math:`g^b_t`. Holds iff, in both ``direct`` and ``formula``,
    every forward derivative with s > t simplifies to exactly 0 (the forward direction is causal) and
    every reverse derivative with s > t is not identically zero: with :math:`\phi = \tanh` at a
    rational point its 30-digit value exceeds ``SYMBOLIC_NONZERO_ABS`` (the output
    y_t sees the future input x_s through the reverse half).
    """
    import sympy as sp

    if d is None or "bidirectional" not in d.result:
        return False, {"symbolic": "bidirectional_stacked derivation unavailable"}
    B = d.result["bidirectional"]
    wf, vf, wb, vb, xs, gf, gb = B["symbols"]
    T = len(xs)
    point = {sym: _BIDIRECTIONAL_POINT[sym.name] for sym in (wf, vf, wb, vb, *xs)}
    z = sp.Dummy("z")
    floor = SYMBOLIC_NONZERO_ABS
    ok = T >= 2
    ev: dict = {
        "steps": T,
        "phi_for_values": "tanh",
        "point": {k.name: str(v) for k, v in point.items()},
    }
    for name in ("direct", "formula"):
        fwd_future, rev_future = {}, {}
        for s in range(1, T + 1):
            for t in range(1, s):  # s > t: x_s is in y_t's future
                df = sp.simplify(sp.diff(B[name][s - 1], gf[t - 1]))
                db = sp.diff(B[name][s - 1], gb[t - 1])
                funcs = {f.func for f in db.atoms(sp.core.function.AppliedUndef)}
                db_tanh = db
                for F in funcs:
                    db_tanh = db_tanh.subs(F, sp.Lambda(z, sp.tanh(z)))
                value = sp.N(db_tanh.doit().xreplace(point), 30)
                fwd_future[f"dh_fwd_{t}/dx_{s}"] = str(df)
                rev_future[f"dh_rev_{t}/dx_{s}"] = {
                    "expr": str(db),
                    "value_phi_tanh": str(value),
                }
                ok = ok and df == 0 and bool(value.is_number) and abs(float(value)) > floor
        ev[name] = {
            "forward_half_future": fwd_future,
            "reverse_half_future": rev_future,
        }
    return bool(ok), ev


@claim(
    "bidirectional-not-for-lm",
    quotes=[
        Quote(
            "003",
            "they are not applicable to Language Modeling, because in LM you only have left context "
            "available, i.e. no access to the entire input sequence at once.",
            "Bidirectional RNNs",
        )
    ],
    precise="The output y_t of a bidirectional RNN depends on the future inputs x_{t+1}, ..., x_{T-1} through the "
    "reverse direction (dy_t/dx_{t+1} != 0 for generic weights), so a next-token predictor reading y_t sees its "
    "target; the forward direction of a one-layer model is causal (dy^fwd_t/dx_s = 0 exactly for s > t), but stacked "
    "bidirectional layers make even the forward half non-causal.",
    proofs=("bidirectional_stacked",),
)
def check_bidirectional_not_for_lm(settings: AuditSettings) -> Findings:
    d = derivation("bidirectional_stacked")
    symbolic, sym_ev = bidirectional_causality(d)
    prop = holds(bidirectional_cases(), bidirectional_structure_holds, 25, settings)
    held = not prop.ok
    model = RNN(1, 2, bidirectional=True, seed=0)
    x = np.linspace(-1, 1, 4)[:, None]
    B = output_jacobian_blocks(model, x)
    return Findings(
        proof_or_property(symbolic, held),
        None,
        {
            "derivation": d.name,
            "symbolic": sym_ev,
            "symbolic_holds": symbolic,
            "examples": prop.examples,
            "oracle": "complex-step Jacobian of the outputs w.r.t. the inputs; hand-written BPTT dL/dx",
            "example": {
                "model": "RNN(1, 2, bidirectional=True, seed=0)",
                "x": x,
                "max_abs_dy_fwd_t_dx_s": B[0],
                "max_abs_dy_rev_t_dx_s": B[1],
            },
            "counterexample": None
            if held
            else {
                "model": repr(prop.found[0]),
                "params": prop.found[0].params,
                "x": prop.found[1],
            },
        },
    )


# ---------------------------------------------------------------------------------------------
# highway-gate-controls-identity

GATE_SATURATION = 60.0  # |W_ih x + W_hh h + b_hh| <= 4 + 2 + 1 = 7, so |a^T| >= 53: T == 1.0 exactly, or T < 1e-23


@st.composite
def highway_cases(draw, gate: str = "free"):
    """(model, x, h0): one-layer highway tanh RNN, H = 2, I = 2, weights in [-1, 1]; ``gate`` =
    "closed" / "open" adds -60 / +60 to the transform gate's bias."""
    model = HighwayRNN(2, 2, seed=0)
    params = draw(gst.parameters(model, scale=1.0))
    if gate != "free":
        b = np.array(params["bias_ih_l0"], copy=True)
        b[2:] = -GATE_SATURATION if gate == "closed" else GATE_SATURATION
        params["bias_ih_l0"] = b
    model = HighwayRNN(2, 2, params=params)
    x = draw(gst.sequences(steps=st.integers(1, 6), input_size=2, scale=2.0))
    h0 = draw(gst.vectors(2, bound=1.0))
    return model, x, h0


def highway_jacobian_formula(model, x, h0) -> np.ndarray:
    r"""Independent recomputation: :math:`J_t = \operatorname{diag}(1 - T_t) + \operatorname{diag}(T_t
    \phi'(a^F_t)) W_F + \operatorname{diag}((F_t - h_{t-1}) T_t (1 - T_t)) W_T`, shape (T, H, H)."""
    from ..models.activations import sigmoid as sig

    p = model.params
    W_ih, W_hh, b = (
        p["weight_ih_l0"],
        p["weight_hh_l0"],
        p["bias_ih_l0"] + p["bias_hh_l0"],
    )
    H = h0.size
    h, out = h0, []
    for t in range(x.shape[0]):
        a = W_ih @ x[t] + W_hh @ h + b
        F, T = np.tanh(a[:H]), sig(a[H:])
        out.append(np.diag(1 - T) + (T * (1 - F * F))[:, None] * W_hh[:H] + ((F - h) * T * (1 - T))[:, None] * W_hh[H:])
        h = T * F + (1 - T) * h
    return np.array(out)


def highway_jacobian_holds(case) -> bool:
    """Model Jacobians == the formula == SymPy's lambdified Jacobian (symbolic.residual_highway.highway_step,
    when available); the product == complex-step dh_T/dh_0."""
    model, x, h0 = case
    J = model.jacobians(model.forward(x, h0[None, :]))
    ref = highway_jacobian_formula(model, x, h0)
    tol = JACOBIAN_PRODUCT.value
    ok = np.allclose(J, ref, rtol=0, atol=tol)
    fn = highway_step(2, "tanh")["fn"]
    p = model.params
    W_ih, W_hh, b = (
        p["weight_ih_l0"],
        p["weight_hh_l0"],
        p["bias_ih_l0"] + p["bias_hh_l0"],
    )
    res = model.forward(x, h0[None, :])
    hs = np.concatenate([h0[None, :], res.output], axis=0)
    for t in range(x.shape[0]):
        Js = np.array(fn(list(W_hh.ravel()), list(W_ih @ x[t] + b), list(hs[t])), dtype=float)
        ok = ok and np.allclose(J[t], Js, rtol=0, atol=tol)
    P = jacobian_products(model, x, h0[None, :])[-1]
    oracle = complex_step_state_jacobian(model, x, h0)
    return bool(ok and np.allclose(P, oracle, rtol=0, atol=tol * max(1.0, np.abs(oracle).max())))


def highway_gate_limits_hold(pair) -> bool:
    """Gate closed (T ~ 0): dh_T/dh_0 = I to 1e-14; gate open (T == 1.0): J_t = diag(phi'(a^F_t)) W_F exactly
    as the plain RNN's."""
    (closed, xc, hc), (opened, xo, ho) = pair
    P = jacobian_products(closed, xc, hc[None, :])[-1]
    if not np.allclose(P, np.eye(2), rtol=0, atol=HIGHWAY_CLOSED_GATE_IDENTITY_ABS):
        return False
    J = opened.jacobians(opened.forward(xo, ho[None, :]))
    p = opened.params
    W_ih, W_hh, b = (
        p["weight_ih_l0"],
        p["weight_hh_l0"],
        p["bias_ih_l0"] + p["bias_hh_l0"],
    )
    h = ho
    for t in range(xo.shape[0]):
        a = W_ih @ xo[t] + W_hh @ h + b
        F = np.tanh(a[:2])
        if not np.allclose(
            J[t],
            (1 - F * F)[:, None] * W_hh[:2],
            rtol=0,
            atol=HIGHWAY_OPEN_GATE_JACOBIAN_ABS,
        ):
            return False
        h = F
    return True


HIGHWAY_SYMBOLIC_STEPS = 3  # steps of the symbolic product of closed-gate Jacobians


def highway_gate_substitution(d) -> tuple[bool, dict]:
    r"""Substitute the transform gate into the ``residual_highway`` derivation's highway Jacobian
    (SymPy's :math:`\partial h_t/\partial h_{t-1}`, ``d.result["highway_jacobian"]``, H = 2, tanh).

    The gate atoms are the derivation's own ``sig(a^T)`` expressions (``symbolic.residual_highway.
    highway_step(H)["T"]``). Holds iff they occur in the Jacobian (non-vacuous), and: closed,
    :math:`T_t = 0`: the Jacobian simplifies to exactly :math:`I`, and so does the ordered product of
    ``HIGHWAY_SYMBOLIC_STEPS`` such steps (fresh h, input symbols per step); open, :math:`T_t = 1`: it
    minus the plain RNN step's Jacobian :math:`\partial\phi(a^F_t)/\partial h_{t-1}` (SymPy, same
    symbols) simplifies to exactly 0.
    """
    import sympy as sp

    step = highway_step
    J = d.result["highway_jacobian"]
    H = J.shape[0]
    S = step(H, "tanh")
    gate = list(S["T"])
    present = all(J.has(e) for e in gate)
    Jc = J.xreplace({e: sp.Integer(0) for e in gate})
    closed = sp.simplify(Jc)
    P = None
    if closed == sp.eye(H):  # otherwise the product is not worth simplifying
        W = set(S["W"])
        per_step = [s for s in Jc.free_symbols if s not in W]  # h_{t-1}, input part u: new each step
        P = sp.eye(H)
        for k in range(HIGHWAY_SYMBOLIC_STEPS):
            P = Jc.xreplace({s: sp.Symbol(f"{s.name}_{k}", real=True) for s in per_step}) * P
        P = sp.simplify(P)
    opened = sp.simplify(J.xreplace({e: sp.Integer(1) for e in gate}) - S["F"].jacobian(S["h_prev"]))
    ok = bool(present and closed == sp.eye(H) and P == sp.eye(H) and opened == sp.zeros(H, H))
    return ok, {
        "substitution": f"T_t = 0 (closed) and T_t = 1 (open): the sig(a^T) atoms of the derivation's highway Jacobian, H = {H}, tanh",
        "gate_atoms_present": present,
        "dh_t_dh_{t-1}_closed": str(closed.tolist()),
        "product_steps": HIGHWAY_SYMBOLIC_STEPS,
        f"dh_T_dh_{{T-{HIGHWAY_SYMBOLIC_STEPS}}}_closed": None if P is None else str(P.tolist()),
        "dh_t_dh_{t-1}_open_minus_plain_rnn": str(opened.tolist()),
    }


@claim(
    "highway-gate-controls-identity",
    quotes=[
        Quote(
            "003",
            "Highway connections are similar to residual connections, but the identity connection vs the "
            "transformation layer is controlled by a dynamic gate.",
            "Identity residual/dense/skip connections",
        )
    ],
    precise="For h_t = T_t F_t + (1 - T_t) h_{t-1} (F = phi(a^F), T = sigma(a^T)) the one-step Jacobian is "
    "diag(1 - T_t) + diag(T_t phi'(a^F_t)) W_F + diag((F_t - h_{t-1}) T_t (1 - T_t)) W_T: the identity path is "
    "weighted by the gate 1 - T_t, itself a function of x_t and h_{t-1}; with the gate closed (T -> 0) the "
    "gradient passes unchanged (dh_T/dh_0 = I), with it open (T -> 1) the step is the plain RNN's diag(phi') W_F.",
    proofs=("residual_highway",),
)
def check_highway_gate_controls_identity(settings: AuditSettings) -> Findings:
    d = derivation("residual_highway")
    symbolic, sym_ev = highway_gate_substitution(d)
    prop = holds(highway_cases(), highway_jacobian_holds, 15, settings)
    limits = holds(
        st.tuples(highway_cases("closed"), highway_cases("open")),
        highway_gate_limits_hold,
        15,
        settings,
    )
    held = not prop.ok and not limits.ok
    return Findings(
        proof_or_property(symbolic, held),
        None,
        {
            "derivation": d.name,
            "symbolic": sym_ev,
            "symbolic_holds": symbolic,
            "examples": prop.examples + limits.examples,
            "oracles": "independent formula, SymPy's lambdified highway Jacobian, complex step",
            "gate_saturation": "transform-gate bias -60 (closed: dh_T/dh_0 = I) or +60 (open: plain RNN Jacobian)",
            "counterexample": None if held else str(prop.found or limits.found),
        },
    )


# ---------------------------------------------------------------------------------------------
# gru-quicker-to-compute, gru-update-gate-remembers-or-updates


@claim(
    "gru-quicker-to-compute",
    quotes=[Quote("003", "The GRU is quicker to compute", "Gated Recurrent Units (GRU)")],
    precise="Read as arithmetic (wall-clock time depends on the implementation and is not a statement about the "
    "model): per step and layer a GRU does 3/4 of an LSTM's matrix multiply-adds, 3H(I_l + H) against 4H(I_l + H) "
    "(the weight count without biases, SymPy's parameter_count), and torch's modules have the same weight shapes.",
    proofs=("gru",),
)
def check_gru_quicker_to_compute(settings: AuditSettings) -> Findings:
    import sympy as sp

    I, H, L = sp.symbols("I H L", positive=True, integer=True)
    ratio = sp.simplify(parameter_count("GRU", I, H, L, 1, False) / parameter_count("LSTM", I, H, L, 1, False))
    _, prop = _gru_counts(settings)  # includes the multiply-add ratio against torch's shapes
    return Findings(
        proof_or_property(ratio == sp_rational(3, 4), not prop.ok),
        None,
        {
            "symbolic_ratio_of_multiply_adds": str(ratio),
            "examples": prop.examples,
            "oracle": "torch.nn.GRU / torch.nn.LSTM weight shapes",
            "counterexample": prop.found,
        },
    )


def gru_update_gate_substitution() -> tuple[bool, dict]:
    r"""Substitute the update gate into SymPy's GRU step (``symbolic.gru.gru_step(2)``,
    :math:`h_t = (1 - z) \odot n + z \odot h_{t-1}`): z = 1 gives :math:`h_t = h_{t-1}` and
    :math:`\partial h_t/\partial h_{t-1} = I` (remember); z = 0 gives :math:`h_t = n_t` (update),
    with Jacobian :math:`\partial n_t/\partial h_{t-1}`."""
    import sympy as sp

    from ..symbolic.gru import gru_step

    S = gru_step(2)
    z = list(S["z"])
    present = all(S["h"].has(e) and S["J"].has(e) for e in z)
    keep = {e: sp.Integer(1) for e in z}
    write = {e: sp.Integer(0) for e in z}
    h1 = sp.simplify(S["h"].xreplace(keep) - S["h_prev"])
    J1 = sp.simplify(S["J"].xreplace(keep))
    h0 = sp.simplify(S["h"].xreplace(write) - S["n"].xreplace(write))
    ok = bool(present and h1 == sp.zeros(2, 1) and J1 == sp.eye(2) and h0 == sp.zeros(2, 1))
    return ok, {
        "z=1: h_t - h_{t-1}": str(h1.tolist()),
        "z=1: dh_t/dh_{t-1}": str(J1.tolist()),
        "z=0: h_t - n_t": str(h0.tolist()),
        "gate_atoms_present": present,
    }


# Update gate saturated (bias +60 against |pre-activation| <= 2 * 2 + 3 * 2 + 2 = 12): z = sigma(>= 48) rounds to
# 1.0, so h_t = (1 - z) n + z h_{t-1} = h_{t-1} up to (1 - z) < 2e-21; the complex-step Jacobian is I up to the
# same (1 - z) times O(||W||) ~ 1e-20: 1e-15 / 1e-14 bound both with room.
GRU_KEEP_STATE = 1e-15
GRU_KEEP_JACOBIAN = 1e-14


def gru_saturated_update_keeps_state(case) -> bool:
    """Numeric spot check: with the update gate saturated open (bias +60: z == 1.0 in float64) the
    model's GRU keeps h_T == h_0 and dh_T/dh_0 == I (complex-step oracle)."""
    params, x, h0 = case
    p = {k: np.array(v, copy=True) for k, v in params.items()}
    H = h0.size
    p["bias_ih_l0"][H : 2 * H] = 60.0
    p["bias_hh_l0"][H : 2 * H] = 0.0
    model = GRU(x.shape[1], H, params=p)
    res = model.forward(x, h0[None, :])
    oracle = complex_step_state_jacobian(model, x, h0)
    return bool(
        np.allclose(res.h_n[0], h0, rtol=0, atol=GRU_KEEP_STATE)
        and np.allclose(oracle, np.eye(H), rtol=0, atol=GRU_KEEP_JACOBIAN)
    )


@st.composite
def _gru_cases(draw):
    H, I = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    params = draw(gst.parameters(GRU(I, H), scale=2.0))
    return (
        params,
        draw(gst.sequences(steps=st.integers(1, 8), input_size=I)),
        draw(gst.vectors(H, bound=1.0)),
    )


@claim(
    "gru-update-gate-remembers-or-updates",
    quotes=[
        Quote(
            "003",
            "single gate \\(u\\) decides to remember or update",
            "Gated Recurrent Units (GRU)",
        )
    ],
    precise="In h_t = (1 - z_t) n_t + z_t h_{t-1} (torch's GRU; the notes' u is z) the update gate interpolates between "
    "remembering and updating: z = 1 gives h_t = h_{t-1} and dh_t/dh_{t-1} = I exactly, z = 0 gives h_t = n_t "
    "(SymPy substitution into the GRU step); a saturated z keeps h_T = h_0 and dh_T/dh_0 = I in the model. (The GRU "
    "has a second gate, the reset gate r, inside n_t.)",
    proofs=("gru",),
)
def check_gru_update_gate(settings: AuditSettings) -> Findings:
    ok, ev = gru_update_gate_substitution()
    prop = holds(_gru_cases(), gru_saturated_update_keeps_state, 20, settings)
    ev.update(examples=prop.examples, counterexample=prop.found)
    return Findings(proof_or_property(ok, not prop.ok), None, ev)


# ---------------------------------------------------------------------------------------------
# bidirectional-output-concatenates


def bidirectional_output_is_concatenation(case) -> bool:
    """A one-layer bidirectional model's output at t is [forward h_t, reverse h_t]: the first half equals the
    forward-direction model run on x, the second the reverse-direction model run on x reversed (then
    reversed back), exactly (the same arithmetic in the same order)."""
    model, x = case
    H, p = model.hidden_size, model.params
    cls = type(model)
    fwd = cls(x.shape[1], H, params={k: v for k, v in p.items() if not k.endswith("_reverse")})
    rev = cls(x.shape[1], H, params={k.replace("_reverse", ""): v for k, v in p.items() if k.endswith("_reverse")})
    out = model.forward(x).output
    return bool(
        np.array_equal(out[:, :H], fwd.forward(x).output)
        and np.array_equal(out[:, H:], rev.forward(x[::-1]).output[::-1])
    )


@st.composite
def _one_layer_bidirectional(draw):
    model, x = draw(bidirectional_cases())
    cls = type(model)
    return cls(model.input_size, model.hidden_size, bidirectional=True, seed=draw(st.integers(0, 2**16))), x


@claim(
    "bidirectional-output-concatenates",
    quotes=[
        Quote(
            "003",
            "Concatenated hidden states can be regarded as the outputs of the bidirectional RNN:",
            "Bidirectional RNNs",
        )
    ],
    precise="The output of a bidirectional RNN/LSTM/GRU layer at step t is the concatenation [h^fwd_t, h^rev_t] of the "
    "forward direction's state (run on x_1..x_t) and the reverse direction's (run on x_T..x_t), exactly (the model "
    "against its two directions run as separate unidirectional models).",
    proofs=("bidirectional_stacked",),
)
def check_bidirectional_output_concatenates(settings: AuditSettings) -> Findings:
    prop = holds(_one_layer_bidirectional(), bidirectional_output_is_concatenation, 15, settings)
    return Findings(property_held(not prop.ok), None, {"counterexample": None if not prop.ok else repr(prop.found[0])})
