"""Iterative Hungarian matching of J clients' neurons to a global model of adaptive size (eqs. 5.2–5.3).

Wang et al. (ICLR 2020), §5.1.1: hold every client's assignment but one fixed, match that client's
neurons to the global neurons built from the others with the extended cost of eq. 5.3 (one
``scipy.optimize.linear_sum_assignment`` call on an ``[L_j, L + L_j]`` matrix), and iterate over
clients. The global size ``L`` ends with ``max_j L_j ≤ L ≤ Σ_j L_j``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from robustfl.algorithms.fedma.costs import BBPMAPCost, MatchingCost


@dataclass(frozen=True)
class Matching:
    """``assignments[j][l]`` = the global neuron that client ``j``'s neuron ``l`` is matched to; ``size`` = L.

    ``sweeps`` = how many passes over the clients were made (the last one changed nothing, unless the
    ``iterations`` limit stopped it).

    Each client's entries are distinct (an injective map, the ``L_j × L`` matrix ``Π_j^T`` of the chapter).
    """

    assignments: tuple[np.ndarray, ...]
    size: int
    sweeps: int = 1

    @property
    def counts(self) -> np.ndarray:
        """How many clients have a neuron matched to each global neuron (``m_i``)."""
        return np.bincount(np.concatenate(self.assignments), minlength=self.size)


def _partition(assignments: list[np.ndarray]) -> frozenset[frozenset[tuple[int, int]]]:
    groups: dict[int, set[tuple[int, int]]] = {}
    for j, a in enumerate(assignments):
        for l, i in enumerate(a.tolist()):
            groups.setdefault(i, set()).add((j, l))
    return frozenset(frozenset(g) for g in groups.values())


def match_neurons(
    neurons: Sequence[Tensor | np.ndarray],
    cost: MatchingCost | None = None,
    iterations: int = 5,
    seed: int = 0,
) -> Matching:
    """Match the rows of each ``neurons[j]`` (``[L_j, D]``) to global neurons (eq. 5.3, iterated).

    The first sweep adds clients in decreasing ``L_j`` (the largest client seeds the global model);
    each later sweep visits the clients in a random order (``seed``), removes one client's neurons
    from the global statistics (dropping global neurons left empty) and matches it again. Stops after
    ``iterations`` sweeps or when a sweep changes nothing. The chapter gives no number of sweeps; 5 is ours.
    """
    import scipy.optimize  # lazy: its import costs ~37 MiB and over a second

    cost = BBPMAPCost() if cost is None else cost
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if not neurons:
        raise ValueError("neurons must hold one [L_j, D] matrix per client, got none")
    vs = [
        np.asarray(v.detach().double().numpy() if isinstance(v, Tensor) else v, dtype=np.float64)
        for v in neurons
    ]
    d = vs[0].shape[1] if vs[0].ndim == 2 else -1
    for j, v in enumerate(vs):
        if v.ndim != 2 or v.shape[0] < 1 or v.shape[1] != d or not np.isfinite(v).all():
            raise ValueError(
                f"neurons[{j}] must be a finite [L_j, {d}] matrix with L_j >= 1 (one row per neuron), "
                f"got shape {v.shape}"
            )
    num_clients = len(vs)
    sums = np.zeros((0, d))
    counts = np.zeros(0, dtype=np.int64)
    assignments: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in vs]

    def assign(j: int) -> None:
        nonlocal sums, counts
        size = counts.size
        rows, cols = scipy.optimize.linear_sum_assignment(cost(vs[j], sums, counts, num_clients))
        a = np.empty(vs[j].shape[0], dtype=np.int64)
        a[rows] = cols
        opened = np.sort(cols[cols >= size])
        a[cols >= size] = size + np.searchsorted(opened, cols[cols >= size])
        sums = np.vstack([sums, np.zeros((opened.size, d))])
        counts = np.concatenate([counts, np.zeros(opened.size, dtype=np.int64)])
        np.add.at(sums, a, vs[j])
        np.add.at(counts, a, 1)
        assignments[j] = a

    for j in sorted(range(num_clients), key=lambda k: -vs[k].shape[0]):
        assign(j)
    rng = np.random.default_rng(seed)
    sweeps = 1
    for _ in range(iterations - 1):
        sweeps += 1
        before = _partition(assignments)
        for j in rng.permutation(num_clients).tolist():
            np.subtract.at(sums, assignments[j], vs[j])
            np.subtract.at(counts, assignments[j], 1)
            keep = counts > 0
            remap = np.cumsum(keep) - 1
            sums, counts = sums[keep], counts[keep]
            for k in range(num_clients):
                if k != j:
                    assignments[k] = remap[assignments[k]]
            assign(j)
        if _partition(assignments) == before:
            break
    return Matching(tuple(assignments), int(counts.size), sweeps)
