"""Benchmark of gradtheory.check_gradients: sensitivity, false alarms, cost against torch.autograd.gradcheck.

Run: ``python benchmarks/bench_checker.py`` (about 5-10 minutes on 2 cores; ``--models 100`` for a
quick look). Everything runs in one process, float64, torch on one thread (small recurrent kernels
are fastest on one thread; both checkers get the same setting).

1. Sensitivity: planted errors of relative size eps in {1e-6, ..., 1e-9, 1e-10} on one parameter tensor of
   torch.nn.RNN/LSTM/GRU (4 -> 32, T = 20, B = 2): (a) the tensor's gradient scaled by 1 + eps,
   (b) eps * ||g|| * e added, e a random unit tensor. A planted error counts as found when that
   tensor, and only that tensor, fails.
2. Realistic bugs (gradtheory/_check_examples.py): scaled gradient, dropped time step, wrong gate
   derivative, float32 backward, transposed weight gradient; plus what gradcheck says about them.
3. False alarms over N random correct models (default 1,000): RNN (tanh), LSTM, GRU with input size
   1..8, hidden size 1..32, 1..3 layers, uni/bidirectional, with/without bias, batch_first or not,
   T = 1..30, B = 1..3, torch's default initialisation, seeds 0..N-1; also the distribution of
   |<g,v> - D| / tolerance (must stay < 1). ReLU RNNs are reported separately (finite differences
   across a kink: the reference is inaccurate there; the check must still not raise false alarms).
4. Cost: LSTM 4 -> 32 (T = 20, B = 2), fn(x, *params) -> output, check_gradients vs
   torch.autograd.gradcheck(fast_mode=True) on the same function, interleaved repeats, medians.
5. Numpy code in the common styles (gradtheory/_check_numpy_examples.py: CS231n RNN/LSTM with
   cache tuples and in-place updates of the incoming gradient, min-char-rnn with a parameter dict,
   a cached GRU layer with dropout from np.random, the RNN with float32 hidden states): false
   alarms over random sizes and seeds of the correct code, and the planted bugs found.
6. Random forwards: functions that are not deterministic (dropout with RNG pinning off, an
   unseeded generator, random jitter of relative size 1e-9 .. 1) must never be reported correct.
7. Low precision (``--only lowprec``; ``--lowprec N``, ``--bf16 N``): float32 torch modules checked
   in float32 (precision='native', reference from a float64 copy): planted relative errors of 1e-4
   in single tensors of RNN/LSTM/GRU found; false alarms over N random correct float32 modules and
   torch.autograd.gradcheck(fast_mode=True) on the same float32 functions; bfloat16: planted 1e-1
   errors found, false alarms over N random bfloat16 modules.
8. Second order (``--only order2``): a planted double-backward bug found by check_gradients(order=2)
   and gradtheory.gradgradcheck; agreement with torch.autograd.gradgradcheck on random correct
   float64 modules.
9. Drop-in (``--only dropin``): PyTorch's own gradcheck test cases (OpInfo samples of
   torch.testing._internal.common_methods_invocations for a handful of ops, and the custom
   autograd.Functions of torch.testing._internal.autograd_function_db) run through
   torch.autograd.gradcheck/gradgradcheck and gradtheory.gradcheck/gradgradcheck.
10. JAX (``--only jax``; needs the jax extra): an Elman cell h' = tanh(h W_hh^T + x W_ih^T + b) as a jax.custom_vjp
   with a hand-written rule, unrolled by lax.scan (4 -> 32, T = 20, B = 2, jitted). Sensitivity:
   planted relative errors eps in {1e-3, ..., 1e-9} in the rule's W_hh gradient ((a) scaled by
   1 + eps, (b) eps * ||g|| * e added, e a random unit tensor), found by check_gradients (W_hh, and
   only W_hh, wrong) and by jax.test_util.check_grads(order=1, modes=['rev']) (AssertionError) in
   float64 (x64 on) and in float32 (JAX's default); eps = 0 is the correct rule (no alarm allowed).
   Cost: check_gradients / check_grads(order=1, modes=['rev'], float64) on the correct function,
   interleaved repeats, medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from gradtheory import _check_examples as ex
from gradtheory import _check_numpy_examples as nx
from gradtheory.check import check_gradients, torch_module_target

planted = ex.planted


def module(
    kind: str,
    I: int,
    H: int,
    *,
    layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = False,
    bias: bool = True,
    seed: int = 0,
    nonlinearity: str = "tanh",
):
    torch.manual_seed(seed)
    kw = {"bidirectional": bidirectional, "batch_first": batch_first, "bias": bias, "dtype": torch.float64}
    if kind == "RNN":
        kw["nonlinearity"] = nonlinearity
    return getattr(torch.nn, kind)(I, H, layers, **kw)


def sensitivity() -> None:
    print("\n## 1. Sensitivity: planted relative errors on one parameter tensor (4 -> 32, T = 20, B = 2)")
    print(f"{'model':6} {'kind':7} " + " ".join(f"{e:>9.0e}" for e in (1e-6, 1e-7, 1e-8, 1e-9, 1e-10)))
    for kind in ("RNN", "LSTM", "GRU"):
        m = module(kind, 4, 32)
        torch.manual_seed(1)
        target = torch_module_target(m, torch.randn(20, 2, 4, dtype=torch.float64))
        n_params = len(target.inputs) - 1
        for how in ("scale", "random"):
            cells = []
            for eps in (1e-6, 1e-7, 1e-8, 1e-9, 1e-10):
                found = 0
                for index in range(1, n_params + 1):
                    rep = check_gradients(planted(target, index, how, eps, seed=index), localise=False)
                    found += [c.index for c in rep.failures] == [index]
                cells.append(f"{found}/{n_params}")
            print(f"{kind:6} {how:7} " + " ".join(f"{c:>9}" for c in cells))


def realistic_bugs() -> None:
    print("\n## 2. Realistic bugs (hand-written torch cells, T = 6, B = 2, 3 -> 5)")
    print(
        f"{'cell':6} {'bug':10} {'check_gradients':16} {'failing inputs':28} {'gradcheck fast':15} {'gradcheck slow':15}"
    )
    cases = [("elman", b) for b in ("scale", "drop_step", "float32", "transpose")] + [
        ("lstm", b) for b in ("scale", "drop_step", "gate", "float32")
    ]
    for cell, bug in cases:
        if cell == "elman":
            fn, inputs, names = ex.elman_function(bug), ex.elman_inputs(), ex.ELMAN_NAMES
        else:
            fn, inputs, names = ex.lstm_function(bug), ex.lstm_inputs(), ex.LSTM_NAMES
        rep = check_gradients(fn, inputs, names=names, time_axis=0)
        gc = {}
        for fast in (True, False):
            try:
                gc[fast] = "passes" if torch.autograd.gradcheck(fn, inputs, fast_mode=fast) else "fails"
            except Exception:  # noqa: BLE001 - gradcheck raises GradcheckError (or RuntimeError) on failure
                gc[fast] = "flags"
        failing = ",".join(c.name for c in rep.failures)
        print(
            f"{cell:6} {bug:10} {'flags' if rep.status == 'wrong' else 'MISSES':16} {failing:28} {gc[True]:15} {gc[False]:15}"
        )
    # the motivating LSTM: weight_hh off by a relative 1e-3
    m = module("LSTM", 4, 16)
    target = torch_module_target(m, torch.randn(20, 1, 4, dtype=torch.float64))
    bad = planted(target, 2, "scale", 1e-3)
    out = lambda *a: bad.fn(*a)[0]
    res = {}
    for fast in (True, False):
        t0 = time.perf_counter()
        try:
            res[fast] = "passes" if torch.autograd.gradcheck(out, target.inputs, fast_mode=fast) else "fails"
        except Exception:  # noqa: BLE001 - gradcheck raises GradcheckError on failure
            res[fast] = "flags"
        res[fast] += f" ({time.perf_counter() - t0:.2f} s)"
    t0 = time.perf_counter()
    rep = check_gradients(bad)
    print(
        f"LSTM 4->16 T=20, weight_hh x (1 + 1e-3): gradcheck fast {res[True]}, slow {res[False]}; "
        f"check_gradients {'flags ' + ','.join(c.name for c in rep.failures) if rep.status == 'wrong' else 'MISSES'} "
        f"({time.perf_counter() - t0:.2f} s)"
    )


def false_alarms(n: int, relu: int) -> None:
    print(f"\n## 3. False alarms over {n} random correct RNN(tanh)/LSTM/GRU models")
    rng = np.random.default_rng(12345)
    alarms, ratios, resolutions, t0 = [], [], [], time.perf_counter()
    smaller_step = inconclusive = 0
    counts = {"RNN": 0, "LSTM": 0, "GRU": 0}
    for i in range(n):
        kind = ("RNN", "LSTM", "GRU")[i % 3]
        counts[kind] += 1
        cfg = {
            "I": int(rng.integers(1, 9)),
            "H": int(rng.integers(1, 33)),
            "layers": int(rng.integers(1, 4)),
            "bidirectional": bool(rng.integers(0, 2)),
            "batch_first": bool(rng.integers(0, 2)),
            "bias": bool(rng.integers(0, 4) > 0),
        }
        T, B = int(rng.integers(1, 31)), int(rng.integers(1, 4))
        m = module(kind, **cfg, seed=i)
        shape = (B, T, cfg["I"]) if cfg["batch_first"] else (T, B, cfg["I"])
        x = torch.from_numpy(rng.standard_normal(shape))
        rep = check_gradients(m, x, seed=i, localise=False)
        ratios.extend(c.error / c.tolerance for c in rep.inputs if c.conclusive and c.tolerance > 0)
        resolutions.extend(c.resolution for c in rep.inputs if c.conclusive and c.reference != 0)
        smaller_step += sum(c.step != rep.step for c in rep.inputs)
        inconclusive += sum(not c.conclusive for c in rep.inputs)
        if rep.status == "wrong":
            alarms.append((i, kind, cfg, T, B, rep.summary))
        if (i + 1) % 100 == 0:
            print(
                f"  {i + 1}/{n} models, {len(alarms)} false alarms, {time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    r = np.array(ratios)
    res = np.array(resolutions)
    print(f"models {counts}; directional tests {r.size}; FALSE ALARMS {len(alarms)}/{n}")
    print(f"|<g,v> - D| / tolerance: median {np.median(r):.3f}, 99.9% {np.quantile(r, 0.999):.3f}, max {r.max():.3f}")
    print(
        f"resolution (tolerance / |D|): median {np.median(res):.1e}, 99% {np.quantile(res, 0.99):.1e}, "
        f"max {res.max():.1e}; fraction <= 1e-10: {np.mean(res <= 1e-10):.4f}"
    )
    print(
        f"inputs checked with a smaller step (non-smooth differences at the default step): {smaller_step}; "
        f"inconclusive inputs: {inconclusive}"
    )
    print(f"time {time.perf_counter() - t0:.0f} s")
    for a in alarms[:5]:
        print("ALARM", a[:5], "\n", a[5])
    if relu:
        alarms_r, weak, unsure, judged = 0, 0, 0, 0
        for i in range(relu):
            cfg = {"I": int(rng.integers(1, 9)), "H": int(rng.integers(1, 33)), "layers": int(rng.integers(1, 3))}
            T, B = int(rng.integers(1, 21)), int(rng.integers(1, 4))
            m = module("RNN", **cfg, seed=10_000 + i, nonlinearity="relu")
            rep = check_gradients(m, torch.from_numpy(rng.standard_normal((T, B, cfg["I"]))), seed=i, localise=False)
            alarms_r += rep.status == "wrong"
            weak += bool(rep.notes)
            unsure += sum(not c.conclusive for c in rep.inputs)
            judged += len(rep.inputs)
            if rep.status == "wrong" and alarms_r <= 3:
                print("RELU ALARM", cfg, T, B, "\n", rep.summary)
        print(
            f"ReLU RNNs: false alarms {alarms_r}/{relu}; reports with a low-resolution note {weak}/{relu}; "
            f"inconclusive inputs {unsure}/{judged}"
        )


def cost(repeats: int) -> None:
    print(f"\n## 4. Cost: LSTM 4 -> 32, T = 20, B = 2 (fn -> output), {repeats} interleaved repeats, medians")
    m = module("LSTM", 4, 32)
    torch.manual_seed(1)
    target = torch_module_target(m, torch.randn(20, 2, 4, dtype=torch.float64))
    fn = lambda *a: target.fn(*a)[0]
    inputs = target.inputs
    check_gradients(fn, inputs)
    torch.autograd.gradcheck(fn, inputs, fast_mode=True)
    ours, theirs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rep = check_gradients(fn, inputs)
        t1 = time.perf_counter()
        torch.autograd.gradcheck(fn, inputs, fast_mode=True)
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        theirs.append(t2 - t1)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(
        f"check_gradients: {a * 1e3:.1f} ms ({rep.evaluations} evaluations + {rep.backward_passes} backward); "
        f"gradcheck(fast_mode=True): {b * 1e3:.1f} ms; RATIO {a / b:.2f} (target <= 3)"
    )
    ratios = [x / y for x, y in zip(ours, theirs)]
    print(f"per-repeat ratios: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}, max {max(ratios):.2f}")


def _style_problem(style: str, bug: str, seed: int, rng: np.random.Generator) -> dict:
    sizes = {
        "rnn": {
            "N": int(rng.integers(1, 4)),
            "T": int(rng.integers(1, 13)),
            "D": int(rng.integers(1, 6)),
            "H": int(rng.integers(1, 17)),
        },
        "lstm": {
            "N": int(rng.integers(1, 4)),
            "T": int(rng.integers(1, 13)),
            "D": int(rng.integers(1, 6)),
            "H": int(rng.integers(1, 13)),
        },
        "dict_rnn": {
            "T": int(rng.integers(1, 13)),
            "D": int(rng.integers(1, 6)),
            "H": int(rng.integers(1, 17)),
            "V": int(rng.integers(1, 6)),
        },
        "gru_dropout": {
            "T": int(rng.integers(1, 13)),
            "N": int(rng.integers(1, 4)),
            "D": int(rng.integers(1, 6)),
            "H": int(rng.integers(1, 13)),
        },
    }
    # the dropout mask comes from np.random's global state (pinned during a check): seed it so that
    # the figures repeat from run to run
    np.random.seed(seed)
    if style == "rnn_float32":
        return nx.rnn_problem(bug, seed, **sizes["rnn"], float32_states=True)
    return nx.STYLES[style](bug, seed, **sizes[style])


NUMPY_BUGS = {
    "rnn": "wrong_h",
    "rnn_float32": "wrong_h",
    "lstm": "forget",
    "dict_rnn": "time_index",
    "gru_dropout": "flip",
}


def numpy_styles(n: int) -> None:
    print(f"\n## 5. Numpy code in the common styles: {n} random instances per style (sizes and seeds)")
    print(f"{'style':12} {'correct code: correct / wrong (FALSE ALARM) / inconclusive':60} {'bug found':10}")
    rng = np.random.default_rng(2024)
    total_alarms = 0
    missed: list[str] = []
    for style in ("rnn", "lstm", "dict_rnn", "gru_dropout", "rnn_float32"):
        counts = {"correct": 0, "wrong": 0, "inconclusive": 0}
        found = 0
        for i in range(n):
            rep = check_gradients(**_style_problem(style, "none", i, rng), seed=i, localise=False)
            counts[rep.status] += 1
            if rep.status == "wrong" and counts["wrong"] <= 2:
                print("ALARM", style, i, "\n", rep.summary)
            problem = _style_problem(style, NUMPY_BUGS[style], i, rng)
            bad = check_gradients(**problem, seed=i, localise=False)
            found += bad.status == "wrong"
            if bad.status != "wrong":
                missed.append(f"{style} #{i} x{problem['inputs'][0].shape}: {bad.status}")
        total_alarms += counts["wrong"]
        cells = f"{counts['correct']} / {counts['wrong']} / {counts['inconclusive']}"
        print(f"{style:12} {cells:60} {found}/{n}")
    print(f"FALSE ALARMS over {5 * n} correct numpy implementations: {total_alarms}")
    print(
        "bugs not found (the LSTM's forgotten f has no effect when T = 1: c_0 = 0 is not an input; a flipped "
        "dropout-GRU backward none when the mask drops every output):",
        "; ".join(missed) or "none",
    )


def random_forwards(n: int) -> None:
    print(f"\n## 6. Random forwards: {n} instances per kind; never reported correct")
    rng = np.random.default_rng(77)
    kinds = {}

    def gru_unpinned(i):
        bug = ("none", "flip", "zero", "triple")[i % 4]
        return check_gradients(**_style_problem("gru_dropout", bug, i, rng), seed=i, pin_rng=False)

    def lstm_unpinned(i):
        torch.manual_seed(i)
        m = torch.nn.LSTM(3, int(rng.integers(1, 9)), num_layers=2, dropout=0.5, dtype=torch.float64)
        return check_gradients(
            m, torch.from_numpy(rng.standard_normal((int(rng.integers(1, 9)), 2, 3))), seed=i, pin_rng=False
        )

    def jitter(i):
        size = 10.0 ** -(i % 10)  # relative jitter 1 .. 1e-9
        problem = _style_problem("rnn", "none", i, rng)
        inner = problem["fn"]
        problem["fn"] = lambda *a: inner(*a) * (1 + size * np.random.default_rng().standard_normal())
        return check_gradients(**problem, seed=i)

    def own_generator(i):
        gen = torch.Generator().manual_seed(i)  # a seeded generator of its own, advanced by every call
        fn, inputs, names = ex.dropout_lstm(1.0)

        def noisy(*args):
            out = fn(*args)
            return out * (torch.rand(out.shape, generator=gen, dtype=out.dtype) > 0.5)

        return check_gradients(noisy, inputs, names=names, seed=i)

    kinds = {
        "numpy GRU, np.random dropout, pin_rng=False": gru_unpinned,
        "torch nn.LSTM(dropout=0.5), pin_rng=False": lstm_unpinned,
        "numpy RNN x (1 + jitter), jitter 1e-9..1": jitter,
        "torch dropout from its own torch.Generator": own_generator,
    }
    worst = 0
    for name, run in kinds.items():
        statuses = {"correct": 0, "wrong": 0, "inconclusive": 0}
        for i in range(n):
            statuses[run(i).status] += 1
        print(f"{name:48} {statuses}")
        worst += statuses["correct"]
    print(f"RANDOM FORWARDS REPORTED CORRECT: {worst}/{len(kinds) * n}")


def _jax_rnn(planted: str | None, eps: float):
    """The jitted custom_vjp Elman RNN of section 10, its W_hh rule wrong by ``planted`` of size eps."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    e = np.random.default_rng(7).standard_normal((32, 32))
    e /= np.linalg.norm(e)

    def forward(h, x, W_hh, W_ih, b):
        return jnp.tanh(h @ W_hh.T + x @ W_ih.T + b)

    @jax.custom_vjp
    def cell(h, x, W_hh, W_ih, b):
        return forward(h, x, W_hh, W_ih, b)

    def fwd(h, x, W_hh, W_ih, b):
        h_new = forward(h, x, W_hh, W_ih, b)
        return h_new, (h, x, W_hh, W_ih, h_new)

    def bwd(res, dh_new):
        h, x, W_hh, W_ih, h_new = res
        da = dh_new * (1 - h_new**2)
        dW_hh = da.T @ h
        if planted == "scaled":
            dW_hh = (1 + eps) * dW_hh
        elif planted == "added":
            dW_hh = dW_hh + eps * jnp.linalg.norm(dW_hh) * jnp.asarray(e, dtype=dW_hh.dtype)
        return da @ W_hh, da @ W_ih, dW_hh, da.T @ x, da.sum(0)

    cell.defvjp(fwd, bwd)

    def unroll(x, h0, W_hh, W_ih, b):
        def step(h, x_t):
            h = cell(h, x_t, W_hh, W_ih, b)
            return h, h

        h_T, hs = lax.scan(step, h0, x)
        return hs, h_T

    return jax.jit(unroll)


def _jax_inputs(dtype) -> list:
    rng = np.random.default_rng(3)
    shapes = [(20, 2, 4), (2, 32), (32, 32), (32, 4), (32,)]
    scales = [1.0, 0.5, 1 / np.sqrt(32), 1 / np.sqrt(4), 0.1]
    import jax.numpy as jnp

    return [jnp.asarray(sc * rng.standard_normal(sh), dtype=dtype) for sh, sc in zip(shapes, scales)]


def _check_grads_finds(fn, precision: str) -> bool:
    import jax
    from jax.test_util import check_grads

    with jax.enable_x64(precision == "float64"):
        args = _jax_inputs(np.float64 if precision == "float64" else np.float32)
        try:
            check_grads(fn, args, order=1, modes=["rev"])
        except AssertionError:
            return True
    return False


def jax_vs_check_grads(repeats: int) -> None:
    print("\n## 10. JAX: custom_vjp Elman RNN 4 -> 32, T = 20, B = 2 (lax.scan, jitted) vs jax.test_util.check_grads")
    try:
        import jax
        from jax.test_util import check_grads
    except ImportError:
        print("skipped: jax is not installed (pip install 'gradtheory[jax]')")
        return
    print(f"jax {jax.__version__}; found = the planted error is reported (gradtheory: W_hh and only W_hh wrong)")
    epsilons = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9)
    print(f"{'kind':7} {'checker':27} {'eps=0':>6} " + " ".join(f"{e:>6.0e}" for e in epsilons))
    names = ["x", "h0", "W_hh", "W_ih", "b"]
    for planted in ("scaled", "added"):
        rows = {"gradtheory (float64)": [], "check_grads (float64, x64)": [], "check_grads (float32)": []}
        for eps in (0.0, *epsilons):
            fn = _jax_rnn(planted if eps else None, eps)
            rep = check_gradients(fn, _jax_inputs(np.float32), names=names, time_axis=0)
            status = {c.name: c.status for c in rep.inputs}
            ours = status.pop("W_hh") == "wrong" and set(status.values()) == {"correct"}
            rows["gradtheory (float64)"].append("ALARM" if (eps == 0 and rep.status != "correct") else ours)
            rows["check_grads (float64, x64)"].append(_check_grads_finds(fn, "float64"))
            rows["check_grads (float32)"].append(_check_grads_finds(fn, "float32"))
        for who, found in rows.items():
            cells = [
                "ALARM" if (i == 0 and f) else ("ok" if i == 0 else ("found" if f else "missed"))
                for i, f in enumerate(found)
            ]
            print(f"{planted:7} {who:27} " + " ".join(f"{c:>6}" for c in cells))
    fn = _jax_rnn(None, 0.0)
    inputs = _jax_inputs(np.float32)
    with jax.enable_x64(True):
        args64 = _jax_inputs(np.float64)
    rep = check_gradients(fn, inputs)

    def theirs_once() -> None:
        with jax.enable_x64(True):
            check_grads(fn, args64, order=1, modes=["rev"])

    theirs_once()
    ours, theirs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        check_gradients(fn, inputs)
        t1 = time.perf_counter()
        theirs_once()
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        theirs.append(t2 - t1)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(
        f"cost: check_gradients {a * 1e3:.1f} ms ({rep.evaluations} evaluations + {rep.backward_passes} backward); "
        f"check_grads(order=1, modes=['rev'], float64) {b * 1e3:.1f} ms; RATIO {a / b:.2f}"
    )
    ratios = [x / y for x, y in zip(ours, theirs)]
    print(f"per-repeat ratios: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}, max {max(ratios):.2f}")


def _random_module(i: int, rng: np.random.Generator, dtype: torch.dtype):
    """A random RNN(tanh)/LSTM/GRU and input as in section 3, in ``dtype``."""
    kind = ("RNN", "LSTM", "GRU")[i % 3]
    cfg = {
        "I": int(rng.integers(1, 9)),
        "H": int(rng.integers(1, 33)),
        "layers": int(rng.integers(1, 4)),
        "bidirectional": bool(rng.integers(0, 2)),
        "batch_first": bool(rng.integers(0, 2)),
        "bias": bool(rng.integers(0, 4) > 0),
    }
    T, B = int(rng.integers(1, 31)), int(rng.integers(1, 4))
    m = module(kind, **cfg, seed=i).to(dtype)
    shape = (B, T, cfg["I"]) if cfg["batch_first"] else (T, B, cfg["I"])
    return kind, m, torch.from_numpy(rng.standard_normal(shape)).to(dtype)


def _flat(fn):
    """fn with its nested outputs ((out, (h, c)) for an LSTM) as one flat tuple, as gradcheck needs."""

    def flat(*args):
        out, stack = [], [fn(*args)]
        while stack:
            o = stack.pop(0)
            if isinstance(o, torch.Tensor):
                out.append(o)
            else:
                stack[:0] = list(o)
        return tuple(out)

    return flat


def _low_precision_planted(dtype: torch.dtype, eps: float) -> None:
    for kind in ("RNN", "LSTM", "GRU"):
        m = module(kind, 4, 32).to(dtype)
        torch.manual_seed(1)
        target = torch_module_target(m, torch.randn(20, 2, 4, dtype=dtype), precision="native")
        n_params = len(target.inputs) - 1
        row = []
        for how in ("scale", "random"):
            found = 0
            for index in range(1, n_params + 1):
                rep = check_gradients(planted(target, index, how, eps, seed=index), localise=False)
                found += [c.index for c in rep.failures] == [index]
            row.append(f"{how} {found}/{n_params}")
        print(f"  {kind:5} {dtype}: planted relative {eps:g}: found " + ", ".join(row))


# gradcheck on a failing float32 function falls back to its slow mode (a full numerical Jacobian,
# minutes for a 2-layer module) only to write the error message; the verdict is decided before.
# The message is skipped here (_gradcheck_verdict_only), and gradcheck runs on every
# GRADCHECK_EVERY-th module.
GRADCHECK_EVERY = 10


def _gradcheck_verdict_only(fn, inputs) -> bool:
    """torch.autograd.gradcheck(fast_mode=True)'s verdict without its slow-mode error message."""
    gc = sys.modules["torch.autograd.gradcheck"]
    message = gc._run_slow_mode_and_get_error
    gc._run_slow_mode_and_get_error = lambda *args, **kwargs: " (slow-mode message skipped by the benchmark)"
    try:
        return torch.autograd.gradcheck(fn, inputs, raise_exception=False, fast_mode=True)
    finally:
        gc._run_slow_mode_and_get_error = message


def _low_precision_alarms(n: int, dtype: torch.dtype, gradcheck_too: bool) -> None:
    rng = np.random.default_rng(777)
    wrong = inconclusive = inconclusive_inputs = inputs = gc_fail = gc_runs = 0
    res, t0, examples = [], time.perf_counter(), []
    for i in range(n):
        kind, m, x = _random_module(i, rng, dtype)
        target = torch_module_target(m, x, precision="native")
        rep = check_gradients(target, seed=i, localise=False)
        wrong += rep.status == "wrong"
        inconclusive += rep.status == "inconclusive"
        inconclusive_inputs += len(rep.inconclusive)
        inputs += len(rep.inputs)
        res.extend(c.resolution for c in rep.inputs if c.status == "correct")
        if rep.status == "wrong" and len(examples) < 3:
            examples.append(rep.summary)
        if gradcheck_too and i % GRADCHECK_EVERY == 0:
            gc_runs += 1
            gc_fail += not _gradcheck_verdict_only(_flat(target.fn), target.inputs)
        if (i + 1) % 50 == 0:
            print(
                f"  {i + 1}/{n} {dtype} models, {wrong} false alarms, {time.perf_counter() - t0:.0f} s", file=sys.stderr
            )
    r = np.array(res)
    print(
        f"  {dtype}: FALSE ALARMS {wrong}/{n} correct modules; inconclusive reports {inconclusive}/{n} "
        f"({inconclusive_inputs}/{inputs} inputs); resolution of correct inputs: median {np.median(r):.1e}, "
        f"90% {np.quantile(r, 0.9):.1e}, max {r.max():.1e}; {time.perf_counter() - t0:.0f} s"
    )
    if gradcheck_too:
        print(
            f"  torch.autograd.gradcheck(fast_mode=True) on the same {dtype} functions (every "
            f"{GRADCHECK_EVERY}th): {gc_fail}/{gc_runs} FAIL"
        )
    for e in examples:
        print("ALARM\n", e)


def low_precision(n32: int, n16: int) -> None:
    print("\n## 7. Low precision: modules checked in their own precision (reference: float64 copy)")
    _low_precision_planted(torch.float32, 1e-4)
    _low_precision_alarms(n32, torch.float32, gradcheck_too=True)
    _low_precision_planted(torch.bfloat16, 1e-1)
    _low_precision_alarms(n16, torch.bfloat16, gradcheck_too=False)


def second_order(n: int) -> None:
    import gradtheory as gt

    print("\n## 8. Second order: planted double-backward bugs; agreement with gradgradcheck")

    class Tanh(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            y = torch.tanh(a)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * (1 - y * y)

    class Detached(Tanh):  # right value, not differentiable through y
        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * (1 - y.detach() ** 2)

    class HalfCurvature(Tanh):  # right value, derivative of the backward half the true one
        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * (1 - y * y.detach())

    torch.manual_seed(0)
    W_ih = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    W_hh = (0.5 * torch.randn(8, 8, dtype=torch.float64)).requires_grad_(True)
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)

    def rnn(F):
        def fn(x, W_ih, W_hh):
            h, hs = torch.zeros(2, 8, dtype=x.dtype), []
            for t in range(x.shape[0]):
                h = F.apply(x[t] @ W_ih.T + h @ W_hh.T)
                hs.append(h)
            return torch.stack(hs)

        return fn

    for F in (Tanh, Detached, HalfCurvature):
        args = (x, W_ih, W_hh)
        o1 = check_gradients(rnn(F), args).status
        o2 = check_gradients(rnn(F), args, order=2)
        ours = gt.gradgradcheck(rnn(F), args, raise_exception=False)
        theirs = torch.autograd.gradgradcheck(rnn(F), args, raise_exception=False)
        print(
            f"  Elman RNN with {F.__name__:13} backward: order 1 {o1}; order 2 {o2.status} "
            f"(wrong: {[c.name for c in o2.failures]}); gradtheory.gradgradcheck {ours}, torch {theirs}"
        )
    rng = np.random.default_rng(99)
    agree = both_pass = 0
    t0 = time.perf_counter()
    for i in range(n):
        kind, m, xx = _random_module(i, rng, torch.float64)
        target = torch_module_target(m, xx)
        fn = _flat(target.fn)
        ours = gt.gradgradcheck(fn, target.inputs, raise_exception=False)
        theirs = torch.autograd.gradgradcheck(fn, target.inputs, raise_exception=False, fast_mode=True)
        agree += ours == theirs
        both_pass += ours and theirs
    print(
        f"  random correct float64 RNN/LSTM/GRU: gradtheory.gradgradcheck agrees with torch's (fast_mode) on "
        f"{agree}/{n} (both pass {both_pass}); {time.perf_counter() - t0:.0f} s"
    )


def _dropin_case(fn, args, kwargs_order2=True):
    import gradtheory as gt

    row = []
    for check in (torch.autograd.gradcheck, gt.gradcheck, torch.autograd.gradgradcheck, gt.gradgradcheck):
        try:
            row.append("pass" if check(fn, args, raise_exception=False) else "FAIL")
        except NotImplementedError:
            row.append("n/i")
        except Exception as exc:  # what the user's test would see
            row.append(type(exc).__name__)
    return row


def dropin(limit: int) -> None:
    print("\n## 9. Drop-in: PyTorch's own gradcheck test cases with the import swapped")
    print("  columns: torch gradcheck | gradtheory gradcheck | torch gradgradcheck | gradtheory gradgradcheck")
    try:
        from torch.testing._internal.autograd_function_db import autograd_function_db
        from torch.testing._internal.common_methods_invocations import op_db
    except ImportError as exc:  # expecttest missing
        print(f"  skipped: {exc}")
        return
    ops = ("tanh", "sigmoid", "exp", "log", "sin", "mul", "div", "matmul", "cumsum", "softmax", "logsumexp", "norm")
    tally: dict[str, int] = {}
    for info in [o for o in op_db if o.name in ops and o.variant_test_name == ""] + list(autograd_function_db):
        samples = list(info.sample_inputs("cpu", torch.float64, requires_grad=True))[:limit]
        for k, sample in enumerate(samples):
            args = (sample.input, *sample.args)
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            if not any(t.requires_grad for t in tensors):
                continue
            op, kw = info.op, sample.kwargs

            def fn(*a, op=op, kw=kw):
                return op(*a, **kw)

            row = _dropin_case(fn, args)
            key = " ".join(row)
            tally[key] = tally.get(key, 0) + 1
            if row[0] != row[1] or row[2] != row[3]:
                print(f"  {info.name}[{k}]: {row}")
    for key, count in sorted(tally.items(), key=lambda kv: -kv[1]):
        print(f"  {count:4d} x {key}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=1000, help="random correct models for the false-alarm sweep")
    p.add_argument("--relu", type=int, default=100, help="random ReLU RNNs (reported separately)")
    p.add_argument("--repeats", type=int, default=15, help="repeats of the cost comparison")
    p.add_argument("--styles", type=int, default=100, help="random instances per numpy style (section 5)")
    p.add_argument("--random", type=int, default=40, help="instances per kind of random forward (section 6)")
    p.add_argument("--lowprec", type=int, default=1000, help="random correct float32 modules (section 7)")
    p.add_argument("--bf16", type=int, default=200, help="random correct bfloat16 modules (section 7)")
    p.add_argument("--order2", type=int, default=30, help="random correct modules for gradgradcheck (section 8)")
    p.add_argument("--dropin", type=int, default=4, help="samples per op in the drop-in section (section 9)")
    p.add_argument(
        "--only",
        choices=("sensitivity", "bugs", "alarms", "cost", "styles", "random", "lowprec", "order2", "dropin", "jax"),
        default=None,
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"# bench_checker: torch {torch.__version__}, numpy {np.__version__}, 1 torch thread")
    if args.only in (None, "cost"):
        cost(args.repeats)
    if args.only in (None, "sensitivity"):
        sensitivity()
    if args.only in (None, "bugs"):
        realistic_bugs()
    if args.only in (None, "alarms"):
        false_alarms(args.models, args.relu)
    if args.only in (None, "styles"):
        numpy_styles(args.styles)
    if args.only in (None, "random"):
        random_forwards(args.random)
    if args.only in (None, "jax"):
        jax_vs_check_grads(args.repeats)
    if args.only in (None, "lowprec"):
        low_precision(args.lowprec, args.bf16)
    if args.only in (None, "order2"):
        second_order(args.order2)
    if args.only in (None, "dropin"):
        dropin(args.dropin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
