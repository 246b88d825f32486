"""check_gradients(..., order=2): the double backward (Hessian-vector products of <w, fn>) against
Richardson differences of the gradient at shifted points (gradtheory/check/_second.py)."""

from __future__ import annotations

import numpy as np
import pytest

from gradtheory.check import check_gradients

torch = pytest.importorskip("torch")
from torch.autograd.function import once_differentiable  # noqa: E402


class _Tanh(torch.autograd.Function):
    """tanh with a hand-written backward that is itself differentiable (uses the saved output y)."""

    @staticmethod
    def forward(ctx, a):
        y = torch.tanh(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class _TanhDetachedBackward(_Tanh):
    """Right first derivative, but computed on a detached y: its own derivative misses d(1 - y^2)/da."""

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y.detach() ** 2)


class _TanhWrongSecondOrder(_Tanh):
    """1 - y * y.detach(): the value of 1 - y^2 (order 1 exact), but its derivative -y' y is half
    the true -2 y' y (the backward is wrong to first order)."""

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y.detach())


class _TanhOnce(_Tanh):
    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, dtype=torch.float64, generator=g).requires_grad_(True)
    W = torch.randn(4, 5, dtype=torch.float64, generator=g).requires_grad_(True)
    return x, W


def _layer(F):
    return lambda x, W: F.apply(x @ W)


def test_a_differentiable_custom_backward_passes_at_second_order():
    report = check_gradients(_layer(_Tanh), _inputs(), order=2)
    assert report.ok and report.order == 2, report.summary
    assert max(c.resolution for c in report.inputs) < 1e-8, report.summary
    assert "order=2" in report.summary


@pytest.mark.parametrize("F", [_TanhDetachedBackward, _TanhWrongSecondOrder])
def test_a_backward_right_at_the_point_but_wrong_to_first_order_is_found(F):
    """Both backwards give the exact gradient (order 1 passes) but the wrong derivative of it."""
    assert check_gradients(_layer(F), _inputs()).ok
    report = check_gradients(_layer(F), _inputs(), order=2)
    assert report.status == "wrong", report.summary
    assert {c.index for c in report.failures} == {0, 1}, report.summary


def test_a_once_differentiable_backward_is_wrong_at_second_order():
    """@once_differentiable cuts the graph of the tanh part of the gradient: the double backward
    only sees the matmul's part, so both Hessian-vector products are wrong (torch does not raise
    here: the non-differentiable node is not on the path autograd walks)."""
    assert check_gradients(_layer(_TanhOnce), _inputs()).ok
    report = check_gradients(_layer(_TanhOnce), _inputs(), order=2)
    assert report.status == "wrong" and {c.index for c in report.failures} == {0, 1}, report.summary


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_torch_recurrent_modules_pass_at_second_order(kind):
    torch.manual_seed(0)
    m = getattr(torch.nn, kind)(3, 4).double()
    report = check_gradients(m, torch.randn(5, 2, 3, dtype=torch.float64), order=2)
    assert report.ok, report.summary


def test_order_2_of_a_numpy_function_is_not_implemented_and_bad_orders_are_rejected():
    with pytest.raises(NotImplementedError, match="order=2 needs a torch function"):
        check_gradients(np.tanh, (np.ones(3),), grad_fn=lambda w, a: w * (1 - np.tanh(a) ** 2), order=2)
    with pytest.raises(NotImplementedError, match="forward-over-reverse"):
        check_gradients(_layer(_Tanh), _inputs(), order=2, mode="both")
    with pytest.raises(ValueError, match="order must be 1 or 2, got 3"):
        check_gradients(_layer(_Tanh), _inputs(), order=3)
