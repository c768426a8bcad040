"""The baselines of the FedMA experiments (§5.2): per-client local models, their ensemble, and FedAvg.

``fedavg`` here is the equal-trainer reference for FedMA comparisons (same ``Trainer``, same local
epochs, plain PyTorch); the engine's ``FedAvg`` algorithm is the general, robust-aggregation one.
As in the chapter, clients start from their own initialisations (no shared initialisation) unless
``shared_init=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from robustfl.algorithms.fedma.builders import ModelFactory
from robustfl.algorithms.fedma.layers import StateDict, layer_chain
from robustfl.algorithms.fedma.procedure import RoundRecord, random_states, train_layers
from robustfl.algorithms.fedma.training import Trainer, predict_proba


def local_models(
    clients: Sequence[tuple[Tensor, Tensor]],
    make_model: ModelFactory,
    local_widths: Sequence[Sequence[int]],
    trainer: Trainer,
    seed: int = 0,
) -> list[nn.Module]:
    """Each client's model trained on its own data only (the "local" baseline)."""
    chain = layer_chain(make_model(local_widths[0]))
    states = random_states(make_model, local_widths, seed)
    out = []
    for j, (s, d) in enumerate(zip(states, clients, strict=True)):
        g = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * (j + 1))
        model = make_model(local_widths[j])
        model.load_state_dict(train_layers(make_model, chain, s, d, trainer, 0, j, g))
        out.append(model)
    return out


def ensemble_accuracy(models: list[nn.Module], x: Tensor, y: Tensor) -> float:
    """Accuracy of the ensemble predicting the mean of the local models' softmax probabilities."""
    return float((predict_proba(models, x).argmax(1) == y).double().mean())


def fedavg(
    clients: Sequence[tuple[Tensor, Tensor]],
    make_model: ModelFactory,
    widths: Sequence[int],
    trainer: Trainer,
    rounds: int,
    seed: int = 0,
    shared_init: bool = False,
    evaluate: Callable[[nn.Module], float] | None = None,
) -> tuple[StateDict, list[RoundRecord]]:
    """FedAvg (McMahan et al., 2017): local training, then the data-size-weighted mean, ``rounds`` times."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    chain = layer_chain(make_model(widths))
    states = random_states(make_model, [widths] * (1 if shared_init else len(clients)), seed)
    states = states * len(clients) if shared_init else states
    sizes = torch.tensor([float(y.numel()) for _, y in clients], dtype=torch.float64)
    share = sizes / sizes.sum()
    generators = [
        torch.Generator().manual_seed(seed * 1_000_003 + 7919 * (j + 1)) for j in range(len(clients))
    ]
    history = []
    model_bytes = sum(v.numel() * v.element_size() for v in states[0].values())
    glob: StateDict = {}
    for r in range(rounds):
        trained = [
            train_layers(make_model, chain, s, d, trainer, 0, j, g)
            for j, (s, d, g) in enumerate(zip(states, clients, generators, strict=True))
        ]
        glob = {k: sum(float(w) * t[k] for w, t in zip(share, trained, strict=True)) for k in trained[0]}  # type: ignore[misc]
        states = [glob] * len(clients)
        acc = None
        if evaluate is not None:
            model = make_model(widths)
            model.load_state_dict(glob)
            acc = evaluate(model)
        n = (r + 1) * len(clients) * model_bytes
        history.append(RoundRecord(r + 1, r + 1, n, n, tuple(widths), acc))
    return glob, history
