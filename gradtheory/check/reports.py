"""Reports of :func:`gradtheory.check_gradients`: per-input results, skipped leaves, the verdict."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["STATUSES", "GradientCheckError", "GradientReport", "InputCheck", "SkippedInput"]

#: The three verdicts, in order of precedence for a whole report ("wrong" wins, then
#: "inconclusive"; "correct" only when every checked input is correct).
STATUSES = ("correct", "wrong", "inconclusive")


class GradientCheckError(AssertionError):
    """Raised by :func:`assert_gradients_match` (and ``raise_exception=True``) when the verdict is
    not ``"correct"``; ``.report`` holds the :class:`GradientReport`."""

    def __init__(self, report: GradientReport) -> None:
        super().__init__(report.summary)
        self.report = report


@dataclass(frozen=True)
class InputCheck:
    """The directional test of one checked input (one float leaf of the inputs).

    ``analytic`` = <g, v> from the backward; ``reference`` = Richardson (or complex-step)
    derivative of L along v; ``estimate`` its error estimate; ``tolerance`` the bound the
    difference ``error`` is compared with; ``relative_error`` = error / |reference|;
    ``resolution`` = tolerance / |reference| (smallest detectable relative error).
    ``status`` is ``"correct"``, ``"wrong"`` or ``"inconclusive"``; ``findings`` are
    human-readable diagnoses (localisation of a wrong gradient, cause of an inconclusive one).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    analytic: float
    reference: float
    estimate: float
    tolerance: float
    error: float
    status: str
    relative_error: float
    resolution: float
    findings: tuple[str, ...] = ()
    bad_blocks: tuple[str, ...] = ()
    bad_output_steps: tuple[int, ...] = ()
    step: float | None = None

    @property
    def ok(self) -> bool:
        """True only when the gradient was judged and found correct."""
        return self.status == "correct"

    @property
    def conclusive(self) -> bool:
        return self.status != "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "shape": list(self.shape),
            "status": self.status,
            "analytic": _num(self.analytic),
            "reference": _num(self.reference),
            "estimate": _num(self.estimate),
            "tolerance": _num(self.tolerance),
            "error": _num(self.error),
            "relative_error": _num(self.relative_error),
            "resolution": _num(self.resolution),
            "findings": list(self.findings),
            "bad_blocks": list(self.bad_blocks),
            "bad_output_steps": list(self.bad_output_steps),
            "step": self.step,
        }


@dataclass(frozen=True)
class SkippedInput:
    """A leaf of the inputs that was passed through unchanged and not checked, with the reason."""

    name: str
    reason: str


def _num(x: float) -> float | str:
    """JSON has no inf/nan: those become strings."""
    return x if math.isfinite(x) else repr(x)


@dataclass(frozen=True)
class GradientReport:
    """Result of :func:`gradtheory.check_gradients`.

    ``status``: ``"wrong"`` when some checked input's gradient disagrees with the reference,
    else ``"inconclusive"`` when some input could not be judged (non-deterministic or non-smooth
    function), else ``"correct"``. ``ok`` (and ``bool(report)``) is True only for ``"correct"``.
    ``skipped`` lists the leaves of the inputs that were not checked and why. ``noise`` is the
    measured evaluation noise of L = <w, fn> relative to ``||w * fn||_2`` (float64 round-off
    gives ~1e-16, a forward computed in float32 ~1e-8).
    """

    status: str
    inputs: tuple[InputCheck, ...]
    seed: int
    method: str
    step: float
    levels: int
    evaluations: int
    backward_passes: int
    seconds: float
    notes: tuple[str, ...] = ()
    skipped: tuple[SkippedInput, ...] = ()
    noise: float | None = None
    pin_rng: bool = True
    precision: str = "float64"
    reference: str = "float64"
    order: int = 1
    mode: str = "reverse"

    @property
    def resolution(self) -> float:
        """The achieved resolution: the largest per-input tolerance relative to the reference
        (nan when no input was judged)."""
        vals = [c.resolution for c in self.inputs if math.isfinite(c.resolution)]
        return max(vals) if vals else math.nan

    @property
    def ok(self) -> bool:
        """True only when the verdict is ``"correct"`` (an inconclusive input never counts as a pass)."""
        return self.status == "correct"

    def __bool__(self) -> bool:
        return self.ok

    @property
    def failures(self) -> tuple[InputCheck, ...]:
        """The inputs whose gradient is wrong."""
        return tuple(c for c in self.inputs if c.status == "wrong")

    @property
    def inconclusive(self) -> tuple[InputCheck, ...]:
        """The inputs that could not be judged."""
        return tuple(c for c in self.inputs if c.status == "inconclusive")

    @property
    def errors(self) -> dict[str, float]:
        """Per-input relative error |<g,v> - D| / |D|."""
        return {c.name: c.relative_error for c in self.inputs}

    @property
    def estimates(self) -> dict[str, float]:
        """Per-input error estimate of the reference derivative."""
        return {c.name: c.estimate for c in self.inputs}

    def _head(self) -> str:
        unsure = [c.name for c in self.inconclusive]
        if self.status == "wrong":
            head = f"gradients WRONG for {len(self.failures)} of {len(self.inputs)} inputs"
            if unsure:
                head += f" ({len(unsure)} input(s) inconclusive: {', '.join(unsure)})"
        elif self.status == "inconclusive":
            head = (
                f"INCONCLUSIVE: {len(unsure)} of {len(self.inputs)} inputs could not be judged "
                f"({', '.join(unsure)}); this is not a pass"
            )
        else:
            head = "gradients OK"
        return head

    @property
    def summary(self) -> str:
        meth = self.method + (f" (step {self.step:g}, {self.levels} levels)" if self.method == "richardson" else "")
        if self.order != 1 or self.mode != "reverse":
            meth += f", order {self.order}, mode {self.mode}"
        if self.precision != "float64":
            meth += f", inputs in {self.precision}, reference in {self.reference}, resolution {self.resolution:.1e}"
        lines = [
            (
                f"check_gradients: {self._head()}; seed={self.seed}, reference {meth}, "
                f"{self.evaluations} evaluations + {self.backward_passes} backward, {self.seconds:.3f} s"
            )
        ]
        tags = {"correct": "ok  ", "wrong": "FAIL", "inconclusive": "??  "}
        order = {"wrong": 0, "inconclusive": 1, "correct": 2}
        for c in sorted(self.inputs, key=lambda c: (order[c.status], c.index)):
            rel = "<=" if c.error <= c.tolerance else ">"
            if math.isnan(c.reference):
                lines.append(f"  [{tags[c.status]}] input {c.index} {c.name!r} shape {c.shape}: not judged")
                lines.extend(f"      - {f}" for f in c.findings)
                continue
            lines.append(
                f"  [{tags[c.status]}] input {c.index} {c.name!r} shape {c.shape}: <grad,v> = {c.analytic:.12e}, "
                f"reference = {c.reference:.12e} (+- {c.estimate:.1e}); |diff| = {c.error:.2e} "
                f"{rel} tol {c.tolerance:.2e}; relative error {c.relative_error:.2e} "
                f"(resolution {c.resolution:.1e})"
            )
            for f in c.findings:
                lines.append(f"      - {f}")
        for s in self.skipped:
            lines.append(f"  skipped {s.name!r}: {s.reason}")
        for n in self.notes:
            lines.append(f"  note: {n}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (``gradtheory check --json`` prints it)."""
        return {
            "status": self.status,
            "ok": self.ok,
            "seed": self.seed,
            "method": self.method,
            "step": self.step,
            "levels": self.levels,
            "evaluations": self.evaluations,
            "backward_passes": self.backward_passes,
            "seconds": self.seconds,
            "noise": None if self.noise is None else _num(self.noise),
            "pin_rng": self.pin_rng,
            "order": self.order,
            "mode": self.mode,
            "precision": self.precision,
            "reference": self.reference,
            "resolution": _num(self.resolution),
            "inputs": [c.to_dict() for c in self.inputs],
            "skipped": [{"name": s.name, "reason": s.reason} for s in self.skipped],
            "notes": list(self.notes),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)
