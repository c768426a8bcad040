"""Every federated algorithm of this package runs in the simulator, both executors agree, bits are exact."""

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from robustfl import algorithms
from robustfl.aggregators import Average
from robustfl.attacks import SignFlipping
from robustfl.engine import Simulator

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from tiny_task import split, tiny_cnn, tiny_data

CASES: list[tuple[str, dict[str, Any]]] = [
    ("rsa", {"lam": 0.01}),
    ("c-rsa", {"gamma": 0.5, "lam": 0.01}),
    ("fl-bgmd", {"sync_steps": [1, 3]}),
    ("fedprox", {"mu": 0.01, "local_steps": 2}),
    ("scaffold", {"local_steps": 2, "client_fraction": 4 / 6}),
    ("mime", {"local_steps": 2}),
    ("mimelite", {"local_steps": 2}),
]


def make(name: str, params: dict[str, Any], vectorise: bool, **kw: Any) -> Simulator:
    return Simulator(
        tiny_cnn(),
        tiny_data(),
        split(6),
        algorithms.get(name, **params),
        Average(),
        batch_size=8,
        lr=0.05,
        seed=2,
        vectorise=vectorise,
        **kw,
    )


@pytest.mark.parametrize(("name", "params"), CASES, ids=[c[0] for c in CASES])
def test_vectorised_and_loop_executors_agree(name: str, params: dict[str, Any]) -> None:
    a = make(name, params, True, num_byzantine=1, attack=SignFlipping(), per_round=4)
    b = make(name, params, False, num_byzantine=1, attack=SignFlipping(), per_round=4)
    for _ in range(3):
        sa, sb = a.step(), b.step()
        assert sa.bits_up == sb.bits_up and sa.bits_down == sb.bits_down
    assert a.vectorised and not b.vectorised
    torch.testing.assert_close(a.params, b.params, atol=1e-5, rtol=1e-4)
    assert torch.isfinite(a.params).all()


def test_crsa_bits_both_ways_are_exact() -> None:
    sim = make("c-rsa", {"gamma": 0.25}, True, per_round=4)
    d = sim.params.numel()
    stats = sim.step()
    l = round(0.25 * d)
    assert stats.bits_up == 4 * 2 * l
    assert stats.bits_down == 4 * (32 * l + 63)
    rsa = make("rsa", {}, True, per_round=4).step()
    assert rsa.bits_up == rsa.bits_down == 4 * 32 * d
