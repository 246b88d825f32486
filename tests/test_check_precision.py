"""check_gradients on float32, float16 and bfloat16 functions: the backward in its own precision,
the reference from float64 evaluations (or the precision's own), tolerances from the measured
noise and the backward's round-off, the step chosen for the noise (gradtheory/check/gradients.py
module docstring; LOW_PRECISION_ANALYTIC_ROUNDOFF in _session.py)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from gradtheory import _check_examples as ex
from gradtheory.check import check_gradients, torch_module_target
from gradtheory.check.gradients import DEFAULT_STEP, optimal_step

torch = pytest.importorskip("torch")


def _inputs(dtype):
    return tuple(t.detach().to(dtype).requires_grad_(True) for t in ex.elman_inputs())


def test_a_float32_backward_is_checked_against_float64_evaluations_and_passes_when_exact():
    """A correct float32 custom backward: reference from fn run in float64 (auto), tolerance from
    the float32 backward's round-off; resolution ~1e-6, far below the 1e-4 errors of the next test."""
    report = check_gradients(ex.elman_function(), _inputs(torch.float32), names=ex.ELMAN_NAMES)
    assert report.ok, report.summary
    assert (report.precision, report.reference) == ("float32", "float64")
    # the bias b's directional derivative is ~1e-4 of the others', so its relative resolution is
    # ~1e-3; the weights' are ~1e-6
    assert all(1e-8 < c.resolution < 1e-5 for c in report.inputs[:4]), report.summary
    assert "LOW PRECISION" in report.summary and "resolution" in report.summary


@pytest.mark.parametrize("fn", [ex.elman_function, ex.lstm_function])
def test_a_relative_1e4_error_in_a_float32_backward_is_found(fn):
    """dW_hh scaled by 1 + 1e-4 in a float32 backward (float32 round-off is 6e-8): wrong, named."""
    inputs = (
        _inputs(torch.float32)
        if fn is ex.elman_function
        else tuple(t.detach().float().requires_grad_(True) for t in ex.lstm_inputs())
    )
    report = check_gradients(fn("scale", 1e-4), inputs)
    assert report.status == "wrong", report.summary
    assert [c.index for c in report.failures] == [3 if fn is ex.elman_function else 4], report.summary


def test_native_reference_chooses_the_step_from_the_measured_noise():
    """reference='native': fn evaluated in float32 (noise ~1e-7 relative), step eps^(1/9) ~ 0.1..0.2
    instead of float64's 2e-2; a correct backward passes, a 1e-2 error is found."""
    # checked: not the bias b, whose derivative (1e-4 of the others') drowns in float32 noise
    good = check_gradients(ex.elman_function(), _inputs(torch.float32), reference="native", checked=(0, 1, 2, 3))
    assert good.ok, good.summary
    assert good.reference == "float32" and 0.08 < good.step < 0.3, good.summary
    assert 1e-9 < good.noise < 1e-5, good.summary
    bad = check_gradients(ex.elman_function("scale", 1e-2), _inputs(torch.float32), reference="native")
    assert bad.status == "wrong" and [c.index for c in bad.failures] == [3], bad.summary


def test_optimal_step_balances_noise_and_truncation():
    """h* = eps^(1/(2m+1)), clipped to [2e-2, 0.5]: float64 noise gives the float64 default."""
    assert optimal_step(1e-16, 4) == DEFAULT_STEP
    assert optimal_step(1e-7, 4) == pytest.approx(1e-7 ** (1 / 9))
    assert optimal_step(1e-2, 4) == 0.5


def test_bfloat16_backward_passes_when_exact_and_a_1e1_error_is_found():
    report = check_gradients(ex.elman_function(), _inputs(torch.bfloat16), checked=(0, 1, 2, 3))
    assert report.ok and report.precision == "bfloat16", report.summary
    assert report.resolution < 1e-1, report.summary  # below the 1e-1 error planted next
    bad = check_gradients(ex.elman_function("scale", 1e-1), _inputs(torch.bfloat16))
    assert bad.status == "wrong" and [c.index for c in bad.failures] == [3], bad.summary


def test_bfloat16_with_its_own_evaluations_is_inconclusive_never_correct():
    """bfloat16 evaluations are too noisy (~1e-2) for any Richardson reference: every input's
    tolerance is of the order of the derivative, so nothing is judged (no false 'correct')."""
    report = check_gradients(ex.elman_function(), _inputs(torch.bfloat16), reference="native")
    assert report.status == "inconclusive", report.summary
    assert "resolution >= 0.5" in report.summary


def test_native_float32_modules_pass_and_planted_errors_are_found():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 6)
    x = torch.randn(8, 2, 3)
    report = check_gradients(lstm, x, precision="native")
    assert report.ok and report.precision == "float32", report.summary
    assert all(p.dtype == torch.float32 for p in lstm.parameters())  # the module is not converted

    class Planted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = copy.deepcopy(lstm)

        def forward(self, x):
            h = self.lstm(x)[0]
            return _ScaleGrad.apply(h, 1e-4)

    bad = check_gradients(Planted(), x, precision="native")
    assert bad.status == "wrong", bad.summary


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, eps):
        ctx.eps = eps
        return a.clone()

    @staticmethod
    def backward(ctx, g):
        return g * (1 + ctx.eps), None


def _np_fn(W, x):
    return np.tanh(W @ x)


def _np_grad(bug):
    def grad(w, W, x):
        d = w * (1 - np.tanh(W @ x) ** 2)
        return np.outer(d, x) * (1 + bug), W.T @ d

    return grad


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_numpy_low_precision_functions_are_checked(dtype):
    rng = np.random.default_rng(3)
    W, x = (rng.standard_normal(s).astype(dtype) for s in ((4, 5), (5,)))
    good = check_gradients(_np_fn, (W, x), grad_fn=_np_grad(0.0))
    assert good.ok and good.precision == np.dtype(dtype).name, good.summary
    bad = check_gradients(_np_fn, (W, x), grad_fn=_np_grad(0.1 if dtype == np.float16 else 1e-4))
    assert bad.status == "wrong" and [c.index for c in bad.failures] == [0], bad.summary


def test_a_function_that_cannot_run_in_float64_falls_back_or_raises():
    W = torch.randn(4, 3)  # a captured float32 weight: fn(float64 x) raises in matmul

    def fn(x):
        return torch.tanh(x @ W)

    x = torch.randn(2, 4, requires_grad=True)
    report = check_gradients(fn, (x,))
    assert report.status != "wrong" and report.reference == "float32", report.summary
    assert "could not be run in float64" in report.summary
    with pytest.raises(ValueError, match="reference='float64': fn cannot be run in float64"):
        check_gradients(fn, (x,), reference="float64")


# A 1-unit float32 RNN over 28 steps (bias-free; found as a false alarm of the round-off model
# u ||g v|| among 300 random correct float32 modules, bench_checker.py section 7, model 60): the
# weight_hh gradient is a sum over the steps of terms carrying error accumulated along the chain.
_CANCELLING_X = [
    0.7956825494766235, -0.8596447110176086, 0.4552641808986664, 1.1713038682937622, -1.0541186332702637,
    -1.125096321105957, -0.24004201591014862, 0.33458998799324036, -0.38502034544944763, -0.8214234113693237,
    -0.6786590814590454, -0.7309318780899048, 0.23564186692237854, 0.03712092339992523, 1.2179850339889526,
    -2.321160316467285, -1.7138872146606445, 0.4457062780857086, 0.8517227172851562, 0.03762270137667656,
    -0.7975026369094849, 0.027945568785071373, 1.0534453392028809, -0.27205798029899597, 0.3433428108692169,
    -1.1612507104873657, 0.670295000076294, 2.9563169479370117,
]  # fmt: skip


def _cancelling_rnn():
    m = torch.nn.RNN(1, 1, bias=False, batch_first=True)
    with torch.no_grad():
        m.weight_ih_l0.fill_(-0.6228506565093994)
        m.weight_hh_l0.fill_(0.7300479412078857)
    return m, torch.tensor(_CANCELLING_X, dtype=torch.float32).reshape(1, 28, 1)


def test_a_float32_gradient_with_accumulated_round_off_is_measured_not_a_false_alarm():
    """For the check's cotangent w and direction v (seed 60) the float32 <g, v> of weight_hh is off
    from the float64 one by 41 u |g v| (u = 2^-24), beyond the round-off model c u ||g v|| that
    called it wrong; the spread of the test's error over jittered cotangents (BACKWARD_SCATTER_DRAWS
    in _session.py) measures that error and the correct module passes, in both modes."""
    m, x = _cancelling_rnn()
    for mode in ("reverse", "forward"):
        report = check_gradients(torch_module_target(m, x, precision="native"), seed=60, mode=mode)
        assert report.ok, report.summary


@pytest.mark.parametrize("how", ["scale", "random"])
def test_the_measured_backward_spread_does_not_hide_a_planted_1e3_error(how):
    """The spread is a difference of the test's errors between cotangents, so an error of the
    backward that is the same function of w in every draw (a scale, an added term) cancels in it:
    a relative 1e-3 error planted in weight_hh of the hard case above is still found and named."""
    m, x = _cancelling_rnn()
    target = torch_module_target(m, x, precision="native")
    report = check_gradients(ex.planted(target, 2, how, 1e-3, seed=1), seed=60, localise=False)
    assert report.status == "wrong" and [c.name for c in report.failures] == ["weight_hh_l0"], report.summary
