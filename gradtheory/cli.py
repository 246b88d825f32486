"""Command line: ``gradtheory {derive, audit, plot, check}`` (also ``python -m gradtheory``).

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

__all__ = ["main"]

_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "derive": ("gradtheory.symbolic._cli", "derive the BPTT theory with SymPy and write proofs/ (LaTeX, PDF)"),
    "audit": ("gradtheory.claims._cli", "settle every claim in the registry by running its check"),
    "plot": ("gradtheory._plot", "plot gradient flow against the theoretical envelope (PNG)"),
    "check": ("gradtheory._check_cli", "check gradients and stability of a user's module MODULE:FACTORY"),
}


def _available() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (mod, help_) in _SUBCOMMANDS.items():
        if importlib.util.find_spec(mod.rsplit(".", 1)[0]) is not None:
            try:
                if importlib.util.find_spec(mod) is not None:
                    found[name] = (mod, help_)
            except ModuleNotFoundError:
                pass
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gradtheory", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = _available()
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (mod, help_) in commands.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == chosen:
            importlib.import_module(mod).add_arguments(p)
            p.set_defaults(_module=mod)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
