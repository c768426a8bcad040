"""Distributed (robust) SGD, optionally with worker momentum.

Client (seed 000, "distributed SGD" algorithm: each node sends its local minibatch gradient
``g_i = (1/B) sum_{j in D_i} grad f_j(x)``); with worker momentum (seed 002, "Fix: using history with
momentum") it sends instead

    m_i <- (1 - beta) * g_i + beta * m_i,        m_i = 0 before the first round,

which averages past gradients and lowers the variance a time-coupled attack hides in.
Server: ``x <- x - lr * agg({m_i})`` (seed 002; ``agg`` = mean gives SGD, coordinate-wise median gives
CMD, geometric median GMD, Krum, ...). BGMD (seed 000, Alg. 1) is this server step with
``BlockGeometricMedian``: that rule keeps its memory in message units and leaves the step size to the
caller (see its docstring), which is exactly ``x <- x - lr * agg``.

The training recipe plugs in around it: the client optimizer clips the gradient and adds weight decay
before it is sent (``ClientOptimizer.gradient``), and the server optimizer applies the aggregate
(``sgd`` with momentum for the CIFAR recipes' "SGD momentum 0.9", or FedOpt's adaptive steps).

The zero initial momentum is our reading of the seed (which gives only the recursion): it is the
standard choice of the "learning from history" paper the seed cites, and makes the first message
``(1 - beta) * g_i``.
"""

from __future__ import annotations

from torch import Tensor

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
from robustfl.checks import check_fraction


@ALGORITHMS.register("sgd", "distributed-sgd")
class DistributedSGD(Algorithm):
    """Each client sends its minibatch gradient (or worker momentum); the server takes a robust step.

    ``momentum`` is the worker momentum ``beta`` in ``[0, 1)``; 0 sends plain gradients.
    ``client_optimizer`` (clipping, weight decay; its momentum is unused here: use ``momentum``) and
    ``server_optimizer`` (default plain SGD at the round's lr) complete the recipe.
    """

    name = "sgd"

    def __init__(
        self,
        momentum: float = 0.0,
        client_optimizer: ClientOptimizer | None = None,
        server_optimizer: ServerOptimizer | str | None = None,
    ) -> None:
        self.momentum = check_fraction("momentum", momentum, upper_open=True)
        self.client_optimizer = client_optimizer or ClientOptimizer()
        if self.client_optimizer.momentum:
            raise ValueError("sgd sends gradients: set worker momentum with momentum=, not client_optimizer")
        self.server_optimizer = make_server_optimizer(server_optimizer)

    def init_client_state(self, params: Tensor) -> State:
        return {"momentum": params.new_zeros(params.shape)} if self.momentum > 0 else {}

    def init_server_state(self, params: Tensor) -> State:
        return self.server_optimizer.init_state(params)

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        params = shared["params"]
        grad, loss = grad_fn(params, xs[0], ys[0])
        grad = self.client_optimizer.gradient(grad, params)
        if self.momentum == 0:
            return ClientOutput(grad, {}, loss)
        m = self.momentum * state["momentum"] + (1 - self.momentum) * grad
        return ClientOutput(m, {"momentum": m}, loss)

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
        assert isinstance(messages, Tensor) and not isinstance(aggregator, dict)
        new, state = self.server_optimizer.step(params, aggregator(messages), state, lr)
        return ServerOutput(new, state)
