"""Drop-in replacements for ``torch.autograd.gradcheck`` and ``torch.autograd.gradgradcheck``.

Same signatures, return values and exceptions (``torch.autograd.gradcheck.GradcheckError``); the
verdict is :func:`gradtheory.check_gradients`'s (Richardson reference, measured-noise tolerance,
inconclusive never a pass) instead of a fixed ``atol``/``rtol`` against one-sided float64
differences. Replacing ``from torch.autograd import gradcheck`` by
``from gradtheory import gradcheck`` is all a test suite has to change.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .gradients import check_gradients
from .reports import GradientReport

__all__ = ["gradcheck", "gradgradcheck"]


def _torch_gradcheck_module() -> Any:
    import torch  # noqa: F401

    return sys.modules["torch.autograd.gradcheck"]


def _as_tuple(inputs: Any) -> tuple[Any, ...]:
    import torch

    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    if not isinstance(inputs, (tuple, list)):
        raise TypeError(
            f"inputs must be a tensor or a tuple/list of tensors (as for torch.autograd.gradcheck), got {type(inputs).__name__}"
        )
    return tuple(inputs)


def _unsupported(**flags: bool) -> None:
    for name, value in flags.items():
        if value:
            raise NotImplementedError(
                f"{name}=True is not supported by gradtheory.gradcheck/gradgradcheck (it needs torch's "
                "vmap/forward-over-reverse/masked machinery); call torch.autograd's function for it"
            )


def _checks_common(
    func: Callable[..., Any], inputs: tuple[Any, ...], nondet_tol: float, masked: Any, check_grad_dtypes: bool
) -> None:
    import torch

    if nondet_tol:
        raise NotImplementedError(
            f"nondet_tol={nondet_tol!r}: gradtheory judges a backward that is not deterministic as inconclusive "
            "(it compares two passes at relative 1e-10); a tolerated non-determinism is not supported"
        )
    _unsupported(masked=bool(masked))
    if any(isinstance(t, torch.Tensor) and t.requires_grad and (t.is_complex() or t.is_sparse) for t in inputs):
        raise NotImplementedError(
            "complex or sparse inputs that require grad are not supported by gradtheory.gradcheck"
        )
    if not any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs):
        raise ValueError(
            # torch's own message first (tests written for torch match it), then the argument's name
            "gradcheck expects at least one input tensor to require gradient, but none of the them have "
            f"requires_grad=True. (argument inputs: {len(inputs)} entries)"
        )
    if check_grad_dtypes:
        diff = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
        with torch.enable_grad():
            out = func(*inputs)
        outs = [o for o in ((out,) if isinstance(out, torch.Tensor) else out) if o.requires_grad]
        grads = torch.autograd.grad(outs, diff, [torch.ones_like(o) for o in outs], allow_unused=True)
        for k, (t, g) in enumerate(zip(diff, grads)):
            if g is not None and (g.dtype != t.dtype or g.device != t.device):
                raise _torch_gradcheck_module().GradcheckError(
                    f"Gradient has dtype mismatch or device mismatch for input {k}: {g.dtype} on {g.device}, "
                    f"expected {t.dtype} on {t.device}"
                )


def _undefined_grad(func: Callable[..., Any], inputs: tuple[Any, ...], raise_exception: bool) -> bool:
    """torch's own structural test: the backward accepts undefined (zero) output gradients."""
    import torch

    with torch.enable_grad():
        out = func(*inputs)
    outs = (out,) if isinstance(out, torch.Tensor) else tuple(out)
    outs = tuple(o for o in outs if isinstance(o, torch.Tensor) and o.requires_grad)
    if not outs:
        return True
    try:
        return bool(_torch_gradcheck_module()._test_undefined_backward_mode(func, outs, inputs))
    except _torch_gradcheck_module().GradcheckError:
        if raise_exception:
            raise
        return False


def _nothing_to_check(inputs: tuple[Any, ...]) -> bool:
    """Every input that requires grad is empty: nothing to compare (torch passes such cases)."""
    import torch

    return all(t.numel() == 0 for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad)


def _verdict(report: GradientReport, raise_exception: bool, what: str) -> bool:
    if report.ok:
        return True
    if raise_exception:
        head = "INCONCLUSIVE (no pass): " if report.status == "inconclusive" else ""
        raise _torch_gradcheck_module().GradcheckError(f"{what}: {head}{report.summary}")
    return False


def gradcheck(
    func: Callable[..., Any],
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    nondet_tol: float = 0.0,
    check_undefined_grad: bool = True,
    check_grad_dtypes: bool = False,
    check_batched_grad: bool = False,
    check_batched_forward_grad: bool = False,
    check_forward_ad: bool = False,
    check_backward_ad: bool = True,
    fast_mode: bool = False,
    masked: bool | None = None,
) -> bool:
    """``torch.autograd.gradcheck`` with gradtheory's verdict.

    Parameters
    ----------
    func : callable
        Takes the tensors of ``inputs`` and returns a tensor or a sequence of tensors.
    inputs : torch.Tensor or sequence
        The inputs; those with ``requires_grad`` are checked (float64, float32, float16 or
        bfloat16: lower precisions are checked in their own precision, see
        :func:`gradtheory.check_gradients`).
    eps, atol, rtol : float
        Accepted for compatibility and not used: the step is chosen by gradtheory and the
        tolerance is its error estimate (measured noise and round-off), far tighter than a
        fixed ``atol + rtol |numerical|`` where the function allows it.
    raise_exception : bool
        Raise ``torch.autograd.gradcheck.GradcheckError`` (message: the report) when the check
        does not pass, wrong or inconclusive; otherwise return False.
    nondet_tol : float
        Only 0.0: a non-deterministic backward makes the check inconclusive (NotImplementedError
        for a positive value).
    check_undefined_grad : bool
        Run torch's structural test that the backward accepts undefined output gradients.
    check_grad_dtypes : bool
        Gradients must have the dtype and device of their inputs.
    check_batched_grad, check_batched_forward_grad : bool
        Not supported (vmap): NotImplementedError when True.
    check_forward_ad, check_backward_ad : bool
        Check forward-mode AD (``mode='forward'``) and/or the backward (``mode='reverse'``);
        both: ``mode='both'``.
    fast_mode : bool
        Accepted: gradtheory's check is always a projected one (random cotangent and directions,
        like torch's fast mode, with an error estimate).
    masked : bool, optional
        Not supported when True (sparse masked semantics): NotImplementedError.

    Returns
    -------
    bool
        True when every checked input is judged correct.

    Raises
    ------
    torch.autograd.gradcheck.GradcheckError
        With ``raise_exception=True`` when the verdict is wrong or inconclusive.
    NotImplementedError
        For a keyword whose behaviour is not supported (see above).
    ValueError
        When no input requires grad.
    """
    del eps, atol, rtol, fast_mode  # see the docstring: gradtheory's step and error estimate decide
    _unsupported(check_batched_grad=check_batched_grad, check_batched_forward_grad=check_batched_forward_grad)
    inputs = _as_tuple(inputs)
    _checks_common(func, inputs, nondet_tol, masked, check_grad_dtypes)
    if check_undefined_grad and check_backward_ad and not _undefined_grad(func, inputs, raise_exception):
        return False
    if _nothing_to_check(inputs):
        return True
    mode = {(True, True): "both", (True, False): "reverse", (False, True): "forward"}.get(
        (check_backward_ad, check_forward_ad)
    )
    if mode is None:
        return True  # nothing asked, as torch
    return _verdict(check_gradients(func, inputs, mode=mode), raise_exception, "gradcheck")


def gradgradcheck(
    func: Callable[..., Any],
    inputs: Any,
    grad_outputs: Any = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    gen_non_contig_grad_outputs: bool = False,
    raise_exception: bool = True,
    nondet_tol: float = 0.0,
    check_undefined_grad: bool = True,
    check_grad_dtypes: bool = False,
    check_batched_grad: bool = False,
    check_fwd_over_rev: bool = False,
    check_rev_over_rev: bool = True,
    fast_mode: bool = False,
    masked: bool = False,
) -> bool:
    """``torch.autograd.gradgradcheck`` with gradtheory's verdict (``check_gradients(order=2)``).

    Parameters
    ----------
    func, inputs
        As for :func:`gradcheck`.
    grad_outputs : tensor or sequence of tensors, optional
        The cotangent w of the gradient map G(x) = J(x)^T w that is differentiated (default: a
        seeded random one). Unlike torch, the derivative with respect to ``grad_outputs`` is
        not checked separately: G is linear in w with derivative J^T, which :func:`gradcheck`
        checks.
    eps, atol, rtol, fast_mode
        Accepted and not used (see :func:`gradcheck`).
    gen_non_contig_grad_outputs : bool
        Accepted; memory layout does not enter gradtheory's check.
    raise_exception, nondet_tol, check_grad_dtypes
        As for :func:`gradcheck`.
    check_undefined_grad : bool
        As for :func:`gradcheck`, on the first backward.
    check_batched_grad, check_fwd_over_rev, masked : bool
        Not supported when True: NotImplementedError.
    check_rev_over_rev : bool
        Check the double backward (False: nothing is checked, True is returned, as torch).

    Returns
    -------
    bool
        True when every Hessian-vector product is judged correct.

    Raises
    ------
    torch.autograd.gradcheck.GradcheckError
        With ``raise_exception=True`` when the verdict is wrong or inconclusive.
    NotImplementedError
        For a keyword whose behaviour is not supported (see above).
    """
    del eps, atol, rtol, fast_mode, gen_non_contig_grad_outputs
    _unsupported(check_batched_grad=check_batched_grad, check_fwd_over_rev=check_fwd_over_rev)
    inputs = _as_tuple(inputs)
    _checks_common(func, inputs, nondet_tol, masked, check_grad_dtypes)
    if check_undefined_grad and not _undefined_grad(func, inputs, raise_exception):
        return False
    if not check_rev_over_rev or _nothing_to_check(inputs):
        return True
    report = check_gradients(func, inputs, order=2, grad_outputs=grad_outputs)
    return _verdict(report, raise_exception, "gradgradcheck")
