"""Helpers of the multi-process tests: write a config, launch it, read its metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import tomli_w

BASE: dict[str, Any] = {
    "name": "dist-test",
    "data": {"name": "embedded-mnist"},
    "model": {"name": "mlp", "params": {"hidden": [16]}},
    "training": {"rounds": 3, "batch_size": 8, "lr": 0.1, "eval_every": 1, "round_timeout": 30.0},
    "workers": {"n": 6, "f": 1},
    "aggregator": {"name": "trimmed-mean"},
}


def config(tmp: Path, name: str = "run.toml", **sections: Any) -> Path:
    data = json.loads(json.dumps(BASE))
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path = tmp / name
    path.write_text(tomli_w.dumps(data))
    return path


def launch_command(cfg: Path, out: Path, nproc: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from robustfl.cli import main; main()",
        "launch",
        "--nproc",
        str(nproc),
        str(cfg),
        "--out",
        str(out),
        "-q",
        *extra,
    ]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def launch(
    cfg: Path, out: Path, nproc: int = 3, *extra: str, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        launch_command(cfg, out, nproc, *extra), capture_output=True, text=True, timeout=timeout, env=env()
    )


def metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def events(out: Path) -> list[dict[str, Any]]:
    return [e for m in metrics(out) for e in m.get("events", [])]


SAME = ("round", "train_loss", "test_loss", "test_accuracy", "bits_up", "bits_down")


def simulate(cfg: Path, out: Path) -> list[dict[str, Any]]:
    """The same config in the single-process simulator."""
    from robustfl.experiment.config import load_config
    from robustfl.experiment.runner import run

    run(load_config(cfg), out, quiet=True)
    return metrics(out)
