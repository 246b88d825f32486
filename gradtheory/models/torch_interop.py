"""Interop with ``torch.nn.RNN``, ``LSTM`` and ``GRU``: same parameter names, same layouts; and the
torch twin (:class:`._torch_twin.TorchTwin`) of registered cells that torch has no module for.

torch is imported here only, and only when a conversion is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .compose import RecurrentModel

__all__ = ["from_torch", "to_torch"]


def from_torch(module: Any) -> RecurrentModel:
    """Build the numpy twin of a ``torch.nn.RNN``/``LSTM``/``GRU`` with identical float64 weights.

    Raises ``TypeError`` for anything else, ``NotImplementedError`` for ``proj_size > 0`` and
    for dropout between layers on a module in training mode.
    """
    import torch

    from .. import cells

    if type(module).__name__ in ("TorchTwin", "ParametrizedTorchTwin"):  # (torch.nn.utils.parametrize renames)
        from ._torch_twin import TorchTwin

        if isinstance(module, TorchTwin):
            return _from_twin(module)
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
        params = {
            name: getattr(module, name).detach().cpu().to(torch.float64).numpy().copy()
            for name in _weight_names(module)
        }
    kwargs: dict[str, Any] = dict(
        bias=module.bias,
        batch_first=module.batch_first,
        bidirectional=module.bidirectional,
        params=params,
    )
    base, extra = _TORCH_MODES.get(mode, (mode, {}))
    spec = next((s for s in cells.REGISTRY.values() if s.torch_mode == base), None)  # the registered twin
    if spec is None:
        raise NotImplementedError(f"torch RNN mode {mode!r} is not supported")
    return spec.model(module.input_size, module.hidden_size, module.num_layers, **extra, **kwargs)


# torch.nn.RNN's modes carry the nonlinearity
_TORCH_MODES: dict[str, tuple[str, dict[str, str]]] = {
    "RNN_TANH": ("RNN", {"nonlinearity": "tanh"}),
    "RNN_RELU": ("RNN", {"nonlinearity": "relu"}),
}


def _from_twin(module: Any) -> RecurrentModel:
    import torch

    from .. import cells

    spec = cells.get(module.cell_name)
    params = {name: p.detach().cpu().to(torch.float64).numpy().copy() for name, p in module.named_parameters()}
    extra = {} if module.nonlinearity is None else {"nonlinearity": module.nonlinearity}
    extra.update(getattr(module.cell, "hyperparameters", {}))  # e.g. eps, gamma of AntisymmetricRNN
    return spec.model(
        module.input_size,
        getattr(module, "size_argument", module.hidden_size),  # a model whose size argument is not H
        module.num_layers,
        bias=module.bias,
        batch_first=module.batch_first,
        bidirectional=module.bidirectional,
        params=params,
        **extra,
    )


def _weight_names(module: Any) -> list[str]:
    """torch's parameter names of an nn.RNN/LSTM/GRU (also when parametrized), in torch's order."""
    names = []
    for layer in range(module.num_layers):
        for d in range(2 if module.bidirectional else 1):
            sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
            names += ["weight_ih" + sfx, "weight_hh" + sfx] + (
                ["bias_ih" + sfx, "bias_hh" + sfx] if module.bias else []
            )
    return names


def to_torch(model: RecurrentModel) -> Any:
    """Return a float64 torch module with the weights of ``model``: ``torch.nn.RNN``/``LSTM``/``GRU``,
    or for a registered cell with a ``torch_step`` (residual, highway, IndRNN, ...) or a
    ``torch_layer`` (:class:`gradtheory.LRU`, :class:`gradtheory.SelectiveSSM`) its torch twin.

    ``NotImplementedError`` for models torch has no module for and whose cell has no
    ``torch_step`` (and for a sigmoid/identity RNN: ``torch.nn.RNN`` has only tanh and relu).
    """
    import torch

    from .. import cells

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
    spec = cells.spec_of(model.cell)
    if spec is None or type(model) is not spec.model:
        raise NotImplementedError(f"torch has no module equivalent to {type(model).__name__}")
    if spec.torch_mode is not None:  # a torch.nn module is the twin
        extra = {}
        if spec.torch_mode == "RNN":
            nonlinearity = getattr(model, "nonlinearity", None)
            if nonlinearity not in ("tanh", "relu"):
                raise NotImplementedError(f"torch.nn.RNN has no nonlinearity={nonlinearity!r} (only 'tanh' and 'relu')")
            extra = {"nonlinearity": nonlinearity}
        module = getattr(torch.nn, spec.torch_mode)(model.input_size, model.hidden_size, **extra, **common)
    elif hasattr(model.cell, "torch_step") or hasattr(model.cell, "torch_layer"):
        from ._torch_twin import TorchTwin

        module = TorchTwin(
            model.cell,
            spec.name,
            model.input_size,
            model.hidden_size,
            nonlinearity=getattr(model, "nonlinearity", None),
            **common,
        )
        module.size_argument = getattr(model, "size_argument", model.hidden_size)
    else:
        raise NotImplementedError(f"torch has no module equivalent to {type(model).__name__}")
    if model.parametrizations:  # e.g. OrthogonalRNN: weight_hh = expm(A - A^T), A the free parameter
        from torch.nn.utils import parametrize

        for name in list(dict(module.named_parameters())):
            P = model._parametrization_of(name)
            if P is not None:
                parametrize.register_parametrization(module, name, P.torch_module(), unsafe=True)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(np.asarray(model.params[name])))
    return module
