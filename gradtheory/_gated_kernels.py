r"""Fast long-horizon kernels for single-layer LSTM and GRU: gradient flow and tangent growth.

Pure numpy over the raw parameters in torch layout (LSTM gate rows i, f, g, o; GRU rows r, z, n
with b_hn inside r * (W_hn h + b_hn)). The equations are those of ``cells/lstm.py`` and
``cells/gru.py`` (derived in ``proofs/lstm.tex``, ``proofs/gru.tex``):

LSTM, state s = (h, c)::

    i, f, o = sigma(a_i), sigma(a_f), sigma(a_o);  g = tanh(a_g);  a = W_ih x + b_ih + W_hh h + b_hh
    c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)

GRU, state s = h::

    r, z = sigma(.), sigma(.);  n = tanh(W_in x + b_in + r (W_hn h + b_hn));  h_t = (1 - z) n + z h_{t-1}

Backward (transposed one-step Jacobian, c's gradient at fixed h as in ``model.backward``), with
per-step coefficient vectors computed once per step from the stored gates::

    LSTM: dc~ = dc + A dh,  A = o (1 - tc^2)            (tc = tanh(c_t))
          da = [Bo dh, Bi dc~, Bf dc~, Bg dc~],  Bo = tc o (1 - o), Bi = g i (1 - i),
                                                  Bf = c_{t-1} f (1 - f), Bg = i (1 - g^2)
          dh_{t-1} = W_hh^T da,  dc_{t-1} = f dc~
    GRU:  dh_{t-1} = [W_hr; W_hz; W_hn; I]^T ([Cr; Cz; Cn; z] dh),
          Cn = (1 - z)(1 - n^2) r,  Cr = (1 - z)(1 - n^2) gh_n r (1 - r),  Cz = (h_{t-1} - n) z (1 - z)

The forward tangent map (Lyapunov growth) uses the same coefficients: LSTM
``da = W_hh dh; dc' = Bi da_i + Bf da_f + Bg da_g + f dc; dh' = Bo da_o + A dc'``; GRU
``dh' = sum over the four blocks of [Cr; Cz; Cn; z] [W_hr; W_hz; W_hn; I] dh``.

Speed (the per-step cost is numpy call overhead at H = 64, not arithmetic): gate rows are permuted
so that the sigmoid gates are contiguous (LSTM internal order o, i, f, g; GRU r, z, n) and their
rows negated so sigma(a) = 1 / (1 + exp(a')) is three in-place calls on one slice; b_hh rides in
the recurrent gemv as an extra column against a constant 1 appended to h (so the sum is grouped
(W_ih x + b_ih) + (W_hh h + b_hh), as the cells do it); every buffer and every row view is made
once and reused; the backward step is 5 calls (LSTM) or 2 (GRU).

Memory (checkpointing): the forward pass keeps only the state at the start of each chunk of
``chunk`` steps; the backward pass re-runs each chunk's forward from its checkpoint, storing that
chunk's gates, then applies the backward recursion to it. Memory is O(chunk * H + T / chunk * H)
plus the (T + 1,) result, for one extra forward pass. Renormalisation: within a chunk, the vector
is carried unnormalised over blocks of steps whose length comes from a rigorous bound on the
one-step gains (see ``gradtheory._logspace``); each block's last vector is renormalised and its log-norm
added to a compensated running log-scale; a block that would leave the window is redone step by
step with per-step renormalisation.

Callers run these with a single BLAS thread (a (256, 65) gemv is too small to share).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._logspace import HI as _HI
from ._logspace import LO as _LO
from ._logspace import add as _compensated_add
from ._logspace import block_length as _block_length
from ._logspace import norm as _safe_norm
from ._logspace import single_threaded_blas as _single_threaded_blas

__all__ = [
    "CHUNK",
    "GRU",
    "LSTM",
    "CellKernel",
    "GatedLayer",
    "gradient_flow",
    "gru_gradient_flow",
    "gru_log_growth",
    "log_growth",
    "lstm_gradient_flow",
    "lstm_log_growth",
]

# Steps per checkpointed chunk. Its buffers take ~23 H floats per step for LSTM (3 MiB at H = 64,
# cache-sized); at T = 10^6 the checkpoints take T / CHUNK * 2H floats (4 MiB). 64..1024 measured
# within noise of each other at H = 64.
CHUNK = 256
# Relative margin on ||W_hh||_2 from an SVD (accurate to a few u): keeps the gain bound an upper bound.
_NORM_MARGIN = 1.0 + 1e-8


@dataclass(frozen=True)
class GatedLayer:
    """Raw parameters of one LSTM/GRU layer in torch layout (biases ``None`` when bias=False)."""

    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: np.ndarray | None
    b_hh: np.ndarray | None


def _sigmoid_rows_negated(M: np.ndarray, H: int, n_sigmoid: int) -> np.ndarray:
    out = np.array(M, dtype=np.float64)
    out[: n_sigmoid * H] *= -1.0
    return out


class _Kernel:
    """Shared chunk machinery; subclasses define the cell's buffers and step loops."""

    H: int
    S: int  # state dimension (2H for LSTM, H for GRU)
    W_norm: float

    def __init__(self, layer: GatedLayer, order: list[int], n_sigmoid: int, K: int) -> None:
        W_ih, W_hh = (
            np.asarray(layer.W_ih, dtype=np.float64),
            np.asarray(layer.W_hh, dtype=np.float64),
        )
        H = W_hh.shape[1]
        G = len(order)
        rows = np.concatenate([np.arange(k * H, (k + 1) * H) for k in order])
        self.H, self.K = H, K
        b_ih = np.zeros(G * H) if layer.b_ih is None else np.asarray(layer.b_ih, dtype=np.float64)
        b_hh = np.zeros(G * H) if layer.b_hh is None else np.asarray(layer.b_hh, dtype=np.float64)
        # forward: gi' = x W_ih'^T + b_ih'; gh' = [W_hh' | b_hh'] [h; 1]  (sigmoid rows negated)
        self.W_ihT = np.ascontiguousarray(_sigmoid_rows_negated(W_ih[rows], H, n_sigmoid).T)
        self.b_ih = _sigmoid_rows_negated(b_ih[rows], H, n_sigmoid)
        W_aug = np.concatenate([W_hh[rows], b_hh[rows][:, None]], axis=1)
        self.W_fwd = np.ascontiguousarray(_sigmoid_rows_negated(W_aug, H, n_sigmoid))
        self.W = np.ascontiguousarray(W_hh[rows])  # true (permuted) recurrent matrix
        self.W_norm = float(np.linalg.norm(W_hh, 2)) * _NORM_MARGIN
        self.gi = np.empty((K, G * H))
        # row j holds h_{t-1} followed by a constant 1 that multiplies the b_hh column
        self.h = np.zeros((K + 1, H + 1))
        self.h[:, H] = 1.0
        self.h_rows = list(self.h)
        self.h_state = list(self.h[:, :H])
        self.tmp = np.empty(H)
        self.loaded = -1  # chunk whose gates are in the buffers

    def project(self, x: np.ndarray) -> None:
        n = x.shape[0]
        np.matmul(x, self.W_ihT, out=self.gi[:n])
        self.gi[:n] += self.b_ih


# -- LSTM ---------------------------------------------------------------------------------------
class _LSTM(_Kernel):
    def __init__(self, layer: GatedLayer, K: int) -> None:
        # internal gate rows o, i, f, g: sigmoid gates first, o next to the dh-only da block
        super().__init__(layer, order=[3, 0, 1, 2], n_sigmoid=3, K=K)
        H = self.H
        self.S = 2 * H
        self.act = np.empty((K, 4 * H))  # o, i, f, g of step j
        self.c = np.empty((K + 1, H))  # c_{t-1} in row j, c_t in row j + 1
        self.tc = np.empty((K, H))  # tanh(c_t)
        self.P = np.empty((K, 6 * H))  # A, Bo, Bi, Bf, Bg, f
        self.R = np.empty((K, 6 * H))  # da_o, da_i, da_f, da_g, dc_{t-1}, dh_{t-1}
        self.WT = np.ascontiguousarray(self.W.T)
        self.dc_tot = np.empty(H)
        self.Y = np.empty((5, H))
        P, R, act = self.P, self.R, self.act
        self._fwd_views = list(
            zip(
                act,
                act[:, : 3 * H],
                act[:, 3 * H :],
                act[:, :H],
                act[:, H : 2 * H],
                act[:, 2 * H : 3 * H],
                self.c[:-1],
                self.c[1:],
                self.tc,
            )
        )
        P4 = P[:, 2 * H :].reshape(K, 4, H)
        self._bwd_views = list(
            zip(
                P[:, :H],
                P[:, H : 2 * H],
                P4,
                R[:, :H],
                R[:, H : 5 * H].reshape(K, 4, H),
                R[:, : 4 * H],
                R[:, 4 * H : 5 * H],
                R[:, 5 * H :],
            )
        )
        self._tan_views = list(zip(P[:, :H], P[:, H : 5 * H].reshape(K, 4, H), P[:, 5 * H :]))
        self.grad_rows = R[:, 4 * H :]  # (dc_{t-1}, dh_{t-1}): the joint gradient

    def set_state(self, state: np.ndarray) -> None:
        self.h[0, : self.H] = state[: self.H]
        self.c[0] = state[self.H :]

    def get_state(self, n: int) -> np.ndarray:
        return np.concatenate([self.h[n, : self.H], self.c[n]])

    def forward(self, n: int) -> None:
        """Steps j = 0..n-1 of the loaded chunk; gi holds the input projections."""
        Wdot = self.W_fwd.dot
        add, mul, exp, divide, tanh = np.add, np.multiply, np.exp, np.divide, np.tanh
        tmp = self.tmp
        for h_prev, h_new, gi, (a, s, g, o, i, f, c_prev, c, tc) in zip(
            self.h_rows[:n], self.h_state[1 : n + 1], self.gi, self._fwd_views[:n]
        ):
            Wdot(h_prev, a)
            add(a, gi, a)
            exp(s, s)  # rows negated: sigma(a) = 1 / (1 + exp(-a))
            add(s, 1.0, s)
            divide(1.0, s, s)
            tanh(g, g)
            mul(f, c_prev, c)
            mul(i, g, tmp)
            add(c, tmp, c)
            tanh(c, tc)
            mul(o, tc, h_new)

    def states(self, n: int) -> np.ndarray:
        """Rows 1..n of the chunk's states (h_t, c_t), for locating a non-finite one."""
        return np.concatenate([self.h[1 : n + 1, : self.H], self.c[1 : n + 1]], axis=1)

    def coefficients(self, n: int) -> float:
        """Fill P[:n] from the stored gates; return G >= ||J_t||_2 for every step of the chunk."""
        H = self.H
        act, P = self.act[:n], self.P[:n]
        o, i, f, g = (
            act[:, :H],
            act[:, H : 2 * H],
            act[:, 2 * H : 3 * H],
            act[:, 3 * H :],
        )
        tc, c_prev = self.tc[:n], self.c[:n]
        A, Bo, Bi, Bf, Bg, fP = (P[:, k * H : (k + 1) * H] for k in range(6))
        sub, mul = np.subtract, np.multiply
        mul(tc, tc, A)  # A = o (1 - tc^2)
        sub(1.0, A, A)
        mul(A, o, A)
        sub(1.0, o, Bo)  # Bo = tc o (1 - o)
        mul(Bo, o, Bo)
        mul(Bo, tc, Bo)
        sub(1.0, i, Bi)  # Bi = g i (1 - i)
        mul(Bi, i, Bi)
        mul(Bi, g, Bi)
        sub(1.0, f, Bf)  # Bf = c_{t-1} f (1 - f)
        mul(Bf, f, Bf)
        mul(Bf, c_prev, Bf)
        mul(g, g, Bg)  # Bg = i (1 - g^2)
        sub(1.0, Bg, Bg)
        mul(Bg, i, Bg)
        fP[...] = f
        # ||J^T (dh, dc)||^2 = ||W^T da||^2 + ||f dc~||^2, |dc~_j|^2 <= (1 + A_j^2)(dh_j^2 + dc_j^2), and
        # 0 < i, f, o < 1, |g|, |tc| < 1 give |A| <= 1, |Bo|, |Bi| <= 1/4, |Bg| <= 1, |Bf| <= |c_{t-1}| / 4:
        # G^2 = ||W||^2 (1/16 + 2 (1/16 + 1 + max|c_{t-1}|^2 / 16)) + 2.
        c_max = float(np.max(np.abs(c_prev)))
        W = self.W_norm  # G as a hypot: no intermediate overflow
        return math.hypot(
            W * math.sqrt(1 / 16 + 2 * (1 / 16 + 1)),
            W * math.sqrt(2) * c_max / 4,
            math.sqrt(2.0),
        )

    def backward(self, j_hi: int, j_lo: int, v: np.ndarray) -> np.ndarray:
        """Apply J_t^T for rows j_hi-1 down to j_lo from v = (dc, dh); returns the last row (dc, dh)."""
        H = self.H
        WTdot = self.WT.dot
        add, mul = np.add, np.multiply
        tmp, dc_tot = self.tmp, self.dc_tot
        dc, dh = v[:H], v[H:]
        for A, Bo, C4, da_o, R4, da, dc_prev, dh_prev in self._bwd_views[j_lo:j_hi][::-1]:
            mul(dh, A, tmp)
            add(dc, tmp, dc_tot)
            mul(dh, Bo, da_o)
            mul(C4, dc_tot, R4)  # da_i, da_f, da_g and dc_{t-1} = f dc~
            WTdot(da, dh_prev)
            dc, dh = dc_prev, dh_prev
        return self.grad_rows[j_lo]

    def tangent(self, j_lo: int, j_hi: int, v: np.ndarray) -> None:
        """v = (dh, dc) <- J_t v for rows j_lo..j_hi-1, in place."""
        H = self.H
        Wdot = self.W.dot
        add, mul = np.add, np.multiply
        Y, tmp = self.Y, self.tmp
        Y4, Yf, Yo, Ydc = Y[:4], Y[4], Y[0], Y[1:]
        da = np.empty(4 * H)
        da4 = da.reshape(4, H)
        dh, dc = v[:H], v[H:]
        for A, P4, f in self._tan_views[j_lo:j_hi]:
            Wdot(dh, da)
            mul(P4, da4, Y4)  # Bo da_o, Bi da_i, Bf da_f, Bg da_g
            mul(f, dc, Yf)
            np.add.reduce(Ydc, axis=0, out=dc)
            mul(A, dc, tmp)
            add(Yo, tmp, dh)


# -- GRU ----------------------------------------------------------------------------------------
class _GRU(_Kernel):
    def __init__(self, layer: GatedLayer, K: int) -> None:
        super().__init__(layer, order=[0, 1, 2], n_sigmoid=2, K=K)
        H = self.H
        self.S = H
        self.act = np.empty((K, 3 * H))  # r, z, n
        # -(W_hr h + b_hr), -(W_hz h + b_hz), W_hn h + b_hn
        self.gh = np.empty((K, 3 * H))
        self.P = np.empty((K, 4 * H))  # Cr, Cz, Cn, z
        self.R = np.empty((K, 5 * H))  # d_gh_r, d_gh_z, d_gh_n, z dh, dh_{t-1}
        W_aug = np.concatenate([self.W, np.eye(H)])  # [W_hr; W_hz; W_hn; I]
        self.W_aug = np.ascontiguousarray(W_aug)
        self.W_augT = np.ascontiguousarray(W_aug.T)
        self.y = np.empty(4 * H)
        self.Y = np.empty((4, H))
        act, gh, gi, P, R = self.act, self.gh, self.gi, self.P, self.R
        self._fwd_views = list(
            zip(
                gh,
                gh[:, : 2 * H],
                gh[:, 2 * H :],
                act[:, : 2 * H],
                act[:, :H],
                act[:, H : 2 * H],
                act[:, 2 * H :],
                gi[:, : 2 * H],
                gi[:, 2 * H :],
            )
        )
        self._bwd_views = list(
            zip(
                P.reshape(K, 4, H),
                R[:, : 4 * H].reshape(K, 4, H),
                R[:, : 4 * H],
                R[:, 4 * H :],
            )
        )
        self._tan_views = list(P.reshape(K, 4, H))
        self.grad_rows = R[:, 4 * H :]

    def set_state(self, state: np.ndarray) -> None:
        self.h[0, : self.H] = state

    def get_state(self, n: int) -> np.ndarray:
        return self.h[n, : self.H].copy()

    def states(self, n: int) -> np.ndarray:
        return self.h[1 : n + 1, : self.H]

    def forward(self, steps: int) -> None:
        Wdot = self.W_fwd.dot
        add, sub, mul, exp, divide, tanh = (
            np.add,
            np.subtract,
            np.multiply,
            np.exp,
            np.divide,
            np.tanh,
        )
        tmp = self.tmp
        for h_aug, h_prev, h_new, (gh, gh_rz, gh_n, rz, r, z, n, gi_rz, gi_n) in zip(
            self.h_rows[:steps],
            self.h_state[:steps],
            self.h_state[1 : steps + 1],
            self._fwd_views[:steps],
        ):
            Wdot(h_aug, gh)
            add(gh_rz, gi_rz, rz)
            exp(rz, rz)  # rows negated: sigma(a) = 1 / (1 + exp(-a))
            add(rz, 1.0, rz)
            divide(1.0, rz, rz)
            mul(r, gh_n, n)
            add(n, gi_n, n)
            tanh(n, n)
            sub(h_prev, n, tmp)  # h_t = n + z (h_{t-1} - n)
            mul(z, tmp, tmp)
            add(n, tmp, h_new)

    def coefficients(self, steps: int) -> float:
        H = self.H
        act, P = self.act[:steps], self.P[:steps]
        r, z, n = act[:, :H], act[:, H : 2 * H], act[:, 2 * H :]
        gh_n, h_prev = self.gh[:steps, 2 * H :], self.h[:steps, :H]
        Cr, Cz, Cn, zP = (P[:, k * H : (k + 1) * H] for k in range(4))
        sub, mul = np.subtract, np.multiply
        mul(n, n, Cn)  # Cn = (1 - z)(1 - n^2) r
        sub(1.0, Cn, Cn)
        sub(1.0, z, Cz)
        mul(Cn, Cz, Cn)
        mul(Cn, gh_n, Cr)  # Cr = (1 - z)(1 - n^2) gh_n r (1 - r)
        mul(Cn, r, Cn)
        mul(Cr, r, Cr)
        sub(1.0, r, zP)
        mul(Cr, zP, Cr)
        mul(Cz, z, Cz)  # Cz = (h_{t-1} - n) z (1 - z)
        sub(h_prev, n, zP)
        mul(Cz, zP, Cz)
        zP[...] = z
        # ||J^T u|| <= ||W^T (C u)|| + ||z u||, ||C u||^2 <= max_j (Cr^2 + Cz^2 + Cn^2) ||u||^2, and
        # 0 < r, z < 1, |n| < 1 give |Cr| <= |gh_n| / 4, |Cz| <= (|h_{t-1}| + 1) / 4, |Cn| <= 1:
        # G = ||W|| sqrt(max|gh_n|^2 / 16 + (max|h_{t-1}| + 1)^2 / 16 + 1) + 1.
        gh_max = float(np.max(np.abs(gh_n)))
        h_max = float(np.max(np.abs(h_prev)))
        hyp = math.hypot(gh_max / 4, (h_max + 1.0) / 4, 1.0)  # no intermediate overflow
        return self.W_norm * hyp + 1.0

    def backward(self, j_hi: int, j_lo: int, v: np.ndarray) -> np.ndarray:
        WTdot = self.W_augT.dot
        mul = np.multiply
        dh = v
        for C4, R4, d_gh, dh_prev in self._bwd_views[j_lo:j_hi][::-1]:
            mul(C4, dh, R4)  # d_gh_r, d_gh_z, d_gh_n, z dh
            WTdot(d_gh, dh_prev)  # W_hh^T d_gh + z dh
            dh = dh_prev
        return self.grad_rows[j_lo]

    def tangent(self, j_lo: int, j_hi: int, v: np.ndarray) -> None:
        Wdot = self.W_aug.dot
        mul, reduce = np.multiply, np.add.reduce
        y, Y = self.y, self.Y
        y4 = y.reshape(4, -1)
        for C4 in self._tan_views[j_lo:j_hi]:
            Wdot(v, y)  # W_hr v, W_hz v, W_hn v, v
            mul(C4, y4, Y)
            reduce(Y, axis=0, out=v)


# -- drivers ------------------------------------------------------------------------------------
def _run_forward(kern: _Kernel, x: np.ndarray, m: int) -> int:
    """Forward over chunk m from the state in row 0; returns its length; checks finiteness."""
    K = kern.K
    lo = m * K
    xs = x[lo : lo + K]
    n = xs.shape[0]
    kern.project(xs)
    kern.forward(n)
    # NaN and inf propagate to the chunk's end
    if not np.all(np.isfinite(kern.get_state(n))):
        bad = int(np.argwhere(~np.isfinite(kern.states(n)))[0, 0])
        raise FloatingPointError(f"the forward pass overflowed at step t={lo + bad + 1} (state not finite)")
    kern.loaded = m
    return n


def _gradient_flow(kern: _Kernel, x: np.ndarray, state0: np.ndarray, readout: np.ndarray) -> np.ndarray:
    T, K, S, H = x.shape[0], kern.K, kern.S, kern.H
    out = np.full(T + 1, -np.inf)
    r_norm = _safe_norm(readout)
    if r_norm == 0.0:
        return out
    n_chunks = -(-T // K)
    checkpoints = np.empty((n_chunks, S))
    state = np.asarray(state0, dtype=np.float64)
    # exp overflow is sigma's limit 0; non-finite states are reported
    with np.errstate(over="ignore", invalid="ignore"):
        for m in range(n_chunks):
            checkpoints[m] = state
            kern.set_state(state)
            n = _run_forward(kern, x, m)
            state = kern.get_state(n)
    out[T] = math.log(r_norm)
    v = np.zeros(S)
    v[S - H :] = readout / r_norm  # (dc, dh) for LSTM, dh for GRU
    carried = _Carried(v, math.log(r_norm), 0.0, np.empty(K))
    for m in range(n_chunks - 1, -1, -1):
        if kern.loaded != m:
            kern.set_state(checkpoints[m])
            with np.errstate(over="ignore", invalid="ignore"):
                _run_forward(kern, x, m)
        lo = m * K
        n = min(K, T - lo)
        # non-finite norms are reported
        with np.errstate(over="ignore", invalid="ignore"):
            zero_below = carried.backward_chunk(kern, n, _block_length(kern.coefficients(n), K), lo)
        rows = kern.grad_rows[:n]
        with np.errstate(divide="ignore"):
            out[lo : lo + n] = 0.5 * np.log(np.einsum("ij,ij->i", rows, rows)) + carried.logscale[:n]
        if zero_below >= 0:
            out[: lo + zero_below + 1] = -np.inf
            break
    return out


@dataclass
class _Carried:
    """The backward pass's unit vector v, its log-scale L (+ compensation comp), and the
    log-scale of each row of the current chunk."""

    v: np.ndarray
    L: float
    comp: float
    logscale: np.ndarray

    def backward_chunk(self, kern: _Kernel, n: int, Kb: int, offset: int) -> int:
        """Rows n-1..0 of the loaded chunk (steps offset+n..offset+1) in blocks of Kb steps;
        returns the row at which the gradient became exactly 0, or -1."""
        k = n
        while k > 0:
            lo = max(0, k - Kb)
            u = kern.backward(k, lo, self.v)
            nrm = math.sqrt(float(np.dot(u, u)))
            if _LO <= nrm <= _HI:
                self.logscale[lo:k] = self.L + self.comp
                self.v = u / nrm
                self.L, self.comp = _compensated_add(self.L, self.comp, math.log(nrm))
            else:  # redo the block one step at a time, renormalising each step
                for j in range(k - 1, lo - 1, -1):
                    row = kern.backward(j + 1, j, self.v)
                    nrm = _safe_norm(row)
                    if nrm == 0.0:
                        return j
                    if not math.isfinite(nrm):
                        raise FloatingPointError(
                            f"one backward step overflowed at t={offset + j + 1} (||J_t|| too large for float64)"
                        )
                    row /= nrm
                    self.L, self.comp = _compensated_add(self.L, self.comp, math.log(nrm))
                    self.logscale[j] = self.L + self.comp
                    self.v = row.copy()
            k = lo
        return -1


def _log_growth(kern: _Kernel, x: np.ndarray, state0: np.ndarray, v0: np.ndarray, every: int) -> float:
    T, K = x.shape[0], kern.K
    total, comp = 0.0, 0.0
    v = np.array(v0, dtype=np.float64)
    kern.set_state(np.asarray(state0, dtype=np.float64))
    # exp overflow is sigma's limit 0; non-finite states and norms are reported
    with np.errstate(over="ignore", invalid="ignore"):
        for m in range(-(-T // K)):
            n = _run_forward(kern, x, m)
            Kb = _block_length(kern.coefficients(n), every)
            t = 0
            while t < n:
                hi = min(n, t + Kb)
                start = v.copy()
                kern.tangent(t, hi, v)
                nrm = math.sqrt(float(np.dot(v, v)))
                if _LO <= nrm <= _HI:
                    total, comp = _compensated_add(total, comp, math.log(nrm))
                    v /= nrm
                else:
                    v[...] = start
                    for j in range(t, hi):
                        kern.tangent(j, j + 1, v)
                        nrm = _safe_norm(v)
                        if nrm == 0.0:
                            return -math.inf
                        if not math.isfinite(nrm):
                            raise FloatingPointError(
                                f"one tangent step overflowed at t={m * K + j + 1} (||J_t|| too large for float64)"
                            )
                        total, comp = _compensated_add(total, comp, math.log(nrm))
                        v /= nrm
                t = hi
            kern.set_state(kern.get_state(n))
    return total + comp


# -- entry points -------------------------------------------------------------------------------
def lstm_gradient_flow(
    layer: GatedLayer,
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    readout: np.ndarray,
    *,
    chunk: int = CHUNK,
) -> np.ndarray:
    r"""ln||(dL/dh_k, dL/dc_k)||, k = 0..T, for L = <readout, h_T> (c's gradient at fixed h).

    ``x`` (T, I) float64, ``h0``, ``c0``, ``readout`` (H,). Exactly zero gradients give -inf.
    Raises FloatingPointError if the forward state stops being finite.
    """
    return _gradient_flow(_LSTM(layer, chunk), x, np.concatenate([h0, c0]), readout)


def gru_gradient_flow(
    layer: GatedLayer,
    x: np.ndarray,
    h0: np.ndarray,
    readout: np.ndarray,
    *,
    chunk: int = CHUNK,
) -> np.ndarray:
    r"""ln||dL/dh_k||, k = 0..T, for L = <readout, h_T>. As :func:`lstm_gradient_flow`."""
    return _gradient_flow(_GRU(layer, chunk), x, h0, readout)


def lstm_log_growth(
    layer: GatedLayer,
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    v0: np.ndarray,
    *,
    every: int,
    chunk: int = CHUNK,
) -> float:
    r"""ln||J_T ... J_1 v0|| for the joint state (h, c) (v0 of shape (2H,), h part first);
    renormalised at least every ``every`` steps (more often if the gain bound requires); -inf if
    the product annihilates v0."""
    return _log_growth(_LSTM(layer, chunk), x, np.concatenate([h0, c0]), v0, every)


def gru_log_growth(
    layer: GatedLayer,
    x: np.ndarray,
    h0: np.ndarray,
    v0: np.ndarray,
    *,
    every: int,
    chunk: int = CHUNK,
) -> float:
    r"""ln||J_T ... J_1 v0|| for the GRU (v0 of shape (H,)). As :func:`lstm_log_growth`."""
    return _log_growth(_GRU(layer, chunk), x, h0, v0, every)


def gradient_flow(kind: str, layer: GatedLayer, x: np.ndarray, states0: tuple, readout: np.ndarray) -> np.ndarray:
    """Dispatch on ``kind`` ("lstm": states0 = (h0, c0); "gru": states0 = (h0,))."""
    if kind == "lstm":
        return lstm_gradient_flow(layer, x, states0[0], states0[1], readout)
    return gru_gradient_flow(layer, x, states0[0], readout)


def log_growth(
    kind: str,
    layer: GatedLayer,
    x: np.ndarray,
    states0: tuple,
    v0: np.ndarray,
    every: int,
) -> float:
    """Dispatch on ``kind`` as :func:`gradient_flow`; v0 in the model's state order ((h, c) for LSTM)."""
    if kind == "lstm":
        return lstm_log_growth(layer, x, states0[0], states0[1], v0, every=every)
    return gru_log_growth(layer, x, states0[0], v0, every=every)


class CellKernel:
    """The interface :mod:`gradtheory.flow` reads from a registry entry's ``fast_kernel``
    (``"gradtheory._gated_kernels:LSTM"`` / ``":GRU"``): the model's layer 0 in torch layout,
    run with one BLAS thread."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def gradient_flow(self, model, x: np.ndarray, states0: tuple, readout: np.ndarray) -> np.ndarray:
        with _single_threaded_blas():
            return gradient_flow(self.kind, GatedLayer(*model.layer_params(0, 0)), x, states0, readout)

    def lyapunov_exponent(self, model, x: np.ndarray, states0: tuple, v: np.ndarray, every: int) -> float:
        with _single_threaded_blas():
            growth = log_growth(self.kind, GatedLayer(*model.layer_params(0, 0)), x, states0, v, every)
        return growth / x.shape[0]


LSTM = CellKernel("lstm")
GRU = CellKernel("gru")
