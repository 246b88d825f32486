"""The statements found line by line in the seeds, as a specification: each test states what the
audit establishes about one claim (its status is computed by the check; the numbers asserted here are
the check's evidence, recomputed where cheap). Derivations under proofs/ named in each docstring."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradtheory.claims import all_claims
from gradtheory.claims import gates as G
from gradtheory.claims import products as P
from gradtheory.claims import structure as S
from gradtheory.claims._sources import DOCUMENTS, SEED_KEYS, cite

_SEEDS = [Path(__file__).resolve().parents[3] / "shared" / "seeds", Path("/work/shared/seeds")]
SEED_DIR = next((p for p in _SEEDS if p.is_dir()), None)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# --- sources ---------------------------------------------------------------------------------


@pytest.mark.skipif(SEED_DIR is None, reason="the seed documents (shared/seeds/) are not next to this checkout")
def test_every_seed_quote_occurs_verbatim_in_its_seed():
    """Each quote attributed to a seed is a verbatim substring of that seed's text (whitespace normalised)."""
    texts = {k: _normalise((SEED_DIR / DOCUMENTS[k].file).read_text(encoding="utf-8")) for k in SEED_KEYS}
    missing = [
        (c.id, q.doc, q.text[:60])
        for c in all_claims()
        for q in c.quotes
        if q.doc in texts and _normalise(q.text) not in texts[q.doc]
    ]
    assert missing == []


def test_sources_are_cited_by_title_author_date_and_section_never_by_file_name():
    """A source reads as title, author, date, section (gradtheory/claims/_sources.py), never as a seed file name."""
    assert (
        cite("002", "Summary")
        == "\u201cRNN and Vanishing/Exploding Gradients\u201d, jinhaochan, 2019-06-23, \u00a7 Summary"
    )
    assert cite("003") == "\u201cVanishing Gradients, Fancy RNNs\u201d, author not named, undated"
    for c in all_claims():
        assert "_" not in c.source.split("\u00a7")[0] or "clip_grad_value_" in c.source, c.source


def test_every_seed_has_checkable_statements_in_the_registry():
    """Each of the five seeds contributes at least 10 quotes, and more than 55 claims quote a seed."""
    per_seed = {k: sum(1 for c in all_claims() for q in c.quotes if q.doc == k) for k in SEED_KEYS}
    assert all(n >= 10 for n in per_seed.values()), per_seed
    assert sum(1 for c in all_claims() if any(q.doc in SEED_KEYS for q in c.quotes)) > 55


# --- the recurrence: shared weights, gradient as a sum over time -------------------------------


def test_weight_gradient_is_a_sum_over_steps_so_the_seed004_single_chain_is_refined(audit):
    """dE_k/dW = sum_t dE_k/dc_k (prod dc_j/dc_{j-1}) d+c_t/dW, newest term without product (proofs/rnn_bptt.tex);
    the oldest chain alone differs from it (sigmoid, T = 3)."""
    r = audit("error-gradient-single-chain")
    assert r.status == "refined" and r.verdict.basis.endswith("refinement proved (derivation)")
    sym = S.shared_weight_derivative()
    assert sym["sum_equals_tied"] and sym["newest_has_no_product"] and sym["chain_differs"]


@given(S._weight_cases())
def test_bptt_weight_gradient_equals_the_sum_of_untied_per_step_gradients(case):
    """Model BPTT dL/dW_hh == sum_t dL/dW_t of the untied model (complex step) == tied complex step."""
    assert S.weight_gradient_is_sum_of_contributions(case)


def test_rnn_shares_weights_and_recurrent_weights_get_a_gradient_proved(audit):
    """One parameter set for every length T (21 gradient entries for RNN(2, 3) at T = 1, 10, 100); the shared
    gradient is the sum of the per-step ones (proofs/rnn_bptt.tex)."""
    assert audit("rnn-shares-weights").status == "proved"
    assert audit("recurrent-weights-tweaked").status == "proved"
    assert audit("rnn-shares-weights").verdict.evidence["gradient_entries_for_T_1_10_100"] == {1: 21, 10: 21, 100: 21}


def test_complete_gradient_does_not_vanish_refuted(audit):
    """Seed 004's sigmoid RNN with W_rec = I/2: ||dE_k/dW_rec|| settles to a nonzero limit (k = 10..80)
    while the oldest term is < 1e-30: only the long-range part vanishes."""
    r = audit("complete-gradient-vanishes")
    assert r.status == "refuted"
    norms = list(r.verdict.evidence["norm_dE_k_dW_rec"].values())
    assert min(norms) > 0.1 and max(norms) - min(norms) <= 1e-6 * max(norms)


def test_state_is_a_causal_summary_and_a_step_reads_only_x_t_and_h_prev(audit):
    """h_t depends on x_1..x_t only (dh_t/dx_s = 0 for s > t, != 0 for s <= t), one step reads x_t and h_{t-1}."""
    sym = S.unrolled_dependencies()
    assert sym["deps"][3] == ["x1", "x2", "x3"] and sym["step_reads"] == ["h_prev", "v", "w", "x4"]
    for claim_id in (
        "state-summarises-past",
        "two-sources-of-input",
        "outputs-cycle-back",
        "feedforward-forgets-letters",
    ):
        assert audit(claim_id).status == "proved", claim_id


def test_one_step_reading_does_not_make_memory_short_refined(audit):
    """W_hh = W_ih = I at the fixed point 0: dh_50/dx_1 = I exactly; memory fades only when
    gamma ||W_hh|| < 1 (||dh_T/dx_k|| <= gamma ||W_ih|| (gamma ||W_hh||)^(T-k))."""
    exact, numeric, ev = S.identity_memory_witness()
    assert exact and numeric
    np.testing.assert_array_equal(ev["dh_T_dx_1_complex_step"], np.eye(2))
    assert audit("short-term-memory").status == "refined"


def test_the_recurrent_input_adds_h_squared_weights_not_one_refined(audit):
    """#RNN - #Linear = H^2 (+ H bias): 4 for H = 2, one weight only for a single neuron (torch as oracle)."""
    r = audit("one-additional-weight")
    assert r.status == "refined"
    assert r.verdict.evidence["H=2, I=3, no bias: RNN - Linear"] == 4
    assert r.verdict.evidence["H=1, I=3, no bias: RNN - Linear"] == 1
    assert S.extra_recurrent_weights_hold((3, 5, True))


def test_concatenated_weight_matrix_is_the_bias_free_sigmoid_rnn_proved(audit):
    """[W_rec, W_in][c; x] = W_rec c + W_in x; dc_t/dc_{t-1} = diag(sigma') W_rec (proofs/seed004_sigmoid.tex)."""
    assert audit("concatenated-weights").status == "proved"


# --- products of factors ---------------------------------------------------------------------


def test_a_factor_of_norm_above_one_can_have_vanishing_powers_refined(audit):
    """J = [[1/2, 4], [0, 1/2]]: ||J||_2 > 4 but J^n -> 0 (SymPy closed form); rho(J) > 1 is what explodes."""
    lim = P.power_limits(P.NON_NORMAL)
    assert lim["spectral_norm"] > 4 and lim["limit"].is_zero_matrix
    assert audit("gradient-above-one-explodes").status == "refined"
    assert audit("gradient-below-one-vanishes").status == "proved"


def test_orthogonal_recurrence_neither_explodes_nor_vanishes_so_many_steps_claims_are_refined(audit):
    """W_hh = rotation by 90 degrees at h = 0: ||dh_T/dh_0|| = 1 exactly for every T."""
    exact, numeric, ev = P.rotation_witness()
    assert exact and numeric and set(ev["norm_dh_t_dh_0_every_10_steps"]) == {1.0}
    for claim_id in ("many-steps-explode-or-vanish", "simple-rnn-causes-vanishing", "faraway-signal-smaller"):
        assert audit(claim_id).status == "refined", claim_id


@given(P._small_factor_lists())
def test_product_of_small_factors_is_bounded_by_the_product_of_their_norms(factors):
    """||J_T ... J_1||_2 <= prod ||J_t||_2 for different factors, exact rational product as oracle (proofs/norm_bound.tex)."""
    assert P.product_bound_holds(factors)


def test_twenty_sigmoid_layers_scale_the_gradient_by_exactly_four_to_the_minus_twenty(audit):
    """y_l = sigma(y_{l-1} - 1/2) at y = 1/2: dy_20/dy_0 = 4^-20 I exactly (proofs/activation_bounds.tex)."""
    exact, numeric, _ = P.sigmoid_chain_witness()
    assert exact and numeric and audit("deep-chain-vanishes").status == "proved"
    assert audit("gradient-problems-occur").status == "proved"
    assert audit("small-factors-vanish").status == "proved"
    assert audit("gradient-multiplies-by-W-each-step").status == "proved"


# --- gates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claim_id",
    [
        "forget-gate-erases",
        "input-gate-writes",
        "output-gate-reveals",
        "gates-are-dynamic",
        "lstm-vectors-same-length",
        "tanh-pushes-to-minus-one-one",
        "cell-state-not-passed",
    ],
)
def test_each_gate_does_what_the_seed_says_at_its_limits_proved(audit, claim_id):
    """f = 0 erases, f = 1 keeps; i = 0 writes nothing; o = 0 reveals nothing (SymPy substitution into
    proofs/lstm.tex's step and saturated biases in the model)."""
    assert audit(claim_id).status == "proved", audit(claim_id).verdict.evidence


@given(G._CASES)
def test_a_saturated_forget_gate_erases_or_keeps_the_cell(case):
    """Forget bias -60: c_t = i_t g_t; +60: c_t = c_{t-1} + i_t g_t, in the model (proofs/lstm.tex)."""
    assert G.saturated_gate_holds(case, "f", 0) and G.saturated_gate_holds(case, "f", 1)


def test_the_candidate_sets_what_is_written_and_the_input_gate_how_much_refined(audit):
    """With i = 0 nothing is written whatever g; the write i g ranges over (-1, 1), never +-1 (proofs/lstm.tex)."""
    assert audit("candidate-gate-controls-amount").status == "refined"
    assert audit("cell-counts-by-plus-minus-one").status == "refined"


@given(st.floats(-0.99, 0.99))
def test_every_value_in_minus_one_one_is_a_possible_write(w):
    """i = sigma(10), g = tanh(atanh(w / i)) writes w, for every w in (-0.99, 0.99)."""
    assert G.write_attains(w)


def test_an_lstm_gradient_can_explode_so_avoiding_exploding_is_refined_to_the_cell_path(audit):
    """Fixed point (h, c) = 0 with W_hg = 4, b_i = b_o = 2, b_f = -2: largest eigenvalue
    4 sigma(2)^2 + sigma(-2) ~ 3.22 (SymPy); only prod diag(f_t) in (0, 1) cannot explode."""
    exact, numeric, ev = G.exploding_lstm_witness()
    assert exact and numeric and ev["largest_eigenvalue"].endswith("= 3.2224169")
    assert audit("lstm-avoids-exploding").status == "refined"
    assert audit("gated-more-resilient").status == "refined"


# --- clipping, steps, architectures ----------------------------------------------------------


def test_clipping_never_enlarges_a_component_so_it_is_no_fix_for_vanishing_refuted(audit):
    """Norm clipping multiplies by min(1, theta/(N + 1e-6)) <= 1 (proofs/clipping.tex): no fix for vanishing."""
    r = audit("clipping-fixes-vanishing")
    assert r.status == "refuted" and r.verdict.basis.startswith("statement fails (negation derived)")


def test_sgd_step_scales_with_the_gradient_and_too_large_steps_reach_inf_proved(audit):
    """||lr g|| = lr ||g|| (torch.optim.SGD as oracle); lr = 10 on w^2/2 multiplies w by -9 each step until Inf."""
    assert audit("sgd-step-proportional-to-gradient").status == "proved"
    assert audit("big-step-bad-configuration").status == "proved"


def test_gru_does_three_quarters_of_the_lstm_arithmetic_its_update_gate_keeps_or_replaces_and_bidirectional_outputs_concatenate(
    audit,
):
    """GRU multiply-adds = 3/4 of LSTM's (proofs/gru.tex); z = 1 keeps h, z = 0 replaces it by n; a
    bidirectional output is [forward run, reverse run]; a skip connection bounds the decay (proofs/residual_highway.tex)."""
    for claim_id in ("gru-quicker-to-compute", "gru-update-gate-remembers-or-updates"):
        assert audit(claim_id).status == "proved", claim_id
    assert audit("bidirectional-output-concatenates").status == "verified"
    assert audit("skip-connections-fix-vanishing").status == "refined"
