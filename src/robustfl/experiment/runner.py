"""The training loop of one run: rounds, evaluation, metrics, checkpoints, progress, resume.

Every ``training.eval_every`` rounds (and after the last one) the loop appends one line to ``metrics.jsonl``:
``round``, ``train_loss`` (mean over the rounds since the previous line), the simulator's evaluation
(``test_loss``, ``test_accuracy``, ``backdoor_accuracy`` when the run has a backdoor), cumulative ``bits_up`` /
``bits_down``, cumulative ``seconds`` per phase, cumulative ``wall_seconds``, cumulative ``cpu_seconds`` (the process's
CPU time, ``time.process_time()``, spent in training steps: evaluation excluded; unlike wall-clock it leaves out the
time other jobs hold the cores, though memory contention from them still lengthens it) and ``round_metrics`` (the
algorithm's and rule's per-round metrics averaged over the rounds since the previous line, e.g. the
clients per round, and ``byzantine_ids``: the ids that attacked in each round that had attackers). A run whose train loss becomes
NaN/Inf is recorded as diverged and stops (its accuracy stays in the table; Table 2 of Acharya et al. 2022 prints "-").

A checkpoint holds the simulator's ``state_dict()`` (parameters, client and server state, aggregator memory, round)
plus the loop's own running totals, so ``resume=True`` continues to exactly the metrics an uninterrupted run
writes (the timing fields excepted: they measure this machine).
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from robustfl.experiment.config import ConfigError, ExperimentConfig, validate
from robustfl.experiment.rundir import RunDir, readable_mode

_CHECKPOINT_NAME = re.compile(r"^round_(\d+)\.pt$")


@dataclass
class Totals:
    """Running totals the loop carries between evaluations and across a resume."""

    loss_sum: float = 0.0
    loss_count: int = 0
    bits_up: int = 0
    bits_down: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    metric_sums: dict[str, float] = field(default_factory=dict)
    metric_rounds: int = 0
    byzantine_ids: dict[str, list[int]] = field(default_factory=dict)

    def add_round(self, stats: Any, wall: float, cpu: float = 0.0) -> float:
        """Fold one ``RoundStats`` (and the step's wall-clock and CPU seconds) in; returns its loss."""
        values = asdict(stats) if is_dataclass(stats) and not isinstance(stats, type) else dict(vars(stats))
        loss = float(values["loss"])
        self.loss_sum += loss
        self.loss_count += 1
        self.bits_up += int(values.get("bits_up", 0))
        self.bits_down += int(values.get("bits_down", 0))
        for phase, secs in (values.get("seconds") or {}).items():
            self.seconds[phase] = self.seconds.get(phase, 0.0) + float(secs)
        self.wall_seconds += wall
        self.cpu_seconds += cpu
        self.metric_rounds += 1
        for key, value in (values.get("metrics") or {}).items():
            if key == "byzantine_ids":
                if value:
                    self.byzantine_ids[str(values.get("round", ""))] = list(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                self.metric_sums[key] = self.metric_sums.get(key, 0.0) + float(value)
        return loss

    def take_round_metrics(self) -> dict[str, Any]:
        """The algorithm's per-round metrics since the last call: numeric ones averaged over the rounds,
        and the Byzantine ids of each round that had attackers (``{round: ids}``); then restart."""
        out: dict[str, Any] = {k: v / max(self.metric_rounds, 1) for k, v in self.metric_sums.items()}
        if self.byzantine_ids:
            out["byzantine_ids"] = dict(self.byzantine_ids)
        self.metric_sums, self.metric_rounds, self.byzantine_ids = {}, 0, {}
        return out

    def take_loss(self) -> float | None:
        """Mean train loss since the last call (None when non-finite), and restart the mean."""
        mean = self.loss_sum / max(self.loss_count, 1)
        self.loss_sum, self.loss_count = 0.0, 0
        return mean if math.isfinite(mean) else None


def _clean(value: Any) -> Any:
    """JSON-safe metric values: floats NaN/Inf -> None, tensors -> numbers (dicts and lists inside)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_resumable(rd: RunDir, config: dict[str, Any]) -> None:
    """A resume must use the stored configuration (only ``training.rounds`` and ``threads`` may change)."""
    import tomllib

    if not rd.config_path.exists():
        raise ConfigError(f"config error: --resume: {rd.path} holds no run (no config.toml)")
    stored = validate(tomllib.loads(rd.config_path.read_text(encoding="utf-8"))).to_dict()
    for runtime in ("rounds", "threads"):  # may change on resume; everything else must match
        stored["training"].pop(runtime, None)
        if runtime in config["training"]:
            stored["training"][runtime] = config["training"][runtime]
    if stored != config:
        diffs = [
            f"{sec}.{k}".rstrip(".")
            for sec in sorted(set(stored) | set(config))
            for k in sorted(set(_as_dict(stored.get(sec))) | set(_as_dict(config.get(sec))))
            if _as_dict(stored.get(sec)).get(k) != _as_dict(config.get(sec)).get(k)
        ]
        raise ConfigError(
            f"config error: --resume: the configuration differs from {rd.config_path} in: "
            f"{', '.join(diffs)}; resume with `robustfl run --resume --out {rd.path}` (it reads the "
            f"stored config; only training.rounds and training.threads may change)"
        )


_TOTALS = {f.name for f in fields(Totals)}


def _check_totals(loop: object, source: Path) -> Totals:
    """The loop's running totals from a checkpoint, checked field by field (one line per problem)."""
    if isinstance(loop, dict) and set(loop) == _TOTALS - {"cpu_seconds"}:  # written before cpu_seconds
        loop = {**loop, "cpu_seconds": 0.0}
    if not isinstance(loop, dict) or set(loop) != _TOTALS:
        got = sorted(loop) if isinstance(loop, dict) else type(loop).__name__
        raise ValueError(f"{source}: checkpoint 'loop' must have the keys {sorted(_TOTALS)}, got {got}")
    for key in ("loss_count", "bits_up", "bits_down"):
        v = loop[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{source}: checkpoint loop.{key} must be an integer >= 0, got {v!r}")
    for key in (
        "loss_sum",
        "wall_seconds",
        "cpu_seconds",
    ):  # loss_sum may be NaN: a diverged run is checkpointed
        if isinstance(loop[key], bool) or not isinstance(loop[key], int | float):
            raise ValueError(f"{source}: checkpoint loop.{key} must be a number, got {loop[key]!r}")
    seconds = loop["seconds"]
    if not isinstance(seconds, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in seconds.items()
    ):
        raise ValueError(f"{source}: checkpoint loop.seconds must map phase names to numbers")
    return Totals(**{k: v for k, v in loop.items() if k != "seconds"}, seconds=dict(seconds))


def restore(sim: Any, state: dict[str, Any], source: Path, rounds: int) -> Totals:
    """Load a verified checkpoint into ``sim`` and return the loop's totals; a checkpoint whose
    structure or values do not fit this run is one ``ValueError`` line naming the file."""
    if set(state) != {"simulator", "loop"} or not isinstance(state["simulator"], dict):
        raise ValueError(
            f"{source}: a run checkpoint has the keys ['loop', 'simulator'], got {sorted(state)}"
        )
    totals = _check_totals(state["loop"], source)
    try:
        sim.load_state_dict(state["simulator"])
    except (KeyError, IndexError, TypeError, AttributeError, RuntimeError, ValueError) as err:
        detail = str(err).splitlines()[0] if str(err) else ""
        raise ValueError(
            f"{source}: checkpoint does not fit this run's simulator ({type(err).__name__}: {detail})"
        ) from None
    r = sim.round
    named = _CHECKPOINT_NAME.match(source.name)
    if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= rounds:
        raise ValueError(f"{source}: checkpoint round {r!r} is outside [0, training.rounds = {rounds}]")
    if named and int(named.group(1)) != r:
        raise ValueError(
            f"{source}: checkpoint file is named for round {int(named.group(1))} but holds round {r}"
        )
    return totals


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"": value}


class _TensorBoard:
    """Scalars to ``RUN_DIR/tensorboard`` through ``torch.utils.tensorboard`` (needs the tensorboard package)."""

    def __init__(self, path: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "--tensorboard needs the tensorboard package: pip install 'robustfl[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(log_dir=str(path))

    def log(self, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if isinstance(value, int | float) and key != "round":
                self.writer.add_scalar(key, value, record["round"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def default_build(config: ExperimentConfig) -> Any:
    """The real simulator for ``config`` (imported here: torch models load only when a run starts)."""
    from robustfl.experiment.build import build_run

    return build_run(config)


def _stderr(message: str) -> None:
    print(f"robustfl: {message}", file=sys.stderr)


def _readable(path: Path) -> None:
    """Give ``path`` the permissions of any other output file (0644 under the usual umask)."""
    with contextlib.suppress(OSError):
        path.chmod(readable_mode())


def _num_parameters(sim: Any) -> int | None:
    """The model's parameter count, read from the simulator's flat parameter vector when it has one."""
    for obj in (sim, getattr(sim, "sim", None)):
        params = getattr(obj, "params", None)
        if params is not None and hasattr(params, "numel"):
            return int(params.numel())
    return None


def checkpoint_every(config: ExperimentConfig) -> int:
    """Rounds between checkpoints: ``training.checkpoint_every``, by default every evaluation."""
    every = config.training.checkpoint_every
    return config.training.eval_every if every is None else every


def run(
    config: ExperimentConfig,
    out: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    tensorboard: bool = False,
    build: Callable[[ExperimentConfig], Any] | None = None,
    threads: int | None = None,
    concurrent: int = 1,
    notify: Callable[[str], None] | None = _stderr,
) -> dict[str, Any]:
    """Run ``config`` into the directory ``out`` and return the summary (also written to ``summary.json``).

    ``build`` maps the config to a simulator (default: :func:`default_build`). ``threads`` overrides
    ``training.threads``; ``concurrent`` runs share the cores when the thread count is chosen
    (:mod:`robustfl.experiment.threads`). ``notify`` receives warnings (default: stderr; None: silent).
    Nothing is written, and no folder created, until the configuration checks and the build succeed.
    """
    import torch

    from robustfl.experiment import provenance
    from robustfl.experiment.preflight import check_config
    from robustfl.experiment.threads import choose_threads

    say = notify or (lambda message: None)
    if build is None:
        build = default_build
    rd = RunDir(out)
    if rd.path.exists() and not rd.path.is_dir():
        raise ConfigError(f"config error: --out: {rd.path} is a file; name a folder for the run")
    resolved = config.to_dict()
    if resume:
        check_resumable(rd, resolved)
    elif rd.metrics_path.exists() or rd.checkpoints():
        raise ConfigError(
            f"config error: --out: {rd.path} already holds a run; pass --resume or another --out"
        )
    for warning in check_config(config):
        say(f"warning: {warning}")
    sim = build(config)
    n_threads, why = choose_threads(
        _num_parameters(sim), requested=threads or config.training.threads, concurrent=concurrent
    )
    torch.set_num_threads(n_threads)
    rd.write_config(resolved)
    _readable(rd.config_path)
    totals = Totals()
    if resume and rd.checkpoints():
        state = rd.load_checkpoint(on_skip=lambda line: print(f"warning: {line}", file=sys.stderr))
        assert rd.loaded is not None
        totals = restore(sim, state, rd.loaded, config.training.rounds)
        rd.truncate_metrics(int(sim.round))
        _readable(rd.metrics_path)
    elif resume:
        say(f"{rd.path} holds no checkpoint: starting again from round 0")
        rd.truncate_metrics(0)
        _readable(rd.metrics_path)
    provenance.append(
        rd.path / "provenance.json",
        provenance.collect(
            threads=n_threads,
            threads_reason=why,
            device=config.training.device,
            start_round=int(sim.round),
        ),
    )
    last: dict[str, Any] = (rd.read_metrics() or [{}])[-1]
    board = _TensorBoard(rd.path / "tensorboard") if tensorboard else None
    tr = config.training
    every = checkpoint_every(config)
    diverged = False
    with _progress(quiet, config.name, tr.rounds, int(sim.round)) as advance:
        while int(sim.round) < tr.rounds:
            start, cpu_start = time.perf_counter(), time.process_time()
            stats = sim.step()
            loss = totals.add_round(stats, time.perf_counter() - start, time.process_time() - cpu_start)
            r = int(sim.round)
            diverged = not math.isfinite(loss)
            if diverged or r % tr.eval_every == 0 or r == tr.rounds:
                start = time.perf_counter()
                evaluation = sim.evaluate()
                elapsed = time.perf_counter() - start
                totals.seconds["eval"] = totals.seconds.get("eval", 0.0) + elapsed
                totals.wall_seconds += elapsed
                last = {
                    "round": r,
                    "train_loss": totals.take_loss(),
                    **{k: _clean(v) for k, v in evaluation.items()},
                    "bits_up": totals.bits_up,
                    "bits_down": totals.bits_down,
                    "seconds": dict(totals.seconds),
                    "wall_seconds": totals.wall_seconds,
                    "cpu_seconds": totals.cpu_seconds,
                    "round_metrics": _clean(totals.take_round_metrics()),
                }
                rd.append_metrics(last)
                _readable(rd.metrics_path)
                if board is not None:
                    board.log(last)
            if diverged or (every and r % every == 0) or r == tr.rounds:
                saved = rd.save_checkpoint(r, {"simulator": sim.state_dict(), "loop": asdict(totals)})
                _readable(saved)
            advance(r, last.get("test_accuracy"))
            if diverged:
                break
    if board is not None:
        board.close()
    summary = {
        "name": config.name,
        "rounds": int(sim.round),
        "diverged": diverged,
        "final": last,
        "best_test_accuracy": max(
            (m["test_accuracy"] for m in rd.read_metrics() if m.get("test_accuracy") is not None),
            default=None,
        ),
        "bits_up": totals.bits_up,
        "bits_down": totals.bits_down,
        "seconds": dict(totals.seconds),
        "wall_seconds": totals.wall_seconds,
        "cpu_seconds": totals.cpu_seconds,
        "threads": n_threads,
    }
    rd.write_summary(summary)
    _readable(rd.summary_path)
    return summary


@contextmanager
def _progress(
    quiet: bool, label: str, total: int, done: int
) -> Iterator[Callable[[int, float | None], None]]:
    """A rich progress bar over rounds (nothing when ``quiet``); the context value updates it."""
    if quiet:
        yield lambda r, acc: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total, completed=done)

        def advance(r: int, acc: float | None) -> None:
            bar.update(task, completed=r, description=label if acc is None else f"{label} acc={acc:.3f}")

        yield advance
