"""OrthogonalRNN (expRNN: W_hh = expm(A - A^T)): what is specific to the parametrization. The
generic properties (torch twin parity through torch.linalg.matrix_exp and autograd, complex step
on A, stacked and bidirectional; exact arithmetic and SymPy sums on the Elman part) come from
tests/test_cells.py by registration.

Derivation: ``proofs/orthogonal.tex`` (written by ``gradtheory/cells/orthogonal.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtheory as gt
from gradtheory.cells.orthogonal import ExpSkew, expm_frechet_adjoint
from gradtheory.oracles import jacobian, model_loss

# expm of the 2n x 2n block matrix vs scipy's expm_frechet (Al-Mohy & Higham, a different
# algorithm): both backward stable for ||S|| <= 4, ||G|| <= 4: errors ~ (2n) u e^{||S||} ||G|| ~
# 16 * 2.2e-16 * 55 ~ 2e-13 relative to ||G||; 1e-12 leaves a factor 5.
FRECHET_RTOL = 1e-12
# Orthogonality of expm(S): scipy's Pade + squaring, ~(n + s) u with s <= 3 squarings for ||S|| <= 8.
ORTHOGONAL_ATOL = 1e-13
# Complex step on expm: exact to ~u per entry of the O(e^{||S||}) result: 1e-12 relative as above.
COMPLEX_STEP_RTOL = 1e-12

_MATS = st.integers(1, 5).flatmap(
    lambda n: hnp.arrays(np.float64, (n, n), elements=st.floats(-1.0, 1.0, allow_nan=False))
)


@given(A=_MATS)
def test_expm_of_a_skew_matrix_is_orthogonal_with_spectral_norm_one(A):
    """exp(A - A^T)^T exp(A - A^T) = exp(-S) exp(S) = I (proofs/orthogonal.tex, step 2)."""
    W = ExpSkew().forward(A)
    n = A.shape[0]
    assert np.max(np.abs(W.T @ W - np.eye(n))) <= ORTHOGONAL_ATOL
    assert abs(np.linalg.norm(W, 2) - 1.0) <= ORTHOGONAL_ATOL


@example(A=np.array([[0.0, 1.0], [0.0, 0.0]]), seed=0)
@given(A=_MATS, seed=st.integers(0, 2**32 - 1))
def test_block_triangular_adjoint_equals_scipy_expm_frechet_at_the_transpose(A, seed):
    """<G, L(S, E)> = <L(S^T, G), E>: our block-triangular adjoint equals scipy.linalg.expm_frechet(S^T, G),
    and the pairing identity holds for a drawn E (proofs/orthogonal.tex, steps 3-4)."""
    n = A.shape[0]
    G = np.random.default_rng(seed).uniform(-4, 4, (n, n))
    S = A - A.T
    D = expm_frechet_adjoint(S, G)
    ref = scipy.linalg.expm_frechet(S.T, G, compute_expm=False)
    scale = max(1.0, float(np.max(np.abs(G))))
    assert np.max(np.abs(D - ref)) <= FRECHET_RTOL * scale
    E = np.random.default_rng(n).normal(size=(n, n))
    L_SE = scipy.linalg.expm_frechet(S, E, compute_expm=False)
    assert abs(np.sum(G * L_SE) - np.sum(D * E)) <= FRECHET_RTOL * scale * np.sum(np.abs(E)) * 10


@given(A=_MATS, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_parametrization_vjp_equals_complex_step_of_expm_skew(A, seed):
    """d<G, exp(A - A^T)>/dA_ij = Im <G, exp((A + i h e_ij) - (A + i h e_ij)^T)> / h, h = 1e-20."""
    n = A.shape[0]
    G = np.random.default_rng(seed).uniform(-1, 1, (n, n))
    P = ExpSkew()
    got = P.vjp(A, G)
    h = 1e-20
    expected = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            Ac = A.astype(complex)
            Ac[i, j] += 1j * h
            expected[i, j] = np.sum(G * P.forward(Ac)).imag / h
    assert np.max(np.abs(got - expected)) <= COMPLEX_STEP_RTOL * max(1.0, float(np.max(np.abs(expected))))


def test_gradient_is_with_respect_to_A_and_equals_complex_step_through_the_model():
    """The model's gradient for parametrizations.weight_hh_l0.original is d L / d A, two layers,
    bidirectional: complex step through model.apply."""
    model = gt.OrthogonalRNN(2, 3, num_layers=2, bidirectional=True, seed=7)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2))
    d_out = np.random.default_rng(1).uniform(-1, 1, (5, 6))
    grads = model.backward(model.forward(x), d_out)
    for wrt in ("parametrizations.weight_hh_l0.original", "parametrizations.weight_hh_l1_reverse.original"):
        f, point = model_loss(model, x, wrt=wrt, d_output=d_out)
        expected = jacobian(f, point, method="complex")
        assert np.max(np.abs(grads.params[wrt] - expected)) <= COMPLEX_STEP_RTOL * np.sum(np.abs(d_out))


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 40), scale=st.sampled_from([0.5, 2.0, 8.0]))
def test_singular_values_of_jacobian_products_lie_between_products_of_min_and_max_tanh_prime(seed, T, scale):
    """W_hh orthogonal: sigma(diag(d) W) = |d|, so prod_t min_i tanh'(a_ti) <= sigma(dh_T/dh_0) <=
    prod_t max_i tanh'(a_ti) <= 1: no explosion, vanishing only through saturation (proofs/orthogonal.tex)."""
    from gradtheory.claims.orthogonal import singular_value_bounds

    ok, evidence = singular_value_bounds(seed % 1000, T=T, n=4, scale=scale)
    assert ok, evidence


def test_saturation_makes_the_gradient_vanish_although_w_is_orthogonal():
    """Witness: H = 1 (W = exp(0) = 1), bias 4: h settles at h* = tanh(h* + 4) ~ 0.99933, tanh' ~ 1.3e-3,
    so |dh_20/dh_0| ~ 1e-74; the model's BPTT equals the complex step on h0."""
    model = gt.OrthogonalRNN(
        1,
        1,
        params={
            "weight_ih_l0": np.zeros((1, 1)),
            "bias_ih_l0": np.array([4.0]),
            "bias_hh_l0": np.zeros(1),
            "parametrizations.weight_hh_l0.original": np.array([[0.3]]),
        },
    )
    x = np.zeros((20, 1))
    h0 = np.zeros((1, 1))
    g = model.backward(model.forward(x, h0), np.zeros((20, 1)), d_h_n=np.ones((1, 1))).h0
    f, point = model_loss(model, x, wrt="h0", h0=h0, d_output=np.zeros((20, 1)), d_h_n=np.ones((1, 1)))
    expected = jacobian(f, point, method="complex")
    # BPTT forms tanh' = 1 - h^2 from the rounded h ~ 0.99933: relative error ~2u / (1 - h^2) per
    # factor (~3.4e-13 here), 20 factors: 20 * 4u / (1 - h^2); the complex step differentiates tanh itself
    h_star = model.forward(x, h0).h_n.item()
    rtol = 20 * 4 * 2.3e-16 / (1 - h_star**2)
    assert abs(g.item() - expected.item()) <= rtol * abs(expected.item())
    assert 0 < abs(g.item()) < 1e-50


def test_a_vjp_that_forgets_the_skew_projection_is_caught_by_the_gradient_checker():
    """Test the tester: returning D instead of D - D^T must fail check_gradients naming the parameter."""

    class Wrong(ExpSkew):
        def vjp(self, value, d_weight):
            return expm_frechet_adjoint(value - value.T, d_weight)

    class WrongRNN(gt.OrthogonalRNN):
        parametrizations = {"weight_hh": Wrong()}

    model = WrongRNN(2, 3, seed=1)
    with pytest.raises(gt.GradientCheckError, match="parametrizations.weight_hh_l0.original"):
        gt.assert_gradients_match(model, np.random.default_rng(0).uniform(-1, 1, (4, 2)))


def test_unparametrized_model_is_the_elman_rnn_with_the_same_outputs():
    model = gt.OrthogonalRNN(2, 3, num_layers=2, nonlinearity="relu", seed=2)
    plain = model.unparametrized()
    assert type(plain) is gt.RNN and plain.nonlinearity == "relu"
    x = np.random.default_rng(3).uniform(-1, 1, (6, 2))
    np.testing.assert_array_equal(model.forward(x).output, plain.forward(x).output)


def test_the_parametrization_hook_is_general_a_user_scaled_weight_gets_bptt():
    """Any model can declare ``parametrizations``: here W_ih = 2 B on a plain Elman RNN, two layers.
    Its gradient with respect to B equals the complex step through ``model.apply``."""

    class Double:
        def forward(self, value):
            return 2.0 * value

        def vjp(self, value, d_weight):
            return 2.0 * d_weight

        def torch_module(self):
            raise NotImplementedError("not needed here")

    class DoubledRNN(gt.RNN):
        parametrizations = {"weight_ih": Double()}

    model = DoubledRNN(2, 3, num_layers=2, seed=4)
    assert "parametrizations.weight_ih_l1.original" in model.params
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2))
    d_out = np.random.default_rng(1).uniform(-1, 1, (5, 3))
    grads = model.backward(model.forward(x), d_out)
    name = "parametrizations.weight_ih_l1.original"
    f, point = model_loss(model, x, wrt=name, d_output=d_out)
    expected = jacobian(f, point, method="complex")
    assert np.max(np.abs(grads.params[name] - expected)) <= COMPLEX_STEP_RTOL * np.sum(np.abs(d_out))


@given(angle=st.floats(-20.0, 20.0))
@example(angle=0.03367390578706997)  # torch.linalg.matrix_exp is off by 3.5e-11 here (torch 2.13)
def test_torch_twin_exponential_of_a_rotation_generator_is_the_rotation(angle):
    """exp([[0, a], [-a, 0]]) = [[cos a, sin a], [-sin a, cos a]] (proofs/orthogonal.tex); the twin's
    scaling-and-squaring exponential meets it to 2^(s+1) * 4u: the Taylor polynomial of the scaled
    matrix is exact to a few u, and each of the s = ceil(log2(|a| / 0.5)) squarings at most doubles
    the error and adds ~2u (2x2 products); so it can serve as the 1e-12 oracle of the forward."""
    import torch

    from gradtheory.cells.orthogonal import _torch_expm

    S = np.array([[0.0, angle], [-angle, 0.0]])
    exact = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    got = _torch_expm(torch.from_numpy(S)).numpy()
    s = max(0, int(np.ceil(np.log2(abs(angle) / 0.5)))) if abs(angle) > 0.5 else 0
    assert np.max(np.abs(got - exact)) <= 2.0 ** (s + 1) * 4 * np.finfo(float).eps
