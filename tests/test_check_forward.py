"""check_gradients(..., mode='forward' | 'both'): forward-mode AD (torch dual numbers, a custom
Function's jvp) against the same Richardson directional differences (gradtheory/check/_session.py,
``Session._compare_forward``)."""

from __future__ import annotations

import numpy as np
import pytest

from gradtheory import _check_examples as ex
from gradtheory.check import check_gradients

torch = pytest.importorskip("torch")


class _Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a):
        y = torch.tanh(a)
        ctx.save_for_backward(y)
        ctx.save_for_forward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)

    @staticmethod
    def jvp(ctx, t):
        (y,) = ctx.saved_tensors
        return t * (1 - y * y)


class _TanhWrongJvp(_Tanh):
    """Backward right, jvp off by a relative 1e-7 (a hundred million float64 ulps)."""

    @staticmethod
    def jvp(ctx, t):
        (y,) = ctx.saved_tensors
        return t * (1 - y * y) * (1 + 1e-7)


def _inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return tuple(torch.randn(s, dtype=dtype, generator=g).requires_grad_(True) for s in ((3, 4), (4, 5)))


def _layer(F):
    return lambda x, W: F.apply(x @ W)


def test_a_correct_jvp_passes_in_forward_and_both_modes():
    report = check_gradients(_layer(_Tanh), _inputs(), mode="forward")
    assert report.ok and report.mode == "forward", report.summary
    assert max(c.resolution for c in report.inputs) < 1e-9, report.summary
    both = check_gradients(_layer(_Tanh), _inputs(), mode="both")
    assert both.ok and [c.name for c in both.inputs] == [
        "inputs[0]",
        "inputs[1]",
        "inputs[0] (forward)",
        "inputs[1] (forward)",
    ]


def test_a_wrong_jvp_is_found_and_told_apart_from_the_backward():
    forward = check_gradients(_layer(_TanhWrongJvp), _inputs(), mode="forward")
    assert forward.status == "wrong" and {c.index for c in forward.failures} == {0, 1}, forward.summary
    both = check_gradients(_layer(_TanhWrongJvp), _inputs(), mode="both")
    assert both.status == "wrong", both.summary
    assert {c.name for c in both.failures} == {"inputs[0] (forward)", "inputs[1] (forward)"}, both.summary
    assert check_gradients(_layer(_TanhWrongJvp), _inputs()).ok  # the backward alone is right


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("precision", ["float64", "native"])
def test_torch_recurrent_modules_pass_in_forward_mode(kind, precision):
    torch.manual_seed(0)
    m = getattr(torch.nn, kind)(3, 4)
    if kind == "LSTM" and precision == "native":
        # torch's float32 CPU LSTM kernel (mkldnn) has no forward AD: its error reaches the user
        with pytest.raises(NotImplementedError, match="forward AD"):
            check_gradients(m, torch.randn(5, 2, 3), mode="forward", precision=precision)
        return
    report = check_gradients(m, torch.randn(5, 2, 3), mode="forward", precision=precision)
    assert report.ok, report.summary


def test_a_float32_jvp_with_a_planted_1e4_error_is_found():
    class Wrong(_Tanh):
        @staticmethod
        def jvp(ctx, t):
            (y,) = ctx.saved_tensors
            return t * (1 - y * y) * (1 + 1e-4)

    assert check_gradients(_layer(_Tanh), _inputs(torch.float32), mode="forward").ok
    bad = check_gradients(_layer(Wrong), _inputs(torch.float32), mode="forward")
    assert bad.status == "wrong" and bad.precision == "float32", bad.summary


def test_a_function_without_forward_ad_raises_torchs_error():
    """The example Elman Function has no jvp: torch's NotImplementedError, marked as the user's."""
    with pytest.raises(NotImplementedError, match="jvp"):
        check_gradients(ex.elman_function(), ex.elman_inputs(), mode="forward")


def test_forward_mode_of_a_numpy_function_is_not_implemented():
    with pytest.raises(NotImplementedError, match="mode='forward' needs forward-mode AD"):
        check_gradients(np.tanh, (np.ones(3),), grad_fn=lambda w, a: w * (1 - np.tanh(a) ** 2), mode="forward")
    with pytest.raises(ValueError, match="mode"):
        check_gradients(_layer(_Tanh), _inputs(), mode="sideways")
