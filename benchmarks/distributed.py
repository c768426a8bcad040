"""The multi-process runtime against the simulator on one config: speed, bytes, crash recovery.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/distributed.py            # minutes
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/distributed.py --quick    # smoke run

1. Rounds per second of ``robustfl run`` (the simulator) and of ``robustfl launch`` with 1, 2, 4 and 8
   worker processes (``--nproc`` 2, 3, 5, 9) on the same config, and each one's ratio to the
   simulator. Both from the runner's ``wall_seconds`` (the training loop, after start-up) minus the
   evaluation time, so process start-up and data loading are left out.
2. Bytes on the wire per round (uploads: frame headers + records + the compressors' wire messages,
   without the attack's side channel) against the reported ``bits_up / 8``, with and without a
   compressor.
3. Recovery: a worker crashes (SIGKILL, ``[faults] crash``) at the start of a round; the duration of
   that round (crash to aggregation: the server sees the closed connection and aggregates what
   arrived) against the median round, and a hung worker (``[faults] delay`` beyond the timeout)
   against ``training.round_timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import tomli_w

BASE: dict[str, Any] = {
    "name": "bench-distributed",
    "data": {"name": "embedded-mnist"},
    "model": {"name": "lenet"},
    "training": {"batch_size": 32, "lr": 0.05, "round_timeout": 5.0},
    "workers": {"n": 16, "f": 0},
    "aggregator": {"name": "median"},
}


def write(tmp: Path, name: str, rounds: int, **sections: Any) -> Path:
    cfg = json.loads(json.dumps(BASE))
    cfg["training"] |= {"rounds": rounds, "eval_every": rounds}
    for key, value in sections.items():
        cfg[key] = cfg.get(key, {}) | value if isinstance(cfg.get(key), dict) else value
    path = tmp / f"{name}.toml"
    path.write_text(tomli_w.dumps(cfg))
    return path


def cli(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = [sys.executable, "-c", "from robustfl.cli import main; main()", *args, "-q"]
    subprocess.run(code, check=True, env=env, capture_output=True, timeout=1200)


def loop_rate(out: Path, rounds: int) -> float:
    summary = json.loads((out / "summary.json").read_text())
    return rounds / (summary["wall_seconds"] - summary["seconds"].get("eval", 0.0))


def metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def speed(tmp: Path, rounds: int, workers: list[int]) -> None:
    cfg = write(tmp, "speed", rounds)
    cli("run", str(cfg), "--out", str(tmp / "sim"))
    sim = loop_rate(tmp / "sim", rounds)
    print(
        f"\n| runtime | rounds/s | ratio to the simulator |\n|---|---:|---:|\n| simulator | {sim:.2f} | 1.00x |"
    )
    for w in workers:
        out = tmp / f"dist{w}"
        cli("launch", "--nproc", str(w + 1), str(cfg), "--out", str(out))
        rate = loop_rate(out, rounds)
        print(f"| launch, {w} worker process{'es' if w > 1 else ''} | {rate:.2f} | {rate / sim:.2f}x |")


def wire_bytes(tmp: Path, rounds: int) -> None:
    print("\n| uploads | reported bits_up / 8 per round | bytes on the wire per round | overhead |")
    print("|---|---:|---:|---:|")
    for label, extra in (
        ("raw float32", {}),
        (
            "top-k 1% + error feedback",
            {"compressor": {"name": "topk", "params": {"ratio": 0.01}, "error_feedback": True}},
        ),
        ("QSGD s = 4", {"compressor": {"name": "qsgd", "params": {"s": 4}}}),
    ):
        cfg = write(tmp, "bytes", rounds, **extra)
        out = tmp / f"bytes-{len(label)}"
        cli("launch", "--nproc", "3", str(cfg), "--out", str(out))
        last = metrics(out)[-1]
        reported = last["bits_up"] / 8 / rounds
        wire = (last["wire_bytes_up"] - last["observed_bytes"]) / rounds
        print(f"| {label} | {reported:,.0f} | {wire:,.0f} | {wire / reported - 1:+.2%} |")


def recovery(tmp: Path, rounds: int) -> None:
    crash_round = rounds // 2
    for label, faults, timeout in (
        ("worker SIGKILLed", {"crash": [{"rank": 2, "round": crash_round}]}, 30.0),
        ("worker hung (delay 60 s)", {"delay": [{"rank": 2, "round": crash_round, "seconds": 60.0}]}, 3.0),
    ):
        cfg = write(tmp, "crash", rounds, faults=faults)
        text = cfg.read_text().replace("round_timeout = 5.0", f"round_timeout = {timeout}")
        text = text.replace(f"eval_every = {rounds}", "eval_every = 1")
        cfg.write_text(text)
        out = tmp / f"crash-{timeout}"
        cli("launch", "--nproc", "5", str(cfg), "--out", str(out))
        lines = metrics(out)
        walls = [m["wall_seconds"] - m["seconds"].get("eval", 0.0) for m in lines]
        durations = [b - a for a, b in zip([0.0, *walls[:-1]], walls, strict=True)]
        hit = durations[crash_round]
        normal = statistics.median(d for i, d in enumerate(durations) if i not in (0, crash_round))
        events = [e["event"] for m in lines for e in m.get("events", [])]
        print(
            f"- {label} in round {crash_round} (round_timeout = {timeout} s): that round took {hit:.2f} s, "
            f"a normal round {normal:.2f} s; events: {events}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    workers = [1, 2] if args.quick else [1, 2, 4, 8]
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"LeNet, embedded MNIST, n = 16 clients, batch 32, median, {rounds} rounds; {os.cpu_count()} CPUs"
        )
        speed(Path(tmp), rounds, workers)
        wire_bytes(Path(tmp), rounds)
        recovery(Path(tmp), max(rounds, 6))


if __name__ == "__main__":
    main()
