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

The zero initial momentum is our reading of the seed (which gives only the recursion): it is the
standard choice of the "learning from history" paper the seed cites, and makes the first message
``(1 - beta) * g_i``.
"""

from __future__ import annotations

from torch import Tensor

from robustfl.aggregators.base import Aggregator, check_positive
from robustfl.algorithms.base import ALGORITHMS, Algorithm, ClientOutput, GradFn, State


@ALGORITHMS.register("sgd", "distributed-sgd")
class DistributedSGD(Algorithm):
    """Each client sends its minibatch gradient (or worker momentum); the server takes a robust step.

    ``momentum`` is the worker momentum ``beta`` in ``[0, 1)``; 0 sends plain gradients.
    """

    name = "sgd"

    def __init__(self, momentum: float = 0.0) -> None:
        beta = check_positive("momentum", momentum, allow_zero=True)
        if beta >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = beta

    def init_client_state(self, params: Tensor) -> State:
        return {"momentum": params.new_zeros(params.shape)} if self.momentum > 0 else {}

    def client_step(
        self, params: Tensor, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        grad, loss = grad_fn(params, xs[0], ys[0])
        if self.momentum == 0:
            return grad, {}, loss
        m = self.momentum * state["momentum"] + (1 - self.momentum) * grad
        return m, {"momentum": m}, loss

    def server_step(
        self, params: Tensor, messages: Tensor, aggregator: Aggregator, state: State, lr: float
    ) -> tuple[Tensor, State]:
        return params - lr * aggregator(messages), state
