"""Which worker rank computes which clients.

An assignment maps each worker rank ``1..P-1`` to the client ids it computes. The default gives each
rank a contiguous share of ``0..n-1`` (sizes differ by at most one). The server keys every message by
client id, never by rank, so an assignment may also give one client to several ranks (replicas: the
redundant partitions of DRACO, Chen et al., ICML 2018, or DETOX's groups, Rajput et al., NeurIPS 2019):
the server then keeps the value most replicas sent bit for bit (a majority vote over the repetition
code) and logs any disagreement. A worker computes all its clients in one batched executor call.
"""

from __future__ import annotations

import torch
from torch import Tensor


def contiguous(n: int, workers: int, replicas: int = 1) -> dict[int, Tensor]:
    """Ranks ``1..workers`` → their client ids: contiguous shares of ``0..n-1``; with ``replicas = r``
    rank ``k`` also computes the shares of the next ``r - 1`` ranks (cyclically), so every client is
    computed by ``r`` ranks."""
    if workers < 1:
        raise ValueError(f"--nproc must be at least 2 (one server and a worker), got {workers + 1}")
    if workers > n:
        raise ValueError(
            f"--nproc = {workers + 1} gives {workers} worker ranks for only n = {n} clients; use at most {n + 1}"
        )
    if not 1 <= replicas <= workers:
        raise ValueError(
            f"workers.replicas must be in [1, {workers}] (the worker processes: --nproc - 1), got {replicas}"
        )
    shares = list(torch.arange(n).tensor_split(workers))
    return {
        k + 1: torch.cat([shares[(k + j) % workers] for j in range(replicas)]).sort().values
        for k in range(workers)
    }
