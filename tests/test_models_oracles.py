"""BPTT against independent oracles: complex step, Richardson/central differences, exact arithmetic,
JVP/VJP duality, products of one-step Jacobians, truncated BPTT.

Derivations: ``proofs/rnn_bptt.tex`` (the recursion), ``proofs/lstm.tex``, ``proofs/gru.tex``,
``proofs/residual_highway.tex``. Tolerances: ``gradtheory/_tolerances.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_rel, robust_norm
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtheory as gt
from gradtheory import strategies as gst
from gradtheory._tolerances import BPTT_VS_COMPLEX_STEP, BPTT_VS_TORCH, EXACT_VS_BPTT, JACOBIAN_PRODUCT, UNIT_ROUNDOFF
from gradtheory.oracles import (
    central_difference,
    complex_step,
    exact_directional_derivative,
    jacobian,
    model_loss,
    richardson,
)

# JVP_VS_VJP (relative tolerance): <u, J v> computed by complex-step JVP and by BPTT VJP: both ~
# n*T*u accurate (as bptt_vs_complex_step).
JVP_VS_VJP = 1e-12
# MODEL_LOSS_FORWARD_ERROR (dimensionless factor): Factor c in |fl(L) - L| <= c (n + 2) T u M G
# (sum|d_out| + sum|d_hn| + sum|d_cn|), i.e. (4n + 8) T u M G (...): every scalar of a step is a sum
# of products of terms bounded by M = (1 + max|W|_inf)(1 + max|state, input|) (activations are
# bounded by 1 or are the identity), so each step commits an absolute error <= c u M with c ~ 4n + 8
# operations per entry; an error committed at step s reaches the output through J_T ... J_{s+1}, of
# norm <= G = prod (1 + ||J_t||) (the direct terms of residual/highway/LSTM/GRU cells have norm <=
# 1).
MODEL_LOSS_FORWARD_ERROR = 4.0
# SEED004_CONCATENATED_FORWARD (dimensionless factor): Factor c in rel = c (n + m) u T: seed 004's
# c(t) = sigmoid(W [c(t-1), x(t)]) by a direct loop over the concatenated form vs the model's
# forward: the only difference is the summation order of one dot product (<= (n + m) u relative per
# step), over T steps.
SEED004_CONCATENATED_FORWARD = 4.0

ANALYTIC = dict(families=("rnn", "lstm", "gru", "residual", "highway"), nonlinearities=("tanh", "sigmoid", "identity"))
_ELEM = gst.reals(1.5)


def _arr(draw, shape):
    return draw(hnp.arrays(np.float64, shape, elements=_ELEM))


@st.composite
def small_cases(draw, max_layers=2, **model_kw):
    """Unbatched small model (torch-free families included), x, h0, cotangents."""
    kw = dict(ANALYTIC)
    kw.update(model_kw)
    model = draw(
        gst.models(
            max_layers=max_layers, batch_first=False, hidden_size=st.integers(1, 3), input_size=st.integers(1, 3), **kw
        )
    )
    T = draw(st.integers(1, 4))
    LD, H = model.num_layers * model.num_directions, model.hidden_size
    x = _arr(draw, (T, model.input_size))
    lstm = isinstance(model, gt.LSTM)
    h0 = (_arr(draw, (LD, H)), _arr(draw, (LD, H))) if lstm else _arr(draw, (LD, H))
    d_out = _arr(draw, (T, model.num_directions * H))
    d_hn = _arr(draw, (LD, H))
    d_cn = _arr(draw, (LD, H)) if lstm else None
    return model, x, h0, d_out, d_hn, d_cn


def _targets(model):
    names = list(model.params) + ["x", "h0"]
    return names + (["c0"] if isinstance(model, gt.LSTM) else [])


def _grad_of(grads, name):
    return {"x": grads.x, "h0": grads.h0, "c0": grads.c0}.get(name, grads.params.get(name))


@given(small_cases())
def test_bptt_equals_complex_step_gradient_elementwise(case):
    """For analytic models (tanh, sigmoid, identity RNN; LSTM; GRU; residual; highway), every
    element of every gradient equals Im L(theta + i h e_j) / h (h = 1e-20) to 1e-12 relative."""
    model, x, h0, d_out, d_hn, d_cn = case
    grads = model.backward(model.forward(x, h0), d_out, d_hn, d_cn)
    for name in _targets(model):
        f, point = model_loss(model, x, wrt=name, d_output=d_out, h0=h0, d_h_n=d_hn, d_c_n=d_cn)
        cs = jacobian(f, point, method="complex")
        assert_rel(_grad_of(grads, name), cs, BPTT_VS_COMPLEX_STEP, name)


def _loss_round_off(model, x, h0, d_out, d_hn, d_cn):
    """Forward error bound of L = <d_out, out> + <d_hn, h_n> (+ <d_cn, c_n>) for a single-layer model.

    Every scalar of a step is a sum of products of terms bounded by
    M = (1 + max|W|_inf)(1 + max|state, input|) (activations are bounded by 1 or are the identity),
    so each step commits an absolute error <= c u M with c ~ 4n + 8 operations per entry; an error
    committed at step s reaches the output through J_T ... J_{s+1}, of norm <= G = prod (1 + ||J_t||)
    (the direct terms of residual/highway/LSTM/GRU cells have norm <= 1). Hence
    |fl(L) - L| <= (4n + 8) T u M G (sum|d_out| + sum|d_hn| + sum|d_cn|): |L| itself, or the sum of
    |terms| at the end, can be far smaller under cancellation (found by Hypothesis: a residual cell
    with h_0 = -0.445 cancelling tanh(a))."""
    res = model.forward(x, h0)
    values = [np.abs(x).max()] + [np.abs(s).max() for tr in res.traces for s in tr.states]
    M = (1.0 + max(np.abs(W).sum(axis=1).max() for W in model.params.values() if W.ndim == 2)) * (1.0 + max(values))
    G = 1.0
    for d in range(model.num_directions):
        G = max(G, float(np.prod(1.0 + np.linalg.norm(model.jacobians(res, 0, d), 2, axis=(-2, -1)))))
    weights = np.sum(np.abs(d_out)) + np.sum(np.abs(d_hn)) + (np.sum(np.abs(d_cn)) if d_cn is not None else 0.0)
    n, T = model.hidden_size * model.cell.gates, x.shape[0]
    return MODEL_LOSS_FORWARD_ERROR * (n + 2) * T * UNIT_ROUNDOFF * M * G * weights  # (4n + 8) T u M G


@given(small_cases(max_layers=1), st.integers(0, 2**32 - 1))
def test_bptt_within_derived_error_bound_of_central_and_richardson_differences(case, seed):
    r"""Central differences with step h: |D_h - f'| <= (h^2/6) max|f^(3)| + eps_L / h, with
    eps_L the forward error bound of L (``_loss_round_off``). We bound f^(3) on
    [x-h, x+h] by twice the third difference at step 1e-2 (third derivatives of compositions of
    tanh/sigmoid with O(1) weights vary by far less than 2x over 0.02) and use h = 1e-5.
    Richardson (4 levels from h = 1e-2, round-off propagated from eps_L) must be within its own
    error estimate (truncation: the larger of the last two corrections; round-off: the
    extrapolation weights times eps_L / h_k). Measured against complex step on 6,000 random
    RNN/LSTM/GRU cases the actual error never exceeded 0.27x the estimate."""
    model, x, h0, d_out, d_hn, d_cn = case
    grads = model.backward(model.forward(x, h0), d_out, d_hn, d_cn)
    eps_L = _loss_round_off(model, x, h0, d_out, d_hn, d_cn)
    rng = np.random.default_rng(seed)
    for name in _targets(model):
        f, point = model_loss(model, x, wrt=name, d_output=d_out, h0=h0, d_h_n=d_hn, d_c_n=d_cn)
        v = rng.normal(size=point.shape)
        exact = float(np.sum(_grad_of(grads, name) * v))
        h, H3 = 1e-5, 1e-2
        third = abs(f(point + 2 * H3 * v) - 2 * f(point + H3 * v) + 2 * f(point - H3 * v) - f(point - 2 * H3 * v)) / (
            2 * H3**3
        )
        bound = h**2 / 6 * 2 * third + eps_L / h  # (two evaluations, each within eps_L) / 2h
        cd = float(central_difference(f, point, v, h))
        assert abs(cd - exact) <= bound, (name, cd, exact, bound)
        r = richardson(f, point, v, f_error=eps_L)
        assert abs(float(r.value) - exact) <= float(r.error), (name, r, exact)


@st.composite
def exact_cases(draw):
    family = draw(st.sampled_from(["identity", "relu", "tanh", "sigmoid", "lstm", "gru"]))
    I, H, T = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 6))
    if family == "lstm":
        model = gt.LSTM(I, H)
    elif family == "gru":
        model = gt.GRU(I, H)
    else:
        model = gt.RNN(I, H, nonlinearity=family)
    model.params = draw(gst.parameters(model, scale=1.0))
    x = _arr(draw, (T, I))
    h0 = (_arr(draw, (1, H)), _arr(draw, (1, H))) if family == "lstm" else _arr(draw, (1, H))
    return model, x, h0, _arr(draw, (T, H)), _arr(draw, (1, H))


@given(exact_cases(), st.integers(0, 2**32 - 1))
def test_bptt_equals_exact_arithmetic_for_small_models(case, seed):
    """n <= 3, T <= 6: the directional derivative of L along a random direction in (params, x,
    h0), computed in exact rationals (identity, relu) or 50-digit mpmath forward mode by an
    independent scalar implementation, equals <BPTT gradient, direction> to 1e-13 relative to
    ||gradient|| ||direction||."""
    model, x, h0, d_out, d_hn = case
    grads = model.backward(model.forward(x, h0), d_out, d_hn)
    rng = np.random.default_rng(seed)
    direction = {k: rng.normal(size=v.shape) for k, v in model.params.items()}
    direction["x"] = rng.normal(size=x.shape)
    hh = h0[0] if isinstance(h0, tuple) else h0
    direction["h0"] = rng.normal(size=hh.shape)
    _, dL = exact_directional_derivative(model, x, direction, d_output=d_out, h0=h0, d_h_n=d_hn)
    pairs = [(grads.params[k], direction[k]) for k in model.params] + [
        (grads.x, direction["x"]),
        (grads.h0, direction["h0"]),
    ]
    bptt = sum(float(np.sum(g * v)) for g, v in pairs)
    scale = robust_norm(*(g for g, _ in pairs)) * robust_norm(*(v for _, v in pairs))
    assert abs(float(dL) - bptt) <= EXACT_VS_BPTT.value * scale, (float(dL), bptt, scale)


@given(small_cases(), st.integers(0, 2**32 - 1))
def test_jvp_and_vjp_agree(case, seed):
    """<u, J v> (complex-step JVP of the output along v in x) equals <J^T u, v> (BPTT with
    d_output = u) for every model: forward- and reverse-mode duality."""
    model, x, h0, u, _, _ = case
    v = np.random.default_rng(seed).normal(size=x.shape)
    Jv = complex_step(lambda xx: model.apply(model.params, xx, h0).output, x, v)
    vjp = model.backward(model.forward(x, h0), u).x
    lhs, rhs = float(np.sum(u * Jv)), float(np.sum(vjp * v))
    scale = robust_norm(u) * robust_norm(Jv) + robust_norm(vjp) * robust_norm(v)
    assert abs(lhs - rhs) <= JVP_VS_VJP * scale, (lhs, rhs, scale)


def _state_after(model, x, s0):
    """Final joint state of a single-layer model started from s0 (complex allowed)."""
    H = model.hidden_size
    if isinstance(model, gt.LSTM):
        res = model.apply(model.params, x, (s0[None, :H], s0[None, H:]))
        return np.concatenate([res.h_n[0], res.c_n[0]])
    return model.apply(model.params, x, s0[None]).h_n[0]


@given(small_cases(max_layers=1, bidirectional=False), st.data())
def test_product_of_one_step_jacobians_equals_state_to_state_jacobian(case, data):
    r""":math:`\partial s_t/\partial s_k = J_t J_{t-1}\cdots J_{k+1}` where J are ``model.jacobians``
    (joint (h, c) state for LSTM), against the complex-step Jacobian of the map s_k -> s_t."""
    model, x, h0, *_ = case
    res = model.forward(x, h0)
    J = model.jacobians(res)
    T = x.shape[0]
    k = data.draw(st.integers(0, T - 1))
    t = data.draw(st.integers(k + 1, T))
    states = [np.concatenate([h0[0][0], h0[1][0]]) if isinstance(h0, tuple) else h0[0]]
    for tr in [res.traces[0]]:
        for step in range(1, T + 1):
            states.append(np.concatenate([tr.states[0][step, 0]] + [s[step, 0] for s in tr.states[1:]]))
    product = np.eye(J.shape[-1])
    # Each J_s = (direct term of norm <= 1: 0, I, diag(f), diag(z), diag(1-T)) + (gated W term),
    # so both terms have norm <= 1 + ||J_s||, and the computed product (and the complex-step
    # oracle, which evaluates the same terms) is accurate to ~ c n u prod_s (1 + ||J_s||);
    # scale the comparison by that product, not by ||product||, which cancellation can make tiny.
    magnitude = 1.0
    for step in range(k, t):
        product = J[step] @ product
        magnitude *= 1.0 + np.linalg.norm(J[step], 2)
    oracle = jacobian(lambda s: _state_after(model, x[k:t], s), states[k], method="complex")
    err = np.max(np.abs(product - oracle))
    assert err <= JACOBIAN_PRODUCT.value * magnitude, (t, k, err, magnitude)


@given(small_cases(max_layers=1, bidirectional=False))
def test_per_step_gradient_is_transposed_jacobian_product_applied_to_readout(case):
    r"""With L = <r, h_T> (+ <r_c, c_T>): ``dh[k]`` (and ``dc[k]``) equal
    :math:`(J_T\cdots J_{k+2})^T r` -- the gradient flowing back through time is exactly the
    transposed product of one-step Jacobians; ``h0``'s gradient is the full product."""
    model, x, h0, _, d_hn, d_cn = case
    res = model.forward(x, h0)
    grads = model.backward(res, np.zeros_like(res.output), d_hn, d_cn)
    J = model.jacobians(res)
    g = np.concatenate([d_hn[0], d_cn[0]]) if d_cn is not None else d_hn[0]
    T = x.shape[0]
    for step in range(T - 1, -1, -1):
        got = np.concatenate([grads.dh[0, step], grads.dc[0, step]]) if d_cn is not None else grads.dh[0, step]
        assert_rel(got, g, JACOBIAN_PRODUCT, f"dL/ds_{step + 1}")
        g = J[step].T @ g
    got0 = np.concatenate([grads.h0[0], grads.c0[0]]) if d_cn is not None else grads.h0[0]
    assert_rel(got0, g, JACOBIAN_PRODUCT, "dL/ds_0")


@given(small_cases(max_layers=3, bidirectional=False), st.integers(0, 8))
def test_truncated_bptt_with_k_at_least_T_equals_full_bptt(case, extra):
    """truncate=k with k >= T traverses every step: identical (bitwise) to full BPTT."""
    model, x, h0, d_out, d_hn, d_cn = case
    res = model.forward(x, h0)
    full = model.backward(res, d_out, d_hn, d_cn)
    trunc = model.backward(res, d_out, d_hn, d_cn, truncate=x.shape[0] + extra)
    for name in model.params:
        np.testing.assert_array_equal(trunc.params[name], full.params[name])
    np.testing.assert_array_equal(trunc.x, full.x)
    np.testing.assert_array_equal(trunc.h0, full.h0)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("k", [1, 2, 4, 5])  # k = T - 1: one step before the truncation
def test_truncated_bptt_equals_autograd_with_state_detached_k_steps_back(mode, k):
    """truncate=k equals torch autograd of L_k = sum_{t > T-k} <d_out_t, out_t> + <d_hn, h_n>
    run from the detached states at T-k (all layers): the definition of truncated BPTT."""
    torch.manual_seed(k)
    module = getattr(torch.nn, mode)(3, 4, num_layers=2, dtype=torch.float64)
    model = gt.from_torch(module)
    rng = np.random.default_rng(k)
    T = 6
    x = rng.normal(size=(T, 2, 3))
    d_out, d_hn = rng.normal(size=(T, 2, 4)), rng.normal(size=(2, 2, 4))
    d_cn = rng.normal(size=(2, 2, 4)) if mode == "LSTM" else None
    grads = model.backward(model.forward(x), d_out, d_hn, d_cn, truncate=k)
    xt = torch.tensor(x, requires_grad=True)
    with torch.no_grad():
        _, state = module(xt[: T - k])
    out, hn = module(xt[T - k :], state)
    L = (out * torch.from_numpy(d_out[T - k :])).sum()
    if mode == "LSTM":
        L = L + (hn[0] * torch.from_numpy(d_hn)).sum() + (hn[1] * torch.from_numpy(d_cn)).sum()
    else:
        L = L + (hn * torch.from_numpy(d_hn)).sum()
    L.backward()
    for name, p in module.named_parameters():
        assert_rel(grads.params[name], p.grad.numpy(), BPTT_VS_TORCH, name)
    assert_rel(grads.x, xt.grad.numpy(), BPTT_VS_TORCH, "x")
    assert np.all(grads.x[: T - k] == 0.0) and np.all(grads.h0 == 0.0)
    assert np.all(grads.dh[:, : T - k] == 0.0)


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_sigmoid_rnn_is_seed_004_model_with_concatenated_weight(n, m, T, seed):
    """Seed 004's c(t) = sigmoid(W [c(t-1), x(t)]) with W = [W_rec, W_in] is the sigmoid RNN
    without bias, weight_hh = W_rec = W[:, :n], weight_ih = W_in = W[:, n:]: computed here by a
    direct loop over the concatenated form, equal to the model's forward to round-off (the
    only difference is the summation order of one dot product: <= (n + m) u relative)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, n + m))
    x = rng.normal(size=(T, m))
    model = gt.RNN(
        m, n, nonlinearity="sigmoid", bias=False, params={"weight_hh_l0": W[:, :n], "weight_ih_l0": W[:, n:]}
    )
    c = np.zeros(n)
    states = []
    for t in range(T):
        c = 1.0 / (1.0 + np.exp(-(W @ np.concatenate([c, x[t]]))))
        states.append(c)
    rtol = SEED004_CONCATENATED_FORWARD * (n + m) * UNIT_ROUNDOFF * T
    np.testing.assert_allclose(model.forward(x).output, np.array(states), rtol=rtol, atol=0)


def test_one_step_jacobian_under_cancellation_is_accurate_to_its_terms():
    """Found by Hypothesis: a residual cell with w_hh = -(1 - 2^-52) at a = 0 has
    J = 1 + phi'(0) w_hh = 2^-52, the difference of two O(1) terms. Both the model's Jacobian and
    the complex-step oracle are accurate to ~u (1 + ||J||), not to u |J|: the product test
    therefore scales by prod(1 + ||J_t||) (see test_product_of_one_step_jacobians...)."""
    w = -(1.0 - 2.0**-52)
    model = gt.ResidualRNN(1, 1, bias=False, params={"weight_ih_l0": [[0.0]], "weight_hh_l0": [[w]]})
    res = model.forward(np.zeros((1, 1)), np.zeros((1, 1)))
    J = model.jacobians(res)[0]
    assert J[0, 0] == 2.0**-52  # 1 + w is exact in binary: Sterbenz
    oracle = jacobian(lambda s: _state_after(model, np.zeros((1, 1)), s), np.zeros(1), method="complex")
    assert abs(J[0, 0] - oracle[0, 0]) <= JACOBIAN_PRODUCT.value * (1.0 + abs(J[0, 0]))


# BACKWARD_COMPLEX_STEP_VS_RICHARDSON: the complex step through the hand-written backward is the
# exact derivative of the gradient along v to round-off (~ 8 u |f| per entry, no subtraction);
# Richardson's own error estimate (truncation + round-off, oracles.richardson) bounds its side;
# 1e-9 absolute covers the round-off of both for gradients of size ~1 (T = 3, H = 3).
BACKWARD_COMPLEX_STEP_VS_RICHARDSON_ABS = 1e-9


@pytest.mark.parametrize("cls", [gt.RNN, gt.GRU, gt.LSTM])
def test_bptt_is_analytic_complex_step_through_backward_equals_richardson_of_the_gradient(cls):
    """The time loop's backward extends to complex parameters (the basis of complex-step
    second-order checks): Im g(theta + i h v) / h, with g the hand-written gradient (params, x,
    h0, c0 and the per-step dh, dc), equals the Richardson derivative of the real gradient along
    v. Buffers of the wrong (real) dtype would drop the imaginary part."""
    model = cls(2, 3, seed=4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2))
    h0 = rng.standard_normal((1, 3)) * 0.5
    if cls is gt.LSTM:
        h0 = (h0, rng.standard_normal((1, 3)) * 0.5)
    d_out, d_hn = rng.standard_normal((3, 3)), rng.standard_normal((1, 3))
    d_cn = rng.standard_normal((1, 3)) if cls is gt.LSTM else None
    names = list(model.params)
    shapes = [model.params[n].shape for n in names]
    theta = np.concatenate([model.params[n].ravel() for n in names])
    v = rng.standard_normal(theta.size)

    def gradient(th):
        params, i = {}, 0
        for n, shape in zip(names, shapes):
            size = int(np.prod(shape))
            block = th[i : i + size].reshape(shape)
            # a parameter the direction does not move stays real, as when a checker perturbs one
            # leaf at a time: complex b_hh beside real W_hh must still give complex states
            params[n] = block.real if np.iscomplexobj(block) and not np.any(block.imag) else block
            i += size
        # real cotangents on a complex forward: backward's h0/dh buffers must take the forward's
        # (complex) dtype, not the cotangent's, or Im is dropped
        g = model.backward(model.apply(params, x, h0), d_out, d_hn, d_cn)
        parts = [g.params[n].ravel() for n in names] + [g.x.ravel(), g.h0.ravel(), g.dh.ravel()]
        if cls is gt.LSTM:
            parts += [g.c0.ravel(), g.dc.ravel()]
        return np.concatenate(parts)

    # along every parameter at once, and along the recurrent bias alone (complex b_hh, real W_hh)
    start = sum(int(np.prod(shape)) for n, shape in zip(names, shapes) if names.index(n) < names.index("bias_hh_l0"))
    only_b_hh = np.zeros_like(v)
    only_b_hh[start : start + model.params["bias_hh_l0"].size] = 1.0
    for direction in (v, only_b_hh):
        cs = complex_step(gradient, theta, direction)
        ref = richardson(gradient, theta, direction, h=1e-2, levels=4)
        assert np.max(np.abs(cs)) > 1e-3  # the gradient does depend on theta along the direction
        assert np.all(np.abs(cs - ref.value) <= ref.error + BACKWARD_COMPLEX_STEP_VS_RICHARDSON_ABS)
