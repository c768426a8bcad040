"""FedAvg / local SGD: clients take several local SGD steps, the server aggregates the model deltas.

Client (seed 000, "communicate only periodically after some local steps"): starting from the global
``x``, run ``local_steps`` steps of the client optimizer (SGD, optionally with momentum, weight decay
and gradient clipping) on fresh minibatches and send the delta ``x - y`` (global minus local, so it
points along the average gradient like an SGD message).
Server: ``x <- x - server_lr * step(agg({x - y_i}))`` with the server optimizer's step (plain: the
aggregate itself; ``sgd`` with momentum: FedAvgM; ``adam`` / ``yogi`` / ``adagrad``: FedOpt).
With ``agg`` = mean and ``server_lr = 1`` this is FedAvg (McMahan et al. 2017) with equal client
weights; ``weighting = "data-size"`` weights client ``i`` by ``n_i / n_S`` (its reported data size over
the cohort's, seed 004 ch. 5 and 8) — only with the mean: a robust rule must not trust sizes a client
reports. ``local_steps = 1`` reduces to distributed SGD with step ``lr``. The loss reported is the one of
the first local step (the loss at the global model).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from robustfl.aggregators.base import Aggregator
from robustfl.aggregators.mean import Average
from robustfl.algorithms.base import (
    ALGORITHMS,
    Aggregators,
    Algorithm,
    ClientOutput,
    Cohort,
    GradFn,
    Messages,
    ServerOutput,
    State,
)
from robustfl.algorithms.optim import ClientOptimizer, ServerOptimizer, make_server_optimizer
from robustfl.checks import check_int, check_positive

WEIGHTINGS = ("uniform", "data-size")


@ALGORITHMS.register("fedavg", "local-sgd")
class FedAvg(Algorithm):
    """``local_steps`` local steps per round at the round's ``lr``; server step ``server_lr``."""

    name = "fedavg"

    def __init__(
        self,
        local_steps: int = 1,
        server_lr: float = 1.0,
        client_optimizer: ClientOptimizer | None = None,
        server_optimizer: ServerOptimizer | str | None = None,
        weighting: Literal["uniform", "data-size"] = "uniform",
    ) -> None:
        self.local_steps = check_int("local_steps", local_steps, minimum=1)
        self.server_lr = check_positive("server_lr", server_lr)
        self.client_optimizer = client_optimizer or ClientOptimizer()
        self.server_optimizer = make_server_optimizer(server_optimizer)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        self.weighting = weighting

    def init_server_state(self, params: Tensor) -> State:
        return self.server_optimizer.init_state(params)

    def after_local_step(self, local: Tensor, params: Tensor, step: int, state: State) -> Tensor:
        """The local model after step ``step``; variants that constrain it (PGD's projection onto a
        ball around the global ``params``) override this. Plain FedAvg leaves it as is."""
        return local

    def local_train(
        self, params: Tensor, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> tuple[Tensor, Tensor]:
        """``local_steps`` client-optimizer steps from ``params``; returns the local model and the
        first step's loss."""
        local, buffer, first_loss = params, None, None
        for step in range(self.local_steps):
            grad, loss = grad_fn(local, xs[step], ys[step])
            local, buffer = self.client_optimizer.step(local, grad, buffer, lr)
            local = self.after_local_step(local, params, step, state)
            if first_loss is None:
                first_loss = loss
        assert first_loss is not None  # local_steps >= 1
        return local, first_loss

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        params = shared["params"]
        local, loss = self.local_train(params, xs, ys, state, lr, grad_fn)
        return ClientOutput(params - local, state, loss)

    def aggregate(self, messages: Tensor, aggregator: Aggregator, cohort: Cohort) -> Tensor:
        """The aggregate of the deltas: the rule's, or the data-size-weighted mean."""
        if self.weighting == "uniform":
            return aggregator(messages)
        if not isinstance(aggregator, Average):
            raise ValueError(
                f"weighting='data-size' weights the mean by reported sizes; {aggregator!r} is a robust rule "
                "(a client's size is unverifiable): use weighting='uniform'"
            )
        w = cohort.sizes.to(messages) / cohort.sizes.sum().to(messages)
        return w @ messages

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
        assert isinstance(messages, Tensor) and isinstance(aggregator, Aggregator)
        update = self.aggregate(messages, aggregator, cohort)
        new, state = self.server_optimizer.step(params, update, state, self.server_lr)
        return ServerOutput(new, state)
