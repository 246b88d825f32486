"""``gradtheory audit``: settle every claim by running its check; print a table, JSON or Markdown.

Exit status: 0 when every claim is settled (proved, verified, refuted, refined); 1 if a check
raised (``error``); 3 if none raised but a check established nothing (``unsettled``:
inconclusive); 2 for an unknown ``--only`` id.

``--json`` writes a JSON array with one object per claim, in registry order; see
:data:`JSON_SCHEMA` (also in the documentation's command-line page).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from . import _core

__all__ = ["JSON_SCHEMA", "add_arguments", "exit_status", "format_markdown", "format_table", "run"]

#: What ``gradtheory audit --json`` writes: an array of these objects (JSON Schema, draft 2020-12).
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "gradtheory audit --json",
    "type": "array",
    "items": {
        "type": "object",
        "required": ["id", "source", "statement", "precise", "refinement", "status", "basis", "evidence"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "the claim's stable id (gradtheory audit --only ID)"},
            "source": {"type": "string", "description": "where the claim was found"},
            "statement": {"type": "string", "description": "the claim quoted as written"},
            "precise": {"type": "string", "description": "the precise statement that is checked"},
            "refinement": {
                "type": ["string", "null"],
                "description": "the registered refinement (same conclusion, corrected hypothesis or scope), if any",
            },
            "status": {"enum": list(_core.STATUSES), "description": "computed by running the check"},
            "basis": {"type": "string", "description": "what the status rests on (derivation, exact witness, ...)"},
            "evidence": {
                "type": "object",
                "description": "what the check computed: counterexamples, measured values, derivation names; "
                "for status error, 'error' and 'traceback'. Finite numbers only (no NaN/Infinity).",
            },
        },
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument(
        "--json",
        action="store_true",
        help="emit a JSON list of entries (id, source, statement, precise, status, evidence)",
    )
    fmt.add_argument(
        "--markdown",
        action="store_true",
        help="emit Markdown (summary table and one section per claim)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="ID",
        default=None,
        help="run only this claim (repeatable)",
    )
    parser.add_argument(
        "--search",
        action="store_true",
        help="ignore the stored counterexamples and run every Hypothesis search from scratch",
    )


def _short(value: Any, digits: int = 8, max_items: int = 12) -> Any:
    """Evidence for human eyes: floats to ``digits`` significant digits, long lists elided."""
    if isinstance(value, dict):
        return {k: _short(v, digits, max_items) for k, v in value.items() if k != "traceback"}
    if isinstance(value, list):
        items = [_short(v, digits, max_items) for v in value[:max_items]]
        if len(value) > max_items:
            items.append(f"... ({len(value)} items)")
        return items
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    return value


def format_table(entries: list[dict], seconds: list[float]) -> str:
    w = max(len(e["id"]) for e in entries)
    lines = [f"{'claim':<{w}}  {'status':<9}  {'time':>6}  source", "-" * (w + 40)]
    for e, s in zip(entries, seconds):
        lines.append(f"{e['id']:<{w}}  {e['status']:<9}  {s:5.2f}s  {e['source']}")
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    lines.append("-" * (w + 40))
    lines.append(
        ", ".join(f"{n} {st}" for st, n in sorted(counts.items())) + f"; {len(entries)} claims, {sum(seconds):.1f}s"
    )
    for e in entries:
        if e["status"] in ("error", "unsettled"):
            lines.append(
                f"\n{e['id']}: {e['status']}\n{e['evidence'].get('traceback') or json.dumps(_short(e['evidence']))}"
            )
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _evidence_lines(evidence: dict, indent: str = "") -> list[str]:
    """One bullet per key; nested dicts as nested bullets; values as compact JSON."""
    lines = []
    for k, v in evidence.items():
        if isinstance(v, dict) and v:
            lines.append(f"{indent}- {k}:")
            lines += _evidence_lines(v, indent + "  ")
        else:
            lines.append(f"{indent}- {k}: `{json.dumps(v, separators=(', ', ': '))}`")
    return lines


def format_markdown(entries: list[dict]) -> str:
    out = [
        "# Claims audit",
        "",
        (
            "Generated by `gradtheory audit --markdown`. Every status is computed from the claim's check "
            "by one rule: **proved** (holds; SymPy derivation or exact witness, with a numeric spot check), "
            "**verified** (holds; Hypothesis property or floating-point witness against an independent "
            "oracle), **refined** (fails as written; its registered refinement, which keeps the claim's "
            "conclusion, is proved or verified), **refuted** (fails as written; no refinement keeps its "
            "conclusion)."
        ),
        "",
        "| claim | status | source |",
        "|---|---|---|",
    ]
    for e in entries:
        out.append(f"| [{e['id']}](#{e['id']}) | {e['status']} | {_cell(e['source'])} |")
    for e in entries:
        out += [
            "",
            f"## {e['id']}",
            "",
            f"**{e['status']}** &mdash; {e['source']}",
            "",
            f"*As written:* {e['statement']}",
            "",
            f"*Precisely:* {e['precise']}",
            "",
            *([f"*Refinement:* {e['refinement']}", ""] if e.get("refinement") else []),
            f"*Basis:* {e['basis']}",
            "",
            "*Evidence* (rounded; `gradtheory audit --json` has every digit):",
            "",
        ]
        out += _evidence_lines(_short(e["evidence"]))
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    from . import run_audit

    settings = _core.AuditSettings(use_stored_examples=not getattr(args, "search", False))
    t0 = time.perf_counter()
    try:
        results = run_audit(args.only, settings)
    except ValueError as exc:  # an unknown --only id: a usage error, not a failed check
        print(f"gradtheory audit: error: {exc}", file=sys.stderr)
        return 2
    entries = [r.to_dict() for r in results]
    if args.json:
        json.dump(entries, sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    elif args.markdown:
        sys.stdout.write(format_markdown(entries))
    else:
        print(format_table(entries, [r.seconds for r in results]))
        print(f"wall time {time.perf_counter() - t0:.1f}s")
    return exit_status([r.status for r in results])


def exit_status(statuses: list[str]) -> int:
    """0 all settled; 1 a check raised (``error``); 3 otherwise unsettled (inconclusive)."""
    if "error" in statuses:
        return 1
    return 0 if all(s in _core.SETTLED for s in statuses) else 3
