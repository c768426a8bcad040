"""benchmarks/algorithms.py: argument handling and the per-algorithm arguments (no timing here)."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from robustfl.algorithms import ALGORITHMS


def bench() -> ModuleType:
    path = Path(__file__).parents[2] / "benchmarks" / "algorithms.py"
    spec = importlib.util.spec_from_file_location("bench_algorithms", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_algorithms", module)
    spec.loader.exec_module(module)
    return module


def test_every_registered_algorithm_once_with_buildable_arguments() -> None:
    b = bench()
    names = b.algorithm_names()
    assert {"sgd", "fedavg", "scaffold", "mime", "c-rsa"} <= set(names)
    assert "local-sgd" not in names and "crsa" not in names  # aliases are not benchmarked twice
    for name in names:
        ALGORITHMS.get(name, **b.case_params(name))
    assert b.case_params("scaffold") == {"local_steps": 2} and b.case_params("sgd") == {}


def test_arguments() -> None:
    b = bench()
    quick = b.parse_args(["--quick"])
    assert quick.sizes == [20] and quick.rounds == 1 and quick.algorithm == ["sgd", "mime"]
    full = b.parse_args(["--algorithm", "rsa", "--sizes", "20", "100"])
    assert full.algorithm == ["rsa"] and full.sizes == [20, 100] and full.rounds == 3
    for bad in (["--algorithm", "nope"], ["--rounds", "0"], ["--sizes", "0"]):
        with pytest.raises(SystemExit):
            b.parse_args(bad)


def test_a_failing_cell_becomes_a_row_with_the_reason() -> None:
    row = bench().fmt_row({"algorithm": "gossip", "clients": 20, "skipped": "ValueError: needs a graph"})
    assert "skipped: ValueError: needs a graph" in row
