"""Config -> simulator: every object is built through its registry, errors name the config field.

Conveniences (documented in docs/experiments.md):

* a rule, pre-aggregator or attack whose constructor takes ``f`` gets ``workers.f`` unless its ``params``
  set it;
* a constructor that takes ``seed`` (BGMD's sampling, bucketing's shuffle, ...) gets a seed derived from
  ``training.seed`` and the config field (``derive_seed(seed, "aggregator")``) unless its ``params`` set
  it, so changing ``training.seed`` changes every random stream of the run;
* the model's initial weights are drawn from ``derive_seed(training.seed, "model")`` (the global torch
  random state is left as it was);
* ``training.momentum`` / ``training.local_steps`` go to the algorithm when its constructor takes them;
  a non-default value for an algorithm that does not take it is an error;
* ``training.algorithm = "fedavg-pgd"`` with ``algorithm_params.radius`` arms the Byzantine workers with
  that PGD budget (:func:`robustfl.attacks.pgd_training.arm_attackers`);
* the ``edge-case`` data attack splits its edge cases off the loaded train split (its ``params`` take
  ``fraction`` and :func:`robustfl.attacks.edge_case.build_edge_case_set`'s ``source``, ``target``,
  ``tail_fraction``, ``test_fraction``, ``components``) and evaluates ``backdoor_accuracy`` on the
  edge-case test set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from robustfl.experiment.config import Component, ConfigError, ExperimentConfig
from robustfl.registry import Registry
from robustfl.utils import derive_seed, make_generator


@contextmanager
def config_field(path: str) -> Iterator[None]:
    """Re-raise a ``ValueError``/``TypeError``/``FileNotFoundError`` from a builder as a ``ConfigError`` naming ``path``."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise ConfigError(f"config error: {path}: {err}") from None


def build_component(registry: Registry[Any], component: Component, path: str, *, f: int, seed: int) -> Any:
    """``registry.get(name, **params)`` with ``f`` and a derived ``seed`` filled in where accepted."""
    with config_field(f"{path}.name"):
        accepted = registry.parameters(component.name)
    params = dict(component.params)
    if "f" in accepted and "f" not in params:
        params["f"] = f
    if "seed" in accepted and "seed" not in params:
        params["seed"] = derive_seed(seed, path)
    with config_field(f"{path}.params"):
        return registry.get(component.name, **params)


def build_aggregator(config: ExperimentConfig) -> Any:
    """The rule of ``[aggregator]``, behind its ``pre`` stages when there are any."""
    from robustfl.aggregators import AGGREGATORS

    f, seed = config.workers.f, config.training.seed
    rule = build_component(AGGREGATORS, config.aggregator, "aggregator", f=f, seed=seed)
    if not config.aggregator.pre:
        return rule
    from robustfl.aggregators import Pipeline

    stages = [
        build_component(AGGREGATORS, stage, f"aggregator.pre[{i}]", f=f, seed=seed)
        for i, stage in enumerate(config.aggregator.pre)
    ]
    with config_field("aggregator.pre"):
        return Pipeline(*stages, rule)


def build_algorithm(config: ExperimentConfig) -> Any:
    from robustfl.algorithms import ALGORITHMS

    tr = config.training
    with config_field("training.algorithm"):
        accepted = ALGORITHMS.parameters(tr.algorithm)
    params: dict[str, Any] = dict(tr.algorithm_params)
    for key, value, default in (("momentum", tr.momentum, 0.0), ("local_steps", tr.local_steps, 1)):
        if key in params:
            raise ConfigError(
                f"config error: training.algorithm_params: set {key} with training.{key}, not here"
            )
        if key in accepted:
            params[key] = value
        elif value != default:
            raise ConfigError(
                f"config error: training.{key}: algorithm {tr.algorithm!r} does not take {key} "
                f"(its parameters: {', '.join(accepted) or 'none'})"
            )
    with config_field("training.algorithm_params" if tr.algorithm_params else "training.algorithm"):
        return ALGORITHMS.get(tr.algorithm, **params)


class ConfiguredRun:
    """A simulator plus the extra evaluation sets its config calls for (the runner's view of a run).

    With a ``backdoor`` data attack, ``evaluate`` adds ``backdoor_accuracy``: the share of the test samples
    whose true label is not the target that the model assigns to the target (the attack's success rate).
    With the ``edge-case`` data attack it is the share of the edge-case test set assigned to the target.
    """

    def __init__(self, sim: Any, extra: dict[str, tuple[Tensor, Tensor]]) -> None:
        self.sim, self.extra = sim, extra

    @property
    def round(self) -> int:
        return int(self.sim.round)

    def step(self) -> Any:
        return self.sim.step()

    def evaluate(self) -> dict[str, float]:
        result: dict[str, float] = self.sim.evaluate(extra=self.extra or None)
        return {k: v for k, v in result.items() if k != "backdoor_loss"}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = self.sim.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sim.load_state_dict(state)


def build_run(config: ExperimentConfig) -> ConfiguredRun:
    """:func:`build_simulator` plus the backdoor test set when the data attack is a backdoor (the
    non-target test samples, labelled with the target) or the edge-case mix (the edge-case test set)."""
    sim, edge = _build_simulator(config)
    extra: dict[str, tuple[Tensor, Tensor]] = {}
    attack = config.data_attack
    if edge is not None:
        extra["backdoor"] = (edge.test_x, edge.test_y)
    elif attack is not None and attack.name.lower() in ("backdoor", "target-label"):
        from robustfl.attacks.data import DATA_ATTACKS

        target = int(attack.params.get("target", DATA_ATTACKS.parameters(attack.name)["target"]))
        keep = sim.y_test != target
        extra["backdoor"] = (sim.x_test[keep], torch.full_like(sim.y_test[keep], target))
    return ConfiguredRun(sim, extra)


def _is_edge_case(component: Component | None) -> bool:
    """Whether ``component`` names :class:`robustfl.attacks.edge_case.EdgeCaseMix` (under any of its names)."""
    if component is None:
        return False
    from robustfl.attacks.data import DATA_ATTACKS
    from robustfl.attacks.edge_case import EdgeCaseMix

    return component.name in DATA_ATTACKS and DATA_ATTACKS[component.name] is EdgeCaseMix


def build_simulator(config: ExperimentConfig) -> Any:
    """The :class:`robustfl.engine.Simulator` the config describes (data, model, rule, attacks, compressor)."""
    return _build_simulator(config)[0]


def _build_simulator(config: ExperimentConfig) -> tuple[Any, Any]:
    """The simulator and, for the edge-case data attack, its :class:`EdgeCaseSet` (else ``None``).

    With ``data_attack.name = "edge-case"`` the edge cases are split off the train split before it is
    partitioned (:func:`robustfl.attacks.edge_case.split_off_edge_cases`, as ``robustfl edge-case`` does):
    every worker holds clean data, and the Byzantine workers' mix draws from the edge-case train set.
    """
    from robustfl.data import load_dataset, partition
    from robustfl.engine import Simulator
    from robustfl.models import build_model

    tr, data = config.training, config.data
    with config_field("data.name"):
        # Any: the frozen Dataset has read-only fields, the engine's DatasetLike protocol declares settable ones
        dataset: Any = load_dataset(data.name, data.data_dir, **data.params)
    edge = None
    mix_params: dict[str, Any] = {}
    if config.data_attack is not None and _is_edge_case(config.data_attack):
        from robustfl.attacks.edge_case import EDGE_CASE_SET_PARAMS, split_off_edge_cases

        given = config.data_attack.params
        allowed = ("fraction", *EDGE_CASE_SET_PARAMS)
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            raise ConfigError(
                f"config error: data_attack.params: {config.data_attack.name!r} has no parameter "
                f"{', '.join(unknown)}; its parameters: {', '.join(allowed)}"
            )
        set_params = {k: v for k, v in given.items() if k in EDGE_CASE_SET_PARAMS}
        mix_params = {k: v for k, v in given.items() if k not in EDGE_CASE_SET_PARAMS}
        with config_field("data_attack.params"):
            dataset, edge = split_off_edge_cases(dataset, tr.seed, **set_params)
    with config_field("data.partition"):
        params = dict(data.partition_params)
        if data.partition == "dirichlet":
            params.setdefault("alpha", data.alpha)
        if data.partition == "natural":  # one writer/speaker per client: the loader's ownership labels
            params.setdefault("groups", dataset.groups_train)
        parts = partition(
            dataset.y_train,
            config.workers.n,
            data.partition,
            generator=make_generator(tr.seed, "partition"),
            **params,
        )
    with config_field("model"), torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(tr.seed, "model"))  # the initial weights follow training.seed
        model = build_model(
            config.model.name, dataset.input_shape, dataset.num_classes, **config.model.params
        )
    algorithm = build_algorithm(config)
    aggregator = build_aggregator(config)
    with config_field("workers"):
        aggregator.check_n(config.workers.n)
    attack = data_attack = compressor = None
    f = config.workers.f
    if config.attack is not None:
        from robustfl.attacks import ATTACKS

        attack = build_component(ATTACKS, config.attack, "attack", f=f, seed=tr.seed)
        if "agg" in ATTACKS.parameters(config.attack.name) and "agg" not in config.attack.params:
            attack.agg = aggregator  # optimal attacks search against the run's own rule
    if config.data_attack is not None:
        from robustfl.attacks.data import DATA_ATTACKS

        if edge is not None:
            from robustfl.attacks.edge_case import EdgeCaseMix

            with config_field("data_attack.params"):
                data_attack = EdgeCaseMix(edge.train_x, edge.train_y, **mix_params)
        else:
            data_attack = build_component(DATA_ATTACKS, config.data_attack, "data_attack", f=f, seed=tr.seed)
    if config.compressor is not None:
        from robustfl.compressors import COMPRESSORS, build

        with config_field("compressor.name"):
            accepted = COMPRESSORS.parameters(config.compressor.name)
        params = dict(config.compressor.params)
        if "seed" in accepted and "seed" not in params:
            params["seed"] = derive_seed(tr.seed, "compressor")
        with config_field("compressor"):
            compressor = build(
                config.compressor.name,
                params,
                error_feedback=config.compressor.error_feedback,
                shapes=[tuple(p.shape) for p in model.parameters()],
            )
    with config_field("training"):
        sim = Simulator(
            model,
            dataset,
            parts,
            algorithm,
            aggregator,
            num_byzantine=f,
            attack=attack,
            data_attack=data_attack,
            compressor=compressor,
            batch_size=tr.batch_size,
            lr=tr.lr,
            seed=tr.seed,
            device=tr.device,
            vectorise=tr.vectorise,
        )
    radius = getattr(algorithm, "radius", None)  # fedavg-pgd: the Byzantine workers' PGD budget
    if radius is not None and f > 0:
        from robustfl.attacks.pgd_training import arm_attackers

        arm_attackers(sim, radius)
    return sim, edge
