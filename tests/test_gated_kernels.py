"""Fast LSTM/GRU kernels (gradtheory/_gated_kernels.py): same flow and Lyapunov growth as the
cells' own step code and as torch autograd, at any horizon.

Statements (backward recursion dL/ds_{t-1} = J_t^T dL/ds_t with the LSTM's c-gradient at fixed
h: ``proofs/lstm.tex``, ``proofs/gru.tex``):

* for every drawn single-layer LSTM/GRU (bias or not, any h0 and readout) the kernels'
  ln||dL/ds_k|| equal the generic path's (the cells' step/step_backward, one step at a time);
* they equal a 40-digit mpmath evaluation of the forward pass and of the backward chain rule
  (written gate by gate in torch's row order), within the per-step error bound;
* they equal torch autograd's per-step gradients of L = <r, h_T> through nn.LSTMCell/GRUCell in
  float64 (dL/ds_k read off zero-valued perturbations added to each state);
* at T = 4000 with contracting weights, where those torch gradients underflow to exact zeros,
  they stay finite and equal a torch VJP recursion renormalised every step whose log-scale is
  summed exactly (rationals);
* they do not depend on the checkpoint chunk length or on the renormalisation blocks (including
  the step-by-step fallback);
* the fast forward tangent growth ln||J_T...J_1 v0|| equals the product of the cells'
  materialised one-step Jacobians (the generic lyapunov_exponent);
* exactly zero gradients give -inf; a non-finite forward state raises FloatingPointError.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtheory as gt
from gradtheory import _gated_kernels as gk
from gradtheory import strategies as gst

gradient_flow, lyapunov_exponent = gt.gradient_flow, gt.lyapunov_exponent

u = 2.0**-53

# Error analysis (absolute, on ln-norms: an error e in ln||g|| is a relative error ~e in ||g||).
# Each float64 evaluation of the backward recursion commits, per step, a normwise relative error
# in the carried vector of about (m + 12) u kappa_t: m = 4H + I for the dot products (the 4H-long
# W_hh^T da and, through the forward state, the (H + I + 1)-long pre-activations), ~12 u for the
# coefficient products and the renormalisation, kappa_t = || |W_hh|^T |da| || / ||J_t^T u|| the
# step's condition. For weights at torch's scale or in [-1, 1], 1500 random models (H <= 8,
# T <= 80) gave max |difference| / (u (T - k)(4H + I + 12)) < 2.0 between the kernels and the
# generic path; PER_STEP_KAPPA = 10 bounds kappa_t with 5x margin, times 2 implementations.
PER_STEP_KAPPA = 10.0
# The value itself: a float64 number of size |y| is only accurate to u |y|; the running
# log-scales are compensated sums (~2u |y| each side).
LOG_ROUNDING = 4.0


def allowed(value: np.ndarray, H: int, I: int) -> np.ndarray:
    """Tolerance on entry k of a flow of length T + 1: per traversed step plus the rounding of y."""
    steps = (value.shape[0] - 1) - np.arange(value.shape[0])
    per_step = 2 * PER_STEP_KAPPA * (4 * H + I + 12) * u
    finite = np.where(np.isfinite(value), np.abs(value), 0.0)
    return per_step * steps + LOG_ROUNDING * u * (1.0 + finite)


def assert_flows_agree(got: np.ndarray, ref: np.ndarray, H: int, I: int) -> None:
    assert np.array_equal(np.isneginf(got), np.isneginf(ref)), (got, ref)
    ok = np.isfinite(ref)
    err = np.abs(got[ok] - ref[ok])
    tol = allowed(ref, H, I)[ok]
    assert np.all(err <= tol), f"max err/tol = {np.max(err / tol):.3g} at k = {np.argmax(err / tol)}"


class GenericLSTM(gt.LSTM):
    """Not the exact LSTM class, so gradient_flow/lyapunov_exponent take the generic path."""


class GenericGRU(gt.GRU):
    """Not the exact GRU class, so gradient_flow/lyapunov_exponent take the generic path."""


def generic_twin(model):
    cls = GenericLSTM if isinstance(model, gt.LSTM) else GenericGRU
    twin = cls(model.input_size, model.hidden_size, bias=model.bias)
    twin.params = model.params
    return twin


def states_for(model, values):
    """gradient_flow's h0 argument: (h0, c0) for LSTM, h0 for GRU."""
    return (values[0], values[1]) if isinstance(model, gt.LSTM) else values[0]


def log_norm(g: np.ndarray) -> float:
    """ln||g||_2, scaled by max|g| first so that the squares of tiny entries do not underflow."""
    m = float(np.max(np.abs(g)))
    if m == 0.0:
        return -math.inf
    return math.log(m) + 0.5 * math.log(float(np.sum((g / m) ** 2)))


def make_model(kind, I, H, *, scale, bias=True, seed=0):
    model = (gt.LSTM if kind == "lstm" else gt.GRU)(I, H, bias=bias)
    rng = np.random.default_rng(seed)
    model.params = {k: rng.uniform(-scale, scale, size=s) for k, s in model.param_shapes().items()}
    return model


# -- torch oracles ------------------------------------------------------------------------------
def torch_cell(model):
    cls = torch.nn.LSTMCell if isinstance(model, gt.LSTM) else torch.nn.GRUCell
    cell = cls(model.input_size, model.hidden_size, bias=model.bias, dtype=torch.float64)
    p = model.params
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(p["weight_ih_l0"]))
        cell.weight_hh.copy_(torch.from_numpy(p["weight_hh_l0"]))
        if model.bias:
            cell.bias_ih.copy_(torch.from_numpy(p["bias_ih_l0"]))
            cell.bias_hh.copy_(torch.from_numpy(p["bias_hh_l0"]))
    return cell


def torch_step(cell, x_t, state):
    out = cell(x_t, state if len(state) == 2 else state[0])
    return tuple(out) if isinstance(out, tuple) else (out,)


def torch_per_step_log_norms(model, x, states0, r):
    """ln||dL/ds_k||, k = 0..T, by one autograd backward through nn.*Cell unrolled in float64.

    Step t + 1 consumes s_t + e_t with e_t a zero-valued leaf per state component, so
    e_t.grad = dL/ds_t with the other components fixed (for LSTM: c's gradient at fixed h).
    """
    cell = torch_cell(model)
    xs = torch.from_numpy(x)
    leaves = [tuple(torch.tensor(s[None, :], requires_grad=True) for s in states0)]
    state = leaves[0]
    for t in range(x.shape[0]):
        out = torch_step(cell, xs[t : t + 1], state)
        e = tuple(torch.zeros_like(s, requires_grad=True) for s in out)
        leaves.append(e)
        state = tuple(s + z for s, z in zip(out, e))
    (state[0][0] @ torch.from_numpy(r)).backward()
    grads = [
        np.concatenate([np.zeros(s.shape[1]) if s.grad is None else s.grad.numpy()[0] for s in leaf]) for leaf in leaves
    ]
    return np.array([log_norm(g) for g in grads])


def torch_renormalised_log_norms(model, x, states0, r):
    """ln||dL/ds_k|| by per-step torch VJPs u <- J_t^T u / ||J_t^T u|| (autograd.grad through the
    cell), the log-scale summed exactly in rationals: no horizon underflows."""
    cell = torch_cell(model)
    xs = torch.from_numpy(x)
    T = x.shape[0]
    states = [tuple(torch.from_numpy(s[None, :].copy()) for s in states0)]
    with torch.no_grad():
        for t in range(T):
            states.append(torch_step(cell, xs[t : t + 1], states[-1]))
    H = model.hidden_size
    r_norm = float(np.linalg.norm(r))
    cot = (torch.from_numpy(r[None, :] / r_norm),) + (
        (torch.zeros(1, H, dtype=torch.float64),) if len(states0) == 2 else ()
    )
    logs = [math.log(r_norm)]
    for t in range(T, 0, -1):
        prev = tuple(s.clone().requires_grad_() for s in states[t - 1])
        out = torch_step(cell, xs[t - 1 : t], prev)
        g = torch.autograd.grad(out, prev, grad_outputs=cot)
        nrm = log_norm(torch.cat([gi.flatten() for gi in g]).numpy())
        logs.append(nrm)
        cot = tuple(gi / math.exp(nrm) for gi in g)
    total, out = Fraction(0), np.empty(T + 1)
    for k, term in enumerate(logs):  # out[T - k] = sum of the first k + 1 logs, rounded once
        total += Fraction(term)
        out[T - k] = float(total)
    return out


# -- 40-digit oracle -----------------------------------------------------------------------------
def mp_log_norms(model, x, states0, r, dps=40):
    """ln||dL/ds_k||, k = 0..T, in dps-digit arithmetic: the cell's equations forward, then the chain
    rule backward gate by gate (torch row order i, f, g, o / r, z, n), on exact copies of the floats."""
    with mpmath.workdps(dps):
        mp = mpmath.mpf
        H, lstm = model.hidden_size, isinstance(model, gt.LSTM)
        p = {
            k: [[mp(float(v)) for v in np.atleast_2d(a)[i]] for i in range(np.atleast_2d(a).shape[0])]
            for k, a in model.params.items()
        }
        W_ih, W_hh = p["weight_ih_l0"], p["weight_hh_l0"]
        b_ih = p["bias_ih_l0"][0] if model.bias else [mp(0)] * len(W_hh)
        b_hh = p["bias_hh_l0"][0] if model.bias else [mp(0)] * len(W_hh)

        def sig(a):
            return 1 / (1 + mpmath.exp(-a))

        h = [mp(float(v)) for v in states0[0]]
        c = [mp(float(v)) for v in states0[1]] if lstm else None
        caches = []
        for x_t in x:
            xm = [mp(float(v)) for v in x_t]
            gi = [sum((W_ih[k][j] * xm[j] for j in range(len(xm))), mp(0)) + b_ih[k] for k in range(len(W_hh))]
            gh = [sum((W_hh[k][j] * h[j] for j in range(H)), mp(0)) + b_hh[k] for k in range(len(W_hh))]
            if lstm:
                i = [sig(gi[k] + gh[k]) for k in range(H)]
                f = [sig(gi[H + k] + gh[H + k]) for k in range(H)]
                g = [mpmath.tanh(gi[2 * H + k] + gh[2 * H + k]) for k in range(H)]
                o = [sig(gi[3 * H + k] + gh[3 * H + k]) for k in range(H)]
                c_new = [f[k] * c[k] + i[k] * g[k] for k in range(H)]
                caches.append((i, f, g, o, c, c_new, h))
                c = c_new
                h = [o[k] * mpmath.tanh(c[k]) for k in range(H)]
            else:
                rg = [sig(gi[k] + gh[k]) for k in range(H)]
                z = [sig(gi[H + k] + gh[H + k]) for k in range(H)]
                ghn = gh[2 * H :]
                n = [mpmath.tanh(gi[2 * H + k] + rg[k] * ghn[k]) for k in range(H)]
                caches.append((rg, z, n, ghn, h))
                h = [(1 - z[k]) * n[k] + z[k] * h[k] for k in range(H)]
        dh = [mp(float(v)) for v in r]
        dc = [mp(0)] * H
        out = []
        for cache in reversed(caches):
            out.append(mpmath.log(mpmath.sqrt(sum(v * v for v in dh + (dc if lstm else [])))))
            if lstm:
                i, f, g, o, c_prev, c_t, _ = cache
                dct = [dc[k] + dh[k] * o[k] * (1 - mpmath.tanh(c_t[k]) ** 2) for k in range(H)]
                da = (
                    [dct[k] * g[k] * i[k] * (1 - i[k]) for k in range(H)]
                    + [dct[k] * c_prev[k] * f[k] * (1 - f[k]) for k in range(H)]
                    + [dct[k] * i[k] * (1 - g[k] ** 2) for k in range(H)]
                    + [dh[k] * mpmath.tanh(c_t[k]) * o[k] * (1 - o[k]) for k in range(H)]
                )
                dc = [dct[k] * f[k] for k in range(H)]
                dh = [sum((W_hh[q][j] * da[q] for q in range(4 * H)), mp(0)) for j in range(H)]
            else:
                rg, z, n, ghn, h_prev = cache
                da_n = [dh[k] * (1 - z[k]) * (1 - n[k] ** 2) for k in range(H)]
                da = (
                    [da_n[k] * ghn[k] * rg[k] * (1 - rg[k]) for k in range(H)]
                    + [dh[k] * (h_prev[k] - n[k]) * z[k] * (1 - z[k]) for k in range(H)]
                    + [da_n[k] * rg[k] for k in range(H)]
                )
                dh = [sum((W_hh[q][j] * da[q] for q in range(3 * H)), mp(0)) + dh[j] * z[j] for j in range(H)]
        out.append(mpmath.log(mpmath.sqrt(sum(v * v for v in dh + (dc if lstm else [])))))
        return np.array([float(v) for v in reversed(out)])


# -- strategies ---------------------------------------------------------------------------------
@st.composite
def gated_cases(draw):
    model = draw(
        gst.models(
            families=("lstm", "gru"),
            max_layers=1,
            bidirectional=False,
            hidden_size=st.integers(1, 6),
            scale=draw(st.sampled_from([None, 1.0])),
        )
    )
    x = draw(gst.sequences(steps=st.integers(1, 60), input_size=model.input_size))
    H = model.hidden_size
    elems = st.floats(-2, 2, width=64, allow_subnormal=False)
    r = draw(hnp.arrays(np.float64, H, elements=elems))
    n_states = 2 if isinstance(model, gt.LSTM) else 1
    states0 = tuple(draw(hnp.arrays(np.float64, H, elements=elems)) for _ in range(n_states))
    return model, x, r, states0


# -- tests --------------------------------------------------------------------------------------
@given(gated_cases())
def test_fast_flow_equals_the_generic_step_by_step_path(case):
    """gradient_flow on LSTM/GRU (fast kernels) = the generic path over the cells' own
    step/step_backward, entry by entry, within the per-step error bound; zeros (-inf) coincide."""
    model, x, r, states0 = case
    h0 = states_for(model, states0)
    fast = gradient_flow(model, x, r, h0)
    generic = gradient_flow(generic_twin(model), x, r, h0)
    assert_flows_agree(fast, generic, model.hidden_size, model.input_size)


def test_gradient_flow_dispatches_lstm_and_gru_and_torch_modules_to_the_kernels():
    """gradient_flow(gt.LSTM/GRU or their torch modules) is the kernel's output, bit for bit."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3))
    r = rng.standard_normal(5)
    for kind in ("lstm", "gru"):
        model = make_model(kind, 3, 5, scale=0.4)
        layer = gk.GatedLayer(*(model.params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")))
        states0 = tuple(np.zeros(5) for _ in range(2 if kind == "lstm" else 1))
        expected = gk.gradient_flow(kind, layer, x, states0, r)
        np.testing.assert_array_equal(gradient_flow(model, x, r), expected)
        np.testing.assert_array_equal(gradient_flow(gt.to_torch(model), x, r), expected)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fast_flow_equals_torch_autograd_per_step_gradients(kind, bias):
    """T = 300, H = 8: ln||dL/ds_k|| = ln of torch autograd's dL/ds_k through nn.LSTMCell/GRUCell."""
    T, I, H = 300, 3, 8
    model = make_model(kind, I, H, scale=0.5, bias=bias, seed=1)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (T, I))
    r = rng.standard_normal(H)
    states0 = tuple(rng.uniform(-0.5, 0.5, H) for _ in range(2 if kind == "lstm" else 1))
    fast = gradient_flow(model, x, r, states_for(model, states0))
    oracle = torch_per_step_log_norms(model, x, states0, r)
    assert np.all(np.isfinite(oracle)) and oracle.min() > math.log(1e-290), "the scenario must stay in normal range"
    assert_flows_agree(fast, oracle, H, I)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fast_flow_equals_a_40_digit_evaluation(kind):
    """T = 400, H = 3: the kernels' ln||dL/ds_k|| are within the per-step bound of the forward and
    backward recursions evaluated in 40-digit arithmetic (the float64 error itself, not a difference
    between two float64 codes)."""
    T, I, H = 400, 2, 3
    model = make_model(kind, I, H, scale=0.6, bias=kind == "lstm", seed=13)
    rng = np.random.default_rng(14)
    x = rng.uniform(-1, 1, (T, I))
    r = rng.standard_normal(H)
    states0 = tuple(rng.uniform(-0.5, 0.5, H) for _ in range(2 if kind == "lstm" else 1))
    fast = gradient_flow(model, x, r, states_for(model, states0))
    assert_flows_agree(fast, mp_log_norms(model, x, states0, r), H, I)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fast_flow_is_finite_where_torch_underflows_and_equals_a_renormalised_oracle(
    kind,
):
    """T = 4000, contracting weights: torch's per-step float64 gradients underflow (subnormal or
    zero: their ln-norms stick near ln(4.9e-324) = -744.4 while the true ones fall below -1500);
    the kernels' values are finite and equal the per-step renormalised torch VJP recursion."""
    T, I, H = 4000, 2, 6
    model = make_model(kind, I, H, scale=0.3, seed=3)
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (T, I))
    r = rng.standard_normal(H)
    states0 = tuple(np.zeros(H) for _ in range(2 if kind == "lstm" else 1))
    fast = gradient_flow(model, x, r)
    naive = torch_per_step_log_norms(model, x, states0, r)
    assert np.sum(naive < math.log(1e-300)) > T // 2, "the scenario must underflow torch's float64 gradients"
    assert np.all(np.isfinite(fast)) and fast[0] < -1500.0
    assert_flows_agree(fast, torch_renormalised_log_norms(model, x, states0, r), H, I)
    normal = naive > math.log(1e-290)  # below, torch's vectors have subnormal entries: imprecise
    np.testing.assert_array_less(np.abs(fast[normal] - naive[normal]), allowed(fast, H, I)[normal])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_flow_does_not_depend_on_chunk_length_or_renormalisation_blocks(kind, monkeypatch):
    """Checkpoint chunks of 1, 7, 64 or > T steps, and per-step renormalisation forced everywhere
    (the fallback path), give the default result within the per-step bound."""
    T, I, H = 500, 3, 5
    model = make_model(kind, I, H, scale=0.6, seed=5)
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, (T, I))
    r = rng.standard_normal(H)
    layer = gk.GatedLayer(*(model.params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")))
    h0 = np.zeros(H)
    run = (
        (lambda chunk: gk.lstm_gradient_flow(layer, x, h0, h0, r, chunk=chunk))
        if kind == "lstm"
        else (lambda chunk: gk.gru_gradient_flow(layer, x, h0, r, chunk=chunk))
    )
    base = gradient_flow(model, x, r)
    assert base[0] < math.log(1e-60), "the flow must span several renormalisation windows"
    for chunk in (1, 7, 64, T + 5):
        assert_flows_agree(run(chunk), base, H, I)
    monkeypatch.setattr(gk, "_LO", math.inf)  # no block is ever accepted: every step renormalises
    assert_flows_agree(run(gk.CHUNK), base, H, I)


@pytest.mark.parametrize("every", [1, 10, 1000])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fast_lyapunov_growth_equals_the_product_of_materialised_jacobians(kind, every):
    """(1/T) ln||J_T...J_1 v0|| by the kernels' tangent steps = by the cells' step_jacobian
    matrices (generic path), for any renormalisation interval; T = 2000, error ~ per step."""
    T, I, H = 2000, 3, 6
    model = make_model(kind, I, H, scale=0.7, seed=7)
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, (T, I))
    S = 2 * H if kind == "lstm" else H
    v0 = rng.standard_normal(S)
    v0 /= np.linalg.norm(v0)
    fast = lyapunov_exponent(model, x, v0=v0, reorthonormalize_every=every)
    generic = lyapunov_exponent(generic_twin(model), x, v0=v0)
    tol = (2 * PER_STEP_KAPPA * (4 * H + I + 12) * u * T + LOG_ROUNDING * u * abs(T * generic)) / T
    assert fast == pytest.approx(generic, abs=tol)
    assert generic < -0.01  # a real contraction rate, not a degenerate zero


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_lyapunov_growth_of_an_annihilating_product_is_minus_infinity(kind):
    """All gates saturated so that every one-step Jacobian maps the start vector to exactly 0
    (LSTM: i = f = o = 0 exactly; GRU: z = 0, tanh'(n) = 0 and W_hh = 0): -inf, as the generic path."""
    I, H, T = 2, 3, 40
    model = make_model(kind, I, H, scale=0.5, seed=9)
    p = model.params
    if kind == "lstm":
        p["bias_ih_l0"] = np.full(4 * H, -1000.0)  # sigmoid(-1000) = 0 exactly in float64
    else:
        p["weight_hh_l0"] = np.zeros((3 * H, H))
        p["bias_ih_l0"] = np.concatenate([np.zeros(H), np.full(H, -1000.0), np.full(H, 1000.0)])
    model.params = p
    x = np.random.default_rng(9).uniform(-1, 1, (T, I))
    flow = gradient_flow(model, x)
    assert flow[-1] == 0.0 and np.all(flow[:-1] == -np.inf)
    np.testing.assert_array_equal(flow, gradient_flow(generic_twin(model), x))
    assert lyapunov_exponent(model, x) == -math.inf == lyapunov_exponent(generic_twin(model), x)


def test_non_finite_forward_state_raises_naming_the_step():
    """GRU, h0 = (1e308, 1e308), W_hr rows (-10, -10), W_hn rows (10, 10): W_hr h0 = -inf (no
    cancellation, so on any BLAS), r = sigma(-inf) = 0 and r (W_hn h0 + b_hn) = 0 * inf = NaN, so h_1 is not finite; both
    paths raise FloatingPointError naming step 1. (An LSTM state stays finite for finite
    parameters: |h_t| <= 1 and |c_t| <= |c_0| + t, saturated gates absorb infinite pre-activations.)"""
    I, H = 2, 2
    model = make_model("gru", I, H, scale=0.5, seed=10)
    p = model.params
    p["weight_hh_l0"] = np.array([[-10.0, -10.0]] * H + [[0.0, 0.0]] * H + [[10.0, 10.0]] * H)
    model.params = p
    x = np.ones((6, I))
    h0 = np.full(H, 1e308)
    for m in (model, generic_twin(model)):
        with pytest.raises(FloatingPointError, match=r"overflowed at step t=1 "):
            gradient_flow(m, x, h0=h0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_backward_overflow_raises_as_the_generic_path(kind):
    """T = 1, h0 = 0 (so the forward pre-activations are moderate), W_hh = 1e308 everywhere, H = 16:
    the backward step W_hh^T da sums 4H terms of size ~1e307 and overflows; both paths raise
    FloatingPointError instead of returning inf or NaN."""
    I, H = 2, 16
    model = make_model(kind, I, H, scale=0.5, seed=10)
    p = model.params
    p["weight_hh_l0"] = np.full(p["weight_hh_l0"].shape, 1e308)
    model.params = p
    x = np.random.default_rng(1).uniform(-1, 1, (1, I))
    for m in (model, generic_twin(model)):
        with pytest.raises(FloatingPointError, match=r"backward step overflowed at t=1 "):
            gradient_flow(m, x, np.ones(H))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_wrong_backward_coefficient_makes_the_oracle_comparison_fail(kind, monkeypatch):
    """Test the tester: dropping one term of the one-step Jacobian in the kernel (LSTM: the
    forget-gate path Bf = c_{t-1} f (1 - f); GRU: the direct path z) moves the flow far outside
    the tolerance against torch autograd."""
    T, I, H = 60, 3, 4
    model = make_model(kind, I, H, scale=0.8, seed=11)
    rng = np.random.default_rng(12)
    x = rng.uniform(-1, 1, (T, I))
    r = rng.standard_normal(H)
    states0 = tuple(rng.uniform(-1, 1, H) for _ in range(2 if kind == "lstm" else 1))
    oracle = torch_per_step_log_norms(model, x, states0, r)
    kernel = gk._LSTM if kind == "lstm" else gk._GRU
    original = kernel.coefficients
    dropped = slice(3 * H, 4 * H)  # LSTM P = [A, Bo, Bi, Bf, Bg, f]; GRU P = [Cr, Cz, Cn, z]

    def mutated(self, n):
        G = original(self, n)
        self.P[:n, dropped] = 0.0
        return G

    monkeypatch.setattr(kernel, "coefficients", mutated)
    wrong = gradient_flow(model, x, r, states_for(model, states0))
    with pytest.raises(AssertionError, match="max err/tol"):
        assert_flows_agree(wrong, oracle, H, I)


@pytest.mark.parametrize("cls, kernel", [(gt.LSTM, gk.LSTM), (gt.GRU, gk.GRU)])
def test_registry_entry_routes_gradient_flow_and_lyapunov_to_the_fast_kernel(cls, kernel, monkeypatch):
    """gt.gradient_flow / gt.lyapunov_exponent of an exact LSTM/GRU run the kernel its registry
    entry names (CellSpec.fast_kernel), not the generic step code: a kernel that refuses to run
    must make both raise."""

    class Refused(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Refused

    monkeypatch.setattr(kernel, "gradient_flow", refuse)
    monkeypatch.setattr(kernel, "lyapunov_exponent", refuse)
    model = cls(2, 3)
    x = np.zeros((4, 2))
    with pytest.raises(Refused):
        gt.gradient_flow(model, x)
    with pytest.raises(Refused):
        gt.lyapunov_exponent(model, x)
