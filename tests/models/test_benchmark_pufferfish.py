"""benchmarks/pufferfish.py runs end to end at a tiny batch (no timings are asserted)."""

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_pufferfish_benchmark_runs_at_a_tiny_batch() -> None:
    spec = importlib.util.spec_from_file_location("bench_pufferfish", ROOT / "benchmarks" / "pufferfish.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.bench(batch=2, steps=1, warmup=0, device=torch.device("cpu"), pairs=bench.PAIRS[:1])
    assert len(rows) == 2 + 2
    assert rows[2].startswith("| vanilla ResNet-18 | 11,173,834 | 0.56 |")
    assert rows[3].startswith("| PUFFERFISH ResNet-18 | 3,336,138 | 0.22 |")
