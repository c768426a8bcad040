"""Gossip maths: topologies and mixing weights, CHOCO steps, neighbour rules, Byzantine edges."""

import math

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import Median, TrimmedMean
from robustfl.algorithms import Gossip
from robustfl.attacks import ATTACKS
from robustfl.compressors import COMPRESSORS
from robustfl.engine.gossip import GossipNetwork, consensus_distance
from robustfl.engine.neighbours import NeighbourRule
from robustfl.streams import Streams
from robustfl.topology import TOPOLOGIES, build_topology, check_topology, make_graph, spectral_gap


def quad_grad(params: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x) = 1/2 ||x - mean(batch)||^2: gradient and loss."""
    diff = params - x.mean(dim=0)
    return diff, 0.5 * diff.pow(2).sum()


def network(topology: str, n: int, rule: str = "weighted", d: int = 5, **kw: object) -> GossipNetwork:
    topo = build_topology(topology, n, seed=0)
    neighbour_rule = NeighbourRule(
        topo,
        rule,
        tau=kw.pop("tau", None),  # type: ignore[arg-type]
        clip_count=kw.pop("clip_count", 1),  # type: ignore[arg-type]
        aggregator=kw.pop("aggregator", None),  # type: ignore[arg-type]
    )
    return GossipNetwork(neighbour_rule, torch.zeros(d), Streams(0), **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ topologies
@pytest.mark.parametrize(("name", "n"), [("ring", 10), ("torus", 12), ("erdos-renyi", 20), ("complete", 7)])
def test_mixing_matrix_is_symmetric_doubly_stochastic_on_the_graph(name: str, n: int) -> None:
    topo = build_topology(name, n, seed=3)
    w = topo.weights
    assert nx.is_connected(topo.graph) and topo.n == n
    torch.testing.assert_close(w, w.T)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(n, dtype=torch.float64))
    torch.testing.assert_close(w.sum(dim=0), torch.ones(n, dtype=torch.float64))
    assert bool((w >= 0).all())
    adjacent = torch.tensor(nx.to_numpy_array(topo.graph, nodelist=range(n))) > 0
    off_graph = ~adjacent & ~torch.eye(n, dtype=torch.bool)
    assert bool((w[off_graph] == 0).all()) and bool((w[adjacent] > 0).all())
    assert 0 < topo.spectral_gap <= 1


def test_spectral_gaps_match_the_closed_forms() -> None:
    # ring, Metropolis weights 1/3: eigenvalues (1 + 2 cos(2 pi k / n)) / 3, the smallest -1/3 for even n
    n = 16
    expected = 1 - max((1 + 2 * math.cos(2 * math.pi / n)) / 3, 1 / 3)
    assert build_topology("ring", n).spectral_gap == pytest.approx(expected, abs=1e-9)
    assert build_topology("complete", 9).spectral_gap == pytest.approx(1.0, abs=1e-9)
    assert spectral_gap(torch.eye(4, dtype=torch.float64)) == pytest.approx(0.0, abs=1e-12)


def test_graph_shapes_and_seeded_erdos_renyi() -> None:
    torus = make_graph("torus", 12)
    assert sorted({d for _, d in torus.degree()}) == [4] and torus.number_of_edges() == 24
    assert {d for _, d in make_graph("ring", 9).degree()} == {2}
    a, b = make_graph("erdos-renyi", 30, seed=1), make_graph("erdos-renyi", 30, seed=1)
    assert sorted(a.edges()) == sorted(b.edges())
    assert sorted(a.edges()) != sorted(make_graph("erdos-renyi", 30, seed=2).edges())
    assert nx.is_connected(make_graph("erdos-renyi", 30, p=0.2, seed=5))


def test_topology_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="topology must be one of"):
        check_topology("star")
    with pytest.raises(ValueError, match="torus needs n = r x c"):
        make_graph("torus", 10)
    with pytest.raises(ValueError, match="erdos-renyi' only"):
        check_topology("ring", p=0.5)
    with pytest.raises(ValueError, match="raise p"):
        make_graph("erdos-renyi", 40, p=0.01)
    assert set(TOPOLOGIES) == {"ring", "torus", "erdos-renyi", "complete"}


# ------------------------------------------------------------------------------------ CHOCO steps
def test_identity_compressor_complete_graph_gamma_one_averages_exactly() -> None:
    models = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    result = network("complete", 6, d=8, gamma=1.0).run(models, 0)
    torch.testing.assert_close(result.models, models.mean(dim=0).expand(6, 8), atol=1e-6, rtol=0)
    assert result.bits == 6 * 5 * 32 * 8  # every directed link carries 8 float32 values


def test_choco_with_a_contractive_compressor_reaches_consensus_and_keeps_the_mean() -> None:
    models = torch.randn(8, 20, generator=torch.Generator().manual_seed(1))
    net = network("ring", 8, d=20, gamma=0.3, steps=400, compressor=COMPRESSORS.get("topk", k=4))
    result = net.run(models, 0)
    keep = torch.ones(8, dtype=torch.bool)
    assert consensus_distance(result.models, keep) < 1e-8 * consensus_distance(models, keep)
    torch.testing.assert_close(result.models.mean(dim=0), models.mean(dim=0), atol=1e-5, rtol=0)
    # top-4 of 20 values: 4 float32 values and 4 indices of ceil(log2 20) = 5 bits, per link and step
    assert result.bits < 400 * 16 * 20 * 32 / 2


def quadratic_run(
    topology: str,
    n: int,
    rounds: int,
    rule: str = "weighted",
    byzantine: torch.Tensor | None = None,
    **kw: object,
) -> tuple[float, float]:
    """Decentralised SGD on f_i(x) = 1/2 ||x - t_i||^2 (the algorithm's own client step, lr 0.5/(1+t/10));
    returns the honest nodes' largest distance to the honest optimum and the targets' spread."""
    d, steps = 5, 2
    targets = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    keep = torch.ones(n, dtype=torch.bool) if byzantine is None else ~byzantine
    optimum = targets[keep].mean(dim=0)
    alg = Gossip(topology=topology, gossip_steps=steps, rule=rule)  # type: ignore[arg-type]
    net = network(topology, n, rule, d=d, steps=steps, byzantine=byzantine, **kw)
    models, ys = torch.zeros(n, d), torch.zeros(1, 4)
    for r in range(rounds):
        lr = 0.5 / (1 + r / 10)
        local = [
            alg.client_step({}, targets[i].expand(1, 4, d), ys, {"model": models[i]}, lr, quad_grad)
            for i in range(n)
        ]
        models = net.run(torch.stack([out.state["model"] for out in local]), r).models
    error = float((models[keep] - optimum).norm(dim=1).max())
    return error, float((targets[keep] - optimum).norm(dim=1).max())


@pytest.mark.parametrize("topology", ["ring", "torus"])
def test_without_attackers_every_node_reaches_the_optimum_of_a_convex_problem(topology: str) -> None:
    error, spread = quadratic_run(topology, 9, 300)
    assert error < 0.05 * spread


def test_clipped_gossip_stays_bounded_where_plain_gossip_diverges() -> None:
    byzantine = torch.zeros(9, dtype=torch.bool)
    byzantine[4] = True
    attack = ATTACKS.get("constant", value=1e4)
    plain, spread = quadratic_run("torus", 9, 60, "weighted", byzantine, attack=attack)
    clipped, _ = quadratic_run("torus", 9, 60, "clip", byzantine, attack=attack)
    assert plain > 100 * spread
    assert clipped < spread


def test_byzantine_edges_tailor_each_receivers_copy_and_count_their_bits() -> None:
    byzantine = torch.tensor([True] + [False] * 5)
    seen = []

    def attack(honest: torch.Tensor, f: int, *, rng: object, round: int, own: torch.Tensor) -> torch.Tensor:
        seen.append((honest.shape[0], f))
        return honest.mean(dim=0, keepdim=True).expand(f, -1) + 100.0

    net = network("ring", 6, d=3, byzantine=byzantine, attack=attack)
    result = net.run(torch.zeros(6, 3), 0)
    # node 0's neighbours on the ring are 1 and 5; each sees itself and its other, honest neighbour
    assert seen == [(2, 1), (2, 1)]
    torch.testing.assert_close(net.copies, torch.full((2, 3), 100.0))
    assert result.bits == 12 * 32 * 3  # 12 directed links, honest or not, one message each
    assert float(result.models[1].mean()) == pytest.approx(100.0 / 3)  # Metropolis weight 1/3


# ------------------------------------------------------------------------------------ neighbour rules
@pytest.mark.parametrize("rule", [Median(), TrimmedMean(f=1)])
@pytest.mark.parametrize(("topology", "n"), [("torus", 9), ("erdos-renyi", 14)])
def test_vectorised_coordinatewise_rules_equal_one_call_per_node(rule: object, topology: str, n: int) -> None:
    topo = build_topology(topology, n, p=0.6 if topology == "erdos-renyi" else None, seed=2)
    assert int(topo.degrees.min()) >= 2
    gen = torch.Generator().manual_seed(0)
    public = torch.randn(n, 6, generator=gen)
    src, dst = topo.edges
    slot = torch.full((len(src),), -1, dtype=torch.long)
    slot[:3] = torch.arange(3)
    overrides = torch.randn(3, 6, generator=gen) * 50
    out = NeighbourRule(topo, "aggregator", aggregator=rule).__call__(public, slot, overrides)  # type: ignore[arg-type]
    for i in range(n):
        rows = [public[i]] + [
            overrides[slot[e]] if slot[e] >= 0 else public[src[e]] for e in (dst == i).nonzero()[:, 0]
        ]
        torch.testing.assert_close(out[i], rule(torch.stack(rows)))  # type: ignore[operator]


def test_clip_with_an_infinite_radius_is_the_weighted_rule_and_adaptive_clips_the_farthest() -> None:
    topo = build_topology("ring", 5)
    public = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]])
    slot = torch.full((10,), -1, dtype=torch.long)
    none = torch.zeros(0, 1)
    weighted = NeighbourRule(topo, "weighted")(public, slot, none)
    torch.testing.assert_close(NeighbourRule(topo, "clip", tau=1e30)(public, slot, none), weighted)
    adaptive = NeighbourRule(topo, "clip")
    out = adaptive(public, slot, none)
    # node 0: neighbours 1 (distance 1) and 4 (distance 10, clipped to 1): 0 + (1 + 1) / 3
    assert float(out[0]) == pytest.approx(2 / 3)
    assert float(out[2]) == pytest.approx(3 + (-2 + 2) / 3)  # neighbours at -2 and +3: the +3 clipped to 2
    assert adaptive.clipped == 5


def test_non_finite_copies_contribute_nothing_to_clipped_gossip() -> None:
    topo = build_topology("ring", 4)
    public = torch.zeros(4, 2)
    src, dst = topo.edges
    slot = torch.full((len(src),), -1, dtype=torch.long)
    slot[((src == 0) & (dst == 1)).nonzero()[0]] = 0
    out = NeighbourRule(topo, "clip", tau=1.0)(public, slot, torch.full((1, 2), float("nan")))
    torch.testing.assert_close(out, public)


def test_rule_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="clip_count = 2 must be below every node's degree"):
        NeighbourRule(build_topology("ring", 6), "clip", clip_count=2)
    with pytest.raises(ValueError, match="gives a node 3 rows"):
        NeighbourRule(build_topology("ring", 6), "aggregator", aggregator=TrimmedMean(f=2))
    with pytest.raises(ValueError, match="tau is the clipping radius"):
        Gossip(rule="weighted", tau=1.0)
    with pytest.raises(ValueError, match="gamma"):
        Gossip(gamma=1.5)
    with pytest.raises(ValueError, match="rule must be one of"):
        Gossip(rule="krum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no server step"):
        Gossip().server_step(torch.zeros(2), torch.zeros(1, 2), Median(), {}, 0.1, 0, None)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 24), p=st.floats(0.3, 1.0), seed=st.integers(0, 1000))
def test_erdos_renyi_mixing_matrices_are_doubly_stochastic(n: int, p: float, seed: int) -> None:
    topo = build_topology("erdos-renyi", n, p=p, seed=seed)
    w = topo.weights
    assert nx.is_connected(topo.graph)
    torch.testing.assert_close(w, w.T)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(n, dtype=torch.float64))
    assert bool((w >= 0).all()) and 0 < topo.spectral_gap <= 1


def test_other_rules_run_once_per_node_on_their_own_copy() -> None:
    from robustfl.aggregators import AGGREGATORS

    topo = build_topology("erdos-renyi", 10, p=0.7, seed=1)
    rule = AGGREGATORS.get("krum", f=1)
    public = torch.randn(10, 4, generator=torch.Generator().manual_seed(3))
    slot = torch.full((len(topo.edges[0]),), -1, dtype=torch.long)
    neighbour_rule = NeighbourRule(topo, "aggregator", aggregator=rule)
    assert len(neighbour_rule.per_node) == 10 and neighbour_rule.per_node[0] is not rule
    out = neighbour_rule(public, slot, torch.zeros(0, 4))
    for i in range(10):
        rows = torch.stack([public[i], *[public[j] for j in topo.neighbours(i)]])
        torch.testing.assert_close(out[i], rule(rows))
