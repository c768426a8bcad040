from typer.testing import CliRunner

from robustfl.cli import app


def test_list_models_and_datasets() -> None:
    runner = CliRunner()
    models = runner.invoke(app, ["list", "models"], env={"COLUMNS": "250"})
    assert models.exit_code == 0, models.output
    assert "resnet18" in models.output and "stem_bn=False" in models.output
    assert "crsa-cnn" in models.output and "CRSACNN" in models.output
    datasets = runner.invoke(app, ["list", "datasets"], env={"COLUMNS": "250"})
    assert datasets.exit_code == 0, datasets.output
    assert "embedded-mnist" in datasets.output
    assert "split='digits'" in datasets.output
