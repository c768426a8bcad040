"""`robustfl reproduce edge-case`: the chapter's grid as configs, the pre-trained start, Krum's selections."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from robustfl.aggregators import Krum, MultiKrum
from robustfl.experiment import edge_case as ec
from robustfl.experiment.build import build_aggregator, build_algorithm
from robustfl.experiment.config import ConfigError

SHORT = ["training.rounds=1", "training.eval_every=1", "algorithm.params.local_steps=1"]


@pytest.mark.parametrize("defence", list(ec.DEFENCES))
def test_defences_take_the_chapters_parameters(defence: str) -> None:
    rule = build_aggregator(ec.point_config("fixed-frequency", "black-box", defence))
    expected = {
        "none": {},
        "ndc": {"threshold": ec.TAU},
        "weak-dp": {"threshold": ec.TAU, "sigma": ec.SIGMA},
        "krum": {"f": 1},
        "multi-krum": {"f": 1, "m": None},  # m = n - f of the participating clients
        "rfa": {"nu": 1e-5, "T": 500},
        "trimmed-mean": {"f": 1},  # 10% of the 10 clients of a round, per side
    }[defence]
    assert {k: getattr(rule, k) for k in expected} == expected


def test_modes_and_patterns_set_the_chapters_protocol() -> None:
    cfg = ec.point_config("fixed-frequency", "pgd", "none")
    assert (cfg.workers.f, cfg.byzantine.every, cfg.workers.per_round) == (1, 10, 10)
    assert build_algorithm(cfg).budget(500) == pytest.approx(ec.DELTA * 0.998**500)
    mr = ec.point_config("fixed-pool", "pgd-mr", "none")
    assert (mr.workers.f, mr.byzantine.every, mr.byzantine.ids) == (3, 1, "random")
    assert build_algorithm(mr).budget(0) == pytest.approx(ec.DELTA / ec.COHORT)
    assert mr.attack is not None and mr.attack.name == "model-replacement"  # scales by the cohort size
    assert build_algorithm(ec.point_config("fixed-pool", "black-box", "none")).budget(0) == float("inf")
    assert ec.point_config("fixed-pool", "none", "krum").workers.f == 0
    with pytest.raises(ConfigError, match="unknown defence 'nope'"):
        ec.point_config("fixed-pool", "none", "nope")


def test_recorder_counts_krum_choices_per_client(tmp_path: Path) -> None:
    rows = torch.zeros(5, 3)
    rows[4] = 10.0  # the outlier: never Krum's choice
    rows[1] = 0.01  # ties broken by the lowest index among the closest
    cohort = SimpleNamespace(
        ids=torch.tensor([2, 5, 7, 8, 9]), byzantine=torch.tensor([0, 0, 0, 0, 1]).bool()
    )
    calls = []
    recorder = ec.SelectionRecorder(lambda *a: calls.append(a) or "out", Krum(f=1), tmp_path / "s.json")
    assert recorder(None, rows, None, None, 0.1, 0, cohort) == "out" and len(calls) == 1
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frequency"] == {"2": 1.0, "5": 0.0, "7": 0.0, "8": 0.0, "9": 0.0}
    assert summary["attacker"] == 0.0 and summary["honest"] == 0.25
    multi = ec.SelectionRecorder(lambda *a: None, MultiKrum(f=1), tmp_path / "m.json")
    assert sorted(multi.chosen_rows(rows)) == [0, 1, 2, 3]


def test_runs_start_from_the_pretrained_model(tmp_path: Path) -> None:
    cfg = ec.point_config("fixed-frequency", "none", "none", SHORT)
    fresh = ec.build_from_pretrained(cfg, None, None).sim.params
    init = tmp_path / "p.pt"
    torch.save(fresh + 0.5, init)
    loaded = ec.build_from_pretrained(cfg, init, None).sim
    assert torch.equal(loaded.params, fresh + 0.5)
    assert torch.equal(loaded.flat.flat_params(), fresh + 0.5)  # the model itself holds them
    torch.save(torch.zeros(3), init)
    with pytest.raises(ConfigError, match="do not fit this model"):
        ec.build_from_pretrained(cfg, init, None)


def test_reproduce_writes_one_row_per_run(tmp_path: Path) -> None:
    rows = ec.reproduce(
        tmp_path,
        patterns=["fixed-frequency"],
        modes=["pgd"],
        defences=["none", "krum"],
        pretrain_rounds=1,
        overrides=SHORT,
    )
    assert [(r["mode"], r["defence"]) for r in rows] == [("pgd", "none"), ("pgd", "krum")]
    assert all(0.0 <= r["backdoor_accuracy"] <= 1.0 and r["main_accuracy"] > 0.1 for r in rows)
    assert all(r["backdoor_mean"] <= r["backdoor_max"] for r in rows)
    assert rows[0]["attacker_selected"] is None and rows[1]["attacker_selected"] in (0.0, 1.0)
    assert (tmp_path / "pretrain" / "params.pt").exists() and (tmp_path / "edge_case.md").exists()


@pytest.mark.parametrize("command", [["reproduce", "edge-case"], ["edge-case"]])
def test_cli_and_its_alias_print_the_table(monkeypatch, tmp_path: Path, command: list[str]) -> None:
    from typer.testing import CliRunner

    from robustfl.cli import app

    def fake(out, **kwargs):
        assert kwargs["modes"] == ["none", "pgd-mr"] and "training.rounds=3" in kwargs["overrides"]
        return [
            {
                "pattern": "fixed-frequency",
                "mode": m,
                "defence": d,
                "main_accuracy": 0.9,
                "backdoor_accuracy": 0.25,
            }
            for m in kwargs["modes"]
            for d in kwargs["defences"]
        ]

    monkeypatch.setattr(ec, "reproduce", fake)
    result = CliRunner().invoke(app, [*command, "--quick", "-q", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "pgd-mr" in result.output and "0.25" in result.output


def test_pgd_with_replacement_equals_pgd_when_projecting_once() -> None:
    """With the projection only after the last of the 5 local steps, and an attacker update longer than
    delta (5 steps from a random start), radius delta/m scaled by m is radius delta."""
    sims = [
        ec.build_from_pretrained(
            ec.point_config("fixed-frequency", mode, "none", ["training.rounds=1"]), None, None
        ).sim
        for mode in ("pgd", "pgd-mr")
    ]
    start = sims[0].params.clone()
    for sim in sims:
        assert sim.step().metrics["byzantine_ids"] == [29]
    moved = torch.linalg.vector_norm(sims[0].params - start)
    assert moved > 0
    assert torch.linalg.vector_norm(sims[0].params - sims[1].params) <= 1e-5 * moved


def test_split_and_capacity_points_set_the_sweeps_field() -> None:
    assert ec.split_overrides(0.25) == ["data_attack.params.honest_edge_fraction=0.75"]
    assert ec.split_overrides(0.0)[-1] == "data_attack.params.fraction=0"  # no edge example to mix in
    cfg = ec.point_config("fixed-pool", "black-box", "none", ec.capacity_overrides(16))
    assert cfg.model.params["hidden"] == [16, 16]
    with pytest.raises(ConfigError, match="adversary edge share"):
        ec.split_overrides(1.5)
    with pytest.raises(ConfigError, match="unknown study 'nope'"):
        ec.study(Path("unused"), "nope", [1])


def test_split_study_runs_every_share_from_one_pretrained_model(tmp_path: Path) -> None:
    rows = ec.study(tmp_path, "split", [0.0, 1.0], pretrain_rounds=1, overrides=SHORT)
    assert [r["split"] for r in rows] == [0.0, 1.0]
    assert all(0.0 <= r["backdoor_accuracy"] <= 1.0 and r["main_accuracy"] > 0.1 for r in rows)
    assert (tmp_path / "split" / "pretrain" / "params.pt").exists() and (tmp_path / "split.md").exists()
    sims = [
        ec.build_from_pretrained(ec.point_config("fixed-pool", "black-box", "none", e), None, None).sim
        for e in (ec.split_overrides(0.0), ec.split_overrides(1.0))
    ]
    # p = 0: the honest pool holds every edge train sample (7s labelled 7); p = 1: none of them
    assert len(sims[0].x_store) > len(sims[1].x_store)


def test_capacity_study_pretrains_each_width(tmp_path: Path) -> None:
    rows = ec.study(tmp_path, "capacity", [8, 16], pretrain_rounds=1, overrides=SHORT)
    assert [r["capacity"] for r in rows] == [8, 16]
    assert all((tmp_path / "capacity" / str(w) / "pretrain" / "params.pt").exists() for w in (8, 16))


def test_cli_study_option(monkeypatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from robustfl.cli import app

    def fake(out, kind, values, **kwargs):
        assert (kind, values, kwargs["mode"]) == ("capacity", [8, 32], "pgd")
        return [{"capacity": v, "main_accuracy": 0.9, "backdoor_accuracy": 0.125} for v in values]

    monkeypatch.setattr(ec, "study", fake)
    args = ["reproduce", "edge-case", "--study", "capacity", "--width", "8", "--width", "32", "--mode", "pgd"]
    result = CliRunner().invoke(app, [*args, "-q", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "0.125" in result.output
    bad = CliRunner().invoke(app, [*args, "--mode", "none", "-q", "-o", str(tmp_path)])
    assert bad.exit_code == 2 and "--study takes one --mode" in bad.output
