"""pytest plugin (entry point ``pytest11``): Hypothesis profile option and gradient-check helpers.

* ``--gradtheory-profile`` chooses the Hypothesis profile (ci, dev, thorough; registered as
  ``gradtheory-ci``, ... so that a user's own profiles are never touched);
* ``--gradtheory-seed`` the seed of the ``gradient_check`` fixture (default 0: deterministic);
* :func:`assert_gradients_match` (also ``gradtheory.assert_gradients_match``): in a user's test,
  ``assert_gradients_match(fn, inputs)`` fails the test with the checker's summary when the
  verdict is wrong **or inconclusive** (a check that could not judge is never a pass);
* fixture ``gradient_check``: the same helper with the session's seed, e.g.
  ``def test_my_cell(gradient_check): gradient_check(my_fn, my_inputs, time_axis=0)``.

Nothing heavy is imported at plugin load: torch is only imported by the checks themselves.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .check import GradientCheckError, GradientReport, assert_gradients_match
from .strategies import PROFILES, load_profile

__all__ = ["GradientCheckError", "assert_gradients_match", "gradient_check"]


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("gradtheory")
    group.addoption(
        "--gradtheory-profile",
        choices=PROFILES,
        default=None,
        help="load a gradtheory Hypothesis profile: ci (deterministic), dev, thorough "
        "(or set $GRADTHEORY_PROFILE); without either, Hypothesis settings are left alone.",
    )
    group.addoption(
        "--gradtheory-seed",
        type=int,
        default=0,
        help="seed of the random directions and cotangents used by the gradient_check fixture (default 0)",
    )


def pytest_configure(config: Any) -> None:
    # Only on request: installing gradtheory must not change the Hypothesis settings of other
    # projects' test suites. (gradtheory's own tests/conftest.py loads its default profile.)
    name = config.getoption("--gradtheory-profile")
    if name is not None or os.environ.get("GRADTHEORY_PROFILE"):
        try:
            load_profile(name)
        except ValueError as exc:  # a bad $GRADTHEORY_PROFILE: a usage error, not an INTERNALERROR
            import pytest

            source = "--gradtheory-profile" if name is not None else "$GRADTHEORY_PROFILE"
            raise pytest.UsageError(f"gradtheory: {source}: {exc}") from None


def pytest_report_header(config: Any) -> str:
    from hypothesis import settings

    return f"gradtheory: hypothesis profile {settings._current_profile!r}"


def _gradient_check(request: Any) -> Callable[..., GradientReport]:
    """assert_gradients_match with the seed of --gradtheory-seed: ``gradient_check(fn, inputs, **options)``."""
    seed = request.config.getoption("--gradtheory-seed")

    def check(fn: Any, inputs: Any = None, **options: Any) -> GradientReport:
        __tracebackhide__ = True
        options.setdefault("seed", seed)
        return assert_gradients_match(fn, inputs, **options)

    return check


try:  # the fixture needs pytest, which is always there when the plugin is loaded by pytest
    import pytest

    gradient_check = pytest.fixture(name="gradient_check")(_gradient_check)
except ImportError:  # pragma: no cover - imported outside pytest
    gradient_check = None  # type: ignore[assignment]
