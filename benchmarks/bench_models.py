"""numpy forward + hand-written BPTT against torch autograd (float64, CPU), side by side.

T = 256, B = 32, n_in = n = 128 by default. The runs are interleaved (numpy, torch, numpy, ...)
so that both see the same machine state; the median of each is reported with the ratio
numpy / torch (<= 1.0 means numpy is no slower).

Threads: both sides get the same count (``--threads``, default 1), set before numpy and torch
load, and OpenMP workers wait passively. Interleaving two runtimes whose idle workers spin
(torch's OpenMP pool, OpenBLAS's threads) on 2 cores otherwise makes whichever runs second pay
for the other's spinning: measured here, 8.1 s instead of 0.11 s for the numpy RNN.

    python benchmarks/bench_models.py [--repeats 7] [--T 256] [--B 32] [--n 128] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _set_threads(argv) -> int:
    """Read --threads before numpy/torch are imported and pin both runtimes to it."""
    threads = 1
    args = list(sys.argv[1:] if argv is None else argv)
    if "--threads" in args:
        threads = int(args[args.index("--threads") + 1])
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return threads


def _numpy_step(model, x, d_out):
    res = model.forward(x)
    model.backward(res, d_out)


def _torch_step(module, xt, d_out_t):
    for p in module.parameters():
        p.grad = None
    xt.grad = None
    out, _ = module(xt)
    out.backward(d_out_t)


def _interleaved(repeats, first, second):
    """Medians of interleaved timings of two callables (seconds)."""
    first(), second()  # warm-up
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        first()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        second()
        tb.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def twin_row(name: str, model, module, args, rng, x, ratios) -> None:
    """One row: numpy forward+BPTT of ``model`` against autograd through ``module`` (its torch
    twin, or the torch module it was built from), median of interleaved repeats, as a ratio."""
    d_out = rng.normal(size=(args.T, args.B, args.n))
    xt, d_out_t = torch.tensor(x, requires_grad=True), torch.from_numpy(d_out)
    mn, mt = _interleaved(args.repeats, lambda: _numpy_step(model, x, d_out), lambda: _torch_step(module, xt, d_out_t))
    ratios[name] = mn / mt
    print(f"{name:16s} {1e3 * mn:11.1f} {1e3 * mt:11.1f} {mn / mt:7.2f}")


def scan_row(name: str, model, args, x, ratios) -> None:
    """minGRU / minLSTM: the parallel log-space scan against the sequential loop, both numpy."""
    ms, ml = _interleaved(args.repeats, lambda: model.parallel_forward(x), lambda: model.forward(x))
    ratios[name + " scan/loop"] = ms / ml
    print(f"{name:16s} scan {1e3 * ms:.1f} ms, loop {1e3 * ml:.1f} ms, ratio scan/loop {ms / ml:.2f}")


def main(argv=None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--T", type=int, default=256)
    ap.add_argument("--B", type=int, default=32)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="threads for numpy's BLAS and for torch (default 1)")
    args = ap.parse_args(argv)
    if "numpy" in sys.modules or "torch" in sys.modules:
        raise RuntimeError("run this script directly: thread counts must be set before numpy/torch load")
    _set_threads(argv)
    global np, torch, gt
    import numpy as np
    import torch

    import gradtheory as gt

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.T, args.B, args.n))
    ratios = {}
    from threadpoolctl import threadpool_info

    blas = [f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info() if i["user_api"] == "blas"]
    print(
        f"T={args.T} B={args.B} n={args.n} float64, torch {torch.__version__} ({torch.get_num_threads()} threads), numpy BLAS {blas}"
    )
    print(f"{'model':16s} {'numpy [ms]':>11s} {'torch [ms]':>11s} {'ratio':>7s}")
    for name in ("RNN", "LSTM", "GRU"):
        torch.manual_seed(0)
        module = getattr(torch.nn, name)(args.n, args.n, dtype=torch.float64)
        twin_row(name, gt.from_torch(module), module, args, rng, x, ratios)
    # the families torch.nn has no module for: against their torch twins (gt.to_torch)
    families = {
        "MinGRU": gt.MinGRU(args.n, args.n, seed=0),
        "MinLSTM": gt.MinLSTM(args.n, args.n, seed=0),
        "AntisymmetricRNN": gt.AntisymmetricRNN(args.n, args.n, seed=0),  # tanh, eps = 0.1, gamma = 0.01
        "OrthogonalRNN": gt.OrthogonalRNN(args.n, args.n, seed=0),  # expm and its adjoint once per pass
        "LRU": gt.LRU(args.n, args.n, seed=0),  # complex state of n entries
        "S6": gt.SelectiveSSM(args.n, 16, seed=0),  # state n x 16 (Mamba's N)
        "coRNN": gt.CoRNN(args.n, args.n, seed=0),  # state (y, z), weight_hh [W | W_z] (n, 2n); sMNIST dt, gamma, eps
    }
    for name, model in families.items():
        twin_row(name, model, gt.to_torch(model), args, rng, x, ratios)
    for name in ("MinGRU", "MinLSTM"):
        scan_row(name, families[name], args, x, ratios)
    return ratios


if __name__ == "__main__":
    main()
