"""C-RSA Fig. 2: its cells, configs, the last-10 accuracy, the table rows and the figure."""

import json
from pathlib import Path

import pytest

from robustfl.experiment import crsa
from robustfl.experiment.config import ConfigError, validate


def test_cells_cover_both_panels_once() -> None:
    cells = crsa.figure2_cells(["rsa", "c-rsa"], [0, 2], [0.5, 1.0])
    assert [(c.method, c.b, c.gamma) for c in cells] == [
        ("rsa", 0, None),
        ("rsa", 2, None),
        ("c-rsa", 0, 0.5),
        ("c-rsa", 2, 0.5),  # also the right panel's gamma = 0.5 point: run once
        ("c-rsa", 2, 1.0),
    ]
    assert not any(c.gamma for c in crsa.figure2_cells(["mean"], [1]))  # no C-RSA, no right panel


def test_configs_set_b_krum_f_gamma_and_the_evaluation_rate() -> None:
    krum = crsa.figure2_config(crsa.Fig2Cell("krum", 3))
    assert krum["workers"]["f"] == 3 and krum["aggregator"]["params"]["f"] == 3
    assert krum["attack"]["name"] == "gaussian" and krum["training"]["eval_every"] == crsa.FIG2_EVAL_EVERY
    clean = crsa.figure2_config(crsa.Fig2Cell("krum", 0))
    assert "attack" not in clean and clean["aggregator"]["params"]["f"] == 0
    c = crsa.figure2_config(crsa.Fig2Cell("c-rsa", 2, 0.25))
    assert c["algorithm"]["params"]["gamma"] == 0.25 and c["name"] == "fig2_c-rsa_b2_gamma0.25"
    # the rest is Fig. 1's Gaussian setup
    fig1 = crsa.crsa_config("c-rsa", "gaussian")
    assert {k: v for k, v in c.items() if k not in ("name", "training", "algorithm")} == {
        k: v for k, v in fig1.items() if k not in ("name", "training", "algorithm")
    }
    validate(c)
    # the Fig. 1 tables are left alone
    assert crsa.METHODS["c-rsa"]["algorithm"]["params"]["gamma"] == 0.5
    assert crsa.METHODS["krum"]["aggregator"]["params"]["f"] == crsa.B
    with pytest.raises(ValueError, match="gamma is C-RSA's"):
        crsa.figure2_config(crsa.Fig2Cell("rsa", 2, 0.5))
    with pytest.raises(ValueError, match=r"b \(Byzantine workers\) must be in \[0, 10\)"):
        crsa.figure2_config(crsa.Fig2Cell("mean", 10))


def test_last_mean_averages_the_last_ten_evaluations() -> None:
    points = [{"test_accuracy": a / 100} for a in range(20)]
    assert crsa.last_mean(points) == pytest.approx(14.5)  # mean of 10..19
    assert crsa.last_mean(points[:3]) == pytest.approx(1.0)
    assert crsa.last_mean([]) is None


def fake_run(folder: Path, accs: list[float], bits: int) -> None:
    folder.mkdir(parents=True)
    lines = [
        {"round": 2 * (i + 1), "test_accuracy": a, "bits_up": bits * (i + 1), "bits_down": bits}
        for i, a in enumerate(accs)
    ]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def test_rows_and_figure_from_run_folders(tmp_path: Path) -> None:
    cells = crsa.figure2_cells(["rsa", "c-rsa"], [0, 2], [0.5, 1.0])
    dirs = [tmp_path / c.folder for c in cells]
    for i, d in enumerate(dirs):
        fake_run(d, [0.1 * i] * 12, 100)
    rows = crsa.figure2_rows(cells, dirs, [{"diverged": i == 1} for i in range(len(cells))])
    assert [r["last10_acc"] for r in rows] == pytest.approx([0.0, 10.0, 20.0, 30.0, 40.0])
    assert rows[1]["diverged"] and rows[4]["bits_up"] == 1200 and rows[4]["gamma"] == 1.0
    png = crsa.plot_figure2(rows, tmp_path / "fig2.png")
    assert png.stat().st_size > 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"methods": ["trimmed"]}, "unknown method trimmed"),
        ({"bs": [0, 10]}, r"--b: every value must be in \[0, 10\)"),
        ({"gammas": [0.0]}, r"--gamma: every value must be in \(0, 1\]"),
    ],
)
def test_reproduce_figure2_rejects_bad_arguments_before_any_run(kw: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=match):
        crsa.reproduce_figure2(tmp_path, **kw)
    assert not any(tmp_path.iterdir())
