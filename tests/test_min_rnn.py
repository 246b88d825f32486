"""minGRU and minLSTM (Feng et al., 2024): the parallel log-space scan equals the sequential loop
within its derived rounding bound, the one-step Jacobian is diagonal and independent of h, the
gradient through time is the product of the retain gates, the state stays in the hull of h_0 and
the candidates. Torch parity, complex step, exact arithmetic and the SymPy sum of Jacobian
products come from the registry tests (tests/test_cells.py, parametrized over every registered
cell, these two included). Derivations: ``proofs/mingru.tex``, ``proofs/minlstm.tex``; the scan's
error analysis is in :mod:`gradtheory.cells._parallel`.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory import strategies as gst
from gradtheory.cells._parallel import log_space_scan, scan_tolerance
from gradtheory.models import input_projection

FAMILIES = ("mingru", "minlstm")
U = 2.0**-53
# The gate recomputed here (1/(1 + e^a), or f/(f+i)) and the cell's (sigma(-a), f/(f+i)) are each
# within ~2u relative of the exact gate in (0, 1): they differ by <= 4u absolute.
GATE_ATOL = 4 * U
# BPTT's dh_T/dh_0 is a product of T factors each within 2u relative (sigma(-a), or f/(f+i)), and
# T - 1 roundings of the running product: <= (2T + 4) u relative, per step of the sequence.
PRODUCT_RTOL_PER_STEP, PRODUCT_RTOL_CONST = 2 * U, 4 * U
# h_t = a h_{t-1} + (1 - a) h~ rounded: each step adds <= 4u relative to the convex bound's scale.
HULL_RTOL_PER_STEP = 4 * U


def _coefficients(model, x_tm, layer=0, direction=0):
    inp = x_tm[::-1] if direction == 1 else x_tm
    gi = input_projection(model.cell, inp, model.layer_params(layer, direction))
    return model.cell.scan_coefficients(gi, model.hidden_size)


@given(
    name=st.sampled_from(FAMILIES),
    seed=st.integers(0, 2**32 - 1),
    T=st.integers(1, 300),
    scale=st.sampled_from([0.3, 1.0, 4.0, 12.0]),
    bidirectional=st.booleans(),
)
@example(name="mingru", seed=0, T=300, scale=12.0, bidirectional=False)
@settings(max_examples=40, deadline=None)
def test_parallel_log_space_scan_equals_sequential_loop_within_the_derived_rounding_bound(
    name, seed, T, scale, bidirectional
):
    """|parallel_forward - forward| <= delta_t S_t + E_t at every step and unit (the bound of
    gradtheory.cells._parallel, from the recursive-summation error of the cumulative log sums and
    the loop's per-step rounding; proofs/mingru.tex, proofs/minlstm.tex: the scan formula)."""
    rng = np.random.default_rng(seed)
    model = gt.cells.get(name).model(3, 4, bidirectional=bidirectional, seed=seed % 1000)
    model.params = {k: v * scale for k, v in model.params.items()}
    x = rng.normal(size=(T, 2, 3))
    h0 = rng.normal(size=(model.num_directions, 2, 4))
    loop, scan = model.forward(x, h0), model.parallel_forward(x, h0)
    H = model.hidden_size
    for d in range(model.num_directions):
        log_a, b, _ = _coefficients(model, x, 0, d)
        bound = scan_tolerance(log_a, b, h0[d])
        got, want = scan.output[..., d * H : (d + 1) * H], loop.output[..., d * H : (d + 1) * H]
        if d == 1:
            got, want = got[::-1], want[::-1]
        assert np.all(np.abs(got - want) <= bound), float(np.max(np.abs(got - want) / bound))
        assert np.all(np.abs(scan.h_n[d] - loop.h_n[d]) <= bound[-1])


def test_log_space_scan_equals_the_recurrence_in_50_digit_arithmetic():
    """The scan of signed coefficients (no positivity of b as in the paper's g) against the recurrence
    h_t = a_t h_{t-1} + b_t evaluated in mpmath at 50 digits from the same float inputs: within the
    scan's own share delta_t S_t of the bound (gradtheory.cells._parallel)."""
    rng = np.random.default_rng(7)
    T = 200
    log_a = -rng.exponential(2.0, size=(T, 3))
    b = rng.normal(size=(T, 3)) * np.exp(rng.normal(scale=3.0, size=(T, 3)))
    h0 = np.array([1.5, -2.0, 0.0])
    got = log_space_scan(log_a, b, h0)
    mp = mpmath.mp.clone()
    mp.dps = 50
    for n in range(3):
        h = mp.mpf(h0[n])
        S = abs(h)
        Lam = mp.mpf(0)
        for t in range(T):
            a = mp.exp(mp.mpf(log_a[t, n]))
            h = a * h + mp.mpf(b[t, n])
            S = a * S + abs(mp.mpf(b[t, n]))
            Lam += abs(mp.mpf(log_a[t, n]))
            logs = np.log(np.abs(np.concatenate([h0[n : n + 1], b[:, n]])[np.abs(np.r_[h0[n], b[:, n]]) > 0]))
            delta = (4 * (t + 1) + 4) * U * (float(Lam) + np.max(np.abs(logs)) + np.log(t + 2.0) + 1.0)
            assert abs(got[t, n] - float(h)) <= delta * float(S), (t, n)


def test_scan_stays_finite_when_the_cumulative_retain_gate_underflows():
    """With z ~ 1 at every step (a_t = 1 - z_t ~ e^-30), A_t = prod a_j underflows after ~25 steps:
    1/A_k would overflow in the textbook formula h_t = A_t (h_0 + sum b_k / A_k); the log-space scan
    never forms it and equals the loop within the derived bound (proofs/mingru.tex)."""
    model = gt.MinGRU(2, 3, seed=1)
    p = dict(model.params)
    p["bias_ih_l0"] = np.r_[np.full(3, 30.0), np.zeros(3)]
    model.params = p
    x = np.random.default_rng(0).normal(size=(500, 1, 2))
    loop, scan = model.forward(x), model.parallel_forward(x)
    log_a, b, _ = _coefficients(model, x)
    assert np.sum(log_a[:, 0, 0]) < -1e4  # A_T = e^(-15000): far below the smallest double
    assert np.all(np.isfinite(scan.output))
    assert np.all(np.abs(scan.output - loop.output)[:, 0] <= scan_tolerance(log_a, b, np.zeros((1, 3)))[:, 0])


@pytest.mark.parametrize("name", FAMILIES)
@given(data=st.data())
@settings(max_examples=20)
def test_one_step_jacobian_is_the_diagonal_retain_gate_and_independent_of_h(name, data):
    """dh_t/dh_{t-1} = diag(1 - z_t) (minGRU), diag(f'_t) (minLSTM): the same for any h_{t-1} (the
    gates read x_t only), with the gate recomputed here from x_t (proofs/mingru.tex, minlstm.tex)."""
    model = data.draw(gst.models(families=(name,), max_layers=1, bidirectional=False, batch_first=False, scale=3.0))
    T = data.draw(st.integers(1, 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(size=(T, 1, model.input_size))
    ha, hb = rng.normal(size=(2, 1, 1, model.hidden_size)) * 5
    Ja, Jb = model.jacobians(model.forward(x, ha)), model.jacobians(model.forward(x, hb))
    assert np.array_equal(Ja, Jb), "the Jacobian does not depend on the state"
    H = model.hidden_size
    pre = input_projection(model.cell, x, model.layer_params())
    if name == "mingru":
        gate = 1 / (1 + np.exp(pre[..., :H]))  # 1 - sigmoid(a) = sigmoid(-a)
    else:
        f, i = (1 / (1 + np.exp(-pre[..., k * H : (k + 1) * H])) for k in range(2))
        gate = f / (f + i)
    expected = np.zeros((T, 1, H, H))
    idx = np.arange(H)
    expected[:, :, idx, idx] = gate
    assert np.max(np.abs(Ja - expected)) <= GATE_ATOL


@pytest.mark.parametrize("name", FAMILIES)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 40))
@settings(max_examples=15)
def test_gradient_through_time_is_the_product_of_retain_gates_in_50_digits(name, seed, T):
    """dh_T/dh_0 = prod_t diag(a_t) with a_t = 1 - z_t or f'_t in (0, 1): BPTT's dL/dh_0 for
    L = sum h_T equals the product evaluated in mpmath from the pre-activations, to (2T + 4) u
    relative (each factor rounds ~2u; proofs/mingru.tex, minlstm.tex)."""
    rng = np.random.default_rng(seed)
    model = gt.cells.get(name).model(2, 3, seed=seed % 1000)
    x = rng.normal(size=(T, 1, 2))
    res = model.forward(x)
    g = model.backward(res, np.zeros_like(res.output), np.ones_like(res.h_n))
    pre = input_projection(model.cell, x, model.layer_params())[:, 0]
    mp = mpmath.mp.clone()
    mp.dps = 50
    sig = lambda v: 1 / (1 + mp.exp(-mp.mpf(v)))  # noqa: E731
    for n in range(3):
        prod = mp.mpf(1)
        for t in range(T):
            if name == "mingru":
                prod *= 1 - sig(pre[t, n])
            else:
                f, i = sig(pre[t, n]), sig(pre[t, 3 + n])
                prod *= f / (f + i)
        assert 0 < prod < 1
        assert abs(g.h0[0, 0, n] - float(prod)) <= (PRODUCT_RTOL_PER_STEP * T + PRODUCT_RTOL_CONST) * float(prod)


@pytest.mark.parametrize("name", FAMILIES)
@given(data=st.data())
@settings(max_examples=20)
def test_state_stays_in_the_hull_of_h0_and_the_candidates(name, data):
    """The retain and update weights sum to 1 (1 - z + z, f' + i'), so h_t is a convex combination:
    |h_t| <= max(|h_0|, max_k |h~_k|) elementwise, for any weights (here up to 20x torch's scale),
    up to the rounding of t steps: (1 + 4 t u) (proofs/mingru.tex, minlstm.tex)."""
    model = data.draw(gst.models(families=(name,), max_layers=1, bidirectional=False, batch_first=False, scale=20.0))
    T = data.draw(st.integers(1, 50))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(size=(T, 2, model.input_size)) * 3
    h0 = rng.normal(size=(1, 2, model.hidden_size)) * 3
    h = model.forward(x, h0).output
    H = model.hidden_size
    h_tilde = input_projection(model.cell, x, model.layer_params())[..., -H:]
    running = np.maximum.accumulate(np.abs(h_tilde), axis=0)
    bound = np.maximum(np.abs(h0[0]), running)
    t = np.arange(1, T + 1)[:, None, None]
    assert np.all(np.abs(h) <= bound * (1 + HULL_RTOL_PER_STEP * t))


def test_a_min_gru_backward_that_drops_the_direct_path_is_caught_by_the_checker():
    """Test the tester: a minGRU cell whose backward forgets dh_t/dh_{t-1} = 1 - z fails
    assert_gradients_match, the message naming the input or the initial state."""
    from gradtheory.cells.mingru import MinGRUCell

    class Wrong(MinGRUCell):
        def step_backward(self, d_state, cache):
            da, _, _ = super().step_backward(d_state, cache)
            return da, da, (None,)

    model = gt.RecurrentModel(2, 3, cell=Wrong(), seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 2))
    with pytest.raises(gt.GradientCheckError, match="weight_ih_l0|bias_ih_l0|x"):
        gt.assert_gradients_match(model, x)


def test_models_have_no_recurrent_weight_and_torch_layout_names():
    """weight_hh has shape (G*H, 0): the recurrence is the product with an empty matrix."""
    g, m = gt.MinGRU(3, 5, num_layers=2), gt.MinLSTM(3, 5)
    assert g.param_shapes()["weight_hh_l1"] == (10, 0)
    assert g.param_shapes()["weight_ih_l1"] == (10, 5)
    assert m.param_shapes()["weight_ih_l0"] == (15, 3)
    grads = m.backward(m.forward(np.ones((4, 3))), np.ones((4, 5)))
    assert grads.params["weight_hh_l0"].shape == (15, 0)


def test_parallel_forward_rejects_bad_input_by_name():
    model = gt.MinLSTM(3, 2)
    with pytest.raises(ValueError, match="input_size=3"):
        model.parallel_forward(np.ones((4, 2)))
    with pytest.raises(ValueError, match="h0"):
        model.parallel_forward(np.ones((4, 3)), np.ones((2, 2)))


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_stacked_parallel_forward_is_the_composition_of_its_layers(name, bidirectional, batch_first):
    """A two-layer (bidirectional, batch_first) parallel_forward equals layer 1's parallel_forward fed
    into layer 2's, bit for bit, with h_n stacked as torch does (the layout; the numerics of one layer
    are bounded by test_parallel_log_space_scan_equals_sequential_loop_within_the_derived_rounding_bound)."""
    cls = gt.cells.get(name).model
    kw = dict(bidirectional=bidirectional, batch_first=batch_first)
    deep = cls(3, 4, num_layers=2, seed=5, **kw)
    D = deep.num_directions
    first = cls(3, 4, params={k: v for k, v in deep.params.items() if "_l0" in k}, **kw)
    second = cls(4 * D, 4, params={k.replace("_l1", "_l0"): v for k, v in deep.params.items() if "_l1" in k}, **kw)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 7, 3) if batch_first else (7, 2, 3))
    h0 = rng.normal(size=(2 * D, 2, 4))
    out = deep.parallel_forward(x, h0)
    mid = first.parallel_forward(x, h0[:D])
    top = second.parallel_forward(mid.output, h0[D:])
    assert np.array_equal(out.output, top.output)
    assert np.array_equal(out.h_n, np.concatenate([mid.h_n, top.h_n]))
    loop = deep.forward(x, h0)
    assert out.output.shape == loop.output.shape and out.h_n.shape == loop.h_n.shape


@pytest.mark.parametrize("name", FAMILIES)
def test_scan_bound_is_the_per_direction_derived_bound_in_the_output_layout(name):
    """model.scan_bound(x, h0) is scan_tolerance of each direction's coefficients, placed like
    output (batch_first, reverse half flipped back); it holds; deeper models: NotImplementedError."""
    cls = gt.cells.get(name).model
    model = cls(3, 4, bidirectional=True, batch_first=True, seed=2)
    rng = np.random.default_rng(4)
    x, h0 = rng.normal(size=(2, 30, 3)), rng.normal(size=(2, 2, 4))
    bound = model.scan_bound(x, h0)
    x_tm = np.swapaxes(x, 0, 1)
    for d in range(2):
        log_a, b, _ = _coefficients(model, x_tm, 0, d)
        expected = scan_tolerance(log_a, b, h0[d])
        expected = np.swapaxes(expected[::-1] if d == 1 else expected, 0, 1)
        assert np.array_equal(bound[..., 4 * d : 4 * d + 4], expected)
    diff = np.abs(model.parallel_forward(x, h0).output - model.forward(x, h0).output)
    assert np.all(diff <= bound)
    with pytest.raises(NotImplementedError, match="num_layers=2"):
        cls(3, 4, num_layers=2).scan_bound(x[0])


def test_mingru_gradient_keeps_relative_accuracy_as_the_update_gate_tends_to_one():
    """With a_z = 30 (z = 1 - 9.4e-14) the retain factor 1 - z computed as 1.0 - z would carry a
    relative error ~1e-3; the cell forms it as sigma(-a_z), so dh_T/dh_0 = sigma(-30)^T to
    (2T + 4) u relative (found by the audit's search: seed 63, scale 5 gave z = 0.9987 and 750 u;
    proofs/mingru.tex)."""
    model = gt.MinGRU(1, 2, seed=0)
    p = {k: np.zeros_like(v) for k, v in model.params.items()}
    p["bias_ih_l0"] = np.array([30.0, 30.0, 0.5, -0.5])
    model.params = p
    T = 5
    res = model.forward(np.zeros((T, 1, 1)))
    g = model.backward(res, np.zeros_like(res.output), np.ones_like(res.h_n)).h0[0, 0]
    mp = mpmath.mp.clone()
    mp.dps = 50
    exact = float((1 / (1 + mp.exp(30))) ** T)
    assert np.all(np.abs(g - exact) <= (PRODUCT_RTOL_PER_STEP * T + PRODUCT_RTOL_CONST) * exact)
    naive = (1.0 - 1 / (1 + np.exp(-30.0))) ** T
    assert abs(naive - exact) > 1e-6 * exact  # the form the cell avoids is far off
