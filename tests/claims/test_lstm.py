"""Claims about the LSTM, as a specification (gradtheory/claims/lstm.py; proofs/lstm.tex).

torch's cell: c_t = f_t c_{t-1} + i_t g_t, h_t = o_t tanh(c_t), gates i, f, o = sigma(.), g = tanh(.).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gradtheory.claims import lstm as C
from gradtheory.claims._numeric import derivation, jacobian_products, norms
from gradtheory.models import LSTM
from gradtheory.symbolic.lstm import lstm_step

# LSTM_W_PATH_EXACT_ABS (absolute tolerance): Absolute: the W_hh-path counterexample has gates
# exactly 1/2 and g = 0, so dc_2/dc_0 = diag(1/4, 1/2) and prod f = diag(1/4, 1/4) are sums of
# products of exactly representable numbers; only the complex-step and the tanh/sigmoid evaluations
# round: ~ u on entries <= 1/2.
LSTM_W_PATH_EXACT_ABS = 1e-16
# LSTM_CELL_CLOSED_FORM (relative tolerance): c_1 = sigma(1) tanh(2) from the model vs recomputed:
# the same library exp/tanh and one product, in a possibly different order: a few u.
LSTM_CELL_CLOSED_FORM = 1e-15
# LSTM_CELL_CHANGE_CLOSED_FORM (relative tolerance): c_2 - c_1 vs -1.5 c_1: c_2 = f c_1 + i g is a
# few u accurate and the subtraction c_2 - c_1 has no cancellation (opposite signs): ~ 10 u
# relative.
LSTM_CELL_CHANGE_CLOSED_FORM = 1e-14


def _params(W_ih, W_hh, b_ih, b_hh):
    return {
        "weight_ih_l0": np.array(W_ih, float),
        "weight_hh_l0": np.array(W_hh, float),
        "bias_ih_l0": np.array(b_ih, float),
        "bias_hh_l0": np.array(b_hh, float),
    }


# --- lstm-cell-gradient-only-forget-gate -----------------------------------------------------

# Found by the audit's search (gradtheory/claims/_stored.py 'lstm-W-path'): H = 2, every parameter 0
# except W_hg[1, 1] = 2 (row 5 of weight_hh: gate g, unit 2, reading h_2), x = 0, h_0 = c_0 = 0, T = 2.
_W = np.zeros((8, 2))
_W[5, 1] = 2.0
W_PATH = (_params(np.zeros((8, 1)), _W, np.zeros(8), np.zeros(8)), np.zeros((2, 1)), np.zeros(2), np.zeros(2))


def test_only_forget_gate_claim_is_refined(audit):
    """Element-wise by f only along the direct cell path; W_hh enters the total derivative."""
    r = audit("lstm-cell-gradient-only-forget-gate")
    assert r.status == "refined", r.verdict.evidence


def test_total_cell_gradient_passes_through_w_hh():
    """Counterexample: all gates 1/2, g = 0 at every step, so prod f_t = 1/4 for both units; but for unit 2
    dc_2/dh_1 = i (1 - g^2) W_hg[1, 1] = 1/2 * 2 = 1 and dh_1/dc_0 = o (1 - tanh^2 c_1) f = 1/4, so the total
    dc_2/dc_0 = diag(1/4, 1/4 + 1/4) = diag(1/4, 1/2) (complex step, and the product of the model's joint
    Jacobians)."""
    params, x, h0, c0 = W_PATH
    model = C.lstm(params, 1, 2)
    total = C.total_dc_dc0(model, x, h0, c0)
    exact = LSTM_W_PATH_EXACT_ABS
    np.testing.assert_allclose(total, np.diag([0.25, 0.5]), rtol=0, atol=exact)
    np.testing.assert_allclose(C.forget_product(params, x, h0, c0), np.diag([0.25, 0.25]), rtol=0, atol=exact)
    P = jacobian_products(model, x, (h0[None, :], c0[None, :]))
    np.testing.assert_allclose(P[-1][2:, 2:], np.diag([0.25, 0.5]), rtol=0, atol=exact)


@example(W_PATH)
@given(C.lstm_cases())
def test_direct_cell_path_is_diag_forget_gate_and_equals_total_when_w_hh_is_zero(case):
    """dc_t/dc_{t-1} at fixed h_{t-1} = diag(f_t) (model Jacobian, recomputed gates, complex step);
    with W_hh = 0 the total dc_T/dc_0 = prod_t diag(f_t) (proofs/lstm.tex)."""
    assert C.cell_path_is_forget_gate(case)


# --- forget-gate-exceeds-one, lstm-gates-in-unit-interval ------------------------------------


def test_forget_gate_above_one_is_refuted(audit):
    """sigma(a) >= 1 has no real solution (SymPy solveset: EmptySet), and no f > 1 was found."""
    r = audit("forget-gate-exceeds-one")
    assert r.status == "refuted", r.verdict.evidence
    assert r.verdict.evidence["sympy_solveset_sigmoid_ge_1"] == "EmptySet"


def test_gates_lie_in_unit_interval_is_proved(audit):
    """i, f, o in (0, 1) exactly (SymPy), in [0, 1] in float64 (Hypothesis over large weights)."""
    assert audit("lstm-gates-in-unit-interval").status == "proved"


@example((_params([[0.0]] * 4, [[0.0]] * 4, [50.0] * 4, [0.0] * 4), np.zeros((1, 1)), np.zeros(1), np.zeros(1)))
@given(C.lstm_cases(scale=(1.0, 20.0), state=5.0))
def test_sigmoid_gates_never_leave_the_unit_interval(case):
    """Every gate value (float64) is in [0, 1]; sigma(50) rounds to exactly 1.0, never above."""
    assert C.gates_in_unit_interval(case)


# --- cell-counter-by-one ---------------------------------------------------------------------

# Found by the audit's search (_stored.py 'cell-change-above-one'): H = I = 1, W_ih = (0, 0, 1, 0)^T (only g
# reads x), W_hh = 0, b_hh = (1, 0, 0, 0) (input gate bias), x = (2, -2), h_0 = c_0 = 0.
COUNTER = (
    _params([[0.0], [0.0], [1.0], [0.0]], [[0.0]] * 4, [0.0] * 4, [1.0, 0.0, 0.0, 0.0]),
    np.array([[2.0], [-2.0]]),
    np.zeros(1),
    np.zeros(1),
)


def test_cell_counter_claim_is_refined(audit):
    """|i g| < 1 bounds the write; the change c_t - c_{t-1} is not bounded by 1."""
    assert audit("cell-counter-by-one").status == "refined"


def test_cell_state_can_change_by_more_than_one_in_a_step():
    """Counterexample: i = sigma(1), f = 1/2 at both steps; c_1 = sigma(1) tanh(2) = 0.7048, then the cell keeps
    half (f c_1 = 0.3524) and writes sigma(1) tanh(-2) = -0.7048: c_2 = -0.3524, so c_2 - c_1 = -1.0571
    = -1.5 c_1 (the write is bounded by 1, the change is not)."""
    params, x, h0, c0 = COUNTER
    c = C.cell_states(C.lstm(params, 1, 1), x, h0, c0)[:, 0]
    assert c[1] == pytest.approx(1 / (1 + np.exp(-1.0)) * np.tanh(2.0), rel=LSTM_CELL_CLOSED_FORM)
    assert c[2] - c[1] == pytest.approx(-1.5 * c[1], rel=LSTM_CELL_CHANGE_CLOSED_FORM)
    assert abs(c[2] - c[1]) > 1


@example(COUNTER)
@given(C.lstm_cases(scale=(0.5, 10.0), steps=(1, 8), state=3.0))
def test_cell_write_is_bounded_by_one_and_cell_grows_at_most_linearly(case):
    """|c_t - f_t c_{t-1}| = |i_t g_t| < 1 and |c_t| < |c_0| + t."""
    assert C.write_bounded_by_one(case)


# --- tanh-squashes-to-unit-interval ----------------------------------------------------------


def test_tanh_unit_interval_claim_is_refined(audit):
    """tanh maps onto (-1, 1), not [0, 1]."""
    r = audit("tanh-squashes-to-unit-interval")
    assert r.status == "refined"
    assert r.verdict.evidence["counterexample"]["c"] == -1.0


def test_lstm_hidden_state_can_be_negative():
    """Counterexample: i ~ 1, g ~ -1, o ~ 1 (biases 10, -10, 10) gives c_1 = -0.99995, h_1 = o tanh(c_1) = -0.7615."""
    params = _params([[0.0]] * 4, [[0.0]] * 4, [10.0, 0.0, -10.0, 10.0], [0.0] * 4)
    G = C.gates(params, np.zeros((1, 1)), np.zeros(1), np.zeros(1))
    res = LSTM(1, 1, params=params).forward(np.zeros((1, 1)))
    assert res.output[0, 0] == G["h"][1][0] < -0.76


@example(-1.0)
@example(19.5)  # float64 tanh(19.5) == 1.0; the exact value is below 1
@given(st.floats(-30, 30))
def test_tanh_maps_onto_the_open_interval_keeping_the_sign(c):
    """-1 < tanh(c) < 1 and sign(tanh c) = sign(c) (60-digit arithmetic)."""
    assert C.tanh_range_exact(c)


# --- lstm-constant-error-carousel ------------------------------------------------------------


def test_constant_error_carousel_is_proved(audit):
    """f = 1, i = 0 => dc_T/dc_k = I (proofs/lstm.tex; numerically with saturated gates)."""
    r = audit("lstm-constant-error-carousel")
    assert r.status == "proved", r.verdict.evidence
    ev = r.verdict.evidence
    assert ev["symbolic_holds"] is True
    assert ev["symbolic"]["dc_t_d(h,c)_{t-1}_substituted"] == "[[0, 0, 1, 0], [0, 0, 0, 1]]"
    assert ev["symbolic"]["dc_T_d(h,c)_{T-3}_substituted"] == "[[0, 0, 1, 0], [0, 0, 0, 1]]"


def test_substituting_open_forget_and_closed_input_gates_in_derived_jacobian_gives_identity_cell_rows():
    """In SymPy's joint LSTM Jacobian (proofs/lstm.tex), f = 1 and i = 0 turn the c-rows into [0 | I]
    exactly, and so are the c-rows of a product of three steps: dc_T/dc_k = I, dc_T/dh_k = 0."""
    ok, ev = C.carousel_substitution(derivation("lstm"))
    assert ok, ev
    assert ev["derived_block_dc_dc_substituted"] == "[[1, 0], [0, 1]]"
    assert ev["derived_block_dc_dh_substituted"] == "[[0, 0], [0, 0]]"


def test_carousel_substitution_rejects_a_jacobian_with_an_ungated_path_into_the_cell():
    """The symbolic check is not vacuous: add g_1 (not multiplied by i) to dc_1/dh_1 of the derived
    Jacobian, or replace dc_2/dc_2 = f_2 by o_2 f_2^2, and the substitution no longer yields I."""
    d = derivation("lstm")
    S = lstm_step(2)
    J = d.result["jacobian"]
    for k, (r, c), new in ((0, (2, 0), J[2, 0] + S["g"][0]), (1, (3, 3), J[3, 3] ** 2 * S["o"][1])):
        bad = J.copy()
        bad[r, c] = new
        ok, _ = C.carousel_substitution(SimpleNamespace(result={"jacobian": bad, "blocks": d.result["blocks"]}))
        assert not ok, k


@given(C.carousel_cases())
def test_open_forget_gate_and_closed_input_gate_carry_the_cell_gradient_unchanged(case):
    """With bias_f = +60 (f == 1.0) and bias_i = -60 (i <= 1e-20): the total dc_T/dc_0 (complex step)
    and the joint Jacobian product's c-block both equal I to 1e-14."""
    assert C.carousel_holds(case)


# --- lstm-still-vanishes, lstm-solves-vanishing ----------------------------------------------


def test_lstm_gradients_vanish_too_but_not_always_less_than_an_rnns_and_the_carousel_is_what_lstm_solves(audit):
    """LSTM gradients vanish (exact witness: zero weights, d(h,c)_T/d(h,c)_0 = 2^-(T-1) J, proved; and with the
    default initialisation: < 1e-6 within 60 steps);
    'not nearly as much as the vanilla RNN' is not universal (an LSTM vanishing faster than an orthogonal
    tanh RNN: refined to the forget-gate bound); 'LSTM solves vanishing' is refined to the constant error
    carousel (f = 1, i = 0 gives dc_T/dc_k = I), which is proved."""
    assert audit("lstm-still-vanishes").status == "proved"
    assert audit("lstm-vanishes-less-than-rnn").status == "refined"
    r = audit("lstm-solves-vanishing")
    assert (
        r.status == "refined" and r.verdict.basis == "statement fails (counterexample); refinement proved (derivation)"
    )
    assert r.verdict.evidence["counterexample"]["norm_dsT_ds0_every_10_steps"][-1] < 1e-6


def test_default_lstm_gradient_vanishes_geometrically():
    """torch's default initialisation (seeded), H = 3, zero input: ||d(h,c)_60/d(h,c)_0||_2 < 1e-6."""
    model = LSTM(2, 3, seed=0)
    n = norms(jacobian_products(model, np.zeros((60, 2)), (np.zeros((1, 3)), np.zeros((1, 3)))))
    assert n[-1] < 1e-6
    assert n[-1] < n[30] < n[10]


@given(C.lstm_cases(steps=(1, 40), scale=(0.5, 4.0)))
def test_cell_path_decays_between_min_and_max_forget_gate_powers(case):
    """prod_t f_t lies in [f_min^T, f_max^T] with 0 < f < 1: the cell path vanishes unless f -> 1."""
    assert C.forget_path_bounds(case)
