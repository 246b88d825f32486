"""The verdict's words and fields (gradtheory/check/gradients.py): what a report says about a
gradient of the wrong shape, about low precision and how its step was chosen, and about an input
it could not judge. Written from the mutation survivors of gradients.py (README, "Contributing")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradtheory import _check_examples as ex
from gradtheory.check import CheckTarget, check_gradients

A = np.random.default_rng(0).standard_normal((3, 4))


def _fn(x):
    return np.tanh(A @ x)


def _grad(ct, x):
    return A.T @ (ct * (1 - np.tanh(A @ x) ** 2))


_X = (np.random.default_rng(1).standard_normal(4),)


def _W_and_x(*, requires_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A torch weight W (5 x 3, float64, requiring grad) and input x (7 x 3), seeded: the torch
    targets here are fn(W) = tanh(x W^T) and its variants."""
    g = torch.Generator().manual_seed(0)
    W = torch.rand(5, 3, generator=g, dtype=torch.float64).requires_grad_(requires_grad)
    return W, torch.randn(7, 3, generator=g, dtype=torch.float64)


def _float32_a_and_W32() -> tuple[torch.Tensor, torch.Tensor]:
    """A float32 input a (4,) requiring grad and a float32 weight W32 (3 x 4) that fn captures:
    W32 @ a cannot run once a is cast to float64."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, generator=g).requires_grad_(True), torch.rand(3, 4, generator=g)


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
    assert report.noise is None  # nothing was measured
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
    with pytest.raises(ValueError, match=r"^fn returned no floating-point output$"):
        check_gradients(lambda x: np.ones(3, dtype=int), _X, grad_fn=_grad)
    with pytest.raises(TypeError, match=r"^inputs must be omitted when fn is a CheckTarget$"):
        check_gradients(CheckTarget(_fn, _X, grad_fn=_grad), _X)


def test_a_single_array_input_needs_no_tuple_and_progress_and_time_are_reported():
    """inputs may be one array; progress(done, total, name) is called per input; report.seconds is
    the run's wall time (positive, below the time measured around the call)."""
    import time

    calls = []
    t0 = time.perf_counter()
    report = check_gradients(_fn, _X[0], grad_fn=_grad, progress=lambda *a: calls.append(a))
    elapsed = time.perf_counter() - t0
    assert report.ok and report.inputs[0].shape == (4,)
    assert calls == [(1, 1, "inputs[0]")]
    assert 0 < report.seconds <= elapsed
    assert (report.levels, report.pin_rng, report.step) == (4, True, 0.02)
    assert check_gradients(_fn, _X, grad_fn=_grad, pin_rng=False, levels=2).pin_rng is False


def test_mode_both_reports_each_input_twice_and_adds_up_the_cost_of_the_two_checks():
    """mode='both' is the reverse check and the forward-mode check together: each input appears
    again as '<name> (forward)', the note says so once, and evaluations and backward passes are
    the sums of the two modes' runs."""
    W, x = _W_and_x()

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
    W, x = _W_and_x()
    target = CheckTarget(lambda W: torch.tanh(x.float() @ W.float().T).double(), (W,), names=("W",))
    reverse, both = check_gradients(target), check_gradients(target, mode="both")
    shared = [n for n in both.notes if "FLOAT32 PRECISION in the forward" in n]
    assert len(shared) == 1 and set(reverse.notes) <= set(both.notes)


def _sqrt(x):
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


def test_a_gradient_of_the_wrong_shape_for_an_unread_input_is_only_a_shape_error():
    """fn does not read y and grad_fn returns shape (3,) for y of shape (2,): wrong for the shape;
    the perturbation test (reference 0, analytic 0 since no gradient was kept) adds nothing."""

    def fn(x, y):
        return _fn(x)

    report = check_gradients(
        fn, (_X[0], np.ones(2)), grad_fn=lambda ct, x, y: (_grad(ct, x), np.ones(3)), names=("x", "y")
    )
    y = report.inputs[1]
    assert y.status == "wrong" and y.reference == 0.0 and y.analytic == 0.0
    assert y.findings == ("grad_fn returned a gradient of shape (3,) for this input of shape (2,)",)


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
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, generator=g).to(torch.float16).requires_grad_(True)
    b = torch.rand(3, generator=g).requires_grad_(True)
    report = check_gradients(CheckTarget(lambda a, b: torch.tanh(a.float() * b), (a, b), names=("a", "b")))
    assert report.precision == "float32, float16", report.summary


def test_an_output_that_changes_shape_or_moves_after_an_empty_one_is_not_deterministic():
    """Outputs (empty, growing, moving): the empty output cannot move, the others are each named
    with how they moved."""
    calls = []

    def fn(x):
        calls.append(1)
        y = np.tanh(A @ x)
        return np.zeros(0), np.ones(len(calls)), y * (1 + 1e-6 * len(calls))

    report = check_gradients(fn, _X, grad_fn=lambda ct, x: _grad(ct[2], x), names=("x",))
    (note,) = [n for n in report.notes if "NOT DETERMINISTIC" in n]
    assert (
        "fn is NOT DETERMINISTIC: two evaluations at the same inputs differ: output[1] changed shape from (1,) to"
        in (note)
    )
    assert "(2,); output[2] (shape (3,)) moved by " in note


def test_a_non_determinism_far_below_the_threshold_is_evaluation_noise():
    """An output jittered by 1e-13 of its size (own generator): below NONDETERMINISM_RTOL, so not
    'random', but the check counts it as noise (complex step: the only noise measured): the report's
    noise is that jitter, not the float64 floor."""
    own = np.random.default_rng(3)

    def jittery(x):
        return np.tanh(A @ x) * (1 + 1e-13 * own.standard_normal(3))

    report = check_gradients(jittery, _X, grad_fn=_grad, method="complex")
    assert report.ok and report.noise > 1e-14, report.noise
    assert check_gradients(_fn, _X, grad_fn=_grad, method="complex").noise < 1e-14


def test_the_noise_floor_of_native_low_precision_evaluations_is_c_fd_round_offs_of_the_output():
    """reference='native': one evaluation of L is trusted to c_fd u_out ||w * fn|| at best
    (CHECK_ROUNDOFF_GROWTH float32/float16/bfloat16 round-offs), not to float64's round-off; a
    larger noise is measured."""
    from gradtheory._tolerances import CHECK_ROUNDOFF_GROWTH

    for dtype, u in [(torch.float32, 2.0**-24), (torch.float16, 2.0**-11), (torch.bfloat16, 2.0**-8)]:
        a = torch.linspace(0.1, 0.9, 6).to(dtype).requires_grad_(True)
        report = check_gradients(CheckTarget(lambda a: torch.tanh(2 * a), (a,)), reference="native")
        assert report.noise == pytest.approx(CHECK_ROUNDOFF_GROWTH.value * u, rel=1e-12), dtype
    # through a recurrence float16 round-off grows past the floor, and is measured: the noise
    # stencil steps over float16's rounding grid (a step below it would see identical values)
    half = tuple(t.detach().to(torch.float16).requires_grad_(True) for t in ex.elman_inputs())
    report = check_gradients(ex.elman_function(), half, names=ex.ELMAN_NAMES, reference="native")
    assert report.noise > 1.1 * CHECK_ROUNDOFF_GROWTH.value * 2.0**-11


def test_outputs_of_any_size_get_float64_noise_and_no_false_float32_note():
    """sin(x) at x = 0 (outputs exactly 0: ||w * fn|| = 0) and 1e4 tanh (outputs ~1e4): the
    relative noise is that of float64 in both, so neither is called float32."""
    zero = check_gradients(np.sin, (np.zeros(3),), grad_fn=lambda ct, x: ct * np.cos(x))
    big = check_gradients(lambda x: 1e4 * _fn(x), _X, grad_fn=lambda ct, x: _grad(1e4 * ct, x))
    for report in (zero, big):
        assert report.ok and report.notes == (), report.summary


def test_a_time_axis_the_output_does_not_have_disables_time_localisation():
    report = check_gradients(_fn, _X, grad_fn=lambda ct, x: 1.001 * _grad(ct, x), time_axis=1)
    assert report.status == "wrong" and report.inputs[0].bad_output_steps == ()


def test_a_low_resolution_pass_is_noted_unless_a_float32_forward_explains_it():
    """sin(1000 x) at step 0.4: the only smooth stencil (h/256) leaves a resolution of ~1e-5: a
    correct verdict with a note to try another step. A forward in float32 has its own note instead."""
    x = np.linspace(0.5, 1.5, 5)
    curvy = check_gradients(
        lambda x: np.sin(1000 * x), (x,), grad_fn=lambda ct, x: ct * 1000 * np.cos(1000 * x), step=0.4
    )
    assert curvy.ok and curvy.inputs[0].resolution > 1e-6
    assert curvy.notes == (
        "low resolution (> 1e-6 relative) for ['inputs[0]']: the reference is not accurate there (evaluation noise "
        "or curvature on the scale of the step); try another step",
    )
    noisy = check_gradients(lambda x: _fn(x.astype(np.float32)).astype(np.float64), _X, grad_fn=_grad)
    assert noisy.ok and noisy.inputs[0].resolution > 1e-6
    assert len(noisy.notes) == 1 and "FLOAT32 PRECISION in the forward" in noisy.notes[0]


def test_state_is_the_models_initial_state():
    """check_gradients(model, x, state=h0) is the check of model_target(model, x, h0): the same
    references, direction for direction, and not those of a zero initial state."""
    import gradtheory as gt
    from gradtheory.check import model_target

    model = gt.RNN(3, 4)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    h0 = np.random.default_rng(1).standard_normal((1, 2, 4))
    given = check_gradients(model, x, state=h0)
    assert given.ok
    assert [c.reference for c in given.inputs] == [
        c.reference for c in check_gradients(model_target(model, x, h0)).inputs
    ]
    assert [c.reference for c in given.inputs] != [c.reference for c in check_gradients(model, x).inputs]


def test_the_second_order_check_is_linear_in_grad_outputs():
    """order=2 differentiates the gradient of L = <u, fn> (u = grad_outputs): doubling u doubles
    the Hessian-vector product and its reference (same seeded directions), to round-off."""
    W, x = _W_and_x()
    u = torch.randn(7, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = CheckTarget(lambda W: torch.tanh(x @ W.T), (W,), names=("W",))
    one, two = (check_gradients(target, order=2, grad_outputs=k * u) for k in (1.0, 2.0))
    assert one.ok and two.ok
    assert two.inputs[0].analytic == pytest.approx(2 * one.inputs[0].analytic, rel=1e-12)
    assert two.inputs[0].reference == pytest.approx(2 * one.inputs[0].reference, rel=1e-9)


def test_mode_both_pins_the_rng_for_the_forward_mode_run_too():
    """Dropout inside fn: with the global RNG pinned both the reverse and the forward-mode checks
    see one mask and pass."""
    W, x = _W_and_x()
    target = CheckTarget(lambda W: torch.nn.functional.dropout(torch.tanh(x @ W.T), 0.3), (W,), names=("W",))
    report = check_gradients(target, mode="both")
    assert report.ok and [c.status for c in report.inputs] == ["correct", "correct"], report.summary


def test_a_low_precision_fn_that_cannot_run_in_float64_says_why_or_refuses_reference_float64():
    """float32 inputs, reference 'auto': a fn that returns float32 whatever its inputs, or raises
    in float64 (a captured float32 weight), is checked against its own precision with a note
    saying why; reference='float64' refuses it, naming the reason."""
    a, W32 = _float32_a_and_W32()
    casts = CheckTarget(lambda a: torch.tanh(a).float(), (a,), names=("a",))
    mixes = CheckTarget(lambda a: torch.tanh(W32 @ a), (a,), names=("a",))
    note = check_gradients(casts).notes[0]
    assert note.startswith("fn could not be run in float64 (its outputs were ['float32'], not float64): the ref")
    (note,) = [n for n in check_gradients(mixes).notes if n.startswith("fn could not be run in float64")]
    assert note.startswith("fn could not be run in float64 (it raised RuntimeError: ")
    with pytest.raises(ValueError, match=r"^reference='float64': fn cannot be run in float64 \(its outputs were"):
        check_gradients(casts, reference="float64")
    with pytest.raises(ValueError, match=r"^reference='float64': fn cannot be run in float64 \(it raised Runtime") as e:
        check_gradients(mixes, reference="float64")
    assert isinstance(e.value.__cause__, RuntimeError)  # the user's error, chained
    broken = CheckTarget(lambda a: torch.tanh(a) * (1.0 if a.dtype == torch.float32 else math.nan), (a,))
    assert (
        "fn could not be run in float64 (its float64 outputs were not finite): the reference uses"
        in (check_gradients(broken).notes[0])
    )
