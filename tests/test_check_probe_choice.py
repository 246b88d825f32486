"""Which stencil the checker trusts (gradtheory/check/gradients.py: ``_best_probe``, ``_refine``,
``_unstable_reference``, ``_kink_finding``): the policy stated in their docstrings, tested on a
session whose probes and comparisons are scripted, so that every branch is reached with numbers
chosen to tell the rule from its near misses. Written from the mutation survivors of gradients.py
(README, "Contributing")."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gradtheory.check import gradients
from gradtheory.check._probe import Derivative
from gradtheory.check._session import Comparison, Options

H = 0.02  # the session's step
LEVELS = 4


def _cmp(*, reference=1.0, estimate=1e-12, tolerance=1e-10, error=0.0, analytic=None, smooth=True,
         truncation=True, kink=None) -> Comparison:  # fmt: skip
    d = Derivative(reference, estimate, smooth, truncation, kink)
    return Comparison(reference + error if analytic is None else analytic, reference, estimate, tolerance, error, d)


class _Scripted:
    """The parts of a Session the probe policy uses: ``probe`` records each step asked for and
    ``compare`` returns the next scripted comparison (recording the gradient it was given)."""

    def __init__(self, comparisons, *, method="richardson"):
        self.options = Options(method, H, LEVELS, 1, True)
        self.backend = SimpleNamespace(checked=[SimpleNamespace(x=np.linspace(1.0, 2.0, 3))])
        self.rng = np.random.default_rng(0)
        self.steps: list[float] = []
        self.gradients: list = []
        self._script = iter(comparisons)

    def probe(self, index, v, step):
        self.steps.append(step)
        return SimpleNamespace(direction=v, steps=[step / 2**j for j in range(LEVELS)])

    def compare(self, g, v, probe, wm=None):
        self.gradients.append(g)
        return next(self._script)


G = np.ones(3)


def test_the_first_usable_accurate_probe_is_accepted_and_kinks_on_the_way_are_kept():
    """Steps h, h/16, h/256 in turn: a stencil with a located kink is not usable (its kink is kept
    with the step), an accurate usable one is accepted at once: estimate at most 1e-8 |D|."""
    kinked = _cmp(kink=(1e-3, 2e-3))
    accurate = _cmp(reference=2.0, estimate=1e-8 * 2.0)  # exactly at the bound: accepted
    s = _Scripted([kinked, accurate])
    choice = gradients._best_probe(s, 0, G)
    assert s.steps == [H, H / 16]
    assert choice.comparison is accurate and choice.accepted is True
    assert choice.kinks == [((1e-3, 2e-3), H)] and choice.probe.steps[0] == H / 16


def test_a_probe_at_the_round_off_level_is_accepted_whatever_its_estimate():
    """Not truncation dominated: a smaller step cannot do better, so the probe is accepted even
    with an estimate of 1e-3 |D|."""
    rounded = _cmp(estimate=1e-3, truncation=False)
    choice = gradients._best_probe(_Scripted([rounded]), 0, G)
    assert choice == gradients._Choice(rounded, choice.probe, [], True)


def test_without_an_accurate_probe_the_smallest_relative_estimate_is_kept_but_not_accepted():
    """Three directions x three steps, all usable and truncation dominated above 1e-8 |D|: the
    probe kept is the one with the smallest estimate / |D| (here the 6th; the smallest absolute
    estimate, the smallest estimate x |D| and the smallest analytic value are elsewhere, and so is
    the smallest estimate / max(|D|, 1)), and it is not accepted."""
    rows = [  # (reference, estimate, analytic)
        (0.1, 5e-4, 0.3),  # relative 5e-3; smallest estimate x |D| (tied with the 4th, first)
        (1.0, 1e-2, 1.0),
        (1.0, 2e-2, 1.0),
        (0.5, 1e-4, 0.5),  # smallest absolute estimate and estimate / max(|D|, 1) (tied, first)
        (1.0, 3e-2, 1.0),
        (10.0, 1e-3, 9.0),  # relative 1e-4: the one to keep (second direction, step h/256)
        (1.0, 5e-2, 1.0),
        (1.0, 6e-2, -5.0),  # smallest analytic value
        (1.0, 7e-2, 1.0),
    ]
    script = [_cmp(reference=r, estimate=e, analytic=a) for r, e, a in rows]
    s = _Scripted(script)
    choice = gradients._best_probe(s, 0, G)
    assert s.steps == [H, H / 16, H / 256] * 3
    assert choice == gradients._Choice(script[5], choice.probe, [], False)
    assert choice.probe.steps[0] == H / 256


def test_no_usable_probe_gives_no_comparison():
    """Every stencil not smooth (e.g. NaN on one side): no comparison, not accepted, the kinks
    found on the way returned."""
    script = [_cmp(smooth=False)] * 8 + [_cmp(kink=(0.0, 1e-4))]
    s = _Scripted(script)
    choice = gradients._best_probe(s, 0, G)
    assert choice == gradients._Choice(None, None, [((0.0, 1e-4), H / 256)], False)
    assert len(s.steps) == 9


# _refine: a truncation-dominated comparison that neither clearly passes nor has reached the
# round-off floor is tried again at a 4x smaller step along the same direction.
TRUNCATED = _cmp(estimate=1e-6, tolerance=1e-5, error=5e-6)  # error 0.5 tolerance


def _refined(c, second):
    s = _Scripted([second])
    probe = SimpleNamespace(direction=np.ones(3), steps=[H / 2**j for j in range(LEVELS)])
    return s, gradients._refine(s, 0, G, c, probe)


def test_a_truncated_comparison_is_refined_at_a_quarter_of_the_step_and_the_better_one_kept():
    s, (c, probe) = _refined(TRUNCATED, better := _cmp(estimate=1e-9, tolerance=1e-8, error=5e-6))
    assert s.steps == [H / 4] and c is better and probe.steps[0] == H / 4
    assert s.gradients == [G]
    s, (c, _) = _refined(TRUNCATED, _cmp(estimate=1e-5))  # less accurate: kept the first
    assert c is TRUNCATED
    s, (c, _) = _refined(TRUNCATED, _cmp(estimate=1e-9, smooth=False))  # not usable: kept the first
    assert c is TRUNCATED


@pytest.mark.parametrize(
    "c",
    [
        _cmp(estimate=1e-6, tolerance=1e-5, error=5e-6, truncation=False),  # round-off floor reached
        _cmp(reference=1e3, estimate=1e-10, tolerance=1e-9, error=5e-10),  # resolution 1e-12 already
        _cmp(estimate=1e-6, tolerance=1e-5, error=5e-7),  # passes with a margin of 20
    ],
    ids=["round-off", "resolved", "clear-pass"],
)
def test_a_comparison_is_not_refined_when_a_smaller_step_cannot_change_the_verdict(c):
    s, (kept, _) = _refined(c, _cmp(estimate=0.0))
    assert s.steps == [] and kept is c


def _unstable(c2, *, method="richardson"):
    s = _Scripted([c2], method=method)
    probe = SimpleNamespace(direction=np.ones(3), steps=[H / 2**j for j in range(LEVELS)])
    c = _cmp(reference=1.0, tolerance=1e-10, error=1e-3)
    return s, gradients._unstable_reference(s, 0, c, probe)


def test_a_reference_confirmed_by_a_stencil_16x_smaller_is_stable():
    """Same direction, step h/16, no gradient (only the references are compared): references within
    the sum of the two tolerances."""
    s, finding = _unstable(_cmp(reference=1.0 + 1.5e-10, tolerance=1e-10))
    assert finding == "" and s.steps == [H / 16] and s.gradients == [None]


@pytest.mark.parametrize(
    "c2", [_cmp(reference=1.0 + 3e-10, tolerance=1e-10), _cmp(reference=1.0, smooth=False)], ids=["moved", "not-smooth"]
)
def test_a_reference_that_moves_or_is_not_smooth_at_a_16x_smaller_step_is_unstable(c2):
    """References 3e-10 apart with tolerances 1e-10 each, or a smaller stencil that is not smooth:
    the finding gives both references and their steps."""
    _, finding = _unstable(c2)
    tail = "" if c2.derivative.smooth else ", not smooth"
    assert finding.startswith(
        f"INCONCLUSIVE: the reference is not stable across step sizes (D = {1.0:.12e} at step {H:.1e}, "
        f"{c2.reference:.12e} at step {H / 16:.1e}{tail}): kinks near the point"
    )


def test_a_complex_step_reference_is_not_re_probed():
    s, finding = _unstable(_cmp(reference=5.0), method="complex")
    assert finding == "" and s.steps == []


def test_the_kink_finding_says_where_the_first_kink_is():
    near = gradients._kink_finding([((0.0, 1e-3), H), ((2e-3, 4e-3), H)], H)
    assert "located along the direction within 1.0e-03 of the point (in units of the direction, steps" in near
    far = gradients._kink_finding([((2e-3, 4e-3), H), ((0.0, 1e-3), H)], H)
    assert "along the direction at a distance between 2.0e-03 and 4.0e-03 (in units" in far
    assert f"steps down to {H / 256:.1e})" in far
    none = gradients._kink_finding([], H)
    assert none.startswith("INCONCLUSIVE: the central differences never behaved like a smooth function's")
    assert f"at steps down to {H / 256:.1e} along 3 directions" in none
