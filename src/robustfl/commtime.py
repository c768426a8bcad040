"""A communication-time model: simulated wall time = measured compute + bits / bandwidth + latency.

The speed-up tables of the ATOMO and PUFFERFISH papers (Wang et al., NeurIPS 2018, Tables 3–4;
Wang, Agarwal and Papailiopoulos, MLSys 2021, Figs. 4–5) are times to reach a target accuracy on
real clusters. On one machine we measure the compute of each round and *model* its communication
with the classical linear cost ``alpha + bits / beta`` per message (Hockney; Thakur, Rabenseifner and
Gropp, IJHPCA 2005):

- ``"ps"`` (parameter server, the ATOMO setup): the server's one link receives the ``n`` workers'
  messages one after the other, ``sum_i (alpha + up_i / beta)``, then broadcasts the model along a
  binomial tree over the ``n + 1`` processes, ``ceil(log2(n + 1)) (alpha + down / beta)``.
- ``"allreduce"`` (ring all-reduce, PUFFERFISH and PowerSGD): ``2 (n - 1) alpha + 2 (n - 1) / n * bits / beta``.
- ``"allgather"`` (ring all-gather, what SIGNUM and other compressors that are not summable need):
  ``(n - 1) (alpha + bits / beta)`` — grows with ``n``, which is why they lose at scale (§4.5.6).
  All-reduce and all-gather move equal-sized buffers: with per-worker sizes the largest counts.

``Cluster`` holds ``n``, ``beta`` (bandwidth, Gbit/s) and ``alpha`` (latency, seconds). Presets:

- ``g2.2xlarge-16``: the ATOMO experiments' 16 g2.2xlarge nodes. AWS lists their network as
  "Moderate" without a number; we assume **1 Gbit/s** (the usual order for that class of instance)
  and 100 µs latency. Both are assumptions: rerun with other values (``with_bandwidth``) to see how
  the speed-ups move.
- ``p3.2xlarge-8`` and ``p3.2xlarge-16``: the PUFFERFISH clusters; the chapter quotes "up to
  10 Gbps" for p3.2xlarge (§4.5.11): **10 Gbit/s**, 100 µs.

``Timeline`` accumulates rounds (compute + communication seconds) against accuracy; ``time_to``
and ``speedup`` read off the tables' "time to reach x% test accuracy" and its ratio to a baseline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

PATTERNS = ("ps", "allreduce", "allgather")


def _positive(name: str, value: object, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Cluster:
    """``workers`` compute nodes joined by links of ``bandwidth_gbps`` Gbit/s and ``latency_s`` per message."""

    workers: int
    bandwidth_gbps: float
    latency_s: float = 1e-4
    name: str = "custom"

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        _positive("bandwidth_gbps", self.bandwidth_gbps)
        _positive("latency_s", self.latency_s, allow_zero=True)

    def message(self, bits: float) -> float:
        """Seconds to send one message of ``bits`` over one link: ``alpha + bits / beta``."""
        return self.latency_s + _positive("bits", bits, allow_zero=True) / (self.bandwidth_gbps * 1e9)

    def with_bandwidth(self, gbps: float) -> Cluster:
        return replace(self, bandwidth_gbps=gbps, name=f"{self.name}@{gbps:g}Gbps")

    def communication(self, pattern: str, bits: float | Sequence[float], down_bits: float = 0.0) -> float:
        """Seconds one round's communication takes under ``pattern`` (see the module docstring).

        ``bits``: each worker's message size (one number for all, or one per worker); ``down_bits``:
        what the parameter server broadcasts back (``"ps"`` only).
        """
        n = self.workers
        sizes = [float(bits)] * n if isinstance(bits, int | float) else [float(b) for b in bits]
        if len(sizes) != n:
            raise ValueError(f"bits has {len(sizes)} entries for a cluster of {n} workers")
        beta = self.bandwidth_gbps * 1e9
        for b in sizes:
            _positive("bits", b, allow_zero=True)
        largest = max(sizes)
        if pattern == "ps":
            gather = sum(self.message(b) for b in sizes)
            return gather + math.ceil(math.log2(n + 1)) * self.message(down_bits)
        if pattern == "allreduce":
            if n == 1:
                return 0.0
            return 2 * (n - 1) * self.latency_s + 2 * (n - 1) / n * largest / beta
        if pattern == "allgather":
            return (n - 1) * (self.latency_s + largest / beta)
        raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")


CLUSTERS: dict[str, Cluster] = {
    "g2.2xlarge-16": Cluster(16, 1.0, 1e-4, "g2.2xlarge-16"),
    "p3.2xlarge-8": Cluster(8, 10.0, 1e-4, "p3.2xlarge-8"),
    "p3.2xlarge-16": Cluster(16, 10.0, 1e-4, "p3.2xlarge-16"),
}


def cluster(name: str) -> Cluster:
    """A preset by name; unknown names list the presets."""
    if name not in CLUSTERS:
        raise ValueError(f"unknown cluster {name!r}; choose one of: {', '.join(sorted(CLUSTERS))}")
    return CLUSTERS[name]


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), seconds)`` measured with ``time.perf_counter``."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


@dataclass
class Timeline:
    """Simulated wall time of a run on ``cluster``: each ``step`` adds measured compute (and
    encode/decode) seconds plus the modelled communication of that round."""

    cluster: Cluster
    pattern: str = "ps"
    times: list[float] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)
    communication: list[float] = field(default_factory=list)
    accuracy: list[float | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {self.pattern!r}")

    def step(
        self,
        compute_s: float,
        bits: float | Sequence[float],
        down_bits: float = 0.0,
        accuracy: float | None = None,
    ) -> float:
        """Record one round; returns the simulated time at its end."""
        _positive("compute_s", compute_s, allow_zero=True)
        comm = self.cluster.communication(self.pattern, bits, down_bits)
        now = (self.times[-1] if self.times else 0.0) + compute_s + comm
        self.times.append(now)
        self.compute.append(float(compute_s))
        self.communication.append(comm)
        self.accuracy.append(accuracy)
        return now

    def time_to(self, target: float) -> float | None:
        """Simulated seconds until the first recorded accuracy >= ``target`` (``None`` if never)."""
        for t, acc in zip(self.times, self.accuracy, strict=True):
            if acc is not None and acc >= target:
                return t
        return None


def speedup(baseline: Timeline, method: Timeline, target: float) -> float | None:
    """``baseline.time_to(target) / method.time_to(target)``; ``None`` when either never gets there
    (the tables' "N/A")."""
    a, b = baseline.time_to(target), method.time_to(target)
    return None if a is None or b is None or b == 0 else a / b
