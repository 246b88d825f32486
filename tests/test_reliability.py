"""Regression tests of issue 14 (reliability): no side effects on the user's process, and every
bad input answered with a clear exception naming the argument.

Each test states the behaviour a user can rely on; the oracle is either an independent
computation (torch's own module, a fresh interpreter, the value before the call) or the exact
exception and message.
"""

from __future__ import annotations

import fractions
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

import gradtheory as gt
import gradtheory.strategies as gst
from gradtheory.cli import main


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    root = os.path.dirname(os.path.dirname(gt.__file__))  # the gradtheory under test, not another install
    environment = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environment, timeout=120
    )


# --- side effects on the user's process ---------------------------------------------------------


def test_importing_gradtheory_never_redefines_a_users_hypothesis_profiles():
    """A user's own "ci" and "dev" profiles (and the one loaded) are the same after importing
    gradtheory.strategies and the pytest plugin; gradtheory's profiles live under "gradtheory-*"."""
    out = _python(
        """
        from hypothesis import settings
        settings.register_profile("ci", max_examples=101)
        settings.register_profile("dev", max_examples=7)
        settings.load_profile("ci")
        import gradtheory.strategies, gradtheory.pytest_plugin
        print(settings().max_examples, settings.get_profile("ci").max_examples,
              settings.get_profile("dev").max_examples, settings.get_profile("gradtheory-ci").max_examples)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["101", "101", "7", "20"]


def test_a_bad_gradtheory_profile_is_a_usage_error_not_an_internal_error(tmp_path):
    """GRADTHEORY_PROFILE=bogus: pytest stops with a usage error (exit 4) naming the variable."""
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    root = os.path.dirname(os.path.dirname(gt.__file__))  # the gradtheory under test, not another install
    env = {
        **os.environ,
        "GRADTHEORY_PROFILE": "bogus",
        "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 4, out.stdout + out.stderr
    assert "INTERNALERROR" not in out.stdout + out.stderr
    assert "$GRADTHEORY_PROFILE: profile='bogus' is unknown" in out.stderr


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


class _ProcessWideLimit:
    """A stand-in for threadpoolctl.threadpool_limits with its semantics made explicit: one
    process-wide setting; each limiter saves the value it saw on entry and restores it."""

    threads = 2

    def __init__(self, limits, user_api):
        self.saved = _ProcessWideLimit.threads
        _ProcessWideLimit.threads = limits

    def restore_original_limits(self):
        _ProcessWideLimit.threads = self.saved


def test_interleaved_single_threaded_blas_sections_restore_the_users_setting(monkeypatch):
    """Thread A enters, thread B enters, A leaves (B must still run on one BLAS thread), B leaves:
    the user's setting is back. With one saving limiter per section, A's exit would restore 2
    under B and B's exit would restore A's 1 for the rest of the process."""
    import threadpoolctl

    from gradtheory._logspace import single_threaded_blas

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", _ProcessWideLimit)
    monkeypatch.setattr(_ProcessWideLimit, "threads", 2)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def a():
        with single_threaded_blas():
            a_in.set()
            b_in.wait(20)
        a_out.set()

    def b():
        a_in.wait(20)
        with single_threaded_blas():
            b_in.set()
            a_out.wait(20)
            seen["B after A left"] = _ProcessWideLimit.threads

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == {"B after A left": 1}
    assert _ProcessWideLimit.threads == 2


def test_gradient_flow_from_several_threads_leaves_blas_threads_unchanged():
    model = gt.RNN(4, 32, seed=0)
    x = np.random.default_rng(0).standard_normal((200, 4))
    expected = gt.gradient_flow(model, x)
    before = _blas_threads()
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(gt.gradient_flow(model, x))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert _blas_threads() == before
    assert len(results) == 4 and all(np.array_equal(r, expected) for r in results)


def test_the_cli_example_factory_and_run_audit_leave_torchs_global_rng_alone():
    from gradtheory._check_examples import torch_lstm_factory

    state = torch.get_rng_state().clone()
    module, x = torch_lstm_factory()
    module2, x2 = torch_lstm_factory()
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(x, x2) and torch.equal(module.weight_hh_l0, module2.weight_hh_l0)  # still deterministic
    bound = 1 / 4  # torch's default initialisation U(-1/sqrt(H), 1/sqrt(H)), H = 16
    assert all(float(p.detach().abs().max()) <= bound for p in module.parameters())
    gt.run_audit("bptt-jacobian-product")
    assert torch.equal(torch.get_rng_state(), state)


def test_run_audit_takes_one_id_as_a_string():
    results = gt.run_audit("bptt-jacobian-product")
    assert [r.claim.id for r in results] == ["bptt-jacobian-product"]


def test_editing_forward_output_in_place_does_not_change_the_next_gradient():
    """ForwardResult.output is not the trace that backward reads."""
    model = gt.RNN(2, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2))
    result = model.forward(x)
    d_output = np.ones_like(result.output)
    before = model.backward(result, d_output).params["weight_hh_l0"].copy()
    result.output[...] = 7.0
    after = model.backward(result, d_output).params["weight_hh_l0"]
    assert np.array_equal(before, after)


# --- inputs answered clearly ----------------------------------------------------------------------


def test_backward_and_jacobians_reject_a_result_of_another_model():
    model = gt.RNN(2, 3, seed=0)
    other = gt.LSTM(2, 4, num_layers=2, seed=0)
    foreign = other.forward(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="result must be the ForwardResult of a RNN with this model's layout"):
        model.backward(foreign, np.ones_like(foreign.output))
    with pytest.raises(ValueError, match="result must be the ForwardResult"):
        model.jacobians(gt.RNN(2, 5, seed=0).forward(np.zeros((5, 2))))
    with pytest.raises(TypeError, match="result must be the ForwardResult of this model's forward, got NoneType"):
        model.jacobians(None)
    # the same layout with other weights is a valid result (e.g. from apply)
    same = gt.RNN(2, 3, seed=1).forward(np.zeros((5, 2)))
    assert model.jacobians(same).shape == (5, 3, 3)


def test_a_wrong_shaped_parameter_put_through_the_dict_is_named():
    model = gt.RNN(2, 3, seed=0)
    model.params["weight_hh_l0"] = np.zeros((4, 4))
    with pytest.raises(ValueError, match=r"params\['weight_hh_l0'\] must be an array of shape \(3, 3\), got ndarray"):
        model.forward(np.zeros((5, 2)))


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_a_bad_seed_is_named(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative int or None"):
        gt.RNN(2, 3, seed=seed)


def test_overflow_in_the_recurrence_is_a_floating_point_error_not_a_silent_inf():
    """ReLU with x = 1e308 and W_ih = 1: 2e308 overflows in the first step."""
    model = gt.RNN(2, 3, nonlinearity="relu", seed=0)
    params = dict(model.params)
    params["weight_ih_l0"] = np.ones((3, 2))
    model.params = params
    with pytest.raises(FloatingPointError, match="forward overflowed: state h of layer/direction 0 is not finite"):
        with np.errstate(over="ignore", invalid="ignore"):
            model.forward(np.full((3, 2), 1e308))
    # a large but representable forward whose gradient overflows
    model = gt.RNN(
        1,
        1,
        nonlinearity="relu",
        params={"weight_ih_l0": [[1.0]], "weight_hh_l0": [[1.0]], "bias_ih_l0": [0.0], "bias_hh_l0": [0.0]},
    )
    result = model.forward(np.full((2, 1), 1e300))
    with pytest.raises(FloatingPointError, match="backward overflowed: the gradient of weight_ih_l0"):
        with np.errstate(over="ignore", invalid="ignore"):
            model.backward(result, np.full((2, 1), 1e10))


class _SubRNN(torch.nn.RNN):
    pass


def test_subclasses_of_torch_rnn_are_analysed_like_the_module_they_extend():
    torch_gen = torch.Generator().manual_seed(0)
    base = torch.nn.RNN(2, 3, dtype=torch.float64)
    sub = _SubRNN(2, 3, dtype=torch.float64)
    with torch.no_grad():
        for p, q in zip(base.parameters(), sub.parameters()):
            p.uniform_(-0.5, 0.5, generator=torch_gen)
            q.copy_(p)
    x = np.random.default_rng(1).standard_normal((20, 2))
    assert np.array_equal(gt.gradient_flow(sub, x), gt.gradient_flow(base, x))
    assert gt.check_stability(sub, x).regime == gt.check_stability(base, x).regime


def test_check_stability_accepts_numpy_and_fraction_neutral_bands():
    model = gt.RNN(2, 3, seed=0)
    x = np.random.default_rng(1).standard_normal((20, 2))
    reference = gt.check_stability(model, x, neutral_band=0.25)
    for band in (np.float32(0.25), np.float64(0.25), fractions.Fraction(1, 4)):
        report = gt.check_stability(model, x, neutral_band=band)
        assert (report.regime, report.lyapunov, report.rate) == (reference.regime, reference.lyapunov, reference.rate)
    with pytest.raises(ValueError, match="neutral_band must be >= 0.0, got -1"):
        gt.check_stability(model, x, neutral_band=-1)
    with pytest.raises(TypeError, match="neutral_band must be a real number, got str"):
        gt.check_stability(model, x, neutral_band="0.1")


def test_strategy_options_are_checked_when_the_strategy_is_built():
    with pytest.raises(TypeError, match="spectral_norm must be a positive finite number, got True"):
        gst.matrices(3, spectral_norm=True)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        gst.sequences(steps=0)
    with pytest.raises(ValueError, match="max_layers must be >= 1, got 0"):
        gst.models(max_layers=0)
    with pytest.raises(ValueError, match="bound must be > 0, got -1"):
        gst.reals(-1)
    with pytest.raises(ValueError, match=r"families has unknown entries \['rn'\]"):
        gst.models(families=["rn"])
    with pytest.raises(TypeError, match="bias must be a bool"):
        gst.models(bias="yes")
    with pytest.raises(ValueError, match="input_size must be >= 1, got 0"):
        gst.sequences(input_size=0)


def test_strategy_options_take_numpy_scalars_fractions_and_single_names():
    from hypothesis import given, settings

    seen = []

    @settings(max_examples=5, database=None, derandomize=True)
    @given(gst.matrices(np.int64(3), spectral_norm=fractions.Fraction(3, 2), structures="dense"))
    def draw(A):
        seen.append(A)
        assert A.shape == (3, 3)
        assert abs(np.linalg.norm(A, 2) - 1.5) <= 1e-12 * 1.5  # the strategy's documented accuracy

    draw()
    assert seen


def test_symbolic_parameter_count_rejects_non_positive_sizes():
    from gradtheory import symbolic

    assert symbolic.parameter_count("RNN", 2, 3, 1, 1) == 3 * (2 + 3) + 2 * 3
    with pytest.raises(ValueError, match="num_layers must be >= 1, got 0"):
        symbolic.parameter_count("RNN", 2, 3, 0, 1)
    with pytest.raises(ValueError, match="hidden_size must be >= 1, got -3"):
        symbolic.parameter_count("RNN", 2, -3, 1, 1)
    with pytest.raises(TypeError, match="input_size must be an int or a sympy.Symbol, got float"):
        symbolic.parameter_count("RNN", 2.5, 3, 1, 1)


# --- the command line -----------------------------------------------------------------------------


def test_a_factory_raising_system_exit_zero_is_user_code_raising_not_a_pass(tmp_path, capsys):
    path = tmp_path / "exits.py"
    path.write_text("def factory():\n    raise SystemExit(0)\n")
    assert main(["check", f"{path}:factory", "--quiet"]) == 4
    assert "your code raised SystemExit" in capsys.readouterr().err


def test_check_threads_zero_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "gradtheory._check_examples:torch_lstm_factory", "--threads", "0"])
    assert exit_info.value.code == 2
    assert "argument --threads: expected an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "--steps", "0"], "--steps must be >= 1, got 0"),
        (["plot", "--hidden", "-3"], "--hidden must be >= 1, got -3"),
    ],
)
def test_plot_bad_sizes_are_usage_errors(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_plot_and_derive_to_an_unwritable_out_are_usage_errors(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    pytest.importorskip("matplotlib")
    assert main(["plot", "--out", str(blocker / "plots"), "--steps", "5", "--hidden", "2"]) == 2
    err = capsys.readouterr().err
    assert "gradtheory plot: error: --out" in err and "is not a writable directory" in err
    assert "Traceback" not in err
    assert main(["derive", "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert "gradtheory derive: error: --out" in err and "is not a writable directory" in err
    assert "Traceback" not in err


# --- mutation testing of gradtheory/clipping.py: tests that kill survivors ----------------------


def test_clipping_norms_of_overflowing_gradients_are_inf_silently_as_in_torch():
    """||(1e308, 1e308)||_2 overflows to inf; torch returns inf without a floating-point error,
    so gradtheory must not raise even when the user's numpy error state raises."""
    from gradtheory.clipping import total_norm

    with np.errstate(all="raise"):
        assert total_norm([np.array([1e308, 1e308])]) == np.inf
        assert total_norm([np.array([np.inf, 1.0])], norm_type=3.0) == np.inf


def test_clipping_accepts_the_string_inf_and_nested_lists_like_torch():
    from gradtheory.clipping import total_norm

    g = np.array([3.0, -4.0])
    assert total_norm([g], norm_type="inf") == total_norm([g], norm_type=np.inf) == 4.0
    assert total_norm([[3.0, 4.0]]) == 5.0  # a list of numbers is one gradient array


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: gt.clip_grad_norm([np.ones(2)], -1.0), ValueError, "(a negative threshold would flip the gradient)"),
        (lambda: gt.clip_grad_norm([np.ones(2)], 1.0, norm_type=0), ValueError, "torch accepts 0, negative"),
        (lambda: gt.clip_grad_norm([np.ones(2)], 1.0, norm_type="two"), TypeError, "norm_type must be a float >= 1"),
        (lambda: gt.clip_grad_norm([np.ones(2)], 1.0, error_if_nonfinite="yes"), TypeError, "error_if_nonfinite"),
        (lambda: gt.clip_grad_value(["x"], 1.0), TypeError, "must be a float array, got str"),
    ],
)
def test_clipping_messages_name_the_argument_and_the_reason(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)
