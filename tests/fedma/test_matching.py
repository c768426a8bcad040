"""Neuron matching (eq. 5.3): permuted neurons are matched back, the global size stays in its bounds."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.algorithms.fedma import BBPMAPCost, SquaredEuclideanCost, match_neurons

COSTS = [BBPMAPCost(), BBPMAPCost(gamma0=1e-3), SquaredEuclideanCost(), SquaredEuclideanCost(threshold=5.0)]


@pytest.mark.parametrize("cost", COSTS, ids=repr)
def test_permuted_neurons_are_matched_back(cost: object) -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(24, 40, generator=g)
    perms = [torch.randperm(24, generator=g) for _ in range(5)]
    clients = [base[p] + 0.02 * torch.randn(24, 40, generator=g) for p in perms]
    m = match_neurons(clients, cost)  # type: ignore[arg-type]
    assert m.size == 24
    # client j's row l is base[perms[j][l]]: every copy of one base neuron lands on one global neuron
    owner = [
        dict(zip(p.tolist(), a.tolist(), strict=True)) for p, a in zip(perms, m.assignments, strict=True)
    ]
    for r in range(24):
        assert len({o[r] for o in owner}) == 1
    assert sorted(m.counts.tolist()) == [5] * 24


def test_unshared_neurons_open_new_global_neurons() -> None:
    g = torch.Generator().manual_seed(1)
    shared = torch.randn(12, 30, generator=g)
    clients = [
        torch.cat([shared, torch.randn(4, 30, generator=g)])[torch.randperm(16, generator=g)]
        for _ in range(3)
    ]
    for cost in (BBPMAPCost(), SquaredEuclideanCost(threshold=10.0)):
        m = match_neurons(clients, cost)
        assert m.size == 12 + 3 * 4
        assert sorted(m.counts.tolist()) == [1] * 12 + [3] * 12
    # without a threshold the squared-Euclidean matching keeps the largest client's size
    assert match_neurons(clients, SquaredEuclideanCost()).size == 16


def test_gamma0_controls_growth() -> None:
    g = torch.Generator().manual_seed(2)
    base = torch.randn(20, 10, generator=g)
    clients = [base + 0.6 * torch.randn(20, 10, generator=g) for _ in range(4)]
    sizes = [match_neurons(clients, BBPMAPCost(gamma0=g0)).size for g0 in (1e-3, 7.0, 1e3)]
    assert sizes[0] <= sizes[1] <= sizes[2] and sizes[0] < sizes[2]


def test_bbp_cost_ranks_existing_neurons_by_distance() -> None:
    rng = np.random.default_rng(3)
    sums, counts = rng.normal(size=(6, 8)) * 3, np.full(6, 3)
    v = rng.normal(size=(5, 8))
    cost = BBPMAPCost(sigma_sq=0.5)(v, sums, counts, 4)[:, :6]
    # with equal counts, the Gaussian term is an increasing affine function of ‖v - posterior mean‖²
    lam = 1.0 + 3 / 0.5
    post = (sums / 0.5) / lam
    dist = ((v[:, None, :] - post[None]) ** 2).sum(-1)
    for row_cost, row_dist in zip(cost, dist, strict=True):
        assert np.array_equal(np.argsort(row_cost), np.argsort(row_dist))
        slope = np.polyfit(row_dist, row_cost, 1)[0]
        assert slope > 0
        np.testing.assert_allclose(
            row_cost, np.polyval(np.polyfit(row_dist, row_cost, 1), row_dist), atol=1e-9
        )


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 7), min_size=1, max_size=5),
    seed=st.integers(0, 10_000),
    euclid=st.booleans(),
)
def test_global_size_bounds_and_injective_assignments(sizes: list[int], seed: int, euclid: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    clients = [torch.randn(s, 3, generator=g) for s in sizes]
    cost = SquaredEuclideanCost(threshold=2.0) if euclid else BBPMAPCost()
    m = match_neurons(clients, cost, iterations=3, seed=seed)
    assert max(sizes) <= m.size <= sum(sizes)
    for a, s in zip(m.assignments, sizes, strict=True):
        assert a.shape == (s,) and len(set(a.tolist())) == s and a.min() >= 0 and a.max() < m.size
    assert (m.counts >= 1).all()


def test_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="neurons"):
        match_neurons([])
    with pytest.raises(ValueError, match=r"neurons\[1\]"):
        match_neurons([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(ValueError, match="iterations"):
        match_neurons([torch.zeros(2, 3)], iterations=0)
    with pytest.raises(ValueError, match="gamma0"):
        BBPMAPCost(gamma0=0)
    with pytest.raises(ValueError, match="sigma_sq"):
        BBPMAPCost(sigma_sq=-1.0)
    with pytest.raises(ValueError, match="threshold"):
        SquaredEuclideanCost(threshold=float("inf"))
