"""The pytest plugin (entry point pytest11): options, the gradient_check fixture and
assert_gradients_match as a user's test suite uses them (run in a pytester sandbox).

The user's file is the README's copy-paste example (a custom torch cell with a hand-written
backward): the correct cell must pass, the same cell with the W_hh gradient transposed must fail
with the checker's summary in the pytest output.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _restore_global_state():
    """In-process runs re-run the plugin's pytest_configure, which loads a Hypothesis profile
    globally: put the outer session's profile back (and torch's thread count, set to 1 because
    small kernels on 2 shared cores are far slower with a thread pool)."""
    import torch
    from hypothesis import settings

    profile, threads = settings._current_profile, torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    settings.load_profile(profile)
    torch.set_num_threads(threads)


README_EXAMPLE = '''
import torch
from gradtheory.check import assert_gradients_match


class TanhCell(torch.autograd.Function):
    """h' = tanh(x W_ih^T + h W_hh^T + b) with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, h, W_ih, W_hh, b):
        h_new = torch.tanh(x @ W_ih.T + h @ W_hh.T + b)
        ctx.save_for_backward(x, h, W_ih, W_hh, h_new)
        return h_new

    @staticmethod
    def backward(ctx, dh_new):
        x, h, W_ih, W_hh, h_new = ctx.saved_tensors
        da = dh_new * (1 - h_new**2)
        return da @ W_ih, da @ W_hh, da.T @ x, da.T @ h, da.sum(0)


def unroll(x, h0, W_ih, W_hh, b):  # x: (T, B, I) -> outputs (T, B, H)
    hs, h = [], h0
    for x_t in x:
        h = TanhCell.apply(x_t, h, W_ih, W_hh, b)
        hs.append(h)
    return torch.stack(hs)


def test_tanh_cell_gradients():
    torch.manual_seed(0)
    T, B, I, H = 8, 2, 3, 5
    shapes = [(T, B, I), (B, H), (H, I), (H, H), (H,)]
    inputs = [(0.5 * torch.randn(s, dtype=torch.float64)).requires_grad_() for s in shapes]
    assert_gradients_match(unroll, inputs, names=["x", "h0", "W_ih", "W_hh", "b"], time_axis=0)
'''


def test_readme_example_passes_and_its_transposed_twin_fails_with_the_summary(pytester):
    pytester.makepyfile(
        test_good=README_EXAMPLE, test_bad=README_EXAMPLE.replace("da.T @ h, da.sum(0)", "h.T @ da, da.sum(0)")
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*GradientCheckError: check_gradients: gradients WRONG for 1 of 5 inputs; seed=0*",
            "*[[]FAIL] input 3 'W_hh' shape (5, 5)*",
            "*the gradient is TRANSPOSED: grad.T matches the reference*",
            "FAILED test_bad.py::test_tanh_cell_gradients*",
        ]
    )


def test_gradient_check_fixture_uses_the_seed_option(pytester):
    pytester.makepyfile(
        test_fixture="""
import numpy as np

def test_numpy_function(gradient_check):
    a = np.linspace(-1.0, 1.0, 5)
    report = gradient_check(lambda a: np.sin(a) ** 2, (a,),
                            grad_fn=lambda w, a: (w * 2 * np.sin(a) * np.cos(a),))
    assert report.ok and report.seed == 7

def test_wrong_numpy_gradient(gradient_check):
    a = np.linspace(-1.0, 1.0, 5)
    gradient_check(lambda a: np.sin(a) ** 2, (a,), grad_fn=lambda w, a: (w * np.sin(a) * np.cos(a),))
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--gradtheory-seed=7")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*gradients WRONG for 1 of 1 inputs; seed=7*",
            "*the gradient is SCALED: analytic/reference = 0.5 in every failing block*",
        ]
    )


@pytest.fixture
def restore_hypothesis_profile():
    """In-process pytester runs share Hypothesis' global settings: put the suite's profile back."""
    from hypothesis import settings

    before = settings._current_profile
    yield
    settings.load_profile(before)


def test_plugin_leaves_hypothesis_settings_alone_unless_asked(pytester, monkeypatch, restore_hypothesis_profile):
    """Installing gradtheory must not change another project's Hypothesis profile."""
    from hypothesis import settings

    monkeypatch.delenv("GRADTHEORY_PROFILE", raising=False)
    settings.register_profile("users_own", max_examples=3)
    settings.load_profile("users_own")
    pytester.makepyfile(
        test_profile="""
from hypothesis import settings

def test_profile():
    assert settings._current_profile == "users_own"
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_profile_option_still_selects_the_hypothesis_profile(pytester, restore_hypothesis_profile):

    pytester.makepyfile(
        test_profile="""
from hypothesis import settings

def test_profile():
    assert settings._current_profile == "gradtheory-thorough"
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--gradtheory-profile=thorough")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gradtheory: hypothesis profile 'gradtheory-thorough'"])


def test_an_inconclusive_check_fails_the_users_test(pytester):
    """A forward that draws from an unseeded generator cannot be judged: the fixture fails the
    test (an inconclusive check is never a pass) and says why."""
    pytester.makepyfile(
        test_random="""
import numpy as np

def test_random_forward(gradient_check):
    a = np.linspace(-1.0, 1.0, 5)
    noisy = lambda a: np.sin(a) * np.random.default_rng().uniform(0.9, 1.1)
    gradient_check(noisy, (a,), grad_fn=lambda w, a: (w * np.cos(a),))
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*INCONCLUSIVE: 1 of 1 inputs could not be judged*this is not a pass*", "*fn is NOT DETERMINISTIC*"]
    )


def test_a_failing_assert_gradients_match_shows_the_users_line_not_gradtheorys_internals(pytester):
    """assert_gradients_match hides its own frame (``__tracebackhide__``) and does not raise from
    inside check_gradients: the failure points at the user's call and shows the report, and no
    line of gradtheory's own source."""
    pytester.makepyfile(
        test_hidden="""
import numpy as np
from gradtheory.check import assert_gradients_match

def test_wrong():
    a = np.linspace(-1.0, 1.0, 5)
    assert_gradients_match(np.sin, (a,), grad_fn=lambda w, a: (w * np.sin(a),))
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert_gradients_match(np.sin, (a,)*", "*gradients WRONG for 1 of 1 inputs*"])
    result.stdout.no_fnmatch_line("*raise GradientCheckError(report)*")
    result.stdout.no_fnmatch_line("*gradtheory/check/gradients.py*")
