"""CohortInputs: the cohort's minibatches gathered by chunks equal the whole gather, bit for bit."""

from __future__ import annotations

import pytest
import torch

from robustfl.engine.augment import Augment
from robustfl.engine.inputs import CohortInputs
from robustfl.streams import Streams


def inputs(augment: Augment) -> tuple[CohortInputs, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    store = torch.randn(40, 3, 8, 8, generator=gen)
    idx = torch.randint(40, (7, 2, 5), generator=gen)  # 7 clients, 2 local steps, batch 5
    ids = torch.tensor([3, 11, 0, 8, 5, 2, 9])
    lazy = CohortInputs(store, idx, ids, augment, Streams(4), round=6)
    whole = augment(store[idx], ids, Streams(4), 6)
    return lazy, whole


@pytest.mark.parametrize(
    "augment", [Augment(), Augment(crop_padding=2, flip=True)], ids=["plain", "augmented"]
)
def test_rows_read_by_chunks_equal_the_whole_gather(augment: Augment) -> None:
    lazy, whole = inputs(augment)
    assert lazy.shape == whole.shape and len(lazy) == 7 and lazy.device == whole.device
    assert torch.equal(torch.cat([lazy[0:3], lazy[3:5], lazy[5:7]]), whole)
    assert torch.equal(lazy.gather(), whole)
    for i in (0, 4, 6, -1):
        assert torch.equal(lazy[i], whole[i])


def test_indices_must_match_the_clients() -> None:
    with pytest.raises(ValueError, match="idx has 2 rows"):
        CohortInputs(
            torch.zeros(4, 1),
            torch.zeros(2, 1, 1, dtype=torch.long),
            torch.arange(3),
            Augment(),
            Streams(0),
            0,
        )
