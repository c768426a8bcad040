"""The algorithm contract: a **broadcast**, a pure **client step** and a pure **server step**.

A round of any algorithm (``robustfl.engine.phases`` composes it; the simulator and the distributed
runtime call the very same functions, so their runs agree for the same seed):

1. ``shared = broadcast(params, server_state, round)``: what every sampled client receives
   (default ``{"params": params}``; Mime adds the server statistics, SCAFFOLD the control variate,
   C-RSA a compressed model). ``broadcast_bits(shared)`` counts it exactly, per client.
2. every sampled client ``i`` runs ``client_step(shared, xs_i, ys_i, state_i, lr, grad_fn)`` and returns
   a :class:`ClientOutput` ``(message, state, loss, metrics)``. ``message`` is one ``Tensor[d]`` or, for
   an algorithm that uploads several named parts (SCAFFOLD's Δy and Δc), a dict ``{part: Tensor}`` with
   the keys of ``parts``.
3. the engine stacks the messages (``Tensor[m, d]`` per part), lets the Byzantine clients replace theirs,
   compresses them, and the server runs ``server_step(params, messages, aggregator, state, lr, round,
   cohort)`` → :class:`ServerOutput` ``(params, state, metrics)``. Each part has its own aggregator
   instance (same config, separate memory); with one part the step gets the tensor and the aggregator
   themselves, with several the dicts.

Neither step does I/O or sees another client. ``grad_fn(params, x, y) -> (gradient, loss)`` over flat
parameters is the only way a client step touches the model, so a step is a function of tensors that
``torch.func.vmap`` can batch over clients. Per-client ``metrics`` are 0-d tensors (the engine reports
their mean over the honest clients); server ``metrics`` are plain floats (or lists) that go to
``metrics.jsonl``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from robustfl.aggregators.base import Aggregator
from robustfl.registry import Configurable, Registry

GradFn = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
"""``grad_fn(params[d], x[B, ...], y[B]) -> (gradient[d], loss[])`` for one client's minibatch."""

State = dict[str, Tensor]
"""Client, server or broadcast state: named tensors (client state is batched over clients)."""

Messages = Tensor | dict[str, Tensor]
"""The stacked uploads: ``Tensor[m, d]`` for a one-part algorithm, ``{part: Tensor[m, d_part]}`` else."""

Aggregators = Aggregator | dict[str, Aggregator]
"""One aggregator per uploaded part (the aggregator itself for a one-part algorithm)."""


class ClientOutput(NamedTuple):
    """What a client step returns (batched over clients by the executors)."""

    message: Tensor | dict[str, Tensor]
    state: State
    loss: Tensor
    metrics: dict[str, Tensor] = {}  # noqa: RUF012  (never mutated)


class ServerOutput(NamedTuple):
    """What a server step returns: new global parameters, new server state, per-round metrics."""

    params: Tensor
    state: State
    metrics: dict[str, Any] = {}  # noqa: RUF012  (never mutated)


@dataclass(frozen=True)
class Cohort:
    """Who took part in a round, in the order of the message rows.

    ``ids``: client ids ``Tensor[m]``; ``byzantine``: ``Tensor[m]`` bool, which rows a Byzantine client
    sent; ``sizes``: ``Tensor[m]`` local data sizes as the clients report them (unverifiable: robust
    rules ignore them; weighted FedAvg uses them).
    """

    ids: Tensor
    byzantine: Tensor
    sizes: Tensor

    @staticmethod
    def of(n: int, f: int = 0) -> Cohort:
        """All ``n`` clients, the last ``f`` Byzantine, equal sizes (for tests and direct use)."""
        byz = torch.zeros(n, dtype=torch.bool)
        byz[n - f :] = f > 0
        return Cohort(torch.arange(n), byz, torch.ones(n, dtype=torch.long))


def tensor_bits(tensors: Mapping[str, Tensor]) -> int:
    """Bits of sending every tensor at its dtype's width (32 per float32 value)."""
    return sum(8 * t.element_size() * t.numel() for t in tensors.values())


class Algorithm(Configurable, ABC):
    """One training algorithm as broadcast, client step and server step (see the module docstring).

    ``local_steps`` is the number of minibatches a client consumes per round; the engine hands a
    client ``xs: Tensor[local_steps, B, ...]`` and ``ys: Tensor[local_steps, B]``. ``parts`` names the
    uploaded parts; ``uses_aggregator = False`` for algorithms whose server step ignores it (RSA).
    ``params()`` (constructor arguments) is what a run records; ``repr`` shows it.
    """

    name: ClassVar[str] = "-"
    parts: ClassVar[tuple[str, ...]] = ("update",)
    uses_aggregator: ClassVar[bool] = True
    needs_byzantine_flag: ClassVar[bool] = False
    """Whether the engine puts ``state["byzantine"]`` (a 0-d bool: is this client Byzantine in this
    round) into each client's state before the client step (PGD attackers read it)."""
    local_steps: int = 1

    def init_client_state(self, params: Tensor) -> State:
        """The state one client starts with (stateless algorithms: empty)."""
        return {}

    def init_server_state(self, params: Tensor) -> State:
        """The state the server starts with (stateless algorithms: empty)."""
        return {}

    def broadcast(self, params: Tensor, server_state: State, round: int) -> State:
        """What every sampled client receives in ``round``."""
        return {"params": params}

    def broadcast_bits(self, shared: State) -> int:
        """Exact bits one client receives for ``shared`` (every value at its dtype's width by default;
        algorithms that compress the broadcast override this)."""
        return tensor_bits(shared)

    def message_bits(self, parts: dict[str, Tensor]) -> int | None:
        """Exact uplink bits of the round's stacked parts when the algorithm fixes its own wire format
        (C-RSA's 2-bit ternary signs); ``None`` (default): without a compressor every value counts at
        its dtype's width. Only consulted when no compressor is configured; ``parts`` holds what goes on
        the wire (the support's columns when :meth:`upload_support` gives one)."""
        return None

    def upload_support(self, shared: State) -> Tensor | None:
        """The coordinates a client uploads in the round whose broadcast was ``shared``: a bool
        ``Tensor[d]`` (``d`` = the model's size), or ``None`` (default) for all of them.

        Contract: the support is a function of the broadcast, so the server and every client know it
        and it costs no uplink bits. Of every uploaded part ``d`` wide, only the columns in the support
        go on the wire, raw (``32 K`` bits for ``K`` float32 values) or through the compressor (which
        then encodes the ``[m, K]`` matrix: its bits are those of ``K`` values); the server receives zeros
        off the support, whatever the client step put there (``robustfl.engine.phases.transmit``).
        Masked training returns its core mask in masked rounds."""
        return None

    def evaluation_params(self, params: Tensor, server_state: State) -> dict[str, Tensor]:
        """Further parameter vectors to evaluate beside ``params``, by name (masked training's core
        network); the evaluation reports ``<name>_test_accuracy`` etc. for each. Default: none."""
        return {}

    @abstractmethod
    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        """This client's message from the broadcast ``shared``, its own batches and its own state."""

    @abstractmethod
    def server_step(
        self,
        params: Tensor,
        messages: Messages,
        aggregator: Aggregators,
        state: State,
        lr: float,
        round: int,
        cohort: Cohort,
    ) -> ServerOutput:
        """Aggregate the round's messages and return the new parameters, server state and metrics."""


ALGORITHMS: Registry[Algorithm] = Registry("algorithm")
