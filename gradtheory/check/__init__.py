"""Regression guards for users' recurrent code: :func:`check_gradients` and :func:`check_stability`.

Layout: ``gradients`` (check_gradients, the error analysis), ``reports`` (verdicts),
``stability`` (check_stability), ``_backends`` (torch and numpy behind ``evaluate``/``vjp``:
fresh copies, pinned global RNGs), ``_probe`` (directions, Richardson probes on the table of
:mod:`gradtheory.oracles`, measured noise, kink location), ``_localise`` (rows, time steps,
scaled/transposed/float32), ``_tree`` (nested inputs), ``_targets`` (modules and models).
"""

from ._targets import CheckTarget, model_target, torch_module_target
from .dropin import gradcheck, gradgradcheck
from .gradients import assert_gradients_match, check_gradients
from .reports import GradientCheckError, GradientReport, InputCheck, SkippedInput
from .stability import StabilityReport, check_stability

__all__ = [
    "CheckTarget",
    "GradientCheckError",
    "GradientReport",
    "InputCheck",
    "SkippedInput",
    "StabilityReport",
    "assert_gradients_match",
    "check_gradients",
    "check_stability",
    "gradcheck",
    "gradgradcheck",
    "model_target",
    "torch_module_target",
]
