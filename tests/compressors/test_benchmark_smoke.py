"""The benchmark script runs end to end in quick mode (no timings are asserted)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_quick_mode_runs(tmp_path: Path) -> None:
    plot = tmp_path / "tradeoff.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compressors.py"), "--quick", "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PATH": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| qsgd s=4 elias |" in result.stdout and "| powersgd r=8 |" in result.stdout
    assert plot.stat().st_size > 10_000
