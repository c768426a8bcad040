"""``RobustStrategy``: every robustfl rule, pre-aggregator pipeline, compressor and algorithm as a Flower
strategy.

Built on Flower's Message API (``flwr.serverapp.strategy.FedAvg`` for node sampling and evaluation).
A training round:

1. ``configure_train`` remembers the global arrays it sends (flattened: ``x``) and adds what the
   algorithm's broadcast holds beyond them (``robustfl.shared``: SCAFFOLD's control variate, Mime's
   momentum, C-RSA's rand-l values and index), from the server state the strategy keeps;
2. ``aggregate_train`` turns each valid reply into one robustfl message row per uploaded part:

   * ``robustfl.wire`` (uint8): a compressor's wire bytes (``Message.from_bytes`` + ``decompress``);
   * ``robustfl.update`` (float32): an uncompressed robustfl message (the client helper's);
   * for an algorithm with several parts (SCAFFOLD, Mime), one such array per part, keyed
     ``robustfl.wire/<part>`` or ``robustfl.update/<part>``;
   * in a round with an upload support (``Algorithm.upload_support``: masked training's core in masked
     rounds) these carry the ``K`` support values only, put back into zeros ``[d]`` here;
   * otherwise (one-part algorithms) the reply's arrays are new weights ``y``, and the row is FedAvg's
     message ``x - y`` (the delta ``y - x`` with robustfl's sign: FedAvg's server step is
     ``x - lr * agg(x - y)``).

   A reply whose rows cannot be built (missing or extra arrays, a width other than most replies',
   bytes that do not decode, NaN/Inf) is dropped and counted (``robustfl-dropped``), never a crash;
3. the rule's bound is checked for the rows that arrived (``aggregator.check_n(m)``); if it fails the
   global model is kept for this round (``robustfl-bound-failed = 1``) and a warning says why;
4. the algorithm's own server step (robustfl's, default FedAvg with ``server_lr``) aggregates each
   part with its own copy of the rule. ``num-examples`` is never used as a weight: clients report it
   and nobody can check it, and weighting would hand a Byzantine client the result. Metrics are plain
   means over the valid replies.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from torch import Tensor

from robustfl.aggregators.base import Aggregator
from robustfl.algorithms.base import Algorithm, Cohort, State
from robustfl.compressors.base import Compressor
from robustfl.compressors.base import Message as WireMessage
from robustfl.engine import phases
from robustfl.integrations.flower.arrays import (
    PARAMS_FLAG,
    SHARED_KEY,
    UPDATE_KEY,
    WIRE_KEY,
    Layout,
    flatten,
    part_key,
    unflatten,
    wire_bytes,
)

log = logging.getLogger(__name__)


def _build(registry: Any, value: Any, kind: str, **context: Any) -> Any:
    """``value`` itself, or the registry entry it names with the context arguments it accepts."""
    if not isinstance(value, str):
        return value
    accepted = registry.parameters(value)
    return registry.get(value, **{k: v for k, v in context.items() if k in accepted})


class RobustStrategy(FedAvg):
    """A Flower strategy whose aggregation is a robustfl rule (see the module docstring).

    ``aggregator``: a robustfl :class:`~robustfl.aggregators.base.Aggregator` or a registry name
    (built with ``f``). ``compressor``: the compressor whose wire bytes the clients send (or a name),
    ``None`` for uncompressed replies. ``algorithm``: the robustfl algorithm whose server step runs
    (default ``"fedavg"``, whose message is the weight delta), with ``lr`` its server learning rate
    argument. Other keyword arguments go to Flower's ``FedAvg`` (``fraction_train``,
    ``min_train_nodes``, ...).
    """

    def __init__(
        self,
        aggregator: Aggregator | str,
        f: int = 0,
        compressor: Compressor | str | None = None,
        algorithm: Algorithm | str = "fedavg",
        lr: float = 1.0,
        **fedavg: Any,
    ) -> None:
        from robustfl.aggregators import AGGREGATORS
        from robustfl.algorithms import ALGORITHMS
        from robustfl.compressors import COMPRESSORS

        if isinstance(f, bool) or not isinstance(f, int) or f < 0:
            raise ValueError(f"f must be an integer >= 0 (the Byzantine clients tolerated), got {f!r}")
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive number (the server step's learning rate), got {lr!r}")
        super().__init__(**fedavg)
        self.aggregator: Aggregator = _build(AGGREGATORS, aggregator, "aggregator", f=f)
        self.compressor: Compressor | None = (
            None if compressor is None else _build(COMPRESSORS, compressor, "compressor")
        )
        self.algorithm: Algorithm = _build(ALGORITHMS, algorithm, "algorithm")
        self.aggregators = phases.aggregators_for(self.aggregator, self.algorithm.parts)
        self.f, self.lr = f, float(lr)
        self.server_state: State | None = None
        self._global: tuple[Tensor, Layout] | None = None
        self._support: Tensor | None = None  # the round's upload support (masked training's core)
        self._clients: dict[int, int] = {}

    def summary(self) -> None:
        """Log the sampling settings and the robustfl components (no weighting key: none is used)."""
        from flwr.supercore import log as flwr_log

        flwr_log(
            logging.INFO,
            "\t├──> Sampling: train %.2f of the nodes (at least %d), evaluate %.2f (at least %d)",
            self.fraction_train,
            self.min_train_nodes,
            self.fraction_evaluate,
            self.min_evaluate_nodes,
        )
        flwr_log(
            logging.INFO,
            "\t└──> robustfl: %r, f = %d, compressor %r, %r (unweighted: num-examples ignored)",
            self.aggregator,
            self.f,
            self.compressor,
            self.algorithm,
        )

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._global = flatten(arrays)
        params = self._global[0]
        if self.server_state is None:
            self.server_state = self.algorithm.init_server_state(params)
        shared = self.algorithm.broadcast(params, self.server_state, server_round)
        self._support = phases.upload_support(self.algorithm, self.compressor, shared)
        config[PARAMS_FLAG] = "params" in shared
        extra = {k: Array(v.detach().cpu().numpy()) for k, v in shared.items() if k != "params"}
        messages = list(super().configure_train(server_round, arrays, config, grid))
        if extra:
            for msg in messages:
                msg.content[SHARED_KEY] = ArrayRecord(array_dict=extra)
        return messages

    def rows(self, content: Any) -> dict[str, Tensor]:
        """One reply's message row per uploaded part; ``ValueError`` names what is malformed."""
        if self._global is None:
            raise ValueError("aggregate_train before configure_train: no global arrays to compare with")
        params, layout = self._global
        records = list(content.array_records.values())
        if len(records) != 1:
            raise ValueError(f"a reply must carry one ArrayRecord, got {len(records)}")
        record, parts = records[0], self.algorithm.parts
        if len(parts) == 1 and WIRE_KEY not in record and UPDATE_KEY not in record:
            weights, got = flatten(record)
            if got.keys != layout.keys or got.shapes != layout.shapes:
                raise ValueError("the reply's arrays do not match the global model's keys and shapes")
            return {parts[0]: self._finite(params - weights)}
        expected = {part_key(base, p, parts) for p in parts for base in (WIRE_KEY, UPDATE_KEY)}
        if unknown := sorted(set(record.keys()) - expected):
            raise ValueError(f"unexpected arrays {unknown} for parts {list(parts)}")
        rows = {part: self._part(record, part) for part in parts}
        return phases.expand(rows, self._support, dict.fromkeys(parts, params.numel()))

    def _part(self, record: Any, part: str) -> Tensor:
        """The row of ``part``: wire bytes through the compressor, or a float32 message."""
        wire_key, update_key = (part_key(base, part, self.algorithm.parts) for base in (WIRE_KEY, UPDATE_KEY))
        if wire_key in record:
            if self.compressor is None:
                raise ValueError("compressed reply but the strategy has no compressor")
            msg = WireMessage.from_bytes(wire_bytes(record[wire_key]))
            if msg.n != 1:
                raise ValueError(f"wire message of {msg.n} rows, expected 1")
            return self._finite(self.compressor.decompress(msg).reshape(-1).float())
        if update_key in record:
            return self._finite(torch.from_numpy(record[update_key].numpy().astype("float32")).reshape(-1))
        raise ValueError(f"the reply has no array for part {part!r} ({wire_key} or {update_key})")

    def _client_index(self, msg: Message) -> int:
        """A small, stable id per Flower node (its node id is a large random number): rules with
        per-client memory (FoolsGold) keep one row per id."""
        return self._clients.setdefault(int(msg.metadata.src_node_id), len(self._clients))

    @staticmethod
    def _finite(row: Tensor) -> Tensor:
        if not bool(torch.isfinite(row).all()):
            raise ValueError("the reply has NaN/Inf values")
        return row

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, _ = self._check_and_log_replies(list(replies), is_train=True, validate=False)
        candidates: list[tuple[Message, dict[str, Tensor]]] = []
        dropped = 0

        def drop(msg: Message, why: object) -> None:
            nonlocal dropped
            dropped += 1
            log.warning(
                "round %d: dropped the reply of node %s: %s", server_round, msg.metadata.src_node_id, why
            )

        for msg in valid:
            try:
                candidates.append((msg, self.rows(msg.content)))
            except Exception as err:  # any malformed reply is dropped, never a crash
                drop(msg, err)
        widths = {
            part: Counter(r[part].numel() for _, r in candidates).most_common(1)[0][0]
            for part in self.algorithm.parts
            if candidates
        }
        kept: list[Message] = []
        rows: dict[str, list[Tensor]] = {part: [] for part in self.algorithm.parts}
        for msg, r in candidates:
            if bad := [
                f"{p}: {r[p].numel()} values, most replies {w}"
                for p, w in widths.items()
                if r[p].numel() != w
            ]:
                drop(msg, "; ".join(bad))
                continue
            kept.append(msg)
            for part in self.algorithm.parts:
                rows[part].append(r[part])
        metrics: dict[str, float] = {"robustfl-replies": float(len(kept)), "robustfl-dropped": float(dropped)}
        metrics |= _mean_metrics(kept)
        try:
            if not kept:
                raise ValueError("no valid reply arrived")
            if self.algorithm.uses_aggregator:
                self.aggregator.check_n(len(kept))
        except ValueError as err:
            log.warning(
                "round %d: %d valid replies; the rule's bound fails (%s): the global model is kept",
                server_round,
                len(kept),
                err,
            )
            return None, MetricRecord({**metrics, "robustfl-bound-failed": 1.0})
        assert self._global is not None and self.server_state is not None
        params, layout = self._global
        stacked = {part: torch.stack(v) for part, v in rows.items()}
        out = phases.aggregate_update(
            self.algorithm,
            params,
            stacked,
            self.aggregators,
            self.server_state,
            self.lr,
            server_round,
            Cohort(
                torch.tensor([self._client_index(m) for m in kept]),
                torch.zeros(len(kept), dtype=torch.bool),
                torch.ones(len(kept), dtype=torch.long),
            ),
        )
        self.server_state = out.state
        return unflatten(out.params, layout), MetricRecord({**metrics, "robustfl-bound-failed": 0.0})


def _mean_metrics(replies: list[Message]) -> dict[str, float]:
    """Unweighted means of the replies' numeric metrics (``num-examples`` is reported, not trusted)."""
    sums: dict[str, list[float]] = {}
    for msg in replies:
        for record in msg.content.metric_records.values():
            for key, value in record.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    sums.setdefault(key, []).append(float(value))
    return {k: sum(v) / len(v) for k, v in sums.items() if k != "num-examples"}
