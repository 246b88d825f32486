r"""The parallel (log-space) scan shared by minGRU and minLSTM, and the model class that runs it.

Both cells are linear in the state with coefficients that read :math:`x_t` only:

.. math::
    h_t = a_t \odot h_{t-1} + b_t, \qquad a_t \in (0, 1),

so with :math:`A_t = \prod_{j \le t} a_j` (:math:`A_0 = 1`)

.. math::
    h_t = A_t \Bigl(h_0 + \sum_{k=1}^{t} b_k / A_k\Bigr)
        = \sum_{k=0}^{t} c_k\, e^{\log A_t - \log A_k}, \qquad c_0 = h_0,\ c_k = b_k,

(``proofs/min_rnn.tex``). :math:`\log A_t` is a cumulative sum of :math:`\log a_j` and the sum over
:math:`k` a cumulative log-sum-exp (Feng et al., 2024, Sec. 3 and App. B). The paper makes
:math:`b_k > 0` (its function :math:`g`) so that :math:`\log b_k` exists; here the signed
:math:`c_k` are split into positive and negative parts, each summed in log space, and the two
sums subtracted: the scan computes the paper's plain (real-valued) minGRU/minLSTM, the same
function as the sequential loop of the cell, with no restriction on the sign of
:math:`\tilde h`. Every exponent stays finite: no :math:`1/A_k` is ever formed.

Rounding (the tolerance :func:`scan_tolerance` is derived here). Let :math:`\Lambda_t = \sum_{j\le t}
|\log a_j| = |\log A_t|` and :math:`\ell = \max_k |\log|c_k||`. The cumulative sum gives
:math:`\log A_t` with absolute error :math:`\le t u \Lambda_t` (recursive summation,
:math:`\gamma_{t} \approx t u`); the exponent :math:`\log A_t - \log A_k + \log|c_k|` of each term
then carries absolute error :math:`\le (2t + 2) u (\Lambda_t + \ell)`, and the cumulative
log-sum-exp adds at most :math:`2u` relative error per step to its running value (whose size is
at most :math:`\Lambda_t + \ell + \log(t+1)`), i.e. :math:`\le 2 t u (\Lambda_t + \ell + \log(t + 1))`
absolute in the exponent. An absolute error :math:`\delta` in an exponent is a relative error
:math:`e^\delta - 1 \approx \delta` in the term, so each of the two signed sums is within
:math:`\delta_t = (4t + 4) u (\Lambda_t + \ell + \log(t + 1) + 1)` relative of its exact value, and

.. math::
    |h^{\mathrm{scan}}_t - h_t| \le \delta_t\, S_t, \qquad S_t = a_t S_{t-1} + |b_t|,\ S_0 = |h_0|,

with :math:`S_t` the same recurrence on absolute values (the size of the terms, which the
subtraction of the positive and negative sums may cancel). The sequential loop computes
:math:`a_t` with relative error :math:`\le 3u` (minGRU's :math:`1 - z = \sigma(-a_z)`, minLSTM's
:math:`f/(f+i)`, a sum of positives), :math:`b_t` with :math:`\le 2u` relative, and
rounds the multiply-add: its error obeys :math:`E_t \le a_t E_{t-1} + 4u (S_{t-1} + |b_t|)`,
:math:`E_0 = 0` (the contraction :math:`a_t < 1` never amplifies it). Hence scan and loop agree to
:math:`\delta_t S_t + E_t` (:func:`scan_tolerance`). The log-space
scan's error grows like :math:`t \Lambda_t \sim t^2 |\log a|`, the loop's like :math:`t`: the
difference is real (measured in ``tests/test_min_rnn.py``), not a defect of either.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..models._scan import input_projection
from ..models.compose import RecurrentModel

__all__ = ["ParallelResult", "ParallelScanModel", "log_space_scan", "scan_tolerance"]

#: unit roundoff of float64
_U = 2.0**-53


def _signed_log(c: np.ndarray, log_abs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(log of the positive part, log of the negative part) of ``c``; -inf where a part is 0."""
    with np.errstate(divide="ignore"):
        la = np.log(np.abs(c)) if log_abs is None else log_abs
    neg_inf = np.full_like(la, -np.inf)
    return np.where(c > 0, la, neg_inf), np.where(c < 0, la, neg_inf)


def log_space_scan(log_a: np.ndarray, b: np.ndarray, h0: np.ndarray, log_abs_b: np.ndarray | None = None) -> np.ndarray:
    r"""All states of :math:`h_t = a_t h_{t-1} + b_t` by cumulative sums in log space.

    Parameters
    ----------
    log_a : ndarray, shape (T, ...)
        :math:`\log a_t` (finite, :math:`a_t > 0`).
    b : ndarray, shape (T, ...)
        :math:`b_t` (any sign).
    h0 : ndarray, shape (...)
        The initial state.
    log_abs_b : ndarray, optional
        :math:`\log|b_t|` if the caller has it more accurately than ``log(abs(b))``.

    Returns
    -------
    ndarray, shape (T, ...)
        :math:`h_1, \dots, h_T`.
    """
    log_A = np.cumsum(log_a, axis=0)
    log_A0 = np.concatenate([np.zeros_like(log_A[:1]), log_A], axis=0)  # A_0 = 1
    c = np.concatenate([np.asarray(h0)[None], b], axis=0)
    log_c = None
    if log_abs_b is not None:
        with np.errstate(divide="ignore"):
            log_c = np.concatenate([np.log(np.abs(np.asarray(h0)))[None], log_abs_b], axis=0)
    pos, neg = _signed_log(c, log_c)
    h = np.exp(log_A0 + np.logaddexp.accumulate(pos - log_A0, axis=0))
    h = h - np.exp(log_A0 + np.logaddexp.accumulate(neg - log_A0, axis=0))
    return h[1:]


def scan_tolerance(log_a: np.ndarray, b: np.ndarray, h0: np.ndarray) -> np.ndarray:
    r"""The bound :math:`\delta_t S_t + E_t` on |scan - loop| derived in the module docstring, shape (T, ...)."""
    T = log_a.shape[0]
    t = np.arange(1, T + 1).reshape((T,) + (1,) * (log_a.ndim - 1))
    Lam = np.cumsum(np.abs(log_a), axis=0)
    with np.errstate(divide="ignore"):
        logs = np.log(np.abs(np.concatenate([np.asarray(h0)[None], b], axis=0)))
    ell = np.max(np.abs(np.where(np.isfinite(logs), logs, 0.0)))
    delta = (4 * t + 4) * _U * (Lam + ell + np.log(t + 1.0) + 1.0)
    S, E = np.empty_like(b, dtype=float), np.empty_like(b, dtype=float)
    s, e = np.abs(h0) + 0.0 * b[0], 0.0 * b[0]
    a = np.exp(log_a)
    for k in range(T):
        e = a[k] * e + 4 * _U * (s + np.abs(b[k]))
        s = a[k] * s + np.abs(b[k])
        S[k], E[k] = s, e
    return delta * S + E


class ParallelResult(NamedTuple):
    """Result of :meth:`ParallelScanModel.parallel_forward`: ``output`` and ``h_n`` in the layouts of
    :meth:`~gradtheory.models.RecurrentModel.forward`."""

    output: np.ndarray
    h_n: np.ndarray


class ParallelScanModel(RecurrentModel):
    """A model whose cell is linear in the state with input-only coefficients (``cell.scan_coefficients``):
    besides the sequential :meth:`forward` it runs the parallel log-space scan :meth:`parallel_forward`."""

    def parallel_forward(self, x: Any, h0: Any = None) -> ParallelResult:
        """The forward pass as a parallel scan over time (cumulative sums in log space, no time loop).

        Parameters
        ----------
        x : array_like
            Input in torch's layout (as :meth:`forward`).
        h0 : array_like, optional
            Initial state (zeros if None).

        Returns
        -------
        ParallelResult
            ``output`` and ``h_n``; equal to :meth:`forward`'s within :meth:`scan_bound`.

        Raises
        ------
        ValueError
            For a non-finite parameter, or ``x``/``h0`` of the wrong shape (as :meth:`forward`).
        """
        for name, value in self.params.items():
            if not np.all(np.isfinite(value)):
                raise ValueError(f"params[{name!r}] must be finite, got a non-finite entry (NaN or Inf)")
        x_tm, batched = self._prepare_x(x)
        B, H = x_tm.shape[1], self.hidden_size
        (states0,) = self._initial_states(h0, B, batched, np.float64, False)
        finals, layer_in = [], x_tm
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                inp = layer_in[::-1] if d == 1 else layer_in
                gi = input_projection(self.cell, inp, self.layer_params(layer, d))
                log_a, b, log_abs_b = self.cell.scan_coefficients(gi, H)
                hs = log_space_scan(log_a, b, states0[layer * self.num_directions + d], log_abs_b)
                finals.append(hs[-1])
                outs.append(hs[::-1] if d == 1 else hs)
            layer_in = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)
        output, h_n = layer_in, np.stack(finals)
        if not batched:
            output, h_n = output[:, 0], h_n[:, 0]
        elif self.batch_first:
            output = np.swapaxes(output, 0, 1)
        return ParallelResult(output, h_n)

    def scan_bound(self, x: Any, h0: Any = None) -> np.ndarray:
        r"""The derived bound on ``|parallel_forward(x, h0).output - forward(x, h0).output|``, elementwise.

        :math:`\delta_t S_t + E_t` of :mod:`gradtheory.cells._parallel` (the log-space scan's
        rounding plus the loop's), in the layout of ``output``.

        Parameters
        ----------
        x, h0 : array_like
            As for :meth:`parallel_forward`.

        Returns
        -------
        ndarray
            Same shape as ``output``.

        Raises
        ------
        NotImplementedError
            For ``num_layers > 1``: the bound is derived for one layer (a deeper layer's input
            already differs by the layer below's rounding).
        """
        if self.num_layers != 1:
            raise NotImplementedError(f"scan_bound is derived for one layer, got num_layers={self.num_layers}")
        x_tm, batched = self._prepare_x(x)
        B, H = x_tm.shape[1], self.hidden_size
        (states0,) = self._initial_states(h0, B, batched, np.float64, False)
        parts = []
        for d in range(self.num_directions):
            inp = x_tm[::-1] if d == 1 else x_tm
            log_a, b, _ = self.cell.scan_coefficients(input_projection(self.cell, inp, self.layer_params(0, d)), H)
            bound = scan_tolerance(log_a, b, states0[d])
            parts.append(bound[::-1] if d == 1 else bound)
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        if not batched:
            return out[:, 0]
        return np.swapaxes(out, 0, 1) if self.batch_first else out
