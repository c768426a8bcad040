"""Local training for FedMA: the request a trainer receives and a default plain-PyTorch SGD trainer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class TrainRequest:
    """Train ``model`` in place on ``(x, y)``, updating only the parameters named in ``trainable``.

    ``stage`` is ``"local"`` (every layer, before a FedMA pass) or ``"retrain"`` (the layers after the
    frozen matched ones, Algorithm 3); ``last_layer_only`` marks the retraining of the classifier alone.
    """

    model: nn.Module
    x: Tensor
    y: Tensor
    trainable: frozenset[str]
    stage: str
    last_layer_only: bool
    client: int
    generator: torch.Generator


Trainer = Callable[[TrainRequest], None]


def _check(name: str, value: object, low: float, integer: bool = False) -> None:
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not value >= low:
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'} >= {low}, got {value!r}")


@dataclass(frozen=True)
class SGDTrainer:
    """Minibatch SGD with momentum and cross-entropy, the optimiser of the chapter's Table 5.3.

    ``epochs`` of local training and ``retrain_epochs`` (default ``epochs``) of retraining after each
    matched layer. §5.4.1's VGG-9 recipe is available: ``weight_decay`` applies to local training and to
    the classifier's retraining, not to the other retraining (the chapter switches it off there), and
    the classifier alone is retrained with ``lr * last_layer_lr_factor`` for
    ``last_layer_epoch_factor`` times the epochs (chapter: 0.1 and 3 for VGG-9; 1 and 1 elsewhere).

    ``prox_mu > 0`` makes it FedProx's local solver (Li/Sahu et al., MLSys 2020): each call minimises
    ``F_j(w) + (mu/2) ||w - w_0||^2`` with ``w_0`` the trainable weights the call starts from (the
    broadcast model), i.e. adds ``mu (w - w_0)`` to every minibatch gradient (chapter 5: ``mu = 0.001``).
    """

    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 32
    momentum: float = 0.9
    weight_decay: float = 1e-4
    retrain_epochs: int | None = None
    last_layer_lr_factor: float = 1.0
    last_layer_epoch_factor: int = 1
    grad_clip: float | None = None
    prox_mu: float = 0.0

    def __post_init__(self) -> None:
        _check("epochs", self.epochs, 0, integer=True)
        _check("lr", self.lr, 0)
        _check("batch_size", self.batch_size, 1, integer=True)
        _check("momentum", self.momentum, 0)
        _check("weight_decay", self.weight_decay, 0)
        if self.retrain_epochs is not None:
            _check("retrain_epochs", self.retrain_epochs, 0, integer=True)
        _check("last_layer_lr_factor", self.last_layer_lr_factor, 0)
        _check("last_layer_epoch_factor", self.last_layer_epoch_factor, 0, integer=True)
        if self.grad_clip is not None:
            _check("grad_clip", self.grad_clip, 0)
        _check("prox_mu", self.prox_mu, 0)

    def __call__(self, request: TrainRequest) -> None:
        model = request.model
        params = [p for name, p in model.named_parameters() if name in request.trainable]
        for name, p in model.named_parameters():
            p.requires_grad_(name in request.trainable)
        if not params:
            return
        local = request.stage == "local"
        epochs = (
            self.epochs
            if local
            else (self.retrain_epochs if self.retrain_epochs is not None else self.epochs)
        )
        lr, decay = self.lr, self.weight_decay if local else 0.0
        if request.last_layer_only:
            lr, decay = lr * self.last_layer_lr_factor, self.weight_decay
            epochs *= self.last_layer_epoch_factor
        optimizer = torch.optim.SGD(params, lr=lr, momentum=self.momentum, weight_decay=decay)
        anchors = [p.detach().clone() for p in params] if self.prox_mu > 0 else []
        model.train()
        n = request.y.numel()
        for _ in range(epochs):
            order = torch.randperm(n, generator=request.generator)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(request.x[idx]), request.y[idx]).backward()
                for p, anchor in zip(params if anchors else [], anchors, strict=True):
                    p.grad.add_(p.detach() - anchor, alpha=self.prox_mu)  # type: ignore[union-attr]
                if self.grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, self.grad_clip)
                optimizer.step()
        for p in model.parameters():
            p.requires_grad_(True)


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on ``(x, y)``."""
    return float((predict_proba([model], x, batch_size).argmax(1) == y).double().mean())


def predict_proba(models: list[nn.Module], x: Tensor, batch_size: int = 512) -> Tensor:
    """The mean of the models' softmax probabilities (one model: its own probabilities)."""
    out = []
    for m in models:
        m.eval()
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size]
            out.append(torch.stack([m(xb).softmax(-1) for m in models]).mean(0))
    return torch.cat(out)
