"""Derived bounds and closed forms (proofs/activation_bounds.tex, norm_bound.tex, linear_rnn.tex,
clipping.tex) against the numeric models, numpy and torch."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from gradtheory import RNN
from gradtheory._tolerances import JACOBIAN_PRODUCT
from gradtheory.clipping import TORCH_CLIP_EPS
from gradtheory.models.activations import ACTIVATIONS
from gradtheory.strategies import matrices, sequences
from gradtheory.symbolic import derive, gamma
from gradtheory.symbolic.activation_bounds import a as a_sym
from gradtheory.symbolic.activation_bounds import phi_prime
from gradtheory.symbolic.linear_rnn import jordan_power, transient_example
from gradtheory.symbolic.norm_bound import bound, threshold

# ACTIVATION_DERIVATIVE (relative tolerance): Relative part: phi' from Activation.grad(a, h) vs
# SymPy's lambdified phi'(a): 1 - tanh^2 from h vs sech^2 from a: cancellation near saturation,
# error ~ u / |1 - h^2| * |1 - h^2| ~ u.
ACTIVATION_DERIVATIVE = 1e-12
# ACTIVATION_DERIVATIVE_ABS (absolute tolerance): Absolute part of activation_derivative: where phi'
# is tiny (saturation) the cancellation in 1 - h^2 makes the relative error large but the absolute
# error stays ~ u (values <= gamma <= 1); 1e-15 ~ 9 u.
ACTIVATION_DERIVATIVE_ABS = 1e-15
# JORDAN_BLOCK_POWER (relative tolerance): Relative, and absolute times max(1, max|ref|): [[l, a],
# [0, l]]^m closed form vs matrix_power: m-fold products of O(1) numbers (m <= 12): relative error ~
# m u in the largest entry.
JORDAN_BLOCK_POWER = 1e-13
# GELFAND_RADIUS_SLACK (relative tolerance): rho(W) (1 - rtol) <= ||W^m||^(1/m): eigenvalues of a
# non-normal W are ill-conditioned (a defective eigenvalue moves by ~ sqrt(u) ~ 1e-8 under an O(u)
# perturbation): allow 1e-6 relative slack on rho.
GELFAND_RADIUS_SLACK = 1e-6
# GELFAND_RADIUS_SLACK_ABS (absolute tolerance): Absolute slack on ||W^m||^(1/m) in the same
# inequality: for (nearly) nilpotent draws W^m is zero up to round-off of size ~ m u ||W||^m, and
# the m-th root of that is not relatively accurate; 1e-12 absolute.
GELFAND_RADIUS_SLACK_ABS = 1e-12
# TRANSIENT_EXAMPLE_NORM_ABS (absolute tolerance): Absolute: ||W_ex||_2 from SymPy (exact, one
# conversion to float) vs numpy's SVD of the 2x2 matrix with entries <= 1: backward-stable SVD, ~ u
# ||W_ex|| each (||W_ex|| ~ 1.5), a couple of u in all.
TRANSIENT_EXAMPLE_NORM_ABS = 2e-15
# TRANSIENT_EXAMPLE_M_STAR_ABS (absolute tolerance): Absolute: m* = -1/ln(9/10) ~ 9.49 from SymPy
# (converted to float) vs numpy: one log and one division, ~ 2 u * 9.5 ~ 2e-15; 1e-12 is a wide
# margin.
TRANSIENT_EXAMPLE_M_STAR_ABS = 1e-12
# SYMBOLIC_CLIP_NORM (relative tolerance): Relative to max(||g||, 1): ||factor(r, theta) g|| vs the
# derived min(||g||, theta), the cosine of clip(g) and g, and torch's clip_grad_norm_ beyond its
# 1e-6 epsilon term: a norm of N <= 6 entries, one division and a product: ~ (N + 3) u ~ 1e-15;
# 1e-14 leaves a margin.
SYMBOLIC_CLIP_NORM = 1e-14

PRODUCT = JACOBIAN_PRODUCT.value


def test_derived_gamma_equals_the_activation_table():
    """gamma = sup|phi'| derived by SymPy equals ACTIVATIONS[name].gamma exactly: 1, 1/4, 1, 1."""
    for name, act in ACTIVATIONS.items():
        g = gamma(name)
        assert g.is_Rational
        assert Fraction(int(g.p), int(g.q)) == act.gamma
    assert (gamma("tanh"), gamma("sigmoid"), gamma("relu"), gamma("identity")) == (1, sp.Rational(1, 4), 1, 1)


@given(
    st.sampled_from(sorted(ACTIVATIONS)), st.lists(st.floats(-30, 30, allow_subnormal=False), min_size=1, max_size=20)
)
def test_derived_derivative_equals_activation_grad_and_is_bounded_by_gamma(name, values):
    """phi' derived by SymPy (lambdified) equals Activation.grad, and |phi'| <= gamma everywhere."""
    a = np.array(values)
    act = ACTIVATIONS[name]
    f = sp.lambdify(a_sym, phi_prime(name), modules="numpy")
    derived = np.broadcast_to(np.asarray(f(a), dtype=float), a.shape)
    numeric = act.grad(a, act.phi(a))
    # 1 - tanh^2 from h vs sech^2 from a: cancellation near saturation, error ~ u / |1 - h^2| * |1 - h^2| ~ u.
    np.testing.assert_allclose(
        numeric,
        derived,
        rtol=ACTIVATION_DERIVATIVE,
        atol=ACTIVATION_DERIVATIVE_ABS,
    )
    assert np.all(np.abs(numeric) <= float(gamma(name)))


def test_gamma_is_attained():
    """The supremum is a maximum: attained at a = 0 (tanh, sigmoid) or at any a > 0 (relu, identity)."""
    for name, at in (("tanh", 0.0), ("sigmoid", 0.0), ("relu", 1.0), ("identity", -3.0)):
        act = ACTIVATIONS[name]
        a = np.array([at])
        assert act.grad(a, act.phi(a))[0] == float(gamma(name))


@given(st.sampled_from(sorted(ACTIVATIONS)), st.integers(1, 4), st.floats(0.2, 3.0), st.data())
def test_jacobian_product_norm_bounded_by_gamma_times_spectral_norm_power(name, n, s, data):
    r"""||dh_t/dh_k||_2 <= (gamma ||W_hh||_2)^(t-k) for every drawn W_hh of spectral norm s
    (proofs/norm_bound.tex)."""
    W = data.draw(matrices(n, spectral_norm=s), label="W_hh")
    x = data.draw(sequences(steps=st.integers(1, 8), input_size=2), label="x")
    model = RNN(2, n, nonlinearity=name, seed=1)
    model.params["weight_hh_l0"] = W
    Js = model.jacobians(model.forward(x))
    g_, s_, m_ = derive("norm_bound").result["symbols"]
    env = sp.lambdify([g_, s_, m_], derive("norm_bound").result["bound"], modules="numpy")
    gam = float(ACTIVATIONS[name].gamma)
    for k in range(len(Js)):
        P = np.eye(n)
        for t in range(k, len(Js)):
            P = Js[t] @ P
            m = t - k + 1
            # the bound is exact arithmetic; the float product carries ~ m n u relative round-off
            assert np.linalg.norm(P, 2) <= env(gam, s, m) * (1 + PRODUCT)


def test_vanishing_threshold_is_one_over_gamma():
    """The threshold on ||W_hh||_2 below which vanishing is guaranteed is 1/gamma: 1, 4, 1, 1."""
    thr = derive("norm_bound").result["thresholds"]
    for name, act in ACTIVATIONS.items():
        assert thr[name] == threshold(name) == sp.Rational(act.gamma.denominator, act.gamma.numerator)
    assert bound(sp.Rational(1, 4), 2, 3) == sp.Rational(1, 8)


@given(st.floats(-1.2, 1.2), st.floats(-3, 3), st.integers(0, 12))
def test_jordan_block_power_closed_form_equals_matrix_power(lam, alpha, m):
    """[[l, a], [0, l]]^m = [[l^m, m a l^(m-1)], [0, l^m]] (SymPy) equals numpy.linalg.matrix_power."""
    (J, Jm) = jordan_power()
    l_, a_, m_ = derive("linear_rnn").result["symbols"][:3]
    f = sp.lambdify([l_, a_, m_], Jm, modules="numpy")
    got = np.array(f(lam, alpha, m), dtype=float) if m > 0 else np.eye(2)
    ref = np.linalg.matrix_power(np.array([[lam, alpha], [0, lam]]), m)
    # m-fold products of O(1) numbers: relative error ~ m u in the largest entry.
    tol = JORDAN_BLOCK_POWER
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * max(1.0, np.abs(ref).max()))


@given(st.integers(1, 4), st.data())
def test_linear_rnn_jacobian_product_is_a_matrix_power_and_gelfand_bounds_hold(n, data):
    r"""Identity activation: prod_{j=k+1}^T J_j = W^(T-k); rho(W) <= ||W^m||^(1/m) <= ||W|| (proofs/linear_rnn.tex)."""
    W = data.draw(matrices(n), label="W")
    x = data.draw(sequences(steps=st.integers(1, 8), input_size=1), label="x")
    model = RNN(1, n, nonlinearity="identity", seed=2)
    model.params["weight_hh_l0"] = W
    Js = model.jacobians(model.forward(x))
    P = np.eye(n)
    rho = np.max(np.abs(np.linalg.eigvals(W)))
    norm = np.linalg.norm(W, 2)
    for m, J in enumerate(Js, start=1):
        P = J @ P
        Wm = np.linalg.matrix_power(W, m)
        np.testing.assert_allclose(P, Wm, rtol=0, atol=PRODUCT * max(1.0, norm) ** m)
        nm = np.linalg.norm(Wm, 2) ** (1 / m)
        # eigenvalues of a non-normal W are ill-conditioned: allow 1e-6 relative slack on rho
        slack, slack_abs = GELFAND_RADIUS_SLACK, GELFAND_RADIUS_SLACK_ABS
        assert rho * (1 - slack) <= nm + slack_abs and nm <= norm * (1 + PRODUCT)


def test_non_normal_transient_growth_example():
    """W_ex = [[9/10, 1], [0, 9/10]]: rho < 1 < ||W_ex||_2, ||W_ex^9||_2 >= 9 (9/10)^8 ~ 3.87, and W_ex^m -> 0."""
    ex = transient_example()
    W = np.array(ex["W"].tolist(), dtype=float)
    assert float(ex["radius"]) == np.max(np.abs(np.linalg.eigvals(W))) < 1
    assert abs(float(ex["norm"]) - np.linalg.norm(W, 2)) <= TRANSIENT_EXAMPLE_NORM_ABS
    norms = [np.linalg.norm(np.linalg.matrix_power(W, m), 2) for m in range(1, 200)]
    assert ex["m_peak"] == 9 and norms[8] >= float(ex["peak"]) > 3.8
    assert abs(float(ex["m_star"]) - (-1 / np.log(0.9))) < TRANSIENT_EXAMPLE_M_STAR_ABS
    assert norms[-1] < 1e-6


@given(st.lists(st.floats(-1e3, 1e3, allow_subnormal=False), min_size=1, max_size=6), st.floats(0.01, 100))
def test_norm_clipping_caps_the_norm_and_keeps_the_direction(values, theta):
    """clip(g) = min(1, theta/||g||) g: ||clip(g)|| = min(||g||, theta), same direction; torch's
    clip_grad_norm_ agrees up to its 1e-6 guard in the denominator (proofs/clipping.tex)."""
    import torch

    d = derive("clipping")
    r_, t_ = d.result["symbols"]
    factor = sp.lambdify([r_, t_], d.result["factor"], modules="numpy")
    norm_f = sp.lambdify([r_, t_], d.result["norm"], modules="numpy")
    g = np.array(values)
    r = np.linalg.norm(g)
    clipped = factor(r, theta) * g if r > 0 else g
    clip_tol = SYMBOLIC_CLIP_NORM
    assert abs(np.linalg.norm(clipped) - (norm_f(r, theta) if r > 0 else 0.0)) <= clip_tol * max(r, 1.0)
    if r > 0:
        assert float(clipped @ g) >= (1 - clip_tol) * np.linalg.norm(clipped) * r
    p = torch.nn.Parameter(torch.zeros(len(g), dtype=torch.float64))
    p.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_norm_([p], theta)
    # torch scales by min(1, theta / (r + 1e-6)): relative difference <= 1e-6 / r when clipping.
    tol = TORCH_CLIP_EPS / r * np.abs(clipped).max() + clip_tol * max(r, 1.0) if r > 0 else 0.0
    np.testing.assert_allclose(p.grad.numpy(), clipped, rtol=0, atol=tol)


def test_value_clipping_changes_the_direction():
    """clamp((3, 1), -1, 1) = (1, 1), at cosine 2/sqrt(5) < 1 from g; torch's clip_grad_value_ agrees."""
    import torch

    gv, gc, cos = derive("clipping").result["value_example"]
    assert cos == 2 * sp.sqrt(5) / 5
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    p.grad = torch.tensor([float(v) for v in gv], dtype=torch.float64)
    torch.nn.utils.clip_grad_value_([p], 1.0)
    assert p.grad.tolist() == [float(v) for v in gc]
