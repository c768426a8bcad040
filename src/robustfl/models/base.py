"""The ``MODELS`` registry, ``build_model`` and small model utilities.

Every model is built from the data's ``input_shape`` and ``num_classes``, so any model runs on any
data set whose inputs it can read. Models avoid in-place operations on parameters so that
``torch.func.functional_call`` + ``vmap`` + ``grad`` work on them. Models with BatchNorm cannot be
vmapped in training mode and the fused LSTM is faster in a loop: ``prefers_loop`` tells the engine
to take its per-client loop for those.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from torch import nn

from robustfl.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` for inputs of ``input_shape`` and ``num_classes`` outputs."""
    if (
        not isinstance(input_shape, tuple | list)
        or not input_shape
        or not all(isinstance(s, int) and s > 0 for s in input_shape)
    ):
        raise ValueError(
            f"input_shape must be a tuple of positive ints such as (1, 28, 28), got {input_shape!r}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return MODELS.get(name, input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)


def num_parameters(model: nn.Module) -> int:
    """The number of trainable scalars (the length of the flat message vector)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def uses_batchnorm(model: nn.Module) -> bool:
    """True if ``model`` has a BatchNorm layer (its training-mode forward cannot be vmapped over clients)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def prefers_loop(model: nn.Module) -> bool:
    """True if per-client gradients should be computed in a loop rather than with ``vmap``.

    BatchNorm layers cannot run under ``vmap`` in training mode; fused recurrent kernels (``nn.LSTM``,
    ``nn.GRU``) have no batching rule, so ``vmap`` would fall back to a slower per-sample loop.
    """
    return uses_batchnorm(model) or any(isinstance(m, nn.RNNBase) for m in model.modules())


def uses_dropout(model: nn.Module) -> bool:
    """True if ``model`` has a Dropout layer (under ``vmap`` it needs ``randomness="different"``)."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())


def model_summary(model: nn.Module) -> Table:
    """A rich table: one row per parameter tensor (name, shape, count) and the total."""
    table = Table(title=type(model).__name__)
    table.add_column("parameter")
    table.add_column("shape")
    table.add_column("count", justify="right")
    for name, p in model.named_parameters():
        table.add_row(name, "×".join(map(str, p.shape)), f"{p.numel():,}")
    table.add_row("total", "", f"{num_parameters(model):,}", style="bold")
    return table
