"""Claims about the selective SSM, as a specification (gradtheory/claims/selective_ssm.py;
proofs/selective_ssm.tex)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory.claims import selective_ssm as C


def test_selectivity_claim_is_proved(audit):
    """exp(Delta A) -> 0 (reset) as Delta -> oo and -> 1 (persist) as Delta -> 0, model and SymPy."""
    r = audit("s6-selectivity-delta")
    assert r.status == "proved", r.verdict.evidence
    assert r.verdict.evidence["reset_b_delta_60"] and r.verdict.evidence["persist_b_delta_minus_60"]


def test_never_explode_claim_is_proved_and_exhibits_vanishing(audit):
    """||dh_T/dh_k|| <= 1 for every input; at Mamba's initialisation the gradient still vanishes."""
    r = audit("s6-state-gradients-never-explode")
    assert r.status == "proved", r.verdict.evidence
    w = r.verdict.evidence["vanishing_witness"]
    assert w["ln_grad_norm"] < -2.0 and abs(w["ln_grad_norm"] - w["closed_form"]) <= C.WITNESS_ATOL


@given(b=st.floats(-10, 10), seed=st.integers(0, 2**16))
def test_the_state_gradient_decreases_monotonically_in_delta(b, seed):
    """d/dDelta exp(Delta A) = A exp(Delta A) < 0: raising b_delta (larger Delta) lowers every factor
    (proofs/selective_ssm.tex, step 3)."""
    x = np.random.default_rng(seed).standard_normal((5, 2))
    lo, hi = C._model(2, 3, seed, b_delta=b), C._model(2, 3, seed, b_delta=b + 1.0)
    J_lo = np.diagonal(lo.jacobians(lo.forward(x)), axis1=1, axis2=2)
    J_hi = np.diagonal(hi.jacobians(hi.forward(x)), axis1=1, axis2=2)
    assert np.all(J_hi <= J_lo)


def test_a_transition_above_one_fails_the_never_explode_property():
    """Test the tester: the claim's property accepts the model's Jacobians and rejects the same
    trajectory with the sign of A flipped (exp(+Delta |A|) > 1, an unstable SSM)."""
    m = gt.SelectiveSSM(2, 3, seed=0)
    r = m.forward(np.random.default_rng(0).standard_normal((4, 2)))
    assert C._contractive(m.jacobians(r))
    Abar = r.traces[0].ctx["Abar"]  # each step's cache is a view of it
    Abar[...] = 1.0 / Abar  # exp(-Delta A) = exp(+Delta |A|)
    assert not C._contractive(m.jacobians(r))


def test_small_delta_long_memory_claim_is_refined_to_delta_of_order_one_over_the_horizon(audit):
    """A fixed small Delta still vanishes over 10^4 steps (Mamba's init: exp(-T min Delta_0)); persistence
    needs sum Delta |A| <= 1 (proofs/selective_ssm.tex, step 5)."""
    r = audit("s6-small-delta-long-memory")
    assert r.status == "refined", r.verdict.evidence
    ev = r.verdict.evidence["counterexample"]
    assert ev["ln_grad_slowest_entry"] < -1.0


def test_horizon_property_rejects_a_step_too_large_for_the_horizon():
    """Test the tester: c = 1 is on the edge (kept), the same property with c > 1 fails its >= 1/e check."""
    assert C._horizon_case((500, 1.0, 0))
    assert not C._horizon_case((500, 1.5, 0))
