"""The import rules of DESIGN.md: lower packages never import upper ones (checked on the source)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "robustfl"
UPPER = ("engine", "distributed", "integrations", "experiment", "cli")
FORBIDDEN = {
    "aggregators": (*UPPER, "attacks", "algorithms"),
    "attacks": UPPER,
    "compressors": UPPER,
    "models": UPPER,
    "data": UPPER,
    "coding": UPPER,
    "algorithms": UPPER,
    "engine": ("experiment", "cli", "integrations", "distributed"),
}
BOTTOM = ("checks.py", "registry.py", "utils.py", "streams.py", "layout.py", "commtime.py", "topology.py")


def imported_packages(path: Path) -> set[str]:
    """The ``robustfl.<package>`` names a source file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "robustfl" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_packages_never_import_upper_ones(package: str) -> None:
    bad = []
    for path in sorted((SRC / package).rglob("*.py")):
        for imported in imported_packages(path) & set(FORBIDDEN[package]):
            bad.append(f"{path.relative_to(SRC)} imports robustfl.{imported}")
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("module", BOTTOM)
def test_bottom_modules_import_only_the_bottom(module: str) -> None:
    allowed = {m.removesuffix(".py") for m in BOTTOM}
    assert imported_packages(SRC / module) <= allowed
