"""``robustfl reproduce pufferfish``: variants, parameter / MAC counts, the warm-up switch, the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustfl.commtime import Cluster
from robustfl.experiment import pufferfish_runs
from robustfl.experiment.config import validate

TINY = {
    "data": {"name": "embedded-mnist", "partition": "iid"},
    "model": {"name": "mlp", "params": {"hidden": [32, 16]}},
    "workers": {"n": 2},
    "training": {"algorithm": "sgd", "rounds": 4, "batch_size": 8, "lr": 0.05, "eval_every": 2},
}


def test_every_variant_config_validates() -> None:
    base = pufferfish_runs.base_config(20)
    table = pufferfish_runs.variants(2, 5)
    assert list(table)[:4] == ["vanilla", "low-rank", "hybrid (wo. warm-up)", "hybrid (w. warm-up)"]
    for label, spec in table.items():
        config = validate(pufferfish_runs.variant_config(label, spec, base, seed=3))
        low = config.model.low_rank
        assert (low is None) == label.startswith("vanilla")
        if low is not None:
            assert low.warmup_rounds == (5 if "w. warm-up" in label or "PUFFERFISH" in label else 0)
            assert low.first_low_rank == (1 if label == "low-rank" else 2)


def test_reproduce_records_smaller_models(tmp_path: Path) -> None:
    rows = pufferfish_runs.reproduce(
        tmp_path,
        rounds=4,
        warmup=2,
        k=1,
        only=["vanilla", "hybrid (w. warm-up)"],
        net=Cluster(2, 10.0),
        base=TINY,
    )
    vanilla, hybrid = rows["vanilla"], rows["hybrid (w. warm-up)"]
    assert vanilla["parameters"] == 784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert hybrid["parameters"] == 8 * (784 + 32) + 32 + 4 * (32 + 16) + 16 + 16 * 10 + 10
    assert hybrid["macs"] < vanilla["macs"]
    assert hybrid["bits_per_worker"] < vanilla["bits_per_worker"]  # 2 of its 4 rounds are low rank
    record = json.loads((tmp_path / "pufferfish.json").read_text())
    assert set(record["runs"]) == set(rows)
    assert "94.87%" in (tmp_path / "pufferfish.md").read_text()


def test_reproduce_validates_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="warmup"):
        pufferfish_runs.reproduce(tmp_path, rounds=4, warmup=4, base=TINY)
    with pytest.raises(ValueError, match="unknown variant"):
        pufferfish_runs.reproduce(tmp_path, rounds=4, warmup=2, only=["nope"], base=TINY)
