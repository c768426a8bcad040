"""benchmarks/atomo.py runs end to end on LeNet (no timings are asserted)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_atomo_benchmark_runs_on_lenet() -> None:
    spec = importlib.util.spec_from_file_location("bench_atomo", ROOT / "benchmarks" / "atomo.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.bench("lenet", 4)
    assert rows[0].startswith("model=lenet d=61,706")
    assert len(rows) == 3 + 12
    assert rows[3].startswith("| vanilla SGD (float32) | 1,974,592 | 32.000 |")  # 32 bits x 61,706
