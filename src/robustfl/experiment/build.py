"""Config -> simulator: every object is built through its registry, errors name the config field.

One :class:`BuildContext` fills constructor arguments a component accepts and its ``params`` did not
set (documented in docs/experiments.md):

* ``f`` — ``workers.f`` (rules, pre-aggregators, attacks);
* ``n`` — the cohort size (``workers.per_round``, or ``workers.n``);
* ``seed`` — a seed from the ``component`` stream keyed by the config field (``aggregator``,
  ``aggregator.pre[0]``, ``attack``, ``compressor``), so changing ``training.seed`` changes every stream;
* ``shapes`` / ``layout`` — the model's parameter layout (PowerSGD, spectral ATOMO, per-layer rules);
* ``agg`` — the run's own aggregator (attacks that optimise against it).

The algorithm is ``[algorithm] name, params``; ``training.algorithm``, ``training.algorithm_params``,
``training.momentum`` and ``training.local_steps`` are aliases. The training recipe (client optimizer:
``weight_decay``, ``client_momentum``, ``nesterov``, ``clip_norm``; ``server_optimizer``) goes to the
algorithm when its constructor takes it. The model's initial weights come from the ``model-init``
stream (the global torch random state is left as it was). The ``edge-case`` data attack splits its edge
cases off the loaded train split and evaluates ``backdoor_accuracy`` on the edge-case test set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from robustfl.experiment.config import Component, ConfigError, ExperimentConfig
from robustfl.layout import ParameterLayout
from robustfl.registry import Registry
from robustfl.streams import Streams


@contextmanager
def config_field(path: str) -> Iterator[None]:
    """Re-raise a ``ValueError``/``TypeError``/``FileNotFoundError`` from a builder as a ``ConfigError`` naming ``path``."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise ConfigError(f"config error: {path}: {err}") from None


@dataclass
class BuildContext:
    """What a component's constructor may take from the run rather than from its ``params``."""

    n: int
    f: int
    streams: Streams
    layout: ParameterLayout | None = None
    agg: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def values(self, path: str) -> dict[str, Any]:
        known: dict[str, Any] = {"n": self.n, "f": self.f, "seed": self.streams.seed_of("component", path)}
        if self.layout is not None:
            known |= {"layout": self.layout, "shapes": self.layout.shapes}
        if self.agg is not None:
            known["agg"] = self.agg
        return known | self.extra


def build_component(registry: Registry[Any], component: Component, path: str, ctx: BuildContext) -> Any:
    """``registry.get(name, **params)`` with the context's values filled in where accepted and unset."""
    with config_field(f"{path}.name"):
        accepted = registry.parameters(component.name)
    params = dict(component.params)
    for key, value in ctx.values(path).items():
        if key in accepted and key not in params:
            params[key] = value
    with config_field(f"{path}.params"):
        return registry.get(component.name, **params)


def build_aggregator(config: ExperimentConfig, ctx: BuildContext | None = None) -> Any:
    """The rule of ``[aggregator]``, behind its ``pre`` stages when there are any."""
    from robustfl.aggregators import AGGREGATORS

    ctx = ctx or context(config)
    rule = build_component(AGGREGATORS, config.aggregator, "aggregator", ctx)
    if not config.aggregator.pre:
        return rule
    from robustfl.aggregators import Pipeline

    stages = [
        build_component(AGGREGATORS, stage, f"aggregator.pre[{i}]", ctx)
        for i, stage in enumerate(config.aggregator.pre)
    ]
    with config_field("aggregator.pre"):
        return Pipeline(*stages, rule)


def context(config: ExperimentConfig, layout: ParameterLayout | None = None) -> BuildContext:
    """The build context of ``config`` (cohort size, f, streams, and the layout once the model exists)."""
    n = config.workers.per_round or config.workers.n
    return BuildContext(n=n, f=config.workers.f, streams=Streams(config.training.seed), layout=layout)


def algorithm_component(config: ExperimentConfig) -> tuple[Component, str]:
    """The algorithm's ``{name, params}`` and the config field to name in errors.

    ``[algorithm]`` wins; the ``training.*`` aliases must then keep their defaults."""
    tr = config.training
    if config.algorithm is not None:
        aliases = {
            "training.algorithm": tr.algorithm != "sgd",
            "training.algorithm_params": bool(tr.algorithm_params),
        }
        clash = [k for k, v in aliases.items() if v]
        if clash:
            raise ConfigError(
                f"config error: {clash[0]}: the algorithm is set in [algorithm]; remove {clash[0]}"
            )
        return config.algorithm, "algorithm"
    return Component(name=tr.algorithm, params=dict(tr.algorithm_params)), "training.algorithm"


def build_algorithm(config: ExperimentConfig, ctx: BuildContext | None = None) -> Any:
    """The algorithm with the training recipe filled in where its constructor takes it (and, with a
    ``ctx`` that knows the model, its parameter ``shapes``: masked training's per-layer mask)."""
    from robustfl.algorithms import ALGORITHMS
    from robustfl.algorithms.optim import ClientOptimizer, make_server_optimizer

    tr = config.training
    component, path = algorithm_component(config)
    with config_field(f"{path}"):
        accepted = ALGORITHMS.parameters(component.name)
    params: dict[str, Any] = dict(component.params)
    for key, value, default in (("momentum", tr.momentum, 0.0), ("local_steps", tr.local_steps, 1)):
        if value == default:
            continue
        if key in params:
            raise ConfigError(
                f"config error: training.{key}: set {key} in one place, not also in {path} params"
            )
        if key not in accepted:
            raise ConfigError(
                f"config error: training.{key}: algorithm {component.name!r} does not take {key} "
                f"(its parameters: {', '.join(accepted) or 'none'})"
            )
        params[key] = value
    recipe: dict[str, Callable[[], Any]] = {}
    if tr.weight_decay or tr.client_momentum or tr.nesterov or tr.clip_norm is not None:
        recipe["client_optimizer"] = lambda: ClientOptimizer(
            momentum=tr.client_momentum,
            weight_decay=tr.weight_decay,
            nesterov=tr.nesterov,
            clip_norm=tr.clip_norm,
        )
    if tr.server_optimizer is not None:
        so = tr.server_optimizer
        recipe["server_optimizer"] = lambda: make_server_optimizer(so.name, **so.params)
    for key, make in recipe.items():
        field_name = "server_optimizer" if key == "server_optimizer" else "client optimizer fields"
        if key not in accepted:
            raise ConfigError(
                f"config error: training: algorithm {component.name!r} takes no {key} (set by training."
                f"{field_name}); its parameters: {', '.join(accepted) or 'none'}"
            )
        with config_field(
            f"training.{'server_optimizer' if key == 'server_optimizer' else 'client_momentum'}"
        ):
            params[key] = make()
    if ctx is not None and ctx.layout is not None and "shapes" in accepted and "shapes" not in params:
        params["shapes"] = ctx.layout.shapes
    params_path = "algorithm.params" if path == "algorithm" else "training.algorithm_params"
    with config_field(params_path if component.params else path):
        return ALGORITHMS.get(component.name, **params)


def build_compressor(config: ExperimentConfig, ctx: BuildContext) -> Any:
    """The ``[compressor]`` for the layout in ``ctx`` (``None`` without one), behind error feedback if set."""
    if config.compressor is None:
        return None
    from robustfl.compressors import COMPRESSORS, ErrorFeedback

    compressor = build_component(COMPRESSORS, config.compressor, "compressor", ctx)
    if config.compressor.error_feedback:
        with config_field("compressor.error_feedback"):
            compressor = ErrorFeedback(compressor)
    return compressor


def build_lr(config: ExperimentConfig) -> float | Callable[[int], float]:
    """``training.lr``, or the schedule ``round -> lr`` of ``training.lr_schedule``."""
    tr = config.training
    if tr.lr_schedule is None:
        return tr.lr
    from robustfl.algorithms.schedules import LR_SCHEDULES

    with config_field("training.lr_schedule"):
        schedule = LR_SCHEDULES.get(tr.lr_schedule.name, **tr.lr_schedule.params)
    base = tr.lr

    def lr_at(round_index: int) -> float:
        return schedule.lr_at(base, round_index)

    return lr_at


class ConfiguredRun:
    """A simulator plus the extra evaluation sets its config calls for (the runner's view of a run).

    With a ``backdoor`` data attack, ``evaluate`` adds ``backdoor_accuracy``: the share of the test samples
    whose true label is not the target that the model assigns to the target (the attack's success rate).
    With the ``edge-case`` data attack it is the share of the edge-case test set assigned to the target.
    """

    def __init__(
        self, sim: Any, extra: dict[str, tuple[Tensor, Tensor]], switch: Any = None, clients: Any = None
    ) -> None:
        self.sim, self.extra = sim, extra
        self.switch = switch  # [model.low_rank]: swap to the hybrid before round switch.round
        self.clients = clients  # data.client_test_fraction: per-client accuracy, [personalise]
        if switch is not None and switch.round == 0:
            switch.apply(sim)

    @property
    def round(self) -> int:
        return int(self.sim.round)

    def step(self) -> Any:
        if self.switch is not None and self.switch.round > 0 and self.sim.round == self.switch.round:
            self.switch.apply(self.sim)
        return self.sim.step()

    def evaluate(self) -> dict[str, float]:
        result: dict[str, float] = self.sim.evaluate(extra=self.extra or None)
        if self.clients is not None:
            result |= self.clients.evaluate(self.sim)
        return {k: v for k, v in result.items() if k != "backdoor_loss"}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = self.sim.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.switch is not None and 0 < self.switch.round < int(state["round"]):
            self.switch.apply(self.sim)  # the checkpoint holds the hybrid's parameters
        self.sim.load_state_dict(state)


def build_run(config: ExperimentConfig) -> ConfiguredRun:
    """:func:`build_simulator` plus the backdoor test set when the data attack is a backdoor (the
    non-target test samples, labelled with the target) or the edge-case mix (the edge-case test set)."""
    sim, edge, test_parts = _build_simulator(config)
    extra: dict[str, tuple[Tensor, Tensor]] = {}
    attack = config.data_attack
    if edge is not None:
        extra["backdoor"] = (edge.test_x, edge.test_y)
    elif attack is not None and _is_backdoor(attack):
        from robustfl.attacks.data import DATA_ATTACKS

        target = int(attack.params.get("target", DATA_ATTACKS.parameters(attack.name)["target"]))
        keep = sim.y_test != target
        extra["backdoor"] = (sim.x_test[keep], torch.full_like(sim.y_test[keep], target))
    from robustfl.experiment.low_rank import low_rank_switch

    return ConfiguredRun(sim, extra, low_rank_switch(config), client_evaluation(config, test_parts))


def client_evaluation(config: ExperimentConfig, test_parts: list[Tensor] | None) -> Any:
    """Per-client accuracy on the held-out client splits, with the ``[personalise]`` phase when
    configured (``None`` without ``data.client_test_fraction``)."""
    p = config.personalise
    if p is not None and test_parts is None:
        raise ConfigError(
            "config error: data.client_test_fraction: [personalise] reports per-client accuracy on "
            "held-out client data; set it (e.g. 0.2)"
        )
    if test_parts is None:
        return None
    from robustfl.engine.personalise import ClientEvaluation, Personalisation

    phase = None
    if p is not None:
        from robustfl.algorithms.personalise import make_step

        tr = config.training
        with config_field("personalise"):
            phase = Personalisation(
                make_step(p.method, p.steps, p.alpha, p.correction, p.beta),
                lr=tr.lr if p.lr is None else p.lr,
                batch_size=tr.batch_size if p.batch_size is None else p.batch_size,
                final_round=tr.rounds,
                every=p.every,
                collaborator_batch_size=p.collaborator_batch_size,
            )
    return ClientEvaluation(test_parts, phase)


def _is_backdoor(component: Component) -> bool:
    """Whether ``component`` names :class:`robustfl.attacks.data.BackdoorLabels` (under any name)."""
    from robustfl.attacks.data import DATA_ATTACKS, BackdoorLabels

    return component.name in DATA_ATTACKS and DATA_ATTACKS[component.name] is BackdoorLabels


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


def _build_simulator(config: ExperimentConfig) -> tuple[Any, Any, list[Tensor] | None]:
    """The simulator, for the edge-case data attack its :class:`EdgeCaseSet` (else ``None``), and with
    ``data.client_test_fraction > 0`` the clients' held-out test indices (else ``None``; the simulator
    then trains on the rest of each partition, split off with the ``partition`` stream's
    ``client-test`` sub-stream).

    With ``data_attack.name = "edge-case"`` the edge cases are split off the train split before it is
    partitioned (:func:`robustfl.attacks.edge_case.split_off_edge_cases`): every worker holds clean
    data, and the Byzantine workers' mix draws from the edge-case train set.
    """
    from robustfl.data import load_dataset, partition
    from robustfl.engine import Simulator
    from robustfl.engine.augment import Augment
    from robustfl.engine.participation import ByzantineSchedule, parse_ids
    from robustfl.models import build_model

    tr, data = config.training, config.data
    streams = Streams(tr.seed)
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
            dataset.y_train, config.workers.n, data.partition, generator=streams.shared("partition"), **params
        )
    test_parts = None
    if data.client_test_fraction > 0:
        from robustfl.data.holdout import client_holdout

        with config_field("data.client_test_fraction"):
            parts, test_parts = client_holdout(
                parts, data.client_test_fraction, streams.shared("partition", None, "client-test")
            )
    with config_field("model"), torch.random.fork_rng(devices=[]):
        torch.manual_seed(streams.seed_of("model-init"))  # the initial weights follow training.seed
        model = build_model(
            config.model.name, dataset.input_shape, dataset.num_classes, **config.model.params
        )
    ctx = context(config, ParameterLayout.of(model))
    algorithm = build_algorithm(config, ctx)
    aggregator = build_aggregator(config, ctx)
    with config_field("workers.per_round" if config.workers.per_round else "workers"):
        aggregator.check_n(ctx.n)
    ctx.agg = aggregator
    attack = data_attack = None
    if config.attack is not None:
        from robustfl.attacks import ATTACKS

        attack = build_component(ATTACKS, config.attack, "attack", ctx)
    if config.data_attack is not None:
        from robustfl.attacks.data import DATA_ATTACKS

        if edge is not None:
            from robustfl.attacks.edge_case import EdgeCaseMix

            with config_field("data_attack.params"):
                data_attack = EdgeCaseMix(edge.train_x, edge.train_y, **mix_params)
        else:
            data_attack = build_component(DATA_ATTACKS, config.data_attack, "data_attack", ctx)
    compressor = build_compressor(config, ctx)
    coding = None
    if config.coding is not None:
        from robustfl.coding import CODINGS

        if config.workers.per_round not in (None, config.workers.n):
            raise ConfigError(
                "config error: workers.per_round: a coded scheme needs every worker every round"
            )
        ctx.extra["workers"] = config.workers.n
        coding = build_component(CODINGS, config.coding, "coding", ctx)
    byz = config.byzantine
    with config_field("byzantine"):
        schedule = ByzantineSchedule(
            f=config.workers.f, ids=parse_ids(byz.ids), every=byz.every, resample=byz.resample
        )
    simulator: Any = Simulator
    if getattr(algorithm, "decentralised", False):  # nodes on a graph, no server (gossip)
        from robustfl.engine.gossip import GossipSimulator

        simulator = GossipSimulator
    with config_field("algorithm" if simulator is not Simulator else "training"):
        sim = simulator(
            model,
            dataset,
            parts,
            algorithm,
            aggregator,
            byzantine=schedule,
            per_round=config.workers.per_round,
            attack=attack,
            data_attack=data_attack,
            compressor=compressor,
            batch_size=tr.batch_size,
            lr=build_lr(config),
            seed=tr.seed,
            device=tr.device,
            vectorise=tr.vectorise,
            augment=Augment(tr.augment.crop_padding, tr.augment.flip),
            label_smoothing=tr.label_smoothing,
            coding=coding,
            root_samples=tr.root_samples,
        )
    return sim, edge, test_parts
