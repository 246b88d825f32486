r"""Hand-written torch recurrent cells (custom ``autograd.Function``), correct and deliberately wrong.

They are the test-the-tester suite's subjects, the benchmark's planted bugs and the CLI's demo
factories (``gradtheory check gradtheory._check_examples:lstm_factory``). Each backward is
hand-written BPTT (no autograd inside), so a planted bug is a real bug in a real backward:

* ``scale``: one weight gradient multiplied by ``1 + eps``;
* ``drop_step``: the BPTT loop stops before t = 0 (off-by-one: ``range(T - 1, 0, -1)``);
* ``gate`` (LSTM): the forget gate's pre-activation derivative uses the input gate's
  sigmoid derivative ``i (1 - i)`` instead of ``f (1 - f)``;
* ``float32``: the backward is computed in float32 and cast back;
* ``transpose`` (Elman): the recurrent weight gradient is returned transposed.

Elman: :math:`h_t = \tanh(W_{ih} x_t + W_{hh} h_{t-1} + b)`. LSTM (torch gate order i, f, g, o):
:math:`c_t = f c_{t-1} + i g`, :math:`h_t = o \tanh c_t`; BPTT as in ``proofs/lstm.tex``.
"""

from __future__ import annotations

from typing import Any

BUGS = ("none", "scale", "drop_step", "gate", "float32", "transpose")


def _torch():
    import torch

    return torch


def _make_elman(bug: str, eps: float):
    torch = _torch()

    class Elman(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, h0, W_ih, W_hh, b):
            T = x.shape[0]
            hs = [h0]
            for t in range(T):
                hs.append(torch.tanh(x[t] @ W_ih.T + hs[-1] @ W_hh.T + b))
            H = torch.stack(hs)  # (T+1, B, H)
            ctx.save_for_backward(x, H, W_ih, W_hh)
            return H[1:]

        @staticmethod
        def backward(ctx, d_out):
            x, H, W_ih, W_hh = ctx.saved_tensors
            if bug == "float32":
                x, H, W_ih, W_hh, d_out = (a.float() for a in (x, H, W_ih, W_hh, d_out))
            T = x.shape[0]
            dx = torch.zeros_like(x)
            dW_ih, dW_hh = torch.zeros_like(W_ih), torch.zeros_like(W_hh)
            db = torch.zeros_like(W_hh[:, 0])
            dh = torch.zeros_like(H[0])
            stop = 0 if bug == "drop_step" else -1
            for t in range(T - 1, stop, -1):
                dh = dh + d_out[t]
                da = dh * (1 - H[t + 1] ** 2)
                dW_ih = dW_ih + da.T @ x[t]
                dW_hh = dW_hh + da.T @ H[t]
                db = db + da.sum(0)
                dx[t] = da @ W_ih
                dh = da @ W_hh
            if bug == "scale":
                dW_hh = dW_hh * (1 + eps)
            if bug == "transpose":
                dW_hh = dW_hh.T
            grads = (dx, dh, dW_ih, dW_hh, db)
            return tuple(g.double() for g in grads)

    return Elman


def _make_lstm(bug: str, eps: float):
    torch = _torch()

    class LSTMFn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, h0, c0, W_ih, W_hh, b):
            T = x.shape[0]
            Hn = h0.shape[-1]
            h, c = h0, c0
            hs, cs, gates = [h0], [c0], []
            for t in range(T):
                a = x[t] @ W_ih.T + h @ W_hh.T + b
                i = torch.sigmoid(a[:, :Hn])
                f = torch.sigmoid(a[:, Hn : 2 * Hn])
                g = torch.tanh(a[:, 2 * Hn : 3 * Hn])
                o = torch.sigmoid(a[:, 3 * Hn :])
                c = f * c + i * g
                h = o * torch.tanh(c)
                hs.append(h)
                cs.append(c)
                gates.append(torch.stack([i, f, g, o]))
            ctx.save_for_backward(x, torch.stack(hs), torch.stack(cs), torch.stack(gates), W_ih, W_hh)
            return torch.stack(hs[1:])

        @staticmethod
        def backward(ctx, d_out):
            x, Hs, Cs, G, W_ih, W_hh = ctx.saved_tensors
            if bug == "float32":
                x, Hs, Cs, G, W_ih, W_hh, d_out = (a.float() for a in (x, Hs, Cs, G, W_ih, W_hh, d_out))
            T = x.shape[0]
            dx = torch.zeros_like(x)
            dW_ih, dW_hh = torch.zeros_like(W_ih), torch.zeros_like(W_hh)
            db = torch.zeros_like(W_hh[:, 0])
            dh = torch.zeros_like(Hs[0])
            dc = torch.zeros_like(Cs[0])
            stop = 0 if bug == "drop_step" else -1
            for t in range(T - 1, stop, -1):
                i, f, g, o = G[t]
                c, c_prev = Cs[t + 1], Cs[t]
                tc = torch.tanh(c)
                dh = dh + d_out[t]
                do = dh * tc
                dc = dc + dh * o * (1 - tc**2)
                di, df, dg = dc * g, dc * c_prev, dc * i
                f_slope = i * (1 - i) if bug == "gate" else f * (1 - f)
                da = torch.cat([di * i * (1 - i), df * f_slope, dg * (1 - g**2), do * o * (1 - o)], dim=1)
                dW_ih = dW_ih + da.T @ x[t]
                dW_hh = dW_hh + da.T @ Hs[t]
                db = db + da.sum(0)
                dx[t] = da @ W_ih
                dh = da @ W_hh
                dc = dc * f
            if bug == "scale":
                dW_hh = dW_hh * (1 + eps)
            grads = (dx, dh, dc, dW_ih, dW_hh, db)
            return tuple(gr.double() for gr in grads)

    return LSTMFn


def elman_function(bug: str = "none", eps: float = 1e-3):
    """``fn(x, h0, W_ih, W_hh, b) -> output (T, B, H)`` of a hand-written Elman cell."""
    if bug not in BUGS or bug == "gate":
        raise ValueError(
            f"bug={bug!r} is unknown for the Elman cell; expected one of {[b for b in BUGS if b != 'gate']}"
        )
    return _make_elman(bug, eps).apply


def lstm_function(bug: str = "none", eps: float = 1e-3):
    """``fn(x, h0, c0, W_ih, W_hh, b) -> output (T, B, H)`` of a hand-written LSTM cell."""
    if bug not in BUGS or bug == "transpose":
        raise ValueError(
            f"bug={bug!r} is unknown for the LSTM cell; expected one of {[b for b in BUGS if b != 'transpose']}"
        )
    return _make_lstm(bug, eps).apply


def _input_makers(T: int, B: int, I: int, H: int, seed: int):
    """x (T, B, I) ~ N(0, 1) and a maker of U(-scale, scale) tensors (default torch's 1/sqrt(H)),
    drawn in this order from one seeded generator; all require grad."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)

    def u(*shape, scale=H**-0.5):
        return ((torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * scale).requires_grad_(True)

    return torch.randn(T, B, I, generator=g, dtype=torch.float64).requires_grad_(True), u


def elman_inputs(T: int = 6, B: int = 2, I: int = 3, H: int = 5, seed: int = 0):
    """float64 inputs (x, h0, W_ih, W_hh, b), all requiring grad; torch's default init scale."""
    x, u = _input_makers(T, B, I, H, seed)
    return x, u(B, H, scale=0.5), u(H, I), u(H, H), u(H)


def lstm_inputs(T: int = 6, B: int = 2, I: int = 3, H: int = 5, seed: int = 0):
    """float64 inputs (x, h0, c0, W_ih, W_hh, b), all requiring grad."""
    x, u = _input_makers(T, B, I, H, seed)
    return x, u(B, H, scale=0.5), u(B, H, scale=0.5), u(4 * H, I), u(4 * H, H), u(4 * H)


ELMAN_NAMES = ("x", "h0", "W_ih", "W_hh", "b")
LSTM_NAMES = ("x", "h0", "c0", "W_ih", "W_hh", "b")


# -- factories for ``gradtheory check MODULE:FACTORY`` ------------------------------------------------
def lstm_factory(bug: str = "none") -> dict[str, Any]:
    """A hand-written LSTM (4 -> 16, T = 20, B = 2): ``gradtheory check gradtheory._check_examples:lstm_factory``."""
    return {"fn": lstm_function(bug), "inputs": lstm_inputs(T=20, B=2, I=4, H=16), "names": LSTM_NAMES, "time_axis": 0}


def buggy_lstm_factory() -> dict[str, Any]:
    """The same LSTM with a wrong forget-gate derivative (the CLI must exit non-zero)."""
    return lstm_factory("gate")


def torch_lstm_factory() -> tuple[Any, Any]:
    """A ``torch.nn.LSTM`` (4 -> 16, float64) and one sequence x (20, 4): module + input form."""
    torch = _torch()
    # A private generator: running the example must not move the user's global torch RNG.
    # Built on the meta device (no global-RNG initialisation), then given storage; the weights
    # are drawn as torch's default would draw them, U(-1/sqrt(H), 1/sqrt(H)).
    g = torch.Generator().manual_seed(0)
    lstm = torch.nn.LSTM(4, 16, dtype=torch.float64, device="meta").to_empty(device="cpu")
    bound = 1.0 / 16**0.5
    with torch.no_grad():
        for p in lstm.parameters():
            p.uniform_(-bound, bound, generator=g)
    return lstm, torch.randn(20, 4, dtype=torch.float64, generator=g)


_PLANTERS: dict[str, Any] = {}


def _planters():
    """Identity autograd Functions whose backward plants an error (built once, torch imported lazily)."""
    if not _PLANTERS:
        import numpy as np

        torch = _torch()

        class Scale(torch.autograd.Function):
            """Identity forward; backward multiplies the incoming gradient by (1 + eps)."""

            @staticmethod
            def forward(ctx, a, eps):
                ctx.eps = eps
                return a.view_as(a)

            @staticmethod
            def backward(ctx, g):
                return g * (1 + ctx.eps), None

        class Perturb(torch.autograd.Function):
            """Identity forward; backward adds eps * ||g|| * e (e a fixed random unit tensor)."""

            @staticmethod
            def forward(ctx, a, eps, seed):
                ctx.eps, ctx.seed = eps, seed
                return a.view_as(a)

            @staticmethod
            def backward(ctx, g):
                e = torch.from_numpy(np.random.default_rng(ctx.seed).standard_normal(tuple(g.shape)))
                return g + ctx.eps * g.norm() * e / e.norm(), None, None

        _PLANTERS.update(scale=Scale, perturb=Perturb)
    return _PLANTERS


def planted(target: Any, index: int, kind: str, eps: float, seed: int = 0) -> Any:
    """``target`` (a CheckTarget) with a relative error ``eps`` planted in the gradient of input
    ``index``: ``kind='scale'`` multiplies it by 1 + eps, ``'random'`` adds eps ||g|| e."""
    from .check import CheckTarget

    planters = _planters()

    def fn(*args):
        args = list(args)
        if kind == "scale":
            args[index] = planters["scale"].apply(args[index], eps)
        else:
            args[index] = planters["perturb"].apply(args[index], eps, seed)
        return target.fn(*args)

    return CheckTarget(
        fn, target.inputs, names=target.names, time_axis=target.time_axis, time_inputs=target.time_inputs
    )


# -- torch patterns from users' code ---------------------------------------------------------------
_PATTERNS: dict[str, Any] = {}


def _patterns():
    """autograd Functions as users write them (built once, torch imported lazily)."""
    if not _PATTERNS:
        torch = _torch()

        class InplaceTanh(torch.autograd.Function):
            """tanh whose backward scales its incoming gradient in place (``grad_output.mul_``)."""

            @staticmethod
            def forward(ctx, a, bug):
                y = torch.tanh(a)
                ctx.save_for_backward(y)
                ctx.bug = bug
                return y

            @staticmethod
            def backward(ctx, grad_output):
                (y,) = ctx.saved_tensors
                slope = 1 - y if ctx.bug == "slope" else 1 - y**2
                return grad_output.mul_(slope), None

        class Dropout(torch.autograd.Function):
            """Inverted dropout drawing its mask from torch's global generator; the backward
            multiplies by ``factor`` (1: correct; -1, 0, 3: the bugs)."""

            @staticmethod
            def forward(ctx, a, p, factor):
                mask = (torch.rand_like(a) >= p).to(a.dtype) / (1 - p)
                ctx.save_for_backward(mask)
                ctx.factor = factor
                return a * mask

            @staticmethod
            def backward(ctx, g):
                (mask,) = ctx.saved_tensors
                return g * mask * ctx.factor, None, None

        _PATTERNS.update(inplace_tanh=InplaceTanh, dropout=Dropout)
    return _PATTERNS


def inplace_tanh_elman(bug: str = "none"):
    """``fn(x, h0, W_ih, W_hh, b)``: an Elman RNN whose tanh backward updates ``grad_output`` in
    place (correct); ``bug='slope'`` uses ``1 - y`` for the slope."""
    if bug not in ("none", "slope"):
        raise ValueError(f"bug must be 'none' or 'slope', got {bug!r}")
    tanh = _patterns()["inplace_tanh"]
    torch = _torch()

    def fn(x, h0, W_ih, W_hh, b):
        h, hs = h0, []
        for x_t in x:
            h = tanh.apply(x_t @ W_ih.T + h @ W_hh.T + b, bug)
            hs.append(h)
        return torch.stack(hs)

    return fn


def dropout_lstm(factor: float = 1.0, p: float = 0.5, seed: int = 0):
    """``(fn, inputs, names)``: a float64 ``nn.LSTM`` (3 -> 4) whose output goes through a
    hand-written dropout (mask from torch's global RNG) with backward multiplied by ``factor``."""
    torch = _torch()
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(3, 4, dtype=torch.float64)
    from .check import torch_module_target

    target = torch_module_target(lstm, torch.randn(6, 2, 3, dtype=torch.float64))
    drop = _patterns()["dropout"]

    def fn(*args):
        out, _ = target.fn(*args)
        return drop.apply(out, p, factor)

    return fn, target.inputs, target.names


def hand_lstm_module(bug: str = "none", I: int = 3, H: int = 5, seed: int = 0):
    """An ``nn.Module`` whose ``forward(x, state)`` runs :func:`lstm_function` (``state = (h0, c0)``)."""
    torch = _torch()
    fn = lstm_function(bug)

    class HandLSTM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            s = H**-0.5
            self.W_ih = torch.nn.Parameter((torch.rand(4 * H, I, generator=g, dtype=torch.float64) * 2 - 1) * s)
            self.W_hh = torch.nn.Parameter((torch.rand(4 * H, H, generator=g, dtype=torch.float64) * 2 - 1) * s)
            self.b = torch.nn.Parameter((torch.rand(4 * H, generator=g, dtype=torch.float64) * 2 - 1) * s)

        def forward(self, x, state):
            h0, c0 = state
            return fn(x, h0, c0, self.W_ih, self.W_hh, self.b)

    return HandLSTM()
