"""Bad input is rejected at the boundary with a message naming the argument, its value and the
expectation; valid-but-unsupported options raise NotImplementedError; nothing mutates its inputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given

import gradtheory as gt
from gradtheory import strategies as gst
from gradtheory.oracles import central_difference, complex_step, richardson

# COMPLEX_STEP_QUADRATIC (relative tolerance): complex_step of sum(v^2) at x = v = 1: Im((1 + ih)^2)
# / h = 2 per entry up to the rounding of the complex square and the sum of 3 terms: a few u
# relative to 6.
COMPLEX_STEP_QUADRATIC = 1e-15


@pytest.fixture
def lstm():
    return gt.LSTM(3, 4, num_layers=2, seed=1)


@pytest.mark.parametrize(
    "x, exc, message",
    [
        (np.zeros((5, 2, 4)), ValueError, "x must have input_size=3 features in its last axis, got 4"),
        (
            np.zeros((5, 2, 3), dtype=np.int64),
            TypeError,
            "x must have a floating dtype (float64 expected), got dtype int64",
        ),
        (np.zeros((0, 2, 3)), ValueError, "x must contain at least one time step, got shape (0, 2, 3) (T = 0)"),
        (np.zeros((5,)), ValueError, "x must have 2 or 3 dimensions, got shape (5,)"),
        (np.full((5, 2, 3), np.nan), ValueError, "x must be finite, got nan at index (0, 0, 0)"),
        (np.array([[[0.0, np.inf, 0.0]]]), ValueError, "x must be finite, got inf at index (0, 0, 1)"),
        ("abc", TypeError, "x must be a float array, got str 'abc'"),
    ],
)
def test_bad_input_raises_naming_argument_value_and_expectation(lstm, x, exc, message):
    with pytest.raises(exc) as info:
        lstm.forward(x)
    assert message in str(info.value)


def test_bad_initial_state_and_cotangents(lstm):
    x = np.zeros((5, 2, 3))
    with pytest.raises(TypeError, match=r"h0 must be a tuple \(h0, c0\) for LSTM, got ndarray"):
        lstm.forward(x, np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match=r"h0\[1\] must have shape \(2, 2, 4\), got shape \(2, 4\)"):
        lstm.forward(x, (np.zeros((2, 2, 4)), np.zeros((2, 4))))
    res = lstm.forward(x)
    with pytest.raises(ValueError, match=r"d_output must have shape \(5, 2, 4\), got shape \(5, 2, 3\)"):
        lstm.backward(res, np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"d_h_n must be finite"):
        lstm.backward(res, np.zeros((5, 2, 4)), np.full((2, 2, 4), np.nan))
    with pytest.raises(TypeError, match="d_c_n is only defined for LSTM"):
        gt.GRU(3, 4).backward(gt.GRU(3, 4).forward(x), np.zeros((5, 2, 4)), None, np.zeros((1, 2, 4)))
    with pytest.raises(TypeError, match="result must be the ForwardResult"):
        lstm.backward((1, 2), np.zeros((5, 2, 4)))
    with pytest.raises(ValueError, match="truncate must be >= 1, got 0"):
        lstm.backward(res, np.zeros((5, 2, 4)), truncate=0)


def test_bad_model_options():
    with pytest.raises(
        ValueError,
        match=r"nonlinearity='softplus' is unknown; expected one of \['identity', 'relu', 'sigmoid', 'tanh'\]",
    ):
        gt.RNN(3, 4, nonlinearity="softplus")
    with pytest.raises(TypeError, match="hidden_size must be an int, got float 4.0"):
        gt.GRU(3, 4.0)
    with pytest.raises(ValueError, match="num_layers must be >= 1, got 0"):
        gt.LSTM(3, 4, num_layers=0)
    with pytest.raises(TypeError, match="bidirectional must be a bool, got str 'yes'"):
        gt.LSTM(3, 4, bidirectional="yes")
    with pytest.raises(ValueError, match=r"params has the wrong names: missing \['bias_hh_l0'"):
        gt.RNN(
            1, 1, params={"weight_ih_l0": np.zeros((1, 1)), "weight_hh_l0": np.zeros((1, 1)), "bias_ih_l0": np.zeros(1)}
        )
    with pytest.raises(ValueError, match=r"params\['weight_hh_l0'\] must have shape \(1, 1\), got shape \(2, 2\)"):
        gt.RNN(1, 1, bias=False, params={"weight_ih_l0": np.zeros((1, 1)), "weight_hh_l0": np.zeros((2, 2))})
    model = gt.RNN(2, 2)
    model.params["weight_hh_l0"][0, 0] = np.nan  # in-place corruption is caught at the next forward
    with pytest.raises(ValueError, match=r"params\['weight_hh_l0'\] must be finite"):
        model.forward(np.zeros((3, 2)))


def test_torch_interop_rejects_non_recurrent_and_unsupported_modules():
    with pytest.raises(TypeError, match="module must be a torch.nn.RNN, LSTM or GRU instance, got Linear"):
        gt.from_torch(torch.nn.Linear(2, 3))
    with pytest.raises(NotImplementedError, match="proj_size=2"):
        gt.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(NotImplementedError, match=r"dropout=0.5 in training mode"):
        gt.from_torch(torch.nn.GRU(3, 4, num_layers=2, dropout=0.5))
    gt.from_torch(torch.nn.GRU(3, 4, num_layers=2, dropout=0.5).eval())  # eval mode: no dropout
    module = torch.nn.RNN(2, 2)
    with torch.no_grad():
        module.weight_hh_l0[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"params\['weight_hh_l0'\] must be finite"):
        gt.from_torch(module)
    with pytest.raises(NotImplementedError, match="torch.nn.RNN has no nonlinearity='sigmoid'"):
        gt.to_torch(gt.RNN(2, 2, nonlinearity="sigmoid"))
    opaque = type("OpaqueCell", (gt.cells.get("rnn").cell,), {})()  # unregistered, no torch_step
    with pytest.raises(NotImplementedError, match="torch has no module equivalent to RecurrentModel"):
        gt.to_torch(gt.RecurrentModel(2, 2, cell=opaque))
    with pytest.raises(TypeError, match="model must be a gradtheory RNN, LSTM or GRU, got Linear"):
        gt.to_torch(torch.nn.Linear(2, 2))
    with pytest.raises(NotImplementedError, match="truncate is not supported for bidirectional"):
        m = gt.RNN(2, 2, bidirectional=True)
        m.backward(m.forward(np.zeros((3, 2))), np.zeros((3, 4)), truncate=2)


def test_complex_step_rejects_relu():
    model = gt.RNN(2, 2, nonlinearity="relu")
    with pytest.raises(NotImplementedError, match="relu.*not analytic"):
        model.apply(model.params, np.zeros((3, 2)) + 0j)


def test_oracles_validate_arguments():
    f = lambda v: float(np.sum(v**2))  # noqa: E731
    with pytest.raises(ValueError, match=r"v must have the shape of x \(3,\), got \(2,\)"):
        central_difference(f, np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="h must be a positive float, got -1"):
        central_difference(f, np.zeros(3), np.zeros(3), h=-1)
    with pytest.raises(ValueError, match="levels must be >= 2, got 1"):
        richardson(f, np.zeros(3), np.ones(3), levels=1)
    assert complex_step(lambda v: np.sum(v**2), np.ones(3), np.ones(3)) == pytest.approx(
        6.0, rel=COMPLEX_STEP_QUADRATIC
    )


@given(
    gst.models(families=("rnn", "lstm", "gru", "residual", "highway"), nonlinearities=("tanh", "relu", "sigmoid")),
    gst.sequences(input_size=4, batch=2),
)
def test_no_function_mutates_its_inputs(model, x):
    """forward, backward, jacobians, from_torch/to_torch leave every argument unchanged."""
    model = copy.deepcopy(model)
    x = x[..., : model.input_size] if model.input_size <= 4 else x
    if model.batch_first:
        x = np.swapaxes(x, 0, 1)
    params_before = {k: v.copy() for k, v in model.params.items()}
    x_before = x.copy()
    LD = model.num_layers * model.num_directions
    B = 2
    h0 = np.ones((LD, B, model.hidden_size))
    h0_arg = (h0, h0.copy()) if isinstance(model, gt.LSTM) else h0
    h0_before = copy.deepcopy(h0_arg)
    res = model.forward(x, h0_arg)
    d_out = np.ones_like(res.output)
    d_hn = np.ones_like(res.h_n)
    grads = model.backward(res, d_out, d_hn)
    output_before = res.output.copy()
    model.jacobians(res)
    model.backward(res, d_out, d_hn)
    np.testing.assert_array_equal(res.output, output_before)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(d_out, np.ones_like(res.output))
    np.testing.assert_array_equal(d_hn, np.ones_like(res.h_n))
    for a, b in zip(np.atleast_1d(h0_arg), np.atleast_1d(h0_before)):
        np.testing.assert_array_equal(a, b)
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, params_before[k])
    assert grads.x.shape == x.shape
