"""[personalise] and data.client_test_fraction through the config, the build and the runner."""

import json
from pathlib import Path

import pytest

from robustfl.experiment.build import build_run
from robustfl.experiment.config import ConfigError, load_config, validate
from robustfl.experiment.runner import run

TINY = [
    "model.name=mlp",
    "model.params={hidden = [8]}",
    "workers.n=4",
    "training.batch_size=8",
    "training.rounds=4",
    "training.eval_every=2",
    "training.lr=0.1",
    "data.client_test_fraction=0.2",
]


def test_weighted_only_fields_and_the_held_out_split_are_required() -> None:
    with pytest.raises(ConfigError, match="personalise: alpha applies to method = 'weighted' only"):
        load_config(None, [*TINY, "personalise.method=finetune", "personalise.alpha=0.3"])
    with pytest.raises(ConfigError, match="collaborator_batch_size applies to method = 'weighted' only"):
        load_config(None, [*TINY, "personalise.method=finetune", "personalise.collaborator_batch_size=2"])
    cfg = load_config(None, [*TINY, "personalise.method=weighted", "personalise.collaborator_batch_size=9"])
    with pytest.raises(ConfigError, match="config error: personalise: collaborator_batch_size = 9 exceeds"):
        build_run(cfg)
    with pytest.raises(ConfigError, match="data.client_test_fraction: Input should be less than 1"):
        load_config(None, [*TINY, "data.client_test_fraction=1.0"])
    with pytest.raises(ConfigError, match=r"personalise.method: Input should be 'finetune' or 'weighted'"):
        load_config(None, [*TINY, "personalise.method=ditto"])
    cfg = load_config(None, [*TINY[:-1], "personalise.method=finetune"])
    with pytest.raises(ConfigError, match=r"data.client_test_fraction: \[personalise\] reports"):
        build_run(cfg)


def test_resolved_config_round_trips() -> None:
    cfg = load_config(None, [*TINY, "personalise.method=finetune"])
    assert validate(cfg.to_dict()) == cfg


def test_held_out_split_leaves_the_training_partitions() -> None:
    plain = build_run(load_config(None, TINY[:-1]))
    held = build_run(load_config(None, TINY))
    assert plain.clients is None and held.clients is not None
    for before, train, test in zip(
        plain.sim.sampler.partitions, held.sim.sampler.partitions, held.clients.test_parts, strict=True
    ):
        assert set(train.tolist()).isdisjoint(test.tolist())
        assert sorted(train.tolist() + test.tolist()) == sorted(before.tolist())


def test_metrics_and_summary(tmp_path: Path) -> None:
    cfg = load_config(
        None, [*TINY, "personalise.method=weighted", "personalise.steps=3", "personalise.every=4"]
    )
    summary = run(cfg, tmp_path / "run", quiet=True, notify=None)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["round"] for line in lines] == [2, 4]
    assert all(0 <= line["client_accuracy_worst10"] <= line["client_accuracy_mean"] <= 1 for line in lines)
    assert "personal_accuracy_mean" not in lines[0]
    final = summary["final"]
    assert 0 <= final["personal_accuracy_worst10"] <= final["personal_accuracy_mean"] <= 1
    resumed = load_config(
        None,
        [
            *TINY,
            "personalise.method=weighted",
            "personalise.steps=3",
            "personalise.every=4",
            "training.rounds=6",
        ],
    )
    again = run(resumed, tmp_path / "run", resume=True, quiet=True, notify=None)
    assert again["final"]["round"] == 6 and "personal_accuracy_mean" in again["final"]
