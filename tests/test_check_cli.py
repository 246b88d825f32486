"""``gradtheory check MODULE:FACTORY``: exit status, report on stdout, progress bar on stderr.

Statement: the command builds the user's target from the factory, runs check_gradients (and
check_stability for a single-layer recurrent model) and exits 0 when the gradients match, 1 when
they do not, 2 when the target cannot be loaded.
"""

from __future__ import annotations

import textwrap

import pytest

from gradtheory.cli import main


@pytest.fixture(autouse=True)
def _restore_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_torch_module_factory_passes_and_reports_stability(capsys):
    code = main(["check", "gradtheory._check_examples:torch_lstm_factory"])
    out, err = capsys.readouterr()
    assert code == 0, out
    assert "check_gradients: gradients OK" in out
    assert "check_stability (LSTM): regime" in out
    assert "gradients [##############################] 5/5 bias_hh_l0" in err  # the progress bar


def test_wrong_backward_exits_one_with_the_localised_summary(capsys):
    code = main(["check", "gradtheory._check_examples:buggy_lstm_factory", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "gradients WRONG for 6 of 6 inputs" in out
    assert "wrong in every block along axis 0 (time steps)" in out
    assert err == ""


def test_factory_in_a_file_returning_fn_inputs_and_a_stability_pair(tmp_path, capsys):
    path = tmp_path / "my_cells.py"
    path.write_text(
        textwrap.dedent("""
        import numpy as np
        import gradtheory as gt

        def numpy_rnn():
            model = gt.RNN(2, 3, nonlinearity="identity", seed=0)
            model.params["weight_hh_l0"] = 1.5 * np.eye(3)
            x = np.random.default_rng(0).standard_normal((12, 2))
            fn, inputs = (lambda a: np.sin(a), (np.linspace(0, 1, 4),))
            return {"fn": fn, "inputs": inputs, "grad_fn": lambda w, a: (w * np.cos(a),),
                    "stability": (model, x)}

        def numpy_gru():
            return gt.GRU(2, 4, seed=1), np.random.default_rng(1).standard_normal((15, 2))

        def plain_pair():
            import torch
            a = torch.linspace(0, 1, 4, dtype=torch.float64, requires_grad=True)
            return torch.sin, (a,)
    """)
    )
    code = main(["check", f"{path}:numpy_rnn", "--quiet", "--fail-on-regime", "exploding"])
    out, _ = capsys.readouterr()
    # identity RNN with W_hh = 1.5 I: rate ln 1.5 > 0, exploding, on the envelope
    assert "regime EXPLODING" in out and "+0.4055" in out
    assert code == 1
    assert main(["check", f"{path}:numpy_rnn", "--quiet"]) == 0
    assert main(["check", f"{path}:numpy_gru", "--quiet"]) == 0
    out, _ = capsys.readouterr()
    assert "gradients OK" in out and "check_stability (GRU): regime" in out
    assert main(["check", f"{path}:plain_pair", "--quiet", "--no-stability"]) == 0
    out, _ = capsys.readouterr()
    assert "gradients OK" in out


def test_unloadable_targets_exit_two(tmp_path, capsys):
    assert main(["check", "no_such_module_xyz:factory"]) == 2
    assert "cannot load no_such_module_xyz:factory: ModuleNotFoundError" in capsys.readouterr().err
    assert main(["check", "gradtheory._check_examples"]) == 2
    assert "must be MODULE:FACTORY" in capsys.readouterr().err
    path = tmp_path / "odd.py"
    path.write_text("def f():\n    return 42\n")
    assert main(["check", f"{path}:f"]) == 2
    assert "the factory must return (fn, inputs)" in capsys.readouterr().err


USER_FILE = """
import numpy as np
from gradtheory import _check_numpy_examples as nx


def correct():
    return nx.gru_dropout_problem()


def wrong():
    return nx.gru_dropout_problem("flip")


def random_forward():
    problem = nx.rnn_problem()
    inner = problem["fn"]

    def fn(*args):
        return inner(*args) * np.random.default_rng().uniform(0.5, 1.5)

    problem["fn"] = fn
    return problem


def raising():
    problem = nx.rnn_problem()

    def grad_fn(dscores, *args):
        return users_helper(dscores)

    problem["grad_fn"] = grad_fn
    return problem


def users_helper(d):
    return d @ np.ones((3, 3))  # shapes (2, 6, 2) @ (3, 3): ValueError


def broken_factory():
    raise RuntimeError("the factory itself fails")
"""


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "users_rnn.py"
    path.write_text(USER_FILE)
    return path


def test_exit_status_is_0_correct_1_wrong_3_inconclusive(user_file, capsys):
    """The dropout GRU (mask from np.random) verifies with pinned RNGs (0), its sign-flipped
    backward fails (1), and the same correct code with pinning off is inconclusive (3)."""
    assert main(["check", f"{user_file}:correct", "--quiet"]) == 0
    assert main(["check", f"{user_file}:wrong", "--quiet"]) == 1
    capsys.readouterr()
    assert main(["check", f"{user_file}:correct", "--quiet", "--no-pin-rng"]) == 3
    out, _ = capsys.readouterr()
    assert "INCONCLUSIVE" in out and "RNG pinning is off" in out
    assert main(["check", f"{user_file}:random_forward", "--quiet"]) == 3
    assert "fn is NOT DETERMINISTIC" in capsys.readouterr().out


def test_users_exception_exits_4_with_their_traceback(user_file, capsys):
    code = main(["check", f"{user_file}:raising", "--quiet"])
    _, err = capsys.readouterr()
    assert code == 4
    assert "gradtheory check: your code raised ValueError while running grad_fn:" in err
    assert "users_rnn.py" in err and "in users_helper" in err and "return d @ np.ones((3, 3))" in err
    assert "gradtheory/check" not in err  # the traceback is the user's, not gradtheory's
    assert main(["check", f"{user_file}:broken_factory", "--quiet"]) == 4
    _, err = capsys.readouterr()
    assert "RuntimeError: the factory itself fails" in err and "in broken_factory" in err


def test_json_report(user_file, capsys):
    import json

    assert main(["check", f"{user_file}:wrong", "--quiet", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["exit_status"] == 1 and data["gradients"]["status"] == "wrong"
    assert {c["name"] for c in data["gradients"]["inputs"]} == {
        "x",
        "h0",
        "params['W_ih']",
        "params['W_hh']",
        "params['b_ih']",
        "params['b_hh']",
    }
    assert data["stability"] == {"skipped": "no recurrent model"}
