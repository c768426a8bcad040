"""Users' own components (issue 18 §3): module:Class names, config imports, entry points, kebab-case names,
the attack contract, and user modules inside spawned sweep workers."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

import robustfl.registry as registry_module
from robustfl.experiment.config import ConfigError, load_config
from robustfl.experiment.preflight import check_config
from robustfl.registry import Registry, import_modules

RULE_MODULE = '''
import torch
from robustfl.aggregators import AGGREGATORS
from robustfl.aggregators.base import Aggregator


@AGGREGATORS.register("{name}")
class Midrange(Aggregator):
    """(min + max) / 2 per coordinate."""

    def _aggregate(self, x: torch.Tensor) -> torch.Tensor:
        return (x.min(0).values + x.max(0).values) / 2


def bare_attack(honest, f, rng=None):
    return honest[:1].repeat(f, 1)


class NoRound:
    def __call__(self, honest, f, *, rng=None, own=None):
        return honest[:1].repeat(f, 1)
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A module in a folder on sys.path, registering the aggregator ``test-midrange-<test>``."""
    name = f"user_rules_{request.node.name.replace('[', '_').replace(']', '_').replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(RULE_MODULE.format(name=name.replace("_", "-"))))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_module_colon_class_names_a_component(user_module: str) -> None:
    from robustfl.experiment.build import build_aggregator

    cfg = load_config(None, [f"aggregator.name={user_module}:Midrange"])
    assert check_config(cfg) == []
    assert type(build_aggregator(cfg)).__name__ == "Midrange"


def test_imports_register_before_the_names_are_checked(user_module: str) -> None:
    cfg = load_config(None, [f"aggregator.name={user_module.replace('_', '-')}"])
    with pytest.raises(ConfigError, match="unknown aggregator"):
        check_config(cfg)
    cfg.imports = [user_module]
    assert check_config(cfg) == []


def test_bad_imports_are_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^config error: imports: cannot import 'no_such_mod_xyz'"):
        check_config(load_config(None, ['imports=["no_such_mod_xyz"]']))
    cfg = load_config(None, ["aggregator.name=no_such_mod_xyz:X"])
    with pytest.raises(ConfigError, match="aggregator.name: aggregator 'no_such_mod_xyz:X': cannot import"):
        check_config(cfg)


def test_plain_function_attack_gets_the_contract_error(user_module: str) -> None:
    for attack, words in (("bare_attack", "is the attack function itself"), ("NoRound", "keyword(s) round")):
        cfg = load_config(None, [f"attack.name={user_module}:{attack}", "workers.f=1"])
        with pytest.raises(ConfigError, match=rf"attack.name: .*{re.escape(words)}.*attack\(honest"):
            check_config(cfg)


def test_entry_points_load_on_an_unknown_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    reg: Registry[Any] = Registry("widget")
    calls: list[str] = []

    def plugin() -> None:
        calls.append("loaded")
        reg.register("from-plugin")(dict)

    monkeypatch.setattr(registry_module, "_plugins_loaded", False)
    monkeypatch.setitem(globals(), "plugin_for_test", plugin)
    point = EntryPoint("mine", f"{__name__}:plugin_for_test", registry_module.PLUGIN_GROUP)
    monkeypatch.setattr(
        "importlib.metadata.entry_points", lambda group: [point] if group == point.group else []
    )
    assert reg["from-plugin"] is dict and calls == ["loaded"]
    with pytest.raises(ValueError, match="unknown widget 'other'"):
        reg["other"]
    assert calls == ["loaded"]  # plugins are imported once


def test_names_are_kebab_case_and_old_names_still_work() -> None:
    from robustfl.attacks import ATTACKS
    from robustfl.compressors import COMPRESSORS
    from robustfl.data import DATASETS

    for reg in (ATTACKS, COMPRESSORS, DATASETS):
        assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in reg.names()), reg.names()
    assert COMPRESSORS["top_k"] is COMPRESSORS["top-k"] and COMPRESSORS["RAND_L"] is COMPRESSORS["rand-l"]
    assert DATASETS["fashion_mnist"] is DATASETS["fashion-mnist"]


def test_import_modules_finds_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    (tmp_path / "cwd_plugin_mod.py").write_text("VALUE = 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    import_modules(["cwd_plugin_mod"])
    assert sys.modules["cwd_plugin_mod"].VALUE == 1


def test_sweep_workers_import_user_modules(
    user_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spawned workers are fresh interpreters: the config's imports register the rule there too."""
    from robustfl.experiment.sweep import sweep

    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{Path(registry_module.__file__).parents[1]}")
    config = tmp_path / "c.toml"
    config.write_text(
        f'imports = ["{user_module}"]\n[aggregator]\nname = "{user_module.replace("_", "-")}"\n'
        "[training]\nrounds = 1\neval_every = 1\nbatch_size = 8\n[workers]\nn = 3\n[model]\nname = 'mlp'\n"
    )
    rows = sweep(config, ["training.lr=0.1"], tmp_path / "s", workers=2)  # one point: one process
    assert [r["diverged"] for r in rows] == [False]


def test_list_shows_imported_components(user_module: str) -> None:
    from typer.testing import CliRunner

    from robustfl.cli import app

    result = CliRunner().invoke(app, ["list", "aggregators", "--import", user_module])
    assert result.exit_code == 0 and user_module.replace("_", "-") in result.output
    result = CliRunner().invoke(app, ["list", "aggregators", "--import", "no_such_mod_xyz"])
    assert result.exit_code == 2 and "--import: cannot import 'no_such_mod_xyz'" in result.output


def test_a_broken_user_module_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_plugin_xyz.py").write_text("raise RuntimeError('my bug')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"importing 'broken_plugin_xyz' raised RuntimeError: my bug"):
        import_modules(["broken_plugin_xyz"])
