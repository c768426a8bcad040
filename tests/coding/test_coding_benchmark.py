"""benchmarks/coding.py runs end to end at tiny sizes (no timings are asserted)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_coding_benchmark_runs_at_tiny_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_coding", ROOT / "benchmarks" / "coding.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.cost([(15, 300)], repeats=1)
    bench.mean_estimation(p=999, r=3, dims=[4], trials=1)
    bench.precision([(7, 2)], trials=2)
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("  15     300") for line in lines) == 5
    assert any(line.startswith("   4  ") for line in lines)
    assert sum(line.startswith("   7   2") for line in lines) == 2
