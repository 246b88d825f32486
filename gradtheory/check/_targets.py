"""What :func:`check_gradients` checks: a function with its inputs, a torch module, a gradtheory model."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._tree import is_torch_tensor

__all__ = ["CheckTarget", "model_target", "torch_module_target"]


@dataclass
class CheckTarget:
    """What :func:`check_gradients` checks: ``fn(*inputs)`` and how to differentiate it.

    ``inputs`` may be arrays/tensors or nested tuples/lists/dicts of them (and torch modules,
    whose parameters are checked); each float leaf is checked under its path name
    (``params['W_hh']``). ``grad_fn`` (numpy functions only): ``grad_fn(cotangent, *inputs)``
    returns one gradient per input, shaped like the input (``None`` for what it does not
    differentiate); ``cotangent`` has the structure of fn's output. ``names`` label the top-level
    inputs; ``time_axis`` is the output axis that indexes time (``None``: no time localisation);
    ``time_inputs`` the indices of inputs sharing that axis. ``checked``: what to check -- input
    indices or names (a top-level name, a leaf's name or a container's); default: torch tensors
    with requires_grad, or every float64 array for numpy.
    """

    fn: Callable[..., Any]
    inputs: tuple[Any, ...]
    grad_fn: Callable[..., Any] | None = None
    names: tuple[str, ...] | None = None
    time_axis: int | None = None
    time_inputs: tuple[int, ...] | None = None
    checked: tuple[Any, ...] | None = None


def _float64_leaf(t: Any, name: str, native: bool = False) -> Any:
    import torch

    if not is_torch_tensor(t):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t.detach().to(t.dtype if native else torch.float64).clone().requires_grad_(True)


def torch_module_target(
    module: Any,
    x: Any,
    h0: Any = None,
    *,
    state: Any = None,
    forward_args: Sequence[Any] = (),
    precision: str = "float64",
) -> CheckTarget:
    """Wrap a ``torch.nn.Module`` as ``fn(x, [state], [forward_args], *params)`` via ``functional_call``.

    Parameters
    ----------
    module : torch.nn.Module
        Called as ``module(x, state, *forward_args)`` (``state`` only when given). Every returned
        float tensor enters L (``nn.LSTM`` returns ``(output, (h_n, c_n))``).
    x : torch.Tensor
        The input; a float64 copy is checked.
    state, h0 : tensor or tuple of tensors, optional
        The initial state (``h0`` is the older name), e.g. ``(h0, c0)`` for ``nn.LSTM``: float64
        copies, checked (named ``h0``, ``c0`` for a pair, else ``state``).
    forward_args : sequence
        Further positional arguments; float64 tensors with ``requires_grad`` are checked, the rest
        pass through (listed in the report's ``skipped``).
    precision : {'float64', 'native'}
        ``'native'``: x, the state and the parameters keep the module's dtype (float32,
        bfloat16, ...) and the module itself runs; called with float64 tensors (a float64
        reference) the function runs a float64 deep copy instead.

    Returns
    -------
    CheckTarget
        Parameters are float64 copies (the module is not modified). For ``torch.nn.RNNBase`` the
        time axis (0, or 1 with ``batch_first``) is set for localisation.

    Raises
    ------
    TypeError
        If ``module`` is not a module or ``x`` not a tensor.
    """
    import torch
    from torch.func import functional_call

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if h0 is not None and state is not None:
        raise TypeError("give the initial state once: state= (h0= is its older name)")
    if state is None:
        state = h0
    if precision not in ("float64", "native"):
        raise ValueError(f"precision must be 'float64' or 'native', got {precision!r}")
    native = precision == "native"
    names = [n for n, _ in module.named_parameters()]
    params = tuple(_float64_leaf(p, n, native) for n, p in module.named_parameters())
    mod = module
    if any(p.dtype != torch.float64 for p in module.parameters()) or any(
        b.is_floating_point() and b.dtype != torch.float64 for b in module.buffers()
    ):
        mod = copy.deepcopy(module).to(torch.float64)
    buffers = dict(mod.named_buffers())
    own_buffers = dict(module.named_buffers())
    front: list[Any] = [_float64_leaf(x, "x", native)]
    front_names = ["x"]
    if state is not None:
        if isinstance(state, (tuple, list)):
            state = tuple(_float64_leaf(s, f"state[{i}]", native) for i, s in enumerate(state))
            front.extend(state)
            front_names.extend(("h0", "c0") if len(state) == 2 else (f"state[{i}]" for i in range(len(state))))
        else:
            front.append(_float64_leaf(state, "state", native))
            front_names.append("h0")
    n_state = len(front) - 1
    paired = isinstance(state, tuple)
    extra = tuple(forward_args)
    if extra:
        front.append(extra)
        front_names.append("forward_args")

    def fn(x: Any, *rest: Any) -> Any:
        st = rest[:n_state]
        more = rest[n_state] if extra else ()
        ps = rest[n_state + (1 if extra else 0) :]
        args = (x,) + ((tuple(st) if paired else st[0],) if n_state else ()) + tuple(more)
        # fresh buffers each call: a module that updates running statistics in forward (batch norm)
        # must not change the caller's module
        # native precision: the module itself, unless called with float64 tensors (float64 reference)
        own = native and x.dtype != torch.float64
        fresh = {n: b.clone() for n, b in (own_buffers if own else buffers).items()}
        return functional_call(module if own else mod, {**fresh, **dict(zip(names, ps))}, args)

    time_axis = None
    if isinstance(module, torch.nn.RNNBase):
        time_axis = 1 if (module.batch_first and x.dim() == 3) else 0
    return CheckTarget(
        fn,
        (*front, *params),
        names=(*front_names, *names),
        time_axis=time_axis,
        time_inputs=(0,) if time_axis is not None else (),
    )


def model_target(model: Any, x: Any, h0: Any = None) -> CheckTarget:
    """Wrap a gradtheory numpy model as ``fn(x, *params)`` with its hand-written BPTT as ``grad_fn``.

    The loss is :math:`\\langle w_{out}, output\\rangle + \\langle w_{h_n}, h_n\\rangle (+ c_n)`;
    ``h0`` (the model's initial state) passes through unchanged.

    Raises
    ------
    TypeError
        If ``model`` is not a gradtheory ``RecurrentModel``.
    """
    from ..models.compose import RecurrentModel

    if not isinstance(model, RecurrentModel):
        raise TypeError(f"model must be a gradtheory RecurrentModel, got {type(model).__name__}")
    names = tuple(model.param_shapes())
    x = np.array(x, dtype=float)
    lstm = model.num_states == 2

    def run(x_: np.ndarray, *ps: np.ndarray) -> Any:
        return model.apply(dict(zip(names, ps)), x_, h0)

    def fn(x_: np.ndarray, *ps: np.ndarray) -> Any:
        r = run(x_, *ps)
        return (r.output, r.h_n, r.c_n) if lstm else (r.output, r.h_n)

    def grad_fn(w: Any, x_: np.ndarray, *ps: np.ndarray) -> Any:
        r = run(x_, *ps)
        g = model.backward(r, w[0], w[1], w[2] if lstm else None)
        return (g.x, *(g.params[n] for n in names))

    time_axis = 1 if (x.ndim == 3 and model.batch_first) else 0
    return CheckTarget(
        fn,
        (x, *(model.params[n].copy() for n in names)),
        grad_fn=grad_fn,
        names=("x", *names),
        time_axis=time_axis,
        time_inputs=(0,),
    )
