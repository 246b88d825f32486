"""The user's own cell: from_torch_cell runs the whole theory on any torch step.

Statements (the backward recursion dL/ds_{k-1} = J_k^T dL/ds_k and its log-space evaluation:
``proofs/rnn_bptt.tex``, ``proofs/lstm.tex``, ``proofs/gru.tex``):

* nn.RNNCell/LSTMCell/GRUCell wrapped by from_torch_cell give the same forward, backward,
  one-step Jacobians, gradient flow and Lyapunov exponents as from_torch of nn.RNN/LSTM/GRU with
  the same weights (the numpy twins with hand-written BPTT: an independent implementation),
  within the rounding bound derived in ``_flow_tolerance``; stacked and bidirectional likewise;
* a custom gated cell written in torch gets a flow equal to plain per-step autograd
  (torch.autograd.grad of <r, h_T> with respect to every state, one graph, no chunking);
* where that plain autograd underflows to exact zeros, the chunked flow stays finite, equals the
  numpy twin's log-space flow and its slope matches the Lyapunov exponent to O(1/T);
* from_torch reads parametrized weights (orthogonal, spectral norm) and accepts subclasses;
* the user's module and torch's RNG are unchanged; bad input gets a clear error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gradtheory as gt
from gradtheory.models import torch_cell as tc

U = 2.0**-53  # unit roundoff of float64

# Rounding bound for comparing two float64 evaluations of ln||dL/ds_k|| (error analysis):
# one backward step v -> J_t^T v evaluates S dot products of length <= S; each component errs by
# <= gamma_S |J_t|^T |v| (gamma_S ~ S u), so the 2-norm of the error is <= S u sqrt(S) ||J_t|| ||v||.
# Relative to the exact result ||J_t^T v|| = g_t ||v|| (g_t the step's gain) this is
# S^1.5 u kappa_t, kappa_t = ||J_t||_2 / g_t. Errors made at step t are carried back by the same
# linear maps as the gradient itself, which (normalised) converges to the fastest-growing
# direction, so they do not outgrow it: the relative errors add, and so do their effects on the
# log-norm. Factor 4: two independent implementations (2x), and the Jacobian entries themselves
# carry a few ulps from the forward pass (activation derivatives, a contracting trajectory whose
# state errors stay at the per-step level) (2x).
_FLOW_FACTOR = 4.0


def _flow_tolerance(J: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Entry k bounds |error of ln||dL/ds_k|||: sum over steps t > k of 4 S^1.5 u kappa_t."""
    S = J.shape[-1]
    gains = np.exp(flow[:-1] - flow[1:])  # ||J_t^T v_t|| / ||v_t||, t = 1..T
    kappa = np.linalg.norm(J, 2, axis=(1, 2)) / gains
    per_step = _FLOW_FACTOR * S**1.5 * U * kappa
    return np.concatenate([np.cumsum(per_step[::-1])[::-1], [0.0]]) + 4 * U * np.abs(flow)


def _lyapunov_tolerance(J: np.ndarray, v0: np.ndarray) -> float:
    """The same bound for the forward product (1/T) ln||J_T...J_1 v0||: mean of 4 S^1.5 u kappa_t."""
    S = J.shape[-1]
    v, total = v0 / np.linalg.norm(v0), 0.0
    for Jt in J:
        w = Jt @ v
        g = np.linalg.norm(w)
        total += _FLOW_FACTOR * S**1.5 * U * np.linalg.norm(Jt, 2) / g
        v = w / g
    return total / len(J)


def _default_v0(S: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(S)


def _twins(kind: str, I: int, H: int, seed: int = 0):
    """(torch cell, torch sequence module) with identical weights."""
    torch.manual_seed(seed)
    seq = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](I, H)
    cell = {
        "rnn": torch.nn.RNNCell,
        "lstm": torch.nn.LSTMCell,
        "gru": torch.nn.GRUCell,
    }[kind](I, H)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            p.copy_(getattr(seq, name + "_l0"))
    return cell, seq


def _x(T: int, I: int, seed: int = 1, scale: float = 1.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal((T, I))


# -- built-in torch cells against the numpy twins -------------------------------------------------
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_torch_cell_flow_and_lyapunov_equal_the_numpy_twin(kind):
    """For nn.RNNCell/LSTMCell/GRUCell, gradient_flow, lyapunov_exponent and lyapunov_spectrum of
    from_torch_cell equal those of from_torch(nn.RNN/LSTM/GRU) within the rounding bound."""
    I, H, T = 5, 8, 300
    cell, seq = _twins(kind, I, H)
    model, twin = gt.from_torch_cell(cell), gt.from_torch(seq)
    x = _x(T, I)
    r = np.random.default_rng(3).standard_normal(H)
    flow = gt.gradient_flow(model, x, readout=r)
    ref = gt.gradient_flow(twin, x, readout=r)
    J = twin.jacobians(twin.forward(x))
    assert np.all(np.isfinite(ref))
    assert np.all(np.abs(flow - ref) <= _flow_tolerance(J, ref))
    lam, lam_ref = gt.lyapunov_exponent(model, x), gt.lyapunov_exponent(twin, x)
    assert abs(lam - lam_ref) <= _lyapunov_tolerance(J, _default_v0(J.shape[-1]))
    spec, spec_ref = (
        gt.lyapunov_spectrum(model, x, k=3),
        gt.lyapunov_spectrum(twin, x, k=3),
    )
    # QR of the same product: each exponent is a mean of ln|R_ii|, perturbed like the top one.
    assert np.all(np.abs(spec - spec_ref) <= 3 * _lyapunov_tolerance(J, _default_v0(J.shape[-1])))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_torch_cell_flow_from_a_one_dimensional_h0_equals_the_numpy_twin(kind):
    """gradient_flow's contract, h0 of shape (H,) or (1, H) (a tuple for LSTM), holds for a torch cell
    too: both shapes give the same values, equal to from_torch's twin from the same h0 within the
    rounding bound; a 1-D h0 of the wrong length is refused by name."""
    I, H, T = 3, 5, 40
    cell, seq = _twins(kind, I, H)
    model, twin = gt.from_torch_cell(cell), gt.from_torch(seq)
    x = _x(T, I, seed=7)
    rng = np.random.default_rng(8)
    h0 = tuple(0.5 * rng.standard_normal(H) for _ in range(2)) if kind == "lstm" else 0.5 * rng.standard_normal(H)
    as_rows = tuple(v[None] for v in h0) if kind == "lstm" else h0[None]
    flow = gt.gradient_flow(model, x, h0=h0)
    np.testing.assert_array_equal(flow, gt.gradient_flow(model, x, h0=as_rows))
    ref = gt.gradient_flow(twin, x, h0=h0)
    J = twin.jacobians(twin.forward(x, tuple(v[None] for v in h0) if kind == "lstm" else h0[None]))
    assert np.all(np.abs(flow - ref) <= _flow_tolerance(J, ref))
    short = tuple(v[:-1] for v in h0) if kind == "lstm" else h0[:-1]
    with pytest.raises(ValueError, match=r"h0(\[0\])? must have shape \(1, 5\), got shape \(4,\)"):
        gt.gradient_flow(model, x, h0=short)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_torch_cell_forward_backward_jacobians_equal_the_numpy_twin(kind):
    """forward outputs/final states, backward (params, x, h0, per-step dh/dc at fixed h) and the
    one-step Jacobians equal the numpy twin's on a batch."""
    I, H, T, B = 4, 6, 25, 3
    cell, seq = _twins(kind, I, H, seed=5)
    model, twin = gt.from_torch_cell(cell), gt.from_torch(seq)
    x = np.random.default_rng(2).standard_normal((T, B, I))
    res, ref = model.forward(x), twin.forward(x)
    # Per step each entry is a dot product of length I + H (u (I + H) relative to the sum of
    # absolute terms, <= ~1 here); contracting default-initialised cells carry the errors along
    # without amplification, so they add over at most T steps.
    fwd = 4 * T * (I + H) * U
    assert np.max(np.abs(res.output - ref.output)) <= fwd
    assert np.max(np.abs(res.h_n - ref.h_n)) <= fwd
    if kind == "lstm":
        assert np.max(np.abs(res.c_n - ref.c_n)) <= fwd
    else:
        assert res.c_n is None
    d = np.random.default_rng(4).standard_normal(res.output.shape)
    g, gr = model.backward(res, d), twin.backward(ref, d)
    # Backward: the same per-step bound, and the parameter gradients sum T * B such terms.
    for name in ("x", "h0", "dh"):
        a, b = getattr(g, name), getattr(gr, name)
        assert np.max(np.abs(a - b)) <= fwd * (1 + np.max(np.abs(b))), name
    if kind == "lstm":
        assert np.max(np.abs(g.dc - gr.dc)) <= fwd * (1 + np.max(np.abs(gr.dc)))
    assert sorted(g.params) == ["bias_hh", "bias_ih", "weight_hh", "weight_ih"]
    for name, value in g.params.items():
        ref_value = gr.params[name + "_l0"]
        assert np.max(np.abs(value - ref_value)) <= B * fwd * (1 + np.max(np.abs(ref_value))), name
    J, Jr = model.jacobians(res), twin.jacobians(ref)
    assert J.shape == Jr.shape == (T, B, model.state_size, model.state_size)
    assert np.max(np.abs(J - Jr)) <= fwd * (1 + np.max(np.abs(Jr)))


def test_stacked_and_bidirectional_cells_compose_like_torch():
    """A list of LSTMCells is a stacked nn.LSTM; (forward, reverse) pairs with bidirectional=True
    are a bidirectional nn.GRU: same outputs, final states, gradients (torch's parameter names)
    and per-direction Jacobians as the numpy twins of the torch modules."""
    I, H, T, B = 3, 5, 12, 2
    torch.manual_seed(7)
    lstm = torch.nn.LSTM(I, H, num_layers=2)
    cells = [torch.nn.LSTMCell(I, H), torch.nn.LSTMCell(H, H)]
    gru = torch.nn.GRU(I, H, bidirectional=True)
    pair = (torch.nn.GRUCell(I, H), torch.nn.GRUCell(I, H))
    with torch.no_grad():
        for layer, c in enumerate(cells):
            for n, p in c.named_parameters():
                p.copy_(getattr(lstm, f"{n}_l{layer}"))
        for d, c in enumerate(pair):
            for n, p in c.named_parameters():
                p.copy_(getattr(gru, f"{n}_l0" + ("_reverse" if d else "")))
    x = np.random.default_rng(0).standard_normal((T, B, I))
    tol = 8 * T * (I + 2 * H) * U
    for model, twin in (
        (gt.from_torch_cell(cells), gt.from_torch(lstm)),
        (gt.from_torch_cell([pair], bidirectional=True), gt.from_torch(gru)),
    ):
        res, ref = model.forward(x), twin.forward(x)
        assert res.output.shape == ref.output.shape
        assert np.max(np.abs(res.output - ref.output)) <= tol
        assert np.max(np.abs(res.h_n - ref.h_n)) <= tol
        d = np.random.default_rng(1).standard_normal(res.output.shape)
        dh_n = np.random.default_rng(2).standard_normal(res.h_n.shape)
        g, gr = model.backward(res, d, d_h_n=dh_n), twin.backward(ref, d, d_h_n=dh_n)
        assert sorted(g.params) == sorted(gr.params)
        for name in gr.params:
            assert np.max(np.abs(g.params[name] - gr.params[name])) <= B * tol * (1 + np.abs(gr.params[name]).max())
        for name in ("x", "h0", "dh"):
            a, b = getattr(g, name), getattr(gr, name)
            assert np.max(np.abs(a - b)) <= tol * (1 + np.max(np.abs(b))), name
        for layer in range(model.num_layers):
            for direction in range(model.num_directions):
                J, Jr = (
                    model.jacobians(res, layer, direction),
                    twin.jacobians(ref, layer, direction),
                )
                assert np.max(np.abs(J - Jr)) <= tol * (1 + np.max(np.abs(Jr)))


# -- a custom cell against plain autograd --------------------------------------------------------
class MinimalGatedCell(torch.nn.Module):
    """h' = (1 - z) h + z tanh(W_n [x, r h]), z = sigmoid(W_z [x, h]), r = sigmoid(W_r [x, h])."""

    def __init__(self, I: int, H: int) -> None:
        super().__init__()
        self.z = torch.nn.Linear(I + H, H)
        self.r = torch.nn.Linear(I + H, H)
        self.n = torch.nn.Linear(I + H, H)

    def forward(self, x, h):
        xh = torch.cat([x, h], dim=-1)
        z, r = torch.sigmoid(self.z(xh)), torch.sigmoid(self.r(xh))
        n = torch.tanh(self.n(torch.cat([x, r * h], dim=-1)))
        return (1 - z) * h + z * n


class ResidualMemoryCell(torch.nn.Module):
    """A tuple state (h, m): m' = m + 0.1 tanh(A h), h' = tanh(W x + V h + m')."""

    def __init__(self, I: int, H: int) -> None:
        super().__init__()
        self.A = torch.nn.Linear(H, H, bias=False)
        self.W = torch.nn.Linear(I, H)
        self.V = torch.nn.Linear(H, H, bias=False)

    def forward(self, x, state):
        h, m = state
        m = m + 0.1 * torch.tanh(self.A(h))
        return torch.tanh(self.W(x) + self.V(h) + m), m


def _plain_autograd_log_norms(step, x: np.ndarray, s0: torch.Tensor, r: np.ndarray) -> np.ndarray:
    """Oracle: ln||dL/ds_k||, k = 0..T, L = <r, h_T>, from ONE autograd graph of the unrolled step
    (torch.autograd.grad with respect to every state node; no chunking, no renormalisation). The
    state passed on is a fresh node s_k = s'_k + 0, so the derivative is the joint-state one."""
    H = r.shape[0]
    xs = torch.from_numpy(x)
    s = s0.clone().requires_grad_(True)
    nodes = [s]
    for t in range(x.shape[0]):
        s = step(xs[t : t + 1], s) + 0.0
        nodes.append(s)
    loss = (s[0, :H] * torch.from_numpy(r)).sum()
    grads = torch.autograd.grad(loss, nodes)
    rows = torch.cat(grads).numpy()
    m = np.max(np.abs(rows), axis=1)  # scale first: squares of entries ~1e-162 would underflow
    safe = np.where(m > 0, m, 1.0)
    with np.errstate(divide="ignore"):
        return np.log(m) + 0.5 * np.log(np.sum((rows / safe[:, None]) ** 2, axis=1))


def _autograd_jacobians(step, x: np.ndarray, s0: torch.Tensor) -> np.ndarray:
    """Oracle one-step Jacobians along the trajectory, torch.autograd.functional.jacobian per step."""
    xs, s, out = torch.from_numpy(x), s0, []
    for t in range(x.shape[0]):
        out.append(torch.autograd.functional.jacobian(lambda st, t=t: step(xs[t : t + 1], st), s)[0, :, 0, :])
        with torch.no_grad():
            s = step(xs[t : t + 1], s)
    return torch.stack(out).numpy()


@pytest.mark.parametrize("which", ["gated", "residual-memory", "function"])
def test_custom_cell_flow_equals_plain_per_step_autograd(which):
    """A custom cell written in torch: gradient_flow (chunked, renormalised) equals plain autograd
    through the unrolled cell at a horizon where nothing underflows, within the rounding bound."""
    I, H, T = 4, 7, 200
    torch.manual_seed(11)
    if which == "gated":
        cell = MinimalGatedCell(I, H)
        model = gt.from_torch_cell(cell, input_size=I, hidden_size=H)
        ref_cell = MinimalGatedCell(I, H).double()
        ref_cell.load_state_dict(cell.state_dict())

        def step(x, s):
            return ref_cell(x, s)

        S = H
    elif which == "residual-memory":
        cell = ResidualMemoryCell(I, H)
        model = gt.from_torch_cell(cell, input_size=I, hidden_size=H, state_sizes=(H, H))
        ref_cell = ResidualMemoryCell(I, H).double()
        ref_cell.load_state_dict(cell.state_dict())

        def step(x, s):
            return torch.cat(ref_cell(x, (s[:, :H], s[:, H:])), dim=-1)

        S = 2 * H
    else:
        W = torch.randn(H, H, dtype=torch.float64) / math.sqrt(H)
        Wx = torch.randn(H, I, dtype=torch.float64)

        def cell(x, h):
            return torch.tanh(x @ Wx.T + h @ W.T) * 0.5 + 0.5 * h

        model = gt.from_torch_cell(cell, input_size=I, hidden_size=H)
        step, S = cell, H
    x = _x(T, I, seed=4)
    r = np.random.default_rng(5).standard_normal(H)
    s0 = torch.zeros(1, S, dtype=torch.float64)
    ref = _plain_autograd_log_norms(step, x, s0, r)
    assert np.all(np.isfinite(ref)) and ref[0] > -600  # no underflow at this horizon
    flow = gt.gradient_flow(model, x, readout=r)
    J = _autograd_jacobians(step, x, s0)
    assert np.all(np.abs(flow - ref) <= _flow_tolerance(J, ref))
    # and the model's own Jacobians are those of autograd
    Jm = model.jacobians(model.forward(x))
    assert np.max(np.abs(Jm - J)) <= 8 * (I + S) * U * (1 + np.abs(J).max())


def test_long_horizon_flow_is_finite_where_plain_autograd_underflows_to_zero():
    """T = 4000, GRUCell (lambda ~ -0.45/step): plain autograd's gradients are exactly 0 beyond
    ~1600 steps back; the chunked flow stays finite, equals the numpy twin's log-space flow
    within the rounding bound, and its full-span slope matches the Lyapunov exponent to O(1/T)."""
    I, H, T = 6, 16, 4000
    cell, seq = _twins("gru", I, H, seed=2)
    model, twin = gt.from_torch_cell(cell), gt.from_torch(seq)
    x = _x(T, I, seed=9)
    r = np.zeros(H)
    r[0] = 1.0
    ref_cell = torch.nn.GRUCell(I, H).double()
    ref_cell.load_state_dict(cell.state_dict())
    plain = _plain_autograd_log_norms(ref_cell, x, torch.zeros(1, H, dtype=torch.float64), r)
    assert np.sum(plain == -np.inf) > 1000  # plain float64 autograd underflowed to exact zeros
    flow = gt.gradient_flow(model, x)
    assert np.all(np.isfinite(flow)) and flow[0] < -1000
    ref = gt.gradient_flow(twin, x)
    J = twin.jacobians(twin.forward(x))
    assert np.all(np.abs(flow - ref) <= _flow_tolerance(J, ref))
    normal = plain > math.log(1e-290)  # where autograd's vectors are not subnormal
    assert np.all(np.abs(flow[normal] - plain[normal]) <= _flow_tolerance(J, ref)[normal])
    lam = gt.lyapunov_exponent(model, x)
    # Both are ln||.|| of the same product P (backward with u = e_0, forward with v0) and lie in
    # [ln s1 + ln|cos|, ln s1]; for these fixed generic unit vectors in R^16, |ln|cos|| <= 8 each
    # (|cos| < e^-8 has probability ~ 4 e^-8 per draw).
    assert abs((flow[T] - flow[0]) / T + lam) <= 16 / T


def test_chunk_fallback_and_recompute_paths_give_the_same_flow(monkeypatch):
    """Contraction ~1e-8 per step makes a 32-step chunk leave [1e-200, 1e200]: the per-step
    fallback must still match the numpy twin; the recompute (checkpointed) path must give
    bit-identical results to the kept-graph path; an exactly zero gradient gives -inf."""
    I, H, T = 3, 6, 150
    cell, seq = _twins("rnn", I, H, seed=4)
    with torch.no_grad():
        seq.weight_hh_l0.mul_(1e-8)
        cell.weight_hh.mul_(1e-8)
    model, twin = gt.from_torch_cell(cell), gt.from_torch(seq)
    x = _x(T, I)
    flow, ref = gt.gradient_flow(model, x), gt.gradient_flow(twin, x)
    assert flow[0] < -2000
    J = twin.jacobians(twin.forward(x))
    assert np.all(np.abs(flow - ref) <= _flow_tolerance(J, ref))
    monkeypatch.setattr(tc, "_KEEP_GRAPH_STEPS", 0)
    assert np.array_equal(gt.gradient_flow(model, x), flow)
    monkeypatch.undo()
    # relu units all off: every gradient before h_T is exactly 0
    dead = torch.nn.RNNCell(I, H, nonlinearity="relu")
    with torch.no_grad():
        dead.bias_ih.fill_(-100.0)
    out = gt.gradient_flow(gt.from_torch_cell(dead), x)
    assert out[T] == 0.0 and np.all(out[:T] == -np.inf)


def test_stacked_flow_is_the_joint_state_flow():
    """For a stack of two LSTMCells the flow is over the joint state (all layers' (h, c)),
    readout on the top layer's h_T: equal to plain autograd of the stacked nn.LSTM unrolled."""
    I, H, T = 3, 4, 120
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(I, H, num_layers=2).double()
    cells = [torch.nn.LSTMCell(I, H), torch.nn.LSTMCell(H, H)]
    with torch.no_grad():
        for layer, c in enumerate(cells):
            for n, p in c.named_parameters():
                p.copy_(getattr(lstm, f"{n}_l{layer}"))
    model = gt.from_torch_cell(cells)

    def step(x, s):  # joint state (h0, c0, h1, c1) through torch's own nn.LSTM, one step
        h = torch.stack([s[:, :H], s[:, 2 * H : 3 * H]])
        c = torch.stack([s[:, H : 2 * H], s[:, 3 * H :]])
        _, (h, c) = lstm(x[None], (h, c))
        return torch.cat([h[0], c[0], h[1], c[1]], dim=-1)

    x = _x(T, I)
    r = np.random.default_rng(1).standard_normal(H)
    s0 = torch.zeros(1, 4 * H, dtype=torch.float64)
    # _plain_autograd_log_norms reads h as the first H entries: move the top layer's h there
    perm = torch.cat([torch.arange(2 * H, 4 * H), torch.arange(0, 2 * H)])
    inv = torch.argsort(perm)

    def top_first(x_t, s):
        return step(x_t, s[:, inv])[:, perm]

    ref = _plain_autograd_log_norms(top_first, x, s0, r)
    flow = gt.gradient_flow(model, x, readout=r)
    J = _autograd_jacobians(step, x, s0)
    assert np.all(np.abs(flow - ref) <= _flow_tolerance(J, ref))
    with pytest.raises(NotImplementedError, match="unidirectional"):
        gt.gradient_flow(gt.from_torch_cell(torch.nn.GRUCell(I, H), bidirectional=True), x)


def test_check_stability_and_raw_cells():
    """check_stability accepts a raw torch cell: regime from the Lyapunov exponent, rate from the
    flow, no Elman envelope (None); a contracting default GRUCell is vanishing."""
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(4, 8)
    x = _x(200, 4)
    rep = gt.check_stability(cell, torch.from_numpy(x))
    assert rep.regime == "vanishing" and rep.lyapunov < -0.01 and rep.rate < 0
    assert rep.envelope is None and rep.envelope_ok is None and rep.ok
    assert rep.lyapunov == gt.lyapunov_exponent(gt.from_torch_cell(cell), x)
    assert np.array_equal(rep.flow, gt.gradient_flow(cell, x))


# -- from_torch: subclasses and parametrizations -----------------------------------------------
class MyLSTM(torch.nn.LSTM):
    """A user's subclass (defined outside torch: its module name does not start with 'torch')."""


def test_from_torch_accepts_subclasses_of_rnn_modules():
    """A subclass of nn.LSTM is converted (isinstance, not module-name tests) by from_torch and
    accepted by gradient_flow; its numpy twin reproduces the module's output."""
    torch.manual_seed(0)
    module = MyLSTM(3, 5).double()
    x = _x(20, 3)
    twin = gt.from_torch(module)
    out, _ = module(torch.from_numpy(x))
    assert np.max(np.abs(twin.forward(x).output - out.detach().numpy())) <= 4 * 20 * 8 * U
    assert np.array_equal(gt.gradient_flow(module, x), gt.gradient_flow(twin, x))


@pytest.mark.parametrize("kind", ["orthogonal", "spectral_norm"])
def test_from_torch_reads_parametrized_weights(kind):
    """nn.RNN with torch.nn.utils.parametrizations.orthogonal/spectral_norm on weight_hh_l0: the
    twin holds the parametrized value (orthogonal: W^T W = I) and equals the module's output."""
    from torch.nn.utils import parametrizations

    torch.manual_seed(0)
    module = torch.nn.RNN(4, 6).double()
    getattr(parametrizations, kind)(module, "weight_hh_l0")
    module.eval()  # spectral_norm's power iteration runs only in training mode
    twin = gt.from_torch(module)
    W = twin.params["weight_hh_l0"]
    with torch.no_grad():
        assert np.array_equal(W, module.weight_hh_l0.numpy())
    if kind == "orthogonal":
        assert np.max(np.abs(W.T @ W - np.eye(6))) <= 64 * 6 * U
    else:  # W / sigma_est with sigma_est = u^T W v <= sigma_max (power iteration): ||W||_2 >= 1
        assert np.linalg.norm(W, 2) >= 1.0 - 16 * 6 * U
    x = _x(30, 4)
    with torch.no_grad():
        out, _ = module(torch.from_numpy(x))
    assert np.max(np.abs(twin.forward(x).output - out.numpy())) <= 4 * 30 * 10 * U


# -- inputs, and the user's state left alone ----------------------------------------------------
def test_bad_inputs_name_the_argument():
    """Clear TypeError/ValueError naming the argument and what was expected."""
    with pytest.raises(TypeError, match="cell must be a torch.nn.Module or a callable"):
        gt.from_torch_cell(42)
    with pytest.raises(TypeError, match="from_torch"):
        gt.from_torch_cell(torch.nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="input_size must be given"):
        gt.from_torch_cell(lambda x, h: h)
    with pytest.raises(ValueError, match="hidden_size"):
        gt.from_torch_cell(torch.nn.GRUCell(3, 4), hidden_size=0)
    with pytest.raises(ValueError, match="state_sizes"):
        gt.from_torch_cell(torch.nn.LSTMCell(3, 4), state_sizes=4)
    with pytest.raises(ValueError, match="state_sizes"):
        gt.from_torch_cell(ResidualMemoryCell(3, 4), input_size=3, hidden_size=4)
    W = torch.randn(4, 4)
    with pytest.raises(ValueError, match="must compute in float64"):
        gt.from_torch_cell(lambda x, h: h @ W, input_size=3, hidden_size=4)
    with pytest.raises(TypeError, match="must compute in float64 .* got torch.float32"):
        gt.from_torch_cell(lambda x, h: h.float() @ W, input_size=3, hidden_size=4)
    with pytest.raises(ValueError, match="mixes the rows"):
        gt.from_torch_cell(lambda x, h: h + h.mean(0), input_size=3, hidden_size=4)
    with pytest.raises(ValueError, match="num_layers"):
        gt.from_torch_cell([torch.nn.GRUCell(3, 4)], num_layers=2)
    model = gt.from_torch_cell(torch.nn.GRUCell(3, 4))
    with pytest.raises(ValueError, match=r"x must be one unbatched sequence of shape \(T, 3\)"):
        gt.gradient_flow(model, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="readout"):
        gt.gradient_flow(model, np.zeros((5, 3)), readout=np.ones(3))
    with pytest.raises(ValueError, match="x must have input_size=3"):
        model.forward(np.zeros((5, 1, 2)))
    with pytest.raises(TypeError, match="h0 must be an array"):
        model.forward(np.zeros((5, 3)), h0=(np.zeros((1, 4)),))
    with pytest.raises(ValueError, match="k must be <="):
        gt.lyapunov_spectrum(model, np.zeros((5, 3)), k=5)


def test_users_module_and_torch_rng_are_unchanged():
    """Nothing the user owns changes: parameters (values, dtype, requires_grad), training mode,
    and torch's global RNG state, through construction, every measurement and backward."""
    torch.manual_seed(123)
    cell = torch.nn.LSTMCell(3, 4)
    cell.train()
    before = {k: v.clone() for k, v in cell.state_dict().items()}
    rng = torch.get_rng_state()
    x = _x(40, 3)
    model = gt.from_torch_cell(cell)
    res = model.forward(x)
    model.backward(res, np.ones_like(res.output))
    gt.gradient_flow(model, x)
    gt.lyapunov_exponent(model, x)
    gt.lyapunov_spectrum(model, x, k=2)
    gt.check_stability(cell, x)
    assert torch.equal(torch.get_rng_state(), rng)
    assert cell.training
    for k, v in cell.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, before[k]), k
    assert all(p.requires_grad and p.grad is None for p in cell.parameters())


def test_plot_model_factory_writes_the_flow(tmp_path):
    """gradtheory plot --model FILE.py:FACTORY draws a torch cell's flow (a valid PNG)."""
    from gradtheory.cli import main

    src = tmp_path / "my_cells.py"
    src.write_text("import torch\n\ndef make():\n    torch.manual_seed(0)\n    return torch.nn.GRUCell(3, 5)\n")
    out = tmp_path / "plots"
    assert main(["plot", "--model", f"{src}:make", "--steps", "50", "--out", str(out)]) == 0
    png = (out / "model_flow.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_jacobians_without_torch_func_equal_jacrev(monkeypatch):
    """Cells torch.func cannot transform fall back to S plain autograd passes: the same Jacobians
    (each entry is the same vector-Jacobian product, evaluated by the same autograd kernels)."""
    torch.manual_seed(0)
    model = gt.from_torch_cell(MinimalGatedCell(3, 5), input_size=3, hidden_size=5)
    res = model.forward(_x(20, 3))
    J = model.jacobians(res)

    def refuse(*args, **kwargs):
        raise RuntimeError("torch.func cannot transform this cell")

    monkeypatch.setattr(torch.func, "jacrev", refuse)
    assert np.max(np.abs(model.jacobians(res) - J)) <= 8 * 8 * U * (1 + np.abs(J).max())


def test_one_cell_with_num_layers_shares_its_weights():
    """num_layers=2 with one cell is a stacked nn.GRU whose two layers both hold that cell's
    weights; the shared cell's parameter gradient is the sum of the two layers' gradients."""
    H, T, B = 5, 10, 2
    torch.manual_seed(1)
    cell = torch.nn.GRUCell(H, H)
    gru = torch.nn.GRU(H, H, num_layers=2)
    with torch.no_grad():
        for layer in range(2):
            for n, p in cell.named_parameters():
                getattr(gru, f"{n}_l{layer}").copy_(p)
    model, twin = gt.from_torch_cell(cell, num_layers=2), gt.from_torch(gru)
    x = np.random.default_rng(0).standard_normal((T, B, H))
    res, ref = model.forward(x), twin.forward(x)
    tol = 8 * T * 2 * H * U
    assert np.max(np.abs(res.output - ref.output)) <= tol
    d = np.random.default_rng(1).standard_normal(res.output.shape)
    g, gr = model.backward(res, d), twin.backward(ref, d)
    assert sorted(g.params) == ["bias_hh", "bias_ih", "weight_hh", "weight_ih"]
    for n, value in g.params.items():
        expected = gr.params[n + "_l0"] + gr.params[n + "_l1"]
        assert np.max(np.abs(value - expected)) <= B * tol * (1 + np.abs(expected).max()), n
    with pytest.raises(ValueError, match=r"failed on x_t of shape \(2, 5\)"):
        gt.from_torch_cell(torch.nn.GRUCell(3, 5), num_layers=2)  # layer 1 reads width 5, not 3
