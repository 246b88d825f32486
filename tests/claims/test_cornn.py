"""Claims of the coRNN paper (gradtheory/claims/cornn.py; proofs/cornn.tex)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gradtheory.cells.cornn import CoRNNCell
from gradtheory.claims import cornn as C
from gradtheory.claims import get_claim, run_claim


def test_hidden_states_bounded_uniformly_is_proved(audit):
    """|y_n^i| <= Y_n, |z_n^i| <= Z_n (sharp, weight-independent, converging): derived, held on 12 seeded
    models up to weight scale 30, and attained by the sign-pattern witness."""
    r = audit("cornn-bounded-hidden-states")
    assert r.status == "proved", r.verdict.evidence
    ev = r.verdict.evidence
    assert ev["held"] is True
    for case in ev["sharpness"].values():
        assert abs(case["model_y_T"] - case["Y_T"]) <= 1e-12 * case["Y_T"]
    # at the reference's sMNIST hyperparameters the overdamped bound on |y| is exactly 1/gamma
    assert abs(ev["defaults_Y_inf_Z_inf"][0] - 1 / 2.7) <= 1e-12
    # without damping the bound grows linearly in n (energy quadratically): epsilon > 0 is needed
    y2000, y4000 = ev["epsilon_0_Y_2000_Y_4000"]
    assert 1.8 < y4000 / y2000 < 2.2


@given(seed=st.integers(0, 10**6))
@settings(max_examples=15)
def test_every_unit_stays_within_its_linear_oscillator_bound(seed):
    """For any weights (scale up to 30) and inputs, tanh coRNN states obey |y_n^i| <= Y_n, |z_n^i| <= Z_n."""
    ok, evidence = C.state_bounds_hold(seed, T=120)
    assert ok, evidence


def test_an_undamped_step_breaks_the_state_bound_check(monkeypatch):
    """Test the tester: a step that forgets the damping -eps z makes the bounded-states claim unsettled."""

    def undamped(self, gi, gh, state):
        y_prev, z_prev = state
        a = gi + gh
        s = self.activation.phi(a)
        z = z_prev + self.dt * (s - self.gamma * y_prev)
        return (y_prev + self.dt * z, z), (a, s)

    monkeypatch.setattr(CoRNNCell, "step", undamped)
    r = run_claim(get_claim("cornn-bounded-hidden-states"))
    assert r.status == "unsettled", r.verdict.evidence
    assert r.verdict.evidence["held"] is False


def test_no_explosion_uniformly_in_n_is_refined(audit):
    """At the fixed point of a unit with W = 2 > gamma = 1 (dt = 1/16): p(1) = -1/256, an eigenvalue
    1.0389 > 1, gradient gain 4.3e6 after 400 steps (exact rationals; the model's BPTT agrees); the
    refinement (1 + dt Gamma)^{n-k} holds on 12 seeded models."""
    r = audit("cornn-gradients-do-not-explode")
    assert r.status == "refined", r.verdict.evidence
    ev = r.verdict.evidence
    assert ev["p_J0_at_1"] == "-1/256"
    assert ev["exact_gain_T"] > 1e6 and 1.03 < ev["growth_per_step"] < 1.05
    assert all(d["max_log_norm_minus_bound"] <= 0 for d in ev["row_sum_draws"])


def test_the_fixed_point_eigenvalue_exceeds_one_exactly():
    """p_{J0}(1) = -dt^2 (w - gamma) in rationals: the larger root of the characteristic polynomial is > 1."""
    J0 = C._exact_j0(Fraction(1, 16), Fraction(1), Fraction(1), Fraction(2))
    tr, det = J0[0][0] + J0[1][1], J0[0][0] * J0[1][1] - J0[0][1] * J0[1][0]
    assert 1 - tr + det == Fraction(-1, 256)
    assert det == Fraction(15, 16)


@given(seed=st.integers(0, 10**6))
@settings(max_examples=10)
def test_jacobian_products_obey_the_row_sum_bound(seed):
    """||J_K ... J_1||_inf <= (1 + dt Gamma)^K for seeded tanh coRNNs (proofs/cornn.tex, last step)."""
    ok, evidence = C.jacobian_row_sum_bound_holds(seed, T=60)
    assert ok, evidence


def test_a_backward_that_drops_the_position_path_is_caught(monkeypatch):
    """Test the tester: forgetting that z_n reaches the loss through y_n = y_{n-1} + dt z_n makes the
    BPTT disagree with the exact rows: both gradient claims become unsettled."""

    def no_position_path(self, d_state, cache):
        a, s = cache
        dy, dz = d_state
        da = (self.dt * dz) * self.activation.grad(a, s)
        return da, da, (dy - (self.dt * self.gamma) * dz, (1.0 - self.dt * self.epsilon) * dz)

    monkeypatch.setattr(CoRNNCell, "step_backward", no_position_path)
    for claim_id in ("cornn-gradients-do-not-explode", "cornn-gradients-do-not-vanish"):
        r = run_claim(get_claim(claim_id))
        assert r.status == "unsettled", (claim_id, r.verdict.basis)
        assert "counterexample" in r.verdict.basis


def test_no_vanishing_independent_of_n_minus_k_is_refined(audit):
    """W = W_z = 0, dt = 1/8, gamma = epsilon = 1: d s_n/d s_k = A^{n-k} with |lambda| = (7/8)^{1/2}; after
    200 steps the sensitivity is 2.3e-6 of its initial size (exact rationals; BPTT agrees); the determinant
    refinement is derived and holds on 8 seeded models."""
    r = audit("cornn-gradients-do-not-vanish")
    assert r.status == "refined", r.verdict.evidence
    ev = r.verdict.evidence
    assert ev["spectral_radius_squared"] == "7/8"
    assert ev["decay_ratio"] < 1e-5
    assert all(d["sigma_min"] <= d["bound"] for d in ev["determinant_draws"])


@given(seed=st.integers(0, 10**6))
@settings(max_examples=10)
def test_with_no_velocity_weight_every_step_shrinks_volume_by_one_minus_dt_epsilon(seed):
    """W_z = 0: log|det J_t| = m ln(1 - dt eps) for any W, input, and sigma_min of the product obeys the bound."""
    ok, evidence = C.unit_determinant_holds(seed)
    assert ok, evidence


def test_a_jacobian_with_the_wrong_damping_fails_the_determinant_refinement(monkeypatch):
    """Test the tester: a Jacobian with half the damping on dz/dz makes the vanishing claim unsettled."""
    original = CoRNNCell.step_jacobian

    def half_damping(self, cache, W_hh):
        J = original(self, cache, W_hh)
        H = J.shape[-1] // 2
        idx = np.arange(H)
        J[:, H + idx, H + idx] += 0.5 * self.dt * self.epsilon
        return J

    monkeypatch.setattr(CoRNNCell, "step_jacobian", half_damping)
    r = run_claim(get_claim("cornn-gradients-do-not-vanish"))
    assert r.status == "unsettled", r.verdict.evidence
    assert "refinement not established" in r.verdict.basis
