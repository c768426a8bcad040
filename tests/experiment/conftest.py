"""Fixtures: runs that build a ToySim instead of the real simulator."""

from __future__ import annotations

from typing import Any

import pytest
from toy_sim import ToySim


@pytest.fixture
def toy_build(monkeypatch: pytest.MonkeyPatch) -> type[ToySim]:
    """Make every run (also through the CLI and sweeps) build a ToySim instead of the real simulator."""
    monkeypatch.setattr("robustfl.experiment.runner.default_build", ToySim)
    return ToySim


@pytest.fixture
def toy_config_file(tmp_path: Any) -> Any:
    path = tmp_path / "toy.toml"
    path.write_text(
        "[training]\nrounds = 12\nlr = 0.1\neval_every = 3\ncheckpoint_every = 4\n[workers]\nn = 4\nf = 1\n",
        encoding="utf-8",
    )
    return path
