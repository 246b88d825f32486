"""Test the tester: check_gradients must pass correct backwards and flag wrong ones, with messages.

The statement under test (gradtheory/check/gradients.py, module docstring): for L = <w, fn(x)>, the analytic
<dL/dx_i, v_i> agrees with the Richardson derivative of L along v_i to within
k * (error estimate + analytic round-off); a backward that is wrong by a relative 1e-9 or more on
one tensor breaks that bound. The subjects are torch.nn.RNN/LSTM/GRU (torch's own backward:
correct), gradtheory's numpy models (hand-written BPTT: correct, an independent implementation),
and hand-written torch autograd Functions with planted bugs (gradtheory/_check_examples.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory import _check_examples as ex
from gradtheory._tolerances import BPTT_VS_COMPLEX_STEP
from gradtheory.check import (
    CheckTarget,
    GradientCheckError,
    check_gradients,
    model_target,
    torch_module_target,
)
from gradtheory.strategies import models, sequences


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small recurrent kernels run fastest on one thread; with other processes on the 2 CI cores,
    torch's default thread pool oversubscribes them (measured 30x slower). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class _RowScale(torch.autograd.Function):
    """Identity forward; backward scales row ``row`` of the gradient by (1 + eps)."""

    @staticmethod
    def forward(ctx, a, row, eps):
        ctx.row, ctx.eps = row, eps
        return a.view_as(a)

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        g[ctx.row] *= 1 + ctx.eps
        return g, None, None


def _planted(target: CheckTarget, index: int, kind: str, eps: float) -> CheckTarget:
    return ex.planted(target, index, kind, eps, seed=7)


def _torch_module(
    kind: str, I: int, H: int, *, layers: int = 1, bidirectional: bool = False, batch_first: bool = False, seed: int = 0
):
    torch.manual_seed(seed)
    return getattr(torch.nn, kind)(
        I, H, layers, bidirectional=bidirectional, batch_first=batch_first, dtype=torch.float64
    )


# ------------------------------------------------------------------------------------------------
# correct models pass


@pytest.mark.parametrize(
    "kind, layers, bidirectional, batch_first",
    [
        ("RNN", 1, False, False),
        ("LSTM", 2, True, False),
        ("GRU", 1, True, True),
        ("LSTM", 1, False, True),
        ("GRU", 3, False, False),
        ("RNN", 2, True, True),
    ],
)
def test_torch_recurrent_modules_pass(kind, layers, bidirectional, batch_first):
    """torch's own backward of nn.RNN/LSTM/GRU (float64) agrees with the Richardson reference."""
    m = _torch_module(kind, 3, 5, layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    x = torch.randn((2, 7, 3) if batch_first else (7, 2, 3), dtype=torch.float64)
    report = check_gradients(m, x)
    assert report.ok, report.summary
    assert len(report.inputs) == 1 + len(list(m.parameters()))
    # resolution: a relative error of 1e-9 would be at least 10 tolerances away
    assert max(c.resolution for c in report.inputs) < 1e-10, report.summary


@given(
    model=models(families=("rnn", "lstm", "gru"), nonlinearities=("tanh",), hidden_size=st.integers(1, 6)),
    data=st.data(),
)
def test_random_correct_torch_models_pass(model, data):
    """Zero false alarms on random correct RNN/LSTM/GRU (sizes, layers, directions, bias, layout);
    the 1,000-model sweep is benchmarks/bench_checker.py."""
    module = gt.to_torch(model)
    T = data.draw(st.integers(1, 6))
    x = data.draw(sequences(steps=T, input_size=model.input_size, batch=2))
    if model.batch_first:
        x = np.swapaxes(x, 0, 1).copy()
    report = check_gradients(module, torch.from_numpy(x), seed=data.draw(st.integers(0, 2**16)))
    assert report.ok, report.summary


@given(
    model=models(
        families=("rnn", "lstm", "gru", "residual", "highway"), nonlinearities=("tanh", "sigmoid"), max_layers=2
    ),
    data=st.data(),
)
def test_gradtheory_numpy_models_pass_with_their_handwritten_bptt(model, data):
    """The numpy path (fn + grad_fn): gradtheory's hand-written BPTT passes for every family."""
    x = data.draw(sequences(steps=st.integers(1, 5), input_size=model.input_size))
    report = check_gradients(model, x)
    assert report.ok, report.summary


def test_handwritten_torch_cells_pass_when_correct():
    """The custom autograd Functions without a planted bug pass (the bug suite's control group)."""
    for fn, inputs, names in [
        (ex.elman_function(), ex.elman_inputs(), ex.ELMAN_NAMES),
        (ex.lstm_function(), ex.lstm_inputs(), ex.LSTM_NAMES),
    ]:
        report = check_gradients(fn, inputs, names=names, time_axis=0)
        assert report.ok, report.summary
        assert "gradients OK" in report.summary


def test_complex_step_reference_on_an_analytic_numpy_model():
    """method='complex': Im L(x + i h v)/h is exact to round-off for the analytic tanh RNN."""
    model = gt.RNN(3, 4, seed=2)
    x = np.random.default_rng(0).standard_normal((6, 3))
    t = model_target(model, x)
    fn = t.fn

    def cfn(x_, *ps):  # complex-capable forward: the model's private complex path
        r = model.apply(dict(zip(t.names[1:], ps)), x_, None)
        return r.output, r.h_n

    report = check_gradients(CheckTarget(cfn, t.inputs, t.grad_fn, t.names), method="complex")
    assert report.ok, report.summary
    # the base point twice (the determinism test) and one complex evaluation per input
    assert report.evaluations == 2 + len(t.inputs)
    assert max(c.relative_error for c in report.inputs) < BPTT_VS_COMPLEX_STEP.value
    assert fn is not None


def test_smoothness_test_of_the_central_differences():
    """D_h = f' + c h^2 + ...: successive differences shrink 4x for a smooth f (sin); a kink at
    distance t0 inside the stencil (|t| - piecewise linear) breaks the ratio, both when t0 lies
    between two steps (one contaminated difference) and when it is inside every step (ratio 1/2)."""
    from gradtheory.check._probe import _smooth

    steps = 0.02 / 2.0 ** np.arange(4)

    def diffs(f):
        return np.array([(f(h) - f(-h)) / (2 * h) for h in steps])

    assert _smooth(diffs(lambda t: np.sin(0.3 + t)), steps, 1e-16)
    assert not _smooth(diffs(lambda t: abs(t - 0.007)), steps, 1e-16)  # h_2 < t0 < h_1
    assert not _smooth(diffs(lambda t: abs(t - 0.0005)), steps, 1e-16)  # t0 < h_min
    assert _smooth(diffs(lambda t: abs(t - 0.05)), steps, 1e-16)  # kink outside: linear


def test_kink_location_from_the_central_differences():
    """A kink is claimed only where the differences locate it: between h_2 and h_1 for one
    contaminated difference, inside h_min for the D_h = c + K/h pattern; never for a smooth f."""
    from gradtheory.check._probe import kink_location

    steps = 0.02 / 2.0 ** np.arange(4)

    def diffs(f):
        return np.array([(f(h) - f(-h)) / (2 * h) for h in steps])

    assert kink_location(diffs(lambda t: np.sin(0.3 + t)), steps, 1e-16) is None
    assert kink_location(diffs(lambda t: abs(t - 0.007)), steps, 1e-16) == (0.005, 0.01)
    assert kink_location(diffs(lambda t: abs(t - 0.0005)), steps, 1e-16) == (0.0, 0.0025)
    assert kink_location(diffs(lambda t: abs(t - 0.05)), steps, 1e-16) is None


@pytest.mark.parametrize("seed", range(4))
def test_relu_rnn_raises_no_false_alarm(seed):
    """ReLU RNNs are piecewise smooth: stencils that cross a kink are detected and shrunk or
    redrawn; an input is never called wrong (at worst inconclusive, which is not a pass)."""
    torch.manual_seed(seed)
    m = torch.nn.RNN(3, 16, 2, nonlinearity="relu", dtype=torch.float64)
    report = check_gradients(m, torch.randn(12, 2, 3, dtype=torch.float64), seed=seed)
    assert report.status in ("correct", "inconclusive"), report.summary
    assert report.ok == (report.status == "correct")


def test_relu_network_with_a_kink_next_to_the_point_is_inconclusive_not_wrong():
    """Found by the ReLU sweep: a 2-layer ReLU RNN (3 -> 18, T = 19) whose point sits within
    1.6e-4 (in units of the direction) of a kink. Every stencil either shows the kink or never
    passes the accuracy test; the disagreement (up to 2e-2 relative) must not be blamed on
    torch's (correct) backward: the verdict is inconclusive, with the located kink named."""
    rng = np.random.default_rng(5)
    for _ in range(265):  # the sweep's draws up to model 264
        H, T, I, L = (int(rng.integers(1, n)) for n in (33, 21, 9, 3))
        x = rng.standard_normal((T, 2, I))
    torch.manual_seed(264)
    m = torch.nn.RNN(I, H, L, nonlinearity="relu", dtype=torch.float64)
    report = check_gradients(m, torch.from_numpy(x), seed=264, localise=False)
    assert report.status == "inconclusive" and not report.failures, report.summary
    assert "a kink (a point where fn is not differentiable: relu, abs, max, clipping) is located" in report.summary
    assert "cannot be blamed on the backward" in report.summary


def test_relu_network_that_looks_smooth_on_four_steps_is_not_called_wrong():
    """Found by the ReLU sweep: kinks at several distances make the central differences of a
    piecewise-linear function converge like a smooth one's (ratios 4.5, 4.2) with a Richardson
    estimate of 4e-9 relative, yet 5e-4 off. Before a backward is called wrong, a stencil 16x
    smaller must confirm the reference; here it does not, so the verdict is inconclusive."""
    rng = np.random.default_rng(11)
    for _ in range(463):  # the sweep's draws up to model 462
        H, T, I, L = (int(rng.integers(1, n)) for n in (33, 21, 9, 3))
        x = rng.standard_normal((T, 2, I))
    torch.manual_seed(462)
    m = torch.nn.RNN(I, H, L, nonlinearity="relu", dtype=torch.float64)
    report = check_gradients(m, torch.from_numpy(x), seed=462, localise=False)
    assert report.status == "inconclusive" and not report.failures, report.summary
    assert "the reference is not stable across step sizes" in report.summary


# ------------------------------------------------------------------------------------------------
# sensitivity: planted relative errors of 1e-9 on one parameter tensor


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("planted", ["scale", "random"])
def test_relative_1e9_error_on_one_parameter_tensor_is_flagged(kind, planted):
    """A backward wrong by a relative 1e-9 on one tensor fails that tensor, and only that one."""
    target = torch_module_target(_torch_module(kind, 4, 8), torch.randn(10, 2, 4, dtype=torch.float64))
    index = 2 if planted == "scale" else 3  # weight_hh_l0, bias_ih_l0
    report = check_gradients(_planted(target, index, planted, 1e-9), localise=False)
    assert not report.ok
    assert [c.index for c in report.failures] == [index], report.summary
    bad = report.failures[0]
    if planted == "scale":  # an error along g is seen at its full relative size
        assert 0.5e-9 < bad.relative_error < 2e-9, report.summary
    # a random error e is seen through its projection on v: ~ 1e-9 * |g| |v| / sqrt(n); still
    # several tolerances away
    assert bad.error > 2 * bad.tolerance, report.summary


def test_a_wrong_row_is_localised_to_that_row():
    """GRU weight_ih_l0 (3H = 24 rows) with row 13's gradient off by 1e-6: localised to row 13."""
    target = torch_module_target(_torch_module("GRU", 3, 8), torch.randn(9, 2, 3, dtype=torch.float64))

    def fn(x, w_ih, *rest):
        return target.fn(x, _RowScale.apply(w_ih, 13, 1e-6), *rest)

    report = check_gradients(CheckTarget(fn, target.inputs, names=target.names, time_axis=0))
    assert [c.name for c in report.failures] == ["weight_ih_l0"], report.summary
    assert report.failures[0].bad_blocks == ("13",)
    assert "wrong rows along axis 0: 13 (of 0..23)" in report.summary


# ------------------------------------------------------------------------------------------------
# the realistic bugs, with their messages


def _elman(bug, **kw):
    return check_gradients(ex.elman_function(bug), ex.elman_inputs(), names=ex.ELMAN_NAMES, time_axis=0, **kw)


def _lstm(bug, **kw):
    return check_gradients(ex.lstm_function(bug), ex.lstm_inputs(), names=ex.LSTM_NAMES, time_axis=0, **kw)


def test_scaled_weight_gradient_is_flagged_as_scaled():
    report = _elman("scale")
    assert [c.name for c in report.failures] == ["W_hh"]
    text = report.summary
    assert "gradients WRONG for 1 of 5 inputs" in text
    assert "the gradient is SCALED: analytic/reference = 1.001 in every failing block" in text


def test_transposed_weight_gradient_is_flagged_as_transposed():
    report = _elman("transpose")
    assert [c.name for c in report.failures] == ["W_hh"]
    assert "the gradient is TRANSPOSED: grad.T matches the reference" in report.summary


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_dropped_time_step_is_localised_to_step_zero(cell):
    """BPTT that stops before t = 0: x's gradient is wrong at time step 0 only."""
    report = _elman("drop_step") if cell == "elman" else _lstm("drop_step")
    x = next(c for c in report.inputs if c.name == "x")
    assert not x.ok
    assert x.bad_blocks == ("0",), report.summary
    assert "wrong time steps along axis 0: 0 (of 0..5)" in report.summary
    assert "h0" in [c.name for c in report.failures]


def test_wrong_gate_derivative_is_flagged():
    """LSTM with the forget gate's derivative taken from the input gate: every input is off."""
    report = _lstm("gate")
    assert not report.ok
    assert {c.name for c in report.failures} == set(ex.LSTM_NAMES), report.summary
    # the error is not of round-off size: relative errors well above float32's
    assert min(c.relative_error for c in report.failures) > 1e-5
    c0 = next(c for c in report.inputs if c.name == "c0")
    # c0 reaches the forget gate's derivative only through c_0 -> c_1, so the loss at output step 0
    # (which depends on c0 only through f_0 * c0, whose derivative dc/dc0 = f is right) is fine
    assert c0.bad_output_steps == (1, 2, 3, 4, 5), report.summary
    assert "the first is t = 1" in report.summary


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_backward_in_float32_is_flagged_as_float32(cell):
    report = _elman("float32") if cell == "elman" else _lstm("float32")
    assert not report.ok
    assert "computed in float32?" in report.summary
    for c in report.failures:
        assert 1e-11 < c.relative_error < 1e-5, report.summary


def test_gradcheck_misses_what_check_gradients_flags():
    """The motivating fact: torch.autograd.gradcheck (defaults, fast mode) passes an LSTM (4 -> 16,
    T = 20) whose weight_hh gradient is off by a relative 1e-3, and a float32 backward."""
    target = torch_module_target(_torch_module("LSTM", 4, 16), torch.randn(20, 1, 4, dtype=torch.float64))
    bad = _planted(target, 2, "scale", 1e-3)
    out_only = lambda *a: bad.fn(*a)[0]
    assert torch.autograd.gradcheck(out_only, target.inputs, fast_mode=True)
    report = check_gradients(bad)
    assert [c.name for c in report.failures] == ["weight_hh_l0"]
    f32 = ex.elman_function("float32")
    assert torch.autograd.gradcheck(f32, ex.elman_inputs(), fast_mode=True)
    assert not _elman("float32").ok


# ------------------------------------------------------------------------------------------------
# report, determinism, exceptions, validation


def test_raise_exception_carries_the_summary():
    with pytest.raises(GradientCheckError) as info:
        _elman("scale", raise_exception=True)
    assert "W_hh" in str(info.value) and "SCALED" in str(info.value)
    assert info.value.report.seed == 0


def test_report_is_deterministic_and_records_the_seed():
    a, b = _elman("none", seed=5), _elman("none", seed=5)
    assert a.seed == 5 and "seed=5" in a.summary
    assert [(c.analytic, c.reference) for c in a.inputs] == [(c.analytic, c.reference) for c in b.inputs]
    c = _elman("none", seed=6)
    assert [x.analytic for x in c.inputs] != [x.analytic for x in a.inputs]
    assert set(a.errors) == set(ex.ELMAN_NAMES) and set(a.estimates) == set(ex.ELMAN_NAMES)


def test_numpy_function_with_explicit_gradient():
    """fn(a, b) = tanh(a) * b with a correct and a wrong grad_fn."""
    a, b = np.linspace(-1, 1, 6).reshape(2, 3), np.linspace(0.5, 2, 6).reshape(2, 3)
    fn = lambda a, b: np.tanh(a) * b
    good = lambda w, a, b: (w * b * (1 - np.tanh(a) ** 2), w * np.tanh(a))
    wrong = lambda w, a, b: (w * b * (1 - np.tanh(a)), w * np.tanh(a))
    assert check_gradients(fn, (a, b), grad_fn=good).ok
    report = check_gradients(fn, (a, b), grad_fn=wrong, names=("a", "b"))
    assert [c.name for c in report.failures] == ["a"]
    none_grad = lambda w, a, b: (None, w * np.tanh(a))
    report = check_gradients(fn, (a, b), grad_fn=none_grad)
    assert "the backward returned no gradient (None)" in report.summary


def test_inputs_are_not_mutated():
    inputs = ex.elman_inputs()
    before = [t.detach().clone() for t in inputs]
    _elman("none")
    check_gradients(ex.elman_function(), inputs)
    assert all(torch.equal(a, b) for a, b in zip(before, inputs))


def test_bad_arguments_are_rejected_with_clear_messages():
    fn = ex.elman_function()
    inputs = ex.elman_inputs()
    # float32/float16/bfloat16 are checked in their precision (tests/test_check_precision.py)
    with pytest.raises(TypeError, match=r"inputs\[0\] must be a float64, float32 or float16 array.*float128"):
        check_gradients(lambda a: a * 2, (np.ones(3, dtype=np.longdouble),), grad_fn=lambda w, a: 2 * w)
    with pytest.raises(ValueError, match="no input requires grad"):
        check_gradients(fn, tuple(t.detach() for t in inputs))
    with pytest.raises(TypeError, match="grad_fn is required"):
        check_gradients(lambda a: a * 2, (np.ones(3),))
    with pytest.raises(ValueError, match=r"step must be a float in \(0, 1\)"):
        check_gradients(fn, inputs, step=0.0)
    with pytest.raises(ValueError, match=r"method='forward' is unknown"):
        check_gradients(fn, inputs, method="forward")
    with pytest.raises(ValueError, match="names must have one entry per input"):
        check_gradients(fn, inputs, names=("x",))
    with pytest.raises(ValueError, match="non-finite"):
        check_gradients(lambda a: torch.log(a - 10), (torch.ones(3, dtype=torch.float64, requires_grad=True),))
