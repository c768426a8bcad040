"""``RobustStrategy``: every robustfl rule, pre-aggregator pipeline and compressor as a Flower strategy.

Built on Flower's Message API (``flwr.serverapp.strategy.FedAvg`` for node sampling and evaluation).
A training round:

1. ``configure_train`` remembers the global arrays it sends (flattened: ``x``);
2. ``aggregate_train`` turns each valid reply into one robustfl message row:

   * ``robustfl.wire`` (uint8): a compressor's wire bytes (``Message.from_bytes`` + ``decompress``);
   * ``robustfl.update`` (float32): an uncompressed robustfl message (the client helper's);
   * otherwise the reply's arrays are new weights ``y``, and the row is FedAvg's message ``x - y``
     (the delta ``y - x`` with robustfl's sign: FedAvg's server step is ``x - lr * agg(x - y)``).

   A reply whose row cannot be built (missing or extra arrays, a wrong shape, bytes that do not
   decode, NaN/Inf) is dropped and counted (``robustfl-dropped``), never a crash;
3. the rule's bound is checked for the rows that arrived (``aggregator.check_n(m)``); if it fails the
   global model is kept for this round (``robustfl-bound-failed = 1``) and a warning says why;
4. the algorithm's own server step (robustfl's, default FedAvg with ``server_lr``) aggregates the
   rows with the rule. ``num-examples`` is never used as a weight: clients report it and nobody can
   check it, and weighting would hand a Byzantine client the result. Metrics are plain means over
   the valid replies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from torch import Tensor

from robustfl.aggregators.base import Aggregator
from robustfl.algorithms.base import Algorithm, Cohort, State
from robustfl.compressors.base import Compressor
from robustfl.compressors.base import Message as WireMessage
from robustfl.integrations.flower.arrays import UPDATE_KEY, WIRE_KEY, Layout, flatten, unflatten, wire_bytes

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
        if len(self.algorithm.parts) != 1:
            raise ValueError(
                f"algorithm {self.algorithm.name!r} uploads several parts; RobustStrategy takes one"
            )
        self.f, self.lr = f, float(lr)
        self.server_state: State | None = None
        self._global: tuple[Tensor, Layout] | None = None

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
        return super().configure_train(server_round, arrays, config, grid)

    def row(self, content: Any) -> Tensor:
        """One reply's message row; ``ValueError`` names what is malformed."""
        if self._global is None:
            raise ValueError("aggregate_train before configure_train: no global arrays to compare with")
        params, layout = self._global
        records = list(content.array_records.values())
        if len(records) != 1:
            raise ValueError(f"a reply must carry one ArrayRecord, got {len(records)}")
        record = records[0]
        if WIRE_KEY in record:
            if self.compressor is None:
                raise ValueError("compressed reply but the strategy has no compressor")
            msg = WireMessage.from_bytes(wire_bytes(record[WIRE_KEY]))
            if msg.n != 1 or msg.d != layout.dim:
                raise ValueError(f"wire message of {msg.n} x {msg.d}, expected 1 x {layout.dim}")
            row = self.compressor.decompress(msg).reshape(-1).float()
        elif UPDATE_KEY in record:
            row = torch.from_numpy(record[UPDATE_KEY].numpy().astype("float32")).reshape(-1)
        else:
            weights, got = flatten(record)
            if got.keys != layout.keys or got.shapes != layout.shapes:
                raise ValueError("the reply's arrays do not match the global model's keys and shapes")
            row = params - weights
        if row.numel() != layout.dim:
            raise ValueError(f"the reply has {row.numel()} values, the model {layout.dim}")
        if not bool(torch.isfinite(row).all()):
            raise ValueError("the reply has NaN/Inf values")
        return row

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, _ = self._check_and_log_replies(list(replies), is_train=True, validate=False)
        rows, kept, dropped = [], [], 0
        for msg in valid:
            try:
                rows.append(self.row(msg.content))
                kept.append(msg)
            except Exception as err:  # any malformed reply is dropped, never a crash
                dropped += 1
                log.warning(
                    "round %d: dropped the reply of node %s: %s", server_round, msg.metadata.src_node_id, err
                )
        metrics: dict[str, float] = {"robustfl-replies": float(len(rows)), "robustfl-dropped": float(dropped)}
        metrics |= _mean_metrics(kept)
        try:
            if not rows:
                raise ValueError("no valid reply arrived")
            if self.algorithm.uses_aggregator:
                self.aggregator.check_n(len(rows))
        except ValueError as err:
            log.warning(
                "round %d: %d valid replies; the rule's bound fails (%s): the global model is kept",
                server_round,
                len(rows),
                err,
            )
            return None, MetricRecord({**metrics, "robustfl-bound-failed": 1.0})
        assert self._global is not None
        params, layout = self._global
        if self.server_state is None:
            self.server_state = self.algorithm.init_server_state(params)
        out = self.algorithm.server_step(
            params,
            torch.stack(rows),
            self.aggregator,
            self.server_state,
            self.lr,
            server_round,
            Cohort.of(len(rows)),
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
