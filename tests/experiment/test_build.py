"""The config -> simulator wiring on the real engine (tiny MLP, few rounds)."""

from pathlib import Path
from typing import Any

import pytest

from robustfl.experiment.build import build_run, build_simulator
from robustfl.experiment.config import ConfigError, load_config
from robustfl.experiment.rundir import RunDir
from robustfl.experiment.runner import run

TINY = [
    "model.name=mlp",
    "model.params={hidden = [8]}",
    "workers.n=4",
    "training.batch_size=8",
    "training.rounds=6",
    "training.eval_every=2",
    "training.checkpoint_every=2",
    "training.lr=0.1",
]


def test_f_and_seed_are_filled_in() -> None:
    sim = build_simulator(load_config(None, [*TINY, "workers.n=7", "workers.f=1", "aggregator.name=bulyan"]))
    assert sim.aggregator.f == 1 and sim.num_byzantine == 1
    cfg = load_config(None, [*TINY, "aggregator.name=bgmd", "aggregator.params={ratio = 0.5}"])
    seed_a = build_simulator(cfg).aggregator.seed
    seed_b = build_simulator(
        load_config(None, [*TINY, "training.seed=1", *cfg_aggregator(cfg)])
    ).aggregator.seed
    assert seed_a != seed_b


def cfg_aggregator(cfg: Any) -> list[str]:
    return [f"aggregator.name={cfg.aggregator.name}", "aggregator.params={ratio = 0.5}"]


def test_pipeline_attack_compressor() -> None:
    cfg = load_config(
        None,
        [
            *TINY,
            "workers.n=6",
            "workers.f=1",
            "aggregator.name=krum",
            "aggregator.pre=[{name = 'nnm'}]",
            "attack.name=bit-flip",
            "compressor.name=topk",
            "compressor.params={ratio = 0.1}",
            "compressor.error_feedback=true",
        ],
    )
    sim = build_simulator(cfg)
    stats = sim.step()
    assert stats.bits_up < 32 * 6 * sim.params.numel()
    assert type(sim.aggregator).__name__ == "Pipeline"


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("aggregator.name=nope", "aggregator.name: unknown aggregator 'nope'"),
        ("aggregator.params={zzz = 1}", "aggregator.params: aggregator 'mean' has no parameter zzz"),
        ("attack.name=nope", "attack.name: unknown attack"),
        ("data.name=nope", "data.name:"),
        ("model.params={hidden = -1}", "model:"),
        ("training.algorithm=nope", "training.algorithm: unknown algorithm"),
        ("training.momentum=0.5", None),
    ],
)
def test_registry_errors_name_the_field(setting: str, field: str | None) -> None:
    cfg = load_config(None, [*TINY, setting])
    if field is None:
        assert build_simulator(cfg).algorithm.momentum == 0.5
        return
    with pytest.raises(ConfigError) as err:
        build_simulator(cfg)
    assert str(err.value).startswith(f"config error: {field}"), str(err.value)


def test_rule_bound_names_workers() -> None:
    with pytest.raises(ConfigError, match=r"^config error: workers: .*n=4, f=1"):
        build_simulator(load_config(None, [*TINY, "workers.f=1", "aggregator.name=bulyan"]))


def test_momentum_for_fedavg_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"training.momentum: algorithm 'fedavg' does not take momentum"):
        build_simulator(load_config(None, [*TINY, "training.algorithm=fedavg", "training.momentum=0.9"]))
    assert build_simulator(load_config(None, [*TINY, "training.algorithm=fedavg", "training.local_steps=2"]))


def test_backdoor_accuracy_is_measured() -> None:
    cfg = load_config(
        None, [*TINY, "workers.f=1", "data_attack={name = 'backdoor', params = {fraction = 1.0, target = 3}}"]
    )
    run_ = build_run(cfg)
    run_.step()
    result = run_.evaluate()
    assert 0.0 <= result["backdoor_accuracy"] <= 1.0 and "backdoor_loss" not in result
    assert int((run_.extra["backdoor"][1] == 3).sum()) == len(run_.extra["backdoor"][1])


def test_real_resume_matches_uninterrupted(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            *TINY,
            "workers.f=1",
            "aggregator.name=bgmd",
            "aggregator.params={ratio = 0.3}",
            "attack.name=bit-flip",
        ],
    )
    run(cfg, tmp_path / "full", quiet=True)

    class Stop(Exception):
        pass

    def stopping_build(config: Any) -> Any:
        r = build_run(config)
        step = r.step

        def step_then_stop() -> Any:
            if r.round == 3:
                raise Stop
            return step()

        r.step = step_then_stop  # type: ignore[method-assign]
        return r

    with pytest.raises(Stop):
        run(cfg, tmp_path / "cut", quiet=True, build=stopping_build)
    run(cfg, tmp_path / "cut", quiet=True, resume=True)

    def stable(path: Path) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in m.items() if k not in ("seconds", "wall_seconds", "cpu_seconds")}
            for m in RunDir(path).read_metrics()
        ]

    assert [m["round"] for m in stable(tmp_path / "full")] == [2, 4, 6]
    assert stable(tmp_path / "cut") == stable(tmp_path / "full")


def test_layer_compressors_get_the_model_shapes() -> None:
    cfg = load_config(None, [*TINY, "compressor.name=powersgd", "compressor.params={rank = 1}"])
    sim = build_simulator(cfg)
    stats = sim.step()
    assert 0 < stats.bits_up < 32 * 4 * sim.params.numel()


def test_optimal_attacks_search_against_the_runs_rule() -> None:
    cfg = load_config(
        None, [*TINY, "workers.n=6", "workers.f=1", "aggregator.name=median", "attack.name=optimal-alie"]
    )
    sim = build_simulator(cfg)
    assert sim.attack.agg is sim.aggregator
    explicit = load_config(
        None,
        [
            *TINY,
            "workers.n=6",
            "workers.f=1",
            "aggregator.name=median",
            "attack.name=optimal-alie",
            "attack.params={agg = 'mean'}",
        ],
    )
    assert type(build_simulator(explicit).attack.agg).__name__ == "Average"


def test_loader_options_reach_the_loader(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 255, (40, 6, 6), dtype=np.uint8),
        y_train=np.arange(40) % 3,
        x_test=rng.integers(0, 255, (9, 6, 6), dtype=np.uint8),
        y_test=np.arange(9) % 3,
    )
    cfg = load_config(None, [*TINY, "data.name=npz", f"data.params={{path = '{path}'}}"])
    sim = build_simulator(cfg)
    assert tuple(sim.x_test.shape) == (9, 1, 6, 6)
