"""Claims about architectures: GRU vs LSTM size, residual connections, bidirectional models
(gradtheory/claims/architecture.py; proofs/gru.tex, proofs/residual_highway.tex,
proofs/bidirectional_stacked.tex)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from gradtheory.claims import architecture as C
from gradtheory.claims._numeric import derivation
from gradtheory.models import GRU, LSTM, RNN
from gradtheory.symbolic.residual_highway import highway_step

# --- gru-fewer-parameters --------------------------------------------------------------------


def test_gru_has_three_quarters_of_lstm_parameters_is_proved(audit):
    """#GRU / #LSTM = 3/4 symbolically for every size (proofs/gru.tex), checked against torch."""
    r = audit("gru-fewer-parameters")
    assert r.status == "proved", r.verdict.evidence
    assert set(r.verdict.evidence["symbolic_ratio_gru_over_lstm"].values()) == {"3/4"}


@example((4, 8, 1, False, True))
@given(st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 3), st.booleans(), st.booleans()))
def test_gru_parameter_and_multiply_add_counts_are_three_quarters_of_lstm(case):
    """4 #GRU = 3 #LSTM (ours == torch.nn == SymPy parameter_count), weights and biases alike."""
    assert C.parameter_ratio_holds(case)


def test_gru_and_lstm_counts_for_a_typical_size():
    """input 4, hidden 8: GRU 3*8*(4+8+2) = 336, LSTM 4*8*(4+8+2) = 448."""
    assert (GRU(4, 8).num_parameters(), LSTM(4, 8).num_parameters()) == (336, 448)


# --- residual-preserves-gradient -------------------------------------------------------------


def test_residual_preserves_gradient_is_refined(audit):
    """The identity path keeps singular values within [1 - ||J_F||, 1 + ||J_F||], not at 1."""
    assert audit("residual-preserves-gradient").status == "refined"


def test_residual_connection_can_kill_or_blow_up_the_gradient():
    """Counterexamples found by the audit, tanh residual RNN held at h = 0 (x = 0, tanh'(0) = 1):
    W_hh = -I gives J = I + W_hh = 0, so dh_1/dh_0 = 0 already; W_hh = diag(0, 1) gives J = diag(1, 2)
    and ||dh_20/dh_0|| = 2^20."""
    n, oracle = C.residual_fixed_point_norms(-np.eye(2), np.zeros(2))
    assert n[1] == 0.0 and np.all(oracle == 0.0)
    n, oracle = C.residual_fixed_point_norms(np.diag([0.0, 1.0]), np.zeros(2))
    assert n[-1] == 2.0**20
    np.testing.assert_array_equal(oracle, np.diag([1.0, 2.0**20]))


@given(C.residual_cases())
def test_residual_jacobian_singular_values_within_one_plus_minus_norm_of_branch(case):
    """sigma_i(I + J_F) in [1 - ||J_F||, 1 + ||J_F||] (Weyl); over T steps with eps = gamma ||W_hh|| < 1 the
    singular values of dh_T/dh_0 (== complex step) lie in [(1 - eps)^T, (1 + eps)^T]."""
    assert C.residual_singular_values_hold(case)


# --- bidirectional-not-for-lm ----------------------------------------------------------------


def test_bidirectional_not_for_lm_is_proved(audit):
    """y_t depends on x_{t+1} through the reverse direction (proofs/bidirectional_stacked.tex)."""
    r = audit("bidirectional-not-for-lm")
    assert r.status == "proved", r.verdict.evidence
    ev = r.verdict.evidence
    assert ev["symbolic_holds"] is True
    for name in ("direct", "formula"):
        assert set(ev["symbolic"][name]["forward_half_future"].values()) == {"0"}
        assert all(abs(float(v["value_phi_tanh"])) > 1e-2 for v in ev["symbolic"][name]["reverse_half_future"].values())


def test_derived_bidirectional_gradient_is_causal_forward_and_reads_the_future_backward():
    """proofs/bidirectional_stacked.tex, scalar layer, T = 3, generic phi: d(forward h_t)/dx_s simplifies
    to 0 for every s > t, d(reverse h_t)/dx_s for s > t is nonzero (phi = tanh, rational point)."""
    ok, ev = C.bidirectional_causality(derivation("bidirectional_stacked"))
    assert ok, ev
    assert len(ev["formula"]["reverse_half_future"]) == 3  # (t, s) = (1, 2), (1, 3), (2, 3)


def test_bidirectional_causality_check_rejects_a_forward_leak_or_a_missing_reverse_path():
    """The symbolic check is not vacuous: a forward term x_2 -> h^fwd_1 in the formula, or dropping
    the reverse output h^rev_1 from the derivative, makes it fail."""
    B = dict(derivation("bidirectional_stacked").result["bidirectional"])
    wf, _vf, _wb, _vb, _xs, gf, gb = B["symbols"]
    leak = dict(B, formula=[e + gf[0] * wf if q == 1 else e for q, e in enumerate(B["formula"])])
    assert not C.bidirectional_causality(SimpleNamespace(result={"bidirectional": leak}))[0]
    blind = dict(B, direct=[e.subs(gb[0], 0) for e in B["direct"]])
    assert not C.bidirectional_causality(SimpleNamespace(result={"bidirectional": blind}))[0]


def test_bidirectional_output_sees_the_next_token_and_forward_half_does_not():
    """RNN(1, 2, bidirectional=True, seed=0), T = 4: the forward half's Jacobian blocks are zero above
    the diagonal (causal), the reverse half's are nonzero above it (future inputs leak)."""
    model = RNN(1, 2, bidirectional=True, seed=0)
    B = C.output_jacobian_blocks(model, np.linspace(-1, 1, 4)[:, None])
    future = np.triu(np.ones((4, 4), dtype=bool), 1)
    assert np.all(B[0][future] == 0.0)
    assert np.all(B[1][future] > 0.0)


@given(C.bidirectional_cases())
def test_bidirectional_output_depends_on_future_inputs(case):
    """Exact zeros where there is no path (forward half of a single layer: dy_t/dx_s = 0 for s > t),
    nonzero where there is one (every y_t on x_{t+1}; with two layers even the forward half);
    BPTT's dL/dx agrees with complex step."""
    assert C.bidirectional_structure_holds(case)


def test_stacked_bidirectional_forward_half_is_not_causal():
    """Two bidirectional layers: the top layer's forward half reads the lower layer's reverse half,
    so dy^fwd_0/dx_1 != 0."""
    model = GRU(1, 2, num_layers=2, bidirectional=True, seed=1)
    B = C.output_jacobian_blocks(model, np.linspace(-1, 1, 3)[:, None])
    assert B[0, 0, 1] > 1e-3


# --- highway-gate-controls-identity ----------------------------------------------------------


def test_highway_gate_controls_identity_is_proved(audit):
    """J_t = diag(1 - T_t) + diag(T_t phi') W_F + diag((F - h) T (1 - T)) W_T (proofs/residual_highway.tex)."""
    r = audit("highway-gate-controls-identity")
    assert r.status == "proved", r.verdict.evidence
    ev = r.verdict.evidence["symbolic"]
    assert ev["dh_t_dh_{t-1}_closed"] == ev["dh_T_dh_{T-3}_closed"] == "[[1, 0], [0, 1]]"
    assert ev["dh_t_dh_{t-1}_open_minus_plain_rnn"] == "[[0, 0], [0, 0]]"


def test_closed_highway_gate_in_derived_jacobian_gives_identity_and_open_gate_the_plain_rnn_step():
    """proofs/residual_highway.tex: T = 0 in SymPy's highway Jacobian simplifies to I (and a product of
    three such steps to I); T = 1 gives exactly the plain RNN's d phi(a^F)/dh_{t-1}."""
    ok, ev = C.highway_gate_substitution(derivation("residual_highway"))
    assert ok, ev


def test_highway_gate_substitution_rejects_a_jacobian_without_the_full_carry():
    """The symbolic check is not vacuous: halve the carry term (1 - T_1) of the derived Jacobian and
    the closed gate no longer gives I."""
    J = derivation("residual_highway").result["highway_jacobian"].copy()
    J[0, 0] -= (1 - highway_step(2, "tanh")["T"][0]) / 2
    assert not C.highway_gate_substitution(SimpleNamespace(result={"highway_jacobian": J}))[0]


@given(C.highway_cases())
def test_highway_jacobian_weights_the_identity_by_the_carry_gate(case):
    """Model Jacobians == independent formula == SymPy's lambdified Jacobian; product == complex step."""
    assert C.highway_jacobian_holds(case)


@given(st.tuples(C.highway_cases("closed"), C.highway_cases("open")))
def test_closed_highway_gate_carries_the_gradient_and_open_gate_gives_the_plain_rnn_step(pair):
    """Transform gate closed (bias -60): dh_T/dh_0 = I to 1e-14; open (bias +60): J_t = diag(tanh'(a^F_t)) W_F."""
    assert C.highway_gate_limits_hold(pair)
