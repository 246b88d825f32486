"""``gradtheory check MODULE:FACTORY``: check a user's gradients and stability from the command line.

``MODULE`` is an importable module name (``mypkg.cells``) or a path to a ``.py`` file
(``tests/my_cell.py``); ``FACTORY`` names a callable in it, called without arguments. It returns
one of:

* ``(fn, inputs)``: a function of float64 tensors and the inputs (those with ``requires_grad``
  are checked), exactly as for ``torch.autograd.gradcheck``;
* ``(module, x)``: a ``torch.nn.Module`` (e.g. ``torch.nn.LSTM``) or a gradtheory model and its
  input; every parameter and ``x`` are checked, and for a single-layer unidirectional recurrent
  model the stability check runs on the first sequence of ``x``;
* a dict with keys ``fn``, ``inputs`` and optionally ``grad_fn`` (numpy functions), ``names``,
  ``time_axis``, ``checked``, ``state``, ``forward_args`` (as for ``check_gradients``) and
  ``stability`` (a ``(model, x)`` pair for the stability check);
* a :class:`gradtheory.check.CheckTarget`.

Exit status: 0 when the gradients are correct (and the measured gradient flow stays under its
envelope), 1 when a check fails (or the regime is one listed with ``--fail-on-regime``), 2 for a
usage error (``MODULE:FACTORY`` cannot be found, the factory returns something else, a bad
argument), 3 when the verdict is inconclusive (a non-deterministic or non-smooth function: never
a pass), 4 when the user's code raised (the factory, the module while loading, ``fn`` or its
backward); its traceback is printed with gradtheory's own frames left out. The report goes to
stdout (``--json``: as JSON); a plain-text progress bar goes to stderr (``--quiet`` silences it).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
from typing import Any

from ._validation import int_at_least

__all__ = ["EXIT_CORRECT", "EXIT_INCONCLUSIVE", "EXIT_USAGE", "EXIT_USER_CODE", "EXIT_WRONG", "add_arguments", "run"]

EXIT_CORRECT, EXIT_WRONG, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_USER_CODE = 0, 1, 2, 3, 4


class _UserCodeRaised(Exception):
    """The user's module or factory raised while being loaded (``__cause__`` is their exception)."""


def _print_user_traceback(exc: BaseException, during: str) -> None:
    """The user's exception with gradtheory's frames (and importlib's) left out: their code, their error."""
    import gradtheory

    ours = os.path.dirname(os.path.abspath(gradtheory.__file__))
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not os.path.abspath(f.filename).startswith(ours + os.sep) and "importlib" not in f.filename
    ]
    print(f"gradtheory check: your code raised {type(exc).__name__} while running {during}:", file=sys.stderr)
    print("Traceback (most recent call last):", file=sys.stderr)
    print("".join(traceback.format_list(frames)), end="", file=sys.stderr)
    print("".join(traceback.format_exception_only(type(exc), exc)), end="", file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="MODULE:FACTORY",
        help="module (or path/to/file.py) and the name of a factory returning (fn, inputs), "
        "(module, x), a dict or a CheckTarget",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random directions (default 0)")
    parser.add_argument("--step", type=float, default=2e-2, help="Richardson base step, relative (default 0.02)")
    parser.add_argument("--levels", type=int, default=4, help="Richardson levels (default 4)")
    parser.add_argument("--directions", type=int, default=1, help="random directions per input (default 1)")
    parser.add_argument(
        "--time-axis", type=int, default=None, help="time axis of the output, for localising a failure in time"
    )
    parser.add_argument("--no-stability", action="store_true", help="skip the stability check")
    parser.add_argument(
        "--fail-on-regime",
        action="append",
        choices=("vanishing", "exploding", "neutral"),
        default=[],
        help="also exit 1 when the measured regime is this one (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--json", action="store_true", help="print the report(s) as JSON on stdout")
    parser.add_argument(
        "--no-pin-rng",
        action="store_true",
        help="do not pin the torch/numpy global RNGs around each evaluation (a random forward is "
        "then reported inconclusive)",
    )
    parser.add_argument(
        "--threads",
        type=int_at_least(1),
        default=1,
        help="torch threads (default 1: small recurrent kernels are fastest on one thread, "
        "and a thread pool on busy cores is many times slower)",
    )


class _Progress:
    """A plain-text progress bar on stderr: redrawn in place on a terminal, one line per step otherwise."""

    def __init__(self, label: str, enabled: bool, width: int = 30) -> None:
        self.label, self.enabled, self.width = label, enabled, width
        self.tty = enabled and sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, done: int, total: int, name: str) -> None:
        if not self.enabled:
            return
        filled = int(self.width * done / max(total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        text = f"{self.label} [{bar}] {done}/{total} {name} ({time.perf_counter() - self.t0:.1f} s)"
        if self.tty:
            sys.stderr.write("\r" + text.ljust(100))
            if done == total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _load(spec: str) -> Any:
    """The factory's result. ValueError: usage (not found); _UserCodeRaised: the user's code raised."""
    if ":" not in spec:
        raise ValueError(f"target must be MODULE:FACTORY, got {spec!r}")
    mod_name, _, attr = spec.rpartition(":")
    if mod_name.endswith(".py") or os.sep in mod_name:
        path = os.path.abspath(mod_name)
        if not os.path.exists(path):
            raise ValueError(f"target file {mod_name!r} does not exist")
        sys.path.insert(0, os.path.dirname(path))
        loader_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
        module = importlib.util.module_from_spec(loader_spec)
        try:
            loader_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # SystemExit(0) in user code is not a pass
            raise _UserCodeRaised(f"the module {mod_name}") from exc
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            found = importlib.util.find_spec(mod_name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise ModuleNotFoundError(f"No module named {mod_name!r}")
        try:
            module = importlib.import_module(mod_name)
        except (Exception, SystemExit) as exc:
            raise _UserCodeRaised(f"the module {mod_name}") from exc
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {mod_name!r} has no attribute {attr!r}") from None
    if not callable(factory):
        return factory
    try:
        return factory()
    except (Exception, SystemExit) as exc:  # SystemExit(0) in the factory: nothing was checked
        raise _UserCodeRaised(f"the factory {spec}") from exc


def _interpret(obj: Any) -> tuple[dict[str, Any], tuple[Any, Any] | None]:
    """-> (keyword arguments of check_gradients, (model, x) for check_stability or None)."""
    from .check import CheckTarget
    from .models.compose import RecurrentModel

    torch = sys.modules.get("torch")
    is_module = lambda m: isinstance(m, RecurrentModel) or (torch is not None and isinstance(m, torch.nn.Module))
    if isinstance(obj, CheckTarget):
        return {"fn": obj}, None
    if isinstance(obj, dict):
        unknown = set(obj) - {
            "fn",
            "inputs",
            "grad_fn",
            "names",
            "time_axis",
            "checked",
            "state",
            "forward_args",
            "stability",
        }
        if unknown or "fn" not in obj:
            raise ValueError(
                f"the factory's dict must have 'fn' (and 'inputs', ...); unexpected keys {sorted(unknown)}"
            )
        kwargs = {k: v for k, v in obj.items() if k != "stability"}
        return kwargs, obj.get("stability")
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        first, second = obj
        if is_module(first):
            return {"fn": first, "inputs": second}, (first, second)
        if callable(first):
            return {"fn": first, "inputs": second}, None
    raise ValueError(
        "the factory must return (fn, inputs), (module, x), a dict with 'fn' and 'inputs', or a CheckTarget; "
        f"got {type(obj).__name__}"
    )


def _stability_pair(pair: tuple[Any, Any]) -> tuple[Any, Any] | str:
    """The (model, one sequence) for check_stability, or the reason it does not apply."""
    from .models.compose import RecurrentModel

    model, x = pair
    if not isinstance(model, RecurrentModel):
        from .models.torch_interop import from_torch

        try:
            model = from_torch(model)
        except (TypeError, NotImplementedError) as exc:
            return f"not a recurrent model gradtheory knows ({exc})"
    if model.num_layers != 1 or model.bidirectional:
        return "stability is measured for single-layer unidirectional models"
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else x
    import numpy as np

    x = np.asarray(x, dtype=float)
    if x.ndim == 3:
        x = x[0] if model.batch_first else x[:, 0]
    return model, x


def run(args: argparse.Namespace) -> int:
    from .check import check_gradients
    from .check._backends import USER_CODE_ATTR

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        kwargs, stab = _interpret(_load(args.target))
    except _UserCodeRaised as exc:
        _print_user_traceback(exc.__cause__, str(exc))
        return EXIT_USER_CODE
    except Exception as exc:  # noqa: BLE001 - a missing module or attribute, a factory returning something else
        print(f"gradtheory check: cannot load {args.target}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    options = {
        "seed": args.seed,
        "step": args.step,
        "levels": args.levels,
        "directions": args.directions,
        "pin_rng": not args.no_pin_rng,
        "progress": _Progress("gradients", not args.quiet),
    }
    if args.time_axis is not None:
        options["time_axis"] = args.time_axis
    fn = kwargs.pop("fn")
    inputs = kwargs.pop("inputs", None)
    try:
        report = check_gradients(fn, inputs, **kwargs, **options)
    except Exception as exc:
        during = getattr(exc, USER_CODE_ATTR, None)
        if during is not None:
            _print_user_traceback(exc, during)
            return EXIT_USER_CODE
        if isinstance(exc, (TypeError, ValueError, NotImplementedError)):
            print(f"gradtheory check: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        raise
    status = {"correct": EXIT_CORRECT, "wrong": EXIT_WRONG, "inconclusive": EXIT_INCONCLUSIVE}[report.status]
    stability = _stability(stab, args)
    if (
        stability is not None
        and not isinstance(stability, str)
        and (not stability.ok or stability.regime in args.fail_on_regime)
    ):
        status = EXIT_WRONG
    if args.json:
        data: dict[str, Any] = {"exit_status": status, "gradients": report.to_dict()}
        if isinstance(stability, str) or stability is None:
            data["stability"] = {"skipped": stability or "no recurrent model"}
        else:
            data["stability"] = {
                "regime": stability.regime,
                "rate": stability.rate,
                "lyapunov": stability.lyapunov,
                "kind": stability.kind,
                "ok": stability.ok,
            }
        print(json.dumps(data, indent=2))
        return status
    print(report.summary)
    if stability is None:
        print(
            "check_stability: skipped (the factory gave no recurrent model; return (module, x) or "
            "a dict with 'stability': (model, x))"
        )
    elif isinstance(stability, str):
        print(f"check_stability: skipped ({stability})")
    else:
        print(stability.summary)
    return status


def _stability(stab: Any, args: argparse.Namespace) -> Any:
    """The stability report, the reason it was skipped (str), or None (no model given / disabled)."""
    from .check import check_stability

    if args.no_stability:
        return "--no-stability"
    if stab is None:
        return None
    pair = _stability_pair(stab)
    if isinstance(pair, str):
        return pair
    bar = _Progress("stability", not args.quiet)
    bar(0, 1, "gradient flow")
    report = check_stability(*pair)
    bar(1, 1, "gradient flow")
    return report
