"""FedProx: FedAvg whose local objective adds a proximal term (Li et al., MLSys 2020; seed 004 ch. 5).

Client ``i`` approximately minimises ``h_i(y) = f_i(y) + mu/2 ||y - x||^2`` around the global ``x`` with
``local_steps`` client-optimizer steps on ``grad f_i(y; xi) + mu (y - x)``, and sends ``x - y`` like
FedAvg; the server is FedAvg's (any aggregator, any server optimizer). ``mu = 0.001`` is the value the
FedMA chapter (seed 004, ch. 5) uses for its FedProx baseline; ``mu = 0`` is FedAvg. The proximal
gradient is added before the client optimizer's clipping and weight decay (it is part of the objective).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from robustfl.algorithms.base import ALGORITHMS, GradFn, State
from robustfl.algorithms.fedavg import FedAvg
from robustfl.algorithms.optim import ClientOptimizer, ServerOptimizer
from robustfl.checks import check_positive


@ALGORITHMS.register("fedprox")
class FedProx(FedAvg):
    """FedAvg with the proximal term ``mu/2 ||y - x||^2`` in every local step."""

    name = "fedprox"

    def __init__(
        self,
        mu: float = 0.001,
        local_steps: int = 1,
        server_lr: float = 1.0,
        client_optimizer: ClientOptimizer | None = None,
        server_optimizer: ServerOptimizer | str | None = None,
        weighting: Literal["uniform", "data-size"] = "uniform",
    ) -> None:
        super().__init__(local_steps, server_lr, client_optimizer, server_optimizer, weighting)
        self.mu = check_positive("mu", mu, allow_zero=True)

    def local_train(
        self, params: Tensor, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> tuple[Tensor, Tensor]:
        local, buffer, first = params, None, None
        for step in range(self.local_steps):
            grad, loss = grad_fn(local, xs[step], ys[step])
            local, buffer = self.client_optimizer.step(local, grad + self.mu * (local - params), buffer, lr)
            first = loss if first is None else first
        assert first is not None
        return local, first
