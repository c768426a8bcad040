"""Communication graphs of decentralised training and their mixing matrices (networkx underneath).

A :class:`Topology` is an undirected connected graph on the nodes ``0..n-1`` plus its symmetric, doubly
stochastic mixing matrix ``W`` (Metropolis–Hastings weights; Xiao and Boyd, "Fast linear iterations for
distributed averaging", Systems & Control Letters 2004):

    w_ij = 1 / (1 + max(deg_i, deg_j))   for every edge {i, j},      w_ii = 1 - sum_{j != i} w_ij,

and ``0`` between nodes that are not neighbours. The **spectral gap** ``1 - max(|lambda_2|, |lambda_n|)``
of ``W`` (its eigenvalues ``1 = lambda_1 >= ... >= lambda_n``) sets how fast plain gossip averages:
``||W^t x - x_bar|| <= (1 - gap)^t ||x - x_bar||``. It is 1 on the complete graph (one step averages
exactly) and ``O(1/n^2)`` on a ring.

Graphs (``TOPOLOGIES``): ``ring`` (cycle, degree 2), ``torus`` (2-D grid ``r x c`` with wrap-around,
degree 4; ``r`` the divisor of ``n`` closest to ``sqrt(n)``, both sides at least 3), ``erdos-renyi``
(each edge with probability ``p``, redrawn with the next seed until connected) and ``complete``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # networkx is imported where a graph is built: its import costs ~12 MiB and 0.6 s
    import networkx as nx

TOPOLOGIES = ("ring", "torus", "erdos-renyi", "complete")
ER_ATTEMPTS = 100
"""Seeds tried for a connected Erdős–Rényi graph before giving up with a ValueError."""


def default_edge_probability(n: int) -> float:
    """``2 ln(n) / n`` (capped at 1): twice the connectivity threshold, so a draw is connected w.h.p."""
    return min(1.0, 2.0 * math.log(max(n, 2)) / max(n, 1))


def torus_shape(n: int) -> tuple[int, int]:
    """``(r, c)`` with ``r * c = n``, ``r <= c`` and ``r`` as close to ``sqrt(n)`` as possible."""
    r = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return r, n // r


def check_topology(name: str, n: int | None = None, p: float | None = None) -> str:
    """Validate a topology name (and, given ``n``, that the graph exists); returns the name."""
    if name not in TOPOLOGIES:
        raise ValueError(f"topology must be one of {', '.join(TOPOLOGIES)}, got {name!r}")
    if p is not None:
        if name != "erdos-renyi":
            raise ValueError(f"p (the edge probability) is for topology 'erdos-renyi' only, not {name!r}")
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1:
            raise ValueError(f"p (the edge probability) must be in (0, 1], got {p!r}")
    if n is None:
        return name
    if n < 2:
        raise ValueError(f"a {name} topology needs at least 2 nodes, got n={n}")
    if name == "ring" and n < 3:
        raise ValueError(f"a ring needs at least 3 nodes, got n={n}; use topology 'complete'")
    if name == "torus" and torus_shape(n)[0] < 3:
        raise ValueError(
            f"a torus needs n = r x c with r, c >= 3 (n = 9, 12, 16, ...), got n={n}; use another n or "
            "topology 'ring'"
        )
    return name


def make_graph(name: str, n: int, *, p: float | None = None, seed: int = 0) -> nx.Graph:
    """The graph ``name`` on the nodes ``0..n-1`` (``seed`` and ``p`` for Erdős–Rényi only)."""
    import networkx as nx

    check_topology(name, n, p)
    if name == "ring":
        return nx.cycle_graph(n)
    if name == "complete":
        return nx.complete_graph(n)
    if name == "torus":
        r, c = torus_shape(n)
        grid = nx.grid_2d_graph(r, c, periodic=True)
        return nx.convert_node_labels_to_integers(grid, ordering="sorted")
    prob = default_edge_probability(n) if p is None else float(p)
    for attempt in range(ER_ATTEMPTS):
        graph = nx.erdos_renyi_graph(n, prob, seed=(seed + attempt) % (1 << 32))
        if nx.is_connected(graph):
            return graph
    raise ValueError(
        f"no connected Erdős–Rényi graph on n={n} nodes with p={prob:g} in {ER_ATTEMPTS} draws; raise p "
        f"(the connectivity threshold is about ln(n)/n = {math.log(n) / n:.3f})"
    )


def metropolis_hastings(graph: nx.Graph) -> Tensor:
    """The Metropolis–Hastings mixing matrix of ``graph`` (float64 ``[n, n]``, symmetric, rows sum to 1)."""
    n = graph.number_of_nodes()
    w = torch.zeros(n, n, dtype=torch.float64)
    degree = dict(graph.degree())
    for i, j in graph.edges():
        w[i, j] = w[j, i] = 1.0 / (1.0 + max(degree[i], degree[j]))
    w += torch.diag(1.0 - w.sum(dim=1))
    return w


def spectral_gap(w: Tensor) -> float:
    """``1 - max(|lambda_2|, |lambda_n|)`` of a symmetric mixing matrix (1 when ``n = 1``)."""
    values = np.sort(np.abs(np.linalg.eigvalsh(w.double().numpy())))
    return float(1.0 - values[-2]) if len(values) > 1 else 1.0


@dataclass(frozen=True)
class Topology:
    """A connected graph on ``0..n-1`` with its mixing matrix ``weights`` (see the module docstring)."""

    name: str
    graph: nx.Graph

    @property
    def n(self) -> int:
        return int(self.graph.number_of_nodes())

    @cached_property
    def weights(self) -> Tensor:
        return metropolis_hastings(self.graph)

    @cached_property
    def spectral_gap(self) -> float:
        return spectral_gap(self.weights)

    @cached_property
    def edges(self) -> tuple[Tensor, Tensor]:
        """Directed edges ``(src, dst)`` (both directions of every link), sorted by ``dst`` then ``src``."""
        links = self.graph.edges()
        pairs = sorted({(a, b) for i, j in links for a, b in ((i, j), (j, i))}, key=lambda e: (e[1], e[0]))
        src = torch.tensor([e[0] for e in pairs], dtype=torch.long)
        dst = torch.tensor([e[1] for e in pairs], dtype=torch.long)
        return src, dst

    @cached_property
    def degrees(self) -> Tensor:
        return torch.tensor([self.graph.degree(i) for i in range(self.n)], dtype=torch.long)

    def neighbours(self, i: int) -> list[int]:
        return sorted(int(j) for j in self.graph.neighbors(i))

    def __repr__(self) -> str:
        return f"Topology({self.name!r}, n={self.n}, edges={self.graph.number_of_edges()})"


def build_topology(name: str, n: int, *, p: float | None = None, seed: int = 0) -> Topology:
    """:func:`make_graph` wrapped as a :class:`Topology`."""
    return Topology(name, make_graph(name, n, p=p, seed=seed))


__all__ = [
    "TOPOLOGIES",
    "Topology",
    "build_topology",
    "check_topology",
    "default_edge_probability",
    "make_graph",
    "metropolis_hastings",
    "spectral_gap",
    "torus_shape",
]
