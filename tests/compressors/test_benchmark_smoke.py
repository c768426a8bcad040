"""The benchmark's functions run end to end at tiny sizes (no timings are asserted)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_at_tiny_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_compressors", ROOT / "benchmarks" / "compressors.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.throughput(4_000, repeats=1)
    assert len(rows) == 2 + len(bench.throughput_configs(bench.layer_shapes(4_000)))
    assert len(bench.wire_timing(2_000, repeats=1)) == 5
    rows = bench.qbgmd_bits(4, 3_000)
    assert len(rows) == 7 and rows[2].startswith("| BGMD, float32 rows | 384000 |")
    plot = tmp_path / "tradeoff.png"
    rows = bench.tradeoff(2_000, draws=1, plot=plot)
    assert any(r.startswith("| qsgd s=4 |") for r in rows) and any(
        r.startswith("| powersgd r=8 |") for r in rows
    )
    assert plot.stat().st_size > 10_000
    assert "wrote" in capsys.readouterr().out


def test_wire_decode_benchmark_runs_at_tiny_sizes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("bench_wire", ROOT / "benchmarks" / "wire_decode.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr("sys.argv", ["wire_decode.py", "--quick", "--repeats", "1"])
    bench.main()
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 5 and "ValueError: Elias" in rows[2]
    assert rows[3].endswith("| decoded |") and rows[4].endswith("| decoded |")
