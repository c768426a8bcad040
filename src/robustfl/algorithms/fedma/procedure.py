"""Layer-wise FedMA (Algorithm 3) and "FedMA with communication" (Wang et al., ICLR 2020, §5.1.3).

One FedMA *pass* takes one communication per layer: clients upload layer ``n`` (already expressed in
the global coordinates of layer ``n-1``), the server matches and averages it (``match_layer``) and
broadcasts the global layer with each client's matching; each client adopts it, permutes its next
layer (``W_{j,n+1} ← Π_j W_{j,n+1}``) and retrains layers ``n+1..N`` with layers ``1..n`` frozen. The
classifier is averaged with each client's label proportions. With ``rounds > 1`` each later round
starts from the global model cut back to each client's own size through its last matching
(``reconstruct``), trains locally, and makes another pass. Bytes are counted as sent: 4-byte floats
for weights, 4-byte ints for a client's matching (its ``L_j`` global indices).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from robustfl.algorithms.fedma.averaging import (
    adopt,
    average_classifier,
    class_weights,
    match_layer,
    reconstruct,
)
from robustfl.algorithms.fedma.builders import ModelFactory
from robustfl.algorithms.fedma.costs import MatchingCost
from robustfl.algorithms.fedma.layers import Layer, StateDict, layer_chain, widths
from robustfl.algorithms.fedma.matching import Matching
from robustfl.algorithms.fedma.training import Trainer, TrainRequest

INDEX_BYTES = 4


@dataclass(frozen=True)
class RoundRecord:
    """The state after FedMA round ``round`` (one pass = one communication per layer)."""

    round: int
    communications: int
    bytes_up: int
    bytes_down: int
    widths: tuple[int, ...]
    accuracy: float | None


@dataclass
class FedMAResult:
    """The global model, its widths, the last pass's matchings and the per-round history."""

    global_state: StateDict
    widths: tuple[int, ...]
    matchings: list[Matching]
    history: list[RoundRecord] = field(default_factory=list)


def _nbytes(state: StateDict, names: Sequence[str]) -> int:
    return sum(state[k].numel() * state[k].element_size() for k in names)


def random_states(
    make_model: ModelFactory, local_widths: Sequence[Sequence[int]], seed: int
) -> list[StateDict]:
    """Each client's own random initialisation (no shared initialisation, as in the chapter)."""
    out = []
    with torch.random.fork_rng(devices=[]):
        for j, w in enumerate(local_widths):
            torch.manual_seed(seed * 1_000_003 + j)
            out.append({k: v.detach().clone() for k, v in make_model(w).state_dict().items()})
    return out


def train_layers(
    make_model: ModelFactory,
    chain: list[Layer],
    state: StateDict,
    data: tuple[Tensor, Tensor],
    trainer: Trainer,
    first: int,
    client: int,
    generator: torch.Generator,
) -> StateDict:
    """Train layers ``first..N`` of the model in ``state`` (all layers when ``first = 0``)."""
    model = make_model(widths(chain, state))
    model.load_state_dict(state)
    names = frozenset(k for layer in chain[first:] for k in layer.names)
    request = TrainRequest(
        model=model,
        x=data[0],
        y=data[1],
        trainable=names,
        stage="local" if first == 0 else "retrain",
        last_layer_only=first == len(chain) - 1,
        client=client,
        generator=generator,
    )
    trainer(request)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _check_clients(clients: Sequence[tuple[Tensor, Tensor]], num_classes: int) -> Tensor:
    if not clients:
        raise ValueError("clients must hold one (x, y) pair per client, got none")
    counts = []
    for j, (x, y) in enumerate(clients):
        if y.dim() != 1 or y.numel() == 0 or x.shape[0] != y.numel() or y.is_floating_point():
            raise ValueError(f"clients[{j}] must be (x [N, ...], y int [N]) with N >= 1")
        if int(y.min()) < 0 or int(y.max()) >= num_classes:
            raise ValueError(f"clients[{j}] has labels outside [0, num_classes={num_classes})")
        counts.append(torch.bincount(y, minlength=num_classes))
    return torch.stack(counts)


def fedma(
    clients: Sequence[tuple[Tensor, Tensor]],
    make_model: ModelFactory,
    local_widths: Sequence[Sequence[int]],
    num_classes: int,
    trainer: Trainer,
    rounds: int = 1,
    cost: MatchingCost | None = None,
    iterations: int = 5,
    seed: int = 0,
    evaluate: Callable[[nn.Module], float] | None = None,
    initial_states: Sequence[StateDict] | None = None,
) -> FedMAResult:
    """Run ``rounds`` FedMA rounds (Algorithm 3, then "with communication") over ``clients``' data.

    ``make_model(widths)`` builds the architecture at given hidden widths (``width_factory``);
    ``local_widths[j]`` is client ``j``'s own size (clients may differ); ``trainer`` trains a
    ``TrainRequest`` in place (``SGDTrainer`` or any callable); ``evaluate(model) -> accuracy`` is
    called on the global model after each round. Clients start from their own random initialisation
    (seeded by ``seed``) unless ``initial_states`` are given.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    label_counts = _check_clients(clients, num_classes)
    if len(local_widths) != len(clients):
        raise ValueError(f"local_widths needs one entry per client ({len(clients)}), got {len(local_widths)}")
    states = (
        list(initial_states) if initial_states is not None else random_states(make_model, local_widths, seed)
    )
    if len(states) != len(clients):
        raise ValueError(f"initial_states needs one state per client ({len(clients)}), got {len(states)}")
    probe = make_model(local_widths[0])
    chain = layer_chain(probe)
    weights = class_weights(label_counts)
    generators = [
        torch.Generator().manual_seed(seed * 1_000_003 + 7919 * (j + 1)) for j in range(len(clients))
    ]
    up = down = comms = 0
    history: list[RoundRecord] = []
    matchings: list[Matching] = []
    glob: StateDict = {}
    for r in range(rounds):
        if r > 0:
            states = [
                reconstruct(glob, chain, [torch.from_numpy(m.assignments[j]) for m in matchings])
                for j in range(len(clients))
            ]
        states = [
            train_layers(make_model, chain, s, d, trainer, 0, j, g)
            for j, (s, d, g) in enumerate(zip(states, clients, generators, strict=True))
        ]
        matchings, glob = [], {}
        for n, layer in enumerate(chain):
            up += sum(_nbytes(s, layer.names) for s in states)
            comms += 1
            if n == len(chain) - 1:
                params = average_classifier(layer, states, weights)
                down += len(states) * _nbytes(params, layer.names)
                states = [{**s, **params} for s in states]
                glob.update(params)
                break
            matching, params = match_layer(layer, states, cost, iterations=iterations, seed=seed + n)
            matchings.append(matching)
            glob.update(params)
            down += sum(_nbytes(params, layer.names) + INDEX_BYTES * a.size for a in matching.assignments)
            states = [
                train_layers(
                    make_model,
                    chain,
                    adopt(s, layer, params, chain[n + 1], torch.from_numpy(a), matching.size),
                    d,
                    trainer,
                    n + 1,
                    j,
                    g,
                )
                for j, (s, a, d, g) in enumerate(
                    zip(states, matching.assignments, clients, generators, strict=True)
                )
            ]
        sizes = widths(chain, glob)
        acc = None
        if evaluate is not None:
            model = make_model(sizes)
            model.load_state_dict(glob)
            acc = evaluate(model)
        history.append(RoundRecord(r + 1, comms, up, down, sizes, acc))
    return FedMAResult(glob, widths(chain, glob), matchings, history)
