"""The experiment configuration: a TOML file validated by pydantic.

One file describes one run: ``[data]``, ``[model]``, ``[training]``, ``[workers]``, ``[aggregator]`` and the
optional ``[attack]``, ``[data_attack]`` and ``[compressor]`` tables. Every field carries a description
(``robustfl config-schema`` prints them). Unknown or invalid fields become one :class:`ConfigError` whose
message has one line per problem, each naming the dotted field path, e.g.
``config error: training.lr: Input should be greater than 0 (got -1)``.

``--set key=value`` overrides go through the same schema: ``value`` is parsed as a TOML value when it is one
(``0.05``, ``true``, ``[1, 2]``, ``{f = 2}``) and kept as a string otherwise, then pydantic coerces it to the
field's type.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_ROUNDS = 10_000_000  # a bound, so a typo (1e12) fails at load time instead of running for ever
MAX_BATCH = 1_000_000
MAX_TOML_DEPTH = 64  # tables/arrays nested deeper than this are refused before parsing


class ConfigError(ValueError):
    """A configuration the user wrote is invalid; ``str(err)`` is the message to print."""


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, coerce_numbers_to_str=True, allow_inf_nan=False
    )


class Component(_Section):
    """A registry entry: a name plus the keyword arguments of its constructor."""

    name: str = Field(description="Registered name (see `robustfl list ...`).", min_length=1)
    params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments passed to the constructor."
    )


class DataConfig(_Section):
    name: str = Field(
        default="embedded-mnist",
        description=(
            "Data set name: embedded-mnist (shipped, no files), mnist, fashion-mnist, emnist, cifar10, "
            "cifar100, femnist, shakespeare, npz (see `robustfl list datasets`)."
        ),
    )
    data_dir: str | None = Field(
        default=None, description="Folder holding the data set's files (unused for embedded-mnist)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Further keyword arguments of the loader (e.g. emnist split, npz path).",
    )
    partition: str = Field(
        default="iid", description="How training samples are split among workers: iid, dirichlet, ..."
    )
    alpha: float = Field(
        default=0.5, gt=0, description="Dirichlet concentration (partition = 'dirichlet' only)."
    )
    partition_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Further keyword arguments of the partitioner (e.g. shards_per_client).",
    )
    client_test_fraction: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description=(
            "Share of each worker's partition held out as its own test split (per-client accuracy "
            "mean and worst 10%, [personalise]); 0 = none."
        ),
    )


class LowRankConfig(_Section):
    """PUFFERFISH (Wang, Agarwal and Papailiopoulos, MLSys 2021): train the hybrid low-rank network."""

    warmup_rounds: int = Field(
        default=0,
        ge=0,
        description=(
            "Rounds of vanilla (full-rank) warm-up before the switch to the hybrid network, whose factors "
            "are then the SVD factors of the warmed-up weights (Algorithm 2). 0 = train the hybrid from "
            "its own random initialisation (no warm-up)."
        ),
    )
    rank_ratio: float = Field(
        default=0.25, gt=0, le=1, description="Rank of a factorised layer / its full rank."
    )
    first_low_rank: int | None = Field(
        default=None,
        ge=1,
        description=(
            "K: weight layers K, K+1, ... (1-based, Linear/Conv2d/LSTM in definition order) are factorised, "
            "the last layer never. Default: the chapter's K for resnet18, vgg19-bn, resnet50, ..."
        ),
    )


class ModelConfig(_Section):
    name: str = Field(default="lenet", description="Model name: lenet, mlp, crsa-cnn, resnet18, vgg9, ...")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the model builder."
    )
    low_rank: LowRankConfig | None = Field(
        default=None,
        description="PUFFERFISH low-rank training {warmup_rounds, rank_ratio, first_low_rank}; none if absent.",
    )


class AugmentConfig(_Section):
    crop_padding: int = Field(
        default=0, ge=0, le=64, description="Zero padding before a random crop back to size (0 = no crop)."
    )
    flip: bool = Field(default=False, description="Random horizontal flips (half of the images).")


class TrainingConfig(_Section):
    algorithm: str = Field(
        default="sgd",
        description=(
            "Training algorithm (alias of [algorithm] name): sgd (distributed SGD), fedavg (local SGD), "
            "fedavg-pgd, ... (see `robustfl list algorithms`)."
        ),
    )
    rounds: int = Field(
        default=100, ge=1, le=MAX_ROUNDS, strict=True, description="Number of communication rounds."
    )
    batch_size: int = Field(
        default=32, ge=1, le=MAX_BATCH, strict=True, description="Minibatch size per worker and local step."
    )
    lr: float = Field(
        default=0.05,
        gt=0,
        description="Learning rate (server step size for sgd; local step size for fedavg).",
    )
    algorithm_params: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Further keyword arguments of the algorithm (e.g. fedavg-pgd's radius and project_every); "
            "momentum and local_steps have their own fields."
        ),
    )
    momentum: float = Field(default=0.0, ge=0, lt=1, description="Worker momentum β (0 = none).")
    local_steps: int = Field(default=1, ge=1, description="Local SGD steps per round (fedavg).")
    seed: int = Field(
        default=0, ge=0, description="Root seed; every random stream of the run derives from it."
    )
    device: str = Field(default="cpu", description="Torch device: cpu, cuda, cuda:1, mps.")
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        strict=True,
        description="torch intra-op threads (default: chosen from the model size and the free cores).",
    )
    vectorise: bool | None = Field(
        default=None,
        description="Batch all workers with vmap (true), loop over them (false) or decide automatically.",
    )
    lr_schedule: Component | None = Field(
        default=None,
        description=(
            "lr schedule {name, params}: constant, step (milestones, gamma), exponential (gamma), cosine "
            "(period, min_factor), periodic-exponential (gamma, period). lr_t = lr * factor(t)."
        ),
    )
    weight_decay: float = Field(
        default=0.0, ge=0, description="L2 weight decay added to each client gradient."
    )
    client_momentum: float = Field(
        default=0.0, ge=0, lt=1, description="Momentum of the clients' local SGD steps (fedavg and kin)."
    )
    nesterov: bool = Field(default=False, description="Nesterov momentum for the clients' local steps.")
    clip_norm: float | None = Field(
        default=None, gt=0, description="Clip each client gradient to this l2 norm (LSTMs); none if absent."
    )
    label_smoothing: float = Field(
        default=0.0, ge=0, lt=1, description="Label smoothing of the training loss."
    )
    augment: AugmentConfig = Field(
        default_factory=lambda: AugmentConfig(), description="Image augmentation of the clients' minibatches."
    )
    server_optimizer: Component | None = Field(
        default=None,
        description=(
            "How the server applies the aggregate {name, params}: sgd (momentum = FedAvgM), adam, yogi, "
            "adagrad (FedOpt). Default: plain SGD."
        ),
    )
    root_samples: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Size of the server's clean root data set, for rules that need the server's own update (FLTrust).",
    )
    eval_every: int = Field(
        default=10, ge=1, description="Evaluate on the test set every this many rounds (and at the end)."
    )
    checkpoint_every: int | None = Field(
        default=None,
        ge=0,
        description="Write a checkpoint every this many rounds (default: at every evaluation; 0 = only at the end).",
    )
    round_timeout: float = Field(
        default=300.0,
        gt=0,
        description=(
            "robustfl launch: seconds the server waits for the workers' replies in a round before it "
            "aggregates what arrived (the simulator ignores it)."
        ),
    )

    @field_validator("device")
    @classmethod
    def _device_exists(cls, value: str) -> str:
        from robustfl.experiment.devices import check_device

        return check_device(value)


class WorkersConfig(_Section):
    n: int = Field(default=10, ge=1, description="Total number of workers (honest + Byzantine).")
    f: int = Field(default=0, ge=0, description="Number of Byzantine workers (which ones: [byzantine]).")
    per_round: int | None = Field(
        default=None,
        ge=1,
        description="Workers sampled each round, uniformly without replacement (all if absent).",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        description=(
            "robustfl launch: worker processes computing each client (repetition code: the server keeps "
            "the value most replicas sent). The simulator ignores it."
        ),
    )

    @model_validator(mode="after")
    def _one_honest(self) -> WorkersConfig:
        if self.f >= self.n:
            raise ValueError(f"f = {self.f} must be smaller than n = {self.n} (at least one honest worker)")
        if self.per_round is not None and self.per_round > self.n:
            raise ValueError(f"per_round = {self.per_round} must be at most n = {self.n}")
        return self


class ByzantineConfig(_Section):
    ids: Literal["last", "random"] | list[int] = Field(
        default="last",
        description="Which workers are Byzantine: 'last' (the last f), 'random' (drawn once) or a list of ids.",
    )
    every: int = Field(
        default=1, ge=1, description="The Byzantine workers take part only every this many rounds."
    )
    resample: bool = Field(
        default=False, description="Draw a fresh set of Byzantine ids every round (needs ids = 'random')."
    )


class AggregatorConfig(Component):
    name: str = Field(
        default="mean", description="Aggregation rule (see `robustfl list aggregators`).", min_length=1
    )
    pre: list[Component] = Field(
        default_factory=list,
        description="Pre-aggregation stages applied in order before the rule, e.g. [{name = 'nnm'}].",
    )


class CompressorConfig(Component):
    error_feedback: bool = Field(
        default=False, description="Wrap the compressor in error feedback (per-worker memory)."
    )


class PersonaliseConfig(_Section):
    """Personalisation after federated training (docs/algorithms.md, "Personalisation")."""

    method: Literal["finetune", "weighted"] = Field(
        description=(
            "finetune: local SGD from the global model on the worker's own split; weighted: weighted "
            "gradient averaging with bias correction (Chayti et al., arXiv:2111.05968)."
        )
    )
    steps: int = Field(default=20, ge=1, le=100_000, description="Personalisation SGD steps per worker.")
    lr: float | None = Field(default=None, gt=0, description="Step size (default training.lr).")
    batch_size: int | None = Field(
        default=None, ge=1, le=MAX_BATCH, description="Minibatch size (default training.batch_size)."
    )
    alpha: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="weighted: step on (1 - alpha) own gradient + alpha mean of all workers' gradients.",
    )
    collaborator_batch_size: int | None = Field(
        default=None,
        ge=1,
        le=MAX_BATCH,
        description=(
            "weighted: samples of its minibatch each worker contributes to the mean gradient "
            "(at most batch_size; default all)."
        ),
    )
    correction: bool = Field(default=True, description="weighted: add the bias correction c.")
    beta: float = Field(default=0.1, gt=0, le=1, description="weighted: EMA rate of the bias correction c.")
    every: int | None = Field(
        default=None,
        ge=1,
        description="Also personalise at evaluations after rounds that are multiples of this (default: after the last round only).",
    )

    @model_validator(mode="after")
    def _weighted_only(self) -> PersonaliseConfig:
        if self.method == "finetune":  # a default written back by a resolved config is fine
            fields = type(self).model_fields
            weighted = ("alpha", "correction", "beta", "collaborator_batch_size")
            extra = [k for k in weighted if getattr(self, k) != fields[k].default]
            if extra:
                raise ValueError(f"{extra[0]} applies to method = 'weighted' only; remove it")
        return self


class FaultConfig(_Section):
    rank: int = Field(ge=1, description="The worker rank (1..nproc-1) the fault hits.")
    round: int = Field(ge=0, description="The round (from 0) it hits.")
    seconds: float = Field(default=0.0, ge=0, description="How long a delay lasts (delay only).")


class FaultsConfig(_Section):
    crash: list[FaultConfig] = Field(
        default_factory=list, description="Workers that kill themselves (SIGKILL) at {rank, round}."
    )
    delay: list[FaultConfig] = Field(
        default_factory=list, description="Workers that reply {seconds} late at {rank, round}."
    )
    garbage: list[FaultConfig] = Field(
        default_factory=list, description="Workers that send random bytes instead of their upload."
    )


class ExperimentConfig(_Section):
    """The whole run. Rules and attacks that take ``f`` get ``workers.f`` unless their params set it."""

    name: str = Field(default="experiment", description="A label for the run (tables, plot legends).")
    imports: list[str] = Field(
        default_factory=list,
        description="Python modules imported before the run: they register your own rules, attacks, models.",
    )
    data: DataConfig = Field(default_factory=lambda: DataConfig(), description="The data set and its split.")
    model: ModelConfig = Field(default_factory=lambda: ModelConfig(), description="The network.")
    training: TrainingConfig = Field(
        default_factory=lambda: TrainingConfig(), description="The optimisation loop."
    )
    workers: WorkersConfig = Field(
        default_factory=lambda: WorkersConfig(), description="How many workers, how many Byzantine."
    )
    algorithm: Component | None = Field(
        default=None,
        description=(
            "The training algorithm {name, params} (see `robustfl list algorithms`); training.algorithm, "
            "training.algorithm_params, training.momentum and training.local_steps are aliases."
        ),
    )
    byzantine: ByzantineConfig = Field(
        default_factory=lambda: ByzantineConfig(), description="Which workers are Byzantine, and when."
    )
    aggregator: AggregatorConfig = Field(
        default_factory=lambda: AggregatorConfig(), description="The server's rule."
    )
    attack: Component | None = Field(
        default=None, description="Message attack of the Byzantine workers (none if absent)."
    )
    data_attack: Component | None = Field(
        default=None, description="Data corruption of the Byzantine workers' local data (none if absent)."
    )
    compressor: CompressorConfig | None = Field(
        default=None, description="Message compressor (identity if absent)."
    )
    coding: Component | None = Field(
        default=None,
        description=(
            "A coded scheme {name, params} that replaces the aggregator: draco-repetition, draco-cyclic, "
            "detox, detox-median, ... (`robustfl list codings`); P = workers.n."
        ),
    )
    faults: FaultsConfig = Field(
        default_factory=lambda: FaultsConfig(),
        description="Fault injection for robustfl launch (tests and demos; the simulator ignores it).",
    )
    personalise: PersonaliseConfig | None = Field(
        default=None,
        description=(
            "Personalisation at the final evaluation {method, steps, lr, ...}; needs "
            "data.client_test_fraction > 0 (none if absent)."
        ),
    )

    def to_dict(self) -> dict[str, Any]:
        """A TOML-serialisable dict (``None`` fields dropped: TOML has no null)."""
        return _drop_none(self.model_dump(mode="json"))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: ``config error: <dotted.path>: <message> (got <value>)``."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field; check the spelling (`robustfl config-schema` lists the fields)"
            lines.append(f"config error: {path}: {msg}")
            continue
        msg = msg.removeprefix("Value error, ")
        got = "" if isinstance(e["input"], dict) else f" (got {e['input']!r})"
        lines.append(f"config error: {path}: {msg}{got}")
    return "\n".join(lines)


def validate(data: dict[str, Any]) -> ExperimentConfig:
    """Validate a plain dict, raising :class:`ConfigError` with one readable line per problem."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML literal when it parses as one, otherwise the raw string.

    ``inf`` and ``nan`` stay strings (they name attacks); a number given for a text field becomes text.
    """
    if text.lstrip("+-") in ("inf", "nan"):
        return text
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        raise ConfigError(_too_deep(f"--set {text[:40]}")) from None
    _check_depth(value, f"--set {text[:40]}")
    return value


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``key.path=value`` to the raw config dict in place (types are checked later by ``validate``)."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"config error: --set {assignment!r}: expected key=value, e.g. training.lr=0.05")
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"config error: {'.'.join(parts[: i + 1])}: is a value, not a table; cannot set {key}"
            )
        node = child
    node[parts[-1]] = parse_value(text.strip())


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a TOML file (or start from defaults when ``path`` is None), apply ``--set`` overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config error: {p}: no such file")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"config error: {p}: not valid TOML: {err}") from None
        except RecursionError:
            raise ConfigError(_too_deep(str(p))) from None
        _check_depth(data, str(p))
        if "name" not in data:
            data["name"] = p.stem
    for assignment in overrides:
        apply_override(data, assignment)
    return validate(data)


def _check_depth(data: Any, where: str) -> None:
    """Refuse values nested deeper than :data:`MAX_TOML_DEPTH` (later steps would recurse on them)."""
    level = [data] if isinstance(data, dict | list) else []
    for _ in range(MAX_TOML_DEPTH + 1):
        if not level:
            return
        level = [
            v for x in level for v in (x.values() if isinstance(x, dict) else x) if isinstance(v, dict | list)
        ]
    raise ConfigError(_too_deep(where))


def _too_deep(where: str) -> str:
    return f"config error: {where}: tables or arrays nested deeper than {MAX_TOML_DEPTH} levels"


def schema_rows() -> list[tuple[str, str, str, str]]:
    """(field path, type, default, description) for every field: the config reference in the docs."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            ann = field.annotation
            sub = _section_type(ann)
            if sub is not None:
                is_list = get_origin(ann) is list
                kind = "list of tables" if is_list else "table" + (" (optional)" if _optional(ann) else "")
                rows.append((path, kind, "", field.description or ""))
                walk(sub, f"{path}[]." if is_list else f"{path}.")
                continue
            default = "" if field.is_required() else repr(field.get_default(call_default_factory=True))
            rows.append((path, _type_name(ann), default, field.description or ""))

    walk(ExperimentConfig, "")
    return rows


def _optional(ann: Any) -> bool:
    return type(None) in getattr(ann, "__args__", ())


def _section_type(ann: Any) -> type[BaseModel] | None:
    for t in (ann, *getattr(ann, "__args__", ())):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def _type_name(ann: Any) -> str:
    text = str(ann).replace("typing.", "")
    return {
        "<class 'int'>": "int",
        "<class 'float'>": "float",
        "<class 'str'>": "str",
        "<class 'bool'>": "bool",
    }.get(text, text)
