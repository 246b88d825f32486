"""Pages generated at documentation build time from the code itself (imported by conf.py).

Everything under ``docs/_generated/`` is rewritten on every build and never committed:

* ``derivations/NN_<name>.md``: each SymPy derivation of :mod:`gradtheory.symbolic` rendered for
  MathJax, from the same :class:`~gradtheory.symbolic.Derivation` objects (and the same
  ``Step.to_latex``) that ``gradtheory derive`` writes to ``proofs/``;
* ``audit.md``: the claims registry with the statuses computed by running the audit;
* ``cli_help.md``: the ``--help`` text of every command, and the ``audit --json`` schema;
* ``gradient_flow.png``, ``phase_diagram.png``: drawn by ``gradtheory plot``'s functions;
* ``api_summary.rst``: the names of ``gradtheory.__all__`` as an autosummary table.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "_generated"

# ---------------------------------------------------------------------------------------------
# LaTeX text (outside math) to MyST Markdown


def _label(latex_label: str) -> str:
    """``sec:rnn-bptt`` -> ``sec-rnn-bptt`` (Sphinx labels are safest without colons)."""
    return latex_label.replace(":", "-")


def _text_to_md(text: str) -> str:
    """The prose of a derivation (LaTeX text mode with inline ``$...$``) as MyST Markdown."""
    text = re.sub(r"\\texorpdfstring\{((?:[^{}]|\{[^{}]*\})*)\}\{(?:[^{}]|\{[^{}]*\})*\}", r"\1", text)
    parts = re.split(r"(\$[^$]+\$)", text.strip())
    out = []
    for k, part in enumerate(parts):
        if k % 2 == 1:  # inline math: MathJax reads it as it is
            out.append(part)
            continue
        p = part
        p = re.sub(r"\\texttt\{((?:[^{}]|\{[^{}]*\})*)\}", lambda m: "`" + m.group(1).replace("\\_", "_") + "`", p)
        p = re.sub(r"\\emph\{([^{}]*)\}", r"*\1*", p)
        p = re.sub(r"\\textbf\{([^{}]*)\}", r"**\1**", p)
        p = re.sub(r"Section~\\ref\{([^{}]*)\}", lambda m: "{ref}`" + _label(m.group(1)) + "`", p)
        p = re.sub(r"\\ref\{([^{}]*)\}", lambda m: "{ref}`" + _label(m.group(1)) + "`", p)
        p = re.sub(r"\\eqref\{eq:([^{}]*)\}", lambda m: "{eq}`" + m.group(1) + "`", p)
        p = p.replace("\\ldots", "…").replace("---", "—").replace("--", "–").replace("~", " ")
        p = p.replace("\\_", "_").replace("\\&", "&").replace("\\%", "%").replace("\\ ", " ")
        p = p.replace("``", "“").replace("''", "”")
        if re.search(r"\\[a-zA-Z]", p):
            raise ValueError(f"unconverted LaTeX command in derivation text: {p!r}")
        out.append(p)
    return "".join(out)


def _display_math(latex: str) -> str:
    """``Step.to_latex()`` for Sphinx: its outer ``split`` (added for long lines) is dropped,
    because Sphinx wraps every display containing a line break in ``split`` itself."""
    inner = latex.strip()
    if inner.startswith(r"\begin{split}") and inner.endswith(r"\end{split}"):
        inner = inner[len(r"\begin{split}") : -len(r"\end{split}")].strip()
    if "\n\n" in inner:  # Sphinx would read a blank line as the start of another equation
        raise ValueError(f"blank line in a displayed step: {latex!r}")
    return inner


def _derivation_page(d) -> str:
    slug = d.name.replace("_", "-")
    lines = [
        f"(sec-{slug})=",
        f"# {_text_to_md(d.title)}",
        "",
        f"*Generated from `gradtheory/symbolic/{d.name}.py`, the source of `proofs/{d.name}.tex`.*",
        "",
        _text_to_md(d.intro),
        "",
    ]
    for k, step in enumerate(d.steps, start=1):
        lines += [
            f"**Step {k}.** {_text_to_md(step.justification)}",
            "",
            "```{math}",
            f":label: {slug}-{k}",
            "",
            _display_math(step.to_latex()),
            "```",
            "",
        ]
    if d.conclusion:
        lines += [_text_to_md(d.conclusion), ""]
    return "\n".join(lines)


def derivations() -> list[str]:
    from gradtheory.symbolic import all_derivations

    folder = OUT / "derivations"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    # numbered so that the guide's globbed toctree keeps the document order of gradtheory.symbolic
    for k, (name, d) in enumerate(all_derivations().items(), start=1):
        names.append(f"{k:02d}_{name}.md")
        _write(folder / names[-1], _derivation_page(d))
    for stale in {p.name for p in folder.glob("*.md")} - set(names):
        (folder / stale).unlink()
    return names


# ---------------------------------------------------------------------------------------------
# The claims audit


def _source(text: str) -> str:
    """Seed file names (``003_<hash>.txt``) as 'seed document 003'; other sources as written."""
    return re.sub(r"\b(\d{3})_[0-9a-f]{16}\.txt\b", r"seed document \1", text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def audit() -> float:
    """The registry with computed statuses (running every check: about 10 s)."""
    from gradtheory import run_audit

    t0 = time.perf_counter()
    results = run_audit()
    seconds = time.perf_counter() - t0
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines = [
        f"The audit was run while this page was built: {len(results)} claims, "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f" ({seconds:.1f} s).",
        "",
        "| claim | status | source | as written |",
        "|---|---|---|---|",
    ]
    for r in results:
        c = r.claim
        lines.append(
            f"| {{ref}}`{c.id} <claim-{c.id}>` | **{r.status}** | {_cell(_source(c.source))} | {_cell(c.statement)} |"
        )
    lines.append("")
    for r in results:
        c = r.claim
        lines += [
            f"(claim-{c.id})=",
            f"### {c.id}",
            "",
            f"**{r.status}**, from {_source(c.source)}"
            + (
                f"; derivations: {', '.join('{ref}`sec-' + p.replace('_', '-') + '`' for p in c.proofs)}"
                if c.proofs
                else ""
            ),
            "",
            f"*As written:* {c.statement}",
            "",
            f"*Precisely:* {c.precise}",
            "",
        ]
    _write(OUT / "audit.md", "\n".join(lines))
    return seconds


# ---------------------------------------------------------------------------------------------
# Command-line help and the JSON schema


def cli_help() -> None:
    from gradtheory import cli
    from gradtheory.claims._cli import JSON_SCHEMA

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width; fix it for the page
    blocks = []
    for argv in ([], *[[name] for name in cli.SUBCOMMANDS]):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
            cli.main([*argv, "--help"])
        title = " ".join(["gradtheory", *argv, "--help"])
        blocks += [f"### `{title}`", "", "```text", buf.getvalue().rstrip(), "```", ""]
    _write(OUT / "cli_help.md", "\n".join(blocks))
    schema = ["```json", json.dumps(JSON_SCHEMA, indent=2), "```", ""]
    _write(OUT / "audit_schema.md", "\n".join(schema))
    codes = ["| exit status | meaning |", "|---|---|"] + [f"| {c} | {m} |" for c, m in cli.EXIT_CODES.items()]
    _write(OUT / "exit_codes.md", "\n".join(codes) + "\n")


# ---------------------------------------------------------------------------------------------
# Figures


def plots(steps: int = 1000, hidden: int = 32, seed: int = 0) -> None:
    """The two figures of ``gradtheory plot --steps 1000`` (about 10 s)."""
    from gradtheory import _plot

    OUT.mkdir(parents=True, exist_ok=True)
    _plot.plot_gradient_flow(OUT / "gradient_flow.png", steps, hidden, seed)
    _plot.plot_phase_diagram(OUT / "phase_diagram.png", steps, hidden, seed)


# ---------------------------------------------------------------------------------------------
# API summary


def api_summary() -> None:
    """An autosummary table of ``gradtheory.__all__`` (so the reference follows the code)."""
    import gradtheory

    # data (ACTIVATIONS, __version__) has no docstring of its own for a summary: listed by automodule only
    names = [n for n in gradtheory.__all__ if callable(getattr(gradtheory, n))]
    lines = [".. currentmodule:: gradtheory", "", ".. autosummary::", "   :nosignatures:", ""] + [
        f"   {n}" for n in names
    ]
    _write(OUT / "api_summary.rst", "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    """Write only when the text changed (Sphinx then rebuilds only what changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def generate_all() -> dict[str, float]:
    """Generate every page and figure; returns the seconds each part took."""
    timings = {}
    for name, fn in (
        ("derivations", derivations),
        ("audit", audit),
        ("cli", cli_help),
        ("api", api_summary),
        ("plots", plots),
    ):
        t0 = time.perf_counter()
        fn()
        timings[name] = time.perf_counter() - t0
    return timings
