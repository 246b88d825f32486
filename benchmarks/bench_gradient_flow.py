"""Benchmark: gradient_flow over 10^6 steps, its slope against the Lyapunov exponent, and torch.

Run:  python benchmarks/bench_gradient_flow.py [--steps 1000000] [--hidden 64] [--torch-steps 10000]
      [--gated-steps 100000] [--generic-steps 10000] [--gated-long] [--only-gated] [--repeats 3]

Reports (wall and process CPU seconds; the CPU figure is the one to compare when other jobs
share the 2 cores):

1. gradient_flow for a tanh RNN (H = 64, ||W_hh||_2 = 1.5, x ~ 0.5 N(0, 1)) at T = 10^6: time,
   finiteness, memory model (one (T, H) float64 buffer; storing the Jacobians would take
   T * H^2 * 8 bytes);
2. lyapunov_exponent on the same trajectory and |difference| to the gradient-flow slope:
   over the full span (flow[0] - flow[T]) / T (same product, differs by O(1/T)), over the first
   half (a different finite-time exponent: fluctuates like O(1/sqrt(T))), and a least-squares fit;
3. torch (float64 nn.RNN) at --torch-steps: the fused forward + backward (gives dL/dh_0 only),
   and an unrolled per-step loop with retain_grad (gives every dL/dh_k), seconds per step and the
   extrapolation to 10^6 steps (labelled as an extrapolation), ratios to gradient_flow; then the
   per-step norms under strong contraction (||W_hh||_2 = 0.5): torch's underflow to exact zeros
   against gradient_flow's finite values;
4. a torch cell (gradtheory.from_torch_cell(nn.GRUCell(H, H))) at --torch-steps: gradient_flow
   (chunked autograd, log renormalisation) against torch's own forward + backward of the same
   cell unrolled over the same T, min of --repeats runs each, interleaved, and the ratio
   (target <= 1.5). ``--torch-cell-only`` runs this section alone.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

import gradtheory as gt
from gradtheory.flow import gradient_flow, lyapunov_exponent


def timed(fn, *args, **kwargs):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w0, time.process_time() - c0


def tanh_model(n: int, norm: float, seed: int = 0) -> gt.RNN:
    model = gt.RNN(n, n, seed=seed)
    W = np.random.default_rng(seed + 1).standard_normal((n, n))
    model.params["weight_hh_l0"] = W * (norm / np.linalg.norm(W, 2))
    return model


def torch_fused(model: gt.RNN, x: np.ndarray):
    """nn.RNN forward + backward of L = <e_0, h_T>; returns ln||dL/dh_0||."""
    import torch

    module = gt.to_torch(model)
    h0 = torch.zeros(1, model.hidden_size, dtype=torch.float64, requires_grad=True)
    _, hn = module(torch.from_numpy(x), h0)
    hn[0, 0].backward()
    return log_norm(h0.grad.numpy())


def torch_unrolled(model: gt.RNN, x: np.ndarray):
    """The same loss, one nn.RNN call per step with retain_grad: ln||dL/dh_k|| for k = 0..T."""
    import torch

    module = gt.to_torch(model)
    h = torch.zeros(1, model.hidden_size, dtype=torch.float64, requires_grad=True)
    states = [h]
    xt = torch.from_numpy(x)
    for t in range(x.shape[0]):
        _, h = module(xt[t : t + 1], h)
        h.retain_grad()
        states.append(h)
    h[0, 0].backward()
    return np.array([log_norm(s.grad.numpy()) for s in states])


def log_norm(g: np.ndarray) -> float:
    """ln||g||_2, scaled by max|g| first so that the squares of tiny entries do not underflow."""
    m = float(np.max(np.abs(g)))
    if m == 0.0 or not math.isfinite(m):
        return math.log(m) if m else -math.inf
    return math.log(m) + 0.5 * math.log(float(np.sum((g / m) ** 2)))


class GenericLSTM(gt.LSTM):
    """Not the exact LSTM class: gradient_flow/lyapunov_exponent take the generic path."""


class GenericGRU(gt.GRU):
    """Not the exact GRU class: gradient_flow/lyapunov_exponent take the generic path."""


def min_cpu(repeats: int, fn, *args, **kwargs):
    """(result, minimum process CPU seconds over `repeats` runs, wall seconds of that run)."""
    best, best_wall, out = math.inf, math.inf, None
    for _ in range(repeats):
        out, wall, cpu = timed(fn, *args, **kwargs)
        if cpu < best:
            best, best_wall = cpu, wall
    return out, best, best_wall


def gated_rows(n: int, T_fast: int, T_generic: int, repeats: int, long: bool) -> None:
    """Section 4: fast LSTM/GRU kernels vs the generic path, side by side."""
    print(
        f"\n[4] LSTM / GRU, H = {n}: fast kernels vs the generic path (CPU us/step, min of {repeats} runs;"
        f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    x = 0.5 * np.random.default_rng(3).standard_normal((max(T_fast, T_generic, 10**6 if long else 0), n))
    for name, cls, generic_cls in (("LSTM", gt.LSTM, GenericLSTM), ("GRU", gt.GRU, GenericGRU)):
        model = cls(n, n, seed=0)
        twin = generic_cls(n, n)
        twin.params = model.params
        xs = x[:T_generic]
        fast_flow, cpu_fast, _ = min_cpu(repeats, gradient_flow, model, xs)
        slow_flow, cpu_slow, _ = min_cpu(repeats, gradient_flow, twin, xs)
        lam_fast, cpu_lf, _ = min_cpu(repeats, lyapunov_exponent, model, xs)
        lam_slow, cpu_ls, _ = min_cpu(1, lyapunov_exponent, twin, xs)
        us_fast, us_slow = cpu_fast / T_generic * 1e6, cpu_slow / T_generic * 1e6
        print(
            f"    {name:4s} T = {T_generic}: gradient_flow fast {us_fast:6.2f} us/step, generic {us_slow:6.2f} us/step,"
            f" generic / fast = {us_slow / us_fast:.2f}; max |ln-norm diff| = {np.max(np.abs(fast_flow - slow_flow)):.2e}"
            f" (ln||dL/ds_0|| = {fast_flow[0]:.6g})"
        )
        print(
            f"         lyapunov_exponent fast {cpu_lf / T_generic * 1e6:6.2f} us/step, generic {cpu_ls / T_generic * 1e6:6.2f}"
            f" us/step (1 run), ratio {cpu_ls / cpu_lf:.2f}; |diff| = {abs(lam_fast - lam_slow):.2e} (lambda = {lam_fast:.6g})"
        )
        horizons = [T_fast] + ([10**6] if long and T_fast != 10**6 else [])
        for Th, reps in zip(horizons, [repeats, 1]):
            flow, cpu, wall = min_cpu(reps, gradient_flow, model, x[:Th])
            print(
                f"         fast gradient_flow at T = {Th}: {cpu:.2f} s CPU ({wall:.2f} s wall) = {cpu / Th * 1e6:.2f} us/step"
                f" ({'min of ' + str(reps) if reps > 1 else '1 run'}); all finite: {bool(np.all(np.isfinite(flow)))},"
                f" ln||dL/ds_0|| = {flow[0]:.6g}"
            )


def torch_cell_row(n: int, T: int, repeats: int) -> None:
    """Section 5: gradient_flow of from_torch_cell(nn.GRUCell(n, n)) vs torch's own unrolled loop."""
    import torch

    from gradtheory.models.torch_cell import torch_cell_gradient_flow

    torch.manual_seed(0)
    cell32 = torch.nn.GRUCell(n, n)
    cell64 = torch.nn.GRUCell(n, n).double()
    cell64.load_state_dict(cell32.state_dict())
    x = np.random.default_rng(3).standard_normal((T, n))
    model = gt.from_torch_cell(cell32)

    def own(cell, dtype, params_grad: bool):
        """torch's own: h = cell(x_t, h) for t < T, then backward of L = h_T[0]."""
        xt = torch.from_numpy(x).to(dtype).unsqueeze(1)
        h0 = torch.zeros(1, n, dtype=dtype, requires_grad=True)
        for p in cell.parameters():
            p.requires_grad_(params_grad)
        h = h0
        for t in range(T):
            h = cell(xt[t], h)
        if params_grad:
            h[0, 0].backward()
        else:
            torch.autograd.grad(h[0, 0], h0)
        for p in cell.parameters():
            p.requires_grad_(True)
            p.grad = None
        return h0

    runs = {
        "gradient_flow(from_torch_cell(GRUCell))": lambda: torch_cell_gradient_flow(model, x),
        "torch float64: loop + L.backward() (param grads too)": lambda: own(cell64, torch.float64, True),
        "torch float64: loop + autograd.grad(L, h_0) only": lambda: own(cell64, torch.float64, False),
        "torch float32 (the user's cell): loop + L.backward()": lambda: own(cell32, torch.float32, True),
    }
    best = {k: math.inf for k in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            _, _, cpu = timed(fn)
            best[name] = min(best[name], cpu)
    _, _, cpu_c = timed(gt.from_torch_cell, cell32)
    flow = torch_cell_gradient_flow(model, x)
    ours = best["gradient_flow(from_torch_cell(GRUCell))"]
    print(
        f"\n[5] torch cell GRUCell({n}, {n}) at T = {T}, 1 thread, min CPU s of {repeats} interleaved runs"
        f"  (load average {os.getloadavg()[0]:.1f})"
    )
    for name, cpu in best.items():
        print(f"    {name:55s}: {cpu:.3f} s = {cpu / T * 1e6:6.1f} us/step   ours / this = {ours / cpu:.2f}")
    print(f"    from_torch_cell construction (deep copy, float64, probe): {cpu_c * 1e3:.1f} ms CPU")
    print(
        f"    all {T + 1} entries finite: {bool(np.all(np.isfinite(flow)))}; ln||dL/ds_0|| = {flow[0]:.6g}"
        f" (||.|| = 10^{flow[0] / math.log(10):.6g}: plain float64 autograd gives exactly 0 here)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10**6)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--torch-steps", type=int, default=10**4)
    parser.add_argument("--gated-steps", type=int, default=10**5)
    parser.add_argument("--generic-steps", type=int, default=10**4)
    parser.add_argument("--gated-long", action="store_true", help="also time LSTM/GRU at T = 10^6 (one run each)")
    parser.add_argument("--only-gated", action="store_true", help="run section 4 only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torch-cell-only", action="store_true", help="run section 5 (torch cell) only")
    args = parser.parse_args()
    T, n, Tt = args.steps, args.hidden, args.torch_steps
    import torch

    torch.set_num_threads(1)
    if args.torch_cell_only:
        torch_cell_row(n, Tt, args.repeats)
        return
    print(f"numpy {np.__version__}, torch {torch.__version__}, T = {T}, H = {n}")
    if args.only_gated:
        gated_rows(n, args.gated_steps, args.generic_steps, args.repeats, args.gated_long)
        return

    # 1. gradient_flow at long horizon
    model = tanh_model(n, 1.5)
    x = 0.5 * np.random.default_rng(2).standard_normal((T, n))
    print(
        f"\n[1] gradient_flow, tanh RNN, ||W_hh||_2 = 1.5   (load average {os.getloadavg()[0]:.1f} on"
        f" {os.cpu_count()} cores)"
    )
    flow, wall0, cpu0 = timed(gradient_flow, model, x)
    print(f"    cold (first touch of its {T * n * 8 / 2**20:.0f} MiB buffer): {wall0:.2f} s wall, {cpu0:.2f} s CPU")
    del flow
    flow, wall, cpu = timed(gradient_flow, model, x)
    print(f"    warm (memory already mapped):  {wall:.2f} s wall, {cpu:.2f} s CPU  ({cpu / T * 1e6:.2f} us/step CPU)")
    print(
        f"    all {T + 1} entries finite: {bool(np.all(np.isfinite(flow)))};"
        f" ln||dL/dh_0|| = {flow[0]:.6g} (||.|| = 10^{flow[0] / math.log(10):.6g})"
    )
    print(
        f"    memory: one (T, H) float64 buffer = {T * n * 8 / 2**20:.0f} MiB;"
        f" all Jacobians would be {T * n * n * 8 / 2**30:.1f} GiB"
    )

    # 2. slope against the Lyapunov exponent
    lam, wall_l, cpu_l = timed(lyapunov_exponent, model, x, reorthonormalize_every=128)
    full = (flow[0] - flow[T]) / T
    half = (flow[0] - flow[T // 2]) / (T // 2)
    k = np.arange(T + 1)
    fit = -np.polyfit(k[: T // 2 * 2 : 97], flow[: T // 2 * 2 : 97], 1)[0]  # d flow/dk = -lambda
    print("\n[2] lyapunov_exponent (forward product J_T...J_1 v0) vs gradient-flow slope (backward)")
    print(f"    lyapunov_exponent: {lam:.10f}  ({wall_l:.2f} s wall, {cpu_l:.2f} s CPU)")
    print(f"    full-span slope (flow[0]-flow[T])/T      : {full:.10f}  |diff| = {abs(full - lam):.2e}")
    print(f"    half-span slope (flow[0]-flow[T/2])/(T/2): {half:.10f}  |diff| = {abs(half - lam):.2e}")
    print(f"    least-squares slope (every 97th k)       : {fit:.10f}  |diff| = {abs(fit - lam):.2e}")
    print(
        "    (full span: same product, |diff| <= max(-ln|cos|)/T; half span: another finite-time"
        " exponent, O(1/sqrt(T)) fluctuation)"
    )

    # 3. torch side by side
    xt = x[:Tt]
    ref = gradient_flow(model, xt)
    fused, wall_f, cpu_f = timed(torch_fused, model, xt)
    unrolled, wall_u, cpu_u = timed(torch_unrolled, model, xt)
    _, wall_g, cpu_g = timed(gradient_flow, model, xt)
    ok = unrolled > math.log(1e-290)  # below, torch's vectors have subnormal entries: imprecise
    print(f"\n[3] torch float64 nn.RNN at T = {Tt} (1 thread), same model and loss")
    print(
        f"    fused forward+backward (dL/dh_0 only): {cpu_f:.3f} s CPU = {cpu_f / Tt * 1e6:.2f} us/step;"
        f" extrapolated to 10^6 steps: {cpu_f / Tt * 1e6:.1f} s (extrapolation, not measured)"
    )
    print(
        f"    unrolled, every dL/dh_k (retain_grad): {cpu_u:.3f} s CPU = {cpu_u / Tt * 1e6:.2f} us/step;"
        f" extrapolated to 10^6 steps: {cpu_u / Tt * 1e6:.1f} s (extrapolation)"
    )
    print(
        f"    gradient_flow at the same T: {cpu_g:.3f} s CPU = {cpu_g / Tt * 1e6:.2f} us/step;"
        f" measured at T = {T}: {cpu / T * 1e6:.2f} us/step"
    )
    print(
        f"    ratios (CPU per step): torch fused / gradient_flow = {cpu_f / cpu_g:.2f},"
        f" torch unrolled / gradient_flow = {cpu_u / cpu_g:.2f}"
    )
    print(
        f"    agreement where torch's norms are normal (> 1e-290): max |ln-norm diff| = {np.max(np.abs(unrolled[ok] - ref[ok])):.2e}"
        f" over {int(ok.sum())} entries; fused ln||dL/dh_0|| = {fused:.6g} vs {ref[0]:.6g}"
    )

    contracting = tanh_model(n, 0.5)
    ref_c = gradient_flow(contracting, xt)
    torch_c = torch_unrolled(contracting, xt)
    zeros = int(np.sum(torch_c == -np.inf))
    nans = int(np.sum(np.isnan(torch_c)))
    first_zero = int(Tt - np.max(np.nonzero(torch_c == -np.inf)[0])) if zeros else None
    print(
        f"\n    strong contraction ||W_hh||_2 = 0.5, T = {Tt}: torch per-step gradients exactly zero: "
        f"{zeros} of {Tt + 1}, NaN: {nans} (first zero at distance T-k = {first_zero});"
        f" gradient_flow: {int(np.sum(np.isfinite(ref_c)))} finite, ln||dL/dh_0|| = {ref_c[0]:.6g}"
        f" (||.|| = 10^{ref_c[0] / math.log(10):.6g})"
    )

    gated_rows(n, args.gated_steps, args.generic_steps, args.repeats, args.gated_long)
    torch_cell_row(n, Tt, args.repeats)


if __name__ == "__main__":
    main()
