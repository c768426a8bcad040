"""Checks of a whole configuration before anything runs or any folder is created.

:func:`check_config` imports the config's ``imports``, resolves every registry name, builds the
aggregator (cheap) and checks it against ``workers.n`` / ``workers.f``, checks that a message attack keeps
the attack contract, and returns warnings for rule/compressor pairs known to fail. Sweeps call it on
every grid point before the first run, so a typo in the last point fails in a second, not after hours.

Breakdown bounds: rules that take ``f`` check ``n`` themselves (``check_n``); rules that do not take
``f`` but state an honest-majority breakdown point (median, geometric median, BGMD, centered clipping,
sign majority: "fewer than n/2 Byzantine rows") are checked here: ``2 f < n`` or a ``ConfigError``.
"""

from __future__ import annotations

import inspect
from typing import Any

from robustfl.experiment.config import ConfigError, ExperimentConfig
from robustfl.registry import Registry, import_modules

MAJORITY = "fewer than n/2"  # how the rules with breakdown point 1/2 state their bound
ATTACK_CONTRACT = "attack(honest: Tensor[h, d], f: int, *, rng, round, own) -> Tensor[f, d]"
# Coordinate-wise order statistics: on sparse or coarsely quantised rows most coordinates are 0 in most
# rows, so the statistic is 0 there (docs/compression.md, "Robust rules and compressors"; measured: the
# median stays near chance where the mean and the geometric median reach 88-89%).
COORDINATEWISE = ("Median", "TrimmedMean", "Meamed")


def check_config(config: ExperimentConfig) -> list[str]:
    """Raise ``ConfigError`` naming the field for anything that cannot run; return warnings (may be empty)."""
    try:
        import_modules(config.imports)
    except ValueError as err:
        raise ConfigError(f"config error: {err}") from None
    _check_names(config)
    rule = _check_aggregator(config)
    _check_attack(config)
    return _warnings(config, rule)


def _registries() -> dict[str, Registry[Any]]:
    from robustfl.aggregators import AGGREGATORS
    from robustfl.algorithms import ALGORITHMS
    from robustfl.algorithms.optim import SERVER_OPTIMIZERS
    from robustfl.algorithms.schedules import LR_SCHEDULES
    from robustfl.attacks import ATTACKS
    from robustfl.attacks.data import DATA_ATTACKS
    from robustfl.coding import CODINGS
    from robustfl.compressors import COMPRESSORS
    from robustfl.data import DATASETS
    from robustfl.models import MODELS

    return {
        "training.algorithm": ALGORITHMS,
        "data.name": DATASETS,
        "model.name": MODELS,
        "aggregator.name": AGGREGATORS,
        "attack.name": ATTACKS,
        "data_attack.name": DATA_ATTACKS,
        "compressor.name": COMPRESSORS,
        "coding.name": CODINGS,
        "training.lr_schedule.name": LR_SCHEDULES,
        "training.server_optimizer.name": SERVER_OPTIMIZERS,
    }


def _check_names(config: ExperimentConfig) -> None:
    from robustfl.experiment.build import algorithm_component

    algorithm, algorithm_field = algorithm_component(config)
    names: dict[str, str | None] = {
        "data.name": config.data.name,
        "model.name": config.model.name,
        "aggregator.name": config.aggregator.name,
        "attack.name": config.attack.name if config.attack else None,
        "data_attack.name": config.data_attack.name if config.data_attack else None,
        "compressor.name": config.compressor.name if config.compressor else None,
        "coding.name": config.coding.name if config.coding else None,
    }
    names.update({f"aggregator.pre[{i}].name": s.name for i, s in enumerate(config.aggregator.pre)})
    tr = config.training
    names["training.lr_schedule.name"] = tr.lr_schedule.name if tr.lr_schedule else None
    names["training.server_optimizer.name"] = tr.server_optimizer.name if tr.server_optimizer else None
    registries = _registries()
    checks = [
        (field, registries[field if field in registries else "aggregator.name"], name)
        for field, name in names.items()
    ]
    field = "training.algorithm" if algorithm_field == "training.algorithm" else "algorithm.name"
    checks.append((field, registries["training.algorithm"], algorithm.name))
    for field, registry, name in checks:
        if name is None:
            continue
        try:
            registry[name]
        except ValueError as err:
            raise ConfigError(f"config error: {field}: {err}") from None


def _check_aggregator(config: ExperimentConfig) -> Any:
    """Build the rule (and its pre stages) and check the cohort size ``n`` (``workers.per_round`` or
    ``workers.n``) and ``f`` against every stated bound; a cohort may hold up to ``min(f, n)`` attackers."""
    from robustfl.experiment.build import build_aggregator, context

    ctx = context(config)
    rule = build_aggregator(config, ctx)
    n, f = ctx.n, min(ctx.f, ctx.n)
    where = "workers.per_round" if config.workers.per_round else "workers"
    try:
        rule.check_n(n)
    except ValueError as err:
        raise ConfigError(f"config error: {where}: {err}; change workers.n, per_round or f") from None
    final = getattr(rule, "stages", [rule])[-1]
    bound = str(getattr(final, "breakdown", ""))
    if bound.startswith(MAJORITY) and 2 * f >= n and config.coding is None:  # a coding replaces the rule
        raise ConfigError(
            f"config error: workers.f: aggregator {config.aggregator.name!r} has breakdown point 1/2 "
            f"(it needs 2f < n), got n={n}, f={f}; lower workers.f below n/2 or raise workers.n"
        )
    return final


def _check_attack(config: ExperimentConfig) -> None:
    """A message attack must be a factory whose product takes ``rng``, ``round`` and ``own`` keywords."""
    if config.attack is None:
        return
    from robustfl.attacks import ATTACKS
    from robustfl.experiment.build import build_component, context

    factory = ATTACKS[config.attack.name]
    if not inspect.isclass(factory) and "honest" in _parameters(factory):
        raise ConfigError(
            f"config error: attack.name: {config.attack.name!r} is the attack function itself, but a "
            f"registry holds factories: register `lambda **params: {getattr(factory, '__name__', 'fn')}` "
            f"or subclass robustfl.attacks.Attack (contract: {ATTACK_CONTRACT})"
        )
    attack = build_component(ATTACKS, config.attack, "attack", context(config))
    params = _parameters(attack)
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    missing = [k for k in ("rng", "round", "own") if k not in params]
    if not callable(attack) or (missing and not takes_all):
        raise ConfigError(
            f"config error: attack.name: {config.attack.name!r} builds {type(attack).__name__}, which "
            f"does not take the keyword(s) {', '.join(missing) or 'call'}; the contract is "
            f"{ATTACK_CONTRACT} (subclass robustfl.attacks.Attack to get it)"
        )


def _parameters(obj: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return {}


def _warnings(config: ExperimentConfig, rule: Any) -> list[str]:
    """Rule/compressor pairs that train to chance accuracy (docs/compression.md explains why)."""
    if config.compressor is None or type(rule).__name__ not in COORDINATEWISE:
        return []
    if getattr(rule, "f", 1) == 0:  # a trimmed mean trimming nothing is the mean
        return []
    from robustfl.compressors import COMPRESSORS
    from robustfl.compressors.quantize import QSGD, TernGrad
    from robustfl.compressors.sparse import Sparsifier

    factory = COMPRESSORS[config.compressor.name]
    kind = None
    if inspect.isclass(factory) and issubclass(factory, Sparsifier):
        kind = "sparse messages (most coordinates are 0 in most rows)"
    elif inspect.isclass(factory) and issubclass(factory, QSGD | TernGrad):
        kind = "quantised messages (each coordinate takes a few levels, 0 the most common)"
    if kind is None:
        return []
    return [
        f"aggregator {config.aggregator.name!r} with compressor {config.compressor.name!r}: a "
        f"coordinate-wise rule on {kind} returns mostly zeros and can stay near chance accuracy; see "
        f"docs/compression.md, 'Robust rules and compressors'"
    ]
