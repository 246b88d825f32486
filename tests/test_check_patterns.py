"""Test the tester on the code people write: each pattern with a correct and a buggy variant of the
same code, and the verdicts and messages the checker must give.

Statement (gradtheory/check/gradients.py, issue 8): a correct backward is reported "correct", a
wrong one "wrong" (naming the input), and a function that cannot be judged (random forward, kink)
"inconclusive" -- never "correct". Subjects: CS231n-style numpy RNN/LSTM (cache tuples, in-place
updates of the incoming gradient), a min-char-rnn with a parameter dict, a cached GRU layer with
dropout from ``np.random`` (gradtheory/_check_numpy_examples.py), and torch autograd Functions
with ``grad_output.mul_`` and hand-written dropout (gradtheory/_check_examples.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradtheory as gt
from gradtheory import _check_examples as ex
from gradtheory import _check_numpy_examples as nx
from gradtheory.check import GradientCheckError, check_gradients


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------------------------
# verdicts


def test_bool_of_a_report_is_its_verdict_so_assert_fails_on_a_wrong_backward():
    """``assert gt.check_gradients(...)`` passes on a correct backward and fails on a wrong one."""
    assert gt.check_gradients(**nx.rnn_problem())
    report = gt.check_gradients(**nx.rnn_problem("wrong_h"))
    assert report.status == "wrong" and not report.ok and not bool(report)
    with pytest.raises(AssertionError):
        assert gt.check_gradients(**nx.rnn_problem("wrong_h"))


def test_assert_gradients_match_raises_on_inconclusive_with_the_cause():
    problem = nx.gru_dropout_problem()
    with pytest.raises(GradientCheckError) as info:
        gt.assert_gradients_match(**problem, pin_rng=False)
    assert info.value.report.status == "inconclusive"
    assert "INCONCLUSIVE" in str(info.value) and "this is not a pass" in str(info.value)
    assert "fn is NOT DETERMINISTIC" in str(info.value)
    assert gt.assert_gradients_match(**problem).status == "correct"


def test_report_json_round_trips():
    import json

    data = json.loads(gt.check_gradients(**nx.dict_rnn_problem("time_index")).to_json())
    assert data["status"] == "wrong" and data["ok"] is False
    assert [c["name"] for c in data["inputs"] if c["status"] == "wrong"] == ["params['Why']"]
    assert {s["name"] for s in data["skipped"]} == {"params['hidden_size']", "params['learning_rate']"}


# ------------------------------------------------------------------------------------------------
# in-place updates of the incoming gradient (no aliasing)


def test_numpy_lstm_updating_dnext_c_in_place_is_correct_and_its_bug_is_found():
    """CS231n LSTM: ``dnext_c += ...`` on the checker's own cotangent for c_T must not change the
    reference; the same code with ``dprev_c = dnext_c`` (f forgotten) is wrong everywhere."""
    good = check_gradients(**nx.lstm_problem())
    assert good.status == "correct", good.summary
    bad = check_gradients(**nx.lstm_problem("forget"))
    assert bad.status == "wrong"
    assert {c.name for c in bad.failures} == {"x", "h0", "Wx", "Wh", "b"}, bad.summary


def test_numpy_rnn_accumulating_into_dh_in_place_is_correct_and_its_bug_is_localised():
    good = check_gradients(**nx.rnn_problem())
    assert good.status == "correct", good.summary
    bad = check_gradients(**nx.rnn_problem("wrong_h"))
    assert [c.name for c in bad.failures] == ["Wh"], bad.summary
    assert "gradients WRONG for 1 of 6 inputs" in bad.summary


def test_torch_backward_with_grad_output_mul_in_place_is_correct_and_its_bug_is_found():
    """``return grad_output.mul_(1 - y**2)``: the cotangent handed to autograd is a copy."""
    good = check_gradients(ex.inplace_tanh_elman(), ex.elman_inputs(), names=ex.ELMAN_NAMES, time_axis=0)
    assert good.status == "correct", good.summary
    bad = check_gradients(ex.inplace_tanh_elman("slope"), ex.elman_inputs(), names=ex.ELMAN_NAMES, time_axis=0)
    assert bad.status == "wrong" and "W_hh" in {c.name for c in bad.failures}


def test_callers_inputs_are_bit_identical_and_a_mutating_fn_is_noted():
    """A forward that edits its argument in place: the caller's arrays are untouched, the verdict
    is unaffected, and the report says so in a note."""
    a = np.linspace(-1.0, 1.0, 5)
    b = np.linspace(0.5, 2.0, 5)
    before = (a.copy(), b.copy())

    def fn(a, b):
        out = np.tanh(a) * b
        a *= 2.0  # a user's forward reusing its input buffer
        return out

    def grad_fn(w, a, b):
        return w * b * (1 - np.tanh(a) ** 2), w * np.tanh(a)

    report = check_gradients(fn, (a, b), grad_fn=grad_fn, names=("a", "b"))
    assert report.status == "correct", report.summary
    assert np.array_equal(a, before[0]) and np.array_equal(b, before[1])
    assert "fn modified its input(s) in place: a" in report.summary
    wrong = check_gradients(fn, (a, b), grad_fn=lambda w, a, b: (w * b, w * np.tanh(a)), names=("a", "b"))
    assert [c.name for c in wrong.failures] == ["a"]

    x = torch.linspace(-1, 1, 4, dtype=torch.float64, requires_grad=True)
    scratch = torch.zeros(4, dtype=torch.float64)
    before = (x.detach().clone(), scratch.clone())

    def tfn(x, scratch):
        scratch.copy_(torch.sin(x).detach())  # a preallocated buffer, overwritten
        return torch.sin(x) * 2

    report = check_gradients(tfn, (x, scratch), names=("x", "scratch"))
    assert report.status == "correct", report.summary
    assert torch.equal(x.detach(), before[0]) and torch.equal(scratch, before[1])
    assert "fn modified its input(s) in place: scratch" in report.summary
    assert [(s.name, s.reason) for s in report.skipped] == [("scratch", "requires_grad is False")]


# ------------------------------------------------------------------------------------------------
# randomness: dropout verifies with pinned RNGs, a random forward is never correct


@pytest.mark.parametrize("bug", ["flip", "zero", "triple"])
def test_numpy_dropout_from_the_global_rng_verifies_and_a_scaled_backward_fails(bug):
    good = check_gradients(**nx.gru_dropout_problem())
    assert good.status == "correct", good.summary
    bad = check_gradients(**nx.gru_dropout_problem(bug))
    assert bad.status == "wrong"
    assert len(bad.failures) == len(bad.inputs) == 6, bad.summary


@pytest.mark.parametrize("factor", [-1.0, 0.0, 3.0])
def test_torch_dropout_verifies_and_a_scaled_backward_fails(factor):
    fn, inputs, names = ex.dropout_lstm(1.0)
    assert check_gradients(fn, inputs, names=names).status == "correct"
    fn, inputs, names = ex.dropout_lstm(factor)
    bad = check_gradients(fn, inputs, names=names)
    assert bad.status == "wrong" and "x" in {c.name for c in bad.failures}, bad.summary


def test_torch_lstm_with_dropout_in_training_mode():
    """The issue's case: nn.LSTM(3, 4, num_layers=2, dropout=0.5) in training mode verifies with
    pinned RNGs, and is inconclusive (not correct) with pinning off."""
    torch.manual_seed(0)
    m = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    state = torch.get_rng_state()
    assert check_gradients(m, x).status == "correct"
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is restored
    unpinned = check_gradients(m, x, pin_rng=False)
    assert unpinned.status == "inconclusive" and not unpinned.ok
    assert "RNG pinning is off" in unpinned.summary


@pytest.mark.parametrize("bug", ["none", "flip", "triple"])
def test_a_random_forward_is_never_reported_correct(bug):
    """Dropout from an unseeded generator of its own: the base point evaluated twice moves."""
    problem = nx.gru_dropout_problem(bug)
    inner = problem["fn"]

    def fn(x, h0, params):
        np.random.seed(np.random.default_rng().integers(2**31))  # re-seeded from OS entropy
        return inner(x, h0, params)

    report = check_gradients(fn, problem["inputs"], grad_fn=problem["grad_fn"], names=problem["names"])
    assert report.status == "inconclusive" and not report
    text = report.summary
    assert (
        "fn is NOT DETERMINISTIC: two evaluations at the same inputs differ: output (shape (5, 2, 4)) moved by" in text
    )
    assert "a generator of its own" in text and "a module or layer built inside fn" in text


# ------------------------------------------------------------------------------------------------
# structured inputs


def test_parameter_dict_leaves_are_checked_by_name_and_non_arrays_skipped():
    good = check_gradients(**nx.dict_rnn_problem())
    assert good.status == "correct", good.summary
    names = [c.name for c in good.inputs]
    assert names == ["xs", "hprev", "params['Wxh']", "params['Whh']", "params['Why']", "params['bh']", "params['by']"]
    assert [(s.name, s.reason) for s in good.skipped] == [
        ("params['hidden_size']", "not an array (int): passed through unchanged"),
        ("params['learning_rate']", "a Python/numpy float scalar (pass a float64 array to check it)"),
    ]
    assert "skipped \"params['hidden_size']\"" in good.summary
    bad = check_gradients(**nx.dict_rnn_problem("time_index"))
    assert [c.name for c in bad.failures] == ["params['Why']"], bad.summary


def test_checked_selects_leaves_by_name_or_index():
    problem = nx.dict_rnn_problem("time_index")
    only = check_gradients(**problem, checked=["params['Whh']", "xs"])
    assert [c.name for c in only.inputs] == ["xs", "params['Whh']"] and only.status == "correct"
    assert "not selected by checked=" in only.summary
    assert next(c.name for c in check_gradients(**problem, checked="params").inputs) == "params['Wxh']"
    assert [c.name for c in check_gradients(**problem, checked=1).inputs] == ["hprev"]
    with pytest.raises(ValueError, match=r"checked contains 'W_hh', which names no float input leaf"):
        check_gradients(**problem, checked=["W_hh"])


def test_torch_module_inside_the_inputs_has_its_parameters_checked():
    torch.manual_seed(0)
    cell = torch.nn.RNNCell(3, 4, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)

    def fn(x, cell):
        h, hs = torch.zeros(2, 4, dtype=torch.float64), []
        for x_t in x:
            h = cell(x_t, h)
            hs.append(h)
        return torch.stack(hs)

    report = check_gradients(fn, (x, cell), names=("x", "cell"))
    assert report.status == "correct", report.summary
    assert [c.name for c in report.inputs] == ["x", "cell.weight_ih", "cell.weight_hh", "cell.bias_ih", "cell.bias_hh"]


def test_module_with_state_and_its_buggy_twin():
    """check_gradients(module, x, state=(h0, c0)): h0 and c0 are checked; a wrong gate derivative
    in the same module's backward is found in every input."""
    h0, c0 = (0.5 * torch.randn(2, 5, dtype=torch.float64) for _ in range(2))
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    good = check_gradients(ex.hand_lstm_module(), x, state=(h0, c0))
    assert good.status == "correct", good.summary
    assert [c.name for c in good.inputs] == ["x", "h0", "c0", "W_ih", "W_hh", "b"]
    bad = check_gradients(ex.hand_lstm_module("gate"), x, state=(h0, c0))
    assert {c.name for c in bad.failures} == {"x", "h0", "c0", "W_ih", "W_hh", "b"}, bad.summary
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, dtype=torch.float64)
    report = check_gradients(lstm, x, state=(h0[None], c0[None]))
    assert report.status == "correct" and [c.name for c in report.inputs][:3] == ["x", "h0", "c0"]


# ------------------------------------------------------------------------------------------------
# measured noise: float32 in the forward vs in the backward


def test_float32_states_in_the_forward_are_named_and_exact_gradients_not_called_wrong():
    """Hidden states stored in a float32 buffer: the measured noise is float32's, the float64
    readout's exact gradient (Wy) and the others are not called wrong, and the report names the
    float32 forward; the same code with a real bug is still wrong."""
    good = check_gradients(**nx.rnn_problem(float32_states=True))
    assert good.status == "correct", good.summary
    assert "FLOAT32 PRECISION in the forward" in good.summary
    assert 1e-9 < good.noise < 1e-6
    assert "kink" not in good.summary and "computed in float32?" not in good.summary
    bad = check_gradients(**nx.rnn_problem("wrong_h", float32_states=True))
    assert [c.name for c in bad.failures] == ["Wh"]


def test_float32_in_the_backward_is_told_apart_from_float32_in_the_forward():
    bad = check_gradients(ex.elman_function("float32"), ex.elman_inputs(), names=ex.ELMAN_NAMES, time_axis=0)
    assert bad.status == "wrong"
    assert "computed in float32?" in bad.summary and "FLOAT32 PRECISION in the forward" not in bad.summary
    assert bad.noise < 1e-14


# ------------------------------------------------------------------------------------------------
# extreme inputs, user exceptions


def test_inputs_near_1e300_do_not_overflow_the_direction():
    a = np.array([1.0e300, -2.0e300, 3.0e299, 5.0e300])
    fn = lambda a: np.tanh(a * 1e-300)
    good = check_gradients(fn, (a,), grad_fn=lambda w, a: (w * (1 - np.tanh(a * 1e-300) ** 2) * 1e-300,))
    assert good.status == "correct", good.summary
    assert all(np.isfinite([c.analytic, c.reference, c.tolerance]).all() for c in good.inputs)
    bad = check_gradients(fn, (a,), grad_fn=lambda w, a: (2 * w * (1 - np.tanh(a * 1e-300) ** 2) * 1e-300,))
    assert bad.status == "wrong" and np.isfinite(bad.inputs[0].reference), bad.summary
    t = torch.tensor([1.0e300, -7.0e299], dtype=torch.float64, requires_grad=True)
    assert check_gradients(lambda t: torch.sin(t * 1e-300), (t,)).status == "correct"


def test_an_exception_in_user_code_propagates_unchanged_with_a_note():
    problem = nx.rnn_problem()

    def broken_grad_fn(dscores, x, h0, Wx, Wh, b, Wy):
        return (*problem["grad_fn"](dscores, x, h0, Wx, Wh, b, Wy)[:-1], dscores.T @ Wy)  # shapes do not match

    with pytest.raises(ValueError, match="matmul") as info:
        check_gradients(problem["fn"], problem["inputs"], grad_fn=broken_grad_fn)
    assert info.value._gradtheory_during == "grad_fn"
    assert any("raised by grad_fn" in n for n in info.value.__notes__)
    assert check_gradients(**problem).status == "correct"


def test_module_route_passes_extra_forward_arguments_and_lists_them():
    """forward_args reach forward(x, state, *forward_args); a float tensor without requires_grad
    passes through (listed in skipped), and the state's gradient is checked."""
    torch.manual_seed(0)
    cell = torch.nn.GRU(3, 4, dtype=torch.float64)

    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = cell

        def forward(self, x, h0, mask):
            out, h_n = self.gru(x, h0)
            return out * mask, h_n

    x, h0 = torch.randn(5, 2, 3, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64)
    mask = (torch.rand(5, 2, 4) > 0.3).to(torch.float64)
    report = check_gradients(Masked(), x, state=h0, forward_args=(mask,))
    assert report.status == "correct", report.summary
    assert [c.name for c in report.inputs][:2] == ["x", "h0"]
    assert [(s.name, s.reason) for s in report.skipped] == [("forward_args[0]", "requires_grad is False")]


def test_a_gradient_of_the_wrong_shape_is_a_wrong_backward():
    """db returned as (1, H) for a bias of shape (H,) (keepdims): wrong, with the shapes named."""
    problem = nx.rnn_problem()

    def grad_fn(dscores, *args):
        dx, dh0, dWx, dWh, db, dWy = problem["grad_fn"](dscores, *args)
        return dx, dh0, dWx, dWh, db[None, :], dWy

    report = check_gradients(problem["fn"], problem["inputs"], grad_fn=grad_fn, names=problem["names"])
    assert [c.name for c in report.failures] == ["b"]
    assert "grad_fn returned a gradient of shape (1, 5) for this input of shape (5,)" in report.summary


def test_non_finite_values_near_the_point_are_not_a_false_alarm_and_empty_leaves_are_skipped():
    """sqrt near the edge of its domain: stencils that leave it give no reference; smaller steps
    do, so the correct gradient verifies. An empty array is listed as skipped."""
    a = np.array([1e-3, 0.5, 2.0])
    with np.errstate(invalid="ignore"):  # the user's sqrt of negative numbers in the wide stencils
        report = check_gradients(
            lambda a, e: np.sqrt(a),
            (a, np.zeros(0)),
            grad_fn=lambda w, a, e: (w * 0.5 / np.sqrt(a), None),
            names=("a", "e"),
        )
    assert report.status == "correct", report.summary
    assert [(s.name, s.reason) for s in report.skipped] == [("e", "empty (no element to check)")]


def test_a_module_updating_running_statistics_leaves_the_callers_module_unchanged():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Tanh()).double()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    report = check_gradients(net, torch.randn(6, 3, dtype=torch.float64))
    assert report.status == "correct", report.summary
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("bug", ["none", "triple"])
def test_a_layer_object_whose_backward_reads_its_forward_cache(bug):
    """fn = layer.forward, grad_fn = layer.backward (reading self.cache from the last forward):
    the checker runs the forward at the base point before each backward, so the cache is the
    base point's (and the dropout mask, from np.random, is the pinned one)."""
    problem = nx.gru_dropout_problem(bug)
    layer = nx.GRULayer(problem["inputs"][2], 0.5, bug)
    report = check_gradients(
        layer.forward,
        problem["inputs"][:2],
        names=("x", "h0"),
        time_axis=0,
        grad_fn=lambda dout, x, h0: layer.backward(dout)[:2],
    )
    assert report.status == ("correct" if bug == "none" else "wrong"), report.summary


def test_a_forward_that_ignores_its_argument_is_wrong_and_says_why():
    """A layer object's forward reading self.params instead of the dict it is given: perturbing
    the argument changes nothing, so the (nonzero) backward is wrong for fn, and the report says
    that fn does not read the input."""
    problem = nx.gru_dropout_problem()
    layer = nx.GRULayer(problem["inputs"][2], 0.5)
    report = check_gradients(
        lambda x, h0, params: layer.forward(x, h0),
        problem["inputs"],
        names=problem["names"],
        grad_fn=problem["grad_fn"],
    )
    assert {c.name for c in report.failures} == {
        "params['W_ih']",
        "params['W_hh']",
        "params['b_ih']",
        "params['b_hh']",
    }, report.summary
    assert "fn's output did not change at all when this input was perturbed: does fn read it?" in report.summary
