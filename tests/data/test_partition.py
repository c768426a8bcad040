import pytest
import torch

from robustfl.data import partition, partition_summary


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


LABELS = torch.arange(1000) % 10


def check_disjoint(parts: list[torch.Tensor], n: int, covering: bool) -> None:
    allidx = torch.cat(parts)
    assert allidx.unique().numel() == allidx.numel(), "a sample is assigned twice"
    assert int(allidx.min()) >= 0 and int(allidx.max()) < n
    assert all(p.numel() > 0 for p in parts)
    assert all(p.dtype == torch.int64 for p in parts)
    if covering:
        assert allidx.numel() == n


def test_iid_is_a_balanced_disjoint_cover() -> None:
    parts = partition(LABELS, 7, "iid", generator=gen())
    check_disjoint(parts, 1000, covering=True)
    sizes = [p.numel() for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_iid_is_reproducible_from_the_generator() -> None:
    a = partition(LABELS, 5, generator=gen(1))
    b = partition(LABELS, 5, generator=gen(1))
    c = partition(LABELS, 5, generator=gen(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_options_of_other_schemes_at_their_defaults_are_ignored() -> None:
    plain = partition(LABELS, 4, "iid", generator=gen())
    padded = partition(LABELS, 4, "iid", generator=gen(), alpha=0.5, shards_per_client=2, own_fraction=0.5)
    assert all(torch.equal(a, b) for a, b in zip(plain, padded, strict=True))


def test_size_skew_makes_sizes_unequal_but_keeps_a_cover() -> None:
    parts = partition(LABELS, 10, "iid", generator=gen(), size_skew=1.0)
    check_disjoint(parts, 1000, covering=True)
    sizes = sorted(p.numel() for p in parts)
    # power law with exponent 1: the largest share is 10x the smallest
    assert sizes[-1] / sizes[0] == pytest.approx(10.0, rel=0.05)


def test_partition_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown partition scheme 'foo'.*iid"):
        partition(LABELS, 3, "foo", generator=gen())
    with pytest.raises(ValueError, match="num_clients"):
        partition(LABELS, 0, generator=gen())
    with pytest.raises(ValueError, match="exceeds"):
        partition(LABELS[:3], 4, generator=gen())
    with pytest.raises(ValueError, match="no option 'alpah'.*dirichlet: alpha, min_size"):
        partition(LABELS, 3, "iid", generator=gen(), alpah=0.1)
    with pytest.raises(ValueError, match="alpha=0.1 applies to scheme dirichlet, not 'iid'"):
        partition(LABELS, 3, "iid", generator=gen(), alpha=0.1)
    with pytest.raises(ValueError, match="size_skew"):
        partition(LABELS[:20], 10, "iid", generator=gen(), size_skew=5.0)


@pytest.mark.parametrize(
    ("scheme", "options"),
    [("iid", {}), ("dirichlet", {"alpha": 0.3}), ("shards", {"shards_per_client": 3}), ("crsa", {})],
)
def test_covering_schemes_are_disjoint_covers_and_reproducible(scheme: str, options: dict) -> None:
    a = partition(LABELS, 8, scheme, generator=gen(5), **options)
    b = partition(LABELS, 8, scheme, generator=gen(5), **options)
    assert len(a) == 8
    check_disjoint(a, 1000, covering=True)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def label_entropy(parts: list[torch.Tensor], labels: torch.Tensor) -> float:
    """Mean over clients of the entropy of the client's label distribution."""
    out = []
    for p in parts:
        q = torch.bincount(labels[p], minlength=10).double()
        q = q[q > 0] / q.sum()
        out.append(float(-(q * q.log()).sum()))
    return sum(out) / len(out)


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    labels = torch.arange(5000) % 10
    ent = {
        alpha: sum(
            label_entropy(partition(labels, 10, "dirichlet", generator=gen(s), alpha=alpha), labels)
            for s in range(3)
        )
        for alpha in (100.0, 1.0, 0.1)
    }
    assert ent[100.0] > 2.2  # close to IID: log(10) = 2.30
    assert ent[100.0] > ent[1.0] + 0.3 > ent[0.1] + 0.6


def test_dirichlet_min_size_and_errors() -> None:
    parts = partition(LABELS, 10, "dirichlet", generator=gen(), alpha=0.5, min_size=20)
    assert min(p.numel() for p in parts) >= 20
    with pytest.raises(ValueError, match="raise alpha"):
        partition(LABELS[:30], 30, "dirichlet", generator=gen(), alpha=0.01)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        partition(LABELS, 3, "dirichlet", generator=gen(), alpha=0.0)


def test_shards_give_k_labels_per_client() -> None:
    # 1000 samples in 10 label blocks of 100; 50 shards of 20 never straddle a label boundary
    for k in (1, 2, 5):
        parts = partition(LABELS, 50 // k, "shards", generator=gen(k), shards_per_client=k)
        for p in parts:
            assert p.numel() == 20 * k
            assert LABELS[p].unique().numel() <= k
    parts = partition(LABELS, 25, "shards", generator=gen(), shards_per_client=2)
    assert sum(LABELS[p].unique().numel() == 2 for p in parts) > 15
    with pytest.raises(ValueError, match="shards_per_client"):
        partition(LABELS, 600, "shards", generator=gen(), shards_per_client=2)


def test_labels_scheme_gives_exactly_k_distinct_labels() -> None:
    parts = partition(LABELS, 12, "labels", generator=gen(), labels_per_client=3)
    check_disjoint(parts, 1000, covering=False)
    assert all(LABELS[p].unique().numel() == 3 for p in parts)
    # client j always holds label j mod 10
    assert all(int(j % 10) in LABELS[p].tolist() for j, p in enumerate(parts))
    with pytest.raises(ValueError, match="labels_per_client"):
        partition(LABELS, 4, "labels", generator=gen(), labels_per_client=11)


def test_crsa_gives_half_of_each_label_to_its_worker_and_spreads_the_rest() -> None:
    labels = torch.arange(2000) % 10  # 200 per label
    parts = partition(labels, 10, "crsa", generator=gen())
    check_disjoint(parts, 2000, covering=True)
    for k, p in enumerate(parts):
        assert p.numel() == 200
        counts = torch.bincount(labels[p], minlength=10)
        # 100 own samples of label k plus about a tenth of the 1000 pooled ones (10 per label on average)
        assert counts[k] >= 100
        assert int(counts.sum() - counts[k]) < 100 + 40
        assert int(counts.argmax()) == k
    own = partition(labels, 10, "crsa", generator=gen(), own_fraction=1.0)
    assert all(torch.equal(labels[p].unique(), torch.tensor([k])) for k, p in enumerate(own))
    with pytest.raises(ValueError, match="own_fraction"):
        partition(labels, 10, "crsa", generator=gen(), own_fraction=1.5)


def test_summary_table_counts_labels() -> None:
    parts = partition(LABELS, 4, "labels", generator=gen(), labels_per_client=2)
    table = partition_summary(parts, LABELS, 10)
    assert table.row_count == 5
    samples = list(table.columns[1].cells)
    assert samples[:4] == [str(p.numel()) for p in parts]
    wide = partition_summary(parts, LABELS, 40)
    assert len(wide.columns) == 4
