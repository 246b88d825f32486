"""The report of check_gradients: its verdict properties, its JSON form and its summary.

Statements (``gradtheory/check/reports.py``):

* ``ok`` and ``bool(report)`` are True only for the verdict ``"correct"`` (an inconclusive input
  never counts as a pass); ``failures`` / ``inconclusive`` are exactly the inputs with that status,
  in input order; ``resolution`` is the largest finite per-input resolution (NaN when no input
  was judged); ``errors`` / ``estimates`` map each input's name to its number;
* ``to_dict`` / ``to_json`` carry every field; JSON has no inf/NaN, so those become the strings
  ``'inf'``, ``'-inf'``, ``'nan'`` and finite numbers pass through unchanged;
* the summary states the verdict first (how many inputs are wrong or could not be judged, and
  that inconclusive is not a pass), then one line per input, wrong ones first, then inconclusive,
  then correct, each with its comparison (``<=`` or ``>`` the tolerance); an input whose reference
  is NaN is "not judged"; skipped leaves and notes follow. ``GradientCheckError`` carries the
  report and its summary.

The reports are built by hand here, so each statement is checked against values fixed in the
test (the checker's own decisions are tested end to end in ``test_check_gradients.py``).
"""

from __future__ import annotations

import json
import math
import re

import pytest

from gradtheory.check.reports import STATUSES, GradientCheckError, GradientReport, InputCheck, SkippedInput


def _input(index, name, status, *, reference=2.0, error=1e-12, tolerance=1e-10, resolution=5e-11, findings=()):
    return InputCheck(
        index=index,
        name=name,
        shape=(2, 3),
        analytic=reference + error,
        reference=reference,
        estimate=1e-13,
        tolerance=tolerance,
        error=error,
        status=status,
        relative_error=error / abs(reference) if reference == reference else math.nan,
        resolution=resolution,
        findings=findings,
    )


def _report(status, inputs, **extra):
    fields = dict(
        status=status,
        inputs=tuple(inputs),
        seed=7,
        method="richardson",
        step=0.125,
        levels=4,
        evaluations=33,
        backward_passes=2,
        seconds=0.25,
    )
    fields.update(extra)
    return GradientReport(**fields)


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_is_exactly_one_of_pass_failure_or_inconclusive(status):
    """The published STATUSES partition an input's verdicts: each status makes a one-input report
    a pass (ok), a failure (in failures) or inconclusive (in inconclusive), exactly one of them."""
    check = _input(0, "x", status)
    report = _report(status, [check])
    assert [report.ok, check in report.failures, check in report.inconclusive].count(True) == 1
    assert len(set(STATUSES)) == 3


@pytest.mark.parametrize("status", STATUSES)
def test_only_a_correct_verdict_is_a_pass(status):
    """ok, bool(report), InputCheck.ok: True exactly for 'correct'; conclusive: not 'inconclusive'."""
    check = _input(0, "x", status)
    report = _report(status, [check])
    assert report.ok is (status == "correct")
    assert bool(report) is (status == "correct")
    assert check.ok is (status == "correct")
    assert check.conclusive is (status != "inconclusive")


def test_failures_inconclusive_errors_estimates_and_resolution_per_input():
    """failures / inconclusive select by status in input order; errors / estimates by name;
    resolution = the largest finite per-input resolution, NaN when none is finite."""
    a = _input(0, "a", "wrong", error=1e-3, resolution=1e-9)
    b = _input(1, "b", "inconclusive", reference=math.nan, resolution=math.nan)
    c = _input(2, "c", "correct", resolution=3e-9)
    d = _input(3, "d", "wrong", error=2e-3, resolution=2e-10)
    report = _report("wrong", [a, b, c, d])
    assert report.failures == (a, d)
    assert report.inconclusive == (b,)
    assert report.errors["a"] == 1e-3 / 2.0 and report.errors["d"] == 2e-3 / 2.0 and math.isnan(report.errors["b"])
    assert report.estimates == {"a": 1e-13, "b": 1e-13, "c": 1e-13, "d": 1e-13}
    assert report.resolution == 3e-9
    assert math.isnan(_report("inconclusive", [b]).resolution)
    assert math.isnan(_report("correct", []).resolution)


def test_json_form_carries_every_field_and_no_non_finite_number():
    """to_dict / to_json: every field, finite numbers unchanged, inf/-inf/NaN as strings (strict
    JSON parses it), kwargs passed to json.dumps."""
    judged = _input(0, "w", "correct", findings=("fine",))
    unjudged = InputCheck(
        index=1,
        name="b",
        shape=(3,),
        analytic=1.5,
        reference=math.nan,
        estimate=math.inf,
        tolerance=-math.inf,
        error=math.nan,
        status="inconclusive",
        relative_error=math.nan,
        resolution=math.nan,
        findings=("a kink",),
        bad_blocks=("0", "2"),
        bad_output_steps=(1, 4),
        step=0.5,
    )
    report = _report(
        "inconclusive",
        [judged, unjudged],
        notes=("n1",),
        skipped=(SkippedInput("mask", "not a float array"),),
        noise=math.inf,
        pin_rng=False,
        precision="float32",
        reference="native",
        order=2,
        mode="forward",
    )
    text = report.to_json(indent=1)
    assert "\n" in text  # kwargs reach json.dumps
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert data == report.to_dict()
    assert {k: data[k] for k in ("status", "ok", "seed", "method", "step", "levels", "evaluations")} == {
        "status": "inconclusive",
        "ok": False,
        "seed": 7,
        "method": "richardson",
        "step": 0.125,
        "levels": 4,
        "evaluations": 33,
    }
    assert data["backward_passes"] == 2 and data["seconds"] == 0.25 and data["noise"] == "inf"
    assert data["pin_rng"] is False and data["order"] == 2 and data["mode"] == "forward"
    assert data["precision"] == "float32" and data["reference"] == "native"
    assert data["resolution"] == 5e-11  # the only finite per-input resolution
    assert data["skipped"] == [{"name": "mask", "reason": "not a float array"}]
    assert data["notes"] == ["n1"]
    first, second = data["inputs"]
    assert first == {
        "index": 0,
        "name": "w",
        "shape": [2, 3],
        "status": "correct",
        "analytic": 2.0 + 1e-12,
        "reference": 2.0,
        "estimate": 1e-13,
        "tolerance": 1e-10,
        "error": 1e-12,
        "relative_error": 1e-12 / 2.0,
        "resolution": 5e-11,
        "findings": ["fine"],
        "bad_blocks": [],
        "bad_output_steps": [],
        "step": None,
    }
    assert second["reference"] == "nan" and second["estimate"] == "inf" and second["tolerance"] == "-inf"
    assert second["analytic"] == 1.5 and second["bad_blocks"] == ["0", "2"] and second["bad_output_steps"] == [1, 4]
    assert second["step"] == 0.5 and second["shape"] == [3]
    assert _report("correct", [judged]).to_dict()["noise"] is None
    assert json.loads(_report("correct", []).to_json())["resolution"] == "nan"  # no input judged


def _lines(report):
    return report.summary.splitlines()


def test_summary_head_states_the_verdict_and_counts():
    """WRONG with the count of failures (and the inconclusive ones by name); INCONCLUSIVE with
    the names and 'this is not a pass'; OK otherwise; then seed, method, evaluations, time."""
    a = _input(0, "a", "wrong", error=1e-3)
    b = _input(1, "b", "inconclusive")
    c = _input(2, "c", "correct")
    e = _input(3, "e", "inconclusive")
    head = _lines(_report("wrong", [a, b, c, e]))[0]
    assert head.startswith("check_gradients: gradients WRONG for 1 of 4 inputs (2 input(s) inconclusive: b, e); ")
    assert "seed=7, reference richardson (step 0.125, 4 levels), 33 evaluations + 2 backward, 0.250 s" in head
    assert _lines(_report("wrong", [a, c]))[0].startswith("check_gradients: gradients WRONG for 1 of 2 inputs; seed=7")
    head = _lines(_report("inconclusive", [b, c, e]))[0]
    assert head.startswith(
        "check_gradients: INCONCLUSIVE: 2 of 3 inputs could not be judged (b, e); this is not a pass; seed=7"
    )
    assert _lines(_report("correct", [c]))[0].startswith("check_gradients: gradients OK; seed=7")
    complex_head = _lines(_report("correct", [c], method="complex"))[0]
    assert "reference complex, 33 evaluations" in complex_head
    assert ", order 2, mode reverse" in _lines(_report("correct", [c], order=2))[0]
    assert ", order 1, mode forward" in _lines(_report("correct", [c], mode="forward"))[0]
    low = _lines(_report("correct", [c], precision="float32", reference="float64"))[0]
    assert ", inputs in float32, reference in float64, resolution 5.0e-11" in low
    assert "inputs in" not in _lines(_report("correct", [c]))[0]


def test_summary_lists_wrong_then_inconclusive_then_correct_inputs_with_their_comparison():
    """One line per input, wrong first, then inconclusive, then correct (input order within);
    '>' when the difference exceeds the tolerance, '<=' otherwise; findings indented below
    their input; NaN reference: 'not judged'; then skipped leaves and notes."""
    c0 = _input(0, "c0", "correct")
    w1 = _input(1, "w1", "wrong", error=1e-3, findings=("wrong rows along axis 0: 1",))
    i2 = _input(2, "i2", "inconclusive", reference=math.nan, findings=("a kink is located",))
    w3 = _input(3, "w3", "wrong", error=1e-10)  # equal to the tolerance: '<='
    report = _report(
        "wrong",
        [c0, w1, i2, w3],
        skipped=(SkippedInput("mask", "integer dtype"),),
        notes=("pinned RNG",),
    )
    lines = _lines(report)[1:]
    tags = [re.match(r"  \[(....)\] input (\d) '(\w+)'", line) for line in lines]
    order = [(m.group(1), m.group(3)) for m in tags if m]
    assert order == [("FAIL", "w1"), ("FAIL", "w3"), ("??  ", "i2"), ("ok  ", "c0")]
    w1_line = next(line for line in lines if "'w1'" in line)
    assert w1_line.startswith("  [FAIL] input 1 'w1' shape (2, 3): <grad,v> = 2.001000000000e+00, reference = ")
    assert "|diff| = 1.00e-03 > tol 1.00e-10; relative error 5.00e-04 (resolution 5.0e-11)" in w1_line
    assert lines[lines.index(w1_line) + 1] == "      - wrong rows along axis 0: 1"
    assert "|diff| = 1.00e-10 <= tol 1.00e-10" in next(line for line in lines if "'w3'" in line)
    i2_line = next(line for line in lines if "'i2'" in line)
    assert i2_line == "  [??  ] input 2 'i2' shape (2, 3): not judged"
    assert lines[lines.index(i2_line) + 1] == "      - a kink is located"
    assert "reference = 2.000000000000e+00 (+- 1.0e-13)" in next(line for line in lines if "'c0'" in line)
    assert lines[-2:] == ["  skipped 'mask': integer dtype", "  note: pinned RNG"]
    assert str(report) == report.summary


def test_gradient_check_error_carries_the_report_and_its_summary():
    """GradientCheckError(report) is an AssertionError whose message is the summary."""
    report = _report("wrong", [_input(0, "a", "wrong", error=1e-3)])
    error = GradientCheckError(report)
    assert isinstance(error, AssertionError)
    assert error.report is report
    assert str(error) == report.summary
