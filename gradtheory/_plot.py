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


def _save_panels(fig, axes, title: str, path: Path, *, legend: str) -> Path:
    """Grid and legend on every panel, the figure's title, saved to ``path`` (returned)."""
    for a in axes:
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc=legend)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return path


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


# -- minGRU / minLSTM (families-c): flow against the derived product of retain gates, phase diagram


def _min_rnn_log_retain(model, x: np.ndarray) -> np.ndarray:
    """ln a_{t,n} (a = 1 - z for minGRU, f' for minLSTM) from the input alone: (T, H)."""
    from .models import input_projection

    gi = input_projection(model.cell, x[:, None, :], model.layer_params())
    return model.cell.scan_coefficients(gi, model.hidden_size)[0][:, 0]


def plot_min_rnn(path: Path, T: int, n: int, seed: int) -> None:
    """minGRU and minLSTM: measured gradient flow against the derived sum of ln a_{j,0} (the one-step
    Jacobians are diag(a_j)), and the decay rate against the gate bias with the derived
    max_n mean_t ln a_{t,n} (proofs/mingru.tex, proofs/minlstm.tex)."""
    from .cells.mingru import MinGRU
    from .cells.minlstm import MinLSTM

    x = np.random.default_rng(seed).standard_normal((T, n))
    dist = np.arange(T + 1)[::-1]
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2)
    biases = np.linspace(-4.0, 6.0, 21)
    for color, cls in (("tab:blue", MinGRU), ("tab:green", MinLSTM)):
        model = cls(n, n, seed=seed)
        log_a = _min_rnn_log_retain(model, x)
        derived = np.concatenate([np.cumsum(log_a[::-1, 0])[::-1], [0.0]])
        axes[0].plot(dist, gradient_flow(model, x), color=color, lw=1.6, label=f"{cls.__name__} measured")
        axes[0].plot(dist, derived, "--", color="k", lw=0.8)
        rates, predicted = [], []
        for b in biases:
            # the retain gate's bias: z's row block for minGRU (a = 1 - z falls as b grows), f's for minLSTM
            p = dict(model.params)
            bias = np.zeros_like(p["bias_ih_l0"])
            bias[:n] = -b if cls is MinGRU else b
            p["bias_ih_l0"] = bias
            m = cls(n, n, params=p)
            rates.append(lyapunov_exponent(m, x))
            predicted.append(np.max(np.mean(_min_rnn_log_retain(m, x), axis=0)))
        axes[1].plot(biases, rates, "o", ms=3, color=color, label=rf"{cls.__name__} measured $\lambda_1$")
        axes[1].plot(biases, predicted, "-", color=color, lw=1, label=r"derived $\max_n \overline{\ln a_{t,n}}$")
    axes[0].plot([], [], "--", color="k", lw=0.8, label=r"derived $\sum_{j>k}\ln a_{j,0}$ (diagonal Jacobians)")
    axes[0].set_xlabel(r"distance $T - k$")
    axes[0].set_ylabel(r"$\ln\|\partial L/\partial h_k\|$,  $L = \langle e_0, h_T\rangle$")
    axes[0].set_title("gradient flow: never above 0 (every a in (0, 1))")
    axes[1].set_xlabel("bias of the retain gate (1 - z, f)")
    axes[1].set_ylabel(r"decay rate $\lambda_1$ per step")
    axes[1].set_title("phase diagram: vanishing unless the gate saturates open")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"minGRU / minLSTM (H = {n}, T = {T}, x ~ N(0, 1), torch default init)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


# -- AntisymmetricRNN (Chang et al. 2019; proofs/antisymmetric.tex) ---------------------------
def plot_antisymmetric(out: Path, T: int, n: int, seed: int) -> list[Path]:
    r"""``antisymmetric.png``: the AntisymmetricRNN's gradient flow against its bound
    :math:`(T-k)\ln(1 + \varepsilon\|W - W^\top - \gamma I\|_2)` for diffusions below, near and above
    the threshold :math:`\varepsilon(\gamma^2 + \mu_{max}^2) = 2\gamma`, and its phase diagram: the top
    Lyapunov exponent over :math:`\gamma` against the linear-regime rate
    :math:`\ln\max_j|1 - \varepsilon\gamma + i\varepsilon\mu_j|`."""
    from .cells.antisymmetric import AntisymmetricRNN

    eps = 0.5
    x = np.random.default_rng(seed).standard_normal((T, n))
    W = 0.5 * _direction(n, seed + 1)  # ||W - W^T||_2 <= 1, so eps mu <= 1/2 and a stable gamma exists
    mu = float(np.linalg.norm(W - W.T, 2))
    threshold = (1.0 - np.sqrt(1.0 - (eps * mu) ** 2)) / eps  # smaller root of eps gamma^2 - 2 gamma + eps mu^2

    def model(gamma: float, bias: bool = True) -> AntisymmetricRNN:
        m = AntisymmetricRNN(n, n, eps=eps, gamma=gamma, bias=bias, seed=seed)
        m.params = {**m.params, "weight_hh_l0": W}
        return m

    fig = _figure(11, 4.4)
    ax, ax2 = fig.subplots(1, 2)
    dist = np.arange(T + 1)[::-1]
    for color, diffusion in zip(("tab:red", "tab:orange", "tab:blue"), (0.0, threshold, 4.0 * threshold)):
        m = model(diffusion)
        flow = gradient_flow(m, x)
        rate = np.log1p(eps * float(np.linalg.norm(m.cell.recurrence.matrix(W), 2)))
        ax.plot(dist, flow - flow[-1], color=color, lw=1.6, label=rf"$\gamma = {diffusion:.3g}$ measured")
        ax.plot(
            dist, rate * dist, "--", color=color, lw=1, label=rf"bound $(T-k)\ln(1 + \varepsilon\|M\|) $, {rate:.3g}"
        )
    measured = np.concatenate([line.get_ydata() for line in ax.lines[::2]])
    lo, hi = float(np.min(measured[np.isfinite(measured)])), float(np.max(measured[np.isfinite(measured)]))
    ax.set_ylim(lo - 0.1 * (hi - lo) - 1, hi + 0.5 * (hi - lo) + 1)  # the bounds would dwarf the curves
    ax.set_xlabel(r"distance $T - k$")
    ax.set_ylabel(r"$\ln\|\partial L/\partial h_k\| - \ln\|\partial L/\partial h_T\|$")
    ax.set_title(rf"AntisymmetricRNN, $\varepsilon = {eps:g}$, $\|W - W^\top\|_2 = {mu:.3g}$", fontsize=9)
    grid = np.linspace(0.0, 3.0 * threshold, 16)
    mus = np.linalg.svd(W - W.T, compute_uv=False)
    for scale, style, label in ((0.0, "o-", "x = 0, no bias (h = 0)"), (1.0, "s-", "x ~ N(0, 1)")):
        rates = [lyapunov_exponent(model(g, bias=scale > 0), scale * x) for g in grid]
        ax2.plot(grid, rates, style, ms=3, lw=1.2, label=rf"measured $\lambda_1$, {label}")
    linear = [0.5 * np.log(np.max((1 - eps * g) ** 2 + (eps * mus) ** 2)) for g in grid]
    ax2.plot(grid, linear, "k--", lw=1, label=r"linear regime $\ln\max_j|1 - \varepsilon\gamma + i\varepsilon\mu_j|$")
    ax2.axvline(
        threshold, color="tab:red", lw=1, label=rf"threshold $\varepsilon(\gamma^2+\mu^2) = 2\gamma$: {threshold:.3g}"
    )
    ax2.axhline(0.0, color="gray", lw=0.8)
    ax2.set_xlabel(r"diffusion $\gamma$")
    ax2.set_ylabel(r"$\lambda_1$ per step (> 0: exploding)")
    ax2.set_title("phase diagram over the diffusion", fontsize=9)
    return [
        _save_panels(
            fig,
            (ax, ax2),
            f"AntisymmetricRNN (H = {n}, T = {T}): forward Euler needs diffusion",
            out / "antisymmetric.png",
            legend="upper left",
        )
    ]


# -- OrthogonalRNN (expRNN; proofs/orthogonal.tex) --------------------------------------------
def plot_orthogonal(out: Path, T: int, n: int, seed: int) -> list[Path]:
    r"""``orthogonal.png``: the tanh OrthogonalRNN's gradient flow between its bounds
    :math:`\sum_j \ln\min_i\tanh'(a_{j,i}) \le \ln\sigma \le \sum_j\ln\max_i\tanh'(a_{j,i}) \le 0`
    (no explosion, vanishing through saturation) for three input scales, and its phase diagram:
    the top Lyapunov exponent over the input scale with the per-step means of those bounds."""
    from .cells.orthogonal import OrthogonalRNN

    model = OrthogonalRNN(n, n, seed=seed)
    z = np.random.default_rng(seed).standard_normal((T, n))

    def bounds(x):  # cumulative from the end: entry k sums steps k+1..T
        d = 1 - model.forward(x).output ** 2
        with np.errstate(divide="ignore"):
            lo, hi = np.log(d.min(axis=1)), np.log(d.max(axis=1))
        return np.concatenate([np.cumsum(lo[::-1])[::-1], [0.0]]), np.concatenate([np.cumsum(hi[::-1])[::-1], [0.0]])

    fig = _figure(11, 4.4)
    ax, ax2 = fig.subplots(1, 2)
    dist = np.arange(T + 1)[::-1]
    for color, scale in zip(("tab:blue", "tab:orange", "tab:red"), (0.1, 1.0, 4.0)):
        x = scale * z
        flow = gradient_flow(model, x)
        lo, hi = bounds(x)
        ax.plot(dist, flow - flow[-1], color=color, lw=1.6, label=rf"x ~ {scale:g} N(0, 1) measured")
        ax.plot(dist, hi, "--", color=color, lw=1, label=r"$\sum\ln\max_i\tanh'$ (upper)")
        ax.plot(dist, lo, ":", color=color, lw=1, label=r"$\sum\ln\min_i\tanh'$ (lower)")
    ax.axhline(0.0, color="k", lw=0.8, label=r"$(\gamma\|W\|_2)^{T-k} = 1$")
    measured = np.concatenate([line.get_ydata() for line in ax.lines[0:9:3]])
    ax.set_ylim(max(float(np.min(measured[np.isfinite(measured)])), -2000.0) * 1.2 - 5, 10)
    ax.set_xlabel(r"distance $T - k$")
    ax.set_ylabel(r"$\ln\|\partial L/\partial h_k\| - \ln\|\partial L/\partial h_T\|$")
    ax.set_title(r"OrthogonalRNN (tanh, $W_{hh} = \exp(A - A^\top)$)", fontsize=9)
    grid = np.geomspace(0.01, 10.0, 14)
    rates, upper, lower = [], [], []
    for scale in grid:
        lo, hi = bounds(scale * z)
        rates.append(lyapunov_exponent(model, scale * z))
        upper.append(hi[0] / T)
        lower.append(lo[0] / T if np.isfinite(lo[0]) else np.nan)
    ax2.semilogx(grid, rates, "o-", ms=3, lw=1.2, label=r"measured $\lambda_1$")
    ax2.semilogx(grid, upper, "k--", lw=1, label=r"mean $\ln\max_i\tanh'$ (upper bound)")
    ax2.semilogx(grid, lower, "k:", lw=1, label=r"mean $\ln\min_i\tanh'$ (lower bound)")
    ax2.axhline(0.0, color="gray", lw=0.8)
    ax2.set_xlabel("input scale")
    ax2.set_ylabel(r"$\lambda_1$ per step (< 0: vanishing)")
    ax2.set_title("phase diagram over the input scale: saturation alone decides", fontsize=9)
    return [
        _save_panels(
            fig,
            (ax, ax2),
            f"OrthogonalRNN (H = {n}, T = {T}): no explosion; vanishing through tanh saturation",
            out / "orthogonal.png",
            legend="lower left",
        )
    ]


# -- LRU and selective SSM (families-b): diagonal state Jacobians, flow against the closed form ---------
def plot_lru_selective_ssm(path: Path, T: int, n: int, seed: int) -> None:
    """``lru_selective_ssm.png``: top, the gradient flow of an LRU (its bound ``(T-k) ln max|lambda|``,
    attained) and of a selective SSM (bound ``sum_{t>k} max ln exp(Delta_t A)``, <= 0); bottom, the
    phase diagrams: the measured top Lyapunov exponent over ``|lambda|`` (LRU, closed form ``ln|lambda|``)
    and over the step-size bias ``b_delta`` (SSM, closed form ``max_i (1/T) sum_t Delta_t A_i``)."""
    from .cells.lru import LRU
    from .cells.selective_ssm import SelectiveSSM

    x = np.random.default_rng(seed).standard_normal((T, n))
    dist = np.arange(T + 1)[::-1]
    fig = _figure(11, 8)
    (a_lru, a_ssm), (p_lru, p_ssm) = fig.subplots(2, 2)
    for color, r in zip(("tab:blue", "tab:orange", "tab:red"), (0.9, 0.99, 0.999)):
        lru = LRU(n, n, seed=seed, r_min=r * 0.999, r_max=r)
        a_lru.plot(dist, gradient_flow(lru, x), color=color, lw=1.6, label=rf"$|\lambda| \leq {r:g}$ measured")
        a_lru.plot(dist, dist * np.log(np.max(np.abs(lru.eigenvalues()))), "--", color=color, lw=1, label="bound")
    a_lru.set_title(r"LRU: $\partial x_T/\partial x_k = \mathrm{diag}(\lambda)^{T-k}$")
    for color, b in zip(("tab:blue", "tab:orange", "tab:red"), (-7.0, -4.0, -1.0)):
        ssm = SelectiveSSM(n, 4, seed=seed)
        ssm.params = {**ssm.params, "b_delta_l0": np.full(n, b)}
        logd = ssm.state_jacobian_log_diagonals(x)
        bound = np.concatenate([np.cumsum(logd.max(axis=1)[::-1])[::-1], [0.0]])
        a_ssm.plot(dist, gradient_flow(ssm, x), color=color, lw=1.6, label=rf"$b_\Delta = {b:g}$ measured")
        a_ssm.plot(dist, bound, "--", color=color, lw=1, label=r"bound $\sum_{t>k}\max\ln e^{\Delta_t A}$")
    a_ssm.set_title(r"selective SSM: $\prod_t e^{\Delta_t A} \leq 1$ (never explodes)")
    for ax in (a_lru, a_ssm):
        ax.set_xlabel(r"distance $T - k$")
        ax.set_ylabel(r"$\ln\|\partial L/\partial s_k\|$")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    radii = np.linspace(0.5, 0.999, 20)
    rates = []
    for r in radii:
        lru = LRU(n, n, seed=seed, r_min=r * (1 - 1e-9), r_max=r)
        rates.append(lyapunov_exponent(lru, x))
    p_lru.plot(radii, rates, "o-", ms=3, label=r"measured $\lambda_1$")
    p_lru.plot(radii, np.log(radii), "k--", lw=1, label=r"$\ln|\lambda|$")
    p_lru.set_xlabel(r"$|\lambda|$ (all eigenvalues)")
    p_lru.set_title("LRU phase diagram")
    biases = np.linspace(-8.0, 2.0, 20)
    rates, closed = [], []
    for b in biases:
        ssm = SelectiveSSM(n, 4, seed=seed)
        ssm.params = {**ssm.params, "b_delta_l0": np.full(n, b)}
        rates.append(lyapunov_exponent(ssm, x))
        closed.append(float(np.max(np.mean(ssm.state_jacobian_log_diagonals(x), axis=0))))
    p_ssm.plot(biases, rates, "o-", ms=3, label=r"measured $\lambda_1$")
    p_ssm.plot(
        biases, closed, "k--", lw=1, label=r"$\max_i \frac{1}{T}\sum_t \ln e^{\Delta_t A_i}$ (exact for diagonal $J_t$)"
    )
    p_ssm.set_xlabel(r"$b_\Delta$ (larger: larger $\Delta$, faster reset)")
    p_ssm.set_title("selective SSM phase diagram")
    for ax in (p_lru, p_ssm):
        ax.set_ylabel(r"decay rate $\lambda_1$ per step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"LRU and selective SSM (H = {n}, T = {T}, x ~ N(0, 1))", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


# -- coRNN (Rusch & Mishra 2021; proofs/cornn.tex) ---------------------------------------------
def plot_cornn(out: Path, T: int, n: int, seed: int) -> list[Path]:
    r"""``cornn.png``: coRNN's gradient flow against its row-sum bound
    :math:`(T-k)\ln(1 + \Delta t\,\Gamma)` (``proofs/cornn.tex``) at the reference's sMNIST
    hyperparameters for the default weights, for :math:`W = W_z = 0` (with its exact decay
    :math:`(T-k)\ln\rho(A)`) and for :math:`W = 2\gamma I` at the fixed point (growth); and its phase
    diagram: the top Lyapunov exponent per unit time over the scale of :math:`W` against the fixed
    point's :math:`\ln\rho(J_0)/\Delta t`."""
    from .cells.cornn import CoRNN

    dt, gam, eps = 0.042, 2.7, 4.7
    x = np.random.default_rng(seed).standard_normal((T, n))
    # symmetric W with eigenvalues spread over [-1, 1]: its scale is both ||W||_2 and its top eigenvalue
    Q, _ = np.linalg.qr(np.random.default_rng(seed + 2).standard_normal((n, n)))
    direction = (Q * np.linspace(-1.0, 1.0, n)) @ Q.T

    def model(W: np.ndarray, bias: bool = True) -> CoRNN:
        m = CoRNN(n, n, dt=dt, gamma=gam, epsilon=eps, bias=bias, seed=seed)
        m.params = {**m.params, "weight_hh_l0": W}
        return m

    def row_sum_rate(W_hh: np.ndarray) -> float:  # ln(1 + dt Gamma), proofs/cornn.tex
        c = (
            gam
            + float(np.max(np.sum(np.abs(W_hh[:, :n]), axis=1)))
            + float(np.max(np.sum(np.abs(W_hh[:, n:]), axis=1)))
        )
        c -= eps
        return float(np.log1p(dt * max(c, 1 + dt * c)))

    def fixed_point_rate(W: np.ndarray) -> float:  # ln rho(J0) per step at y = z = 0, sigma'(0) = 1
        Jzy = dt * (W - gam * np.eye(n))
        Jzz = (1 - dt * eps) * np.eye(n)
        J0 = np.block([[np.eye(n) + dt * Jzy, dt * Jzz], [Jzy, Jzz]])
        return float(np.log(np.max(np.abs(np.linalg.eigvals(J0)))))

    fig = _figure(11, 4.4)
    ax, ax2 = fig.subplots(1, 2)
    dist = np.arange(T + 1)[::-1]
    default = CoRNN(n, n, dt=dt, gamma=gam, epsilon=eps, seed=seed).params["weight_hh_l0"]
    grow = np.hstack([2 * gam * np.eye(n), np.zeros((n, n))])
    cases = (
        ("tab:blue", "torch default init, x ~ N(0, 1)", default, x, True),
        ("tab:green", r"$W = W_z = 0$", np.zeros((n, 2 * n)), x, True),
        ("tab:red", r"$W = 2\gamma I$, fixed point $x = 0$", grow, 0 * x, False),
    )
    for color, label, W_hh, inputs, bias in cases:
        flow = gradient_flow(model(W_hh, bias), inputs)
        rate = row_sum_rate(W_hh)
        ax.plot(dist, flow - flow[-1], color=color, lw=1.6, label=f"{label} measured")
        ax.plot(dist, rate * dist, "--", color=color, lw=1, label=rf"bound $(T-k)\ln(1 + \Delta t\Gamma)$, {rate:.3g}")
    A = np.array([[1 - dt * dt * gam, dt * (1 - dt * eps)], [-dt * gam, 1 - dt * eps]])
    rho = float(np.max(np.abs(np.linalg.eigvals(A))))
    ax.plot(
        dist, np.log(rho) * dist, ":", color="k", lw=1, label=rf"$W = W_z = 0$: $(T-k)\ln\rho(A)$, {np.log(rho):.3g}"
    )
    measured = np.concatenate([line.get_ydata() for line in ax.lines[:6:2]])
    lo, hi = float(np.min(measured[np.isfinite(measured)])), float(np.max(measured[np.isfinite(measured)]))
    ax.set_ylim(lo - 0.1 * (hi - lo) - 1, hi + 0.5 * (hi - lo) + 1)  # the bounds would dwarf the curves
    ax.set_xlabel(r"distance $T - k$")
    ax.set_ylabel(r"$\ln\|\partial L/\partial s_k\| - \ln\|\partial L/\partial s_T\|$")
    ax.set_title(rf"coRNN, $\Delta t = {dt:g}$, $\gamma = {gam:g}$, $\varepsilon = {eps:g}$", fontsize=9)
    grid = np.linspace(0.0, 4.0 * gam, 13)
    for scale, style, label in ((0.0, "o-", "x = 0, no bias (fixed point)"), (1.0, "s-", "x ~ N(0, 1)")):
        rates = [
            lyapunov_exponent(model(np.hstack([w * direction, np.zeros((n, n))]), bias=scale > 0), scale * x) / dt
            for w in grid
        ]
        ax2.plot(grid, rates, style, ms=3, lw=1.2, label=rf"measured $\lambda_1/\Delta t$, {label}")
    ax2.plot(
        grid,
        [fixed_point_rate(w * direction) / dt for w in grid],
        "k--",
        lw=1,
        label=r"fixed point $\ln\rho(J_0)/\Delta t$",
    )
    ax2.axvline(
        gam,
        color="tab:red",
        lw=1,
        label=r"$\lambda_{max}(W) = \gamma$: $p_{J_0}(1) = -\Delta t^2(\lambda_{max} - \gamma)$",
    )
    ax2.axhline(0.0, color="gray", lw=0.8)
    ax2.set_xlabel(r"$\lambda_{max}(W) = \|W\|_2$ (symmetric $W$, $W_z = 0$)")
    ax2.set_ylabel(r"$\lambda_1$ per unit time (> 0: exploding)")
    ax2.set_title("phase diagram over the scale of W", fontsize=9)
    return [
        _save_panels(
            fig,
            (ax, ax2),
            f"coRNN (H = {n}, T = {T}): bounded states, gradients bounded only on a physical horizon",
            out / "cornn.png",
            legend="upper left",
        )
    ]


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
    path = out / "min_rnn.png"
    plot_min_rnn(path, T, n, args.seed)  # families-c
    written.append(path)
    written += plot_antisymmetric(out, T, n, args.seed)
    written += plot_orthogonal(out, T, n, args.seed)
    written += plot_cornn(out, T, n, args.seed)
    plot_lru_selective_ssm(out / "lru_selective_ssm.png", T, n, args.seed)
    written.append(out / "lru_selective_ssm.png")
    for p in written:
        print(f"wrote {p}")
    return 0
