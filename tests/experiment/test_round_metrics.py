"""A real (small) run from a config: sampling, Byzantine schedule and per-round metrics in metrics.jsonl."""

from pathlib import Path

import pytest

from robustfl.experiment.config import ConfigError, load_config
from robustfl.experiment.rundir import RunDir
from robustfl.experiment.runner import run

BASE = [
    "model.name=mlp",
    "model.params={hidden = [16]}",
    "training.rounds=4",
    "training.eval_every=2",
    "workers.n=8",
    "workers.f=2",
    "workers.per_round=5",
    "attack.name=sign-flip",
]


def test_metrics_carry_cohort_size_and_the_rounds_attackers(tmp_path: Path) -> None:
    config = load_config(None, [*BASE, "byzantine.ids=[0, 3]", "byzantine.every=2"])
    run(config, tmp_path / "r", quiet=True)
    lines = RunDir(tmp_path / "r").read_metrics()
    assert [m["round"] for m in lines] == [2, 4]
    for m in lines:
        assert m["round_metrics"]["clients"] == 5
        attacked = m["round_metrics"]["byzantine_ids"]
        assert list(attacked.values()) == [[0, 3]] and int(next(iter(attacked))) % 2 == 1  # rounds 1, 3


def test_a_cohort_too_small_for_the_rule_is_a_config_error(tmp_path: Path) -> None:
    config = load_config(None, [*BASE, "workers.per_round=4", "aggregator.name=krum"])
    with pytest.raises(ConfigError, match=r"workers.per_round: .*n=4, f=2"):
        run(config, tmp_path / "r", quiet=True)


def test_algorithm_table_and_aliases_conflict_is_named() -> None:
    config = load_config(
        None, ["algorithm.name=fedavg", "training.algorithm=sgd", "training.algorithm_params={}"]
    )
    assert config.algorithm is not None and config.algorithm.name == "fedavg"
    from robustfl.experiment.build import build_algorithm

    assert type(build_algorithm(config)).__name__ == "FedAvg"
    clash = load_config(None, ["algorithm.name=fedavg", "training.algorithm=fedavg"])
    with pytest.raises(ConfigError, match="training.algorithm: the algorithm is set in"):
        build_algorithm(clash)


def test_recipe_reaches_the_algorithm() -> None:
    from robustfl.experiment.build import build_algorithm, build_lr

    config = load_config(
        None,
        [
            "algorithm.name=fedavg",
            "algorithm.params={local_steps = 2}",
            "training.client_momentum=0.9",
            "training.weight_decay=1e-4",
            "training.server_optimizer={name = 'adam', params = {tau = 0.01}}",
            "training.lr=0.1",
            "training.lr_schedule={name = 'step', params = {milestones = [2], gamma = 0.5}}",
        ],
    )
    alg = build_algorithm(config)
    assert alg.client_optimizer.momentum == 0.9 and alg.client_optimizer.weight_decay == 1e-4
    assert type(alg.server_optimizer).__name__ == "ServerAdam" and alg.server_optimizer.tau == 0.01
    lr = build_lr(config)
    assert callable(lr) and (lr(0), lr(2)) == (0.1, 0.05)
