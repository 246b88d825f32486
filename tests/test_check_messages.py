"""The checker's words (gradtheory/check/gradients.py, _localise.py): every finding, note and
error a user reads, word for word and number for number. A report is read by people deciding
whether their backward is right; its sentences and the numbers in them are part of the
interface, so each is pinned here once, on a case that produces it. Written from the mutation
survivors of gradients.py (README, "Contributing")."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from test_check_verdicts import _X, A, _float32_a_and_W32, _fn, _grad, _W_and_x

import gradtheory as gt
from gradtheory import _check_examples as ex
from gradtheory.check import CheckTarget, check_gradients
from gradtheory.check import gradients as checker

X = _X[0]


def _torch_target(*, requires_grad: bool = True) -> CheckTarget:
    W, x = _W_and_x(requires_grad=requires_grad)
    return CheckTarget(lambda W: torch.tanh(x @ W.T), (W,), names=("W",))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: check_gradients(_fn, (X,), state=np.ones(3)),
            TypeError,
            "state= and forward_args= are for a torch.nn.Module or a gradtheory model; pass a function's arguments "
            "in inputs",
        ),
        (
            lambda: check_gradients(_torch_target(), order=2, mode="forward"),
            NotImplementedError,
            "order=2 with mode='forward' (forward-over-reverse) is not supported: order=2 checks the double backward "
            "(mode='reverse')",
        ),
        (
            lambda: check_gradients(_torch_target(requires_grad=False)),
            ValueError,
            "no input requires grad: mark the tensors to check with .requires_grad_(True) (as for "
            "torch.autograd.gradcheck); no tensor of inputs has requires_grad=True",
        ),
        (
            lambda: check_gradients(gt.RNN(3, 4), np.ones((5, 2, 3)), grad_fn=lambda *a: None),
            TypeError,
            "grad_fn was given, but a gradtheory model (its hand-written BPTT) has its own backward; omit grad_fn",
        ),
        (
            lambda: check_gradients(CheckTarget(_fn, (X,), grad_fn=_grad), grad_fn=_grad),
            TypeError,
            "grad_fn was given, but the CheckTarget has its own backward; omit grad_fn",
        ),
    ],
    ids=["state-for-a-function", "order-2-forward", "no-requires-grad", "model-grad-fn", "target-grad-fn"],
)
def test_errors_say_what_is_wrong_in_full(call, error, message):
    with pytest.raises(error) as e:
        call()
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("option", "error"), [("mode", ValueError), ("pin_rng", TypeError), ("raise_exception", TypeError)]
)
def test_a_bad_option_is_named(option, error):
    with pytest.raises(error, match=rf"^{option}\b"):
        check_gradients(_fn, (X,), grad_fn=_grad, **{option: "sideways"})


def test_the_words_for_a_transposed_gradient_and_for_every_output_step():
    from test_check_localise import _time_report, _transposed_report

    assert _transposed_report(5, seed=3).inputs[0].findings == (
        "the gradient is TRANSPOSED: grad.T matches the reference",
    )
    every = _time_report(list(range(7))).inputs[0]
    assert every.findings[-1] == "the loss of every output step 0..6 (time axis 0) gives a wrong gradient"


def test_the_words_of_the_float32_backward_diagnosis():
    from test_check_localise import _report, _spread

    c = _report(_spread(1e-7), scale=1e3).inputs[0]
    assert c.findings[-1] == (
        f"relative error {c.relative_error:.1e} is of the order of float32 round-off (u = 6.0e-08) amplified, while "
        "the forward's measured noise is at float64 level: was part of the backward computed in float32?"
    )


def test_the_words_of_a_forward_that_moves_and_of_a_backward_that_moves():
    """Relative moves of exactly 1e-6 (the second evaluation or backward pass scaled by 1 + 1e-6)
    are reported as '1e-06 of its largest element'."""
    calls = []

    def fn(x):
        calls.append(1)
        return _fn(x) * (1 + 1e-6 * (len(calls) - 1))

    report = check_gradients(fn, (X,), grad_fn=_grad, names=("x",))
    y = _fn(X)
    (note,) = report.notes
    assert note == (
        f"fn is NOT DETERMINISTIC: two evaluations at the same inputs differ: output (shape (3,)) moved by up to "
        f"{1e-6 * np.max(np.abs(y)):.3g} (1e-06 of its largest element). No gradient can be judged against finite "
        "differences of a random function. Likely causes: dropout or another random op drawing from an RNG that is "
        "not the torch/numpy/random global one; a module or layer built inside fn (new random weights at each "
        "call); a generator of its own (np.random.default_rng() without a seed, a torch.Generator) or state kept "
        "between calls (a counter, a cache, a running statistic)."
    )
    passes = []

    def alternating(ct, x):
        passes.append(1)
        return _grad(ct, x) * (1 + 1e-6 * (len(passes) % 2 == 0))

    (finding,) = check_gradients(_fn, (X,), grad_fn=alternating).inputs[0].findings
    assert re.fullmatch(
        r"INCONCLUSIVE: the backward is not deterministic: two backward passes at the same point and cotangent gave "
        r"gradients differing by up to \S+ \(1e-06 of the largest element\): a random op in the backward, or a "
        r"backward that does not recompute what the forward drew",
        finding,
    ), finding


def test_the_words_of_the_kink_and_stability_findings():
    step = 0.026957  # step / 256 = 1.053e-4 prints as 1.1e-04 (step / 257 would print 1.0e-04)
    assert checker._kink_finding([((0.0, 1e-3), step)], step) == (
        "INCONCLUSIVE: a kink (a point where fn is not differentiable: relu, abs, max, clipping) is located along the "
        "direction within 1.0e-03 of the point (in units of the direction, steps down to 1.1e-04); the finite "
        "differences cannot be trusted across it, so this input is not judged"
    )
    assert checker._kink_finding([], step) == (
        "INCONCLUSIVE: the central differences never behaved like a smooth function's (they do not converge as h^2, "
        "or fn returned non-finite values) at steps down to 1.1e-04 along 3 directions; no kink could be located: "
        "fn may be non-differentiable, leave its domain or be too curved on the scale of the step (try a smaller "
        "step=); this input is not judged"
    )
    from test_check_probe_choice import _cmp, _unstable

    _, finding = _unstable(_cmp(reference=1.5))
    assert finding == (
        "INCONCLUSIVE: the reference is not stable across step sizes (D = 1.000000000000e+00 at step 2.0e-02, "
        f"1.500000000000e+00 at step {0.02 / 16:.1e}): kinks near the point (a piecewise-linear function such as a ReLU "
        "network can look smooth on a few steps); the disagreement with the gradient cannot be blamed on the backward"
    )


def test_the_words_of_an_unresolved_low_precision_pass():
    """bfloat16 evaluations of the Elman example: tolerances of the derivative's own size."""
    inputs = tuple(t.detach().to(torch.bfloat16).requires_grad_(True) for t in ex.elman_inputs())
    report = check_gradients(ex.elman_function(), inputs, names=ex.ELMAN_NAMES, reference="native")
    unresolved = [c for c in report.inputs if any("leave nothing to judge" in f for f in c.findings)]
    assert unresolved
    for c in unresolved:
        assert c.findings == (
            f"INCONCLUSIVE: the tolerance {c.tolerance:.1e} is {c.tolerance / abs(c.reference):.2g} of the derivative "
            "itself (resolution >= 0.5): the precision (bfloat16) and the noise leave nothing to judge; try "
            "reference='float64' or a higher precision",
        )
    (note,) = report.notes
    assert re.fullmatch(
        r"LOW PRECISION: inputs in bfloat16, backward in their precision; reference from evaluations in bfloat16; "
        r"measured evaluation noise \S+ of \|\|w \* fn\|\|; step \S+ chosen for this noise \(eps\^\(1/9\), eps the "
        r"relative noise\); tolerances from this noise and the backward's round-off in its precision: the achieved "
        r"resolution is the per-input 'resolution'",
        note,
    ), note


def test_the_words_of_an_unreliable_comparison(monkeypatch):
    """Outputs scaled by 1e-3 (|D| < 1): the disagreement is stated relative to |D|."""
    real = checker._best_probe
    monkeypatch.setattr(checker, "_best_probe", lambda *a: real(*a)._replace(accepted=False))
    c = check_gradients(lambda x: 1e-3 * _fn(x), (X,), grad_fn=lambda ct, x: 1.001e-3 * _grad(ct, x)).inputs[0]
    assert abs(c.reference) < 1e-2
    assert c.findings == (
        "INCONCLUSIVE: the reference disagrees with the gradient by 1.0e-03 relative, but no stencil passed the "
        "accuracy test (Richardson estimate above 1e-8 |D| and dominated by truncation at every step tried: kinks "
        "or strong curvature near the point), so the disagreement cannot be blamed on the backward",
    )


def test_the_words_of_an_unread_input_a_float32_forward_and_inputs_modified_in_place():
    captured = X.copy()
    c = check_gradients(lambda x: np.tanh(A @ captured), (X,), grad_fn=_grad, localise=False).inputs[0]
    assert c.findings == (
        "fn's output did not change at all when this input was perturbed: does fn read it? (a forward that uses a "
        "captured copy, e.g. self.params, instead of its argument)",
    )
    noisy = check_gradients(lambda x: _fn(x.astype(np.float32)).astype(np.float64), (X,), grad_fn=_grad)
    (note,) = noisy.notes
    assert re.fullmatch(
        r"fn's measured evaluation noise is \S+ of \|\|w \* fn\|\|: FLOAT32 PRECISION in the forward \(float32 "
        r"round-off u = 6\.0e-8; float64 gives ~1e-16\), e\.g\. a float32 hidden state, weight or cast; tolerances "
        r"come from this noise, so the check resolves only what 'resolution' says",
        note,
    ), note

    def scales_in_place(x, y):
        out = np.tanh(A @ x) + y.sum()
        x *= 2
        y += 1
        return out

    report = check_gradients(
        scales_in_place,
        (X, np.ones(2)),
        grad_fn=lambda ct, x, y: (_grad(ct, x), np.full(2, ct.sum())),
        names=("x", "y"),
    )
    assert report.ok and report.notes == (
        "fn modified its input(s) in place: x, y. The check gives fn fresh copies, so the verdict is unaffected, "
        "but code that reuses those arrays after calling fn sees changed values",
    )


def test_the_words_of_the_mode_and_order_notes():
    target = _torch_target()
    assert check_gradients(target, mode="both").notes == (
        "mode='both': forward-mode AD (jvp, <w, J v>) checked against the same directional differences "
        "('(forward)' inputs)",
    )
    assert check_gradients(target, mode="forward").notes == (
        "mode='forward': forward-mode AD (jvp, <w, J v>) checked against the same directional differences",
    )
    assert check_gradients(target, order=2).notes == (
        "order=2: the derivative of the backward (Hessian-vector products of <w, fn> by double backward) checked "
        "against Richardson differences of the gradient at shifted points; each input is the gradient's derivative "
        "along a direction of that input",
    )


def test_the_reason_fn_cannot_run_in_float64_quotes_the_first_line_of_its_error():
    a, W32 = _float32_a_and_W32()
    with pytest.raises(RuntimeError) as e:
        torch.tanh(W32 @ a.double())
    first_line = str(e.value).splitlines()[0]
    note = check_gradients(CheckTarget(lambda a: torch.tanh(W32 @ a), (a,))).notes[0]
    assert note == (
        f"fn could not be run in float64 (it raised RuntimeError: {first_line}): the reference uses evaluations in "
        "the inputs' precision"
    )


def test_an_error_without_a_message_is_quoted_as_its_type():
    """fn raises a bare RuntimeError() when run in float64: the reason names the type and an empty
    message."""
    a = torch.linspace(0.1, 0.9, 4).requires_grad_(True)

    def fn(a):
        if a.dtype == torch.float64:
            raise RuntimeError
        return torch.tanh(a)

    assert check_gradients(CheckTarget(fn, (a,))).notes[0] == (
        "fn could not be run in float64 (it raised RuntimeError: ): the reference uses evaluations in the inputs' "
        "precision"
    )
