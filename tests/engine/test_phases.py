"""The shared phases move no [m, d] copies they do not need."""

import torch

from robustfl.attacks import get as get_attack
from robustfl.engine import phases
from robustfl.engine.sampling import ClientSampler
from robustfl.streams import Streams


def test_inject_replaces_the_byzantine_rows_in_place_and_leaves_the_honest_ones() -> None:
    rows = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    before = rows.clone()
    byz = torch.tensor([False, True, False, False, True, False])
    seen = {}

    def attack(honest: torch.Tensor, f: int, *, rng: object, round: int, own: torch.Tensor) -> torch.Tensor:
        seen["honest"], seen["own"] = honest, own
        return -own

    out = phases.inject(attack, {"update": rows}, byz, Streams(0), 3)
    assert out["update"] is rows  # no copy
    assert torch.equal(rows[~byz], before[~byz]) and torch.equal(rows[byz], -before[byz])
    # the attack saw copies of the rows as they were, not views of the buffer it overwrites
    assert torch.equal(seen["honest"], before[~byz]) and torch.equal(seen["own"], before[byz])


def test_inject_matches_a_copying_injection_for_a_registered_attack() -> None:
    rows = torch.randn(8, 7, generator=torch.Generator().manual_seed(1))
    byz = torch.zeros(8, dtype=torch.bool)
    byz[5:] = True
    attack = get_attack("alie")
    want = rows.clone()
    want[byz] = attack(
        rows[~byz], 3, rng=Streams(2).generator("attack", "shared", "round", 4), round=4, own=rows[byz]
    )
    got = phases.inject(attack, {"update": rows.clone()}, byz, Streams(2), 4)["update"]
    assert torch.equal(got, want)


def test_sampler_sizes_are_the_partitions_sizes() -> None:
    parts = [torch.arange(k) for k in (3, 1, 4, 1, 5)]
    sampler = ClientSampler(parts, Streams(0))
    assert sampler.sizes(torch.tensor([4, 0, 2])).tolist() == [5, 3, 4]
