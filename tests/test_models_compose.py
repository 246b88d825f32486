"""RecurrentModel's own contract (gradtheory/models/compose.py): parameter layout, the checks on
results and cotangents, the reverse direction's Jacobians, parametrized weights under ``apply``, and
overflow detection. Written from the mutation survivors of compose.py (README, "Contributing")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradtheory as gt
from gradtheory.models import compose


def test_the_builtin_model_classes_stay_importable_from_compose_and_nothing_else_is_invented():
    """compose.RNN/LSTM/GRU/ResidualRNN/HighwayRNN are the registry's classes; any other name is an
    AttributeError naming the module and the attribute."""
    for name in ("RNN", "LSTM", "GRU", "ResidualRNN", "HighwayRNN"):
        assert getattr(compose, name) is getattr(gt, name)
    with pytest.raises(AttributeError, match=r"^module 'gradtheory.models.compose' has no attribute 'Bogus'$"):
        compose.Bogus  # noqa: B018


def test_per_layer_names_every_layer_and_direction_with_that_layers_input_width():
    """per_layer(make) calls make(n_in) once per layer and direction, n_in = input_size for layer 0
    and num_directions * hidden_size above, and names the values <base>_l<k>[_reverse]."""
    model = gt.RNN(3, 5, num_layers=3, bidirectional=True)
    got = model.per_layer(lambda n_in: {"w": n_in})
    assert got == {
        "w_l0": 3, "w_l0_reverse": 3, "w_l1": 10, "w_l1_reverse": 10, "w_l2": 10, "w_l2_reverse": 10,
    }  # fmt: skip
    assert gt.RNN(3, 5, num_layers=2).per_layer(lambda n_in: {"w": n_in}) == {"w_l0": 3, "w_l1": 5}


@pytest.mark.parametrize(
    ("model", "module"),
    [
        (gt.LSTM(3, 5, num_layers=2, bidirectional=True), torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True)),
        (gt.GRU(2, 4, bias=False), torch.nn.GRU(2, 4, bias=False)),
        (gt.RNN(4, 1, num_layers=3, nonlinearity="relu"), torch.nn.RNN(4, 1, num_layers=3, nonlinearity="relu")),
    ],
)
def test_num_parameters_and_repr_are_torchs(model, module):
    """num_parameters() is torch's sum of numel over the module's parameters; repr spells the
    constructor call."""
    assert model.num_parameters() == sum(p.numel() for p in module.parameters())
    kind = type(model).__name__
    extra = ", nonlinearity='relu'" if kind == "RNN" else ""
    assert repr(model) == (
        f"{kind}({model.input_size}, {model.hidden_size}, num_layers={model.num_layers}{extra}, bias={model.bias}, "
        f"batch_first=False, bidirectional={model.bidirectional})"
    )


def test_forward_refuses_complex_input_and_apply_accepts_it():
    """forward is the real model (complex x is a TypeError naming x); apply is the analytic
    extension the complex-step oracle uses."""
    model = gt.RNN(2, 3)
    x = np.ones((4, 2)) + 1e-3j
    with pytest.raises(TypeError, match=r"^x "):
        model.forward(x)
    assert np.iscomplexobj(model.apply(model.params, x).output)


def test_messages_name_the_argument_its_value_and_what_was_expected():
    model = gt.RNN(2, 3)
    model.params["weight_hh_l0"] = np.zeros((2, 2))  # bypasses the setter: caught at forward
    with pytest.raises(
        ValueError, match=r"params\['weight_hh_l0'\] must be an array of shape \(3, 3\), got ndarray of shape \(2, 2\)"
    ):
        model.forward(np.zeros((4, 2)))
    model = gt.RNN(2, 3)
    with pytest.raises(ValueError, match=r"^params\['weight_hh_l0'\] must have shape \(3, 3\), got \(2, 2\)$"):
        model.apply(dict(model.params, weight_hh_l0=np.zeros((2, 2))), np.zeros((4, 2)))
    with pytest.raises(TypeError, match=r"^h0 must be an array for RNN, got a tuple$"):
        model.forward(np.zeros((4, 2)), (np.zeros((1, 3)),))
    with pytest.raises(TypeError, match=r"^result must be the ForwardResult of this model's forward, got dict$"):
        model.backward({}, np.zeros((4, 3)))
    result = model.forward(np.zeros((4, 2)))
    with pytest.raises(TypeError, match=r"^d_c_n is only defined for LSTM, not RNN$"):
        model.backward(result, np.zeros((4, 3)), d_c_n=np.zeros((1, 3)))
    lstm = gt.LSTM(2, 3)
    with pytest.raises(ValueError, match=r"^d_c_n must have shape \(1, 3\)"):
        lstm.backward(lstm.forward(np.zeros((4, 2))), np.zeros((4, 3)), d_c_n=np.zeros((1, 4)))


def test_a_result_of_a_model_with_another_layout_is_refused_also_for_cells_with_their_own_layout():
    """An LRU of hidden size 4 cannot take the result of an LRU of hidden size 3 (same parameter
    names, other shapes); one of the same sizes and other weights can."""
    x = np.random.default_rng(0).standard_normal((5, 2))
    small, large, other = gt.LRU(2, 3, seed=1), gt.LRU(2, 4, seed=1), gt.LRU(2, 3, seed=2)
    with pytest.raises(ValueError, match="comes from a different model"):
        large.backward(small.forward(x), np.zeros((5, large.output_size)))
    g = other.backward(small.forward(x), np.ones((5, small.output_size)))
    assert set(g.params) == set(small.params)


def test_complex_cotangents_are_accepted_on_a_complex_forward_and_refused_on_a_real_one():
    """On a complex forward (apply), complex cotangents give the complex-linear gradient
    g(d_re + i d_im) = g(d_re) + i g(d_im); on a real forward they are a TypeError naming d_output."""
    model = gt.LSTM(2, 3, seed=3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 2))
    params = {k: v + 1e-3j * rng.standard_normal(v.shape) for k, v in model.params.items()}
    result = model.apply(params, x)
    d_re, d_im = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    c_re, c_im = rng.standard_normal((1, 3)), rng.standard_normal((1, 3))
    both = model.backward(result, d_re + 1j * d_im, d_c_n=c_re + 1j * c_im)
    re, im = model.backward(result, d_re, d_c_n=c_re), model.backward(result, d_im, d_c_n=c_im)
    for name in model.params:
        # the same operations in a different grouping: a few ulps of the largest term
        np.testing.assert_allclose(both.params[name], re.params[name] + 1j * im.params[name], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(both.c0, re.c0 + 1j * im.c0, rtol=1e-12, atol=1e-14)
    real = model.forward(x)
    with pytest.raises(TypeError, match=r"^d_output "):
        model.backward(real, d_re + 1j * d_im)
    with pytest.raises(TypeError, match=r"^d_c_n "):
        model.backward(real, d_re, d_c_n=c_re + 1j * c_im)


def test_parametrized_gradients_under_apply_use_the_applied_weights():
    """OrthogonalRNN.apply(params2, x) then backward pulls the weight gradient back through the
    parametrization at params2's free parameter (not the model's own): the gradients equal those of
    a model built with params2."""
    model = gt.OrthogonalRNN(2, 3, seed=4)
    params2 = gt.OrthogonalRNN(2, 3, seed=5).params
    x = np.random.default_rng(4).standard_normal((6, 2))
    d_out = np.random.default_rng(5).standard_normal((6, 3))
    via_apply = model.backward(model.apply(params2, x), d_out)
    own = gt.OrthogonalRNN(2, 3, params=params2)
    reference = own.backward(own.forward(x), d_out)
    for name in params2:
        np.testing.assert_array_equal(via_apply.params[name], reference.params[name])
    assert not np.array_equal(
        via_apply.params[next(k for k in params2 if k.startswith("parametrizations."))],
        model.backward(model.forward(x), d_out).params[next(k for k in params2 if k.startswith("parametrizations."))],
    )
    with pytest.raises(NotImplementedError, match="^Bare does not say which model its weights form$"):
        type("Bare", (gt.OrthogonalRNN,), {"unparametrized": compose.RecurrentModel.unparametrized})(
            2, 3
        ).unparametrized()


def test_reverse_direction_jacobians_are_those_of_the_forward_cell_on_the_reversed_sequence():
    """jacobians(result, layer=0, direction=1) of a 2-layer bidirectional model equals, flipped back
    to sequence positions, the Jacobians of a one-layer model with the _reverse weights run on x
    reversed in time. Layer and direction out of range are refused by name."""
    model = gt.GRU(2, 3, num_layers=2, bidirectional=True, seed=6)
    x = np.random.default_rng(6).standard_normal((5, 2))
    rev = {k.replace("_reverse", ""): v for k, v in model.params.items() if k.endswith("_l0_reverse")}
    single = gt.GRU(2, 3, params=rev)
    expected = single.jacobians(single.forward(x[::-1].copy()))[::-1]
    result = model.forward(x)
    np.testing.assert_array_equal(model.jacobians(result, layer=0, direction=1), expected)
    with pytest.raises(ValueError, match=r"^layer must be < num_layers=2, got 2$"):
        model.jacobians(result, layer=2)
    with pytest.raises(ValueError, match=r"^direction must be < 2, got 2$"):
        model.jacobians(result, direction=2)
    with pytest.raises((TypeError, ValueError), match=r"^layer "):
        model.jacobians(result, layer=-1)
    with pytest.raises((TypeError, ValueError), match=r"^direction "):
        model.jacobians(result, direction=-1)


def test_an_overflow_in_one_unit_is_caught_in_forward_and_backward():
    """One of two ReLU units overflows (the other stays 0): the state's min is finite and its max is
    inf, and forward still raises naming h; a backward whose gradient overflows in one entry only
    raises naming the parameter."""
    relu = gt.RNN(
        1,
        2,
        nonlinearity="relu",
        params={
            "weight_ih_l0": [[1.0], [-1.0]],
            "weight_hh_l0": np.eye(2) * 4,
            "bias_ih_l0": [0.0, 0.0],
            "bias_hh_l0": [0.0, 0.0],
        },
    )
    with pytest.raises(FloatingPointError, match="forward overflowed: state h of layer/direction 0"):
        with np.errstate(over="ignore", invalid="ignore"):
            relu.forward(np.full((2, 1), 1e308))
    result = relu.forward(np.full((2, 1), 1e300))
    assert np.all(np.isfinite(result.output)) and np.min(result.output) == 0.0
    with pytest.raises(FloatingPointError, match="backward overflowed: the gradient of weight_"):
        with np.errstate(over="ignore", invalid="ignore"):
            relu.backward(result, np.full((2, 2), 1e10))


def test_default_initialisation_is_torchs_seeded_uniform_or_the_cells_own():
    """Without params: U(-1/sqrt(H), 1/sqrt(H)) per entry (torch's default), reproducible from
    ``seed`` (default 0); a cell with init_params (the LRU) draws its own (|lambda| in the ring)."""
    model = gt.LSTM(3, 16, seed=7)
    values = np.concatenate([v.ravel() for v in model.params.values()])
    bound = 1 / np.sqrt(16)
    assert np.max(np.abs(values)) <= bound
    # 4,000+ uniform draws: the extreme ones are within 1% of the ends (probability of failure < 1e-17)
    assert values.min() < -0.99 * bound and values.max() > 0.99 * bound
    for name, value in gt.LSTM(3, 16, seed=7).params.items():
        np.testing.assert_array_equal(value, model.params[name])
    for name, value in gt.LSTM(3, 16).params.items():
        np.testing.assert_array_equal(value, gt.LSTM(3, 16, seed=0).params[name])
    lru = gt.LRU(2, 8, seed=0, r_min=0.5, r_max=0.9)
    modulus = np.exp(-np.exp(lru.params["nu_log_l0"]))
    assert np.all((modulus >= 0.5) & (modulus <= 0.9))


def test_constructor_arguments_are_checked_by_name():
    with pytest.raises(TypeError, match=r"^cell must be given: an object implementing gradtheory.cells.Cell$"):
        compose.RecurrentModel(2, 3)
    with pytest.raises(TypeError, match=r"^bias "):
        gt.RNN(2, 3, bias="yes")
    with pytest.raises(TypeError, match=r"^batch_first "):
        gt.RNN(2, 3, batch_first=1)
    with pytest.raises(NotImplementedError, match=r"^bidirectional=True is not supported by the cell LRUCell "):
        gt.LRU(2, 3, bidirectional=True)
    with pytest.raises(TypeError, match=r"^params must be a mapping of parameter name -> array, got list$"):
        gt.RNN(2, 3).apply([], np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"missing \['bias_hh_l0'\], unexpected \['bogus'\]"):
        model = gt.RNN(2, 3)
        model.apply({k: v for k, v in model.params.items() if k != "bias_hh_l0"} | {"bogus": 0}, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"^h0 must have shape \(1, 3\)"):
        gt.RNN(2, 3).forward(np.zeros((4, 2)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"^h0\[0\] must have shape \(1, 3\)"):
        gt.LSTM(2, 3).forward(np.zeros((4, 2)), (np.zeros((1, 4)), np.zeros((1, 3))))


def test_layer_params_default_to_the_first_layer_and_forward_direction():
    model = gt.GRU(2, 3, num_layers=2, bidirectional=True, seed=8)
    default, first = model.layer_params(), model.layer_params(0, 0)
    for a, b in zip(default, first):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.layer_params(0, 1).W_hh, first.W_hh)


def test_backward_uses_the_weights_of_its_forward_even_after_the_model_changed():
    """A ForwardResult records the weights it ran with: assigning new params to the model between
    forward and backward does not change the gradient (parametrized weights pulled back at the
    recorded free parameters)."""
    model = gt.OrthogonalRNN(2, 3, seed=9)
    x = np.random.default_rng(9).standard_normal((5, 2))
    d_out = np.random.default_rng(10).standard_normal((5, 3))
    expected = model.backward(model.forward(x), d_out)
    result = model.forward(x)
    model.params = gt.OrthogonalRNN(2, 3, seed=11).params
    got = model.backward(result, d_out)
    for name in expected.params:
        np.testing.assert_array_equal(got.params[name], expected.params[name])


def test_a_gradient_overflowing_only_in_x_is_named_x():
    """W_ih = 1e300 and x = 1e-300 keep the forward moderate (W_ih x = 1); dL/dx = W_ih^T da
    overflows while every parameter gradient (da x^T, da h^T, da) stays finite."""
    model = gt.RNN(
        1, 1, params={"weight_ih_l0": [[1e300]], "weight_hh_l0": [[0.5]], "bias_ih_l0": [0.0], "bias_hh_l0": [0.0]}
    )
    result = model.forward(np.full((2, 1), 1e-300))
    with pytest.raises(FloatingPointError, match="^backward overflowed: the gradient of x is not finite"):
        with np.errstate(over="ignore", invalid="ignore"):
            model.backward(result, np.full((2, 1), 1e10))
