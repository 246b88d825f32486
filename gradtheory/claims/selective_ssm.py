r"""Claims about the selective SSM (S6 of Mamba, Gu & Dao 2023): what :math:`\Delta` does to the state
and to its gradient (``gradtheory/cells/selective_ssm.py``; ``proofs/selective_ssm.tex``).

The paper could not be read here: its statements are quoted as they are commonly cited and marked
so. The one-step Jacobian is :math:`\operatorname{diag}(e^{\Delta_t A})`; the checks compare the
model's Jacobians and states with it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..cells.selective_ssm import SelectiveSSM
from ..flow import gradient_flow
from ._core import AuditSettings, Findings, Quote, claim, counterexample, derived, holds, proof_or_property
from ._numeric import derivation


def _model(D: int, N: int, seed: int, b_delta: float | None = None, A_log=None) -> SelectiveSSM:
    m = SelectiveSSM(D, N, seed=seed)
    p = dict(m.params)
    if b_delta is not None:
        p["b_delta_l0"] = np.full(D, float(b_delta))
    if A_log is not None:
        p["A_log_l0"] = np.asarray(A_log, float)
    m.params = p
    return m


# Reset: with b_delta = 60 and |x| <= 1, Delta >= ~59 and |A| >= 1, so every factor is <= e^-59 ~ 2e-26,
# and h_t equals its input term Delta B_t x_t up to e^-59 |h_{t-1}| plus ~u relative rounding.
RESET_TOL = 1e-20
# Persist: b_delta = -60 gives Delta = softplus(.) ~ e^-60 ~ 9e-27, factors exp(-Delta |A|) round to 1.0
# (|A| <= 4 here: Delta |A| << u), and the input term is ~1e-26 |B x|.
PERSIST_TOL = 1e-20


@claim(
    "s6-selectivity-delta",
    quotes=[
        Quote(
            "gu2023",
            "A large Delta resets the state h and focuses on the current input x, while a small Delta persists "
            "the state and ignores the current input (interpretation of Delta; as commonly cited: the paper could "
            "not be read here)",
            "3.5.2",
        )
    ],
    precise="dh_t/dh_{t-1} = diag(exp(Delta_t A)) with every entry in (0, 1); it tends to 0 as Delta -> oo (h_t -> "
    "Delta_t B_t x_t: the state is a function of the current input only) and to 1 as Delta -> 0 (h_t -> h_{t-1}: "
    "the input term Delta B x -> 0 too). Numerically: Delta ~ 60 gives factors below 1e-20 and h_t == its input "
    "term; Delta ~ 1e-26 gives factors == 1.0 and h_t == h_{t-1}.",
    proofs=("selective_ssm",),
)
def check_s6_selectivity(settings: AuditSettings) -> Findings:
    d = derivation("selective_ssm")
    x = np.random.default_rng(0).uniform(-1, 1, (6, 2))
    h0 = np.random.default_rng(1).standard_normal((1, 2 * 4))  # (layers, D*N)
    big = _model(2, 4, 0, b_delta=60.0)
    r = big.forward(x, h0)
    tr = r.traces[0]
    input_term = ((tr.ctx["delta"] * tr.x)[..., None] * tr.ctx["Bt"][..., None, :]).reshape(tr.states[0][1:].shape)
    reset = bool(
        np.max(np.diagonal(big.jacobians(r), axis1=1, axis2=2)) <= RESET_TOL
        and np.max(np.abs(tr.states[0][1:] - input_term)) <= RESET_TOL + 4e-16 * np.max(np.abs(input_term))
    )
    small = _model(2, 4, 0, b_delta=-60.0)
    r = small.forward(x, h0)
    diag = np.diagonal(small.jacobians(r), axis1=1, axis2=2)
    persist = bool(np.all(diag == 1.0) and np.max(np.abs(r.traces[0].states[0][1:] - h0[None])) <= PERSIST_TOL)
    return Findings(
        derived(True, reset and persist),
        None,
        {
            "derivation": d.name,
            "derived_jacobian": str(d.result["jacobian"]),
            "reset_b_delta_60": reset,
            "persist_b_delta_minus_60": persist,
        },
    )


def _products_bounded(case) -> bool:
    seed, T, scale, b = case
    m = _model(2, 3, seed, b_delta=b, A_log=np.random.default_rng(seed).uniform(-3, 3, (2, 3)))
    x = np.random.default_rng(seed + 1).standard_normal((T, 2)) * scale
    return _contractive(m.jacobians(m.forward(x)))


def _contractive(J: np.ndarray) -> bool:
    """One sequence's one-step Jacobians (T, S, S): diagonal, entries in (0, 1], every product <= 1."""
    d = np.diagonal(J, axis1=1, axis2=2)
    off = J * (1 - np.eye(J.shape[-1]))
    prods = np.cumprod(d[::-1], axis=0)  # the entries of dh_T/dh_k for k = T-1, ..., 0
    return bool(np.all(off == 0) and np.all(d > 0) and np.all(d <= 1.0) and np.all(prods <= 1.0))


# Vanishing witness: Mamba's initialisation (A_dn = -(n+1), Delta_0 in [1e-3, 0.1]), N = 16, zero input so
# Delta = Delta_0 exactly: ln||dh_T/dh_0||_2 = max_{d,n} -(n+1) T Delta_{0,d} = -T min_d Delta_{0,d}, and the
# gradient of the n = 16 mode is exp(-16 T Delta_0). The flow adds T logs each ~u relative: 1e-9 absolute at T = 2000.
WITNESS_T = 2000
WITNESS_ATOL = 1e-9


@claim(
    "s6-state-gradients-never-explode",
    quotes=[
        Quote(
            "gu2023",
            "With A < 0 and Delta > 0 the discretised transition exp(DeltaA) is contractive, so the selective "
            "recurrence is stable and its gradients do not explode (as commonly cited for S6/Mamba: the paper could "
            "not be read here)",
            "3",
        )
    ],
    precise="For every input and parameter: ||dh_T/dh_k||_2 = max_{d,n} exp(A_dn sum_{t>k} Delta_{t,d}) <= 1 (the "
    "gradient through the state never grows); it can vanish: the witness at Mamba's initialisation has "
    "ln||dh_T/dh_0||_2 = -T min_d Delta_0,d exactly (gradient_flow), and the N = 16 mode decays like exp(-16 T Delta_0).",
    proofs=("selective_ssm",),
)
def check_s6_never_explode(settings: AuditSettings) -> Findings:
    d = derivation("selective_ssm")
    cases = st.tuples(st.integers(0, 2**16), st.integers(1, 30), st.sampled_from([0.1, 1.0, 5.0]), st.floats(-8.0, 8.0))
    s = holds(cases, _products_bounded, 20, settings)
    m = SelectiveSSM(2, 16, seed=0)
    x = np.zeros((WITNESS_T, 2))
    flow = gradient_flow(m, x, readout=np.ones(32) / np.sqrt(32))
    delta0 = np.logaddexp(0.0, m.params["b_delta_l0"])
    # ||(prod factors) r|| with r uniform: ln( sqrt(sum_{d,n} exp(2 T A_dn Delta_d)) / sqrt(32) )
    logs = (WITNESS_T * (-np.exp(m.params["A_log_l0"])) * delta0[:, None]).ravel()
    ref = np.max(logs) + 0.5 * np.log(np.sum(np.exp(2 * (logs - np.max(logs))))) - 0.5 * np.log(32)
    witness = bool(abs(flow[0] - ref) <= WITNESS_ATOL and flow[0] < -2.0)
    return Findings(
        proof_or_property(True, not s.ok and witness),
        None,
        {
            "derivation": d.name,
            "examples": s.examples,
            "property": "every factor exp(Delta A) in (0, 1] and every product of them <= 1 (model.jacobians), "
            "A_log in [-3, 3], b_delta in [-8, 8], inputs up to scale 5",
            "vanishing_witness": {"T": WITNESS_T, "ln_grad_norm": float(flow[0]), "closed_form": float(ref)},
            "counterexample": None if s.found is None else [float(v) for v in s.found[1:]],
        },
    )


# Persistence witness: Mamba's initialisation with zero input (Delta = Delta_0 exactly), horizon 10^4: the
# slowest entry (A = -1, smallest Delta_0) decays to exp(-T min Delta_0); gradient_flow with that entry's
# readout against the closed form, T logs each ~u relative: 1e-9 absolute.
PERSIST_T = 10_000


def _horizon_case(case) -> bool:
    """Delta_t = c / (L |A|) for every t over a horizon L: the gradient of the slowest entry is exactly e^-c
    (c <= 1: it persists, >= 1/e); gradient_flow against the closed form."""
    L, c, seed = case
    m = _model(1, 1, seed, A_log=np.zeros((1, 1)))  # A = -1
    m.params = {**m.params, "W_delta_l0": np.zeros((1, 1)), "b_delta_l0": np.array([np.log(np.expm1(c / L))])}
    flow = gradient_flow(m, np.zeros((L, 1)), readout=np.ones(1))
    return bool(abs(flow[0] + c) <= 1e-9 * max(1.0, c) and flow[0] >= -1.0 - 1e-12)


@claim(
    "s6-small-delta-long-memory",
    quotes=[
        Quote(
            "gu2023",
            "A small Delta persists the state, so the selective SSM can remember its context over very long "
            "sequences (as commonly cited: the paper could not be read here)",
            "3.5.2",
        )
    ],
    precise="With the step small and fixed (Mamba's initialisation, Delta_0 in [1e-3, 0.1], A_dn = -(n+1)), the "
    "gradient through the state persists (stays above 1/e) over long horizons such as T = 10^4.",
    refinement="||dh_T/dh_k||_2 = max_{d,n} exp(A_dn sum_{t>k} Delta_{t,d}); it stays >= 1/e exactly when some entry "
    "has sum_{t>k} Delta_{t,d} |A_dn| <= 1: 'small' must be relative to the horizon, Delta = O(1/((T-k)|A|)); any fixed "
    "Delta > 0 vanishes like exp(-(T-k) Delta |A|).",
    proofs=("selective_ssm",),
)
def check_s6_small_delta_long_memory(settings: AuditSettings) -> Findings:
    d = derivation("selective_ssm")
    m = SelectiveSSM(2, 16, seed=0)
    delta0 = np.logaddexp(0.0, m.params["b_delta_l0"])
    slow = int(np.argmin(delta0)) * 16  # entry (d, n = 0): A = -1, the slowest decay
    r = np.zeros(32)
    r[slow] = 1.0
    flow = gradient_flow(m, np.zeros((PERSIST_T, 2)), readout=r)
    ln_best = -PERSIST_T * float(delta0.min())  # the slowest entry: every other decays faster
    found = bool(flow[0] < -1.0)
    reverified = bool(abs(flow[0] - ln_best) <= 1e-9 * abs(ln_best))
    cases = st.tuples(st.integers(1, 3000), st.floats(0.01, 1.0), st.integers(0, 2**16))
    s = holds(cases, _horizon_case, 15, settings)
    return Findings(
        counterexample(found, reverified),
        proof_or_property(True, not s.ok),
        {
            "derivation": d.name,
            "counterexample": {
                "T": PERSIST_T,
                "min_Delta_0": float(delta0.min()),
                "ln_grad_slowest_entry": float(flow[0]),
                "closed_form": ln_best,
            },
            "examples": s.examples,
            "property": "Delta = c/(L|A|) over horizon L gives ln||dh_L/dh_0|| = -c exactly (gradient_flow), c in [0.01, 1]",
        },
    )
