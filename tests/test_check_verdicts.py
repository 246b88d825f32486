"""The verdict's words and fields (gradtheory/check/gradients.py): what a report says about a
gradient of the wrong shape, about low precision and how its step was chosen, and about an input
it could not judge. Written from the mutation survivors of gradients.py (README, "Contributing")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradtheory import _check_examples as ex
from gradtheory.check import check_gradients

A = np.random.default_rng(0).standard_normal((3, 4))


def _fn(x):
    return np.tanh(A @ x)


def _grad(ct, x):
    return A.T @ (ct * (1 - np.tanh(A @ x) ** 2))


_X = (np.random.default_rng(1).standard_normal(4),)


def test_a_gradient_of_the_wrong_shape_is_wrong_and_says_so_once():
    """grad_fn returning shape (3,) for an input of shape (4,): status wrong, the input's own name
    and shape, one finding naming both shapes (not also 'returned no gradient')."""
    report = check_gradients(_fn, _X, grad_fn=lambda ct, x: _grad(ct, x)[:3], names=("x",))
    c = report.inputs[0]
    assert (c.status, c.name, c.shape) == ("wrong", "x", (4,))
    assert c.findings == ("grad_fn returned a gradient of shape (3,) for this input of shape (4,)",)
    assert not report.ok


def _float32_inputs():
    return tuple(t.detach().to(torch.float32).requires_grad_(True) for t in ex.elman_inputs())


def test_the_low_precision_note_names_the_reference_and_how_the_step_was_chosen():
    """Auto: reference from float64 evaluations, step from the measured noise as eps^(1/(2 levels +
    1)) (levels 4: 1/9, levels 3: 1/7). Given: reference='native' evaluates in float32 and the step
    is reported as given."""
    auto = check_gradients(ex.elman_function(), _float32_inputs(), names=ex.ELMAN_NAMES)
    (note,) = [n for n in auto.notes if n.startswith("LOW PRECISION")]
    assert "inputs in float32, backward in their precision; reference from float64 evaluations of fn;" in note
    assert "chosen for this noise (eps^(1/9), eps the relative noise)" in note
    three = check_gradients(ex.elman_function(), _float32_inputs(), names=ex.ELMAN_NAMES, levels=3)
    assert any("(eps^(1/7), eps the relative noise)" in n for n in three.notes)
    given = check_gradients(ex.elman_function(), _float32_inputs(), names=ex.ELMAN_NAMES, step=1e-3, reference="native")
    (note,) = [n for n in given.notes if n.startswith("LOW PRECISION")]
    assert "reference from evaluations in float32;" in note and "; step 0.001 (given);" in note


def test_an_input_that_cannot_be_judged_has_no_numbers_only_the_reason():
    """sqrt at x = 0 (fn is NaN on one side of every stencil, so no stencil is smooth): inconclusive,
    every number NaN, the input's shape kept, and one finding saying why."""

    def fn(x):
        with np.errstate(invalid="ignore"):
            return np.sqrt(x)

    report = check_gradients(fn, (np.zeros(3),), grad_fn=lambda ct, x: np.zeros(3), names=("x",))
    c = report.inputs[0]
    assert c.status == "inconclusive" and c.shape == (3,) and c.name == "x"
    for value in (c.analytic, c.reference, c.estimate, c.tolerance, c.error, c.relative_error, c.resolution):
        assert math.isnan(value)
    assert len(c.findings) == 1 and c.findings[0].startswith("INCONCLUSIVE:")


def test_a_backward_that_is_not_deterministic_is_inconclusive_and_says_why():
    """The backward is run twice at the same point and cotangent: noise from a generator of its own
    (relative 1e-6) or a gradient returned only once makes the input inconclusive, never correct
    or wrong, with the two passes' difference stated."""
    own = np.random.default_rng(12)

    def noisy(ct, x):
        g = _grad(ct, x)
        return g * (1 + 1e-6 * own.standard_normal(g.shape))

    c = check_gradients(_fn, _X, grad_fn=noisy, names=("x",)).inputs[0]
    assert c.status == "inconclusive" and c.name == "x" and c.shape == (4,)
    (finding,) = c.findings
    assert finding.startswith("INCONCLUSIVE: the backward is not deterministic: two backward passes at the same point")
    calls = []

    def sometimes(ct, x):
        calls.append(1)
        return _grad(ct, x) if len(calls) % 2 else None

    c = check_gradients(_fn, _X, grad_fn=sometimes, names=("x",)).inputs[0]
    assert c.status == "inconclusive"
    assert c.findings == ("INCONCLUSIVE: the backward is not deterministic: it returned a gradient once and None once",)


def test_a_forward_drawing_from_its_own_generator_is_not_judged():
    own = np.random.default_rng(13)

    def random_fn(x):
        return np.tanh(A @ x) * (1 + 1e-3 * own.standard_normal(3))

    report = check_gradients(random_fn, (np.ones(4),), grad_fn=_grad, names=("x",))
    c = report.inputs[0]
    assert c.status == "inconclusive" and c.findings == ("not judged: fn is not deterministic (see the note)",)
    (note,) = [n for n in report.notes if "NOT DETERMINISTIC" in n]
    assert "No gradient can be judged against finite differences of a random function" in note
    # the global RNGs were pinned, so the first suspect is a generator that is not global
    assert "Likely causes: dropout or another random op drawing from an RNG that is not the torch/numpy" in note
    unpinned = check_gradients(random_fn, (np.ones(4),), grad_fn=_grad, names=("x",), pin_rng=False)
    assert any(
        "Likely causes: dropout or another random op (RNG pinning is off: pin_rng=False)" in n for n in unpinned.notes
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"levels": 1}, ValueError, r"^levels "),
        ({"levels": 2.5}, TypeError, r"^levels "),
        ({"directions": 0}, ValueError, r"^directions "),
        ({"seed": -1}, ValueError, r"^seed "),
        ({"localise": "yes"}, TypeError, r"^localise "),
        ({"step": 1.0}, ValueError, r"^step must be"),
        ({"step": 1.5}, ValueError, r"^step must be"),
        ({"time_axis": -1}, ValueError, r"^time_axis "),
        ({"reference": "exact"}, ValueError, r"^reference="),
        ({"precision": "half"}, ValueError, r"^precision="),
        ({"grad_outputs": np.ones(3)}, TypeError, r"^grad_outputs is for order=2"),
        ({"state": np.ones(3)}, TypeError, r"^state= and forward_args= are for a torch.nn.Module"),
        ({"forward_args": (1,)}, TypeError, r"^state= and forward_args= are for a torch.nn.Module"),
        ({"precision": "native"}, TypeError, r"^precision='native' is for a torch.nn.Module"),
    ],
)
def test_bad_options_are_refused_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        check_gradients(_fn, _X, grad_fn=_grad, names=("x",), **kwargs)


def test_bad_fn_and_inputs_are_refused_by_name():
    with pytest.raises(TypeError, match=r"^fn must be callable \(or a torch.nn.Module / gradtheory model\), got int$"):
        check_gradients(3, _X)
    with pytest.raises(TypeError, match=r"^inputs must be given: a tuple of float64 tensors or arrays"):
        check_gradients(_fn)
    with pytest.raises(ValueError, match=r"^inputs contains no float64 array to check$"):
        check_gradients(_fn, (np.ones(4, dtype=int),), grad_fn=_grad)


def test_a_single_array_input_needs_no_tuple_and_progress_and_time_are_reported():
    """inputs may be one array; progress(done, total, name) is called per input; report.seconds is
    the run's wall time (positive, below the time measured around the call)."""
    import time

    calls = []
    t0 = time.perf_counter()
    report = check_gradients(_fn, _X[0], grad_fn=_grad, progress=lambda *a: calls.append(a))
    elapsed = time.perf_counter() - t0
    assert report.ok and report.inputs[0].shape == (4,)
    assert calls and all(len(c) == 3 for c in calls)
    assert 0 < report.seconds <= elapsed


def test_mode_both_reports_each_input_twice_and_adds_up_the_cost_of_the_two_checks():
    """mode='both' is the reverse check and the forward-mode check together: each input appears
    again as '<name> (forward)', the note says so once, and evaluations and backward passes are
    the sums of the two modes' runs."""
    from gradtheory.check import CheckTarget

    g = torch.Generator().manual_seed(0)
    W = torch.rand(5, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)

    def run(mode):
        return check_gradients(CheckTarget(lambda W: torch.tanh(x @ W.T), (W,), names=("W",)), mode=mode)

    reverse, forward, both = run("reverse"), run("forward"), run("both")
    assert [c.name for c in both.inputs] == ["W", "W (forward)"] and both.ok
    assert [c.name for c in reverse.inputs] == [c.name for c in forward.inputs] == ["W"]
    (note,) = [n for n in both.notes if "forward-mode AD" in n]
    assert note.startswith("mode='both': forward-mode AD (jvp, <w, J v>) checked against the same directional")
    assert "('(forward)' inputs)" in note and len(set(both.notes)) == len(both.notes)
    assert not any("forward-mode AD" in n for n in reverse.notes)
    assert "('(forward)' inputs)" not in next(n for n in forward.notes if "forward-mode AD" in n)
    assert both.evaluations == reverse.evaluations + forward.evaluations
    assert both.backward_passes == reverse.backward_passes + forward.backward_passes


def test_a_direction_without_a_smooth_stencil_makes_the_input_inconclusive_with_the_others_numbers(monkeypatch):
    """directions=2, the first with no usable stencil at all (a kink located at the point), the
    second passing: the input is inconclusive (one direction could not be judged), says where the
    kink is, and reports the second direction's comparison (not NaN)."""
    from gradtheory.check import gradients

    real, calls = gradients._best_probe, []

    def first_unusable(s, i, g):
        calls.append(i)
        return gradients._Choice(None, None, [((0.0, 1e-4), 0.02)], False) if len(calls) == 1 else real(s, i, g)

    monkeypatch.setattr(gradients, "_best_probe", first_unusable)
    c = check_gradients(_fn, _X, grad_fn=_grad, names=("x",), directions=2).inputs[0]
    assert len(calls) == 2 and c.status == "inconclusive"
    assert math.isfinite(c.reference) and c.error <= c.tolerance
    assert c.findings == (
        "INCONCLUSIVE: a kink (a point where fn is not differentiable: relu, abs, max, clipping) is located along "
        "the direction within 1.0e-04 of the point (in units of the direction, steps down to 7.8e-05); the finite "
        "differences cannot be trusted across it, so this input is not judged",
    )


def test_the_report_gives_the_worst_of_the_directions_error_over_tolerance(monkeypatch):
    """directions=4 on a gradient scaled by 1 + 1e-6: every direction fails by a different margin
    and the input's numbers are those of the direction with the largest error / tolerance."""
    from gradtheory.check import gradients

    real, kept = gradients._refine, []

    def recording(*args):
        pair = real(*args)
        kept.append(pair[0])
        return pair

    monkeypatch.setattr(gradients, "_refine", recording)
    c = check_gradients(
        _fn, _X, grad_fn=lambda ct, x: _grad(ct, x) * (1 + 1e-6), names=("x",), directions=4, localise=False
    ).inputs[0]
    ratios = [k.error / k.tolerance for k in kept]
    assert len(kept) == 4 and len(set(ratios)) == 4 and c.status == "wrong"
    worst = kept[int(np.argmax(ratios))]
    assert (c.analytic, c.reference, c.error, c.tolerance) == (
        worst.analytic,
        worst.reference,
        worst.error,
        worst.tolerance,
    )
    assert 0 < int(np.argmax(ratios)) < 3  # neither the first nor the last direction


def test_mode_both_keeps_a_note_the_two_modes_share_once():
    """A forward computed in float32 is noted by the reverse and the forward-mode run alike: the
    merged report has that note exactly once, and every note of the reverse run."""
    from gradtheory.check import CheckTarget

    g = torch.Generator().manual_seed(0)
    W = torch.rand(5, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    target = CheckTarget(lambda W: torch.tanh(x.float() @ W.float().T).double(), (W,), names=("W",))
    reverse, both = check_gradients(target), check_gradients(target, mode="both")
    shared = [n for n in both.notes if "FLOAT32 PRECISION in the forward" in n]
    assert len(shared) == 1 and set(reverse.notes) <= set(both.notes)


def _sqrt(x):
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


def test_a_gradient_of_the_wrong_shape_is_wrong_even_where_nothing_can_be_compared():
    """sqrt at 0 has no smooth stencil, but a gradient of shape (2,) for an input of shape (3,) is
    wrong whatever the reference: status wrong, the shape finding only."""
    c = check_gradients(_sqrt, (np.zeros(3),), grad_fn=lambda ct, x: np.zeros(2), names=("x",)).inputs[0]
    assert (c.status, c.name, c.shape) == ("wrong", "x", (3,)) and math.isnan(c.reference)
    assert c.findings == ("grad_fn returned a gradient of shape (2,) for this input of shape (3,)",)


def test_an_input_on_kinks_is_not_judged_and_the_kink_is_located():
    """|x - x0| at x = x0: every element sits on its kink, no stencil along any direction is
    smooth, and the finding says where along the direction a kink was located."""
    x0 = np.array([0.3, -0.2, 0.5])
    c = check_gradients(
        lambda x: np.abs(x - x0), (x0.copy(),), grad_fn=lambda ct, x: ct * np.sign(x - x0), names=("x",)
    ).inputs[0]
    assert c.status == "inconclusive" and math.isnan(c.reference)
    (finding,) = c.findings
    assert finding.startswith(
        "INCONCLUSIVE: a kink (a point where fn is not differentiable: relu, abs, max, clipping) is located along "
        "the direction "
    )


@pytest.mark.parametrize("kinks", [[], [((1e-3, 2e-3), 0.02)]], ids=["no-kink", "kink"])
def test_a_failure_on_a_probe_that_never_passed_the_accuracy_test_is_not_blamed_on_the_backward(monkeypatch, kinks):
    """A gradient off by 1e-3 compared on a probe that was kept but not accepted (no stencil
    accurate to 1e-8 |D|): inconclusive, with the size of the disagreement, and where a kink was
    located if one was."""
    from gradtheory.check import gradients

    real = gradients._best_probe
    monkeypatch.setattr(gradients, "_best_probe", lambda *a: real(*a)._replace(accepted=False, kinks=kinks))
    c = check_gradients(_fn, _X, grad_fn=lambda ct, x: 1.001 * _grad(ct, x), names=("x",)).inputs[0]
    assert c.status == "inconclusive" and c.error > c.tolerance
    (finding,) = c.findings
    assert finding.startswith("INCONCLUSIVE: the reference disagrees with the gradient by 1.0e-03 relative, but no")
    assert finding.endswith("so the disagreement cannot be blamed on the backward") == (not kinks)
    if kinks:
        assert "; a kink (a point where fn is not differentiable: relu, abs, max, clipping) is located along the " in (
            finding
        )


def test_a_missing_gradient_is_wrong_when_fn_depends_on_the_input_and_correct_when_it_does_not():
    """grad_fn returns None for both inputs; fn reads x but not y: x is wrong with 'returned no
    gradient', y (reference exactly 0) is correct with no finding; a correct gradient has none."""

    def fn(x, y):
        return np.tanh(A @ x)

    report = check_gradients(fn, (_X[0], np.ones(2)), grad_fn=lambda ct, x, y: (None, None), names=("x", "y"))
    x, y = report.inputs
    assert x.status == "wrong" and "the backward returned no gradient (None) for this input, but fn depends on it" in (
        x.findings
    )
    assert y.status == "correct" and y.reference == 0.0 and y.findings == ()
    good = check_gradients(_fn, _X, grad_fn=_grad, names=("x",)).inputs[0]
    assert good.status == "correct" and good.findings == ()


def test_a_gradient_for_an_input_fn_does_not_read_is_wrong_and_asks_whether_fn_reads_it():
    """fn uses a captured copy of x instead of its argument: the reference is exactly 0, the
    gradient is not; wrong, with the question, and a resolution of 1 (the tolerance is the scale
    when the reference is 0)."""
    captured = _X[0].copy()
    c = check_gradients(lambda x: np.tanh(A @ captured), _X, grad_fn=_grad, names=("x",), localise=False).inputs[0]
    assert c.status == "wrong" and c.reference == 0.0 and c.resolution == 1.0
    assert c.relative_error == c.error / c.tolerance
    assert any(
        f.startswith("fn's output did not change at all when this input was perturbed: does fn read it?")
        for f in c.findings
    )


def test_a_float32_gradient_of_a_float64_input_is_named_and_a_float32_input_is_not():
    c = check_gradients(
        _fn, _X, grad_fn=lambda ct, x: _grad(ct, x).astype(np.float32), names=("x",), localise=False
    ).inputs[0]
    assert "the gradient has dtype float32 (expected float64)" in c.findings
    low = check_gradients(ex.elman_function(), _float32_inputs(), names=ex.ELMAN_NAMES)
    assert not any("dtype float32" in f for c in low.inputs for f in c.findings), low.summary


def test_only_the_first_three_failing_inputs_are_localised():
    """Four wrong inputs: the first three get their blocks, the fourth says it was not localised."""

    def fn(a, b, c, d):
        return np.tanh(A @ (a + b + c + d))

    def wrong(ct, *xs):
        return tuple(1.001 * _grad(ct, sum(xs)) for _ in xs)

    xs = tuple(np.random.default_rng(k).standard_normal(4) for k in range(4))
    report = check_gradients(fn, xs, grad_fn=wrong, names=("a", "b", "c", "d"))
    assert [c.status for c in report.inputs] == ["wrong"] * 4
    assert [bool(c.bad_blocks) for c in report.inputs] == [True, True, True, False]
    assert report.inputs[3].findings[-1] == "not localised (only the first 3 failing inputs are)"
    assert not any("not localised" in f for c in report.inputs[:3] for f in c.findings)


def test_each_input_reports_the_step_of_its_stencil_and_a_complex_step_none():
    richardson = check_gradients(_fn, _X, grad_fn=_grad).inputs[0]
    assert richardson.step == 0.02
    complex_step = check_gradients(_fn, _X, grad_fn=_grad, method="complex")
    assert complex_step.ok and complex_step.inputs[0].step is None


def test_mixed_precisions_are_listed_from_the_most_precise():
    """Inputs in float16 and float32: the report's precision reads 'float32, float16'."""
    from gradtheory.check import CheckTarget

    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, generator=g).to(torch.float16).requires_grad_(True)
    b = torch.rand(3, generator=g).requires_grad_(True)
    report = check_gradients(CheckTarget(lambda a, b: torch.tanh(a.float() * b), (a, b), names=("a", "b")))
    assert report.precision == "float32, float16", report.summary
