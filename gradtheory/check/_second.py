r"""``check_gradients(..., order=2)``: the derivative of the backward.

For a torch function :math:`f` with differentiable inputs :math:`x_1..x_m` and a seeded cotangent
:math:`w` (drawn once, like the first-order one), the gradient map

.. math:: G(x) = \nabla_x \langle w, f(x)\rangle = J_f(x)^\top w

is itself a function of the inputs, computed by one backward with ``create_graph=True``. Checking
:math:`G` with the first-order machinery compares, for a second cotangent :math:`w_2` and direction
:math:`v`, the double backward :math:`\langle \nabla_x \langle w_2, G\rangle, v\rangle =
w_2^\top H v` (a Hessian-vector product of the scalar projection :math:`\langle w, f\rangle`)
against Richardson differences of :math:`\langle w_2, G(x \pm h v)\rangle`: the gradient evaluated
at shifted points. The tolerance is the measured noise of :math:`G` (a backward is usually a little
noisier than the forward) with the same error analysis as order 1 (gradients.py).

A custom ``autograd.Function`` whose backward is not differentiable (computed on detached
tensors, numpy, ``@once_differentiable``) gives a gradient map whose output carries no graph: the
double backward returns nothing while the differences of :math:`G` are not zero, and the input is
reported wrong ("the backward returned no gradient"); ``@once_differentiable`` raises torch's own
error. A backward that is right at the point but wrong to first order around it (a derivative
that ignores how a saved tensor depends on the input) gives a wrong Hessian-vector product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._targets import CheckTarget
from ._tree import is_torch_tensor

__all__ = ["second_order_target"]


def second_order_target(target: CheckTarget, seed: int, grad_outputs: Any = None) -> CheckTarget:
    """The gradient map :math:`G(x) = J^\\top w` of a torch target, as a target of its own."""
    import torch

    inputs = target.inputs
    if target.grad_fn is not None or not any(is_torch_tensor(a) for a in inputs):
        raise NotImplementedError(
            "order=2 needs a torch function (double backward through autograd); a numpy grad_fn has no derivative"
        )
    diff = [k for k, a in enumerate(inputs) if is_torch_tensor(a) and a.requires_grad]
    if not diff:
        raise ValueError("no input requires grad: order=2 differentiates the gradient of the inputs that do")
    nested = [k for k, a in enumerate(inputs) if isinstance(a, (tuple, list, dict)) and _has_tensor(a)]
    if nested:
        raise NotImplementedError(
            f"order=2 supports top-level tensor inputs (inputs {nested} are containers); pass the tensors flat"
        )
    fn = target.fn
    with torch.no_grad():
        out = fn(*(a.detach() if is_torch_tensor(a) else a for a in inputs))
    outs = _float_tensors(out)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    w = [torch.from_numpy(rng.standard_normal(tuple(o.shape))).to(o.dtype) for o in outs]
    if grad_outputs is not None:
        given = [grad_outputs] if is_torch_tensor(grad_outputs) else list(grad_outputs)
        if len(given) != len(outs) or any(tuple(g.shape) != tuple(o.shape) for g, o in zip(given, outs)):
            raise ValueError(
                f"grad_outputs must be one tensor per float output, shaped like it ({[tuple(o.shape) for o in outs]}), "
                f"got {[tuple(g.shape) for g in given]}"
            )
        w = [g.detach().to(o.dtype).clone() for g, o in zip(given, outs)]

    def gradient_map(*args: Any) -> tuple[Any, ...]:
        with torch.enable_grad():
            args = list(args)
            for k in diff:
                if not args[k].requires_grad:  # an evaluation (no graph wanted above this call)
                    args[k] = args[k].detach().requires_grad_(True)
            o = _float_tensors(fn(*args))
            pairs = [(oi, wi) for oi, wi in zip(o, w) if oi.requires_grad]
            if not pairs:
                return tuple(torch.zeros_like(args[k]) for k in diff)
            grads = torch.autograd.grad(
                [p[0] for p in pairs],
                [args[k] for k in diff],
                grad_outputs=[p[1] for p in pairs],
                create_graph=True,
                allow_unused=True,
            )
        return tuple(torch.zeros_like(args[k]) if g is None else g for k, g in zip(diff, grads))

    return CheckTarget(**{**target.__dict__, "fn": gradient_map, "time_axis": None, "time_inputs": None})


def _float_tensors(out: Any) -> list[Any]:
    from ._backends import _float_outputs

    return [v for _, _, v in _float_outputs(out) if is_torch_tensor(v)]


def _has_tensor(a: Any) -> bool:
    if is_torch_tensor(a):
        return True
    if isinstance(a, dict):
        return any(_has_tensor(v) for v in a.values())
    if isinstance(a, (tuple, list)):
        return any(_has_tensor(v) for v in a)
    return False
