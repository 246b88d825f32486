"""Localisation of a wrong gradient (gradtheory/check/_localise.py): which rows, which blocks, which
output steps, scaled or not, stated exactly. Written from the mutation survivors of _localise.py
(README, "Contributing"): each test plants an error of known place and shape in a backward and
asserts the exact words of the finding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradtheory import _check_examples as ex
from gradtheory.check import CheckTarget, check_gradients
from gradtheory.check._localise import _blocks, _ranges


def _corrupt(a: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``a`` in the forward; its gradient multiplied by ``factor`` in the backward (the examples'
    scale planter, which multiplies by 1 + eps: 1 + (factor - 1) is factor exactly here)."""
    return ex._planters()["scale"].apply(a, factor - 1)


def _row_factors(rows: dict[int, float], n: int = 10, cols: int = 4) -> torch.Tensor:
    f = torch.ones(n, cols, dtype=torch.float64)
    for r, eps in rows.items():
        f[r] += eps
    return f


def _report(factor: torch.Tensor, *, shape=(10, 4), scale=1.0, time_axis=None):
    """check_gradients of y_t = scale tanh(W x_t) (T = 7, batch 2) with W's gradient multiplied by
    factor."""
    g = torch.Generator().manual_seed(0)
    W = (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5).requires_grad_(True)
    x = torch.randn(7, 2, shape[-1] if len(shape) > 1 else 1, generator=g, dtype=torch.float64)

    def fn(W):
        Wc = _corrupt(W, factor)
        return scale * torch.tanh(x @ (Wc if Wc.ndim == 2 else Wc[:, None]).T)

    return check_gradients(CheckTarget(fn, (W,), names=("W",), time_axis=time_axis), seed=1)


def _spread(eps: float, rng_seed: int = 2) -> torch.Tensor:
    """Factors 1 +- eps (0.5..1.5 eps, random signs) on every element: an error in every row,
    unlike a common scale."""
    rng = np.random.default_rng(rng_seed)
    return torch.from_numpy(1 + eps * rng.uniform(0.5, 1.5, (10, 4)) * rng.choice([-1, 1], (10, 4)))


def test_ranges_join_consecutive_steps():
    assert _ranges([0, 1, 2, 5, 7, 8]) == "0..2, 5, 7..8"
    assert _ranges([4]) == "4"
    assert _ranges([3, 9]) == "3, 9"
    assert _ranges([]) == ""


@pytest.mark.parametrize(("n", "max_blocks"), [(10, 8), (3, 8), (24, 8), (16, 16), (1, 8)])
def test_blocks_partition_the_axis_into_at_most_max_blocks_contiguous_nearly_equal_pieces(n, max_blocks):
    blocks = _blocks((n, 3), 0, max_blocks)
    assert len(blocks) == min(n, max_blocks)
    spans = [hi - lo for (lo, hi), _ in blocks]
    assert max(spans) - min(spans) <= 1 and sum(spans) == n
    covered = np.sum([m for _, m in blocks], axis=0)
    np.testing.assert_array_equal(covered, np.ones((n, 3)))  # every element in exactly one block
    for (lo, hi), m in blocks:
        assert m.dtype == bool and m[lo:hi].all() and not m[:lo].any() and not m[hi:].any()


def test_two_wrong_rows_in_one_block_are_refined_to_single_rows():
    """10 rows in 8 blocks (edges 0 1 2 4 5 6 8 9 10): rows 2 and 3 share block 2..3, which is
    refined to the two rows."""
    report = _report(_row_factors({2: 1e-3, 3: -2e-3}))
    w = report.inputs[0]
    assert not w.ok and w.bad_blocks == ("2", "3"), report.summary
    assert "wrong rows along axis 0: 2, 3 (of 0..9)" in report.summary


def test_one_wrong_row_in_a_block_of_two_is_refined_to_that_row_and_its_ratio_given():
    """One failing block: its analytic/reference ratio is reported; one block is no evidence of a
    common scale."""
    report = _report(_row_factors({7: 1e-3}))
    assert report.inputs[0].bad_blocks == ("7",), report.summary
    assert "- analytic/reference ratio 0.9999" in report.summary and "SCALED" not in report.summary


def test_wrong_rows_in_two_blocks_are_refined_and_in_three_are_named_as_blocks():
    """Up to two failing blocks are refined to rows; three or more are reported as blocks lo..hi."""
    two = _report(_row_factors({1: 1e-3, 6: 2e-3, 7: -1e-3}))
    assert two.inputs[0].bad_blocks == ("1", "6", "7"), two.summary
    three = _report(_row_factors({0: 1e-3, 2: -1e-3, 3: 2e-3, 6: 1e-3}))
    assert three.inputs[0].bad_blocks == ("0", "2..3", "6..7"), three.summary
    assert "wrong rows along axis 0: 0, 2..3, 6..7 (of 0..9)" in three.summary


def test_an_error_in_every_row_is_spread_and_a_common_factor_is_scaled():
    spread = _report(_spread(1e-3))
    assert "wrong in every block along axis 0 (rows): the error is spread over the whole tensor" in spread.summary
    assert "SCALED" not in spread.summary and "float32" not in spread.summary
    scaled = _report(torch.full((10, 4), 1.25, dtype=torch.float64))
    assert "wrong in every block along axis 0 (rows)" in scaled.summary
    assert "the gradient is SCALED: analytic/reference = 1.25 in every failing block" in scaled.summary


def test_a_one_element_input_reports_its_ratio_and_a_vector_is_split_into_elements():
    one = _report(torch.full((1, 1), 0.5, dtype=torch.float64), shape=(1, 1))
    assert "analytic/reference ratio 0.5" in one.summary and one.inputs[0].bad_blocks == ("all",)
    vector = _report(_row_factors({4: 1e-3}, cols=1)[:, 0], shape=(10,))
    assert "wrong elements along axis 0: 4 (of 0..9)" in vector.summary, vector.summary


class _Transposed(torch.autograd.Function):
    """Identity forward; the backward returns the transposed gradient (a square matrix)."""

    @staticmethod
    def forward(ctx, a):
        return a.view_as(a)

    @staticmethod
    def backward(ctx, grad):
        return grad.T.clone()


def _transposed_report(n: int, seed: int):
    """y_t = tanh(W x_t) (T = 7, batch 2) for an n x n W whose gradient comes back transposed."""
    g = torch.Generator().manual_seed(seed)
    W = (torch.rand(n, n, generator=g, dtype=torch.float64) - 0.5).requires_grad_(True)
    x = torch.randn(7, 2, n, generator=g, dtype=torch.float64)
    return check_gradients(CheckTarget(lambda W: torch.tanh(x @ _Transposed.apply(W).T), (W,), names=("W",)), seed=1)


def test_a_transposed_square_gradient_is_recognised():
    report = _transposed_report(5, seed=3)
    assert report.inputs[0].bad_blocks == ("all",)
    assert "the gradient is TRANSPOSED: grad.T matches the reference" in report.summary


def test_the_output_steps_whose_loss_gives_a_wrong_gradient_are_named():
    """The cotangent of output steps 2, 3 and 5 (of T = 7) is scaled on its way back: W's gradient
    is wrong exactly for the losses of those steps."""
    g = torch.Generator().manual_seed(4)
    W = (torch.rand(6, 3, generator=g, dtype=torch.float64) - 0.5).requires_grad_(True)
    x = torch.randn(7, 2, 3, generator=g, dtype=torch.float64)
    factor = torch.ones(7, 2, 6, dtype=torch.float64)
    factor[[2, 3, 5]] += 1e-3

    report = check_gradients(
        CheckTarget(lambda W: _corrupt(torch.tanh(x @ W.T), factor), (W,), names=("W",), time_axis=0), seed=1
    )
    w = report.inputs[0]
    assert w.bad_output_steps == (2, 3, 5), report.summary
    assert "wrong for the loss of output steps 2..3, 5 (time axis 0); the first is t = 2, the last is t = 5" in (
        report.summary
    )


def test_scaled_needs_the_same_ratio_in_every_failing_block_to_one_percent_of_its_deviation():
    """Two single-row blocks scaled by 1.25 are SCALED (two blocks are enough); rows scaled by 1.2 in
    half of the tensor and by 1.3 in the other half are not (ratios 1.2 and 1.3 differ by 20% of
    their deviation from 1)."""
    two = _report(_row_factors({1: 0.25, 4: 0.25}))
    assert two.inputs[0].bad_blocks == ("1", "4"), two.summary
    assert "the gradient is SCALED: analytic/reference = 1.25 in every failing block" in two.summary
    factor = torch.full((10, 4), 1.2, dtype=torch.float64)
    factor[5:] = 1.3
    mixed = _report(factor)
    assert "wrong in every block along axis 0 (rows)" in mixed.summary
    assert "SCALED" not in mixed.summary, mixed.summary
    # several blocks with different ratios: no single ratio describes the error
    assert "analytic/reference ratio" not in mixed.summary


def test_the_smallest_inputs_that_can_be_localised_are_split_or_transposed():
    """Two elements are split into elements (only one element is reported by its ratio alone); a
    2 x 2 gradient is tested for transposition like any square one."""
    pair = _report(torch.tensor([1.0, 1.001], dtype=torch.float64), shape=(2,))
    assert "wrong elements along axis 0: 1 (of 0..1)" in pair.summary, pair.summary
    report = _transposed_report(2, seed=5)
    assert "the gradient is TRANSPOSED: grad.T matches the reference" in report.summary


@pytest.mark.parametrize("scale", [1e3, 1e-6])
def test_a_spread_error_of_float32_size_with_a_float64_forward_is_diagnosed_at_any_output_scale(scale):
    """Relative error ~1e-7 in every element (not a common scale) while the forward is float64:
    'was part of the backward computed in float32?', whatever the size of the outputs (the
    relative error, not the absolute one, is compared with float32 round-off)."""
    report = _report(_spread(1e-7), scale=scale)
    assert not report.ok, report.summary
    assert "is of the order of float32 round-off (u = 6.0e-08) amplified, while the forward's measured" in (
        report.summary
    )


def test_a_scaled_gradient_is_not_called_a_float32_backward():
    """A common factor 1 + 1e-7 has a relative error in float32's range, but it is SCALED (the same
    ratio in every block), which float32 round-off never is."""
    scaled = _report(torch.full((10, 4), 1 + 1e-7, dtype=torch.float64))
    assert "the gradient is SCALED" in scaled.summary and "float32" not in scaled.summary


def test_only_inputs_laid_out_in_time_are_localised_in_time():
    """time_axis=0, T = 7: W (7 x 4) has 7 rows but is not laid out like the output (rank 2 vs 3),
    so its blocks are rows; a batch-first input x (2, 7, 3) with time_axis=1 is split along axis 1
    into time steps; an input named in time_inputs without a time axis is split into elements."""
    w7 = _report(_row_factors({3: 1e-3}, n=7), shape=(7, 4), time_axis=0)
    assert "wrong rows along axis 0: 3 (of 0..6)" in w7.summary, w7.summary
    g = torch.Generator().manual_seed(6)
    W = (torch.rand(5, 3, generator=g, dtype=torch.float64) - 0.5).requires_grad_(True)
    b = torch.rand(5, generator=g, dtype=torch.float64).requires_grad_(True)
    x = torch.randn(2, 7, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    fx = torch.ones(2, 7, 3, dtype=torch.float64)
    fx[:, 3] += 1e-3
    fb = torch.ones(5, dtype=torch.float64)
    fb[2] += 1e-3

    def fn(x, W, b):
        return torch.tanh(_corrupt(x, fx) @ W.T + _corrupt(b, fb))

    report = check_gradients(CheckTarget(fn, (x, W, b), names=("x", "W", "b"), time_axis=1, time_inputs=(0, 2)), seed=1)
    assert "wrong time steps along axis 1: 3 (of 0..6)" in report.summary, report.summary
    assert "wrong elements along axis 0: 2 (of 0..4)" in report.summary, report.summary


def _time_report(steps: list[int], *, final_factor: float = 1.0):
    """y_t = tanh(W x_t) (T = 7) and the final state tanh(W x_6) as a second output, with the
    cotangent of the output steps ``steps`` (or of the final state) scaled on its way back."""
    g = torch.Generator().manual_seed(4)
    W = (torch.rand(6, 3, generator=g, dtype=torch.float64) - 0.5).requires_grad_(True)
    x = torch.randn(7, 2, 3, generator=g, dtype=torch.float64)
    factor = torch.ones(7, 2, 6, dtype=torch.float64)
    factor[steps] += 1e-3

    def fn(W):
        y = torch.tanh(x @ W.T)
        return _corrupt(y, factor), _corrupt(y[-1], torch.full((2, 6), final_factor, dtype=torch.float64))

    return check_gradients(CheckTarget(fn, (W,), names=("W",), time_axis=0), seed=1)


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        ([4], "wrong for the loss of output steps 4 (time axis 0); the first is t = 4\n"),
        ([1, 6], "wrong for the loss of output steps 1, 6 (time axis 0); the first is t = 1, the last is t = 6"),
    ],
)
def test_one_or_two_wrong_output_steps_are_named_first_and_last(steps, words):
    report = _time_report(steps)
    assert report.inputs[0].bad_output_steps == tuple(steps), report.summary
    assert words in report.summary + "\n", report.summary


def test_an_error_only_in_the_final_state_output_is_in_no_output_steps_loss():
    """The final state's cotangent scaled, the sequence's not: every output step's loss alone
    gives the right gradient, and the report says the error is in the final-state outputs."""
    report = _time_report([], final_factor=1.001)
    w = report.inputs[0]
    assert not w.ok and w.bad_output_steps == (), report.summary
    assert "the output steps' losses taken one at a time all agree (the error is in the final-state outputs" in (
        report.summary
    )


@pytest.mark.parametrize("rng_seed", [2, 3])
def test_an_error_just_above_the_resolution_spread_over_every_row_fails_no_block_alone(rng_seed):
    """Relative errors ~1e-11 in every element (the check's resolution is 1.2e-12): the whole
    tensor fails, but a block carries about an eighth of the error against the same evaluation
    noise, so no block fails, and the report says so instead of naming rows."""
    report = _report(_spread(8e-12, rng_seed))
    w = report.inputs[0]
    assert not w.ok and w.bad_blocks == (), report.summary
    assert "no single block along axis 0 (rows) fails on its own: the error is spread thinly over the tensor" in (
        report.summary
    )


def test_a_failing_one_row_block_is_not_probed_again():
    """Row 4 is a block of its own, row 3 shares the block 2..3: the second costs exactly two more
    probes (rows 2 and 3, 2 x levels = 8 evaluations each); the first none."""
    alone, paired = _report(_row_factors({4: 1e-3})), _report(_row_factors({3: 1e-3}))
    assert (alone.inputs[0].bad_blocks, paired.inputs[0].bad_blocks) == (("4",), ("3",))
    assert paired.evaluations - alone.evaluations == 2 * 2 * 4
