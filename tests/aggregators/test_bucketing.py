import pytest
import torch

from robustfl.aggregators import Bucketing
from robustfl.utils import make_generator


def test_buckets_are_means_of_a_seeded_permutation() -> None:
    x = torch.arange(7 * 2, dtype=torch.float64).view(7, 2)
    agg = Bucketing(s=3, seed=5)
    out = agg(x)
    assert out.shape == (3, 2)
    perm = torch.randperm(7, generator=make_generator(5, "bucketing")).tolist()
    buckets = [perm[0:3], perm[3:6], perm[6:7]]
    expected = torch.stack([x[b].sum(0) / len(b) for b in buckets])
    assert torch.equal(out, expected)


def test_every_row_used_exactly_once() -> None:
    x = torch.randn(10, 3, dtype=torch.float64)
    out = Bucketing(s=4)(x)
    sizes = torch.tensor([4.0, 4.0, 2.0], dtype=torch.float64)
    assert out.shape == (3, 3)
    assert torch.allclose((out * sizes[:, None]).sum(0), x.sum(0))


def test_reset_reseeds_and_calls_differ() -> None:
    x = torch.randn(9, 2)
    agg = Bucketing(s=2, seed=1)
    first, second = agg(x), agg(x)
    assert not torch.equal(first, second)
    agg.reset()
    assert torch.equal(agg(x), first)
    assert torch.equal(Bucketing(s=2, seed=1)(x), first)


def test_s_one_is_a_permutation() -> None:
    x = torch.randn(6, 3)
    out = Bucketing(s=1)(x)
    assert torch.equal(out.sort(0).values, x.sort(0).values)


def test_validation() -> None:
    with pytest.raises(ValueError, match="s must be >= 1"):
        Bucketing(s=0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        Bucketing(s=2, seed="x")  # type: ignore[arg-type]
    assert "seed=3" in repr(Bucketing(2, seed=3))
