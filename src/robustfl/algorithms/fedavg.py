"""FedAvg / local SGD: clients take several local SGD steps, the server aggregates the model deltas.

Client (seed 000, "communicate only periodically after some local steps"): starting from the global
``x``, run ``local_steps`` SGD steps ``y <- y - lr * g_i(y)`` on fresh minibatches and send the delta
``x - y`` (global minus local, so it points along the average gradient like an SGD message).
Server: ``x <- x - server_lr * agg({x - y_i})``. With ``agg`` = mean and ``server_lr = 1`` this is
FedAvg (McMahan et al. 2017) with equal client weights; ``local_steps = 1`` reduces to distributed SGD
with step ``lr``. The loss reported is the one of the first local step (the loss at the global model).
"""

from __future__ import annotations

from torch import Tensor

from robustfl.aggregators.base import Aggregator, check_int, check_positive
from robustfl.algorithms.base import ALGORITHMS, Algorithm, ClientOutput, GradFn, State


@ALGORITHMS.register("fedavg", "local-sgd")
class FedAvg(Algorithm):
    """``local_steps`` local SGD steps per round at the round's ``lr``; server step ``server_lr``."""

    name = "fedavg"

    def __init__(self, local_steps: int = 1, server_lr: float = 1.0) -> None:
        self.local_steps = check_int("local_steps", local_steps, minimum=1)
        self.server_lr = check_positive("server_lr", server_lr)

    def after_local_step(self, local: Tensor, params: Tensor, step: int, state: State) -> Tensor:
        """The local model after SGD step ``step``; variants that constrain it (PGD's projection onto
        a ball around the global ``params``) override this. Plain FedAvg leaves it as is."""
        return local

    def client_step(
        self, params: Tensor, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        local = params
        first_loss = None
        for step in range(self.local_steps):
            grad, loss = grad_fn(local, xs[step], ys[step])
            local = self.after_local_step(local - lr * grad, params, step, state)
            if first_loss is None:
                first_loss = loss
        assert first_loss is not None  # local_steps >= 1
        return params - local, state, first_loss

    def server_step(
        self, params: Tensor, messages: Tensor, aggregator: Aggregator, state: State, lr: float
    ) -> tuple[Tensor, State]:
        return params - self.server_lr * aggregator(messages), state
