"""FL-BGMD: local SGD with robust block-GM aggregation at synchronisation rounds (seed 000, Alg. 3).

Each engine round is one synchronisation period of Algorithm 3 (Acharya et al., "Robust Training in
High Dimensions via Block Coordinate Geometric Median Descent", AISTATS 2022):

    clients (i in G):  y <- y - gamma * g_i(y)  for the period's local steps, from y = x_t
                       send c_i = Q(x_t - y)                              (Q = the run's compressor)
    server:            G[i, :] = c_i;  P = gamma_t G + M^s                 (server error correction)
                       Delta = C_k(P) (Alg. 2 block);  M^s <- P - Delta;  x <- x - GM(Delta)

With the ``bgmd`` aggregator (``BlockGeometricMedian``) the server step is exactly this: that rule keeps
``M^s`` as its memory, draws the block by Alg. 2 from the column norms of ``G + M^s``, returns the GM of
the block and keeps the residual; ``server_lr`` is ``gamma_t`` (the rule keeps its memory in message
units, so ``x <- x - gamma_t * agg`` equals the seed's ``P = gamma_t G + M^s`` for a constant ``gamma_t``).
Any other aggregator gives local SGD with that rule (FedAvg + GM, + median, ...).

Reading written down — ``Delta = C_k(P)``, not ``C_k(G)`` as the seed's line 24 prints: line 25 sets
``M^s = P - Delta``, which is error feedback only if ``Delta`` is the compressed part of ``P``. With
``Delta = C_k(G)`` the memory would never be spent on the block (``M^s`` would keep ``gamma_t G + M^s -
G`` there) and would grow without bound, and Alg. 1 (BGMD), which this generalises, compresses
``G + m``. So ``Delta = C_k(P)``, as Alg. 1.

Synchronisation schedule ``I_T``: ``sync_every = H`` (a sync after every ``H`` local steps) or
``sync_steps = [t_1, t_2, ...]`` (the local-step counts at which the server syncs, increasing; after the
list ends the last gap repeats). The engine hands every client ``local_steps = max gap`` minibatches;
in a round with a shorter gap the extra steps are masked out (computed and discarded, so the function
stays vmappable). With one local step, the identity compressor and ``k = d`` it is BGMD (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import Tensor

from robustfl.algorithms.base import (
    ALGORITHMS,
    Aggregators,
    ClientOutput,
    Cohort,
    GradFn,
    Messages,
    ServerOutput,
    State,
)
from robustfl.algorithms.fedavg import FedAvg
from robustfl.algorithms.optim import ClientOptimizer
from robustfl.checks import check_int


def sync_gaps(sync_every: int | None, sync_steps: Sequence[int] | None) -> tuple[int, ...]:
    """The local steps of each synchronisation period (the last repeats)."""
    if (sync_every is None) == (sync_steps is None):
        raise ValueError("fl-bgmd: give exactly one of sync_every (H) or sync_steps (a list of step counts)")
    if sync_every is not None:
        return (check_int("sync_every", sync_every, minimum=1),)
    steps = [check_int("sync_steps[]", s, minimum=1) for s in sync_steps or ()]
    if not steps or any(b <= a for a, b in pairwise(steps)):
        raise ValueError(f"sync_steps must be a non-empty increasing list of step counts, got {sync_steps!r}")
    return tuple(b - a for a, b in pairwise([0, *steps]))


@ALGORITHMS.register("fl-bgmd", "fedbgmd")
class FLBGMD(FedAvg):
    """Algorithm 3: local steps between syncs, then ``x <- x - server_lr * agg(Q(x - y_i))``."""

    name = "fl-bgmd"

    def __init__(
        self,
        sync_every: int | None = None,
        sync_steps: Sequence[int] | None = None,
        server_lr: float = 1.0,
        client_optimizer: ClientOptimizer | None = None,
    ) -> None:
        if sync_every is None and sync_steps is None:
            sync_every = 1
        self.gaps = sync_gaps(sync_every, sync_steps)
        self.sync_every, self.sync_steps = sync_every, None if sync_steps is None else list(sync_steps)
        super().__init__(local_steps=max(self.gaps), server_lr=server_lr, client_optimizer=client_optimizer)

    def params(self) -> dict[str, object]:
        return {
            "sync_every": self.sync_every,
            "sync_steps": self.sync_steps,
            "server_lr": self.server_lr,
            "client_optimizer": self.client_optimizer,
        }

    def gap(self, round: int) -> int:
        """Local steps in synchronisation period ``round``."""
        return self.gaps[min(round, len(self.gaps) - 1)]

    def broadcast(self, params: Tensor, server_state: State, round: int) -> State:
        return {"params": params, "steps": torch.tensor(self.gap(round))}

    def broadcast_bits(self, shared: State) -> int:
        return (
            8 * shared["params"].element_size() * shared["params"].numel()
        )  # the step count is the schedule

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        params, steps = shared["params"], shared["steps"]
        local, buffer, first = params, None, None
        for step in range(self.local_steps):
            grad, loss = grad_fn(local, xs[step], ys[step])
            new, buffer = self.client_optimizer.step(local, grad, buffer, lr)
            local = torch.where(steps > step, new, local)  # the active steps are a prefix
            first = loss if first is None else first
        assert first is not None
        return ClientOutput(params - local, state, first)

    def server_step(
        self,
        params: Tensor,
        messages: Messages,
        aggregator: Aggregators,
        state: State,
        lr: float,
        round: int,
        cohort: Cohort,
    ) -> ServerOutput:
        new, state, metrics = super().server_step(params, messages, aggregator, state, lr, round, cohort)
        return ServerOutput(new, state, {**metrics, "local_steps": self.gap(round)})
