"""Localisation of a wrong gradient: which rows / time steps, transposed, scaled, float32-looking,
and from which output step's loss it comes.

When an input fails, its elements are split into blocks (time steps when the input has the
output's time axis, else rows) and the same test is repeated with the direction restricted to
each block; failing blocks with a few rows are refined to single rows. A square 2-D input is also
tested against the transposed gradient, and the ratio analytic/reference is compared across
blocks to recognise a scaled gradient. When the output has a time axis, the cotangent is
restricted to one group of output steps at a time (one backward per group).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .._tolerances import UNIT_ROUNDOFF
from ._probe import direction
from ._session import Session

__all__ = ["Localisation", "localise_elements", "localise_time"]

_FLOAT32_U = 2.0**-24
# A failing input costs up to _MAX_BLOCKS block probes (+ row refinement), each 2 * levels evaluations.
_MAX_BLOCKS = 8
# Time localisation: at most this many groups of output steps (one backward each).
_MAX_TIME_GROUPS = 16
# Relative noise of L above which the forward is float64-noisy no more: float64 round-off through
# a recurrence gives ~1e-16..1e-14 of ||w * fn||, float32 ~1e-8; 1e-10 sits between with four
# orders of magnitude on each side.
FLOAT32_FORWARD_NOISE = 1e-10


class Localisation(NamedTuple):
    findings: tuple[str, ...]
    where: tuple  # block labels ("13", "0..3") or output steps (ints)


def _blocks(shape: tuple[int, ...], axis: int, max_blocks: int) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Split the elements along ``axis`` into at most ``max_blocks`` contiguous blocks (masks)."""
    n = shape[axis]
    edges = np.linspace(0, n, min(n, max_blocks) + 1).round().astype(int)
    return [((int(lo), int(hi)), _mask(shape, axis, lo, hi)) for lo, hi in itertools.pairwise(edges)]


def _mask(shape: tuple[int, ...], axis: int, lo: int, hi: int) -> np.ndarray:
    """True on the elements whose index along ``axis`` is in lo..hi-1."""
    m = np.zeros(shape, dtype=bool)
    idx = [slice(None)] * len(shape)
    idx[axis] = slice(lo, hi)
    m[tuple(idx)] = True
    return m


def _block_test(s: Session, index: int, g: np.ndarray, mask: np.ndarray, step: float):
    x = s.backend.checked[index].x
    v = direction(s.rng, x) * mask
    return s.compare(g, v, s.probe(index, v, step))


def localise_elements(s: Session, index: int, g: np.ndarray, full, step: float) -> Localisation:
    """Blocks, transposition, scaling and float32 diagnosis for a failing input (``full``: its test)."""
    x = s.backend.checked[index].x
    findings: list[str] = []
    ratio = full.analytic / full.reference if full.reference != 0 else math.inf
    if x.size == 1:
        return Localisation((f"analytic/reference ratio {ratio:.9g}",), ("all",))
    if x.ndim == 2 and x.shape[0] == x.shape[1]:
        v = direction(s.rng, x)
        if s.compare(np.ascontiguousarray(g.T), v, s.probe(index, v, step)).passes:
            return Localisation(("the gradient is TRANSPOSED: grad.T matches the reference",), ("all",))
    is_time = index in s.time_inputs and s.T is not None and s.time_axis < x.ndim and x.shape[s.time_axis] == s.T
    axis = s.time_axis if is_time else 0
    label = "time steps" if is_time else ("rows" if x.ndim >= 2 else "elements")
    bad, ratios = [], []
    for (lo, hi), m in _blocks(x.shape, axis, _MAX_BLOCKS):
        c = _block_test(s, index, g, m, step)
        if not c.passes:
            bad.append((lo, hi))
            ratios.append(c.analytic / c.reference if c.reference != 0 else math.inf)
    if bad and len(bad) <= 2:  # refine a few failing blocks of several rows to single rows
        refined = []
        for lo, hi in bad:
            if hi - lo <= 1:
                refined.append((lo, hi))
                continue
            for r in range(lo, hi):
                if not _block_test(s, index, g, _mask(x.shape, axis, r, r + 1), step).passes:
                    refined.append((r, r + 1))
        bad = refined or bad
    names = tuple(f"{lo}" if hi - lo == 1 else f"{lo}..{hi - 1}" for lo, hi in bad)
    n_total, n_bad = x.shape[axis], sum(hi - lo for lo, hi in bad)
    where = f"axis {axis} ({label})"
    if not bad:
        findings.append(f"no single block along {where} fails on its own: the error is spread thinly over the tensor")
    elif n_bad == n_total:
        findings.append(f"wrong in every block along {where}: the error is spread over the whole tensor")
    else:
        findings.append(f"wrong {label} along axis {axis}: {', '.join(names)} (of 0..{n_total - 1})")
    # scaled: every failing block (two at least) shows the same ratio, to 1% of its deviation from
    # 1 (an error of round-off type, e.g. float32, gives ratios that scatter by as much as they deviate)
    blocks_compared = len(ratios) >= 2 and bool(np.all(np.isfinite(ratios)))
    r = np.array(ratios)
    scaled = blocks_compared and bool(np.max(np.abs(r - r.mean())) <= 1e-2 * abs(r.mean() - 1.0))
    if scaled:
        findings.append(f"the gradient is SCALED: analytic/reference = {r.mean():.9g} in every failing block")
    elif not blocks_compared and math.isfinite(ratio):
        findings.append(f"analytic/reference ratio {ratio:.9g}")
    rel_err = full.error / max(abs(full.reference), 1e-300)
    forward_noise = s.noise_factor * UNIT_ROUNDOFF
    if 1e-10 < rel_err < 1e-5 and not scaled and forward_noise < FLOAT32_FORWARD_NOISE:
        findings.append(
            f"relative error {rel_err:.1e} is of the order of float32 round-off (u = {_FLOAT32_U:.1e}) "
            "amplified, while the forward's measured noise is at float64 level: was part of the backward "
            "computed in float32?"
        )
    return Localisation(tuple(findings), names)


def _time_masked(s: Session, lo: int, hi: int) -> list[np.ndarray]:
    """The cotangent restricted to output steps lo..hi-1: outputs laid out like the first (an
    RNN's output sequence) are masked in time, the others (final states) get zero."""
    wm = []
    for wi, oi in zip(s.w, s.base):
        m = np.zeros_like(wi)
        if oi.shape == s.base[0].shape:
            idx = [slice(None)] * wi.ndim
            idx[s.time_axis] = slice(lo, hi)
            m[tuple(idx)] = wi[tuple(idx)]
        wm.append(m)
    return wm


def localise_time(s: Session, index: int, probe) -> Localisation:
    """Which output step's loss carries the wrong gradient (``probe``: the failing test's)."""
    v = probe.direction
    bad = []
    for (lo, hi), _ in _blocks((s.T,), 0, _MAX_TIME_GROUPS):
        wm = _time_masked(s, lo, hi)
        # a backward that returns None for a part of the cotangent is tested as a zero gradient
        gm = s.backend.vjp(wm).get(index)
        if not s.compare(gm, v, probe, wm).passes:
            bad.append((lo, hi))
    steps = tuple(t for lo, hi in bad for t in range(lo, hi))
    axis, T = s.time_axis, s.T
    if not steps:
        text = (
            "the output steps' losses taken one at a time all agree (the error is in the final-state "
            "outputs or needs several steps together)"
        )
        return Localisation((text,), ())
    if len(steps) == T:
        return Localisation(
            (f"the loss of every output step 0..{T - 1} (time axis {axis}) gives a wrong gradient",), steps
        )
    text = f"wrong for the loss of output steps {_ranges(steps)} (time axis {axis}); the first is t = {steps[0]}" + (
        f", the last is t = {steps[-1]}" if len(steps) > 1 else ""
    )
    return Localisation((text,), steps)


def _ranges(steps: Sequence[int]) -> str:
    out, start, prev = [], None, None
    for t in steps:
        if start is None:
            start = prev = t
        elif t == prev + 1:
            prev = t
        else:
            out.append(f"{start}" if start == prev else f"{start}..{prev}")
            start = prev = t
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}..{prev}")
    return ", ".join(out)
