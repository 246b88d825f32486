"""Claims about the LRU, as a specification (gradtheory/claims/lru.py; proofs/lru.tex)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory.cells.lru import LRUCell
from gradtheory.claims import lru as C


def test_exponential_parametrization_claim_is_proved(audit):
    """|lambda| = exp(-e^nu) < 1 for every real nu (SymPy) and the model's Lyapunov spectrum is -e^nu."""
    r = audit("lru-exponential-parametrization-stable")
    assert r.status == "proved", r.verdict.evidence


def test_normalization_claim_is_refined_to_one_minus_lambda_to_the_2k(audit):
    """E|x_k|^2 is not constant from x_0 = 0; it is (1 - |lambda|^(2k)) ||B_n||^2, stationary ||B_n||^2."""
    r = audit("lru-normalization-preserves-state-norm")
    assert r.status == "refined", r.verdict.evidence
    ev = r.verdict.evidence["counterexample"]
    assert max(ev["E|x_1|^2"]) < min(ev["E|x_40|^2"])


@given(seed=st.integers(0, 2**16), k=st.integers(1, 30))
def test_second_moment_from_the_backward_is_the_closed_form(seed, k):
    """E|x_{k,n}|^2 (white noise, x_0 = 0) = (1 - |lambda_n|^(2k)) ||B_n||^2 (proofs/lru.tex, step 7),
    the model's backward read as input sensitivities against the closed form from the parameters."""
    model = gt.LRU(2, 3, seed=seed, r_min=0.3, r_max=0.99)
    got, ref = C._second_moments(model, k), C._closed_form(model, k)
    assert np.max(np.abs(got - ref) / ref) <= C.MOMENT_RTOL


def test_second_moment_matches_a_monte_carlo_estimate_within_its_standard_error():
    """Independent of the backward: 20000 white-noise sequences through forward; the sample mean of
    |x_{k,n}|^2 is within 5 standard errors of (1 - |lambda|^(2k)) ||B_n||^2 (fixed seed: deterministic)."""
    model = gt.LRU(2, 3, seed=4, r_min=0.5, r_max=0.95)
    k, n_samples = 8, 20000
    u = np.random.default_rng(0).standard_normal((k, n_samples, 2))
    r = model.forward(u)
    xk = gt.LRU.complex_state(r.h_n, r.c_n)[0]  # (n_samples, 3)
    sq = np.abs(xk) ** 2
    mean, se = sq.mean(axis=0), sq.std(axis=0) / np.sqrt(n_samples)
    assert np.all(np.abs(mean - C._closed_form(model, k)) <= 5 * se)


def test_a_mis_normalised_lru_fails_the_refined_identity():
    """Test the tester: with gamma replaced by 1 (no normalisation) the identity fails by 1/gamma^2."""
    model = gt.LRU(2, 3, seed=1, r_min=0.8, r_max=0.95)

    class Unnormalised(LRUCell):
        def project(self, x, p):
            inputs, ctx = super().project(x, p)
            g = ctx["gamma"]
            return [(lr, li, wr / g, wi / g) for lr, li, wr, wi in inputs], {**ctx, "gamma": np.ones_like(g)}

    bad = gt.RecurrentModel(2, 3, cell=Unnormalised(), params=model.params)
    ratio = C._second_moments(bad, 20) / C._closed_form(model, 20)
    assert np.all(np.abs(ratio - 1 / model.gamma() ** 2) <= 1e-10 * ratio)
    assert np.all(ratio > 1.5)
