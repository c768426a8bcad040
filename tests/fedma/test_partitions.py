"""The data-bias (skewed grayscale) and data-efficiency (5×5) partitions of FedMA's §5.2."""

import pytest
import torch

from robustfl.data import grayscale_skew, partition, to_grayscale

LABELS = torch.arange(10).repeat_interleave(40)  # 10 balanced classes of 40 samples


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_grayscale_skew_makes_half_the_classes_mostly_gray() -> None:
    gray = grayscale_skew(LABELS, gen())
    shares = torch.stack([gray[k == LABELS].double().mean() for k in range(10)])
    assert sorted(shares.tolist()) == [0.05] * 5 + [0.95] * 5
    test_gray = grayscale_skew(LABELS, gen(), majority=0.5, minority=0.5)
    assert all(test_gray[k == LABELS].sum() == 20 for k in range(10))
    fixed = grayscale_skew(LABELS, gen(), biased_classes=torch.tensor([0, 3]))
    assert fixed[LABELS == 3].double().mean() == 0.95 and fixed[LABELS == 4].double().mean() == 0.05


@pytest.mark.parametrize("split", ["domain", "classes"])
def test_grayscale_split_into_two_clients(split: str) -> None:
    gray = grayscale_skew(LABELS, gen())
    a, b = partition(LABELS, 2, "grayscale-skew", generator=gen(), gray=gray, split=split)
    assert a.numel() + b.numel() == 400 and not set(a.tolist()) & set(b.tolist())
    if split == "domain":
        assert gray[a].all() and not gray[b].any()
    else:
        assert LABELS[a].unique().numel() == 5 and gray[a].double().mean() == 0.95


def test_to_grayscale_removes_colour_only_where_asked() -> None:
    x = torch.randn(4, 3, 5, 5, generator=gen())
    out = to_grayscale(x, torch.tensor([True, False, True, False]))
    assert torch.equal(out[1], x[1]) and torch.equal(out[3], x[3])
    assert torch.equal(out[0, 0], out[0, 1]) and torch.equal(out[0, 1], out[0, 2])
    torch.testing.assert_close(out[2, 0], 0.299 * x[2, 0] + 0.587 * x[2, 1] + 0.114 * x[2, 2])


def test_data_efficiency_is_five_homogeneous_pieces_of_five_heterogeneous_clients() -> None:
    labels = torch.arange(10).repeat_interleave(200)
    parts = partition(labels, 25, "data-efficiency", generator=gen(), piece_alpha=0.5)
    assert len(parts) == 25
    assert sum(p.numel() for p in parts) == 2000 and torch.cat(parts).unique().numel() == 2000
    pieces = [torch.cat(parts[5 * i : 5 * i + 5]) for i in range(5)]
    # every piece is homogeneous: 400 samples with every class present in roughly equal shares
    for piece in pieces:
        assert piece.numel() == 400
        counts = torch.bincount(labels[piece], minlength=10)
        assert counts.min() >= 20 and counts.max() <= 60
    # within a piece the clients are label-skewed: some class share far from 1/10 on some client
    shares = [torch.bincount(labels[p], minlength=10) / p.numel() for p in parts]
    assert max(float(s.max()) for s in shares) > 0.3


def test_errors_name_the_option() -> None:
    with pytest.raises(ValueError, match="gray="):
        partition(LABELS, 2, "grayscale-skew", generator=gen())
    with pytest.raises(ValueError, match="2 clients"):
        partition(LABELS, 3, "grayscale-skew", generator=gen(), gray=grayscale_skew(LABELS, gen()))
    with pytest.raises(ValueError, match="split"):
        partition(LABELS, 2, "grayscale-skew", generator=gen(), gray=grayscale_skew(LABELS, gen()), split="x")
    with pytest.raises(ValueError, match="pieces"):
        partition(LABELS, 12, "data-efficiency", generator=gen())
    with pytest.raises(ValueError, match="majority"):
        grayscale_skew(LABELS, gen(), majority=1.5)
    with pytest.raises(ValueError, match="biased_classes"):
        grayscale_skew(LABELS, gen(), biased_classes=11)
    with pytest.raises(ValueError, match="colour images"):
        to_grayscale(torch.zeros(2, 1, 4, 4))
