"""The edge-case backdoor (seed 004 ch. 8) from a TOML config: configs/edge_case.toml and its wiring."""

import json
from pathlib import Path

import pytest
import torch

import robustfl
from robustfl.attacks.edge_case import split_off_edge_cases
from robustfl.data import load_dataset
from robustfl.experiment.build import build_run
from robustfl.experiment.config import ConfigError, load_config
from robustfl.experiment.runner import run

CONFIG = Path(robustfl.__file__).parent / "configs" / "edge_case.toml"
SHORT = ["training.rounds=2", "training.eval_every=1", "algorithm.params.local_steps=2"]


def test_packaged_config_builds_the_edge_case_run() -> None:
    cfg = load_config(CONFIG)
    assert cfg.data_attack is not None and cfg.data_attack.name == "edge-case"
    run_ = build_run(cfg)
    assert run_.sim.num_byzantine == cfg.workers.f == 1
    assert (cfg.workers.n, cfg.workers.per_round, cfg.byzantine.every) == (
        30,
        10,
        10,
    )  # the chapter's protocol
    # the backdoor eval set is the edge-case test set: tail 7s, every label = the target class 1
    clean, edge = split_off_edge_cases(load_dataset("embedded-mnist"), cfg.training.seed)
    x_bd, y_bd = run_.extra["backdoor"]
    assert torch.equal(x_bd, edge.test_x) and torch.equal(y_bd, edge.test_y)
    assert len(y_bd) > 0 and bool((y_bd == 1).all())
    # ... and its samples (and the attackers' edge-case train set) are no longer in the clean train split
    data = load_dataset("embedded-mnist")
    assert len(clean.y_train) == len(data.y_train) - len(edge.train_index) - len(edge.test_index)


def test_short_run_writes_backdoor_accuracy(tmp_path: Path) -> None:
    run(load_config(CONFIG, [*SHORT, "algorithm.params.radius=0.3"]), tmp_path, quiet=True)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in lines] == [1, 2]
    assert all(0.0 <= m["backdoor_accuracy"] <= 1.0 for m in lines)


def test_pgd_mode_arms_the_attackers_through_the_algorithm() -> None:
    pgd_mr = ["algorithm.params.radius=0.03", "attack.name=model-replacement"]
    run_ = build_run(load_config(CONFIG, [*SHORT, *pgd_mr]))
    assert run_.sim.algorithm.budget(0) == 0.03
    assert run_.sim.algorithm.budget(1) == pytest.approx(0.03 * 0.998)  # the chapter's shrinking budget
    stats = run_.step()
    assert stats.metrics["byzantine_ids"] == [29]  # round 0: the fixed-frequency attacker takes part
    assert stats.metrics["clients"] == 10
    assert run_.step().metrics["byzantine_ids"] == []  # round 1: an honest cohort
    assert 0.0 <= run_.evaluate()["backdoor_accuracy"] <= 1.0


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data_attack.params.tail_fraction=2", "data_attack.params: tail_fraction must lie in [0, 1]"),
        ("data_attack.params.fraction=1.5", "data_attack.params: fraction must lie in [0, 1]"),
        ("data_attack.params.edge_x=1", "data_attack.params: 'edge-case' has no parameter edge_x"),
        ("algorithm.params.radius=-1", "algorithm.params: radius must be >= 0"),
    ],
)
def test_bad_edge_case_parameter_is_a_one_line_config_error(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_run(load_config(CONFIG, [override]))
    message = str(err.value)
    assert "\n" not in message and message.startswith("config error: ") and expected in message
