"""RSA: Byzantine-robust stochastic model aggregation (Li et al., AAAI 2019; seed 001, eqs. 4–7).

Every worker ``k`` keeps its own model ``x_k`` (client state) and the master keeps ``x_0`` (the global
parameters). The ℓ1-penalised problem (eq. 4)

    min  sum_k E f(x_k, xi_k) + f_0(x_0) + lambda * sum_k ||x_k - x_0||_1,    f_0(x) = mu/2 ||x||^2,

is solved by stochastic subgradient steps at step size ``alpha`` (the round's lr):

    worker (eq. 6):  x_k <- x_k - alpha * (grad f(x_k, xi_k) + lambda * sign(x_k - x_0))
    master (eq. 7):  x_0 <- x_0 - alpha * (mu * x_0 + lambda * sum_k sign(x_0 - z_k))

where ``z_k`` is the model worker ``k`` sent: its ``x_k`` if it is regular, anything if it is
Byzantine (the engine's attack replaces the Byzantine rows of the uploaded models). Each message moves
each coordinate of ``x_0`` by at most ``alpha * lambda``, which is what bounds a Byzantine worker.

Readings the seed leaves open, written down:

* synchronous rounds: the master's eq. (7) uses the models ``x_k^t`` the workers held *before* their
  round-``t`` update (the message is the old ``x_k``), and the workers use ``x_0^t``;
* ``x_k`` starts at the initial global model (the seed does not say; equal starts make the penalty 0);
* with client sampling, only the sampled workers update their ``x_k`` and enter the sum of eq. (7)
  (the sum runs over the round's messages, unscaled);
* ``uses_aggregator = False``: the sign sum *is* the aggregation; the configured rule is ignored;
* a NaN coordinate of a message casts no vote there (its sign counts as 0);
* the reported loss is the worker's minibatch loss at its own ``x_k`` (the seed evaluates ``x_0``).
"""

from __future__ import annotations

import torch
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
from robustfl.checks import check_positive


@ALGORITHMS.register("rsa")
class RSA(Algorithm):
    """RSA with penalty ``lam`` (λ) and master regulariser ``mu`` (f_0 = μ/2‖x‖²); step = the round's lr."""

    name = "rsa"
    uses_aggregator = False

    def __init__(self, lam: float = 0.001, mu: float = 0.01) -> None:
        self.lam = check_positive("lam", lam)
        self.mu = check_positive("mu", mu, allow_zero=True)

    def init_client_state(self, params: Tensor) -> State:
        return {"model": params.clone()}

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        x0, xk = shared["params"], state["model"]
        grad, loss = grad_fn(xk, xs[0], ys[0])
        new = xk - lr * (grad + self.lam * torch.sign(xk - x0))
        return ClientOutput(xk, {"model": new}, loss, {"distance_l1": (xk - x0).abs().sum()})

    def master_step(self, x0: Tensor, sign_sum: Tensor, lr: float) -> Tensor:
        """Eq. (7) given ``sum_k sign(x_0 - z_k)`` (C-RSA passes the masked sum of eq. 9)."""
        return x0 - lr * (self.mu * x0 + self.lam * sign_sum)

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
        assert isinstance(messages, Tensor)
        signs = torch.sign(params.unsqueeze(0) - messages).nan_to_num(nan=0.0)
        return ServerOutput(self.master_step(params, signs.sum(0), lr), state)
