"""Per-client held-out splits: disjoint, complete, reproducible, every client on both sides."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from robustfl.data.holdout import client_holdout


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@given(st.lists(st.integers(2, 200), min_size=1, max_size=12), st.floats(0.01, 0.95), st.integers(0, 9))
def test_split_is_a_partition_of_each_client(sizes: list[int], fraction: float, seed: int) -> None:
    offsets = torch.tensor([0, *sizes]).cumsum(0)
    parts = [torch.arange(int(offsets[i]), int(offsets[i + 1])) for i in range(len(sizes))]
    train, test = client_holdout(parts, fraction, gen(seed))
    for part, tr, te, m in zip(parts, train, test, sizes, strict=True):
        assert tr.numel() >= 1 and te.numel() >= 1
        assert te.numel() == min(m - 1, max(1, round(fraction * m)))
        assert torch.equal(torch.cat([tr, te]).sort().values, part)


def test_reproducible_and_seed_dependent() -> None:
    parts = [torch.arange(0, 50), torch.arange(50, 120)]
    a, b, c = (client_holdout(parts, 0.2, gen(s)) for s in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in zip(a[1], b[1], strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a[1], c[1], strict=True))


def test_zero_fraction_keeps_the_partitions() -> None:
    parts = [torch.tensor([5, 3, 9]), torch.tensor([1])]
    train, test = client_holdout(parts, 0.0, gen())
    assert all(torch.equal(p, t) for p, t in zip(parts, train, strict=True))
    assert [t.numel() for t in test] == [0, 0]


def test_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"client 1 holds 1 sample\(s\).*min_size"):
        client_holdout([torch.arange(4), torch.tensor([7])], 0.2, gen())
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="client_test_fraction must be"):
            client_holdout([torch.arange(4)], bad, gen())  # type: ignore[arg-type]
