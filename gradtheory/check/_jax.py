"""The JAX backend: a function of ``jax.numpy`` arrays differentiated by ``jax.vjp`` / ``jax.jvp``
(``jax.custom_vjp`` and ``jax.custom_jvp`` rules included), behind the interface of
:class:`~gradtheory.check._backends.NumpyBackend` / ``TorchBackend`` (``evaluate``, ``vjp``) plus
the forward-mode ``jvp``.

Precision. JAX computes in float32 unless ``jax_enable_x64`` is on, and an array created while it
was off stays float32. Every call of user code made by this backend (``evaluate``, ``vjp``,
``jvp``) runs inside :func:`float64_mode`: 64-bit enabled through JAX's own thread-local context
manager (``jax.enable_x64``), which saves the caller's setting on entry and restores it on exit,
also when user code raises; the global ``jax.config.jax_enable_x64`` is never written, so other
threads are unaffected. The inputs are converted on each call: every floating-point leaf (JAX or
numpy, any precision) is handed to ``fn`` as a float64 copy, so the check judges the function's
float64 behaviour (derivative rules do not depend on the precision). An explicit cast inside
``fn`` (``x.astype(jnp.float32)``) still rounds, and then shows as float32 noise in the report's
note, as for torch and numpy.

What is checked: the floating-point ``jax.Array`` leaves of the (possibly nested dict/tuple/list)
inputs. numpy arrays, integer arrays, PRNG keys, scalars and ``None`` pass through (listed in
``report.skipped``). Other registered pytree containers (a flax ``FrozenDict``, an equinox module)
are not traversed: pass their leaves as a dict (NotImplementedError otherwise).

RNG. JAX has no global generator: randomness comes from explicit keys passed to or captured by
``fn``, so the same key gives the same draw at every evaluation; the torch/numpy/``random`` pinning
of the other backends has nothing to pin here (a ``fn`` that splits a fresh key from numpy's
global state would still be pinned by it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ._backends import Backend, TargetView, call_user
from ._tree import Leaf, leaves, rebuild

__all__ = ["JaxBackend", "float64_mode", "has_jax_array", "is_jax_array"]


def is_jax_array(x: Any) -> bool:
    """True for a ``jax.Array`` (without importing jax: no jax loaded, no jax array)."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.Array)


def has_jax_array(values: list[Any]) -> bool:
    return sys.modules.get("jax") is not None and any(is_jax_array(v) for v in values)


@contextmanager
def float64_mode() -> Iterator[None]:
    """64-bit JAX inside the block, the caller's setting restored on exit (thread-local)."""
    import jax
    import jax.numpy as jnp

    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # jax < 0.6: the same context manager lived in jax.experimental
        from jax.experimental import enable_x64 as enable
    with enable(True):
        if jnp.zeros(()).dtype != jnp.float64:  # pragma: no cover - a jax that ignores the switch
            raise RuntimeError("gradtheory could not enable 64-bit JAX (jax.enable_x64(True) had no effect)")
        yield


def _is_float_dtype(dtype: Any) -> bool:
    try:
        return np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating)
    except TypeError:  # extended dtypes (PRNG key arrays)
        return False


def _unsupported_container(value: Any, what: str) -> None:
    """A registered pytree node other than dict/tuple/list holding arrays: not traversed."""
    import jax

    if isinstance(value, (dict, tuple, list)) or value is None or is_jax_array(value):
        return
    if isinstance(value, (np.ndarray, np.generic, float, int, complex, str, bytes)):
        return
    inner = jax.tree_util.tree_leaves(value)
    if len(inner) > 1 or (inner and inner[0] is not value):
        raise NotImplementedError(
            f"{what} is a {type(value).__name__} (a JAX pytree container other than dict/tuple/list): "
            "gradtheory traverses dicts, tuples and lists only; pass its leaves as a dict "
            "(e.g. dict(flax_params) or jax.tree_util.tree_leaves_with_path)"
        )


def _to_float64(value: Any) -> Any:
    """A float64 copy of a floating-point JAX/numpy leaf (call inside :func:`float64_mode`)."""
    import jax.numpy as jnp

    if is_jax_array(value):
        if _is_float_dtype(value.dtype):
            kind = np.complex128 if np.issubdtype(value.dtype, np.complexfloating) else np.float64
            return jnp.array(np.array(value, dtype=kind))  # copies: never the caller's buffer
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return value.astype(np.float64)
        return value.copy()
    return value


class JaxBackend(Backend):
    """``fn`` on ``jax.numpy`` arrays, differentiated by ``jax.vjp`` / ``jax.jvp`` in float64."""

    framework = "jax"

    def __init__(self, target: TargetView, pin_rng: bool) -> None:
        super().__init__(target, pin_rng)
        #: forward-mode products computed (``jvp``)
        self.jvp_passes = 0
        if not self.checked:
            raise ValueError(
                "inputs contains no floating-point jax.Array to check (numpy arrays are passed through "
                "in a JAX function: convert the ones to check with jnp.asarray)"
            )

    # -- per framework -------------------------------------------------------------------------
    def _classify(self, leaf: Leaf) -> str | None:
        v = leaf.value
        if is_jax_array(v):
            if _is_float_dtype(v.dtype):
                return None
            return f"a {v.dtype} jax array (not floating point: not differentiated)"
        if isinstance(v, np.ndarray):
            return "a numpy array in a JAX function (not differentiated: pass jnp.asarray(...) to check it)"
        if isinstance(v, (float, np.floating)) and not isinstance(v, bool):
            return "a Python/numpy float scalar (pass a jnp array to check it)"
        if v is None:
            return "None"
        _unsupported_container(v, leaf.name)
        return f"not an array ({type(v).__name__}): passed through unchanged"

    def _as_array(self, value: Any) -> np.ndarray:
        return np.array(value, dtype=np.float64)

    def _fresh(self, value: Any, complex_: bool) -> Any:
        # a new float64 copy at every call, even of an immutable jax array: a fn jitted with
        # donate_argnums invalidates the buffers it is given
        return _to_float64(value)

    def _replacement(self, x: np.ndarray, leaf: Leaf) -> Any:
        import jax.numpy as jnp

        return jnp.array(x)  # a copy

    def _forward(self, args: list[Any]) -> Any:
        out = self._run(args)
        # numpy copies of the outputs, in their structure (what _float_outputs reads)
        return rebuild(out, (), _output_to_numpy, {})

    # -- the interface ---------------------------------------------------------------------------
    def evaluate(self, values: dict[int, np.ndarray], *, watch: bool = False) -> list[np.ndarray]:
        with float64_mode():
            return super().evaluate(values, watch=watch)

    def _function_of_checked(self) -> tuple[Callable[..., list[Any]], list[Any]]:
        """``f(*checked leaves) -> float outputs`` (flat, in ``evaluate``'s order) and the base point."""
        handed: dict[tuple[Any, ...], Any] = {}
        args = self._args({i: c.x for i, c in enumerate(self.checked)}, False, handed)
        keys = [c.leaf.keys for c in self.checked]
        primals = [handed[k] for k in keys]

        def f(*xs: Any) -> list[Any]:
            by_keys = dict(zip(keys, xs))
            call = [rebuild(a, (k,), lambda kk, v: by_keys.get(kk, v), {}) for k, a in enumerate(args)]
            out = self.target.fn(*call)
            return [leaf.value for leaf in leaves(out, (), "output") if _float_output(leaf.value)]

        return f, primals

    def vjp(self, cotangents: list[np.ndarray]) -> dict[int, np.ndarray | None]:
        import jax
        import jax.numpy as jnp

        self.backward_passes += 1
        with float64_mode():
            f, primals = self._function_of_checked()
            self.rng.reset()
            outs, pullback = call_user("fn (traced by jax.vjp)", jax.vjp, f, *primals)
            cot = [jnp.asarray(np.array(w), dtype=o.dtype) for o, w in zip(outs, cotangents)]
            grads = call_user("the backward (jax.vjp, custom_vjp rules included)", pullback, cot)
            return {i: np.asarray(g) for i, g in enumerate(grads)}

    def jvp(self, tangents: dict[int, np.ndarray]) -> list[np.ndarray]:
        """Output tangents (flattened like ``evaluate``'s outputs) for tangents of some checked
        inputs (the others get zero tangents).

        Raises
        ------
        NotImplementedError
            When ``fn`` has no forward mode (a ``jax.custom_vjp`` function defines only a reverse
            rule).
        """
        import jax
        import jax.numpy as jnp

        self.jvp_passes += 1
        with float64_mode():
            f, primals = self._function_of_checked()
            dots = [
                jnp.asarray(np.array(tangents[i], dtype=np.float64)) if i in tangents else jnp.zeros_like(p)
                for i, p in enumerate(primals)
            ]
            self.rng.reset()
            try:
                _, out_dots = call_user("fn (differentiated by jax.jvp)", jax.jvp, f, tuple(primals), tuple(dots))
            except TypeError as exc:
                if "custom_vjp" in str(exc):
                    raise NotImplementedError(
                        "fn has no forward mode: it calls a jax.custom_vjp function, which defines only a "
                        "reverse rule (jax.jvp cannot differentiate it); check it in reverse mode, or give it a "
                        "jax.custom_jvp rule"
                    ) from exc
                raise
            return [np.array(t) for t in out_dots]


def _float_output(v: Any) -> bool:
    """The outputs ``evaluate`` reads (``_backends._float_outputs``), in the same order."""
    if isinstance(v, float):
        return True
    return (is_jax_array(v) or isinstance(v, (np.ndarray, np.generic))) and _is_float_dtype(v.dtype)


def _output_to_numpy(keys: tuple[Any, ...], v: Any) -> Any:
    if is_jax_array(v):
        return np.array(v) if _is_float_dtype(v.dtype) else v
    _unsupported_container(v, "an output of fn")
    return v
