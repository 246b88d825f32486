"""Shared helpers for the model tests: norm-wise relative comparison, torch losses and a user's cell."""

from __future__ import annotations

import numpy as np

from gradtheory._tolerances import RelTol
from gradtheory.cells import DENSE


def rel_error(actual, expected) -> float:
    """max|actual - expected| / max|expected| (norm-wise relative error; 0/0 -> 0)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = np.max(np.abs(expected)) if expected.size else 0.0
    diff = np.max(np.abs(actual - expected)) if expected.size else 0.0
    if scale == 0.0:
        return float(diff)
    return float(diff / scale)


def robust_norm(*arrays) -> float:
    """2-norm of the concatenation of ``arrays``, scaled first so that squares cannot underflow."""
    flat = np.concatenate([np.ravel(a) for a in arrays])
    m = np.max(np.abs(flat)) if flat.size else 0.0
    return 0.0 if m == 0.0 else float(m * np.sqrt(np.sum((flat / m) ** 2)))


def assert_rel(actual, expected, tol: RelTol, what: str = "") -> None:
    """Norm-wise relative comparison against a shared relative tolerance (its reason in _tolerances)."""
    if not isinstance(tol, RelTol):
        raise TypeError(f"tol must be a RelTol (a relative tolerance), got {type(tol).__name__}")
    err = rel_error(actual, expected)
    assert err <= tol.value, f"{what}: relative error {err:.3e} > {tol.value:.0e}"


def torch_run(module, x, h0, d_output, d_h_n, d_c_n=None):
    """Forward the torch twin and backpropagate L = <d_out, out> + <d_hn, hn> (+ <d_cn, cn>)."""
    import torch

    xt = torch.tensor(x, requires_grad=True)
    if h0 is None:
        out, hn = module(xt)
        h0t = None
    elif isinstance(h0, tuple):
        h0t = tuple(torch.tensor(v, requires_grad=True) for v in h0)
        out, hn = module(xt, h0t)
    else:
        h0t = torch.tensor(h0, requires_grad=True)
        out, hn = module(xt, h0t)
    L = (out * torch.from_numpy(d_output)).sum()
    if isinstance(hn, tuple):
        L = L + (hn[0] * torch.from_numpy(d_h_n)).sum() + (hn[1] * torch.from_numpy(d_c_n)).sum()
    else:
        L = L + (hn * torch.from_numpy(d_h_n)).sum()
    L.backward()
    grads = {n: p.grad.numpy().copy() for n, p in module.named_parameters()}
    if isinstance(hn, tuple):
        hn_np = tuple(v.detach().numpy() for v in hn)
        h0g = None if h0t is None else tuple(v.grad.numpy() for v in h0t)
    else:
        hn_np = hn.detach().numpy()
        h0g = None if h0t is None else h0t.grad.numpy()
    return out.detach().numpy(), hn_np, grads, xt.grad.numpy(), h0g


def model_grad_fn(model):
    """A hand-written grad_fn for check_gradients(fn, (params, x)): ``model``'s BPTT at ``params``,
    returning (params gradients, x gradient) for the cotangents ``w`` of fn's outputs."""

    def grad_fn(w, params, x):
        g = model.backward(model.apply(params, x), *w)
        return (g.params, g.x)

    return grad_fn


class HalfTanhCell:
    """h_t = (tanh(a_t) + h_{t-1}) / 2: a user-written cell with its own backward and Jacobian and
    only what the Cell protocol requires (no ``name``, ``activation`` or ``rational``)."""

    gates, n_states, additive = 1, 1, True
    recurrence = DENSE

    def step(self, gi, gh, state):
        th = np.tanh(gi + gh)
        return (0.5 * th + 0.5 * state[0],), th

    def step_backward(self, d_state, cache):
        da = 0.5 * d_state[0] * (1.0 - cache * cache)
        return da, da, (0.5 * d_state[0],)

    def step_jacobian(self, cache, W_hh):
        J = (0.5 * (1.0 - cache * cache))[:, :, None] * W_hh
        idx = np.arange(W_hh.shape[1])
        J[:, idx, idx] += 0.5
        return J

    def equations(self, gi, gh, prev, ops):
        return ([(ops.tanh(p + q) + h) * 0.5 for p, q, h in zip(gi, gh, prev[0])],), {}
