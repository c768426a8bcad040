import itertools

import pytest
import torch
from coding_helpers import honest_messages
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl import aggregators, coding
from robustfl.coding import Detox, expected_byzantine_votes


def test_node_groups_are_a_fixed_random_partition_and_assignment_follows_them() -> None:
    scheme = Detox(workers=12, r=3, seed=5)
    groups = scheme.node_groups()
    assert sorted(w for g in groups for w in g) == list(range(12))
    assert (
        groups == Detox(workers=12, r=3, seed=5).node_groups() != Detox(workers=12, r=3, seed=6).node_groups()
    )
    assignment = scheme.assignment()
    for g, members in enumerate(groups):
        for w in members:
            assert assignment[w] == [3 * g, 3 * g + 1, 3 * g + 2]
    assert scheme.redundancy == 3


@settings(max_examples=15, deadline=None)
@given(groups=st.integers(1, 8), seed=st.integers(0, 1000), data=st.data())
def test_one_byzantine_per_group_of_three_leaves_every_vote_honest(
    groups: int, seed: int, data: st.DataObject
) -> None:
    P = 3 * groups
    scheme = Detox(workers=P, r=3, seed=seed)
    parts = torch.randn(P, 5, generator=torch.Generator().manual_seed(seed))
    clean = honest_messages(scheme, parts)
    attacked = clean.clone()
    byz = [data.draw(st.sampled_from(members)) for members in scheme.node_groups()]
    attacked[byz] = data.draw(st.sampled_from([-100.0, float("inf"), float("nan"), 0.0]))
    votes, has = scheme.votes(attacked)
    assert has.all()
    assert torch.equal(votes, scheme.votes(clean)[0])
    torch.testing.assert_close(votes, parts.reshape(groups, 3, 5).mean(dim=1))  # each group's honest g_j
    out, report = scheme.decode_report(attacked)
    torch.testing.assert_close(out, parts.mean(dim=0), rtol=1e-5, atol=1e-6)
    assert report.no_majority == 0


def test_a_group_without_majority_votes_zero() -> None:
    scheme = Detox(workers=6, r=3, seed=0)
    clean = honest_messages(scheme, torch.randn(6, 4))
    attacked = clean.clone()
    first = scheme.node_groups()[0]
    attacked[first[0]] = 1.0
    attacked[first[1]] = 2.0
    votes, has = scheme.votes(attacked)
    assert has.tolist() == [False, True]
    assert torch.equal(votes[0], torch.zeros(4))
    assert scheme.decode_report(attacked)[1].no_majority == 1


@pytest.mark.parametrize("k", [1, 2, 4])
def test_hier_aggr_with_mean_mean_is_the_mean(k: int) -> None:
    scheme = Detox(workers=24, r=3, vote_groups=k, a0="mean", a1="mean")
    votes = torch.randn(8, 6, dtype=torch.float64)
    torch.testing.assert_close(scheme.hier_aggr(votes, torch.Generator().manual_seed(1)), votes.mean(dim=0))


def test_hier_aggr_applies_a0_per_vote_group_then_a1() -> None:
    scheme = Detox(workers=15, r=3, vote_groups=5, a0="mean", a1="median")
    votes = torch.arange(5.0).unsqueeze(1).repeat(1, 2)  # 5 votes, one per vote group
    votes[4] = 1e6  # one Byzantine vote cannot move the median of the five group means
    assert torch.equal(scheme.hier_aggr(votes), torch.tensor([2.0, 2.0]))
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    wide = Detox(workers=45, r=3, vote_groups=3, a0="mean", a1="median")
    x = torch.randn(15, 4)
    assert torch.equal(wide.hier_aggr(x, gen_a), wide.hier_aggr(x, gen_b))


def test_the_four_setups_of_section_7_4() -> None:
    """45 workers, r = 3: 15 votes (§7.4.2) and the vote groups of §7.6.5."""
    med = coding.get("detox-median", workers=45)
    assert (type(med.a0), type(med.a1), med.vote_groups) == (aggregators.Average, aggregators.Median, 3)
    mk = coding.get("detox-multi-krum", workers=45)
    assert (type(mk.a0), type(mk.a1), mk.vote_groups, mk.a0.f) == (
        aggregators.MultiKrum,
        aggregators.Average,
        2,
        2,
    )
    bu = coding.get("detox-bulyan", workers=45)
    assert (type(bu.a0), type(bu.a1), bu.vote_groups, bu.a0.f) == (
        aggregators.Bulyan,
        aggregators.Average,
        1,
        3,
    )
    sg = coding.get("detox-signsgd", workers=45)
    assert type(sg.a0) is type(sg.a1) is aggregators.SignMajority
    one = coding.get("detox-signsgd", workers=45, vote_groups=1)
    signs = torch.sign(torch.randn(15, 10))  # signSGD: a node group's members all send sign(g_j)
    msg = torch.empty(45, 10)
    for g, members in enumerate(one.node_groups()):
        msg[members] = signs[g]
    msg[one.node_groups()[0][0]] = -1.0  # the constant attack of §7.4.2 on one member
    assert torch.equal(one.decode(msg), aggregators.SignMajority()(signs))


def test_any_pair_of_aggregators_and_instances() -> None:
    scheme = Detox(
        workers=27,
        r=3,
        vote_groups=3,
        a0=aggregators.TrimmedMean(f=1),
        a1="geometric-median",
        a1_params={"T": 50},
    )
    parts = torch.randn(27, 4, dtype=torch.float64)
    out = scheme.decode(honest_messages(scheme, parts))
    assert out.shape == (4,) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workers": 12, "r": 2}, "odd group size r that divides .* P=12, r=2"),
        ({"workers": 10, "r": 3}, "P=10, r=3"),
        ({"workers": 9, "r": 3, "vote_groups": 4}, "k <= P/r = 3 .* k=4"),
        (
            {"workers": 21, "r": 3, "vote_groups": 1, "a0": "bulyan", "a0_params": {"f": 2}},
            "cannot aggregate 7",
        ),
        ({"workers": 9, "r": 3, "a1": "nope"}, "unknown aggregator 'nope'"),
    ],
)
def test_incompatible_settings_fail_with_one_clear_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Detox(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("r", [1, 3, 5, 7])
def test_byzantine_votes_after_filtering_match_the_hypergeometric_expectation(r: int) -> None:
    """Monte-Carlo over random node groups (§7.2.1): E[q_hat] = (p/r) P[Byzantine majority in a group]."""
    p, q, trials = 105, 15, 300
    honest = torch.zeros(p, 2)
    attacked = honest.clone()
    attacked[:q] = -1.0  # a fixed Byzantine set Q sending one agreed vector
    counts = []
    for seed in range(trials):
        votes, _ = Detox(workers=p, r=r, seed=seed).votes(attacked)
        counts.append(float((votes == -1.0).all(dim=1).sum()))
    mc = torch.tensor(counts)
    expected = expected_byzantine_votes(p, q, r)
    assert abs(mc.mean().item() - expected) < 5 * mc.std().item() / trials**0.5 + 1e-9
    if r == 1:
        assert expected == pytest.approx(q)


def test_expected_byzantine_votes_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="q <= p"):
        expected_byzantine_votes(10, 11, 3)
    with pytest.raises(ValueError, match="r must be >= 1"):
        expected_byzantine_votes(10, 1, 0)


def test_expected_byzantine_votes_fall_quickly_with_r() -> None:
    values = [expected_byzantine_votes(45, 5, r) for r in (1, 3, 5, 9, 15)]
    assert values[0] == pytest.approx(5)
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[2] < 0.2 * values[1]  # exponential, not linear, decay (Thm 7.1)


@pytest.mark.parametrize(("p", "q"), [(6, 1), (45, 5), (99, 12), (300, 40)])
def test_lemma_7_5_bounds_the_r3_expectation(p: int, q: int) -> None:
    eps = q / p
    assert expected_byzantine_votes(p, q, 3) <= q * (4 * eps - 2 * eps**2) / 3


@pytest.mark.parametrize(("p", "q", "r"), [(400, 8, 5), (400, 9, 7), (2000, 45, 9), (30, 0, 5)])
def test_theorem_7_4_bounds_the_expectation_for_r_above_3(p: int, q: int, r: int) -> None:
    eps = q / p
    assert eps < 1 / 40 and p >= 2 * r
    assert expected_byzantine_votes(p, q, r) <= 2 * q * (40 * eps * (1 - eps)) ** ((r - 1) / 2) / r


def test_decode_report_metrics_are_flat_numbers() -> None:
    scheme = Detox(workers=6, r=3)
    msg = honest_messages(scheme, torch.randn(6, 3))
    msg[scheme.node_groups()[1][2]] = 5.0
    metrics = scheme.decode_report(msg)[1].metrics()
    assert metrics["located_adversaries"] == 1.0 and metrics["groups_without_majority"] == 0.0
    assert metrics["decode_seconds"] >= 0 and "locator_residual" not in metrics
