"""benchmarks/simulator.py --scale probe runs end to end at a tiny cohort (no timings are asserted)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scale_probe_reports_every_phase_and_the_peak_rss() -> None:
    spec = importlib.util.spec_from_file_location("bench_simulator", ROOT / "benchmarks" / "simulator.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench._scale_probe(str(ROOT / "src"), 4, 1)
    assert set(out["phases"]) == set(bench.PHASES)
    assert out["cpu"] > 0 and out["wall"] > 0 and out["rss"] > 2**20
    assert abs(out["params"]) < float("inf")
