from typer.testing import CliRunner

from robustfl.cli import app


def test_partition_command_prints_the_label_histogram() -> None:
    result = CliRunner().invoke(
        app, ["partition", "--scheme", "labels", "--labels-per-client", "1", "--clients", "10"]
    )
    assert result.exit_code == 0, result.output
    assert "10 clients, 4000 of 4000 samples assigned" in result.output
    # one label per client: every client row shows 400 samples
    assert result.output.count("│ 400 │") >= 10


def test_partition_command_reports_bad_options_without_traceback() -> None:
    result = CliRunner().invoke(app, ["partition", "--scheme", "iid", "--alpha", "0.1"])
    assert result.exit_code == 2
    assert "applies to scheme dirichlet" in result.output
    assert "Traceback" not in result.output
