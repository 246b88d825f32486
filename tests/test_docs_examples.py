"""The documentation's Python examples (docs/**/*.md) run as written, like the README's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts and "_generated" not in p.parts)


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)


def test_the_guides_have_python_examples():
    assert sum(len(_python_blocks(p)) for p in PAGES) >= 4


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_doc_python_examples_run_and_their_tests_pass(page):
    for block in _python_blocks(page):
        namespace: dict = {"__name__": "docs_example"}
        exec(compile(block, str(page), "exec"), namespace)  # noqa: S102 (running the examples is the test)
        for name, value in list(namespace.items()):
            if name.startswith("test_") and callable(value):
                value()
