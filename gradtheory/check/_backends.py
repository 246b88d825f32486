"""One backend per framework behind one small interface: ``evaluate`` (the outputs of ``fn`` with
some checked leaves replaced) and ``vjp`` (the backward for a cotangent).

Both backends share what makes the checker safe on other people's code:

* every array/tensor handed to user code (inputs, cotangents) is a fresh copy, so a backward that
  updates its incoming gradient in place (``dnext_c += ...``, ``grad_output.mul_(...)``) or a
  forward that edits its arguments cannot change the reference or the caller's data;
* every call of user code starts from the same torch (CPU and, once initialised, CUDA) / numpy /
  ``random`` global RNG state (when ``pin_rng``), so dropout masks drawn from the global
  generators repeat across evaluations; the states at entry are restored when the check ends;
* an exception raised by user code propagates unchanged, marked with what was being called
  (:func:`call_user`), so the CLI can show it as the user's.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._tree import Leaf, ParamKey, is_module, is_torch_tensor, leaves, lookup, rebuild
from .reports import SkippedInput

__all__ = ["USER_CODE_ATTR", "Backend", "NumpyBackend", "TorchBackend", "call_user", "make_backend"]

#: Attribute set on an exception raised by user code: what gradtheory was calling.
USER_CODE_ATTR = "_gradtheory_during"


def call_user(what: str, f: Callable[..., Any], *args: Any) -> Any:
    """``f(*args)``; an exception is re-raised unchanged, marked (``USER_CODE_ATTR``) and with a note."""
    try:
        return f(*args)
    except Exception as exc:
        if not hasattr(exc, USER_CODE_ATTR):
            try:
                setattr(exc, USER_CODE_ATTR, what)
                exc.add_note(f"(raised by {what}, called by gradtheory.check_gradients)")
            except (AttributeError, TypeError):  # pragma: no cover - exotic exception types
                pass
        raise


class RngPin:
    """The torch, numpy and ``random`` global RNG states at entry; ``reset`` sets them back."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.numpy = np.random.get_state()
        self.python = random.getstate()
        torch = sys.modules.get("torch")
        self.torch = torch.get_rng_state() if torch is not None else None
        cuda = torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()
        self.cuda = torch.cuda.get_rng_state_all() if cuda else None

    def reset(self) -> None:
        if not self.enabled:
            return
        np.random.set_state(self.numpy)
        random.setstate(self.python)
        if self.torch is not None:
            sys.modules["torch"].set_rng_state(self.torch)
        if self.cuda is not None:
            sys.modules["torch"].cuda.set_rng_state_all(self.cuda)


#: Unit round-off u = 2^-p of the floating-point formats a checked input may have (p the
#: significand bits including the implicit one): float64 53, float32 24, float16 11, bfloat16 8.
PRECISIONS = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def precision_name(value: Any) -> str | None:
    """'float64', 'float32', 'float16', 'bfloat16' for a float tensor/array, None otherwise."""
    if is_torch_tensor(value):
        name = str(value.dtype).replace("torch.", "")
    elif isinstance(value, np.ndarray):
        name = value.dtype.name
    else:
        return None
    return name if name in PRECISIONS else None


@dataclass(frozen=True)
class Checked:
    """A checked leaf, its base point as a float64 array (a copy; every value of a lower precision
    is exact in float64) and the precision the function runs it in."""

    leaf: Leaf
    x: np.ndarray
    precision: str = "float64"

    @property
    def name(self) -> str:
        return self.leaf.name

    @property
    def u(self) -> float:
        """Unit round-off of the input's own precision."""
        return PRECISIONS[self.precision]


@dataclass(frozen=True)
class TargetView:
    """What the backends need from a :class:`CheckTarget` (kept free of the public class)."""

    fn: Callable[..., Any]
    inputs: tuple[Any, ...]
    grad_fn: Callable[..., Any] | None
    names: tuple[str, ...]
    checked: tuple[Any, ...] | None


def _float_outputs(out: Any) -> list[tuple[tuple[Any, ...], str, Any]]:
    """(keys, name, value) of the float/complex leaves of an output structure."""
    res = []
    for leaf in leaves(out, (), "output"):
        v = leaf.value
        if is_torch_tensor(v):
            if v.is_floating_point() or v.is_complex():
                res.append((leaf.keys, leaf.name, v))
        elif isinstance(v, (np.ndarray, np.floating, float)) and np.asarray(v).dtype.kind in "fc":
            res.append((leaf.keys, leaf.name, v))
    return res


def _to_numpy(v: Any, complex_ok: bool) -> np.ndarray:
    if is_torch_tensor(v):
        v = v.detach().cpu().resolve_conj().numpy() if v.is_complex() else _grad_array(v)
    v = np.asarray(v)
    kind = (
        np.complex128
        if (complex_ok and v.dtype.kind == "c")
        else (np.complex128 if v.dtype.kind == "c" else np.float64)
    )
    return np.array(v, dtype=kind)


def _equal(a: Any, b: Any) -> bool:
    if is_torch_tensor(a):
        a = _grad_array(a)
    if is_torch_tensor(b):
        b = _grad_array(b)
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


class Backend:
    """Common part: the leaves, which are checked, the counters, RNG pinning, fresh copies."""

    framework = "numpy"

    def __init__(self, target: TargetView, pin_rng: bool) -> None:
        self.target = target
        self.rng = RngPin(pin_rng)
        self.evaluations = 0
        self.backward_passes = 0
        self.mutated: list[str] = []
        self.output_names: list[str] = []
        self._out_struct: Any = None
        #: evaluate in float64 (every float input leaf cast up) instead of the inputs' precision
        self.float64_reference = False
        self.output_precisions: list[str] = []
        self.last_precisions: list[str] = []
        self.all_leaves = [leaf for k, a in enumerate(target.inputs) for leaf in leaves(a, (k,), target.names[k])]
        checked, skipped = [], []
        for leaf in self.all_leaves:
            reason = self._classify(leaf)
            if reason is None and (leaf.value.numel() if is_torch_tensor(leaf.value) else np.size(leaf.value)) == 0:
                reason = "empty (no element to check)"
            selected = _selected(leaf, target.checked, target.names)
            if reason is None and not selected:
                reason = "not selected by checked="
            elif (
                reason is not None
                and target.checked is not None
                and leaf.name in target.checked
                and reason != "requires_grad is False"
            ):
                raise ValueError(f"checked selects {leaf.name!r}, which cannot be checked: {reason}")
            if reason is None or (reason == "requires_grad is False" and target.checked is not None and selected):
                checked.append(Checked(leaf, self._as_array(leaf.value), precision_name(leaf.value) or "float64"))
            else:
                skipped.append(SkippedInput(leaf.name, reason))
        if target.checked is not None:
            for sel in target.checked:
                if not any(_selected(c.leaf, (sel,), target.names) for c in checked):
                    raise ValueError(
                        f"checked contains {sel!r}, which names no float input leaf "
                        f"(leaves: {[leaf.name for leaf in self.all_leaves]})"
                    )
        self.checked = checked
        self.skipped = skipped
        #: a backward's gradient of the wrong shape, by checked index (a wrong backward, not a usage error)
        self.shape_errors: dict[int, str] = {}

    # -- per framework -------------------------------------------------------------------------
    def _classify(self, leaf: Leaf) -> str | None:  # None: checkable
        raise NotImplementedError

    def _as_array(self, value: Any) -> np.ndarray:
        if is_torch_tensor(value):
            return value.detach().cpu().to(dtype=sys.modules["torch"].float64).numpy().copy()
        return np.array(value, dtype=np.float64)

    def _fresh(self, value: Any, complex_: bool) -> Any:
        """A copy of a non-replaced leaf for user code."""
        if isinstance(value, np.ndarray):
            if self.float64_reference and value.dtype.kind == "f":
                return value.astype(np.float64)
            return value.copy()
        return value

    def _replacement(self, x: np.ndarray, leaf: Leaf) -> Any:
        # the input's own precision (x + h v rounded to it), or float64 for a float64 reference
        if self.float64_reference or np.iscomplexobj(x):
            return np.array(x)
        return np.array(x, dtype=leaf.value.dtype)

    @property
    def low_precision(self) -> bool:
        return any(c.precision != "float64" for c in self.checked)

    def _run(self, args: list[Any]) -> Any:
        return call_user("fn", self.target.fn, *args)

    def vjp(self, cotangents: list[np.ndarray]) -> dict[int, np.ndarray | None]:
        """The backward at the base point for a cotangent, always in the inputs' own precision."""
        reference, self.float64_reference = self.float64_reference, False
        try:
            return self._vjp(cotangents)
        finally:
            self.float64_reference = reference

    def _vjp(self, cotangents: list[np.ndarray]) -> dict[int, np.ndarray | None]:
        raise NotImplementedError

    def jvp(self, tangents: dict[int, np.ndarray]) -> list[np.ndarray]:
        """Forward mode at the base point: the output tangents (flattened like ``evaluate``'s
        outputs) for a tangent per checked input index, in the inputs' own precision."""
        raise NotImplementedError(
            f"mode='forward' needs forward-mode AD, which the {self.framework} backend does not have "
            "(a numpy function has only grad_fn)"
        )

    # -- shared ------------------------------------------------------------------------------------
    def _args(self, values: dict[int, np.ndarray], complex_: bool, handed: dict) -> list[Any]:
        by_keys = {self.checked[i].leaf.keys: (v, self.checked[i].leaf) for i, v in values.items()}

        def replace(keys: tuple[Any, ...], original: Any) -> Any:
            if keys in by_keys:
                value, leaf = by_keys[keys]
                return self._replacement(value, leaf)
            return self._fresh(original, complex_)

        return [rebuild(a, (k,), replace, handed) for k, a in enumerate(self.target.inputs)]

    def evaluate(self, values: dict[int, np.ndarray], *, watch: bool = False) -> list[np.ndarray]:
        """Float outputs of fn (numpy, possibly complex) with ``checked[i]`` replaced by ``values[i]``.

        ``watch``: record (in ``mutated``) the leaves that fn modified in place."""
        self.evaluations += 1
        complex_ = any(np.iscomplexobj(v) for v in values.values())
        handed: dict[tuple[Any, ...], Any] = {}
        args = self._args(values, complex_, handed)
        before = {k: self._fresh(v, False) for k, v in handed.items()} if watch else {}
        self.rng.reset()
        out = self._forward(args)
        if watch:
            self._out_struct = out
            for leaf in self.all_leaves:
                b = before.get(leaf.keys)
                if (isinstance(b, np.ndarray) or is_torch_tensor(b)) and not _equal(b, handed[leaf.keys]):
                    self.mutated.append(leaf.name)
        outs = _float_outputs(out)
        self.output_names = [name for _, name, _ in outs]
        self.last_precisions = [precision_name(v) or "float64" for _, _, v in outs]
        if watch:
            self.output_precisions = self.last_precisions
        return [_to_numpy(v, complex_) for _, _, v in outs]

    def _forward(self, args: list[Any]) -> Any:
        return self._run(args)


def _selected(leaf: Leaf, checked: tuple[Any, ...] | None, names: tuple[str, ...]) -> bool:
    """Does the ``checked=`` selection contain this leaf? (an input index, a top-level name, a
    leaf's name or the name of a container above it)."""
    if checked is None:
        return True
    for sel in checked:
        if isinstance(sel, (int, np.integer)) and not isinstance(sel, bool) and leaf.keys[0] == sel:
            return True
        if isinstance(sel, str) and (
            leaf.name == sel or leaf.name.startswith(sel + "[") or leaf.name.startswith(sel + ".")
        ):
            return True
    return False


class NumpyBackend(Backend):
    """``fn`` on numpy arrays with a hand-written ``grad_fn(cotangent, *inputs)``."""

    framework = "numpy"

    def _classify(self, leaf: Leaf) -> str | None:
        v = leaf.value
        if isinstance(v, np.ndarray):
            if v.dtype.name in ("float64", "float32", "float16"):
                return None
            if v.dtype.kind == "f":
                raise TypeError(f"{leaf.name} must be a float64, float32 or float16 array, got dtype {v.dtype}")
            return f"a {v.dtype} array (not a float array: not differentiated)"
        if isinstance(v, (float, np.floating)) and not isinstance(v, bool):
            return "a Python/numpy float scalar (pass a float64 array to check it)"
        if v is None:
            return "None"
        return f"not an array ({type(v).__name__}): passed through unchanged"

    def _vjp(self, cotangents: list[np.ndarray]) -> dict[int, np.ndarray | None]:
        self.backward_passes += 1
        args = self._args({}, False, {})
        out_keys = [k for k, _, _ in _float_outputs(self._out_struct)]
        by_keys = dict(zip(out_keys, cotangents))
        cot = rebuild(self._out_struct, (), lambda k, v: np.array(by_keys[k]) if k in by_keys else None, {})
        # the forward at the base point right before the backward: a layer object whose backward
        # reads what its last forward cached (self.cache) then differentiates at the base point,
        # not at the last probe
        self.rng.reset()
        call_user("fn", self.target.fn, *self._args({}, False, {}))  # its own copies: fn may edit them
        self.rng.reset()
        grads = call_user("grad_fn", self.target.grad_fn, cot, *args)
        n = len(self.target.inputs)
        if not (isinstance(grads, (tuple, list)) and len(grads) == n):
            if n == 1:
                grads = (grads,)
            else:
                got = len(grads) if isinstance(grads, (tuple, list)) else type(grads).__name__
                raise ValueError(f"grad_fn must return one gradient per input ({n}), got {got}")
        res: dict[int, np.ndarray | None] = {}
        for i, c in enumerate(self.checked):
            g = lookup(grads, c.leaf.keys)
            if g is None:
                res[i] = None
                continue
            g = np.asarray(g)
            if g.shape != c.x.shape:
                self.shape_errors[i] = (
                    f"grad_fn returned a gradient of shape {g.shape} for this input of shape {c.x.shape}"
                )
                res[i] = None
                continue
            res[i] = g
        return res


class TorchBackend(Backend):
    """``fn`` on torch tensors, differentiated by autograd (custom ``autograd.Function``s included)."""

    framework = "torch"

    def _classify(self, leaf: Leaf) -> str | None:

        v = leaf.value
        in_module = bool(leaf.keys) and isinstance(leaf.keys[-1], ParamKey)
        if is_torch_tensor(v):
            if not v.is_floating_point():
                return f"a {v.dtype} tensor (not floating point: not differentiated)"
            if precision_name(v) is None and not in_module and v.requires_grad:
                raise TypeError(
                    f"{leaf.name} must be a float64, float32, float16 or bfloat16 tensor, got dtype {v.dtype}"
                )
            if not v.requires_grad:
                return "requires_grad is False"
            return None
        if isinstance(v, np.ndarray):
            return "a numpy array in a torch function (not differentiated by autograd)"
        if v is None:
            return "None"
        return f"not a tensor ({type(v).__name__}): passed through unchanged"

    def _fresh(self, value: Any, complex_: bool) -> Any:
        if is_torch_tensor(value):
            t = value.detach().clone()
            if complex_ and t.is_floating_point():
                t = t.to(sys.modules["torch"].complex128)
            elif self.float64_reference and t.is_floating_point():
                t = t.to(sys.modules["torch"].float64)
            return t
        return super()._fresh(value, complex_)

    def _replacement(self, x: np.ndarray, leaf: Leaf) -> Any:
        t = sys.modules["torch"].from_numpy(np.array(x))
        if self.float64_reference or np.iscomplexobj(x) or not is_torch_tensor(leaf.value):
            return t
        return t.to(leaf.value.dtype)  # rounded to the input's own precision

    def _forward(self, args: list[Any]) -> Any:
        import torch

        with torch.no_grad():
            return self._run(args)

    def jvp(self, tangents: dict[int, np.ndarray]) -> list[np.ndarray]:
        """Forward-mode dual numbers (``torch.autograd.forward_ad``): a custom
        ``autograd.Function``'s ``jvp`` and every built-in op's forward derivative."""

        self.backward_passes += 1
        by_keys = {self.checked[i].leaf.keys: t for i, t in tangents.items()}
        reference, self.float64_reference = self.float64_reference, False  # AD in the inputs' precision
        try:
            return self._jvp(by_keys)
        finally:
            self.float64_reference = reference

    def _jvp(self, by_keys: dict[tuple[Any, ...], np.ndarray]) -> list[np.ndarray]:
        import torch
        import torch.autograd.forward_ad as fwAD

        with fwAD.dual_level():

            def replace(keys: tuple[Any, ...], original: Any) -> Any:
                primal = self._fresh(original, False)
                if keys not in by_keys or not is_torch_tensor(primal):
                    return primal
                tangent = torch.from_numpy(np.array(by_keys[keys])).to(primal.dtype)
                return fwAD.make_dual(primal, tangent)

            args = [rebuild(a, (k,), replace, {}) for k, a in enumerate(self.target.inputs)]
            self.rng.reset()
            with torch.no_grad():
                out = self._run(args)
            res = []
            for _, _, v in _float_outputs(out):
                t = fwAD.unpack_dual(v).tangent if is_torch_tensor(v) else None
                res.append(np.zeros(tuple(np.shape(v))) if t is None else _grad_array(t).astype(np.float64))
        return res

    def _vjp(self, cotangents: list[np.ndarray]) -> dict[int, np.ndarray | None]:
        import torch

        self.backward_passes += 1
        wanted = {c.leaf.keys for c in self.checked}

        def replace(keys: tuple[Any, ...], original: Any) -> Any:
            if keys in wanted:
                # the backward in the input's own precision (the one the user trains with)
                return original.detach().clone().requires_grad_(True)
            return self._fresh(original, False)

        handed: dict[tuple[Any, ...], Any] = {}
        args = [rebuild(a, (k,), replace, handed) for k, a in enumerate(self.target.inputs)]
        self.rng.reset()
        with torch.enable_grad():
            out = self._run(args)
        pairs = [
            (v, torch.tensor(w.copy(), dtype=v.dtype))
            for (_, _, v), w in zip(_float_outputs(out), cotangents)
            if is_torch_tensor(v) and v.requires_grad and np.any(w)
        ]
        if not pairs:
            return {i: None for i in range(len(self.checked))}
        leaves_ = [handed[c.leaf.keys] for c in self.checked]
        grads = call_user("the backward (torch.autograd.grad)", _autograd, pairs, leaves_)
        return {i: (None if g is None else _grad_array(g)) for i, g in enumerate(grads)}


def _grad_array(g: Any) -> np.ndarray:
    """A gradient as numpy: float16/bfloat16 (no numpy bfloat16) exactly as float64."""
    import torch

    g = g.detach().cpu().resolve_conj()
    if g.dtype in (torch.bfloat16, torch.float16):
        g = g.to(torch.float64)
    return g.numpy()


def _autograd(pairs: list[tuple[Any, Any]], leaves_: list[Any]) -> Any:
    import torch

    return torch.autograd.grad([p[0] for p in pairs], leaves_, grad_outputs=[p[1] for p in pairs], allow_unused=True)


def make_backend(target: TargetView, pin_rng: bool) -> Backend:
    """The torch backend when any input leaf is a tensor or module, the JAX one when any is a
    ``jax.Array`` (``_jax.py``), else the numpy one."""
    from ._jax import JaxBackend, has_jax_array

    flat = [leaf.value for k, a in enumerate(target.inputs) for leaf in leaves(a, (k,), target.names[k])]
    is_torch = any(is_torch_tensor(v) for v in flat) or any(is_module(a) for a in target.inputs)
    if has_jax_array(flat):
        if is_torch:
            raise TypeError("inputs mix torch tensors and jax arrays: check a function of one framework at a time")
        if target.grad_fn is not None:
            raise TypeError("grad_fn is only for numpy functions; jax arrays are differentiated by jax.vjp")
        return JaxBackend(target, pin_rng)
    if is_torch and target.grad_fn is not None:
        raise TypeError("grad_fn is only for numpy functions; torch inputs are differentiated by autograd")
    if not is_torch and target.grad_fn is None:
        raise TypeError(
            "grad_fn is required for numpy functions: grad_fn(cotangent, *inputs) -> one gradient per input"
        )
    return (TorchBackend if is_torch else NumpyBackend)(target, pin_rng)
