"""The decentralised runner end to end: config -> GossipSimulator, metrics, bits, resume, errors."""

import json
from pathlib import Path

import pytest
import torch

from robustfl.experiment.build import build_simulator
from robustfl.experiment.config import ConfigError, load_config
from robustfl.experiment.runner import run

GOSSIP = [
    "model.name=mlp",
    "model.params={hidden = [8]}",
    "workers.n=9",
    "training.batch_size=8",
    "training.rounds=4",
    "training.eval_every=2",
    "training.checkpoint_every=2",
    "training.lr=0.1",
    "algorithm.name=gossip",
]


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_gossip_run_reports_consensus_worst_node_and_bits_and_resumes_identically(tmp_path: Path) -> None:
    sets = [
        *GOSSIP,
        "algorithm.params={topology = 'torus', rule = 'clip', gossip_steps = 2, gamma = 0.5}",
        "workers.f=1",
        "attack.name=constant",
        "compressor.name=topk",
        "compressor.params={ratio = 0.1}",
        "training.rounds=2",
        "training.eval_every=1",
        "training.checkpoint_every=1",
    ]
    whole = run(load_config(None, sets), tmp_path / "whole", quiet=True)
    assert not whole["diverged"] and whole["bits_down"] == 0 and whole["bits_up"] > 0
    lines = metrics(tmp_path / "whole")
    assert [m["round"] for m in lines] == [1, 2]
    for m in lines:
        assert 0 <= m["worst_test_accuracy"] <= m["test_accuracy"] <= 1
        assert m["consensus_distance"] >= 0 and "average_model_test_accuracy" in m
        assert m["round_metrics"]["spectral_gap"] == pytest.approx(0.6)  # 3 x 3 torus: W = (I + A) / 5
        assert 0 < m["round_metrics"]["clipped_fraction"] <= 1
        assert m["round_metrics"]["byzantine_ids"] == {str(m["round"]): [8]}
    run(load_config(None, [*sets, "training.rounds=1"]), tmp_path / "part", quiet=True)
    run(load_config(None, sets), tmp_path / "part", quiet=True, resume=True)
    timing = ("seconds", "wall_seconds", "cpu_seconds")
    strip = [{k: v for k, v in m.items() if k not in timing} for m in metrics(tmp_path / "part")]
    assert strip == [{k: v for k, v in m.items() if k not in timing} for m in lines]


def test_bits_count_every_message_on_every_link_exactly() -> None:
    sim = build_simulator(load_config(None, [*GOSSIP, "workers.n=6", "algorithm.params={gossip_steps = 3}"]))
    stats = sim.step()
    # ring of 6: 12 directed links, 3 steps, d float32 values per message
    assert stats.bits_up == 3 * 12 * 32 * sim.flat.dim
    assert stats.metrics["bits_per_node"] == stats.bits_up / 6


def test_vectorised_and_loop_paths_agree_and_runs_are_deterministic() -> None:
    sets = [*GOSSIP, "algorithm.params={topology = 'erdos-renyi', p = 0.5, local_steps = 2}"]
    fast = build_simulator(load_config(None, [*sets, "training.vectorise=true"]))
    again = build_simulator(load_config(None, [*sets, "training.vectorise=true"]))
    loop = build_simulator(load_config(None, [*sets, "training.vectorise=false"]))
    for sim in (fast, again, loop):
        sim.step()
        sim.step()
    assert torch.equal(fast.client_state["model"], again.client_state["model"])
    torch.testing.assert_close(fast.client_state["model"], loop.client_state["model"], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["algorithm.params={rule = 'clip'}", "aggregator.name=median"],
            "config error: algorithm: gossip's rule 'clip' does not use [aggregator]",
        ),
        (["workers.per_round=4"], "config error: algorithm: gossip runs every node in every round"),
        (["algorithm.params={topology = 'torus'}", "workers.n=10"], "config error: algorithm: a torus needs"),
        (
            ["algorithm.params={rule = 'aggregator'}", "aggregator.name=trimmed-mean", "workers.f=2"],
            "config error: algorithm: the ring graph gives a node 3 rows",
        ),
        (["algorithm.params={tau = 1.0}"], "config error: algorithm.params: tau is the clipping radius"),
        (["algorithm.params={topology = 'star'}"], "config error: algorithm.params: topology must be one of"),
        (["byzantine.every=2", "workers.f=1"], "config error: algorithm: gossip keeps its Byzantine nodes"),
    ],
)
def test_config_errors_are_one_line_naming_the_field(sets: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_simulator(load_config(None, [*GOSSIP, *sets]))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_launch_refuses_gossip_and_the_listing_shows_it() -> None:
    from typer.testing import CliRunner

    from robustfl.cli import app
    from robustfl.cli.launch import _refuse_decentralised

    with pytest.raises(ValueError, match="decentralised .* run it with `robustfl run`"):
        _refuse_decentralised(load_config(None, GOSSIP))
    _refuse_decentralised(load_config(None, [*GOSSIP, "algorithm.name=fedavg"]))
    listed = CliRunner().invoke(app, ["list", "algorithms"])
    assert listed.exit_code == 0 and "gossip" in listed.output
