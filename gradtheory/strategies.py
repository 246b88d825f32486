r"""Hypothesis strategies that generate recurrent-network structure, and the test profiles.

Strategies are plural nouns with keyword-only options:

* :func:`reals` -- bounded floats with tiny magnitudes flushed to 0;
* :func:`matrices` -- square matrices with a prescribed spectral norm or spectral radius (to
  1e-12 relative), drawn from several structures: dense Gaussian-like (non-normal), upper
  triangular (strongly non-normal: transient growth), symmetric (normal), scaled orthogonal;
* :func:`orthogonal_matrices`;
* :func:`sequences` -- input sequences (T, n_in) or (T, B, n_in);
* :func:`models` -- models of any registered cell (:mod:`gradtheory.cells`: rnn, lstm, gru,
  residual, highway, ...) with drawn configuration and weights;
* :func:`parameters` -- a parameter dict for a given model's layout.

Profiles (registered on import): ``ci`` (derandomized, fixed example budget, no deadline),
``dev`` (random, quick), ``thorough`` (many examples). :func:`load_profile` chooses from the
``GRADTHEORY_PROFILE`` environment variable (default ``ci`` when ``CI`` is set, else ``dev``); the
pytest plugin's ``--gradtheory-profile`` option overrides it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "reals",
    "matrices",
    "orthogonal_matrices",
    "vectors",
    "sequences",
    "models",
    "parameters",
    "load_profile",
    "PROFILES",
]

PROFILES = ("ci", "dev", "thorough")

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=20,
    deadline=None,
    print_blob=True,
    database=None,
    # Model construction + complex-step oracles legitimately take ~10 ms per example.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=30, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=500, deadline=None, print_blob=True)


def load_profile(name: str | None = None) -> str:
    """Load a Hypothesis profile by name, or from ``GRADTHEORY_PROFILE`` / ``CI``; returns it."""
    if name is None:
        name = os.environ.get("GRADTHEORY_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    if name not in PROFILES:
        raise ValueError(f"profile={name!r} is unknown; expected one of {list(PROFILES)}")
    settings.load_profile(name)
    return name


def reals(bound: float, *, flush_below: float = 1e-6) -> st.SearchStrategy[float]:
    """Floats in [-bound, bound] with magnitudes below ``flush_below`` flushed to exactly 0.

    Tiny nonzero entries add no structure; multiplied through a few dozen operations they reach
    the subnormal range, where no relative-error statement (ours or an oracle's) can hold.
    Zero itself is kept (and is what shrinking aims for).
    """
    return st.floats(-bound, bound, allow_nan=False, allow_subnormal=False, width=64).map(
        lambda v: 0.0 if abs(v) < flush_below else v
    )


_ENTRY = reals(1.0)
_STRUCTURES = ("dense", "triangular", "symmetric", "orthogonal")


def _qr_orthogonal(A: np.ndarray) -> np.ndarray:
    Q, R = np.linalg.qr(A)
    signs = np.where(np.diag(R) < 0, -1.0, 1.0)
    return Q * signs


def _spectral_radius(A: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(A))))


def matrices(
    n: int,
    *,
    spectral_norm: float | None = None,
    spectral_radius: float | None = None,
    structures: Sequence[str] = _STRUCTURES,
) -> st.SearchStrategy[np.ndarray]:
    r"""Square (n, n) float64 matrices, optionally with a prescribed spectral norm or radius.

    The structure is drawn from ``structures``: ``dense`` (generic, non-normal), ``triangular``
    (upper triangular plus a strong off-diagonal part: non-normal, with transient growth of
    :math:`\|W^k\|`), ``symmetric`` (normal: norm = radius), ``orthogonal`` (scaled: all
    singular values equal). The prescribed quantity is hit to 1e-12 relative (checked; draws
    whose eigenvalues are too ill-conditioned to hit the radius are rejected).
    """
    from ._validation import check_positive_int

    n = check_positive_int(n, "n")
    if spectral_norm is not None and spectral_radius is not None:
        raise ValueError("give spectral_norm or spectral_radius, not both")
    for name, value in (("spectral_norm", spectral_norm), ("spectral_radius", spectral_radius)):
        if value is not None and not (isinstance(value, (int, float)) and value > 0 and np.isfinite(value)):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    unknown = set(structures) - set(_STRUCTURES)
    if unknown or not structures:
        raise ValueError(f"structures={list(structures)!r} must be a non-empty subset of {list(_STRUCTURES)}")
    return _matrices(n, spectral_norm, spectral_radius, tuple(structures))


@st.composite
def _matrices(draw: Any, n: int, spectral_norm, spectral_radius, structures) -> np.ndarray:
    structure = draw(st.sampled_from(list(structures)))
    A = draw(hnp.arrays(np.float64, (n, n), elements=_ENTRY))
    if structure == "triangular":
        A = np.triu(A) + 3.0 * np.triu(np.ones((n, n)), 1) * np.sign(np.triu(A, 1) + 0.5)
    elif structure == "symmetric":
        A = (A + A.T) / 2
    elif structure == "orthogonal":
        A = _qr_orthogonal(A + 2.0 * np.eye(n))
    if spectral_norm is not None:
        s = np.linalg.norm(A, 2)
        if s < 1e-3:
            A = A + np.eye(n)
            s = np.linalg.norm(A, 2)
        A = A * (spectral_norm / s)
        ok = abs(np.linalg.norm(A, 2) - spectral_norm) <= 1e-12 * spectral_norm
    elif spectral_radius is not None:
        r = _spectral_radius(A)
        if r < 1e-3:
            A = A + np.eye(n)
            r = _spectral_radius(A)
        A = A * (spectral_radius / r)
        ok = abs(_spectral_radius(A) - spectral_radius) <= 1e-12 * spectral_radius
    else:
        ok = True
    if not ok:
        from hypothesis import reject

        reject()
    return A


@st.composite
def orthogonal_matrices(draw: Any, n: int) -> np.ndarray:
    """(n, n) orthogonal matrices (Q of a QR factorisation, signs fixed so that R has a positive diagonal)."""
    A = draw(hnp.arrays(np.float64, (n, n), elements=_ENTRY))
    return _qr_orthogonal(A + 2.0 * np.eye(n))


def vectors(n: int, *, bound: float = 1.0) -> st.SearchStrategy[np.ndarray]:
    """Float64 vectors of shape (n,) with entries in [-bound, bound] (tiny magnitudes flushed to 0,
    see :func:`reals`): states, biases, fixed-point targets."""
    from ._validation import check_positive_int

    return hnp.arrays(np.float64, (check_positive_int(n, "n"),), elements=reals(bound))


def sequences(
    *,
    steps: int | st.SearchStrategy[int] = st.integers(1, 6),
    input_size: int = 3,
    batch: int | None = None,
    scale: float = 1.0,
) -> st.SearchStrategy[np.ndarray]:
    """Input sequences of shape (T, input_size), or (T, batch, input_size), entries in [-scale, scale]."""
    steps_s = st.just(steps) if isinstance(steps, int) else steps
    elem = reals(scale)
    return steps_s.flatmap(
        lambda T: hnp.arrays(np.float64, (T, input_size) if batch is None else (T, batch, input_size), elements=elem)
    )


@st.composite
def parameters(draw: Any, model: Any, *, scale: float | None = None) -> dict[str, np.ndarray]:
    """A parameter dict for ``model``'s layout, entries uniform-like in [-scale, scale]
    (default: torch's 1/sqrt(hidden_size))."""
    bound = 1.0 / np.sqrt(model.hidden_size) if scale is None else scale
    elem = reals(bound)
    return {k: draw(hnp.arrays(np.float64, s, elements=elem)) for k, s in model.param_shapes().items()}


@st.composite
def models(
    draw: Any,
    *,
    families: Sequence[str] = ("rnn", "lstm", "gru"),
    nonlinearities: Sequence[str] = ("tanh", "relu"),
    max_layers: int = 3,
    bidirectional: bool | None = None,
    bias: bool | None = None,
    batch_first: bool | None = None,
    input_size: int | st.SearchStrategy[int] = st.integers(1, 4),
    hidden_size: int | st.SearchStrategy[int] = st.integers(1, 4),
    scale: float | None = None,
) -> Any:
    """gradtheory models with drawn family, sizes, depth, directions, bias and weights.

    ``families`` are names of registered cells (:data:`gradtheory.cells.REGISTRY`). A cell that
    takes an activation draws it from ``nonlinearities`` (those the cell accepts). ``None`` for a
    boolean option means "draw it". ``scale`` bounds the weights (default torch's 1/sqrt(hidden_size)).
    """
    from .cells import REGISTRY

    unknown = set(families) - set(REGISTRY)
    if unknown:
        raise ValueError(f"families has unknown entries {sorted(unknown)}; expected a subset of {list(REGISTRY)}")
    spec = REGISTRY[draw(st.sampled_from(list(families)))]
    I = input_size if isinstance(input_size, int) else draw(input_size)
    H = hidden_size if isinstance(hidden_size, int) else draw(hidden_size)
    kw = dict(
        num_layers=draw(st.integers(1, max_layers)),
        bidirectional=draw(st.booleans()) if bidirectional is None else bidirectional,
        bias=draw(st.booleans()) if bias is None else bias,
        batch_first=draw(st.booleans()) if batch_first is None else batch_first,
    )
    model: Any
    if spec.nonlinearities:
        allowed = [n for n in nonlinearities if n in spec.nonlinearities]
        if not allowed:
            raise ValueError(
                f"nonlinearities={list(nonlinearities)!r} has none that cell {spec.name!r} accepts "
                f"({list(spec.nonlinearities)})"
            )
        model = spec.model(I, H, nonlinearity=draw(st.sampled_from(allowed)), **kw)
    else:
        model = spec.model(I, H, **kw)
    model.params = draw(parameters(model, scale=scale))
    return model
