"""``robustfl launch`` end to end on 127.0.0.1: parity with the simulator, faults, resume, every algorithm.

Each test starts real processes through torchrun (gloo) and is bounded by a subprocess timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from launching import SAME, config, env, events, launch, launch_command, metrics, simulate


def _same(a: list[dict], b: list[dict]) -> None:
    assert [{k: m[k] for k in SAME} for m in a] == [{k: m[k] for k in SAME} for m in b]


def test_parity_with_the_simulator_four_processes(tmp_path: Path) -> None:
    """Compressed uploads with error feedback and an omniscient attack: the same metrics, exactly."""
    cfg = config(
        tmp_path,
        attack={"name": "alie"},
        compressor={"name": "topk", "params": {"ratio": 0.1}, "error_feedback": True},
    )
    done = launch(cfg, tmp_path / "dist", nproc=4)
    assert done.returncode == 0, done.stderr[-3000:]
    dist = metrics(tmp_path / "dist")
    _same(dist, simulate(cfg, tmp_path / "sim"))
    assert dist[-1]["events"] == [] and dist[-1]["test_loss"] < dist[0]["test_loss"] + 1
    # the uploads' wire bytes cover the reported bits; the overhead is headers (frame, record, message)
    reported = dist[-1]["bits_up"] / 8
    protocol = dist[-1]["wire_bytes_up"] - dist[-1]["observed_bytes"]
    assert reported < protocol < reported + 3 * 6 * 400 + 3 * 3 * 2000


@pytest.mark.parametrize(
    "compressor",
    [
        {"name": "topk", "params": {"ratio": 0.2}, "error_feedback": True},
        {"name": "qsgd", "params": {"s": 4, "coding": "fixed"}},
    ],
    ids=["topk-ef", "qsgd"],
)
def test_masked_rounds_compress_the_support_only_as_in_the_simulator(
    tmp_path: Path, compressor: dict
) -> None:
    """Masked training (rounds M D M: a new core in round 3) with a compressor and a sign-flip attack
    (the Byzantine clients compress their crafted rows on the support): the same metrics, exactly."""
    cfg = config(
        tmp_path,
        training={"rounds": 3},
        algorithm={"name": "masked", "params": {"density": 0.3, "masked_rounds": 1, "dense_rounds": 1}},
        attack={"name": "sign-flip"},
        compressor=compressor,
    )
    done = launch(cfg, tmp_path / "dist", nproc=3)
    assert done.returncode == 0, done.stderr[-3000:]
    dist = metrics(tmp_path / "dist")
    _same(dist, simulate(cfg, tmp_path / "sim"))
    assert dist[-1]["events"] == []
    # bits_up is cumulative: a masked round (K ~ 0.3 d values) costs well under half a dense one
    masked, dense = dist[0]["bits_up"], dist[1]["bits_up"] - dist[0]["bits_up"]
    assert masked < 0.45 * dense


def test_injected_straggler_and_garbage_are_logged_and_the_run_goes_on(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        training={"rounds": 6, "round_timeout": 3.0},
        faults={"delay": [{"rank": 1, "round": 2, "seconds": 4.5}], "garbage": [{"rank": 2, "round": 0}]},
    )
    done = launch(cfg, tmp_path / "out", nproc=4)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = {(e["event"], e["rank"], e["round"]) for e in events(tmp_path / "out")}
    assert ("dropped", 2, 0) in seen  # random bytes instead of a record
    assert ("missing", 1, 2) in seen  # the straggler beyond the timeout
    later = [e for e in events(tmp_path / "out") if e["rank"] == 1 and e["round"] > 2]
    # afterwards the server does not wait for it (one timeout in all), or its reply came late
    assert later and all(e["event"] == "late" or e.get("waited") is False for e in later)
    assert len(metrics(tmp_path / "out")) == 6


def test_a_worker_killed_mid_run_is_reported_and_the_run_finishes(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        training={"rounds": 6, "round_timeout": 10.0},
        faults={"delay": [{"rank": 1, "round": 2, "seconds": 3.0}]},
    )
    out = tmp_path / "out"
    proc = subprocess.Popen(launch_command(cfg, out, 4), env=env(), stderr=subprocess.PIPE, text=True)
    pid_file = out / "pids" / "rank2.pid"
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() or not pid_file.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the run never reached round 1"
        time.sleep(0.1)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    crashed = [e for e in events(out) if e["event"] == "crashed"]
    assert [e["rank"] for e in crashed] == [2]
    assert metrics(out)[-1]["round"] == 6


def test_too_few_messages_stop_the_run_with_one_clear_message(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        workers={"n": 5, "f": 2},  # trimmed mean needs n > 2f = 4 rows
        faults={"crash": [{"rank": 2, "round": 1}]},
    )
    done = launch(cfg, tmp_path / "out", nproc=3)
    assert done.returncode != 0
    assert "round 1: only 3 of 5 clients' messages arrived" in done.stderr
    assert "[2]" in done.stderr


def test_resume_after_the_server_is_killed_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        training={"rounds": 5, "checkpoint_every": 1},
        attack={"name": "sign-flip"},
        compressor={"name": "qsgd", "params": {"s": 4}, "error_feedback": True},
        faults={"delay": [{"rank": 1, "round": 3, "seconds": 3.0}]},
    )
    out = tmp_path / "out"
    proc = subprocess.Popen(launch_command(cfg, out, 3), env=env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() or len(metrics(out)) < 3:
        assert time.monotonic() < deadline and proc.poll() is None, "the run never reached round 3"
        time.sleep(0.1)
    os.kill(int((out / "pids" / "rank0.pid").read_text()), signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert len(metrics(out)) < 5
    done = launch(cfg, out, 3, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    _same(metrics(out), simulate(cfg, tmp_path / "sim"))


def _algorithms() -> list[str]:
    from robustfl.algorithms import ALGORITHMS

    # decentralised algorithms (gossip) have no server: `robustfl launch` refuses them
    return [a for a in ALGORITHMS.primary_names() if not getattr(ALGORITHMS[a], "decentralised", False)]


@pytest.mark.parametrize("algorithm", _algorithms())
def test_every_registered_algorithm_runs_two_rounds(tmp_path: Path, algorithm: str) -> None:
    cfg = config(tmp_path, training={"rounds": 2, "algorithm": algorithm}, attack={"name": "sign-flip"})
    done = launch(cfg, tmp_path / "dist", nproc=3)
    assert done.returncode == 0, done.stderr[-3000:]
    _same(metrics(tmp_path / "dist"), simulate(cfg, tmp_path / "sim"))


def test_replicated_clients_outvote_a_worker_sending_garbage(tmp_path: Path) -> None:
    """workers.replicas = 2: every client on both workers; one worker's garbage costs nothing."""
    cfg = config(
        tmp_path,
        training={"rounds": 2},
        workers={"n": 6, "f": 1, "replicas": 2},
        attack={"name": "sign-flip"},
        faults={"garbage": [{"rank": 2, "round": 1}]},
    )
    done = launch(cfg, tmp_path / "dist", nproc=3)
    assert done.returncode == 0, done.stderr[-3000:]
    _same(metrics(tmp_path / "dist"), simulate(cfg, tmp_path / "sim"))
    assert [(e["event"], e["rank"], e["round"]) for e in events(tmp_path / "dist")] == [("dropped", 2, 1)]


@pytest.mark.parametrize(
    ("scheme", "params"), [("draco-repetition", {"s": 1}), ("draco-cyclic", {"s": 1}), ("detox", {"r": 3})]
)
def test_coded_schemes_run_across_processes_as_in_the_simulator(
    tmp_path: Path, scheme: str, params: dict
) -> None:
    """Each rank computes the partitions its workers encode; the server decodes before the step."""
    cfg = config(
        tmp_path,
        training={"rounds": 2, "algorithm": "sgd"},
        attack={"name": "sign-flip"},
        coding={"name": scheme, "params": params},
        byzantine={"ids": "random", "resample": True},
    )
    done = launch(cfg, tmp_path / "dist", nproc=3)
    assert done.returncode == 0, done.stderr[-3000:]
    dist, sim = metrics(tmp_path / "dist"), simulate(cfg, tmp_path / "sim")
    _same(dist, sim)
    decoded = ("redundancy", "located_adversaries", "groups_without_majority")
    assert [{k: m["round_metrics"][k] for k in decoded} for m in dist] == [
        {k: m["round_metrics"][k] for k in decoded} for m in sim
    ]
    assert dist[-1]["round_metrics"]["redundancy"] == 3.0


def test_pufferfish_warm_up_switches_every_process_to_the_hybrid(tmp_path: Path) -> None:
    """[model.low_rank]: vanilla rounds, then server and workers train the low-rank hybrid together."""
    cfg = config(
        tmp_path,
        model={
            "name": "mlp",
            "params": {"hidden": [32, 16]},
            "low_rank": {"warmup_rounds": 2, "first_low_rank": 1},
        },
        training={"rounds": 4},
    )
    done = launch(cfg, tmp_path / "dist", nproc=3)
    assert done.returncode == 0, done.stderr[-3000:]
    dist = metrics(tmp_path / "dist")
    _same(dist, simulate(cfg, tmp_path / "sim"))
    assert (
        dist[2]["bits_up"] - dist[1]["bits_up"] < dist[1]["bits_up"] - dist[0]["bits_up"]
    )  # smaller messages
