"""Sphinx configuration. Build: python -m sphinx -W --keep-going -b html docs docs/_build/html

Pages under _generated/ (derivations, audit table, CLI help, figures) are produced from the code
when the build starts; see _generate.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # document the gradtheory of this checkout

import gradtheory

project = "gradtheory"
author = "the gradtheory authors"
copyright = "the gradtheory authors"
version = release = gradtheory.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    # MathJax 3 copied into the site (_static/mathjax): the pages render offline and from file://
    "sphinx-mathjax-offline",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# _generated/*.md and *.rst are included into other pages, not pages of their own
exclude_patterns = ["_build", "README.md", "_generated/*.md", "_generated/*.rst"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_dmath_double_inline = True
math_number_all = False

napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True}
autosummary_generate = False

html_theme = "furo"
html_title = f"gradtheory {release}"
html_static_path: list[str] = []


# Docstrings write absolute values and norms in plain text (``|a - D|``, ``||W||_2``), which reST
# would read as substitution references. Outside code spans and math blocks they are quoted as
# literals before autodoc parses them.
_BARS = re.compile(r"(?<![\w`|])(\|\|?)([^|`\n]+?)\1(_\w+)?(?![\w`|])")
_CODE = re.compile(r"(``.*?``|`[^`]*`)")


def _quote_bars(line: str) -> str:
    parts = _CODE.split(line)
    return "".join(p if k % 2 else _BARS.sub(lambda m: f"``{m.group(0)}``", p) for k, p in enumerate(parts))


def _quote_bars_in_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    math_indent = None
    for k, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if math_indent is not None and (not line.strip() or indent > math_indent):
            continue
        math_indent = None
        if re.match(r"\s*\.\. math::", line):
            math_indent = indent
            continue
        lines[k] = _quote_bars(line)


def _generate(app) -> None:
    import _generate

    timings = _generate.generate_all()
    print("generated pages: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


def setup(app):
    app.connect("builder-inited", _generate)
    app.connect("autodoc-process-docstring", _quote_bars_in_docstring)
