"""Training runs on a modelled cluster: measured compute plus the communication ``robustfl.commtime`` models.

One round of a run built from an :class:`ExperimentConfig` on ``m`` workers takes, on the cluster,

    worker  = (compute + compress seconds measured for the m clients) / m   (they run in parallel)
    server  = aggregate + update seconds (the server alone)
    network = cluster.communication(pattern, bits_up / m per worker, bits_down / m broadcast)

(``Simulator.step``'s phase timings and exact bit counts). The compress phase holds each message's
encode and decode, so decoding is counted as if spread over the workers: a parameter server that
decodes the m messages one after the other takes longer, which favours the compressors slightly.
Accuracy is evaluated every ``eval_every`` rounds (not timed). ``Timeline.time_to`` then reads the
simulated seconds to reach a test accuracy: the quantity of Tables 3.3–3.4 and Figure 4.4.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from robustfl.commtime import Cluster, Timeline
from robustfl.experiment.config import ExperimentConfig


@dataclass
class TimedRun:
    """A finished run: its timeline, exact bits per worker and round, parameter count, accuracies."""

    name: str
    timeline: Timeline
    bits_per_worker: float
    parameters: int
    final_accuracy: float
    best_accuracy: float
    seconds_per_round: float
    compute_per_round: float
    network_per_round: float

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "timeline"}
        out["simulated_seconds"] = self.timeline.times[-1] if self.timeline.times else 0.0
        points = zip(self.timeline.times, self.timeline.accuracy, strict=True)
        out["curve"] = [[r + 1, t, a] for r, (t, a) in enumerate(points) if a is not None]
        return out


def fit_cluster(cluster: Cluster, workers: int) -> Cluster:
    """``cluster`` with ``workers`` nodes (the run's cohort), its links unchanged."""
    return cluster if cluster.workers == workers else replace(cluster, workers=workers)


def timed_run(
    config: ExperimentConfig,
    cluster: Cluster,
    pattern: str = "ps",
    eval_every: int = 10,
) -> TimedRun:
    """Train ``config`` for ``training.rounds`` rounds and lay the rounds on ``cluster``.

    Time a round spends outside the simulator's phases (``[model.low_rank]``'s switch to the hybrid:
    its SVDs) counts as server time.
    """
    import time

    from robustfl.experiment.build import build_run

    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every!r}")
    run = build_run(config)
    m = config.workers.per_round or config.workers.n
    net = fit_cluster(cluster, m)
    timeline = Timeline(net, pattern)
    rounds = config.training.rounds
    bits = compute = network = 0.0
    accuracies: list[float] = []
    for r in range(rounds):
        start = time.perf_counter()
        stats = run.step()
        s = stats.seconds
        extra = max(time.perf_counter() - start - sum(s.values()), 0.0)
        worker = (s.get("compute", 0.0) + s.get("compress", 0.0)) / m
        server = s.get("aggregate", 0.0) + s.get("update", 0.0) + extra
        acc = None
        if (r + 1) % eval_every == 0 or r + 1 == rounds:
            acc = float(run.evaluate()["test_accuracy"])
            accuracies.append(acc)
        up, down = stats.bits_up / m, stats.bits_down / m
        timeline.step(worker + server, up, down, accuracy=acc)
        bits += up
        compute += worker + server
        network += timeline.communication[-1]
    params = sum(p.numel() for p in run.sim.model.parameters())
    return TimedRun(
        config.name,
        timeline,
        bits / rounds,
        params,
        accuracies[-1],
        max(accuracies),
        timeline.times[-1] / rounds,
        compute / rounds,
        network / rounds,
    )


def rounds_to(run: TimedRun, target: float) -> int | None:
    """The first evaluated round (1-based) whose test accuracy reaches ``target`` (``None``: never)."""
    for r, acc in enumerate(run.timeline.accuracy):
        if acc is not None and acc >= target:
            return r + 1
    return None


def network_speedups(
    runs: dict[str, TimedRun], baseline: str, targets: tuple[float, ...]
) -> dict[str, dict[float, float | None]]:
    """Speed-ups counting the modelled communication only (exact bits, no measured compute): the part
    of the comparison that does not depend on this machine's load."""

    def comm_to(run: TimedRun, target: float) -> float | None:
        r = rounds_to(run, target)
        return None if r is None else sum(run.timeline.communication[:r])

    out: dict[str, dict[float, float | None]] = {}
    for name, run in runs.items():
        out[name] = {}
        for t in targets:
            a, b = comm_to(runs[baseline], t), comm_to(run, t)
            out[name][t] = None if a is None or b is None or b == 0 else a / b
    return out


def speedups(
    runs: dict[str, TimedRun], baseline: str, targets: tuple[float, ...]
) -> dict[str, dict[float, float | None]]:
    """Each run's ``baseline time / its time`` to reach each target accuracy (``None``: not reached)."""
    from robustfl.commtime import speedup

    base = runs[baseline].timeline
    return {name: {t: speedup(base, run.timeline, t) for t in targets} for name, run in runs.items()}
