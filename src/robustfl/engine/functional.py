"""A model seen as a function of one flat parameter vector, and the two ways to differentiate it.

``FlatModel.loss(params, x, y)`` is the mean cross-entropy of the model with parameters
``unflatten(params)`` (``torch.func.functional_call``), so client steps work on flat vectors only.
``vmap_grad_fn`` (``torch.func.grad_and_value``) composes with ``torch.func.vmap`` over clients;
``loop_grad_fn`` uses ``torch.autograd.grad`` and serves any model, including batch norm in training mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value

from robustfl.algorithms.base import GradFn
from robustfl.layout import ParameterLayout
from robustfl.utils import flatten, unflatten


class FlatModel:
    """Wraps ``model`` so it is called with a flat parameter vector ``params: Tensor[d]``.

    Buffers (batch-norm running statistics) stay on the module and are not part of ``params``.
    The training loss is the cross-entropy with ``label_smoothing`` (Szegedy et al., CVPR 2016).
    """

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0) -> None:
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("model has no trainable parameters; pass an nn.Module with parameters")
        self.model = model
        self.names = [name for name, _ in named]
        self.shapes = [p.detach() for _, p in named]
        self.dim = sum(p.numel() for _, p in named)
        self.layout = ParameterLayout.of(model)

    def flat_params(self) -> Tensor:
        """The model's current parameters as one flat vector (a copy)."""
        return flatten(p.detach() for p in dict(self.model.named_parameters()).values()).clone()

    def load_flat(self, params: Tensor) -> None:
        """Copy the flat vector ``params`` into the module's parameters."""
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in zip(self.names, unflatten(params, self.shapes), strict=True):
                named[name].copy_(value)

    def logits(self, params: Tensor, x: Tensor) -> Tensor:
        """The model's output on ``x`` with parameters ``params`` (module buffers as they are)."""
        return self._logits(tuple(unflatten(params, self.shapes)), x)

    def _logits(self, tensors: tuple[Tensor, ...], x: Tensor) -> Tensor:
        out: Tensor = functional_call(self.model, dict(zip(self.names, tensors, strict=True)), (x,))
        return out

    def _loss(self, tensors: tuple[Tensor, ...], x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self._logits(tensors, x), y, label_smoothing=self.label_smoothing)

    def loss(self, params: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy of the minibatch ``(x, y)``."""
        return self._loss(tuple(unflatten(params, self.shapes)), x, y)

    def write_flat(self, tensors: tuple[Tensor, ...], out: Tensor) -> Tensor:
        """Copy per-layer tensors into their slices of the flat vector ``out`` (the parameter layout's
        offsets) and return ``out``: the layer-by-layer ``copy_`` that replaces ``torch.cat``."""
        for slot, value in zip(self.layout, tensors, strict=True):
            out[slot.offset : slot.offset + slot.numel].view(slot.shape).copy_(value)
        return out

    # Both gradient functions differentiate with respect to the per-layer tensors and write the result
    # layer by layer into a flat vector: differentiating through the slices of the flat vector would
    # allocate a zero [d] gradient per layer (per client under vmap) and add them up, which costs more
    # than the backward pass itself; ``torch.cat`` of the per-layer gradients (a linear layer's weight
    # gradient comes transposed) costs about 3x a ``copy_`` into the slices (CPU, MLP 784-200-200-10).
    # ``first``, when given, receives the first gradient of the client step (an executor passes the
    # client's row of its message buffer); later calls write into new vectors, so a client step that
    # holds two gradients at once (Mime) never sees one overwritten.
    def vmap_grad_fn(self, first: Tensor | None = None) -> GradFn:
        """``(params, x, y) -> (grad, loss)`` via ``torch.func``; composes with ``vmap``."""
        grad_of_tensors = grad_and_value(self._loss)
        spare = [] if first is None else [first]

        def grad_fn(params: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            grads, loss = grad_of_tensors(tuple(unflatten(params, self.shapes)), x, y)
            # the loss depends on the client's data, so it is batched under vmap (a parameter the
            # loss does not use has an unbatched zero gradient: no vector to allocate from)
            out = spare.pop() if spare else loss.new_empty(self.dim, dtype=grads[0].dtype)
            return self.write_flat(grads, out), loss

        return grad_fn

    def loop_grad_fn(self, first: Tensor | None = None) -> GradFn:
        """``(params, x, y) -> (grad, loss)`` via ``torch.autograd.grad``; one client at a time."""
        spare = [] if first is None else [first]

        def grad_fn(params: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            leaves = tuple(t.detach().requires_grad_(True) for t in unflatten(params, self.shapes))
            loss = self._loss(leaves, x, y)
            grads = torch.autograd.grad(loss, leaves)
            out = spare.pop() if spare else grads[0].new_empty(self.dim)
            return self.write_flat(grads, out), loss.detach()

        return grad_fn


def vmap_blocker(model: nn.Module) -> str | None:
    """Why ``vmap`` over clients cannot serve ``model`` in training mode, or ``None`` if nothing is known.

    Batch norm in training mode updates its running statistics in place, which ``vmap`` rejects; fused
    recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``) have no batching rule, so ``vmap`` would run
    them one sample at a time, slower than the loop over clients.
    """
    for name, module in model.named_modules():
        label = name or type(module).__name__
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
        if is_bn and module.training and module.track_running_stats:
            return f"module {label!r} is batch norm in training mode"
        if isinstance(module, nn.RNNBase):
            return f"module {label!r} is a fused recurrent layer ({type(module).__name__}): no batching rule under vmap"
    return None
