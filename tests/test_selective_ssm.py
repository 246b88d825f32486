"""Selective diagonal SSM (the S6 recurrence of Mamba, Gu & Dao 2023): what the generic registry
properties (tests/test_cells.py: torch twin, autograd, complex step, torch.func Jacobians, flow) do
not say: the exact diagonal one-step Jacobian exp(Delta_t A) in (0, 1), gradient flow and Lyapunov
spectrum as sums of Delta_t A, stacking, and a wrong backward caught by the checker.

Derivation: ``proofs/selective_ssm.tex``.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import model_grad_fn
from hypothesis import given
from hypothesis import strategies as st

import gradtheory as gt
from gradtheory.cells.selective_ssm import SelectiveSSMCell
from gradtheory.check import check_gradients

# exp(Delta A) recomputed here from softplus (log1p form) and the parameters: a handful of roundings
# (the affine map over D <= 3 terms, softplus, the product, exp) ~ 8 u relative; 1e-14 with margin.
JACOBIAN_RTOL = 1e-14


def _log_factors(model, x):
    """Delta_t A (T, D*N) written here from the parameters (logaddexp form of softplus)."""
    p = model.params
    delta = np.logaddexp(0.0, x @ p["W_delta_l0"].T + p["b_delta_l0"])
    return (delta[:, :, None] * -np.exp(p["A_log_l0"])[None]).reshape(x.shape[0], -1)


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 8))
def test_one_step_jacobian_is_diag_exp_delta_A_in_the_open_unit_interval(seed, T):
    """dh_t/dh_{t-1} = diag(exp(Delta_{t,d} A_{dn})) (flattened d*N + n): zero off the diagonal, each
    entry in (0, 1) since Delta > 0 and A < 0 (proofs/selective_ssm.tex, step 2)."""
    model = gt.SelectiveSSM(3, 2, seed=seed % 10_000)
    x = np.random.default_rng(seed).standard_normal((T, 3))
    J = model.jacobians(model.forward(x))
    ref = np.exp(_log_factors(model, x))
    assert np.all(J * (1 - np.eye(6)) == 0)
    diag = np.diagonal(J, axis1=1, axis2=2)
    assert np.all((diag > 0) & (diag < 1))
    assert np.max(np.abs(diag - ref) / ref) <= JACOBIAN_RTOL


# ln of a product of T factors exp(Delta A): the flow adds T values Delta*A each exact to ~3u
# relative; |Delta A| <= ~0.1 * N here at Mamba's initialisation -> T * 3u * |sum| ~ 1e-14.
FLOW_ATOL = 1e-12


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 100))
def test_gradient_flow_is_the_norm_of_the_products_of_exp_delta_A(seed, T):
    """gradient_flow(SelectiveSSM)[k] = ln ||(r_i prod_{t>k} exp(Delta_t A)_i)_i||: the state gradient is the
    readout times the product of the one-step factors, each < 1, so it never increases backward in time."""
    model = gt.SelectiveSSM(2, 3, seed=seed % 10_000)
    rng = np.random.default_rng(seed)
    x, r = rng.standard_normal((T, 2)), rng.standard_normal(6)
    flow = gt.gradient_flow(model, x, readout=r)
    logd = _log_factors(model, x)  # ln exp(Delta A) = Delta A
    cum = np.vstack([np.cumsum(logd[::-1], axis=0)[::-1], np.zeros((1, 6))])  # sum_{t>k}
    logs = np.log(np.abs(r))[None] + cum
    m = logs.max(axis=1, keepdims=True)
    ref = m[:, 0] + 0.5 * np.log(np.sum(np.exp(2 * (logs - m)), axis=1))
    assert np.max(np.abs(flow - ref)) <= FLOW_ATOL
    assert np.all(np.diff(flow) >= 0)  # non-increasing backward in time: never explodes


def test_lyapunov_spectrum_is_the_time_average_of_delta_A():
    """For diagonal J_t the QR method's exponents are (1/T) sum_t Delta_{t,d} A_dn, in state order: the
    registered kernel gives them, and the generic QR method on the same cell agrees."""
    model = gt.SelectiveSSM(2, 3, seed=1)
    x = np.random.default_rng(1).standard_normal((50, 2))
    ref = _log_factors(model, x).mean(axis=0)
    assert np.max(np.abs(gt.lyapunov_spectrum(model, x) - ref)) <= 1e-15 * 50
    generic = gt.RecurrentModel(2, 6, cell=SelectiveSSMCell(3), params=model.params)
    assert np.max(np.abs(gt.lyapunov_spectrum(generic, x) - ref)) <= 1e-13


def test_a_stacked_selective_ssm_is_the_composition_of_its_layers():
    """Layer l reads layer l-1's output y (D channels): a 2-layer SSM equals two 1-layer SSMs in sequence,
    bit for bit, and its backward is their chained backward."""
    model = gt.SelectiveSSM(3, 2, num_layers=2, seed=4)
    p = model.params
    first = gt.SelectiveSSM(3, 2, params={k: v for k, v in p.items() if k.endswith("_l0")})
    second = gt.SelectiveSSM(3, 2, params={k.replace("_l1", "_l0"): v for k, v in p.items() if k.endswith("_l1")})
    x = np.random.default_rng(4).standard_normal((5, 2, 3))
    d_out = np.random.default_rng(5).standard_normal((5, 2, 3))
    r, r1 = model.forward(x), first.forward(x)
    r2 = second.forward(r1.output)
    assert np.array_equal(r.output, r2.output)
    g, g2 = model.backward(r, d_out), second.backward(r2, d_out)
    g1 = first.backward(r1, g2.x)
    assert np.array_equal(g.x, g1.x)
    assert all(np.array_equal(g.params[k.replace("_l0", "_l1")], v) for k, v in g2.params.items())


def test_a_backward_missing_the_zoh_term_fails_the_checker_naming_A_log():
    """Test the tester: dropping exp(Delta A) from the pull-back of the state (treating the
    transition as the identity, a skipped factor) fails check_gradients, naming A_log."""

    class SkippedFactor(SelectiveSSMCell):
        def step_backward(self, d_state, cache):
            return None, None, (d_state[0],)  # forgot the factor exp(Delta_t A)

    model = gt.SelectiveSSM(2, 3, seed=3)
    bad_model = gt.RecurrentModel(2, 6, cell=SkippedFactor(3), params=model.params)
    x = np.random.default_rng(3).standard_normal((6, 2, 2))

    def fn(p, x):
        r = model.apply(p, x)
        return (r.output, r.h_n)

    inputs = (dict(model.params), x)
    assert check_gradients(fn, inputs, grad_fn=model_grad_fn(model), names=("params", "x")).ok
    report = check_gradients(fn, inputs, grad_fn=model_grad_fn(bad_model), names=("params", "x"))
    assert not report.ok
    assert "params['A_log_l0']" in [c.name for c in report.failures]


def test_bad_arguments_raise_errors_naming_them():
    with pytest.raises(ValueError, match="state_size"):
        gt.SelectiveSSM(2, 0)
    with pytest.raises(NotImplementedError, match="bidirectional=True"):
        gt.SelectiveSSM(2, 3, bidirectional=True)
    with pytest.raises(ValueError, match="input_size \\* state_size must be at most"):
        gt.SelectiveSSM(2**40, 2**40)
    model = gt.SelectiveSSM(2, 3)
    with pytest.raises(ValueError, match="input_size|shape"):
        model.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"params\['A_log_l0'\] must have shape \(2, 3\)"):
        gt.SelectiveSSM(2, 3, params={**model.params, "A_log_l0": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"h0 must have shape \(1, 6\)"):
        model.forward(np.zeros((4, 2)), np.zeros((2, 3)))
    with pytest.raises(TypeError, match="d_output must have a floating dtype"):
        model.backward(model.forward(np.zeros((4, 2))), np.ones((4, 2), dtype=int))
