"""Nested inputs and outputs: the leaves of tuples / lists / dicts (and of a ``torch.nn.Module``'s
parameters), each with a path from the top-level argument tuple and a printable name
(``params['W_hh']``, ``inputs[1][0]``, ``cell.weight_hh``); and the same structure rebuilt with
every leaf replaced (fresh copies for user code)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Leaf", "ParamKey", "is_module", "is_torch_tensor", "leaves", "lookup", "rebuild"]


@dataclass(frozen=True)
class ParamKey:
    """A path step into a module: its parameter ``name`` (dotted, as in ``named_parameters``)."""

    name: str


@dataclass(frozen=True)
class Leaf:
    """One leaf: ``keys`` the path from the argument tuple, ``name`` for reports, ``value`` the
    caller's own object (never handed to user code)."""

    keys: tuple[Any, ...]
    name: str
    value: Any


def is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "requires_grad")


def is_module(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.nn.Module)


def leaves(obj: Any, keys: tuple[Any, ...], name: str) -> list[Leaf]:
    """The leaves of ``obj`` in a fixed order (dict insertion order, sequence order)."""
    if isinstance(obj, dict):
        out: list[Leaf] = []
        for key, value in obj.items():
            out.extend(leaves(value, keys + (key,), f"{name}[{key!r}]"))
        return out
    if isinstance(obj, (tuple, list)):
        out = []
        for i, value in enumerate(obj):
            out.extend(leaves(value, keys + (i,), f"{name}[{i}]"))
        return out
    if is_module(obj):
        return [Leaf(keys + (ParamKey(p),), f"{name}.{p}", v) for p, v in obj.named_parameters()]
    return [Leaf(keys, name, obj)]


def _set_parameter(module: Any, dotted: str, value: Any) -> Any:
    import torch

    *path, attr = dotted.split(".")
    sub = module
    for p in path:
        sub = getattr(sub, p)
    param = torch.nn.Parameter(value, requires_grad=value.requires_grad)
    setattr(sub, attr, param)
    return param


def rebuild(
    obj: Any, keys: tuple[Any, ...], replace: Callable[[tuple[Any, ...], Any], Any], handed: dict[tuple[Any, ...], Any]
) -> Any:
    """``obj`` with every leaf ``x`` at path ``k`` replaced by ``replace(k, x)``; a module is
    deep-copied with its parameters replaced. ``handed[k]`` records the object user code gets."""
    if isinstance(obj, dict):
        items = [(key, rebuild(value, keys + (key,), replace, handed)) for key, value in obj.items()]
        try:
            return type(obj)(items)
        except TypeError:  # a dict subclass with another constructor (defaultdict): a plain dict
            return dict(items)
    if isinstance(obj, (tuple, list)):
        items = [rebuild(value, keys + (i,), replace, handed) for i, value in enumerate(obj)]
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*items)
        return type(obj)(items) if type(obj) in (tuple, list) else tuple(items) if isinstance(obj, tuple) else items
    if is_module(obj):
        import torch

        module = copy.deepcopy(obj)
        if any(p.is_floating_point() and p.dtype != torch.float64 for p in module.parameters()):
            module = module.to(torch.float64)
        for p, value in list(module.named_parameters()):
            k = keys + (ParamKey(p),)
            handed[k] = _set_parameter(module, p, replace(k, value))
        return module
    new = replace(keys, obj)
    handed[keys] = new
    return new


def lookup(tree: Any, keys: tuple[Any, ...]) -> Any:
    """The entry of ``tree`` at ``keys`` (``None`` when the path is missing)."""
    for key in keys:
        if tree is None:
            return None
        if isinstance(tree, dict):
            tree = tree.get(key)
        elif isinstance(tree, (tuple, list)) and isinstance(key, int):
            tree = tree[key] if key < len(tree) else None
        else:
            return None
    return tree
