"""Interop with ``torch.nn.RNN``, ``LSTM`` and ``GRU``: same parameter names, same layouts.

torch is imported here only, and only when a conversion is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .compose import GRU, LSTM, RNN, RecurrentModel

__all__ = ["from_torch", "to_torch"]


def from_torch(module: Any) -> RecurrentModel:
    """Build the numpy twin of a ``torch.nn.RNN``/``LSTM``/``GRU`` with identical float64 weights.

    Raises ``TypeError`` for anything else, ``NotImplementedError`` for ``proj_size > 0`` and
    for dropout between layers on a module in training mode.
    """
    import torch

    if not isinstance(module, torch.nn.RNNBase):
        raise TypeError(
            f"module must be a torch.nn.RNN, LSTM or GRU instance, got {type(module).__name__}"
            " (subclasses are accepted; for a cell stepping one x_t at a time use gradtheory.from_torch_cell)"
        )
    mode = module.mode
    if getattr(module, "proj_size", 0):
        raise NotImplementedError(f"proj_size={module.proj_size} (LSTM projections) is not supported")
    if module.dropout and module.training and module.num_layers > 1:
        raise NotImplementedError(
            f"dropout={module.dropout} in training mode is not supported (call module.eval() or use dropout=0)"
        )
    # getattr, not named_parameters(): with torch.nn.utils.parametrize (orthogonal, spectral_norm)
    # the parameters are stored as parametrizations.<name>.original while <name> is the value used.
    with torch.no_grad():
        params = {name: getattr(module, name).detach().cpu().to(torch.float64).numpy().copy()
                  for name in _weight_names(module)}
    kwargs: dict[str, Any] = dict(
        bias=module.bias,
        batch_first=module.batch_first,
        bidirectional=module.bidirectional,
        params=params,
    )
    if mode in ("RNN_TANH", "RNN_RELU"):
        return RNN(module.input_size, module.hidden_size, module.num_layers,
                   nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kwargs)
    if mode == "LSTM":
        return LSTM(module.input_size, module.hidden_size, module.num_layers, **kwargs)
    if mode == "GRU":
        return GRU(module.input_size, module.hidden_size, module.num_layers, **kwargs)
    raise NotImplementedError(f"torch RNN mode {mode!r} is not supported")


def _weight_names(module: Any) -> list[str]:
    """torch's parameter names of an nn.RNN/LSTM/GRU (also when parametrized), in torch's order."""
    names = []
    for layer in range(module.num_layers):
        for d in range(2 if module.bidirectional else 1):
            sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
            names += ["weight_ih" + sfx, "weight_hh" + sfx] + (["bias_ih" + sfx, "bias_hh" + sfx] if module.bias else [])
    return names


def to_torch(model: RecurrentModel) -> Any:
    """Return a float64 ``torch.nn.RNN``/``LSTM``/``GRU`` with the weights of ``model``.

    ``NotImplementedError`` for models torch has no module for (sigmoid/identity RNN, residual,
    highway).
    """
    import torch

    if not isinstance(model, RecurrentModel):
        raise TypeError(f"model must be a gradtheory RNN, LSTM or GRU, got {type(model).__name__}")
    module: Any
    common: dict[str, Any] = dict(
        num_layers=model.num_layers,
        bias=model.bias,
        batch_first=model.batch_first,
        bidirectional=model.bidirectional,
        dtype=torch.float64,
    )
    if type(model) is RNN:
        if model.nonlinearity not in ("tanh", "relu"):
            raise NotImplementedError(
                f"torch.nn.RNN has no nonlinearity={model.nonlinearity!r} (only 'tanh' and 'relu')"
            )
        module = torch.nn.RNN(model.input_size, model.hidden_size, nonlinearity=model.nonlinearity, **common)
    elif type(model) is LSTM:
        module = torch.nn.LSTM(model.input_size, model.hidden_size, **common)
    elif type(model) is GRU:
        module = torch.nn.GRU(model.input_size, model.hidden_size, **common)
    else:
        raise NotImplementedError(f"torch has no module equivalent to {type(model).__name__}")
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(np.asarray(model.params[name])))
    return module
