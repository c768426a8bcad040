from pathlib import Path

import pytest

from robustfl.experiment.config import ConfigError, ExperimentConfig, load_config, parse_value, schema_rows


def test_defaults_validate() -> None:
    cfg = load_config(None)
    assert cfg.training.rounds == 100
    assert cfg.aggregator.name == "mean"
    assert cfg.attack is None


def test_invalid_value_names_field_and_value() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["training.lr=-1"])
    assert str(err.value) == "config error: training.lr: Input should be greater than 0 (got -1)"


def test_unknown_field_rejected_with_path() -> None:
    with pytest.raises(ConfigError, match=r"training\.lrr: unknown field"):
        load_config(None, ["training.lrr=0.1"])


def test_unknown_section_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[optimizer]\nlr = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^config error: optimizer: unknown field"):
        load_config(path)


def test_every_problem_is_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["training.rounds=0", "workers.n=abc", "model.nme=x"])
    lines = str(err.value).splitlines()
    assert sorted(line.split(":")[1].strip() for line in lines) == [
        "model.nme",
        "training.rounds",
        "workers.n",
    ]


def test_f_must_leave_an_honest_worker() -> None:
    with pytest.raises(ConfigError, match=r"workers: f = 4 must be smaller than n = 4"):
        load_config(None, ["workers.n=4", "workers.f=4"])


def test_set_coerces_through_schema() -> None:
    cfg = load_config(
        None, ["training.lr=0.2", "workers.n=12", "training.vectorise=false", "aggregator.params={f = 2}"]
    )
    assert cfg.training.lr == 0.2 and isinstance(cfg.training.lr, float)
    assert cfg.workers.n == 12
    assert cfg.training.vectorise is False
    assert cfg.aggregator.params == {"f": 2}
    cfg = load_config(None, ["training.lr=1", "attack.name=sign-flipping", "aggregator.pre=[{name = 'nnm'}]"])
    assert isinstance(cfg.training.lr, float)
    assert cfg.attack is not None and cfg.attack.name == "sign-flipping"
    assert cfg.aggregator.pre[0].name == "nnm"


def test_words_that_toml_reads_as_numbers_stay_names() -> None:
    cfg = load_config(None, ["attack.name=inf", "data_attack.name=nan", "name=2024", "workers.f=1"])
    assert cfg.attack is not None and cfg.attack.name == "inf"
    assert cfg.data_attack is not None and cfg.data_attack.name == "nan"
    assert cfg.name == "2024"
    with pytest.raises(ConfigError, match=r"training\.lr: Input should be a finite number"):
        load_config(None, ["training.lr=inf"])


def test_parse_value_keeps_plain_strings() -> None:
    assert parse_value("krum") == "krum"
    assert parse_value("3") == 3
    assert parse_value("[1, 2]") == [1, 2]


@pytest.mark.parametrize("bad", ["training.lr", "=3", "training.lr.x=1"])
def test_bad_set_syntax(bad: str) -> None:
    with pytest.raises(ConfigError, match="config error"):
        load_config(None, [bad])


def test_file_roundtrip_and_name_from_stem(tmp_path: Path) -> None:
    path = tmp_path / "my_run.toml"
    path.write_text('[aggregator]\nname = "krum"\nparams = {f = 1}\n', encoding="utf-8")
    cfg = load_config(path)
    assert cfg.name == "my_run"
    assert ExperimentConfig.model_validate(cfg.to_dict()) == cfg


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[training\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_schema_rows_document_every_field() -> None:
    rows = {r[0]: r for r in schema_rows()}
    for path in [
        "training.lr",
        "workers.f",
        "aggregator.pre[].name",
        "compressor.error_feedback",
        "data.alpha",
    ]:
        assert rows[path][3], path
    assert all(r[3] for r in rows.values())


def test_docs_list_every_field() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "experiments.md").read_text()
    missing = [r[0] for r in schema_rows() if f"| {r[0]} |" not in docs]
    assert not missing, (
        f"docs/experiments.md lacks {missing}; regenerate with `robustfl config-schema --markdown`"
    )
