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


def _report(factor: torch.Tensor, *, shape=(10, 4)):
    """check_gradients of y_t = tanh(W x_t) (T = 7, batch 2) with W's gradient multiplied by factor."""
    g = torch.Generator().manual_seed(0)
    W = (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5).requires_grad_(True)
    x = torch.randn(7, 2, shape[-1] if len(shape) > 1 else 1, generator=g, dtype=torch.float64)

    def fn(W):
        Wc = _corrupt(W, factor)
        return torch.tanh(x @ (Wc if Wc.ndim == 2 else Wc[:, None]).T)

    return check_gradients(CheckTarget(fn, (W,), names=("W",)), seed=1)


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


def test_one_wrong_row_in_a_block_of_two_is_refined_to_that_row():
    report = _report(_row_factors({7: 1e-3}))
    assert report.inputs[0].bad_blocks == ("7",), report.summary


def test_wrong_rows_in_two_blocks_are_refined_and_in_three_are_named_as_blocks():
    """Up to two failing blocks are refined to rows; three or more are reported as blocks lo..hi."""
    two = _report(_row_factors({1: 1e-3, 6: 2e-3, 7: -1e-3}))
    assert two.inputs[0].bad_blocks == ("1", "6", "7"), two.summary
    three = _report(_row_factors({0: 1e-3, 2: -1e-3, 3: 2e-3, 6: 1e-3}))
    assert three.inputs[0].bad_blocks == ("0", "2..3", "6..7"), three.summary
    assert "wrong rows along axis 0: 0, 2..3, 6..7 (of 0..9)" in three.summary


def test_an_error_in_every_row_is_spread_and_a_common_factor_is_scaled():
    rng = np.random.default_rng(2)
    spread = _report(torch.from_numpy(1 + 1e-3 * rng.uniform(0.5, 1.5, (10, 4)) * rng.choice([-1, 1], (10, 4))))
    assert "wrong in every block along axis 0 (rows): the error is spread over the whole tensor" in spread.summary
    assert "SCALED" not in spread.summary
    scaled = _report(torch.full((10, 4), 1.25, dtype=torch.float64))
    assert "wrong in every block along axis 0 (rows)" in scaled.summary
    assert "the gradient is SCALED: analytic/reference = 1.25 in every failing block" in scaled.summary


def test_a_one_element_input_reports_its_ratio_and_a_vector_is_split_into_elements():
    one = _report(torch.full((1, 1), 0.5, dtype=torch.float64), shape=(1, 1))
    assert "analytic/reference ratio 0.5" in one.summary and one.inputs[0].bad_blocks == ("all",)
    vector = _report(_row_factors({4: 1e-3}, cols=1)[:, 0], shape=(10,))
    assert "wrong elements along axis 0: 4 (of 0..9)" in vector.summary, vector.summary


def test_a_transposed_square_gradient_is_recognised():
    g = torch.Generator().manual_seed(3)
    W = (torch.rand(5, 5, generator=g, dtype=torch.float64) - 0.5).requires_grad_(True)
    x = torch.randn(7, 2, 5, generator=g, dtype=torch.float64)

    class Transposed(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.view_as(a)

        @staticmethod
        def backward(ctx, grad):
            return grad.T.clone()

    report = check_gradients(CheckTarget(lambda W: torch.tanh(x @ Transposed.apply(W).T), (W,), names=("W",)), seed=1)
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
