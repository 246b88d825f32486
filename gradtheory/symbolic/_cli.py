"""``gradtheory derive``: write the derivations as LaTeX, check a directory for drift, build the PDF.

Exit status: 0 written (or up to date); 1 ``--check`` found a difference, or LaTeX failed on the
document; 2 ``--pdf`` without ``latexmk``/``pdflatex`` on the PATH, or ``--out`` not writable.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", metavar="DIR", default="proofs", help="output directory (default: ./proofs in the current directory)"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if DIR differs from what the code derives now"
    )
    parser.add_argument("--pdf", action="store_true", help="also build DIR/gradtheory.pdf with latexmk + pdflatex")


def run(args: argparse.Namespace) -> int:
    from .._validation import output_directory
    from . import _document

    out = Path(args.out)
    if not args.check:
        try:
            output_directory(out, "--out")
        except ValueError as exc:
            print(f"gradtheory derive: error: {exc}", file=sys.stderr)
            return 2
    start = time.perf_counter()
    files = _document.render()
    elapsed = time.perf_counter() - start
    if args.check:
        diffs = _document.differences(out, files)
        if diffs:
            for name, diff in diffs.items():
                if not (out / name).exists():
                    print(f"{name}: missing from {out}", file=sys.stderr)
                    continue
                lines = diff.splitlines()
                print(f"{name}: differs from the derivation ({len(lines)} diff lines)", file=sys.stderr)
                print("\n".join(lines[:30]), file=sys.stderr)
            print(f"{out} is out of date: run `gradtheory derive` and commit the result", file=sys.stderr)
            return 1
        print(f"{out}: {len(files)} files up to date (derived in {elapsed:.1f} s)")
        if not args.pdf:
            return 0
    else:
        try:
            _document.write(out, files)
        except OSError as exc:  # e.g. the disk filled up or a file in DIR is read-only
            print(f"gradtheory derive: error: cannot write to --out {str(out)!r}: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {len(files)} files to {out} (derived in {elapsed:.1f} s)")
    if args.pdf:
        try:
            pdf = _document.build_pdf(out)
        except FileNotFoundError as exc:  # no latexmk/pdflatex: the environment, not the document
            print(f"gradtheory derive: error: PDF build needs latexmk and pdflatex: {exc}", file=sys.stderr)
            return 2
        except RuntimeError as exc:
            print(f"PDF build failed: {exc}", file=sys.stderr)
            return 1
        print(f"built {pdf}")
    return 0
