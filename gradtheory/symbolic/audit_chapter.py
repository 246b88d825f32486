r"""The claims audit as a chapter of the proofs: ``proofs/audit.tex``, generated from the registry.

For every claim: the quotes as written with their sources (title, author, date, section), the
precise statement, the refinement if one is registered, the status the audit computed and how, the
derivations it substitutes into (cross-referenced) and its evidence: counterexample matrices,
witnesses, symbolic results. The text is deterministic (no timings, no example counts, numbers to
six significant digits; the searches are derandomized and try their stored examples first), so
``gradtheory derive --check`` compares it byte for byte like the derivations.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["CHAPTER", "latex_escape", "render_chapter"]

#: The file name of the chapter under ``proofs/`` (``\input`` after the derivations).
CHAPTER = "audit"

# Evidence entries that vary with the search's bookkeeping, not with the mathematics: left out.
_SKIP = {"examples", "searched_examples", "found_by", "precise_examples", "refinement_examples", "traceback"}
_MAX_ROWS, _MAX_COLS, _MAX_ITEMS, _MAX_DEPTH = 8, 8, 8, 3

_UNICODE = {
    "\u2019": "'",
    "\u2018": "`",
    "\u201c": "``",
    "\u201d": "''",
    "\u2212": "$-$",
    "\u2202": r"$\partial$",
    "\u03bb": r"$\lambda$",
    "\u03b3": r"$\gamma$",
    "\u00a7": r"\S{}",
    "\u2026": r"\dots{}",
    "\u00d7": r"$\times$",
    # the mis-decoded apostrophe of seed 003 (UTF-8 read as cp1252) is printed as the apostrophe it encodes
    "\u00e2\u20ac\u2122": "'",
}
_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "^": r"\^{}",
    "~": r"\~{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def latex_escape(text: str) -> str:
    """Plain text (quotes may hold Markdown, LaTeX and Unicode) as LaTeX that prints it as written."""
    for k in _UNICODE:
        text = text.replace(k, "\x00" + str(list(_UNICODE).index(k)) + "\x01")
    out = "".join(_SPECIAL.get(ch, ch) for ch in text)
    for i, v in enumerate(_UNICODE.values()):
        out = out.replace(f"\x00{i}\x01", v)
    return out.replace("\n", " ")


def _number(v: float) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    s = f"{v:.6g}"
    if "e" in s:
        m, e = s.split("e")
        return f"{m}\\cdot 10^{{{int(e)}}}"
    return s


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _matrix(rows: list) -> str:
    R, C = len(rows), len(rows[0])
    if R > _MAX_ROWS or C > _MAX_COLS:
        flat = [x for r in rows for x in r]
        if all(x == 0 for x in flat):
            return f"${R}\\times{C}$ zeros"
        return f"${R}\\times{C}$ array, entries in $[{_number(min(flat))}, {_number(max(flat))}]$"
    body = r" \\ ".join(" & ".join(_number(x) for x in r) for r in rows)
    return r"$\begin{pmatrix}" + body + r"\end{pmatrix}$"


def _value(v: Any, depth: int) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if _is_number(v):
        return f"${_number(v)}$"
    if isinstance(v, str):
        return latex_escape(v)
    if isinstance(v, list):
        if (
            v
            and all(isinstance(r, list) and r and all(_is_number(x) for x in r) for r in v)
            and len({len(r) for r in v}) == 1
        ):
            return _matrix(v)
        if all(_is_number(x) for x in v):
            shown = ", ".join(f"${_number(x)}$" for x in v[:_MAX_ITEMS])  # text-mode commas: lines may break
            more = f", \\dots\\ ({len(v)} entries)" if len(v) > _MAX_ITEMS else ""
            return f"({shown}{more})"
        return "; ".join(_value(x, depth + 1) for x in v[:_MAX_ITEMS]) + (" \\dots" if len(v) > _MAX_ITEMS else "")
    if isinstance(v, dict):
        return _items(v, depth + 1)
    return latex_escape(str(v))


def _items(evidence: dict, depth: int = 0) -> str:
    keys = [k for k in evidence if k not in _SKIP]
    if not keys:
        return "none"
    if depth >= _MAX_DEPTH:
        return latex_escape(", ".join(keys)) + " (see \\texttt{gradtheory audit --json})"
    lines = [r"\begin{itemize}"]
    for k in keys:
        lines.append(rf"\item \textit{{{latex_escape(k)}}}: {_value(evidence[k], depth)}")
    lines.append(r"\end{itemize}")
    return "\n".join(lines)


def _derivations(names: tuple[str, ...]) -> str:
    from . import NAMES, derive

    refs = []
    for name in names:
        if name in NAMES:
            refs.append(rf"Section~\ref{{sec:{name.replace('_', '-')}}} ({latex_escape(derive(name).title)})")
    return "; ".join(refs)


def _summary(entries: list[dict], claims: list) -> list[str]:
    from ..claims._sources import DOCUMENTS, SEED_KEYS, cite

    statuses = ("proved", "verified", "refined", "refuted")
    out = [
        r"\begin{center}\small",
        r"\begin{tabular}{p{0.42\textwidth}rrrrrr}",
        r"document & quotes & claims & " + " & ".join(statuses) + r" \\ \hline",
    ]
    by_id = {e["id"]: e for e in entries}
    for key in (*SEED_KEYS, *(k for k in DOCUMENTS if k not in SEED_KEYS)):
        quoted = [c for c in claims if any(q.doc == key for q in c.quotes)]
        if not quoted:
            continue
        n_quotes = sum(1 for c in claims for q in c.quotes if q.doc == key)
        counts = [sum(1 for c in quoted if by_id[c.id]["status"] == s) for s in statuses]
        out.append(f"{latex_escape(cite(key))} & {n_quotes} & {len(quoted)} & " + " & ".join(map(str, counts)) + r" \\")
    total = [sum(1 for e in entries if e["status"] == s) for s in statuses]
    n_quotes = sum(len(c.quotes) for c in claims)
    out.append(r"\hline all & " + f"{n_quotes} & {len(entries)} & " + " & ".join(map(str, total)) + r" \\")
    out += [r"\end{tabular}", r"\end{center}"]
    return out


_INTRO = r"""
This chapter is generated by \texttt{gradtheory derive} from the claims registry
(\texttt{gradtheory.claims}), by running the same checks as \texttt{gradtheory audit}. Every
checkable statement of the five seed documents (and three from the literature and torch's
documentation) is quoted as written, stated precisely, and settled by its check. The check reports
outcomes; one rule turns them into the status:
\begin{itemize}
\item \textbf{proved}: the statement holds, established by a SymPy derivation (the derivations of the
  previous sections, into which the check substitutes) or by an exact witness (exact arithmetic,
  typically a fixed point whose Jacobian is known in closed form), with a numeric spot check;
\item \textbf{verified}: it holds, established by a property that held on every example of a
  deterministic Hypothesis run against an independent oracle (complex step, exact rationals, torch),
  or by a floating-point witness;
\item \textbf{refined}: it fails as written (a counterexample re-verified by an independent oracle, or
  its negation derived), and the claim registers a refinement, a precise statement that keeps the
  claim's conclusion and changes only its hypothesis, constant or scope, which is itself proved or
  verified;
\item \textbf{refuted}: it fails as written and no refinement keeps its conclusion; the precise form
  records what was established instead.
\end{itemize}
Evidence is shown rounded to six significant digits; \texttt{gradtheory audit --json} gives every
digit and the search statistics, which are left out here. Quotes are printed as the sources write
them, markup included.
"""


def render_chapter(results: list | None = None) -> str:
    """The chapter's LaTeX for the given audit results (default: :func:`gradtheory.claims.audit_results`)."""
    from ..claims import audit_results

    results = audit_results() if results is None else results
    entries = [r.to_dict() for r in results]
    claims = [r.claim for r in results]
    lines = [
        r"% Generated by `gradtheory derive` from gradtheory/claims/ (the audit). Do not edit.",
        r"\section{The claims audit}\label{sec:audit}",
        _INTRO.strip(),
        "",
    ]
    lines += _summary(entries, claims)
    for r, e in zip(results, entries):
        c = r.claim
        lines += [
            "",
            rf"\subsection*{{{latex_escape(c.id)}}}",
            rf"\addcontentsline{{toc}}{{subsection}}{{{latex_escape(c.id)}}}",
            rf"\textbf{{{e['status']}}} --- {latex_escape(e['basis'])}.",
            "",
        ]
        for q in c.quotes:
            from ..claims._sources import cite

            lines += [
                r"\begin{quote}",
                latex_escape(q.text),
                rf"\hfill\emph{{{latex_escape(cite(q.doc, q.section))}}}",
                r"\end{quote}",
            ]
        lines += [rf"\textit{{Precisely.}} {latex_escape(c.precise)}", ""]
        if c.refinement:
            lines += [rf"\textit{{Refinement.}} {latex_escape(c.refinement)}", ""]
        if c.proofs:
            lines += [rf"\textit{{Derivations.}} {_derivations(c.proofs)}.", ""]
        lines += [r"\textit{Evidence.}", _items(e["evidence"])]
    return "\n".join(lines) + "\n"
