"""pytest plugin (entry point ``pytest11``): ``--gradtheory-profile`` chooses the Hypothesis profile."""

from __future__ import annotations

from typing import Any

from .strategies import PROFILES, load_profile


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("gradtheory")
    group.addoption(
        "--gradtheory-profile",
        choices=PROFILES,
        default=None,
        help="Hypothesis profile: ci (deterministic), dev, thorough. Default: $GRADTHEORY_PROFILE, "
        "else 'ci' when $CI is set, else 'dev'.",
    )


def pytest_configure(config: Any) -> None:
    load_profile(config.getoption("--gradtheory-profile"))


def pytest_report_header(config: Any) -> str:
    from hypothesis import settings

    return f"gradtheory: hypothesis profile {settings._current_profile!r}"
