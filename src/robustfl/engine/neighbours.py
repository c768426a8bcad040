"""Neighbour aggregation of decentralised gossip: what node ``i`` makes of the copies it holds.

Every node ``i`` holds its own public copy ``x̂_i`` and, for each neighbour ``j``, the copy of ``x̂_j``
built from ``j``'s messages. Honest senders send everyone the same messages, so those copies are the
rows ``public[j]``; a Byzantine sender may tell each receiver something else, so the copy on a
*Byzantine edge* ``j -> i`` is its own row of ``overrides``. :class:`NeighbourRule` maps them to the
aggregate ``A_i`` of ``robustfl.algorithms.gossip`` (``weighted``, ``clip``, ``aggregator``), for all
nodes at once:

* ``weighted``: ``A = W public`` plus ``w_ij (override - public[j])`` on each Byzantine edge;
* ``clip``: edge-wise ``public[i] + sum_j w_ij clip(copy_ij - public[i], tau_i)``, in chunks of edges;
  a copy whose distance is not finite contributes 0 (it has no direction to clip);
* ``aggregator``: nodes of equal degree ``k`` are grouped, their ``k + 1`` rows stacked
  ``[m, k + 1, d]``; coordinate-wise rules (mean, median, trimmed mean) then run once on the rows
  laid side by side, ``[k + 1, m d]`` (the same numbers as one call per node, since each column is
  reduced alone); any other rule runs once per node on its own copy of the rule (separate memory).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from robustfl.aggregators.base import Aggregator
from robustfl.aggregators.coordinatewise import Median, TrimmedMean
from robustfl.aggregators.mean import Average
from robustfl.topology import Topology

COORDINATEWISE = (Average, Median, TrimmedMean)
"""Rules that reduce each coordinate alone (exact types): they serve many nodes in one call."""
CHUNK_NUMEL = 1 << 23
"""Elements of the largest temporary (edge differences, stacked neighbour rows): 32 MiB of float32."""


class NeighbourRule:
    """The aggregate ``A_i`` of every node for one graph (see the module docstring).

    ``rule``: ``"weighted"``, ``"clip"`` or ``"aggregator"``; ``tau``: the fixed clipping radius
    (``None``: adaptive, the ``clip_count + 1``-th largest neighbour distance); ``aggregator``: the rule
    of ``"aggregator"``, which must serve every node's ``degree + 1`` rows.
    """

    def __init__(
        self,
        topology: Topology,
        rule: str,
        *,
        tau: float | None = None,
        clip_count: int = 1,
        aggregator: Aggregator | None = None,
    ) -> None:
        self.topology, self.rule, self.tau, self.clip_count = topology, rule, tau, clip_count
        self.src, self.dst = topology.edges
        w = topology.weights
        self.edge_weight = w[self.src, self.dst]
        self.degrees = topology.degrees
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.degrees.cumsum(0)])
        if rule == "clip" and tau is None and clip_count >= int(self.degrees.min()):
            raise ValueError(
                f"clip_count = {clip_count} must be below every node's degree (the {topology.name} graph "
                f"has a node of degree {int(self.degrees.min())}): the adaptive radius is the distance of "
                "the next-farthest neighbour"
            )
        self.aggregator = aggregator
        self.per_node: list[Aggregator] = []
        if rule == "aggregator":
            if aggregator is None:
                raise ValueError("rule 'aggregator' needs an aggregator")
            for k in sorted(set(self.degrees.tolist())):
                try:
                    aggregator.check_n(k + 1)
                except ValueError as err:
                    raise ValueError(
                        f"the {topology.name} graph gives a node {k + 1} rows (itself and {k} neighbours): "
                        f"{err}; choose a denser topology or a rule with a smaller f"
                    ) from None
            if type(aggregator) not in COORDINATEWISE:
                self.per_node = [copy.deepcopy(aggregator) for _ in range(topology.n)]
        self.clipped = 0
        """Edges clipped in the last ``clip`` call (a metric)."""

    # ------------------------------------------------------------------------------------- copies
    def edge_rows(self, public: Tensor, edges: Tensor, slot: Tensor, overrides: Tensor) -> Tensor:
        """The copies on ``edges``: ``public[src]``, or the override row of a Byzantine edge."""
        rows = public[self.src[edges]]
        where = slot[edges]
        bad = where >= 0
        if bool(bad.any()):
            rows[bad] = overrides[where[bad]].to(rows)
        return rows

    def __call__(self, public: Tensor, slot: Tensor, overrides: Tensor) -> Tensor:
        """``A: [n, d]``. ``slot[e]`` is the row of ``overrides`` that replaces edge ``e``'s copy (-1: none).
        Index tensors stay on the CPU (indexing accepts them on any device; ``index_add_`` gets a copy)."""
        if self.rule == "weighted":
            return self._weighted(public, slot, overrides)
        if self.rule == "clip":
            return self._clip(public, slot, overrides)
        return self._aggregate(public, slot, overrides)

    def _weighted(self, public: Tensor, slot: Tensor, overrides: Tensor) -> Tensor:
        out = self.topology.weights.to(public) @ public
        edges = (slot >= 0).nonzero().squeeze(1)
        if len(edges):
            delta = overrides[slot[edges]].to(public) - public[self.src[edges]]
            out.index_add_(
                0, self.dst[edges].to(out.device), self.edge_weight[edges].to(public).unsqueeze(1) * delta
            )
        return out

    def _edge_chunks(self, d: int) -> list[Tensor]:
        size = max(1, CHUNK_NUMEL // max(d, 1))
        return list(torch.arange(len(self.src)).split(size))

    def _clip(self, public: Tensor, slot: Tensor, overrides: Tensor) -> Tensor:
        chunks = self._edge_chunks(public.shape[1])
        norms = torch.cat(
            [
                torch.linalg.vector_norm(
                    self.edge_rows(public, e, slot, overrides) - public[self.dst[e]], dim=1
                )
                for e in chunks
            ]
        )
        finite = torch.isfinite(norms)
        tau = self.radii(norms)[self.dst].to(norms)
        scale = torch.where(finite & (norms > tau), tau / norms, torch.ones_like(norms))
        scale = torch.where(finite, scale, torch.zeros_like(scale))
        self.clipped = int((~finite | (norms > tau)).sum())
        factor = (self.edge_weight.to(public) * scale.to(public)).unsqueeze(1)
        out = public.clone()
        for e in chunks:
            diff = self.edge_rows(public, e, slot, overrides) - public[self.dst[e]]
            diff = torch.where(factor[e] == 0, torch.zeros_like(diff), diff)  # no NaN * 0
            out.index_add_(0, self.dst[e].to(out.device), factor[e] * diff)
        return out

    def radii(self, norms: Tensor) -> Tensor:
        """``tau_i`` per node: the fixed ``tau``, or the ``clip_count + 1``-th largest of node ``i``'s
        edge distances ``norms`` (non-finite distances rank as the largest)."""
        n, norms = self.topology.n, norms.detach().cpu()
        if self.tau is not None:
            return torch.full((n,), float(self.tau), dtype=torch.float64)
        ranked = torch.where(
            torch.isfinite(norms), norms.double(), torch.full_like(norms.double(), float("inf"))
        )
        width = int(self.degrees.max())
        padded = torch.full((n, width), float("-inf"), dtype=torch.float64)
        position = torch.arange(len(self.dst)) - self.offsets[self.dst]
        padded[self.dst, position] = ranked
        return padded.topk(self.clip_count + 1, dim=1).values[:, -1]

    def _aggregate(self, public: Tensor, slot: Tensor, overrides: Tensor) -> Tensor:
        assert self.aggregator is not None
        out = torch.empty_like(public)
        d = public.shape[1]
        for k in sorted(set(self.degrees.tolist())):
            nodes = (self.degrees == k).nonzero().squeeze(1)
            step = max(1, CHUNK_NUMEL // ((k + 1) * d))
            for part in nodes.split(step):
                edges = (self.offsets[part].unsqueeze(1) + torch.arange(k)).reshape(-1)
                rows = torch.cat(
                    [
                        public[part].unsqueeze(1),
                        self.edge_rows(public, edges, slot, overrides).view(-1, k, d),
                    ],
                    dim=1,
                )
                if not self.per_node:
                    side = rows.transpose(0, 1).reshape(k + 1, -1)
                    out[part] = self.aggregator(side).view(len(part), d)
                else:
                    for t, node in enumerate(part.tolist()):
                        out[node] = self.per_node[node](rows[t])
        return out

    # ------------------------------------------------------------------------------------ memory
    def state_dict(self) -> dict[str, Any]:
        return {"per_node": [a.state_dict() for a in self.per_node]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for agg, own in zip(self.per_node, state.get("per_node", []), strict=False):
            agg.load_state_dict(own)


__all__ = ["CHUNK_NUMEL", "COORDINATEWISE", "NeighbourRule"]
