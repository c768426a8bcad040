"""The algorithm contract: a pure **client step** and a pure **server step** over flat vectors.

A round of any algorithm is

1. every client ``i`` runs ``client_step(params, xs_i, ys_i, state_i, lr, grad_fn)`` and gets
   ``(message_i, new_state_i, loss_i)``;
2. the engine stacks the ``n`` messages into ``Tensor[n, d]`` (Byzantine rows replaced by the attack,
   then compression applied);
3. the server runs ``server_step(params, messages, aggregator, server_state, lr)`` and gets the new
   global parameters and server state.

Neither step does I/O or sees another client: the simulator vmaps ``client_step`` over clients, the
distributed runtime calls it once per process, and both must compute the same numbers. ``grad_fn`` is
the only way a client step touches the model: ``grad_fn(params, x, y) -> (gradient, loss)`` over flat
parameters (``robustfl.utils.flatten``), so a step stays a function of tensors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor

from robustfl.aggregators.base import Aggregator
from robustfl.registry import Registry

GradFn = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
"""``grad_fn(params[d], x[B, ...], y[B]) -> (gradient[d], loss[])`` for one client's minibatch."""

State = dict[str, Tensor]
"""Client or server state: named tensors (batched over clients with a leading ``n`` in the simulator)."""

ClientOutput = tuple[Tensor, State, Tensor]
"""``(message[d], new_state, loss[])`` returned by a client step."""


class Algorithm(ABC):
    """One training algorithm as a client step and a server step (see the module docstring).

    ``local_steps`` is the number of minibatches a client consumes per round; the engine hands a
    client ``xs: Tensor[local_steps, B, ...]`` and ``ys: Tensor[local_steps, B]``.
    """

    name: ClassVar[str] = "-"
    local_steps: int = 1

    def init_client_state(self, params: Tensor) -> State:
        """The state a client starts with (stateless algorithms: empty)."""
        return {}

    @abstractmethod
    def client_step(
        self, params: Tensor, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        """Compute this client's message from the global ``params`` and its own batches and state."""

    def init_server_state(self, params: Tensor) -> State:
        """The state the server starts with (stateless algorithms: empty)."""
        return {}

    @abstractmethod
    def server_step(
        self, params: Tensor, messages: Tensor, aggregator: Aggregator, state: State, lr: float
    ) -> tuple[Tensor, State]:
        """Aggregate ``messages: Tensor[n, d]`` and return the new global parameters and state."""

    def params(self) -> dict[str, Any]:
        """The constructor parameters, for ``repr`` and the run's resolved config."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


ALGORITHMS: Registry[Algorithm] = Registry("algorithm")
