import pytest
import torch

from robustfl.data import partition


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
    with pytest.raises(ValueError, match="has no option alpah"):
        partition(LABELS, 3, "iid", generator=gen(), alpah=0.1)
    with pytest.raises(ValueError, match="size_skew"):
        partition(LABELS[:20], 10, "iid", generator=gen(), size_skew=5.0)
