"""``robustfl reproduce atomo`` and the timed runs: configs, bits, modelled time, speed-ups, the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustfl.commtime import Cluster, Timeline
from robustfl.experiment import atomo_runs
from robustfl.experiment.config import validate
from robustfl.experiment.timed_runs import TimedRun, network_speedups, rounds_to, speedups

TINY = {
    "data": {"name": "embedded-mnist", "partition": "iid"},
    "model": {"name": "mlp", "params": {"hidden": [16]}},
    "workers": {"n": 4},
    "training": {"algorithm": "sgd", "rounds": 2, "batch_size": 8, "lr": 0.05, "eval_every": 2},
}


def test_every_method_config_validates() -> None:
    base = atomo_runs.base_config()
    for method in atomo_runs.METHODS:
        config = validate(atomo_runs.method_config(method, base, rounds=5, seed=1))
        assert config.training.rounds == 5 and config.training.seed == 1
        assert (config.compressor is None) == (method == "vanilla")
    assert validate(atomo_runs.base_config("/data/cifar")).model.name == "resnet18"
    with pytest.raises(ValueError, match="method must be one of"):
        atomo_runs.method_config("zip", base, None, 0)


def test_reproduce_counts_bits_and_models_time(tmp_path: Path) -> None:
    net = Cluster(4, 0.01, 1e-3)  # a slow network: communication dominates
    runs = atomo_runs.reproduce(tmp_path, ["atomo-s1"], targets=(0.05,), net=net, base=TINY)
    assert list(runs) == ["vanilla", "atomo-s1"]
    d = 784 * 16 + 16 + 16 * 10 + 10
    assert runs["vanilla"].bits_per_worker == 32 * d
    for name in ("atomo-s1",):
        r = runs[name]
        assert r.bits_per_worker < 0.5 * 32 * d
        assert r.network_per_round < runs["vanilla"].network_per_round
        assert len(r.timeline.times) == 2 and r.timeline.accuracy[0] is None
        assert r.timeline.times[-1] == pytest.approx(2 * r.seconds_per_round)
    record = json.loads((tmp_path / "atomo.json").read_text())
    assert set(record["runs"]) == set(runs)
    assert "| atomo-s1 |" in (tmp_path / "atomo.md").read_text()
    with pytest.raises(ValueError, match="targets"):
        atomo_runs.reproduce(tmp_path, [], targets=(80.0,), base=TINY)


def _run(name: str, times: list[float], accs: list[float | None]) -> TimedRun:
    t = Timeline(Cluster(2, 1.0))
    t.times, t.accuracy = times, accs
    return TimedRun(name, t, 0.0, 1, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_speedups_read_time_to_target() -> None:
    runs = {
        "vanilla": _run("vanilla", [1.0, 2.0, 3.0, 4.0], [0.5, 0.7, 0.8, 0.9]),
        "fast": _run("fast", [0.5, 1.0, 1.5, 2.0], [0.6, 0.8, 0.85, 0.85]),
    }
    table = speedups(runs, "vanilla", (0.8, 0.9))
    assert table["vanilla"] == {0.8: 1.0, 0.9: 1.0}
    assert table["fast"] == {0.8: 3.0, 0.9: None}
    runs["vanilla"].timeline.communication = [1.0] * 4
    runs["fast"].timeline.communication = [0.25] * 4
    net = network_speedups(runs, "vanilla", (0.8, 0.9))
    assert net["fast"] == {0.8: 3 / 0.5, 0.9: None}
    assert rounds_to(runs["fast"], 0.8) == 2 and rounds_to(runs["fast"], 0.9) is None
    md = atomo_runs.table_markdown(runs, table, (0.8, 0.9), net)
    assert "| 2 / N/A | 3.00x / N/A | 6.00x / N/A |" in md
