"""The README's Python examples run as written (a copy-paste example that fails is a defect)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(_python_blocks()) >= 2


def test_readme_python_examples_run_and_their_tests_pass():
    for block in _python_blocks():
        namespace: dict = {"__name__": "readme_example"}
        exec(compile(block, str(README), "exec"), namespace)
        for name, value in list(namespace.items()):
            if name.startswith("test_") and callable(value):
                value()
