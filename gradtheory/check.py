r"""Regression guards for users' recurrent code: :func:`check_gradients` and :func:`check_stability`.

Gradient check (the error analysis)
-----------------------------------
For a function ``fn`` of input tensors :math:`x_1, \dots, x_m` and a seeded Gaussian cotangent
:math:`w` we form the scalar :math:`L(x) = \langle w, fn(x)\rangle`. One backward pass gives the
analytic gradients :math:`g_i = \partial L / \partial x_i`. For every checked input we draw a
seeded Gaussian direction :math:`v_i` (scaled by the input's RMS so that a step ``h`` perturbs
each element by about ``h`` relative) and compare

.. math:: a_i = \langle g_i, v_i\rangle \quad\text{with}\quad D_i \approx \frac{d}{dt} L(x_i + t v_i)\Big|_{t=0},

where :math:`D_i` is the Richardson extrapolation of central differences at steps
:math:`h, h/2, \dots, h/2^{m-1}` (``levels = m``; default 4 levels, 8 evaluations of ``fn``).
After :math:`m-1` eliminations the truncation error is :math:`O(h^{2m})`; with ``h = 2e-2``
relative and the pre-activations of an RNN moved by ~``h`` (well inside the radius of
convergence ~:math:`\pi/2` of tanh/sigmoid) this is ~:math:`(10^{-2})^{8}` relative: nil.
The error estimate computed alongside is

.. math:: E_i = \max\bigl(|T_{m,m} - T_{m,m-1}|,\; A_m\, c_{fd}\, u\, \|w \odot fn(x)\|_2 / h_{min}\bigr)

* :math:`|T_{m,m} - T_{m,m-1}|`: the last two diagonal entries of the Richardson table; the
  less extrapolated entry is orders of magnitude less accurate, so this over-estimates the
  truncation error of the returned value (and already contains its round-off noise);
* the second term is the propagated round-off: evaluating :math:`L` carries an error of order
  :math:`u \|w \odot fn(x)\|_2` (rounding errors of the ``N`` output terms are independent, hence
  the 2-norm, not the 1-norm), divided by ``2 h_k`` in each difference and combined with the
  Richardson weights, whose absolute sum relative to :math:`1/h_{min}` is :math:`A_m` (computed
  exactly below); :math:`c_{fd}` (``TOLERANCES['check_roundoff_growth']``) covers the growth of
  round-off through the recursion.

The analytic side has its own round-off: the backward pass and the dot product give
:math:`|a_i - \hat a_i| \lesssim c_{an}\, u \sum_k |g_{i,k} v_{i,k}|`. The test is

.. math:: |a_i - D_i| \le k\,(E_i + c_{an}\, u \textstyle\sum_k |g_{i,k} v_{i,k}|)

with the safety factor ``k`` (``TOLERANCES['check_safety']``), chosen from the measured
distribution of the ratio on correct models (benchmarks/bench_checker.py: 1,000 random models,
maximum ratio well below ``k``). The *resolution* of a check is its tolerance divided by
:math:`|D_i|`: the smallest relative error of the gradient it can see (~1e-12 on the float64
recurrent models measured, so a relative 1e-9 error is a thousand tolerances away).

Non-smooth functions (relu). A kink within the stencil makes the central differences
inconsistent and the Richardson estimate untrustworthy. The successive differences
:math:`D_{h_j} - D_{h_{j+1}}` of a smooth function shrink by ~4 per halving; when they do not (or
the estimate exceeds 1e-8 |D|), the step is divided by 16, then 256, then a new direction is
drawn (3 directions). An input for which no smooth-looking stencil is found is reported as
INCONCLUSIVE and not judged. Measured: 0 false alarms on random ReLU RNNs (benchmarks/). A kink
exactly at the evaluation point (e.g. relu at 0, where torch's derivative is 0 and the central
difference gives the mean of the one-sided slopes) cannot be told apart from a bug.

Localisation. When an input fails, its elements are split into blocks (time steps when the input
has a time axis, else rows) and the same test is repeated with the direction restricted to each
block; failing blocks with a few rows are refined to single rows. A square 2-D input is also
tested against the transposed gradient, and the ratio analytic/reference is compared across
blocks to recognise a scaled gradient. When the output has a time axis (``time_axis``), the
cotangent is restricted to one output step at a time (the forward evaluations are reused; one
backward per step) to say from which output step's loss the wrong gradient comes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ._tolerances import TOLERANCES, UNIT_ROUNDOFF
from ._validation import check_bool, check_choice, check_positive_int

__all__ = [
    "check_gradients",
    "check_stability",
    "GradientReport",
    "InputCheck",
    "StabilityReport",
    "GradientCheckError",
    "assert_gradients_match",
    "CheckTarget",
    "torch_module_target",
    "model_target",
]

_U = UNIT_ROUNDOFF

_FLOAT32_U = 2.0**-24
# Localisation budget: a failing input costs up to _MAX_BLOCKS block probes (+ row refinement),
# each 2 * levels evaluations; only the first _MAX_LOCALISED failing inputs are localised.
_MAX_BLOCKS = 8
_MAX_LOCALISED = 3
# Time localisation costs one backward per group of output steps; done for the first
# _MAX_TIME_LOCALISED localised inputs.
_MAX_TIME_GROUPS = 16
_MAX_TIME_LOCALISED = 3
# Non-smooth functions: directions tried before an input is declared inconclusive.
_SMOOTH_DIRECTIONS = 3




class GradientCheckError(AssertionError):
    """Raised by ``check_gradients(..., raise_exception=True)``; ``.report`` holds the report."""

    def __init__(self, report: "GradientReport") -> None:
        super().__init__(report.summary)
        self.report = report


# ------------------------------------------------------------------------------------------------
# Reports


@dataclass(frozen=True)
class InputCheck:
    """The directional test of one input tensor.

    ``analytic`` = <g, v> from the backward; ``reference`` = Richardson (or complex-step)
    derivative of L along v; ``estimate`` its error estimate; ``tolerance`` the bound the
    difference ``error`` is compared with; ``relative_error`` = error / |reference|;
    ``resolution`` = tolerance / |reference| (smallest detectable relative error).
    ``findings`` are human-readable localisation results (empty when ok).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    analytic: float
    reference: float
    estimate: float
    tolerance: float
    error: float
    ok: bool
    relative_error: float
    resolution: float
    findings: tuple[str, ...] = ()
    bad_blocks: tuple[str, ...] = ()
    bad_output_steps: tuple[int, ...] = ()
    conclusive: bool = True
    step: float | None = None


@dataclass(frozen=True)
class GradientReport:
    """Result of :func:`check_gradients`. ``ok`` is True when every checked input passed."""

    ok: bool
    inputs: tuple[InputCheck, ...]
    seed: int
    method: str
    step: float
    levels: int
    evaluations: int
    backward_passes: int
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def failures(self) -> tuple[InputCheck, ...]:
        return tuple(c for c in self.inputs if not c.ok)

    @property
    def errors(self) -> dict[str, float]:
        """Per-input relative error |<g,v> - D| / |D|."""
        return {c.name: c.relative_error for c in self.inputs}

    @property
    def estimates(self) -> dict[str, float]:
        """Per-input error estimate of the reference derivative."""
        return {c.name: c.estimate for c in self.inputs}

    @property
    def summary(self) -> str:
        head = "gradients OK" if self.ok else f"gradients WRONG for {len(self.failures)} of {len(self.inputs)} inputs"
        unsure = [c.name for c in self.inputs if not c.conclusive]
        if unsure:
            head += f" ({len(unsure)} input(s) inconclusive: {', '.join(unsure)})"
        meth = f"{self.method}" + (f" (step {self.step:g}, {self.levels} levels)" if self.method == "richardson" else "")
        lines = [
            f"check_gradients: {head}; seed={self.seed}, reference {meth}, "
            f"{self.evaluations} evaluations + {self.backward_passes} backward, {self.seconds:.3f} s"
        ]
        for c in sorted(self.inputs, key=lambda c: (c.ok, c.index)):
            status = ("ok  " if c.conclusive else "??  ") if c.ok else "FAIL"
            lines.append(
                f"  [{status}] input {c.index} {c.name!r} shape {c.shape}: <grad,v> = {c.analytic:.12e}, "
                f"reference = {c.reference:.12e} (+- {c.estimate:.1e}); |diff| = {c.error:.2e} "
                f"{'<=' if c.ok else '>'} tol {c.tolerance:.2e}; relative error {c.relative_error:.2e} "
                f"(resolution {c.resolution:.1e})"
            )
            for f in c.findings:
                lines.append(f"      - {f}")
        for n in self.notes:
            lines.append(f"  note: {n}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary


# ------------------------------------------------------------------------------------------------
# Targets: a uniform view over torch functions, numpy functions and modules


@dataclass
class CheckTarget:
    """What :func:`check_gradients` checks: ``fn(*inputs)`` and how to differentiate it.

    ``grad_fn`` (numpy functions only): ``grad_fn(cotangent, *inputs)`` returns one gradient per
    input (``None`` for an input it does not differentiate), the vector-Jacobian product for
    ``cotangent`` (an array shaped like the output, or a tuple matching a tuple output).
    ``names`` label the inputs in reports; ``time_axis`` is the output axis that indexes time
    (``None``: no time localisation); ``time_inputs`` the indices of inputs sharing that axis.
    ``checked``: indices of the inputs to check (default: torch tensors with requires_grad, or
    every float array for numpy).
    """

    fn: Callable[..., Any]
    inputs: tuple[Any, ...]
    grad_fn: Callable[..., Any] | None = None
    names: tuple[str, ...] | None = None
    time_axis: int | None = None
    time_inputs: tuple[int, ...] | None = None
    checked: tuple[int, ...] | None = None


def torch_module_target(module: Any, x: Any, h0: Any = None) -> CheckTarget:
    """Wrap a ``torch.nn.Module`` as ``fn(x, *params)`` via ``torch.func.functional_call``.

    The module must return a tensor or a tuple whose first entry is a tensor (``nn.RNN``/``LSTM``/
    ``GRU`` return ``(output, h_n)``/``(output, (h_n, c_n))``: every returned tensor enters L).
    Parameters are converted to float64 copies (the module is not modified); ``x`` too. For
    ``torch.nn.RNNBase`` the time axis (0, or 1 with ``batch_first``) is set for localisation.
    """
    import torch
    from torch.func import functional_call

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    names = [n for n, _ in module.named_parameters()]
    params = tuple(p.detach().to(torch.float64).clone().requires_grad_(True) for _, p in module.named_parameters())
    buffers = {n: b for n, b in module.named_buffers()}
    xx = x.detach().to(torch.float64).clone().requires_grad_(True)
    mod = module
    if any(p.dtype != torch.float64 for p in module.parameters()):
        import copy

        mod = copy.deepcopy(module).to(torch.float64)
    extra = () if h0 is None else (h0,)

    def fn(x: Any, *ps: Any) -> Any:
        return functional_call(mod, {**buffers, **dict(zip(names, ps))}, (x,) + extra)

    time_axis = None
    if isinstance(module, torch.nn.RNNBase):
        time_axis = 1 if (module.batch_first and x.dim() == 3) else 0
    return CheckTarget(fn, (xx,) + params, names=("x", *names), time_axis=time_axis,
                       time_inputs=(0,) if time_axis is not None else ())


def model_target(model: Any, x: Any, h0: Any = None) -> CheckTarget:
    """Wrap a gradtheory numpy model as ``fn(x, *params)`` with its hand-written BPTT as ``grad_fn``.

    The loss is :math:`\\langle w_{out}, output\\rangle + \\langle w_{h_n}, h_n\\rangle (+ c_n)`.
    """
    from .models.compose import RecurrentModel

    if not isinstance(model, RecurrentModel):
        raise TypeError(f"model must be a gradtheory RecurrentModel, got {type(model).__name__}")
    names = tuple(model.param_shapes())
    x = np.array(x, dtype=float)
    lstm = model.num_states == 2

    def run(x_, *ps):
        return model.apply(dict(zip(names, ps)), x_, h0)

    def fn(x_, *ps):
        r = run(x_, *ps)
        return (r.output, r.h_n, r.c_n) if lstm else (r.output, r.h_n)

    def grad_fn(w, x_, *ps):
        r = run(x_, *ps)
        g = model.backward(r, w[0], w[1], w[2] if lstm else None)
        return (g.x, *(g.params[n] for n in names))

    batched = x.ndim == 3
    time_axis = 1 if (batched and model.batch_first) else 0
    return CheckTarget(fn, (x, *(model.params[n].copy() for n in names)), grad_fn=grad_fn,
                       names=("x", *names), time_axis=time_axis, time_inputs=(0,))


def _flatten(out: Any) -> list[Any]:
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res.extend(_flatten(o))
        return res
    if out is None:
        return []
    return [out]


def _is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "requires_grad")


class _Engine:
    """Evaluations of fn with one input replaced, and vector-Jacobian products."""

    def __init__(self, target: CheckTarget, method: str) -> None:
        self.target = target
        self.evaluations = 0
        self.backward_passes = 0
        inputs = tuple(target.inputs)
        self.is_torch = any(_is_torch_tensor(a) for a in inputs)
        if self.is_torch and target.grad_fn is not None:
            raise TypeError("grad_fn is only for numpy functions; torch inputs are differentiated by autograd")
        if not self.is_torch and target.grad_fn is None:
            raise TypeError(
                "grad_fn is required for numpy functions: grad_fn(cotangent, *inputs) -> one gradient per input"
            )
        self.method = method
        arrays: list[np.ndarray | None] = []
        for k, a in enumerate(inputs):
            if self.is_torch:
                if _is_torch_tensor(a):
                    import torch

                    if a.is_floating_point() and a.dtype != torch.float64:
                        raise TypeError(
                            f"inputs[{k}] must be a float64 tensor (a lower precision hides errors below its "
                            f"round-off), got dtype {a.dtype}; convert with .double()"
                        )
                    arrays.append(a.detach().cpu().numpy().copy() if a.is_floating_point() else None)
                else:
                    arrays.append(None)
            else:
                if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                    if a.dtype != np.float64:
                        raise TypeError(f"inputs[{k}] must be a float64 array, got dtype {a.dtype}")
                    arrays.append(a.copy())
                elif isinstance(a, np.ndarray) and a.dtype.kind in "iub":
                    arrays.append(None)
                elif isinstance(a, np.ndarray):
                    raise TypeError(f"inputs[{k}] must be a float64 array, got dtype {a.dtype}")
                else:
                    arrays.append(None)
        self.arrays = arrays
        if target.checked is not None:
            checked = tuple(target.checked)
            for k in checked:
                if not (0 <= k < len(inputs)) or arrays[k] is None:
                    raise ValueError(f"checked contains {k}, which is not the index of a float input")
        elif self.is_torch:
            checked = tuple(k for k, a in enumerate(inputs) if _is_torch_tensor(a) and a.requires_grad)
            if not checked:
                raise ValueError(
                    "no input requires grad: mark the tensors to check with .requires_grad_(True) "
                    "(as for torch.autograd.gradcheck)"
                )
            for k in checked:
                if arrays[k] is None:
                    raise TypeError(f"inputs[{k}] requires grad but is not a floating tensor")
        else:
            checked = tuple(k for k, a in enumerate(arrays) if a is not None)
            if not checked:
                raise ValueError("inputs contains no float64 array to check")
        self.checked = checked
        names = target.names
        if names is not None and len(names) != len(inputs):
            raise ValueError(f"names must have one entry per input ({len(inputs)}), got {len(names)}")
        self.names = tuple(names) if names is not None else tuple(f"inputs[{k}]" for k in range(len(inputs)))
        self._graph = None

    # -- forward evaluations --------------------------------------------------------------------
    def _to_numpy_outputs(self, out: Any, complex_ok: bool = False) -> list[np.ndarray]:
        res = []
        for o in _flatten(out):
            if _is_torch_tensor(o):
                if not (o.is_floating_point() or o.is_complex()):
                    continue
                o = o.detach().cpu().numpy()
            o = np.asarray(o)
            if o.dtype.kind not in "fc":
                continue
            res.append(np.array(o, dtype=np.complex128 if (complex_ok and o.dtype.kind == "c") else (
                np.complex128 if o.dtype.kind == "c" else np.float64)))
        return res

    def evaluate(self, k: int | None, value: np.ndarray | None) -> list[np.ndarray]:
        """Outputs of fn with input ``k`` replaced by ``value`` (numpy; may be complex)."""
        self.evaluations += 1
        inputs = list(self.target.inputs)
        cplx = value is not None and np.iscomplexobj(value)
        if self.is_torch:
            import torch

            for j, a in enumerate(inputs):
                if _is_torch_tensor(a):
                    a = a.detach()
                    if cplx and a.is_floating_point():
                        a = a.to(torch.complex128)
                    inputs[j] = a
            if k is not None:
                inputs[k] = torch.from_numpy(value)
            with torch.no_grad():
                out = self.target.fn(*inputs)
        else:
            inputs = [a.copy() if isinstance(a, np.ndarray) else a for a in inputs]
            if k is not None:
                inputs[k] = value
            out = self.target.fn(*inputs)
        return self._to_numpy_outputs(out, complex_ok=cplx)

    # -- vector-Jacobian products ---------------------------------------------------------------
    def vjp(self, cotangents: list[np.ndarray]) -> dict[int, np.ndarray | None]:
        self.backward_passes += 1
        if self.is_torch:
            import torch

            if self._graph is None:
                leaves = list(self.target.inputs)
                for k in self.checked:
                    leaves[k] = self.target.inputs[k].detach().clone().requires_grad_(True)
                with torch.enable_grad():
                    out = self.target.fn(*leaves)
                outs = [o for o in _flatten(out) if _is_torch_tensor(o) and o.is_floating_point()]
                self._graph = (leaves, outs)
            leaves, outs = self._graph
            pairs = [(o, torch.from_numpy(w)) for o, w in zip(outs, cotangents) if o.requires_grad and np.any(w)]
            if not pairs:
                return {k: None for k in self.checked}
            grads = torch.autograd.grad(
                [p[0] for p in pairs], [leaves[k] for k in self.checked],
                grad_outputs=[p[1].to(p[0].dtype) for p in pairs], retain_graph=True, allow_unused=True,
            )
            return {k: (None if g is None else g.detach().cpu().numpy()) for k, g in zip(self.checked, grads)}
        inputs = [a.copy() if isinstance(a, np.ndarray) else a for a in self.target.inputs]
        base = self.target.fn(*inputs)
        w: Any = cotangents[0] if not isinstance(base, (tuple, list)) else tuple(cotangents)
        grads = self.target.grad_fn(w, *inputs)
        grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
        if len(grads) != len(inputs):
            raise ValueError(f"grad_fn must return one gradient per input ({len(inputs)}), got {len(grads)}")
        res: dict[int, np.ndarray | None] = {}
        for k in self.checked:
            g = grads[k]
            if g is None:
                res[k] = None
                continue
            g = np.asarray(g)
            if g.shape != self.arrays[k].shape:
                raise ValueError(
                    f"grad_fn returned a gradient of shape {g.shape} for input {k} ({self.names[k]}) of shape "
                    f"{self.arrays[k].shape}"
                )
            res[k] = g
        return res


# ------------------------------------------------------------------------------------------------
# Richardson on stored evaluations


def _richardson_weights(levels: int) -> np.ndarray:
    """Coefficients c_k with T[m][m] = sum_k c_k D_k (D_k the central difference at h/2^k)."""
    rows: list[list[np.ndarray]] = []
    for k in range(levels):
        e = np.zeros(levels)
        e[k] = 1.0
        row = [e]
        for j in range(1, k + 1):
            c = 4.0**j
            row.append((c * row[j - 1] - rows[k - 1][j - 1]) / (c - 1.0))
        rows.append(row)
    return rows[-1][-1], rows[-1][-2]


class _Probe:
    """Outputs of fn at x_k +- h_j v for one input and one direction (or one complex step)."""

    def __init__(self, engine: _Engine, k: int, v: np.ndarray, method: str, step: float, levels: int) -> None:
        x = engine.arrays[k]
        self.method = method
        if method == "complex":
            self.h = 1e-20  # no subtraction: any tiny step gives the derivative to round-off
            self.smooth, self.truncation_dominated = True, False
            self.outs = engine.evaluate(k, x + 1j * self.h * v)
            return
        self.steps = [step / 2**j for j in range(levels)]
        self.plus = [engine.evaluate(k, x + h * v) for h in self.steps]
        self.minus = [engine.evaluate(k, x - h * v) for h in self.steps]
        self.levels = levels

    def derivative(self, w: list[np.ndarray], noise: float) -> tuple[float, float]:
        """(D, error estimate) for the scalar <w, fn>; ``noise`` = round-off scale of one L value."""
        if self.method == "complex":
            # Im <w, f(x + i h v)> / h: no cancellation, accurate to the round-off of the forward.
            D = sum(float(np.sum(wi * np.imag(oi))) for wi, oi in zip(w, self.outs)) / self.h
            self.truncation_dominated = False
            self.smooth = True
            return D, noise
        L = lambda outs: sum(float(np.sum(wi * oi)) for wi, oi in zip(w, outs))
        d = np.array([(L(p) - L(m)) / (2 * h) for p, m, h in zip(self.plus, self.minus, self.steps)])
        c_best, c_prev = _richardson_weights(self.levels)
        best = float(c_best @ d)
        prev = float(c_prev @ d)
        # Round-off in D_j is noise / h_j (difference of two noisy values over 2 h_j); weights c_j.
        roundoff = float(np.sum(np.abs(c_best) / np.array(self.steps))) * noise
        self.truncation_dominated = abs(best - prev) > 8.0 * roundoff
        self.smooth = _smooth(d, np.array(self.steps), noise)
        return best, max(abs(best - prev), roundoff)


def _smooth(d: np.ndarray, steps: np.ndarray, noise: float) -> bool:
    r"""Do the central differences behave like a smooth function's on these steps?

    For a smooth function :math:`D_h = f' + c_2 h^2 + c_4 h^4 + \dots`, so the successive
    differences :math:`\delta_j = D_{h_j} - D_{h_{j+1}}` (halving steps) shrink by a factor ~4.
    A kink (relu) at distance :math:`t_0` along the direction breaks this: when
    :math:`t_0 < h_{min}` every difference carries a term ~ :math:`t_0/h` (ratio 1/2), when
    :math:`h_{j+1} < t_0 < h_j` one difference is large and the next is clean (ratio >> 4).
    Richardson extrapolation then combines inconsistent values and its error estimate is not
    trustworthy. Only differences well above their round-off (16 x 2 noise / h_{j+1}) are
    compared; the accepted ratio band [2.5, 6.5] around 4 allows the h^4 term up to a third of
    the h^2 term's contribution.
    """
    delta = d[:-1] - d[1:]
    significant = np.abs(delta) > 32.0 * noise / steps[1:]
    for j in range(len(delta) - 1):
        if significant[j + 1] and not significant[j]:
            return False  # the difference grows as the step shrinks
        if significant[j] and significant[j + 1]:
            q = delta[j] / delta[j + 1]
            if not 2.5 <= q <= 6.5:
                return False
    return True


def _gauss_like(rng: np.random.Generator, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
    r"""A seeded Gaussian direction whose elements have the RMS of ``x`` (1 if x == 0).

    With ``g`` (the analytic gradient), a component along :math:`\hat g` is added so that
    :math:`\langle g, v\rangle \gtrsim \tfrac12 \|g\|\|z\|` instead of the
    :math:`\|g\|\|z\|/\sqrt{n}` (and occasionally ~0) of a purely random direction: a scaled
    gradient (error along g) is then seen at its full relative size, while the random part still
    sees errors in every other direction. The g-part is capped at 3 RMS per element so that a
    gradient concentrated on a few elements does not make the step large there. The direction is
    valid whatever g is (the test compares <g, v> with the true derivative along the same v).
    """
    scale = float(np.sqrt(np.mean(x * x))) if x.size else 1.0
    if not scale > 0:
        scale = 1.0
    z = rng.standard_normal(x.shape) * scale
    if g is not None and x.size > 1:
        gn = float(np.linalg.norm(g))
        gmax = float(np.max(np.abs(g)))
        if gn > 0 and np.isfinite(gn):
            c = min(0.5 * float(np.linalg.norm(z)), 3.0 * scale * gn / gmax)
            z = z + (c / gn) * np.asarray(g, dtype=float)
    return z


# ------------------------------------------------------------------------------------------------
# check_gradients


def _as_target(fn: Any, inputs: Any, grad_fn: Any, names: Any, time_axis: Any) -> CheckTarget:
    if isinstance(fn, CheckTarget):
        if inputs is not None:
            raise TypeError("inputs must be omitted when fn is a CheckTarget")
        t = fn
    else:
        import sys

        torch = sys.modules.get("torch")
        from .models.compose import RecurrentModel

        if isinstance(fn, RecurrentModel):
            t = model_target(fn, inputs)
        elif torch is not None and isinstance(fn, torch.nn.Module):
            t = torch_module_target(fn, inputs)
        else:
            if not callable(fn):
                raise TypeError(f"fn must be callable (or a torch.nn.Module / gradtheory model), got {type(fn).__name__}")
            if inputs is None:
                raise TypeError("inputs must be given: a tuple of float64 tensors or arrays")
            if not isinstance(inputs, (tuple, list)):
                inputs = (inputs,)
            t = CheckTarget(fn, tuple(inputs), grad_fn=grad_fn)
    if grad_fn is not None and t.grad_fn is None:
        t = CheckTarget(t.fn, t.inputs, grad_fn, t.names, t.time_axis, t.time_inputs, t.checked)
    if names is not None:
        t = CheckTarget(t.fn, t.inputs, t.grad_fn, tuple(names), t.time_axis, t.time_inputs, t.checked)
    if time_axis is not None:
        t = CheckTarget(t.fn, t.inputs, t.grad_fn, t.names, time_axis, t.time_inputs, t.checked)
    return t


def check_gradients(
    fn: Any,
    inputs: Any = None,
    *,
    grad_fn: Callable[..., Any] | None = None,
    names: Sequence[str] | None = None,
    time_axis: int | None = None,
    seed: int = 0,
    method: str = "richardson",
    step: float = 2e-2,
    levels: int = 4,
    directions: int = 1,
    localise: bool = True,
    raise_exception: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> GradientReport:
    r"""Check a backward against Richardson-extrapolated (or complex-step) directional derivatives.

    ``fn(*inputs)`` returns a tensor/array or a tuple of them. Torch: ``inputs`` are float64
    tensors; those with ``requires_grad=True`` are checked against autograd's backward. Numpy:
    ``grad_fn(cotangent, *inputs)`` returns one gradient per input (``None`` allowed).
    ``fn`` may also be a ``torch.nn.Module`` or a gradtheory model with ``inputs`` = ``x``
    (see :func:`torch_module_target`, :func:`model_target`), or a :class:`CheckTarget`.

    Per checked input, ``directions`` seeded random directions are tested (see the module
    docstring for the error analysis); ``time_axis`` (the output's time axis) enables the per-step
    localisation of a failure. ``method='complex'`` uses the complex step instead of Richardson
    (only for functions analytic in their inputs that run on complex numbers).
    ``progress(done, total, name)`` is called after each input (the CLI draws its progress bar).
    Returns a :class:`GradientReport`; with ``raise_exception=True`` a failing check raises
    :class:`GradientCheckError` whose message is the report's summary.
    """
    t0 = time.perf_counter()
    check_choice(method, "method", ("richardson", "complex"))
    levels = check_positive_int(levels, "levels", minimum=2)
    directions = check_positive_int(directions, "directions")
    seed = check_positive_int(seed, "seed", minimum=0)
    check_bool(localise, "localise")
    check_bool(raise_exception, "raise_exception")
    if not (isinstance(step, (int, float)) and not isinstance(step, bool) and 0 < step < 1):
        raise ValueError(f"step must be a float in (0, 1) (relative step), got {step!r}")
    if time_axis is not None:
        time_axis = check_positive_int(time_axis, "time_axis", minimum=0)
    target = _as_target(fn, inputs, grad_fn, names, time_axis)
    eng = _Engine(target, method)

    base = eng.evaluate(None, None)
    if not base:
        raise ValueError("fn returned no floating-point output")
    for j, o in enumerate(base):
        if not np.all(np.isfinite(o)):
            raise ValueError(f"fn returned a non-finite value in output {j} at the given inputs")
    ss = np.random.SeedSequence(seed)
    rng_w, rng_v = (np.random.default_rng(s) for s in ss.spawn(2))
    w = [rng_w.standard_normal(o.shape) for o in base]
    notes: list[str] = []
    grads = eng.vjp(w)

    def noise_of(wm: list[np.ndarray]) -> float:
        # round-off of one evaluation of L = <w, fn>: independent errors of the N terms (2-norm),
        # grown through the computation by c_fd (TOLERANCES['check_roundoff_growth']).
        return TOLERANCES["check_roundoff_growth"].rtol * _U * math.sqrt(
            sum(float(np.sum((wi * oi) ** 2)) for wi, oi in zip(wm, base)))

    full_noise = noise_of(w)
    k_safety = TOLERANCES["check_safety"].rtol
    c_an = TOLERANCES["check_analytic_roundoff"].rtol

    def compare(g: np.ndarray | None, v: np.ndarray, probe: _Probe, wm: list[np.ndarray], noise: float):
        a = 0.0 if g is None else float(np.sum(g * v))
        an_round = 0.0 if g is None else c_an * _U * float(np.sum(np.abs(g * v)))
        D, est = probe.derivative(wm, noise)
        tol = k_safety * (est + an_round)
        err = abs(a - D)
        return a, D, est, tol, err

    results: list[InputCheck] = []
    T = None
    if target.time_axis is not None and base[0].ndim > target.time_axis:
        T = base[0].shape[target.time_axis]
        if target.time_inputs is None:
            # inputs laid out like the output along time: same rank, same length on the time axis
            target = CheckTarget(target.fn, target.inputs, target.grad_fn, target.names, target.time_axis,
                                 tuple(k for k in eng.checked if eng.arrays[k].ndim == base[0].ndim
                                       and eng.arrays[k].shape[target.time_axis] == T), target.checked)
    localised = 0
    for k in eng.checked:
        x = eng.arrays[k]
        g = grads.get(k)
        findings: list[str] = []
        worst = None
        conclusive = True
        for _ in range(directions):
            # A non-smooth function (relu kinks) can make the central differences inconsistent:
            # shrink the step (h/16, h/256: the kink is then usually outside the stencil) and, if
            # that fails, draw a new direction (a new distance to the nearest kink).
            # A probe is accepted at once when its differences look smooth and its estimate is
            # below 1e-8 |D| (smooth float64 recurrent models give 1e-13..1e-10 at the default
            # step; a larger estimate at a "smooth-looking" stencil signals kinks conspiring) or
            # at the round-off level (e.g. D = 0 exactly: fn does not depend on the input here).
            # Otherwise the smooth probe with the smallest estimate is kept.
            candidates = []
            for _attempt in range(_SMOOTH_DIRECTIONS):
                v = _gauss_like(rng_v, x, g)
                accepted = False
                for used_step in (step, step / 16, step / 256):
                    probe = _Probe(eng, k, v, method, used_step, levels)
                    res = compare(g, v, probe, w, full_noise)
                    if probe.smooth:
                        candidates.append((res[2] / max(abs(res[1]), 1e-300), v, probe))
                        if res[2] <= 1e-8 * abs(res[1]) or not probe.truncation_dominated:
                            accepted = True
                            break
                if accepted:
                    break
            if candidates:
                _, v, probe = min(candidates, key=lambda c: c[0])
            conclusive = conclusive and bool(candidates)
            used_step = probe.steps[0] if method == "richardson" else step
            a, D, est, tol, err = compare(g, v, probe, w, full_noise)
            if probe.truncation_dominated and tol > 1e-11 * abs(D) and err > 0.1 * tol:
                # The estimate is dominated by the Richardson difference (truncation): the function
                # is curved on the scale of the step. A step 4x smaller shrinks the leading term of
                # that difference (O(h^(2 levels - 2))) by 4^6 = 4096 (levels = 4) at the price of
                # 4x the round-off; keep the more accurate of the two (8 more evaluations). Only
                # done when the comparison is not already conclusive (err <= tol / 10 passes anyway).
                probe2 = _Probe(eng, k, v, method, used_step / 4, levels)
                res2 = compare(g, v, probe2, w, full_noise)
                if res2[2] < est:
                    a, D, est, tol, err = res2
                    probe = probe2
            if worst is None or err / max(tol, 1e-300) > worst[4] / max(worst[3], 1e-300):
                worst = (a, D, est, tol, err, v, probe)
        a, D, est, tol, err, v, probe = worst
        ok = bool(err <= tol) and math.isfinite(a)
        if not conclusive:
            findings.append(
                "INCONCLUSIVE: fn is not smooth along any tried direction at steps down to "
                f"{step / 256:.1e} (relu kinks?); the reference cannot be trusted, so this input is not judged"
            )
            ok = True
        if g is None and D != 0.0:
            findings.append("the backward returned no gradient (None) for this input, but fn depends on it")
        if g is not None and g.dtype == np.float32:
            findings.append("the gradient has dtype float32 (expected float64)")
        bad_blocks: tuple[str, ...] = ()
        bad_steps: tuple[int, ...] = ()
        if not ok and localise and g is not None and localised >= _MAX_LOCALISED:
            findings.append(f"not localised (only the first {_MAX_LOCALISED} failing inputs are)")
        elif not ok and localise and g is not None:
            localised += 1
            used = probe.steps[0] if method == "richardson" else step
            more, bad_blocks = _localise_elements(eng, k, x, g, a, D, rng_v, method, used, levels, w,
                                                  full_noise, compare, target, T)
            findings.extend(more)
            if T is not None and localised <= _MAX_TIME_LOCALISED:
                more, bad_steps = _localise_time(eng, k, g, v, probe, w, base, target.time_axis, T, compare, noise_of)
                findings.extend(more)
        scale = abs(D) if D != 0 else max(tol, 1e-300)
        results.append(InputCheck(
            index=k, name=eng.names[k], shape=tuple(x.shape), analytic=a, reference=D, estimate=est,
            tolerance=tol, error=err, ok=ok, relative_error=err / scale, resolution=tol / scale,
            findings=tuple(findings), bad_blocks=bad_blocks, bad_output_steps=bad_steps,
            conclusive=conclusive, step=probe.steps[0] if method == "richardson" else None,
        ))
        if progress is not None:
            progress(len(results), len(eng.checked), eng.names[k])
    weak = [c.name for c in results if c.ok and c.resolution > 1e-6]
    if weak:
        notes.append(
            f"low resolution (> 1e-6 relative) for {weak}: the reference is not accurate there "
            "(non-smooth function, e.g. relu near a kink, or badly scaled input); try a smaller step"
        )
    report = GradientReport(
        ok=all(c.ok for c in results), inputs=tuple(results), seed=seed, method=method, step=step,
        levels=levels, evaluations=eng.evaluations, backward_passes=eng.backward_passes,
        seconds=time.perf_counter() - t0, notes=tuple(notes),
    )
    if raise_exception and not report.ok:
        raise GradientCheckError(report)
    return report


def assert_gradients_match(fn: Any, inputs: Any = None, **options: Any) -> GradientReport:
    """Assert that a backward matches its function: :func:`check_gradients` with ``raise_exception``.

    For users' test suites; raises :class:`GradientCheckError` (an ``AssertionError``, so pytest
    reports it as a test failure) whose message is the report's summary (which input, which
    elements, which time step). Returns the report when the check passes.
    """
    __tracebackhide__ = True
    options["raise_exception"] = False
    report = check_gradients(fn, inputs, **options)
    if not report.ok:
        raise GradientCheckError(report)
    return report


def _blocks(shape: tuple[int, ...], axis: int, max_blocks: int) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Split the elements along ``axis`` into at most ``max_blocks`` contiguous blocks (masks)."""
    n = shape[axis]
    edges = np.linspace(0, n, min(n, max_blocks) + 1).round().astype(int)
    res = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = np.zeros(shape, dtype=bool)
        idx = [slice(None)] * len(shape)
        idx[axis] = slice(lo, hi)
        m[tuple(idx)] = True
        res.append(((lo, hi), m))
    return res


def _localise_elements(eng, k, x, g, a, D, rng, method, step, levels, w, noise, compare, target, T):
    findings: list[str] = []
    ratio = a / D if D != 0 else math.inf
    # transposed gradient: test g^T along the same kind of direction (no new evaluation needed
    # beyond one probe)
    if x.ndim == 2 and x.shape[0] == x.shape[1] and x.shape[0] > 1:
        v = _gauss_like(rng, x)
        probe = _Probe(eng, k, v, method, step, levels)
        aT, DT, estT, tolT, errT = compare(g.T.copy(), v, probe, w, noise)
        if errT <= tolT:
            findings.append("the gradient is TRANSPOSED: grad.T matches the reference")
            return findings, ("all",)
    if x.size <= 1:
        findings.append(f"analytic/reference ratio {ratio:.9g}")
        return findings, ("all",)
    is_time = target.time_inputs is not None and k in target.time_inputs and T is not None and target.time_axis < x.ndim \
        and x.shape[target.time_axis] == T
    axis = target.time_axis if is_time else 0
    label = "time steps" if is_time else ("rows" if x.ndim >= 2 else "elements")
    blocks = _blocks(x.shape, axis, _MAX_BLOCKS)
    bad, ratios, rel = [], [], []
    for (lo, hi), m in blocks:
        v = _gauss_like(rng, x) * m
        probe = _Probe(eng, k, v, method, step, levels)
        ab, Db, estb, tolb, errb = compare(g, v, probe, w, noise)
        if errb > tolb:
            bad.append((lo, hi))
            ratios.append(ab / Db if Db != 0 else math.inf)
            rel.append(errb / max(abs(Db), 1e-300))
    # refine: a few failing blocks of several rows -> single rows
    if bad and len(bad) <= 2:
        refined = []
        for lo, hi in bad:
            if hi - lo <= 1:
                refined.append((lo, hi))
                continue
            for r in range(lo, hi):
                m = np.zeros(x.shape, dtype=bool)
                idx = [slice(None)] * x.ndim
                idx[axis] = slice(r, r + 1)
                m[tuple(idx)] = True
                v = _gauss_like(rng, x) * m
                probe = _Probe(eng, k, v, method, step, levels)
                _, _, _, tolb, errb = compare(g, v, probe, w, noise)
                if errb > tolb:
                    refined.append((r, r + 1))
        bad = refined or bad
    names = tuple(f"{lo}" if hi - lo == 1 else f"{lo}..{hi - 1}" for lo, hi in bad)
    n_total = x.shape[axis]
    n_bad = sum(hi - lo for lo, hi in bad)
    where = f"axis {axis} ({label})"
    if not bad:
        findings.append(f"no single block along {where} fails on its own: the error is spread thinly over the tensor")
    elif n_bad == n_total:
        findings.append(f"wrong in every block along {where}: the error is spread over the whole tensor")
    else:
        findings.append(f"wrong {label} along axis {axis}: {', '.join(names)} (of 0..{n_total - 1})")
    if ratios and len(ratios) >= 2 and np.all(np.isfinite(ratios)):
        r = np.array(ratios)
        # scaled: every block shows the same ratio, to 1% of its deviation from 1 (an error of
        # round-off type, e.g. float32, gives ratios that scatter by as much as they deviate)
        if np.max(np.abs(r - r.mean())) <= 1e-2 * abs(r.mean() - 1.0):
            findings.append(f"the gradient is SCALED: analytic/reference = {r.mean():.9g} in every failing block")
    elif math.isfinite(ratio):
        findings.append(f"analytic/reference ratio {ratio:.9g}")
    rel_err = abs(a - D) / max(abs(D), 1e-300)
    if 1e-10 < rel_err < 1e-5 and not any("SCALED" in f for f in findings):
        findings.append(
            f"relative error {rel_err:.1e} is of the order of float32 round-off (u = {_FLOAT32_U:.1e}) "
            "amplified: was part of the backward computed in float32?"
        )
    return findings, names


def _localise_time(eng, k, g, v, probe, w, base, axis, T, compare, noise_of):
    """Which output step's loss carries the wrong gradient: cotangent at one output step at a time."""
    groups = _blocks((T,), 0, _MAX_TIME_GROUPS)
    bad = []
    for (lo, hi), _ in groups:
        wm = []
        for wi, oi in zip(w, base):
            # outputs laid out like the first (e.g. an RNN's output sequence) are masked in time;
            # the others (final states h_n, c_n) get a zero cotangent in these tests
            if oi.shape == base[0].shape:
                m = np.zeros_like(wi)
                idx = [slice(None)] * wi.ndim
                idx[axis] = slice(lo, hi)
                m[tuple(idx)] = wi[tuple(idx)]
                wm.append(m)
            else:
                wm.append(np.zeros_like(wi))
        gm = eng.vjp(wm).get(k)
        if gm is None:
            continue
        a, D, est, tol, err = compare(gm, v, probe, wm, noise_of(wm))
        if err > tol:
            bad.append((lo, hi))
    steps = tuple(t for lo, hi in bad for t in range(lo, hi))
    if not steps:
        return ["the output steps' losses taken one at a time all agree (the error is in the final-state outputs "
                "or needs several steps together)"], steps
    if len(steps) == T:
        return [f"the loss of every output step 0..{T - 1} (time axis {axis}) gives a wrong gradient"], steps
    return [f"wrong for the loss of output steps {_ranges(steps)} (time axis {axis}); the first is t = {steps[0]}"
            + (f", the last is t = {steps[-1]}" if len(steps) > 1 else "")], steps


def _ranges(steps: Sequence[int]) -> str:
    out, start, prev = [], None, None
    for s in steps:
        if start is None:
            start = prev = s
        elif s == prev + 1:
            prev = s
        else:
            out.append(f"{start}" if start == prev else f"{start}..{prev}")
            start = prev = s
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}..{prev}")
    return ", ".join(out)


# ------------------------------------------------------------------------------------------------
# check_stability


@dataclass(frozen=True)
class StabilityReport:
    r"""Result of :func:`check_stability`.

    ``flow[k]`` = ln||dL/ds_k|| (k = 0..T, :func:`gradtheory.bounds.gradient_flow`); ``rate`` =
    measured change of ln||dL/ds_k|| per step going back in time (least-squares slope over k;
    < 0 vanishing, > 0 exploding); ``lyapunov``: the top Lyapunov exponent of the trajectory
    (finite-T estimate). For an Elman RNN: ``gamma``, ``spectral_norm`` = ||W_hh||_2,
    ``bound_rate`` = ln(gamma ||W_hh||_2) (the envelope's rate), ``distance`` =
    gamma ||W_hh||_2 - 1 (signed distance to the threshold), ``envelope`` = flow[T] + (T - k)
    bound_rate and ``envelope_ok`` (the measured flow stays under it: a theorem, so False means a
    bug). For LSTM/GRU/residual/highway there is no such envelope: those fields are None.
    ``regime``: vanishing / exploding / neutral from the Lyapunov exponent (the long-run rate).
    """

    regime: str
    rate: float
    lyapunov: float
    kind: str
    gamma: float | None
    spectral_norm: float | None
    bound_rate: float | None
    distance: float | None
    envelope_ok: bool | None
    flow: np.ndarray = field(repr=False)
    envelope: np.ndarray | None = field(repr=False)

    @property
    def ok(self) -> bool:
        """False only if the measured flow breaks the theoretical envelope (Elman RNN)."""
        return self.envelope_ok is not False

    @property
    def summary(self) -> str:
        lines = [
            f"check_stability ({self.kind}): regime {self.regime.upper()}; Lyapunov exponent "
            f"{self.lyapunov:+.4f} per step, measured gradient-flow rate {self.rate:+.4f} per step "
            f"(factor {math.exp(self.rate) if self.rate > -700 else 0.0:.4g} per step back in time)"
        ]
        if self.gamma is not None:
            q = self.gamma * self.spectral_norm
            lines.append(
                f"  envelope: gamma = {self.gamma:.6g}, ||W_hh||_2 = {self.spectral_norm:.6g}, "
                f"gamma*||W_hh||_2 = {q:.6g} (rate {self.bound_rate:+.4f}); distance to the threshold 1: "
                f"{self.distance:+.4g}" + (" -> gradients provably vanish" if q < 1 else " -> no vanishing guarantee")
            )
            lines.append(f"  measured flow under the envelope: {'yes' if self.envelope_ok else 'NO (a bug: the bound is a theorem)'}")
        else:
            lines.append("  no gamma*||W_hh||_2 envelope for this cell (gated/residual state): regime from measurement only")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary


def check_stability(model_or_module: Any, x: Any, *, readout: Any = None, neutral_band: float = 1e-2) -> StabilityReport:
    r"""Measure the gradient flow of a recurrent model against the envelope :math:`(\gamma\|W_{hh}\|_2)^{T-k}`.

    ``model_or_module``: a single-layer unidirectional gradtheory model or ``torch.nn.RNN``/
    ``LSTM``/``GRU``; ``x``: one sequence (T, n_in) (array or tensor). ``readout``: the vector r
    of the loss <r, h_T> (default e_0). The regime is *vanishing* when the top Lyapunov exponent
    is below ``-neutral_band`` per step, *exploding* above ``+neutral_band``, else *neutral*.
    The envelope (Elman RNN) is the theorem
    :math:`\ln\|\partial L/\partial h_k\| \le \ln\|r\| + (T-k)\ln(\gamma\|W_{hh}\|_2)`; it is
    checked with a relative slack of 1e-9 for the round-off of the log-norms (~T n u).
    """
    from . import bounds
    from . import flow as _flow
    from .models import RNN
    from .models.torch_cell import is_torch_cell, torch_cell_check_stability

    if is_torch_cell(model_or_module):
        return torch_cell_check_stability(model_or_module, x, readout=readout, neutral_band=neutral_band)

    if not (isinstance(neutral_band, (int, float)) and not isinstance(neutral_band, bool) and neutral_band >= 0):
        raise ValueError(f"neutral_band must be a float >= 0, got {neutral_band!r}")
    model = _flow.as_single_layer_model(model_or_module, "check_stability")
    if _is_torch_tensor(x):
        x = x.detach().cpu().numpy()
    flow = np.asarray(_flow.gradient_flow(model, x, readout=readout), dtype=float)
    x = np.asarray(x, dtype=float)
    T = flow.shape[0] - 1
    s = T - np.arange(T + 1)  # steps back in time from h_T
    finite = np.isfinite(flow)
    if finite.sum() >= 2:
        rate = float(np.polyfit(s[finite], flow[finite], 1)[0])
    else:
        rate = -math.inf
    lyap = float(_flow.lyapunov_exponent(model, x))
    regime = "vanishing" if lyap < -neutral_band else "exploding" if lyap > neutral_band else "neutral"
    gamma = sn = bound_rate = distance = env = env_ok = None
    if type(model) is RNN:
        gamma = float(bounds.gamma(model.nonlinearity))
        sn = float(bounds.spectral_norm(model.params["weight_hh_l0"]))
        q = gamma * sn
        distance = q - 1.0
        bound_rate = math.log(q) if q > 0 else -math.inf
        env = flow[T] + bounds.envelope(model.params["weight_hh_l0"], model.nonlinearity, T)[::-1]
        ok_mask = finite & np.isfinite(env)
        slack = TOLERANCES["stability_envelope_slack"].rtol
        env_ok = bool(np.all(flow[ok_mask] <= env[ok_mask] + slack * (1 + np.abs(env[ok_mask]))))
        if np.any(finite & ~np.isfinite(env)):
            env_ok = False
    return StabilityReport(regime=regime, rate=rate, lyapunov=lyap, kind=type(model).__name__, gamma=gamma,
                           spectral_norm=sn, bound_rate=bound_rate, distance=distance, envelope_ok=env_ok,
                           flow=flow, envelope=env)
