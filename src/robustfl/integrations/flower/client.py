"""``RobustClient``: a robustfl algorithm's client step inside a Flower ``ClientApp``.

``RobustClient(model, x, y, ...).train(msg, context)`` is the body of a ``@app.train()`` function:
it loads the global arrays of ``msg`` into the model, takes the rest of the algorithm's broadcast from
``robustfl.shared`` (SCAFFOLD's control variate, Mime's momentum), draws ``local_steps`` minibatches of ``batch_size``
from the node's data with the client's own stream (``streams.client("sample", client_id, round)``,
as in the simulator), runs ``algorithm.client_step`` and replies with the algorithm's message:
the compressor's wire bytes as uint8 (``robustfl.wire``) or the float32 message (``robustfl.update``),
one array per part (``robustfl.wire/<part>``) for algorithms that upload several.
The client's state (momentum, error-feedback memory) persists between rounds in ``context.state``.
The strategy (:class:`~robustfl.integrations.flower.strategy.RobustStrategy`) runs the matching server
step, so both steps are robustfl's own.
"""

from __future__ import annotations

from typing import Any

import torch
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from torch import Tensor, nn

from robustfl.algorithms.base import Algorithm, State
from robustfl.compressors.base import Compressor
from robustfl.engine import phases
from robustfl.engine.executors import LoopExecutor
from robustfl.engine.functional import FlatModel
from robustfl.integrations.flower.arrays import (
    PARAMS_FLAG,
    SHARED_KEY,
    UPDATE_KEY,
    WIRE_KEY,
    flatten,
    part_key,
    wire_array,
)
from robustfl.streams import Streams

STATE_KEY = "robustfl.client-state"


class RobustClient:
    """One Flower node running robustfl's client step on its data ``x``, ``y``."""

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        algorithm: Algorithm | str = "fedavg",
        compressor: Compressor | str | None = None,
        batch_size: int = 32,
        lr: float = 0.05,
        client_id: int = 0,
        seed: int = 0,
    ) -> None:
        from robustfl.algorithms import ALGORITHMS
        from robustfl.compressors import COMPRESSORS

        if len(x) == 0 or len(x) != len(y):
            raise ValueError(
                f"x and y must hold the same positive number of samples, got {len(x)} and {len(y)}"
            )
        self.algorithm = ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else algorithm
        self.compressor = COMPRESSORS.get(compressor) if isinstance(compressor, str) else compressor
        self.flat = FlatModel(model.train())
        self.x, self.y = x, y
        self.batch_size, self.lr, self.client_id = batch_size, float(lr), int(client_id)
        self.streams = Streams(seed)

    def _batches(self, round: int) -> Tensor:
        """``[1, local_steps, B]`` indices: the simulator's per-client sampling rule."""
        gen, n, b = self.streams.client("sample", self.client_id, round), len(self.x), self.batch_size
        steps = self.algorithm.local_steps
        if n >= b:
            return torch.stack([torch.randperm(n, generator=gen)[:b] for _ in range(steps)]).unsqueeze(0)
        return torch.randint(n, (1, steps, b), generator=gen)

    def _state(self, context: Context, params: Tensor) -> State:
        stored = (
            context.state.array_records.get(STATE_KEY) if hasattr(context.state, "array_records") else None
        )
        if stored is None:
            return {k: v.unsqueeze(0) for k, v in self.algorithm.init_client_state(params).items()}
        return {k: torch.from_numpy(a.numpy().copy()) for k, a in stored.items()}

    def _shared(self, msg: Message, params: Tensor, round: int) -> State:
        """The algorithm's broadcast: the global arrays as ``params`` (when it holds them) plus
        ``robustfl.shared``; without that record, the broadcast of a stateless server."""
        records = msg.content.array_records
        if SHARED_KEY not in records:
            return self.algorithm.broadcast(params, {}, round)
        config: Any = next(iter(msg.content.config_records.values()), {})
        shared: State = {k: torch.from_numpy(a.numpy().copy()) for k, a in records[SHARED_KEY].items()}
        if config.get(PARAMS_FLAG, True):
            shared["params"] = params
        return shared

    def train(self, msg: Message, context: Context) -> Message:
        """The reply to a Flower train instruction."""
        records = msg.content.array_records
        record = records["arrays"] if "arrays" in records else next(iter(records.values()))
        params, _ = flatten(record)
        value = next(iter(msg.content.config_records.values())).get("server-round", 0)
        round = value if isinstance(value, int) else 0
        self.flat.load_flat(params)
        shared = self._shared(msg, params, round)
        idx = self._batches(round)
        state = self._state(context, params)
        algo_state = {k: v for k, v in state.items() if not k.startswith(phases.COMPRESSOR_STATE)}
        out = LoopExecutor().run(
            self.algorithm, self.flat, shared, self.x[idx], self.y[idx], algo_state, self.lr
        )
        parts = phases.as_parts(out.message, self.algorithm.parts)
        names = self.algorithm.parts
        new_state = dict(out.state)
        support = phases.upload_support(self.algorithm, self.compressor, shared)  # masked training's core
        if self.compressor is None:
            sent = phases.restrict(parts, support)
            arrays = ArrayRecord(
                array_dict={
                    part_key(UPDATE_KEY, p, names): Array(v[0].float().numpy()) for p, v in sent.items()
                }
            )
        else:
            comp = {k: v for k, v in state.items() if k.startswith(phases.COMPRESSOR_STATE)}
            if not comp:
                comp = phases.init_compressor_state(self.compressor, {p: v[0] for p, v in parts.items()}, 1)
            ids = torch.tensor([self.client_id])
            messages, comp = phases.encode_parts(
                self.compressor, parts, ids, comp, self.streams, round, support
            )
            new_state |= comp
            arrays = ArrayRecord(
                array_dict={
                    part_key(WIRE_KEY, p, names): wire_array(m.row(0).to_bytes()) for p, m in messages.items()
                }
            )
        context.state[STATE_KEY] = ArrayRecord(
            array_dict={k: Array(v.detach().numpy()) for k, v in new_state.items()}
        )
        metrics = MetricRecord({"loss": float(out.loss[0]), "num-examples": len(self.x)})
        return Message(content=RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)


def state_of(context: Context) -> dict[str, Any]:
    """The client state stored in ``context`` (for inspection and tests)."""
    stored = context.state.array_records.get(STATE_KEY)
    return {} if stored is None else {k: a.numpy() for k, a in stored.items()}
