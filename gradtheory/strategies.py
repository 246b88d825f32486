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

Profiles (registered on import under the names ``gradtheory-ci``, ``gradtheory-dev``,
``gradtheory-thorough``, so that a user's own profiles are never redefined): ``ci`` (derandomized,
fixed example budget, no deadline), ``dev`` (random, quick), ``thorough`` (many examples). :func:`load_profile` chooses from the
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

from ._validation import check_bool, check_names, check_positive_int, check_real
from .models.activations import ACTIVATIONS

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
    "PROFILE_PREFIX",
    "profile_name",
]

PROFILES = ("ci", "dev", "thorough")
# Registered under a namespace so that importing gradtheory never redefines a profile of the
# user's own (Hypothesis' built-in "ci" is active on CI: re-registering it would change every
# project's example budget there).
PROFILE_PREFIX = "gradtheory-"

settings.register_profile(
    PROFILE_PREFIX + "ci",
    derandomize=True,
    max_examples=20,
    deadline=None,
    print_blob=True,
    database=None,
    # Model construction + complex-step oracles legitimately take ~10 ms per example.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(PROFILE_PREFIX + "dev", max_examples=30, deadline=None, print_blob=True)
settings.register_profile(PROFILE_PREFIX + "thorough", max_examples=500, deadline=None, print_blob=True)


def profile_name(name: str) -> str:
    """The registered Hypothesis name of a gradtheory profile: ``"ci"`` -> ``"gradtheory-ci"``."""
    if not isinstance(name, str):
        raise TypeError(f"profile must be a str, got {type(name).__name__} {name!r}")
    short = name[len(PROFILE_PREFIX) :] if name.startswith(PROFILE_PREFIX) else name
    if short not in PROFILES:
        raise ValueError(f"profile={name!r} is unknown; expected one of {list(PROFILES)}")
    return PROFILE_PREFIX + short


def load_profile(name: str | None = None) -> str:
    """Load a gradtheory Hypothesis profile by name, or from ``GRADTHEORY_PROFILE`` / ``CI``.

    Parameters
    ----------
    name : str, optional
        ``"ci"``, ``"dev"`` or ``"thorough"`` (or the registered ``"gradtheory-ci"``, ...).

    Returns
    -------
    str
        The short name of the loaded profile.

    Raises
    ------
    ValueError
        The name (or ``$GRADTHEORY_PROFILE``) is not a gradtheory profile.
    """
    if name is None:
        name = os.environ.get("GRADTHEORY_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    full = profile_name(name)
    settings.load_profile(full)
    return full[len(PROFILE_PREFIX) :]


def reals(bound: float, *, flush_below: float = 1e-6) -> st.SearchStrategy[float]:
    """Floats in [-bound, bound] with magnitudes below ``flush_below`` flushed to exactly 0.

    Tiny nonzero entries add no structure; multiplied through a few dozen operations they reach
    the subnormal range, where no relative-error statement (ours or an oracle's) can hold.
    Zero itself is kept (and is what shrinking aims for).
    """
    bound = check_real(bound, "bound", positive=True)
    flush_below = check_real(flush_below, "flush_below", minimum=0.0)
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
    n = check_positive_int(n, "n")
    if spectral_norm is not None and spectral_radius is not None:
        raise ValueError("give spectral_norm or spectral_radius, not both")
    spectral_norm = _positive_or_none(spectral_norm, "spectral_norm")
    spectral_radius = _positive_or_none(spectral_radius, "spectral_radius")
    structures = check_names(structures, "structures", _STRUCTURES)
    return _matrices(n, spectral_norm, spectral_radius, structures)


def _positive_or_none(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        return check_real(value, name, positive=True)
    except (TypeError, ValueError) as exc:  # one message for every bad value
        raise type(exc)(f"{name} must be a positive finite number, got {value!r}") from None


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
    return hnp.arrays(
        np.float64, (check_positive_int(n, "n"),), elements=reals(check_real(bound, "bound", positive=True))
    )


def sequences(
    *,
    steps: int | st.SearchStrategy[int] = st.integers(1, 6),
    input_size: int = 3,
    batch: int | None = None,
    scale: float = 1.0,
) -> st.SearchStrategy[np.ndarray]:
    """Input sequences of shape (T, input_size), or (T, batch, input_size), entries in [-scale, scale]."""
    steps_s = _int_or_strategy(steps, "steps")
    input_size = check_positive_int(input_size, "input_size")
    batch = None if batch is None else check_positive_int(batch, "batch")
    scale = check_real(scale, "scale", positive=True)
    elem = reals(scale)
    return steps_s.flatmap(
        lambda T: hnp.arrays(np.float64, (T, input_size) if batch is None else (T, batch, input_size), elements=elem)
    )


@st.composite
def parameters(draw: Any, model: Any, *, scale: float | None = None) -> dict[str, np.ndarray]:
    """A parameter dict for ``model``'s layout, entries uniform-like in [-scale, scale]
    (default: torch's 1/sqrt(hidden_size)); a cell with its own layout draws each layer's
    parameters with its meaningful structure (``cell.draw_params``: e.g. the LRU's ring
    |lambda| < 1, the selective SSM's range of Delta), ``scale`` bounding its weights."""
    scale = None if scale is None else check_real(scale, "scale", positive=True)
    draw_params = getattr(model.cell, "draw_params", None)
    if callable(draw_params):
        return model.per_layer(lambda n_in: draw_params(draw, n_in, model.hidden_size, scale))
    bound = 1.0 / np.sqrt(model.hidden_size) if scale is None else scale
    elem = reals(bound)
    return {k: draw(hnp.arrays(np.float64, s, elements=elem)) for k, s in model.param_shapes().items()}


def models(
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

    families = check_names(families, "families", tuple(REGISTRY))
    nonlinearities = check_names(nonlinearities, "nonlinearities", tuple(ACTIVATIONS))
    max_layers = check_positive_int(max_layers, "max_layers")
    for name, value in (("bidirectional", bidirectional), ("bias", bias), ("batch_first", batch_first)):
        if value is not None:
            check_bool(value, name)
    input_s, hidden_s = _int_or_strategy(input_size, "input_size"), _int_or_strategy(hidden_size, "hidden_size")
    scale = None if scale is None else check_real(scale, "scale", positive=True)
    return _models(families, nonlinearities, max_layers, bidirectional, bias, batch_first, input_s, hidden_s, scale)


def _int_or_strategy(value: Any, name: str) -> st.SearchStrategy[int]:
    """A positive int (as ``st.just``) or a strategy of ints, checked when the strategy is built."""
    if isinstance(value, st.SearchStrategy):
        return value
    return st.just(check_positive_int(value, name))


@st.composite
def _models(draw, families, nonlinearities, max_layers, bidirectional, bias, batch_first, input_s, hidden_s, scale):
    from .cells import REGISTRY

    spec = REGISTRY[draw(st.sampled_from(list(families)))]
    I = draw(input_s)
    H = draw(hidden_s)
    fixed = getattr(spec.cell, "layer_options", {})  # options the cell fixes (e.g. no reverse direction)
    kw = dict(
        num_layers=draw(st.integers(1, max_layers)),
        bidirectional=draw(st.booleans()) if bidirectional is None else bidirectional,
        bias=draw(st.booleans()) if bias is None else bias,
        batch_first=draw(st.booleans()) if batch_first is None else batch_first,
    )
    for option, value in fixed.items():
        if option in kw and kw[option] != value:
            if {"bidirectional": bidirectional, "bias": bias, "batch_first": batch_first}.get(option) is not None:
                raise ValueError(f"{option}={kw[option]!r} is not supported by cell {spec.name!r} (it fixes {value!r})")
            kw[option] = value
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
