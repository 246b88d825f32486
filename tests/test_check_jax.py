"""The JAX backend of check_gradients (gradtheory/check/_jax.py): jax.vjp / jax.jvp in float64.

Statement under test (gradtheory/check/gradients.py, module docstring): for L = <w, fn(x)>, the
analytic <dL/dx_i, v_i> from ``jax.vjp`` (custom_vjp / custom_jvp rules included) agrees with the
Richardson derivative of L along v_i within the measured tolerance, and a rule that is wrong by a
relative 1e-6 breaks that bound; 64-bit JAX is enabled only inside the calls of user code and the
caller's setting restored, also when user code raises; the caller's inputs are never changed.
Subjects: an Elman RNN cell h' = tanh(h W_hh^T + x W_ih^T + b) unrolled by lax.scan, with jax's own
derivative (correct), a hand-written custom_vjp rule (correct) and planted errors in that rule.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

# In CI (.ci/run installs the jax extra) these tests must run: a missing jax there is a failure, not a skip.
if os.environ.get("CI"):
    import jax
else:
    jax = pytest.importorskip("jax", reason="jax not installed (pip install 'gradtheory[jax]'); CI installs it")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from gradtheory.check import GradientCheckError, check_gradients  # noqa: E402
from gradtheory.check._backends import USER_CODE_ATTR, TargetView, make_backend  # noqa: E402
from gradtheory.check._jax import JaxBackend, has_jax_array  # noqa: E402

T, B, I, H = 6, 2, 3, 4
NAMES = ("x", "h0", "W_hh", "W_ih", "b")


def _inputs(seed: int = 0) -> list:
    """float32 jax arrays, as created with JAX's default (x64 off)."""
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    shapes = [(T, B, I), (B, H), (H, H), (H, I), (H,)]
    return [0.5 * jax.random.normal(kk, s) for kk, s in zip(k, shapes)]


def _tanh_cell(h, x, W_hh, W_ih, b):
    return jnp.tanh(h @ W_hh.T + x @ W_ih.T + b)


def _custom_cell(planted: str | None = None, eps: float = 0.0):
    """The Elman cell as a jax.custom_vjp with a hand-written rule; ``planted`` breaks it."""

    @jax.custom_vjp
    def cell(h, x, W_hh, W_ih, b):
        return _tanh_cell(h, x, W_hh, W_ih, b)

    def fwd(h, x, W_hh, W_ih, b):
        h_new = _tanh_cell(h, x, W_hh, W_ih, b)
        return h_new, (h, x, W_hh, W_ih, h_new)

    def bwd(res, dh_new):
        h, x, W_hh, W_ih, h_new = res
        da = dh_new * (1 - h_new**2)
        dW_hh = da.T @ h
        if planted == "transpose":
            dW_hh = dW_hh.T
        elif planted == "scale":
            dW_hh = (1 + eps) * dW_hh
        db = da.sum(0)
        if planted == "sign":
            db = -db
        return da @ W_hh, da @ W_ih, dW_hh, da.T @ x, db

    cell.defvjp(fwd, bwd)
    return cell


def _unroll(cell):
    def unroll(x, h0, W_hh, W_ih, b):
        def step(h, x_t):
            h = cell(h, x_t, W_hh, W_ih, b)
            return h, h

        h_T, hs = lax.scan(step, h0, x)
        return hs, h_T

    # jitted: an eager lax.scan re-traces and compiles its body at every call (~0.5 s each)
    return jax.jit(unroll)


def _status(report) -> dict[str, str]:
    return {c.name: c.status for c in report.inputs}


def test_jax_rnn_unrolled_by_lax_scan_has_a_correct_gradient():
    """jax.vjp of lax.scan over the Elman cell agrees with the Richardson reference on every input."""
    report = check_gradients(_unroll(_tanh_cell), _inputs(), names=NAMES, time_axis=0)
    assert report.status == "correct", report.summary
    assert set(_status(report)) == set(NAMES)
    assert max(c.resolution for c in report.inputs) < 1e-9  # float64 resolution, not float32's 1e-6


def test_correct_custom_vjp_rule_is_correct():
    """A hand-written custom_vjp rule that is the exact derivative is reported correct."""
    report = check_gradients(_unroll(_custom_cell()), _inputs(1), names=NAMES, time_axis=0)
    assert report.status == "correct", report.summary


@pytest.mark.parametrize(
    ("planted", "eps", "wrong", "finding"),
    [
        ("sign", 0.0, "b", "the gradient is SCALED: analytic/reference = -1"),
        ("transpose", 0.0, "W_hh", "the gradient is TRANSPOSED"),
        ("scale", 1e-6, "W_hh", "the gradient is SCALED: analytic/reference = 1.000001"),
    ],
)
def test_planted_custom_vjp_error_is_wrong_on_that_input_only_with_its_diagnosis(planted, eps, wrong, finding):
    """A custom_vjp rule with a flipped sign, a transposed weight gradient or a relative 1e-6 scale
    on one input is WRONG on that input, diagnosed as such, and the other inputs stay correct."""
    report = check_gradients(_unroll(_custom_cell(planted, eps)), _inputs(2), names=NAMES, time_axis=0)
    assert report.status == "wrong"
    status = _status(report)
    assert status.pop(wrong) == "wrong" and set(status.values()) == {"correct"}, report.summary
    (bad,) = [c for c in report.inputs if c.name == wrong]
    assert any(f.startswith(finding) for f in bad.findings), bad.findings
    with pytest.raises(GradientCheckError, match=rf"'{wrong}'"):
        check_gradients(_unroll(_custom_cell(planted, eps)), _inputs(2), names=NAMES, raise_exception=True)


def test_wrong_custom_jvp_rule_is_wrong_in_reverse_mode():
    """jax.vjp transposes a custom_jvp rule: a tanh rule with 1 + tanh^2 is caught through it."""

    @jax.custom_jvp
    def tanh(a):
        return jnp.tanh(a)

    @tanh.defjvp
    def _tanh_jvp(primals, tangents):
        (a,), (da,) = primals, tangents
        y = jnp.tanh(a)
        return y, (1 + y**2) * da  # the derivative is 1 - y^2

    x = _inputs(3)[0]
    report = check_gradients(jax.jit(lambda x: tanh(x) ** 2), [x])
    assert report.status == "wrong", report.summary


def _params_fn(params, state):
    x, h0 = state

    def step(h, x_t):
        h = jnp.tanh(h @ params["W_hh"].T + x_t @ params["W_ih"].T + params["b"])
        return h, h

    return {"hs": lax.scan(step, h0, x)[1]}


def test_parameter_dict_pytree_is_checked_leaf_by_leaf():
    """A dict of parameters and a (x, h0) tuple: every leaf is checked under its path name, an
    integer array passes through, and a planted error in one entry is found in that entry only."""
    x, h0, W_hh, W_ih, b = _inputs(4)
    params = {"W_hh": W_hh, "W_ih": W_ih, "b": b, "steps": jnp.arange(3)}
    report = check_gradients(jax.jit(_params_fn), [params, (x, h0)], names=["params", "state"])
    assert report.status == "correct", report.summary
    assert set(_status(report)) == {"params['W_hh']", "params['W_ih']", "params['b']", "state[0]", "state[1]"}
    assert [s.name for s in report.skipped] == ["params['steps']"]

    @jax.custom_vjp
    def scaled_b(b):
        return b

    scaled_b.defvjp(lambda b: (b, None), lambda _, g: ((1 + 1e-6) * g,))

    def planted(params, state):
        return _params_fn({**params, "b": scaled_b(params["b"])}, state)

    report = check_gradients(jax.jit(planted), [params, (x, h0)], names=["params", "state"])
    status = _status(report)
    assert status.pop("params['b']") == "wrong" and set(status.values()) == {"correct"}, report.summary


def test_x64_setting_is_restored_after_the_check_and_after_user_code_raises():
    """64-bit JAX is on only inside the check: the global flag and the effective default dtype are
    the caller's afterwards, for x64 off (JAX's default) and on, and after fn raises."""
    fn = _unroll(_custom_cell())
    before = jax.config.jax_enable_x64
    check_gradients(fn, _inputs(), names=NAMES)
    assert jax.config.jax_enable_x64 == before and jnp.zeros(()).dtype == (jnp.float64 if before else jnp.float32)

    calls = []

    def failing(x):
        calls.append(x.dtype)
        if len(calls) == 3:
            raise RuntimeError("user code failed")
        return jnp.sin(x)

    with pytest.raises(RuntimeError, match="user code failed") as info:
        check_gradients(failing, [_inputs()[0]])
    assert getattr(info.value, USER_CODE_ATTR).startswith("fn")  # the 3rd call is the one traced by jax.vjp
    assert calls[0] == jnp.float64  # fn saw float64 inputs (converted from the caller's float32)
    assert jax.config.jax_enable_x64 == before and jnp.zeros(()).dtype == (jnp.float64 if before else jnp.float32)

    jax.config.update("jax_enable_x64", True)
    try:
        check_gradients(fn, _inputs(), names=NAMES)
        assert jax.config.jax_enable_x64 is True
    finally:
        jax.config.update("jax_enable_x64", before)


def test_failing_backward_rule_propagates_unchanged_and_restores_x64():
    """An exception raised in a custom_vjp backward reaches the caller as itself, marked as raised
    by the backward, with the x64 setting restored."""

    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    def bwd(_, g):
        raise ValueError("bad rule")

    f.defvjp(lambda x: (f(x), x), bwd)
    before = jax.config.jax_enable_x64
    with pytest.raises(ValueError, match="bad rule") as info:
        check_gradients(f, [_inputs()[0]])
    assert "backward" in getattr(info.value, USER_CODE_ATTR)
    assert jax.config.jax_enable_x64 == before and jnp.zeros(()).dtype == (jnp.float64 if before else jnp.float32)


def test_inputs_are_not_mutated():
    """The caller's arrays keep their dtype (float32) and values, the containers their entries."""
    x, h0, W_hh, W_ih, b = _inputs(5)
    mask = np.array([1, 0, 1])
    params = {"W_hh": W_hh, "W_ih": W_ih, "b": b}
    snapshot = {k: (v.dtype, np.array(v)) for k, v in params.items()}
    state = (x, h0)
    check_gradients(jax.jit(lambda p, s, m: _params_fn(p, s)), [params, state, mask])
    assert list(params) == ["W_hh", "W_ih", "b"] and state[0] is x and state[1] is h0
    for k, v in params.items():
        assert v.dtype == snapshot[k][0] == jnp.float32 and np.array_equal(np.array(v), snapshot[k][1])
    assert x.dtype == jnp.float32 and np.array_equal(mask, [1, 0, 1])


def _numpy_unroll(x, h0, W_hh, W_ih, b):
    """An independent numpy twin of _unroll(_tanh_cell) that runs on complex numbers."""
    h, hs = h0, []
    for x_t in x:
        h = np.tanh(h @ W_hh.T + x_t @ W_ih.T + b)
        hs.append(h)
    return [np.stack(hs), h]


# Complex step J t = Im f(x + i h t) / h with h = 1e-30 has no cancellation: it is exact to the
# round-off of the forward, a few u per operation through T = 6 steps of an n = 4 tanh cell
# (~T * n * u ~ 5e-15 of the outputs' scale); jax.jvp rounds alike. 1e-12 leaves a 200x margin.
JVP_RTOL = 1e-12


def test_jvp_matches_the_complex_step_of_an_independent_numpy_twin():
    """JaxBackend.jvp (the forward-mode interface shared with gradients.py) returns J t, flattened
    like evaluate's outputs, for tangents on any subset of inputs (zero tangent for the others)."""
    inputs = _inputs(6)
    backend = make_backend(TargetView(_unroll(_tanh_cell), tuple(inputs), None, NAMES, None), True)
    assert isinstance(backend, JaxBackend)
    base = [np.array(a, dtype=np.float64) for a in inputs]
    rng = np.random.default_rng(0)
    for subset in ([0, 1, 2, 3, 4], [2], [0, 4]):
        tangents = {i: rng.standard_normal(base[i].shape) for i in subset}
        got = backend.jvp(tangents)
        h = 1e-30
        shifted = [a + 1j * h * tangents[i] if i in tangents else a for i, a in enumerate(base)]
        want = [np.imag(o) / h for o in _numpy_unroll(*shifted)]
        assert len(got) == len(want) == 2
        for g, w in zip(got, want):
            assert g.dtype == np.float64 and g.shape == w.shape
            assert np.max(np.abs(g - w)) <= JVP_RTOL * np.max(np.abs(w))


def test_jvp_of_a_custom_vjp_function_is_not_implemented():
    """A custom_vjp function has no forward rule: jvp says so (NotImplementedError), not a jax trace."""
    inputs = _inputs()
    backend = make_backend(TargetView(_unroll(_custom_cell()), tuple(inputs), None, NAMES, None), True)
    with pytest.raises(NotImplementedError, match="custom_vjp"):
        backend.jvp({0: np.ones((T, B, I))})


def test_bad_jax_inputs_are_named():
    """No float jax array, a grad_fn, or jax mixed with torch: a clear error naming the problem."""
    with pytest.raises(ValueError, match="no floating-point jax.Array"):
        check_gradients(lambda n, x: x, [jnp.arange(3), np.ones(3)])
    with pytest.raises(TypeError, match="grad_fn is only for numpy"):
        check_gradients(jnp.sin, [_inputs()[0]], grad_fn=lambda w, x: w)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="mix torch tensors and jax arrays"):
        check_gradients(lambda a, b: a, [_inputs()[0], torch.ones(3, dtype=torch.float64, requires_grad=True)])


def test_dispatch_does_not_need_jax_when_it_is_not_loaded(monkeypatch):
    """Without jax in sys.modules no input can be a jax array: the numpy route is taken."""
    monkeypatch.delitem(sys.modules, "jax")
    assert not has_jax_array([np.ones(3)])
    report = check_gradients(np.sin, [np.linspace(0, 1, 4)], grad_fn=lambda w, x: w * np.cos(x))
    assert report.status == "correct"


def test_readme_jax_example_runs_and_its_check_is_correct():
    """The README's JAX example (a ```py block, so that tests/test_readme.py, which runs without
    jax, does not execute it) runs as written and its custom_vjp cell is correct; with the planted
    transpose its comment announces, W is reported TRANSPOSED."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("### JAX") :]
    block = re.search(r"```py\n(.*?)```", section, flags=re.S).group(1)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme_jax_example"})
    broken = block.replace("return da @ W, da, da.T @ h", "return da @ W, da, h.T @ da").replace(
        'assert report.status == "correct", report.summary', ""
    )
    namespace: dict = {"__name__": "readme_jax_example"}
    exec(compile(broken, "README.md", "exec"), namespace)
    (W,) = [c for c in namespace["report"].inputs if c.name == "params['W']"]
    assert W.status == "wrong" and any("TRANSPOSED" in f for f in W.findings), namespace["report"].summary


def test_float32_cast_inside_fn_is_judged_from_its_measured_noise_and_named():
    """The inputs are float64 inside the check, but a cast in fn still rounds: the exact gradient
    of that float32 computation is correct against the tolerance of its measured noise, and the
    report names FLOAT32 PRECISION in the forward instead of calling the gradient wrong."""
    x, W = _inputs(7)[0][0], _inputs(7)[2][:3, :3]
    fn = jax.jit(lambda x, W: jnp.tanh(x.astype(jnp.float32) @ W.astype(jnp.float32)))
    report = check_gradients(fn, [x, W])
    assert report.status == "correct", report.summary
    assert any("FLOAT32 PRECISION" in n for n in report.notes)


def test_complex_step_reference_runs_on_jax_functions():
    """method='complex' hands fn complex128 jax arrays: an analytic jax function is correct."""
    x, W = _inputs(8)[0][0], _inputs(8)[2][:3, :3]
    report = check_gradients(jax.jit(lambda x, W: jnp.tanh(x @ W)), [x, W], method="complex")
    assert report.status == "correct", report.summary
