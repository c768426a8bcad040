"""docs/plugins.md: its module and config run as written, through `run` (config imports) and `sweep`
(--import)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robustfl.cli import app

PAGE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_plugins_page_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = PAGE.read_text()
    (module,) = re.findall(r"```python\n(.*?)```", text, re.S)
    (config,) = re.findall(r"```toml\n(.*?)```", text, re.S)
    (tmp_path / "mine.py").write_text(module)
    (tmp_path / "mine.toml").write_text(config)
    (tmp_path / "bare.toml").write_text(config.replace('imports = ["mine"]\n', ""))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    runner = CliRunner()
    result = runner.invoke(app, ["run", "mine.toml", "-q", "-o", "r", "-s", "training.rounds=2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["final"]["test_accuracy"] is not None
    args = ["sweep", "bare.toml", "--import", "mine", "-g", "aggregator.name=midrange,mine:Midrange"]
    result = runner.invoke(app, [*args, "-s", "training.rounds=2", "-q", "-o", "s"])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "s" / "sweep.csv").read_text().splitlines()) == 3
