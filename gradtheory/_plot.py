r"""``gradtheory plot``: gradient flow against the theoretical envelope, and a phase diagram.

Writes two PNG files into ``--out`` (default ``./plots``):

* ``gradient_flow.png``: :math:`\ln\|\partial L/\partial h_k\|` against the distance ``T - k``
  for tanh RNNs with :math:`\|W_{hh}\|_2` below, at and above the threshold :math:`1/\gamma = 1`,
  a sigmoid RNN (threshold 4), an LSTM and a GRU, with the envelopes
  :math:`(T-k)\ln(\gamma\|W_{hh}\|_2)` as dashed lines (the gradient may never cross above them);
* ``phase_diagram.png``: the measured decay rate (top Lyapunov exponent of the trajectory) over
  :math:`\|W_{hh}\|_2` for tanh and sigmoid RNNs, with the bound :math:`\ln(\gamma\|W_{hh}\|_2)`
  and the thresholds :math:`1/\gamma` marked.

With ``--model MODULE:FACTORY`` (``MODULE`` a module name or a ``.py`` path, as for
``gradtheory check``) it writes ``model_flow.png`` instead: the gradient flow of the model the
factory returns (a gradtheory model, a ``torch.nn.RNN/LSTM/GRU``, a torch cell or a
:func:`gradtheory.from_torch_cell` model; or a pair ``(model, x)`` with one sequence ``x``,
else ``x ~ N(0, 1)`` of ``--steps`` steps), with the line of slope its Lyapunov exponent.

matplotlib's object API with the Agg canvas is used (no pyplot state, no display needed).
matplotlib is an optional dependency (``pip install 'gradtheory[plot]'``); without it the command
exits with status 2 and a message naming the extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ._validation import check_positive_int, int_at_least, output_directory
from .bounds import envelope, gamma
from .flow import gradient_flow, lyapunov_exponent
from .models import GRU, LSTM, RNN

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="plots", metavar="DIR", help="output directory (default: ./plots)")
    parser.add_argument("--steps", type=int, default=1000, metavar="T", help="sequence length T (default: 1000)")
    parser.add_argument("--hidden", type=int, default=32, metavar="H", help="hidden size (default: 32)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed for weights and inputs (default: 0)")
    parser.add_argument(
        "--model",
        default=None,
        metavar="MODULE:FACTORY",
        help="plot the gradient flow of your own model or cell instead (factory returns it, or (it, x))",
    )


def _direction(n: int, seed: int) -> np.ndarray:
    """A fixed Gaussian matrix with unit spectral norm (the shape of W_hh; its scale is swept)."""
    W = np.random.default_rng(seed).standard_normal((n, n))
    return W / np.linalg.norm(W, 2)


def _rnn(n: int, nonlinearity: str, norm: float, seed: int) -> RNN:
    model = RNN(n, n, nonlinearity=nonlinearity, seed=seed)
    model.params["weight_hh_l0"] = norm * _direction(n, seed + 1)
    return model


MISSING_MATPLOTLIB = "gradtheory plot needs matplotlib, which is not installed: pip install 'gradtheory[plot]'"


def _figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ModuleNotFoundError(MISSING_MATPLOTLIB, name="matplotlib") from exc

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_gradient_flow(path: Path, T: int, n: int, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((T, n))
    dist = np.arange(T + 1)[::-1]  # entry k sits at distance T - k
    fig = _figure(13, 4.4)
    axes = fig.subplots(1, 3)
    colors = ["tab:blue", "tab:orange", "tab:red"]
    panels = (
        (
            "tanh",
            (0.8, 1.0, 1.5),
            r"envelope $(T-k)\ln({norm:g})$",
            r"tanh RNN ($\gamma = 1$, threshold $\|W\|_2 = 1$)",
        ),
        (
            "sigmoid",
            (2.0, 4.0, 8.0),
            r"envelope $(T-k)\ln({norm:g}/4)$",
            r"sigmoid RNN ($\gamma = 1/4$, threshold $\|W\|_2 = 4$)",
        ),
    )
    for ax, (activation, norms, envelope_label, title) in zip(axes, panels):
        for color, norm in zip(colors, norms):
            model = _rnn(n, activation, norm, seed)
            flow = gradient_flow(model, x)
            ax.plot(dist, flow, color=color, lw=1.6, label=rf"$\|W\|_2={norm:g}$ measured")
            ax.plot(
                dist[::-1],
                envelope(model.params["weight_hh_l0"], activation, T),
                "--",
                color=color,
                lw=1,
                label=envelope_label.format(norm=norm),
            )
        ax.set_title(title)
    ax = axes[2]
    for color, (name, model) in zip(colors, (("LSTM", LSTM(n, n, seed=seed)), ("GRU", GRU(n, n, seed=seed)))):
        flow = gradient_flow(model, x)
        ax.plot(dist, flow, color=color, lw=1.6, label=f"{name} (torch default init)")
    tanh_default = RNN(n, n, seed=seed)
    ax.plot(dist, gradient_flow(tanh_default, x), color="tab:red", lw=1.6, label="tanh RNN (torch default init)")
    ax.set_title("gated cells, joint (h, c) gradient for LSTM")
    for ax in axes:
        ax.set_xlabel(r"distance $T - k$ (steps back in time)")
        ax.set_ylabel(r"$\ln\|\partial L/\partial h_k\|$,  $L = \langle e_0, h_T\rangle$")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        ax.set_xlim(0, T)
    # Envelopes that grow would dwarf the measured curves: clip the view to the measured range.
    for ax in axes[:2]:
        lo = min(line.get_ydata().min() for line in ax.lines[::2] if np.isfinite(line.get_ydata()).any())
        ax.set_ylim(max(lo, -2000) - 5, 0.15 * abs(lo) + 10)
    fig.suptitle(
        f"Gradient flow through time (H = {n}, T = {T}, x ~ N(0, 1)) against the bound "
        r"$\|\partial h_t/\partial h_k\|_2 \leq (\gamma\|W\|_2)^{t-k}$",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)


def plot_phase_diagram(path: Path, T: int, n: int, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((T, n))
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2)
    for ax, name, grid in (
        (axes[0], "tanh", np.linspace(0.1, 3.0, 24)),
        (axes[1], "sigmoid", np.linspace(0.4, 20.0, 24)),
    ):
        g = gamma(name)
        lowest = 0.0
        for scale, style, label in ((0.0, "o-", "x = 0 (autonomous)"), (1.0, "s-", "x ~ N(0, 1)")):
            rates = [lyapunov_exponent(_rnn(n, name, s, seed), scale * x) for s in grid]
            lowest = min(lowest, min(rates))
            ax.plot(grid, rates, style, ms=3, lw=1.2, label=rf"measured $\lambda_1$, {label}")
        ax.plot(grid, np.log(g * grid), "k--", lw=1, label=r"bound $\ln(\gamma\|W\|_2)$")
        ax.axvline(1 / g, color="tab:red", lw=1, label=rf"threshold $1/\gamma = {1 / g:g}$")
        ax.axhline(0.0, color="gray", lw=0.8)
        ax.set_xlabel(r"$\|W_{hh}\|_2$")
        ax.set_ylabel(r"decay rate $\lambda_1$ per step (< 0: vanishing)")
        ax.set_title(f"{name} RNN (gamma = {g:g})")
        ax.set_ylim(max(-6.0, lowest) - 0.2, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Phase diagram: top Lyapunov exponent of the Jacobian product (H = {n}, T = {T})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def plot_model_flow(path: Path, target: str, T: int, seed: int) -> None:
    from ._check_cli import _load
    from .models.torch_cell import is_torch_cell, torch_cell_gradient_flow, torch_cell_lyapunov_exponent

    obj = _load(target)
    model, x = obj if isinstance(obj, tuple) and len(obj) == 2 else (obj, None)
    n_in = getattr(model, "input_size", None)
    if x is None:
        if not isinstance(n_in, int):
            raise ValueError(f"--model {target}: the factory must return (model, x) for a model without input_size")
        x = np.random.default_rng(seed).standard_normal((T, n_in))
    if is_torch_cell(model):
        flow, lam = torch_cell_gradient_flow(model, x), torch_cell_lyapunov_exponent(model, x)
    else:
        flow, lam = gradient_flow(model, x), lyapunov_exponent(model, x)
    steps = flow.shape[0] - 1
    dist = np.arange(steps + 1)[::-1]
    fig = _figure(7, 4.4)
    ax = fig.subplots(1, 1)
    ax.plot(dist, flow, lw=1.6, label="measured")
    ax.plot(dist, flow[-1] + lam * dist, "--", lw=1, label=rf"slope $\lambda_1 = {lam:.4g}$ (Lyapunov exponent)")
    ax.set_xlabel(r"distance $T - k$ (steps back in time)")
    ax.set_ylabel(r"$\ln\|\partial L/\partial s_k\|$,  $L = \langle e_0, h_T\rangle$")
    ax.set_title(f"{target}: {type(model).__name__}, T = {steps}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)


def run(args: argparse.Namespace) -> int:
    try:
        T = check_positive_int(args.steps, "--steps")
        n = check_positive_int(args.hidden, "--hidden")
        _figure(1, 1)  # fail before any work when matplotlib is missing
        out = output_directory(args.out, "--out")
    except (ValueError, ModuleNotFoundError) as exc:
        print(f"gradtheory plot: error: {exc}", file=sys.stderr)
        return 2
    written = []
    if args.model is not None:
        path = out / "model_flow.png"
        plot_model_flow(path, args.model, T, args.seed)
        print(f"wrote {path}")
        return 0
    path = out / "gradient_flow.png"
    plot_gradient_flow(path, T, n, args.seed)
    written.append(path)
    path = out / "phase_diagram.png"
    plot_phase_diagram(path, T, n, args.seed)
    written.append(path)
    for p in written:
        print(f"wrote {p}")
    return 0
