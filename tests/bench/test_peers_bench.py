"""The pure parts of ``benchmarks/peers.py`` (no peer library needed): arguments, the line protocol, the
summary and table, the harness's timeout and failure handling, and one round of the plain loop."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_peers", ROOT / "benchmarks" / "peers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


peers = _load()


def test_parse_args_defaults_and_options() -> None:
    s = peers.parse_args([])
    assert s.clients == [20, 100, 500, 1000] and s.rounds == 30 and s.repeats == 1
    assert s.peers == ["robustfl", "byzfl", "flower", "plain"]
    s = peers.parse_args(
        ["--clients", "20,100", "--rounds", "5", "--repeats", "3", "--peers", "robustfl,plain"]
    )
    assert (s.clients, s.rounds, s.repeats, s.peers) == ([20, 100], 5, 3, ["robustfl", "plain"])
    assert peers.parse_args(["--robustfl-src", str(ROOT / "src")]).robustfl_src == str(ROOT / "src")
    quick = peers.parse_args(["--quick"])
    assert quick.rounds == 2 and len(quick.clients) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clients", "20,x"], "--clients"),
        (["--clients", "0"], "--clients"),
        (["--rounds", "0"], "--rounds"),
        (["--repeats", "0"], "--repeats"),
        (["--timeout", "0"], "--timeout"),
        (["--peers", "robustfl,tff"], "--peers: unknown tff"),
        (["--robustfl-src", "/nonexistent"], "--robustfl-src '/nonexistent': no robustfl package"),
    ],
)
def test_parse_args_refuses_bad_values(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as err:
        peers.parse_args(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_parse_line_folds_the_protocol() -> None:
    cell = peers.Cell("robustfl", 20, 0)
    for line in [
        'READY {"torch": "2.13.0", "robustfl": "0.1.0"}',
        "ROUND 0 0.9 0.8",
        "ROUND 1 0.5 0.25",
        "ROUND 2 0.3 0.2",
        "ROUND 3 0.4 0.3",
        'DONE {"accuracy": 0.5, "rss_self": 1024}',
    ]:
        peers.parse_line(cell, line)
    assert cell.warmup == 0.9 and cell.walls == [0.5, 0.3, 0.4] and cell.cpus == [0.25, 0.2, 0.3]
    assert cell.rounds_per_s == pytest.approx(2.5) and cell.cpu_rounds_per_s == pytest.approx(4.0)
    assert cell.versions == {"torch": "2.13.0", "robustfl": "0.1.0"}
    assert cell.accuracy == 0.5 and cell.rss == 1024


def _cell(peer: str, n: int, rep: int, walls: list[float], status: str = "ok", note: str = "") -> object:
    return peers.Cell(
        peer, n, rep, status=status, note=note, walls=walls, cpus=[w / 2 for w in walls], rss_self=2**30
    )


def test_summary_pairs_repetitions_and_table_marks_every_case() -> None:
    cells = [
        # robustfl is 4x then 2x the loop in two repetitions: paired median 3x, not the ratio of medians
        _cell("robustfl", 20, 0, [0.1]),
        _cell("plain", 20, 0, [0.4]),
        _cell("robustfl", 20, 1, [0.2]),
        _cell("plain", 20, 1, [0.4]),
        _cell("flower", 20, 0, [], "did not start", "ModuleNotFoundError: No module named 'ray'"),
        _cell("flower", 20, 1, [], "did not start", "ModuleNotFoundError: No module named 'ray'"),
        _cell("robustfl", 500, 0, [2.0, 3.0], "timeout", "2 of the timed rounds within 10 s"),
    ]
    summary = peers.summarise(cells)
    row = summary[20]
    assert row["robustfl"]["rounds_per_s"] == pytest.approx(7.5)  # median of 10 and 5
    assert row["plain"]["speedup"] == pytest.approx(3.0)
    assert row["plain"]["cpu_speedup"] == pytest.approx(3.0)
    assert row["flower"]["rounds_per_s"] is None
    table = peers.format_table(summary, ["robustfl", "flower", "plain"])
    assert (
        "| 20 | 7.50 | – (did not start: ModuleNotFoundError: No module named 'ray') | 2.50 (robustfl 3.00x) |"
        in table
    )
    assert "| 500 | 0.400* | – | – |" in table
    assert "rounds/s, CPU time" in table and "| 20 | 1.00, – |" in table


@pytest.mark.parametrize(
    ("x", "text"), [(22.14, "22.1"), (6.834, "6.83"), (0.3721, "0.372"), (0.04149, "0.0415"), (123.4, "123")]
)
def test_fmt_three_significant_digits(x: float, text: str) -> None:
    assert peers.fmt(x) == text


def _child(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(body))
    return [sys.executable, str(script)]


def test_run_cell_keeps_rounds_of_a_cell_cut_by_its_timeout(tmp_path: Path) -> None:
    cmd = _child(
        tmp_path,
        """
        import time
        print('READY {"torch": "x"}', flush=True)
        for r in range(3):
            print(f"ROUND {r} 0.5 0.25", flush=True)
        time.sleep(60)
        """,
    )
    cell = peers.run_cell(peers.Cell("plain", 4, 0), cmd, {}, 3.0, tmp_path / "log")
    assert cell.status == "timeout" and cell.walls == [0.5, 0.5] and "2 of the timed rounds" in cell.note
    assert cell.seconds < 30 and len(cell.load_start) == 3 and cell.rss_tree


def test_run_cell_counts_a_cell_whose_shutdown_outlasts_the_timeout(tmp_path: Path) -> None:
    cmd = _child(
        tmp_path,
        """
        import time
        for r in range(3):
            print(f"ROUND {r} 0.5 0.25", flush=True)
        print('DONE {"accuracy": 0.7}', flush=True)
        time.sleep(60)
        """,
    )
    cell = peers.run_cell(peers.Cell("flower", 4, 0), cmd, {}, 3.0, tmp_path / "log", rounds=2)
    assert cell.status == "ok" and cell.accuracy == 0.7 and "shutdown" in cell.note


def test_run_cell_records_a_failure_in_one_line(tmp_path: Path) -> None:
    cmd = _child(
        tmp_path,
        "import sys\nprint('warming up', file=sys.stderr)\nraise ImportError('no module named flwr')\n",
    )
    cell = peers.run_cell(peers.Cell("flower", 4, 0), cmd, {}, 30.0, tmp_path / "log")
    assert cell.status == "did not start" and cell.note == "ImportError: no module named flwr"
    cell = peers.run_cell(peers.Cell("plain", 4, 0), cmd, {}, 30.0, tmp_path / "log2")
    assert cell.status == "failed"


def test_plain_loop_round_is_the_median_step() -> None:
    torch.manual_seed(0)
    n, per = 3, 5  # 5 samples per client: batches of 32 drawn with replacement
    init = [p.detach().clone() for p in _random_mlp().parameters()]
    task = {
        "x_train": torch.randn(n * per, 1, 28, 28),
        "y_train": torch.randint(10, (n * per,)),
        "parts": list(torch.arange(n * per).split(per)),
        "init": init,
    }
    loop = peers.PlainLoop(task, n, lr=0.1)
    loop.round(0)
    grads = []
    for i in range(n):
        model = peers.make_mlp(init)
        idx = peers.client_batch(task["parts"][i], i, 0)
        assert idx.numel() == 32 and set(idx.tolist()) <= set(task["parts"][i].tolist())
        loss = torch.nn.functional.cross_entropy(model(task["x_train"][idx]), task["y_train"][idx])
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))]))
    expected = torch.cat([w.reshape(-1) for w in init]) - 0.1 * torch.stack(grads).median(dim=0).values
    got = torch.cat([w.detach().reshape(-1) for w in loop.server.parameters()])
    assert not torch.equal(got, torch.cat([w.reshape(-1) for w in init]))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def _random_mlp() -> torch.nn.Module:
    widths = [784, 200, 200, 10]
    return torch.nn.Sequential(*[torch.nn.Linear(a, b) for a, b in itertools.pairwise(widths)])
