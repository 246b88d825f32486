"""Command line: ``gradtheory {derive, audit, plot, check}`` (also ``python -m gradtheory``).

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs. Help texts are plain
text (no markup), each subcommand's help ends with examples, and every subcommand follows the
exit-status convention of :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["EXIT_CODES", "SUBCOMMANDS", "main"]

#: The exit status of every subcommand: code -> meaning (shown by ``--help`` and in the docs).
EXIT_CODES: dict[int, str] = {
    0: "ok: everything checked passed",
    1: "a check found a failure (wrong gradients, flow above its envelope, a claim check that "
    "raised, proofs out of date)",
    2: "usage error (bad arguments, a target that cannot be loaded, a missing optional dependency)",
    3: "inconclusive: something could not be judged (a claim left unsettled, an input whose "
    "derivative could not be estimated)",
    4: "the user's code raised (gradtheory check: the factory, fn or backward raised)",
}


@dataclass(frozen=True)
class Subcommand:
    """One subcommand: the module implementing it, a one-line summary and examples for ``--help``."""

    module: str
    summary: str
    examples: tuple[str, ...]


SUBCOMMANDS: dict[str, Subcommand] = {
    "check": Subcommand(
        "gradtheory._check_cli",
        "check the gradients (and gradient-flow stability) of your own code, loaded as MODULE:FACTORY",
        (
            "gradtheory check gradtheory._check_examples:torch_lstm_factory",
            "gradtheory check tests/my_cells.py:make_cell --fail-on-regime exploding",
        ),
    ),
    "audit": Subcommand(
        "gradtheory.claims._cli",
        "settle every claim about RNN gradients in the registry by running its check",
        (
            "gradtheory audit",
            "gradtheory audit --only sigmoid-bound-is-one --json > audit.json",
        ),
    ),
    "derive": Subcommand(
        "gradtheory.symbolic._cli",
        "derive the BPTT theory with SymPy and write it as LaTeX (and optionally a PDF)",
        (
            "gradtheory derive                 # writes ./proofs",
            "gradtheory derive --out /tmp/proofs --pdf",
            "gradtheory derive --check --out proofs",
        ),
    ),
    "plot": Subcommand(
        "gradtheory._plot",
        "plot gradient flow against the theoretical envelope, and a phase diagram (PNG; needs gradtheory[plot])",
        ("gradtheory plot --out plots --steps 1000",),
    ),
}


_WIDTH = 79


def _exit_codes_text() -> str:
    lines = [
        textwrap.fill(meaning, _WIDTH, initial_indent=f"  {code}  ", subsequent_indent="     ")
        for code, meaning in EXIT_CODES.items()
    ]
    return "exit status:\n" + "\n".join(lines)


def _epilog(sub: Subcommand) -> str:
    return "examples:\n" + "\n".join(f"  {e}" for e in sub.examples) + "\n\n" + _exit_codes_text()


def _available() -> dict[str, Subcommand]:
    """The subcommands whose module can be found (a partial install may lack one)."""
    found = {}
    for name, sub in SUBCOMMANDS.items():
        try:
            if importlib.util.find_spec(sub.module) is not None:
                found[name] = sub
        except ModuleNotFoundError:
            pass
    return found


def _parser(commands: dict[str, Subcommand], chosen: str | None) -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="gradtheory",
        description=textwrap.fill(
            "gradtheory: an executable theory of vanishing and exploding gradients in recurrent networks. "
            "Check your own cell's gradients, audit claims about RNN gradients, derive the theory "
            "symbolically, plot gradient flow.",
            _WIDTH,
        ),
        epilog="run 'gradtheory COMMAND --help' for a command's options and examples\n\n" + _exit_codes_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gradtheory {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, spec in commands.items():
        p = sub.add_parser(
            name,
            help=spec.summary,
            description=spec.summary,
            epilog=_epilog(spec),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == chosen:
            importlib.import_module(spec.module).add_arguments(p)
            p.set_defaults(_module=spec.module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gradtheory`` command line.

    Parameters
    ----------
    argv
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, one of :data:`EXIT_CODES` (argparse itself exits with 2 on a usage error,
        and with 0 after ``--help`` or ``--version``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _available()
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = _parser(commands, chosen)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
