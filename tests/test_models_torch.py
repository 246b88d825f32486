"""The numpy models are exact twins of torch.nn.RNN/LSTM/GRU: forward and BPTT.

Statements: for every configuration (1-3 layers, bidirectional, bias on/off, batch_first,
unbatched, batch 1, T = 1), ``from_torch(m).forward`` equals ``m(x)`` to 1e-12 relative and
``backward`` equals torch autograd to 1e-10 relative (tolerances and their error analysis in
``gradtheory/_tolerances.py``). Derivation of the BPTT recursion: ``proofs/rnn_bptt.tex``,
``proofs/lstm.tex``, ``proofs/gru.tex``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_rel, torch_run
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtheory as gt
from gradtheory import strategies as gst
from gradtheory._tolerances import BPTT_VS_TORCH, FORWARD_VS_TORCH

_ELEM = gst.reals(2.0)


@st.composite
def model_cases(draw, families=("rnn", "lstm", "gru")):
    """A drawn model with a matching input, initial state and output cotangents."""
    model = draw(gst.models(families=families, max_layers=3))
    T = draw(st.integers(1, 5))
    batched = draw(st.booleans())
    B = draw(st.integers(1, 3)) if batched else None
    I, H, LD = model.input_size, model.hidden_size, model.num_layers * model.num_directions
    if not batched:
        x_shape, s_shape = (T, I), (LD, H)
        out_shape = (T, model.num_directions * H)
    elif model.batch_first:
        x_shape, s_shape, out_shape = (B, T, I), (LD, B, H), (B, T, model.num_directions * H)
    else:
        x_shape, s_shape, out_shape = (T, B, I), (LD, B, H), (T, B, model.num_directions * H)
    x = draw(hnp.arrays(np.float64, x_shape, elements=_ELEM))
    arr = lambda shape: draw(hnp.arrays(np.float64, shape, elements=_ELEM))  # noqa: E731
    lstm = isinstance(model, gt.LSTM)
    h0 = draw(st.one_of(st.none(), st.just(0)))
    if h0 is not None:
        h0 = (arr(s_shape), arr(s_shape)) if lstm else arr(s_shape)
    d_out = arr(out_shape)
    d_hn = arr(s_shape)
    d_cn = arr(s_shape) if lstm else None
    return model, x, h0, d_out, d_hn, d_cn


@given(model_cases())
def test_forward_equals_torch_twin(case):
    """``from_torch(m).forward(x, h0)`` equals ``m(x, h0)`` (output, h_n, c_n) to 1e-12 relative."""
    model, x, h0, *_ = case
    module = gt.to_torch(model)
    twin = gt.from_torch(module)
    res = twin.forward(x, h0)
    with torch.no_grad():
        if h0 is None:
            out, hn = module(torch.from_numpy(x))
        elif isinstance(h0, tuple):
            out, hn = module(torch.from_numpy(x), tuple(torch.from_numpy(v) for v in h0))
        else:
            out, hn = module(torch.from_numpy(x), torch.from_numpy(h0))
    assert_rel(res.output, out.numpy(), FORWARD_VS_TORCH, "output")
    if isinstance(hn, tuple):
        assert_rel(res.h_n, hn[0].numpy(), FORWARD_VS_TORCH, "h_n")
        assert_rel(res.c_n, hn[1].numpy(), FORWARD_VS_TORCH, "c_n")
    else:
        assert_rel(res.h_n, hn.numpy(), FORWARD_VS_TORCH, "h_n")
        assert res.c_n is None


@given(model_cases())
def test_bptt_equals_torch_autograd(case):
    """Every parameter gradient, dL/dx and dL/dh0 (dL/dc0) equal torch autograd to 1e-10 relative."""
    model, x, h0, d_out, d_hn, d_cn = case
    module = gt.to_torch(model)
    res = model.forward(x, h0)
    grads = model.backward(res, d_out, d_hn, d_cn)
    _, _, t_grads, t_dx, t_dh0 = torch_run(module, x, h0, d_out, d_hn, d_cn)
    assert list(grads.params) == list(t_grads), "parameter names and order follow torch"
    for name, g in t_grads.items():
        assert_rel(grads.params[name], g, BPTT_VS_TORCH, name)
    assert_rel(grads.x, t_dx, BPTT_VS_TORCH, "x")
    if h0 is not None:
        if isinstance(h0, tuple):
            assert_rel(grads.h0, t_dh0[0], BPTT_VS_TORCH, "h0")
            assert_rel(grads.c0, t_dh0[1], BPTT_VS_TORCH, "c0")
        else:
            assert_rel(grads.h0, t_dh0, BPTT_VS_TORCH, "h0")


@pytest.mark.parametrize("mode", ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"])
def test_from_torch_then_to_torch_round_trips_weights_exactly(mode):
    """to_torch(from_torch(m)) has bit-identical parameters with the same names and options."""
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True, bias=False, dtype=torch.float64)
    module = {
        "RNN_TANH": lambda: torch.nn.RNN(3, 4, nonlinearity="tanh", **kw),
        "RNN_RELU": lambda: torch.nn.RNN(3, 4, nonlinearity="relu", **kw),
        "LSTM": lambda: torch.nn.LSTM(3, 4, **kw),
        "GRU": lambda: torch.nn.GRU(3, 4, **kw),
    }[mode]()
    back = gt.to_torch(gt.from_torch(module))
    assert type(back) is type(module) and back.mode == module.mode
    for (n1, p1), (n2, p2) in zip(module.named_parameters(), back.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)
    assert (back.num_layers, back.bidirectional, back.batch_first, back.bias) == (2, True, True, False)


def test_from_torch_converts_float32_modules_to_float64_exactly():
    """A float32 module's weights are widened exactly (float32 -> float64 is exact)."""
    torch.manual_seed(1)
    module = torch.nn.GRU(2, 3)
    model = gt.from_torch(module)
    for name, p in module.named_parameters():
        assert model.params[name].dtype == np.float64
        np.testing.assert_array_equal(model.params[name], p.detach().double().numpy())


def test_bidirectional_h_n_reverse_half_is_output_at_first_step():
    """torch's layout: h_n[reverse] is the reverse direction's state after reading x_0,
    i.e. output[0, :, H:], not output[-1, :, H:] (REFERENCES.md)."""
    model = gt.GRU(2, 3, bidirectional=True, seed=4)
    x = np.random.default_rng(0).normal(size=(5, 2, 2))
    res = model.forward(x)
    np.testing.assert_array_equal(res.h_n[1], res.output[0, :, 3:])
    np.testing.assert_array_equal(res.h_n[0], res.output[-1, :, :3])
    assert not np.allclose(res.h_n[1], res.output[-1, :, 3:])


def test_relu_derivative_at_kink_is_zero_like_torch():
    """relu'(0) := 0 (torch's threshold_backward). With zero weights and biases every
    pre-activation is exactly 0, so all recurrent and input gradients vanish in both."""
    module = torch.nn.RNN(2, 3, nonlinearity="relu", dtype=torch.float64)
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    model = gt.from_torch(module)
    x = np.random.default_rng(0).normal(size=(4, 1, 2))
    d_out = np.ones((4, 1, 3))
    res = model.forward(x)
    assert np.all(res.output == 0.0)
    grads = model.backward(res, d_out)
    _, _, t_grads, t_dx, _ = torch_run(module, x, None, d_out, np.zeros((1, 1, 3)))
    for name, g in t_grads.items():
        np.testing.assert_array_equal(grads.params[name], g)
        assert np.all(g == 0.0)
    np.testing.assert_array_equal(grads.x, t_dx)


@given(st.integers(1, 3))
@example(2)
def test_relu_gradient_passes_only_where_output_positive(seed):
    """relu at a mix of exactly-zero and nonzero pre-activations equals torch bit-for-bit in
    the masking: gradients flow only through units with a > 0."""
    module = torch.nn.RNN(1, 4, nonlinearity="relu", dtype=torch.float64, bias=True)
    with torch.no_grad():
        module.weight_hh_l0.zero_()
        module.weight_ih_l0.copy_(torch.tensor([[1.0], [0.0], [-1.0], [2.0]]))
        module.bias_ih_l0.zero_()
        module.bias_hh_l0.zero_()
    model = gt.from_torch(module)
    x = np.array([[[1.0]], [[0.0]], [[-1.0]]]) * seed
    d_out = np.ones((3, 1, 4))
    grads = model.backward(model.forward(x), d_out)
    _, _, t_grads, t_dx, _ = torch_run(module, x, None, d_out, np.zeros((1, 1, 4)))
    for name, g in t_grads.items():
        np.testing.assert_array_equal(grads.params[name], g)
    np.testing.assert_array_equal(grads.x, t_dx)


@pytest.mark.parametrize("family", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T,B", [(1, 1), (4, 2)])
def test_every_configuration_matches_torch_forward_and_backward(family, num_layers, bidirectional, bias, T, B):
    """The full grid of the issue (1-3 layers x directions x bias x {T=1,B=1}) against torch."""
    torch.manual_seed(num_layers * 7 + T)
    kw = dict(num_layers=num_layers, bidirectional=bidirectional, bias=bias, dtype=torch.float64)
    module = {
        "rnn_tanh": lambda: torch.nn.RNN(3, 4, nonlinearity="tanh", **kw),
        "rnn_relu": lambda: torch.nn.RNN(3, 4, nonlinearity="relu", **kw),
        "lstm": lambda: torch.nn.LSTM(3, 4, **kw),
        "gru": lambda: torch.nn.GRU(3, 4, **kw),
    }[family]()
    model = gt.from_torch(module)
    rng = np.random.default_rng(T)
    LD = num_layers * (2 if bidirectional else 1)
    x = rng.normal(size=(T, B, 3))
    h0 = rng.normal(size=(LD, B, 4))
    if family == "lstm":
        h0 = (h0, rng.normal(size=(LD, B, 4)))
    d_out = rng.normal(size=(T, B, LD // num_layers * 4))
    d_hn = rng.normal(size=(LD, B, 4))
    d_cn = rng.normal(size=(LD, B, 4)) if family == "lstm" else None
    res = model.forward(x, h0)
    grads = model.backward(res, d_out, d_hn, d_cn)
    out, hn, t_grads, t_dx, t_dh0 = torch_run(module, x, h0, d_out, d_hn, d_cn)
    assert_rel(res.output, out, FORWARD_VS_TORCH, "output")
    assert_rel(res.h_n, hn[0] if family == "lstm" else hn, FORWARD_VS_TORCH, "h_n")
    for name, g in t_grads.items():
        assert_rel(grads.params[name], g, BPTT_VS_TORCH, name)
    assert_rel(grads.x, t_dx, BPTT_VS_TORCH, "x")
    assert_rel(grads.h0, t_dh0[0] if family == "lstm" else t_dh0, BPTT_VS_TORCH, "h0")
    if family == "lstm":
        assert_rel(res.c_n, hn[1], FORWARD_VS_TORCH, "c_n")
        assert_rel(grads.c0, t_dh0[1], BPTT_VS_TORCH, "c0")
