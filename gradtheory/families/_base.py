"""What the LRU and the selective SSM share: parameters by name, input layout, result records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import as_float_array, check_positive_int

__all__ = ["FamilyForward", "FamilyGradients", "FamilyModel"]


@dataclass(frozen=True)
class FamilyForward:
    """Result of ``forward``: ``output`` (T, B, out) or (T, out) unbatched; ``h_n`` the final state
    (model-specific shape, without the batch axis when unbatched); ``states`` (T + 1, B, ...) the
    state after each step (index 0 the initial state); ``cache`` what BPTT reuses."""

    output: np.ndarray
    h_n: np.ndarray
    states: np.ndarray = field(repr=False)
    cache: dict = field(repr=False)
    batched: bool = field(repr=False)


@dataclass(frozen=True)
class FamilyGradients:
    """Result of ``backward``: ``params`` (name -> gradient, parameter's shape), ``x`` (input's shape),
    ``h0`` (initial state's shape), ``dh`` (T, B, ...) the total gradient with respect to the state
    after each step (complex states: torch's convention, see :mod:`gradtheory.families.lru`)."""

    params: dict[str, np.ndarray]
    x: np.ndarray
    h0: np.ndarray
    dh: np.ndarray


class FamilyModel:
    """Base: a single-layer model with named parameters, time-major input (T, B, I) or (T, I)."""

    #: complex state (LRU) or real (selective SSM)
    complex_state = False

    def __init__(self, input_size: int, params: Mapping[str, Any] | None, seed: int | None) -> None:
        self.input_size = check_positive_int(input_size, "input_size")
        self.num_layers = 1
        self.bidirectional = False
        if params is None:
            params = self.init_params(np.random.default_rng(seed))
        self.params = params

    # subclass interface -------------------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def state_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    # parameters ---------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        """Parameters by name (float64; assigning a mapping validates and copies it)."""
        return self._params

    @params.setter
    def params(self, params: Mapping[str, Any]) -> None:
        self._check_names(params)
        self._params = {k: as_float_array(params[k], f"params[{k!r}]", shape=s) for k, s in self.param_shapes().items()}

    def _check_names(self, params: Any) -> None:
        shapes = self.param_shapes()
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping of parameter name -> array, got {type(params).__name__}")
        missing, extra = sorted(set(shapes) - set(params)), sorted(set(params) - set(shapes))
        if missing or extra:
            raise ValueError(
                f"params has the wrong names: missing {missing}, unexpected {extra}; expected {sorted(shapes)}"
            )

    @property
    def state_size(self) -> int:
        """Number of (real or complex) state entries S; the state Jacobian is S x S and diagonal."""
        return int(np.prod(self.state_shape()))

    # inputs -------------------------------------------------------------------------------
    def _prepare_x(self, x: Any) -> tuple[np.ndarray, bool]:
        x = as_float_array(x, "x", ndim=(2, 3))
        batched = x.ndim == 3
        if not batched:
            x = x[:, None, :]
        T, B, n_in = x.shape
        if T == 0 or B == 0:
            raise ValueError(f"x must have at least one time step and one sequence, got shape {x.shape}")
        if n_in != self.input_size:
            raise ValueError(f"x must have input_size={self.input_size} features in its last axis, got {n_in}")
        return x, batched

    def _prepare_h0(self, h0: Any, B: int, batched: bool) -> np.ndarray:
        S = self.state_shape()
        dtype = np.complex128 if self.complex_state else np.float64
        if h0 is None:
            return np.zeros((B,) + S, dtype=dtype)
        shape = ((B,) if batched else ()) + S
        arr = as_float_array(h0, "h0", shape=shape, allow_complex=self.complex_state).astype(dtype)
        return arr if batched else arr[None]

    def forward(self, x: Any, h0: Any = None) -> FamilyForward:
        """Run over ``x`` ((T, B, input_size) or (T, input_size)) from ``h0`` (zeros if None)."""
        xt, batched = self._prepare_x(x)
        return self._forward(self._params, xt, self._prepare_h0(h0, xt.shape[1], batched), batched)

    __call__ = forward

    def apply(self, params: Mapping[str, Any], x: Any, h0: Any = None) -> FamilyForward:
        """``forward`` with ``params`` (same names and shapes) in place of the model's own; the model
        is not changed and ``params`` are read, not copied."""
        self._check_names(params)
        for k, s in self.param_shapes().items():
            if np.shape(params[k]) != s:
                raise ValueError(f"params[{k!r}] must have shape {s}, got {np.shape(params[k])}")
        xt, batched = self._prepare_x(x)
        p = {k: np.asarray(params[k], dtype=np.float64) for k in self.param_shapes()}
        return self._forward(p, xt, self._prepare_h0(h0, xt.shape[1], batched), batched)

    def _forward(self, p, x, h0, batched) -> FamilyForward:
        raise NotImplementedError

    def _unbatch(self, out: np.ndarray, h_n: np.ndarray, batched: bool) -> tuple[np.ndarray, np.ndarray]:
        return (out, h_n) if batched else (out[:, 0], h_n[0])

    def num_parameters(self) -> int:
        return int(sum(np.prod(s) for s in self.param_shapes().values()))
