"""gradtheory.gradcheck / gradgradcheck: torch.autograd's signatures, return values and exceptions,
gradtheory's verdict (gradtheory/check/dropin.py)."""

from __future__ import annotations

import inspect
import sys

import pytest

import gradtheory as gt

torch = pytest.importorskip("torch")
GradcheckError = sys.modules["torch.autograd.gradcheck"].GradcheckError


def _inputs():
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(s, dtype=torch.float64, generator=g).requires_grad_(True) for s in ((3, 4), (4, 5)))


def _layer(x, W):
    return torch.tanh(x @ W)


class _ScaledBackward(torch.autograd.Function):
    """2 a with a backward off by a relative 1e-6: below torch.gradcheck's atol/rtol."""

    @staticmethod
    def forward(ctx, a):
        return a * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2 * (1 + 1e-6)


class _DetachedBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a):
        y = torch.tanh(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y.detach() ** 2)


@pytest.mark.parametrize("name", ["gradcheck", "gradgradcheck"])
def test_signatures_match_torch(name):
    ours = inspect.signature(getattr(gt, name))
    theirs = inspect.signature(getattr(torch.autograd, name))
    assert list(ours.parameters) == list(theirs.parameters)
    for p in theirs.parameters.values():
        assert ours.parameters[p.name].default == p.default and ours.parameters[p.name].kind == p.kind


def test_correct_functions_pass_like_torch():
    assert gt.gradcheck(_layer, _inputs()) is True
    assert torch.autograd.gradcheck(_layer, _inputs()) is True
    assert gt.gradgradcheck(_layer, _inputs()) is True
    assert gt.gradcheck(_layer, _inputs(), check_forward_ad=True) is True
    assert gt.gradcheck(torch.tanh, torch.randn(5, dtype=torch.float64, requires_grad=True)) is True


def test_a_1e6_backward_error_that_torch_passes_is_raised_as_gradcheck_error():
    x = _inputs()[0]
    assert torch.autograd.gradcheck(_ScaledBackward.apply, (x,)) is True  # torch misses it
    assert gt.gradcheck(_ScaledBackward.apply, (x,), raise_exception=False) is False
    with pytest.raises(GradcheckError, match=r"gradcheck: check_gradients: gradients WRONG for 1 of 1 inputs"):
        gt.gradcheck(_ScaledBackward.apply, (x,))


def test_float32_correct_function_passes_where_torch_fails():
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    assert gt.gradcheck(torch.tanh, (x,)) is True
    with pytest.warns(UserWarning, match="double precision"):
        assert torch.autograd.gradcheck(torch.tanh, (x,), raise_exception=False) is False


def test_gradgradcheck_finds_a_backward_wrong_to_first_order():
    (x,) = _inputs()[:1]
    assert gt.gradcheck(_DetachedBackward.apply, (x,)) is True
    assert gt.gradgradcheck(_DetachedBackward.apply, (x,), raise_exception=False) is False
    with pytest.raises(GradcheckError, match="gradgradcheck: .*WRONG"):
        gt.gradgradcheck(_DetachedBackward.apply, (x,))
    assert torch.autograd.gradgradcheck(_DetachedBackward.apply, (x,), raise_exception=False) is False


def test_non_tensor_arguments_pass_through_at_second_order():
    """torch's OpInfo samples pass dims as lists (logsumexp(x, [0, 1])): not inputs to check."""
    x = _inputs()[0]
    assert gt.gradgradcheck(torch.logsumexp, (x, [0, 1])) is True


def test_gradgradcheck_uses_given_grad_outputs():
    x, W = _inputs()
    go = torch.randn(3, 5, dtype=torch.float64)
    assert gt.gradgradcheck(_layer, (x, W), go) is True
    with pytest.raises(ValueError, match="grad_outputs must be one tensor per float output"):
        gt.gradgradcheck(_layer, (x, W), torch.randn(2, dtype=torch.float64))


def test_an_inconclusive_check_is_no_pass():
    """A forward drawing from a generator of its own is not deterministic: inconclusive, so False,
    or a GradcheckError that says so."""
    gen = torch.Generator().manual_seed(0)

    def noisy(a):
        return a * (1 + 1e-3 * torch.rand((), generator=gen, dtype=a.dtype))

    x = _inputs()[0]
    assert gt.gradcheck(noisy, (x,), raise_exception=False, check_undefined_grad=False) is False
    with pytest.raises(GradcheckError, match=r"INCONCLUSIVE \(no pass\)(.|\n)*fn is NOT DETERMINISTIC"):
        gt.gradcheck(noisy, (x,), check_undefined_grad=False)


def test_unsupported_keywords_raise_not_implemented_and_no_grad_raises_value_error():
    x, W = _inputs()
    for kw in ("check_batched_grad", "check_batched_forward_grad", "masked"):
        with pytest.raises(NotImplementedError, match=f"{kw}=True is not supported"):
            gt.gradcheck(_layer, (x, W), **{kw: True})
    with pytest.raises(NotImplementedError, match="nondet_tol"):
        gt.gradcheck(_layer, (x, W), nondet_tol=1e-6)
    with pytest.raises(NotImplementedError, match="check_fwd_over_rev=True"):
        gt.gradgradcheck(_layer, (x, W), check_fwd_over_rev=True)
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        gt.gradcheck(_layer, (x.detach(), W.detach()))
    assert gt.gradcheck(_layer, (x, W), check_backward_ad=False) is True  # nothing asked, as torch
    empty = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    assert gt.gradcheck(torch.exp, (empty,)) is True and torch.autograd.gradcheck(torch.exp, (empty,)) is True


def test_undefined_output_gradients_are_checked_by_torchs_structural_test():
    class NoUndefined(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.set_materialize_grads(False)
            return a * 3

        @staticmethod
        def backward(ctx, g):
            return g * 3  # g is None for an undefined output gradient: raises

    x = _inputs()[0]
    with pytest.raises((GradcheckError, TypeError)):
        gt.gradcheck(NoUndefined.apply, (x,))
    assert gt.gradcheck(NoUndefined.apply, (x,), check_undefined_grad=False) is True
