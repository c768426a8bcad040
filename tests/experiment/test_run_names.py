"""A run's configured name never puts its folder outside ``runs/`` nor makes an unusable path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.experiment.rundir import default_run_dir, safe_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../x", "x"),
        ("/etc/passwd", "etc_passwd"),
        ("C:\\Windows\\x", "C_Windows_x"),
        ("a\nb", "a_b"),
        ("a\x00b", "a_b"),
        ("", "run"),
        ("..", "run"),
        (".hidden", "hidden"),
        ("--help", "help"),
        ("CON", "CON_"),
        ("lenet[attack=ipm,f=3]", "lenet_attack=ipm,f=3"),
        ("résumé-2", "résumé-2"),
        ("x" * 300, "x" * 80),
    ],
)
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected


def test_safe_name_needs_a_string() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        safe_name(3)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_name_gives_one_folder_directly_inside_runs(name: str) -> None:
    clean = safe_name(name)
    assert clean not in ("", ".", "..") and not clean.startswith((".", "-"))
    assert not any(c in clean for c in "/\\\x00\n\r\t") and len(clean) <= 80
    path = default_run_dir(name, "runs", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert path.parent == Path("runs") and path.name == f"{clean}-20260102-030405"


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "a\nb", "a\x00b"])
def test_the_cli_default_run_dir_stays_inside_runs(name: str, tmp_path: Path, monkeypatch: Any) -> None:
    from robustfl.cli.run import default_out

    monkeypatch.chdir(tmp_path)
    out = default_out(name)
    assert out.parent == Path("runs")
    out.mkdir(parents=True)
    assert (tmp_path / "runs").resolve() in out.resolve().parents
