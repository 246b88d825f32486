r"""Claims about the LRU (Orvieto et al. 2023): the exponential parametrisation and the :math:`\gamma`
normalisation (``gradtheory/cells/lru.py``; ``proofs/lru.tex``).

The paper could not be read here: its statements are quoted as they are commonly cited and marked
so. :math:`\partial x_T/\partial x_k = \operatorname{diag}(\lambda)^{T-k}` exactly, so everything is
in closed form; the checks compare the numeric model (its eigenvalues, Lyapunov spectrum, and its
hand-written backward used as an input-sensitivity oracle) with those closed forms.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..cells.lru import LRU
from ..flow import gradient_flow, lyapunov_spectrum
from ._core import AuditSettings, Findings, Quote, claim, counterexample, holds, proof_or_property
from ._numeric import derivation

# ln|lambda| from lyapunov_spectrum: T logs of exp(-e^nu) each exact to ~u relative, averaged: the
# error is ~2u |ln|lambda|| (no growth with T); 1e-14 absolute covers e^nu <= e^3 ~ 20 with margin.
SPECTRUM_ATOL = 1e-14
# E|x_{k,n}|^2 from the backward: sums over k <= 40 steps of |lambda|^(2j) gamma^2 |B|^2 terms, each a
# few roundings; relative error <= ~k * 10 u ~ 1e-13; 1e-11 relative with margin.
MOMENT_RTOL = 1e-11


def _stable_case(case) -> bool:
    nu, theta, seed = case
    model = LRU(2, nu.size, seed=seed, params=None)
    p = dict(model.params)
    p["nu_log_l0"], p["theta_log_l0"] = nu, theta
    model.params = p
    x = np.random.default_rng(seed).standard_normal((16, 2))
    lam = np.abs(model.eigenvalues())
    spec = lyapunov_spectrum(model, x)
    flow = gradient_flow(model, x, readout=np.ones(nu.size))
    return bool(
        np.all(lam <= 1.0)
        and np.all(lam[nu > -36.0] < 1.0)  # below ln 2^-53 ~ -36.7 exp(-e^nu) rounds to 1.0
        # the spectrum of the joint real state (Re x, Im x): each ln|lambda_n| twice
        and np.max(np.abs(spec + np.exp(np.concatenate([nu, nu]))))
        <= SPECTRUM_ATOL * max(1.0, float(np.max(np.exp(nu))))
        and np.all(np.diff(flow) >= -1e-15)  # the gradient never grows backward in time
    )


_CASES = st.tuples(
    st.integers(1, 4).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(-40, 3), min_size=n, max_size=n).map(np.array),
            st.lists(st.floats(-5, 2), min_size=n, max_size=n).map(np.array),
        )
    ),
    st.integers(0, 2**16),
).map(lambda t: (t[0][0], t[0][1], t[1]))


@claim(
    "lru-exponential-parametrization-stable",
    quotes=[
        Quote(
            "orvieto2023",
            "Parametrizing the eigenvalues as \u03bb = exp(\u2212exp(nu_log) + i exp(theta_log)) guarantees "
            "|\u03bb| < 1, i.e. a stable recurrence, for any value of the parameters (\u201cstable exponential "
            "parametrization\u201d; as commonly cited: the paper could not be read here)",
            "3.3",
        )
    ],
    precise="For every real nu_log, theta_log: |lambda| = exp(-e^nu) lies in (0, 1) and ln|lambda| = -e^nu, so "
    "dx_T/dx_k = diag(lambda)^(T-k) has spectral norm max|lambda|^(T-k) <= 1 (no explosion for any input) and the "
    "Lyapunov exponents are exactly -e^nu_n. Float64 caveat (checked): for nu_log below ln 2^-53 ~ -36.7 the "
    "computed |lambda| rounds to 1.0 (neutral, still not above 1).",
    proofs=("lru",),
)
def check_lru_exponential_parametrization_stable(settings: AuditSettings) -> Findings:
    d = derivation("lru")
    s = holds(_CASES, _stable_case, 25, settings)
    return Findings(
        proof_or_property(True, not s.ok),
        None,
        {
            "derivation": d.name,
            "derived_log_modulus": str(d.result["log_modulus"]),
            "examples": s.examples,
            "property": "|lambda| <= 1 (< 1 for nu_log > -36), lyapunov_spectrum == -exp(nu_log) to 1e-14, "
            "gradient_flow non-increasing backward; nu_log in [-40, 3]",
            "counterexample": None if s.found is None else [list(map(float, s.found[0])), list(map(float, s.found[1]))],
        },
    )


def _second_moments(model: LRU, k: int) -> np.ndarray:
    """E|x_{k,n}|^2 for white-noise input (E u u^T = I) from x_0 = 0, for each n, from the model's own
    backward: x_{k,n} = sum_t a_t . u_t, and d(Re x)/du, d(Im x)/du are its gradients for the final-state
    cotangents e_n on Re x (d_h_n) and on Im x (d_c_n)."""
    N, H = model.hidden_size, model.input_size
    r = model.forward(np.zeros((k, 1, H)))
    out = np.empty(N)
    zero = np.zeros((1, 1, N))
    for n in range(N):
        e = np.zeros((1, 1, N))
        e[0, 0, n] = 1.0
        g_re = model.backward(r, np.zeros((k, 1, H)), e, zero).x
        g_im = model.backward(r, np.zeros((k, 1, H)), zero, e).x
        out[n] = np.sum(g_re**2) + np.sum(g_im**2)
    return out


def _closed_form(model: LRU, k: int) -> np.ndarray:
    p = model.params
    B2 = np.sum(p["B_re_l0"] ** 2 + p["B_im_l0"] ** 2, axis=1)
    mod2 = np.exp(-2.0 * np.exp(p["nu_log_l0"]))
    return -np.expm1(k * np.log(mod2)) * B2  # (1 - |lambda|^(2k)) ||B_n||^2


def _refined_case(case) -> bool:
    seed, k, r_min = case
    model = LRU(3, 3, seed=seed, r_min=r_min, r_max=0.999)
    ref = _closed_form(model, k)
    return bool(np.max(np.abs(_second_moments(model, k) - ref) / ref) <= MOMENT_RTOL)


@claim(
    "lru-normalization-preserves-state-norm",
    quotes=[
        Quote(
            "orvieto2023",
            "The normalization factor \u03b3 = sqrt(1 \u2212 |\u03bb|^2) keeps the norm of the hidden state "
            "(and of the gradients) preserved at initialization, so that eigenvalues close to the unit circle do "
            "not blow up the forward pass (as commonly cited: the paper could not be read here)",
            "3.3",
        )
    ],
    precise="With white-noise input (E u u^T = I) and x_0 = 0, E|x_{k,n}|^2 is the same at every step k and equals "
    "its input scale ||B_n||^2, whatever lambda.",
    refinement="E|x_{k,n}|^2 = gamma_n^2 sum_{j<k} |lambda_n|^(2j) ||B_n||^2 = (1 - |lambda_n|^(2k)) ||B_n||^2: "
    "preserved (equal to ||B_n||^2, independent of lambda) in the stationary limit k -> oo (or from the stationary "
    "initial state), never above it; from x_0 = 0 it grows from gamma^2 ||B_n||^2. This is also the squared norm of "
    "the gradient of x_{k,n} with respect to the whole input sequence; the gradient with respect to the state is not "
    "preserved (|lambda_n|^(T-k), proofs/lru.tex).",
    proofs=("lru",),
)
def check_lru_normalization(settings: AuditSettings) -> Findings:
    d = derivation("lru")
    # counterexample to "the same at every k": k = 1 gives gamma^2 ||B_n||^2, k = 40 nearly ||B_n||^2
    model = LRU(3, 3, seed=7, r_min=0.9, r_max=0.999)
    m1, m40 = _second_moments(model, 1), _second_moments(model, 40)
    p = model.params
    B2 = np.sum(p["B_re_l0"] ** 2 + p["B_im_l0"] ** 2, axis=1)
    gam2 = model.gamma() ** 2
    found = bool(np.max(np.abs(m1 - m40) / m40) > 0.5)
    reverified = bool(np.max(np.abs(m1 - gam2 * B2) / (gam2 * B2)) <= MOMENT_RTOL)
    cases = st.tuples(st.integers(0, 2**16), st.integers(1, 40), st.floats(0.0, 0.99))
    s = holds(cases, _refined_case, 12, settings)
    return Findings(
        counterexample(found, reverified),
        proof_or_property(True, not s.ok),
        {
            "derivation": d.name,
            "derived_second_moment": str(d.result["second_moment"]),
            "counterexample": {
                "abs_lambda": [float(v) for v in np.abs(model.eigenvalues())],
                "E|x_1|^2": [float(v) for v in m1],
                "E|x_40|^2": [float(v) for v in m40],
                "||B_n||^2": [float(v) for v in B2],
            },
            "examples": s.examples,
            "property": "E|x_{k,n}|^2 from the model's backward (input sensitivities) == (1 - |lambda|^(2k)) ||B_n||^2 "
            "to 1e-11 relative, k in 1..40, |lambda| up to 0.999",
        },
    )
