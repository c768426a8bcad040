"""SCAFFOLD: local SGD with control variates against client drift (Karimireddy et al., ICML 2020).

Server state: the global control variate ``c``; client state: its own ``c_i`` (zeros at first). Round:

    broadcast (x, c)
    client:  y <- y - lr * (g_i(y) - c_i + c)       for K = local_steps steps, from y = x
             c_i+ = c_i - c + (x - y) / (K lr)       (the paper's option II)
             send  Δy = x - y  and  Δc = c_i+ - c_i   (two parts, each its own aggregator instance)
    server:  x <- x - server_lr * agg_Δy(Δy)
             c <- c + client_fraction * agg_Δc(Δc)   (client_fraction = |S| / N)

Readings written down: ``Δy`` is sent as global minus local (``x - y``), the sign convention of every
model-delta algorithm here, so ``server_lr = 1`` with the mean is the paper's ``x + η_g mean(y - x)``
at ``η_g = 1``. ``client_fraction`` is ``|S| / N`` (the paper's weight of the control update); the
server step does not know ``N``, so set it when clients are sampled (default 1: every client takes
part). With a robust rule both parts are aggregated robustly: a Byzantine client cannot shift ``c`` by
more than the rule lets it shift the model.
"""

from __future__ import annotations

from torch import Tensor

from robustfl.aggregators.base import Aggregator
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
from robustfl.checks import check_int, check_positive


@ALGORITHMS.register("scaffold")
class Scaffold(Algorithm):
    """SCAFFOLD (option II control update), parts ``delta`` (Δy) and ``control`` (Δc)."""

    name = "scaffold"
    parts = ("delta", "control")

    def __init__(self, local_steps: int = 1, server_lr: float = 1.0, client_fraction: float = 1.0) -> None:
        self.local_steps = check_int("local_steps", local_steps, minimum=1)
        self.server_lr = check_positive("server_lr", server_lr)
        self.client_fraction = check_positive("client_fraction", client_fraction)
        if self.client_fraction > 1:
            raise ValueError(
                f"client_fraction (= sampled / all clients) must be in (0, 1], got {client_fraction}"
            )

    def init_client_state(self, params: Tensor) -> State:
        return {"control": params.new_zeros(params.shape)}

    def init_server_state(self, params: Tensor) -> State:
        return {"control": params.new_zeros(params.shape)}

    def broadcast(self, params: Tensor, server_state: State, round: int) -> State:
        return {"params": params, "control": server_state["control"]}

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        x, c, ci = shared["params"], shared["control"], state["control"]
        local, first = x, None
        for step in range(self.local_steps):
            grad, loss = grad_fn(local, xs[step], ys[step])
            local = local - lr * (grad - ci + c)
            first = loss if first is None else first
        assert first is not None
        delta = x - local
        new_ci = ci - c + delta / (self.local_steps * lr)
        return ClientOutput({"delta": delta, "control": new_ci - ci}, {"control": new_ci}, first)

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
        assert isinstance(messages, dict) and isinstance(aggregator, dict)
        agg_delta: Aggregator = aggregator["delta"]
        new = params - self.server_lr * agg_delta(messages["delta"])
        control = state["control"] + self.client_fraction * aggregator["control"](messages["control"])
        return ServerOutput(new, {"control": control})
