from typer.testing import CliRunner

from robustfl.aggregators import AGGREGATORS
from robustfl.cli import app
from robustfl.cli.listing import KINDS, rows


def test_list_aggregators_shows_every_rule_with_defaults_and_bound() -> None:
    result = CliRunner().invoke(app, ["list", "aggregators"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in ("krum", "trimmed-mean, trmean", "bgmd", "centered-clipping", "geometric-median"):
        assert name in result.output
    assert "nu=0.1, T=3, tol=None" in result.output
    assert "n >= 4f + 3" in result.output


def test_rows_group_aliases_and_cover_the_registry() -> None:
    table = rows(AGGREGATORS)
    listed = [name for row in table for name in row[0].split(", ")]
    assert sorted(listed) == AGGREGATORS.names()
    krum = next(row for row in table if row[1] == "MultiKrum")
    assert krum[0] == "multi-krum, multikrum"
    assert krum[2] == "f=0, m=None, neighbours='byzfl'"
    assert "aggregators" in KINDS


def test_unknown_kind_is_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["list", "widgets"])
    assert result.exit_code != 0
    assert "unknown kind 'widgets'" in result.output


def test_list_attacks_and_data_attacks_show_registered_names() -> None:
    result = CliRunner().invoke(app, ["list", "attacks"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "bit-flip" in result.output and "ALittleIsEnough" in result.output
    result = CliRunner().invoke(app, ["list", "data-attacks"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "BackdoorLabels" in result.output
