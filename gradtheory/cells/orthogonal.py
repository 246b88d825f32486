r"""Orthogonal RNN in the expRNN parametrization (Arjovsky, Shah & Bengio 2016; Lezcano-Casado &
Martinez-Rubio 2019): an Elman cell whose recurrent matrix is the exponential of a skew matrix.

.. math::
    W_{hh} = \exp(S), \quad S = A - A^\top, \qquad
    h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(\phi'(a_t))\, W_{hh}, \qquad
    \frac{\partial L}{\partial A} = D - D^\top, \quad D = L_{\exp}(S^\top, G)

with :math:`G = \partial L/\partial W_{hh}` (the Elman BPTT gradient) and :math:`L_{\exp}(X, E)` the
Fréchet derivative of the exponential at :math:`X` in direction :math:`E`: the adjoint of
:math:`E \mapsto L_{\exp}(S, E)` under :math:`\langle X, Y\rangle = \operatorname{tr}(X^\top Y)`
is :math:`G \mapsto L_{\exp}(S^\top, G)` (``proofs/orthogonal.tex``), computed as the upper right
block of :math:`\exp\begin{pmatrix} S^\top & G \\ 0 & S^\top\end{pmatrix}`.

The free parameter is stored under torch's parametrization name
``parametrizations.weight_hh_l0.original`` (what ``torch.nn.utils.parametrize`` calls it); the
torch twin registers :class:`ExpSkew`'s torch module on ``weight_hh`` (``torch.linalg.matrix_exp``).
Since :math:`\exp(S)^\top\exp(S) = \exp(-S)\exp(S) = I`, :math:`\|W_{hh}\|_2 = 1`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np

from ..models.compose import ActivationModel, parametrized_name
from ._base import CellSpec, torch_activation
from .rnn import ElmanCell

__all__ = ["SPEC", "ExpSkew", "OrthogonalCell", "OrthogonalRNN", "expm", "expm_frechet_adjoint"]


def expm(X: np.ndarray) -> np.ndarray:
    """The matrix exponential (scipy's scaling and squaring with Pade approximants; real or complex:
    a rational function of X with squarings, so it extends analytically and the complex step holds)."""
    import scipy.linalg

    return scipy.linalg.expm(X)


def expm_frechet_adjoint(S: np.ndarray, G: np.ndarray) -> np.ndarray:
    r"""The adjoint of the Fréchet derivative of ``expm`` at ``S`` applied to ``G``: the matrix
    :math:`D` with :math:`\langle D, E\rangle = \langle G, L_{\exp}(S, E)\rangle` for every ``E``,
    i.e. :math:`D = L_{\exp}(S^\top, G)`, the upper right block of ``expm([[S^T, G], [0, S^T]])``."""
    n = S.shape[0]
    block = np.zeros((2 * n, 2 * n), dtype=np.result_type(S, G))
    block[:n, :n] = S.T
    block[n:, n:] = S.T
    block[:n, n:] = G
    return expm(block)[:n, n:]


class ExpSkew:
    r"""The expRNN parametrization :math:`W = \exp(A - A^\top)` (orthogonal, determinant 1)."""

    def forward(self, value: np.ndarray) -> np.ndarray:
        return expm(value - value.T)

    def vjp(self, value: np.ndarray, d_weight: np.ndarray) -> np.ndarray:
        D = expm_frechet_adjoint(value - value.T, d_weight)
        return D - D.T

    def torch_module(self) -> Any:
        import torch

        class _ExpSkew(torch.nn.Module):
            def forward(self, A):
                return torch.linalg.matrix_exp(A - A.T)

        return _ExpSkew()


class OrthogonalCell(ElmanCell):
    """The Elman step (the recurrent matrix arrives already formed as expm(A - A^T)). State: (h,)."""

    name = "orthogonal"

    def torch_step(self, gi: Any, gh: Any, state: tuple) -> tuple:
        """The step in torch operations (the torch twin; gh = W_hh h_{t-1} + b_hh)."""
        return (torch_activation(self.activation.name)(gi + gh),)


class OrthogonalRNN(ActivationModel):
    r"""Elman RNN with :math:`W_{hh} = \exp(A - A^\top)` (expRNN); the gradient is taken with respect to :math:`A`.

    Parameters are torch's: ``weight_ih_l{k}``, biases, and ``parametrizations.weight_hh_l{k}.original``
    (the free matrix :math:`A`, shape (H, H)). ``nonlinearity``: ``tanh`` (default), ``relu``,
    ``sigmoid``, ``identity`` (expRNN uses modrelu; not provided).
    """

    mode = "OrthogonalRNN"
    cell_class = OrthogonalCell
    parametrizations = MappingProxyType({"weight_hh": ExpSkew()})

    def unparametrized(self) -> Any:
        """The Elman :class:`~gradtheory.RNN` with ``weight_hh = expm(A - A^T)``: same outputs; its
        gradients are those with respect to ``W_hh`` itself."""
        from .rnn import RNN

        params = {}
        for k, v in self.params.items():
            if k.startswith("parametrizations."):
                weight = k[len("parametrizations.") : -len(".original")]
                params[weight] = self.parametrizations["weight_hh"].forward(v)
            else:
                params[k] = v
        kw = dict(bias=self.bias, batch_first=self.batch_first, bidirectional=self.bidirectional)
        model = RNN(
            self.input_size, self.hidden_size, self.num_layers, nonlinearity=self.nonlinearity, params=params, **kw
        )
        assert parametrized_name("weight_hh_l0") in self.params
        return model


SPEC = CellSpec("orthogonal", OrthogonalCell, OrthogonalRNN, nonlinearities=("tanh", "relu", "sigmoid", "identity"))
