"""Config-time checks (issues 11 and 18): devices, bounds, nesting, names, breakdown bounds, warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustfl.experiment.config import ConfigError, load_config
from robustfl.experiment.preflight import check_config


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["training.device=cuda"])
    (line,) = str(info.value).splitlines()
    assert line.startswith("config error: training.device: ") and "this machine has: cpu" in line


@pytest.mark.parametrize("device", ["gpu", "meta", "cuda:x"])
def test_unknown_devices_name_what_exists(device: str) -> None:
    with pytest.raises(ConfigError, match=r"training.device: .* is not a device robustfl runs on .*has: cpu"):
        load_config(None, [f"training.device={device}"])


def test_cpu_device_is_normalised() -> None:
    assert load_config(None, ["training.device=CPU"]).training.device == "cpu"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("training.rounds=true", "training.rounds: Input should be a valid integer"),
        ("training.rounds=100000000", "training.rounds: Input should be less than or equal to 10000000"),
        ("training.batch_size=1000000000", "training.batch_size: Input should be less than or equal to"),
        ("training.threads=0", "training.threads: Input should be greater than or equal to 1"),
    ],
)
def test_bounds_and_strict_integers(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [setting])


def test_deep_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("[aggregator.params]\nx = " + "[" * 2000 + "]" * 2000 + "\n")
    with pytest.raises(ConfigError, match="nested deeper than 64 levels"):
        load_config(path)
    with pytest.raises(ConfigError, match="nested deeper than 64 levels"):
        load_config(None, ["aggregator.params={x = " + "[" * 100 + "]" * 100 + "}"])


def test_misspelt_names_fail_at_check_time() -> None:
    with pytest.raises(ConfigError, match=r"^config error: aggregator.name: unknown aggregator 'medain'"):
        check_config(load_config(None, ["aggregator.name=medain"]))
    with pytest.raises(ConfigError, match=r"^config error: compressor.name: unknown compressor"):
        check_config(load_config(None, ["compressor.name=topkk"]))
    with pytest.raises(ConfigError, match=r"^config error: training.lr_schedule.name: unknown lr schedule"):
        check_config(load_config(None, ["training.lr_schedule={name = 'cosin'}"]))
    with pytest.raises(ConfigError, match=r"^config error: coding.name: unknown coding scheme 'drako'"):
        check_config(load_config(None, ["coding={name = 'drako'}"]))
    with pytest.raises(ConfigError, match=r"^config error: algorithm.name: unknown algorithm 'fedav'"):
        check_config(load_config(None, ["algorithm={name = 'fedav'}"]))


@pytest.mark.parametrize(
    "rule",
    [
        ["aggregator.name=median"],
        ["aggregator.name=geometric-median"],
        ["aggregator.name=bgmd", "aggregator.params={ratio = 0.1}"],
        ["aggregator.name=centered-clipping"],
    ],
)
def test_honest_majority_rules_refuse_f_at_least_half(rule: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"workers.f: .* breakdown point 1/2 .* n=10, f=5"):
        check_config(load_config(None, [*rule, "workers.f=5"]))
    assert check_config(load_config(None, [*rule, "workers.f=4"])) == []


def test_rules_with_f_keep_their_own_bound() -> None:
    with pytest.raises(ConfigError, match="config error: workers: Krum needs n > 2f"):
        check_config(load_config(None, ["aggregator.name=krum", "workers.f=5"]))


def test_known_bad_rule_and_compressor_pairs_warn() -> None:
    (warning,) = check_config(
        load_config(None, ["aggregator.name=median", "compressor.name=qsgd", "compressor.params={s = 4}"])
    )
    assert "'median' with compressor 'qsgd'" in warning and "docs/compression.md" in warning
    for fine in (
        ["aggregator.name=mean"],
        ["aggregator.name=geometric-median"],
        ["aggregator.name=trimmed-mean"],
    ):
        assert check_config(load_config(None, [*fine, "compressor.name=top-k"])) == []
    assert check_config(
        load_config(None, ["aggregator.name=trimmed-mean", "workers.f=1", "compressor.name=topk"])
    )


def test_every_packaged_config_passes_the_checks() -> None:
    from robustfl.cli.run import packaged_configs

    configs = packaged_configs()
    assert "demo" in configs and len(configs) > 20
    for path in configs.values():
        assert check_config(load_config(path)) == [], path
