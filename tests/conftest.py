import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config):
    """gradtheory's own suite: default profile 'ci' under $CI, else 'dev' (the plugin loads a
    profile only when --gradtheory-profile or $GRADTHEORY_PROFILE asks for one)."""
    import os

    from gradtheory.strategies import load_profile

    if config.getoption("--gradtheory-profile") is None and not os.environ.get("GRADTHEORY_PROFILE"):
        load_profile()
