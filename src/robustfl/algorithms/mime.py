"""Mime and MimeLite: server statistics applied in every local step (Karimireddy et al., 2020, "Mime:
Mimicking centralized stochastic algorithms in federated learning", arXiv:2008.03606; seed 002).

The server keeps momentum ``m`` (the "server statistics") and broadcasts it with ``x``; clients keep it
fixed during the round. Seed 002's Mime framework:

    local steps:  y <- y - eta * ((1 - beta) * d_i(y) + beta * m)           (K = local_steps steps)
    server:       x <- x - server_lr * agg(x - y_i)                        (server_lr = 1, mean: x = mean y_i)
                  m <- (1 - beta) * agg(grad f_i(x)) + beta * m            (full-batch gradients at x)

MimeLite takes ``d_i(y) = g_i(y; xi)`` (the minibatch gradient). Mime adds the SVRG correction
``d_i(y) = g_i(y; xi) - g_i(a; xi) + c`` with ``c`` the aggregate of the clients' full-batch gradients
at the anchor ``a``: a control variate ``g_i(a; xi) - c`` that averages to zero over minibatches and
clients, so it removes client drift without changing the direction in expectation.

Readings written down:

* clients upload two parts, ``delta`` (``x - y``) and ``grad`` (``grad f_i(x)``), each aggregated by its
  own instance of the configured rule (the statistics are then as robust as the model update);
* "full-batch gradient" = the gradient at ``x`` over all of the round's ``K`` minibatches
  (``K * batch_size`` samples, one call), the client's local data the engine hands it;
* Mime's anchor: the paper computes ``c`` at the round's ``x`` in an extra exchange before the local
  steps. One engine round is one exchange, so the anchor is the *previous* round's ``x`` and ``c`` the
  gradients the clients sent at it; the correction ``g_i(y) - g_i(a) + c`` is then exactly SVRG with a
  one-round-old anchor (still unbiased for ``grad f_i(y) - grad f_i(a) + grad f(a)``). Round 0 has no
  anchor yet and uses MimeLite's step. The downlink carries ``x, m, a, c`` (``4d`` values, counted);
* ``m`` starts at zero; momentum is the statistic (Mime's Adam variant is not implemented).
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
from robustfl.checks import check_fraction, check_int, check_positive


@ALGORITHMS.register("mimelite")
class MimeLite(Algorithm):
    """MimeLite with server momentum ``beta``; parts ``delta`` and ``grad``."""

    name = "mimelite"
    parts = ("delta", "grad")

    def __init__(self, local_steps: int = 1, beta: float = 0.9, server_lr: float = 1.0) -> None:
        self.local_steps = check_int("local_steps", local_steps, minimum=1)
        self.beta = check_fraction("beta", beta, upper_open=True)
        self.server_lr = check_positive("server_lr", server_lr)

    def init_server_state(self, params: Tensor) -> State:
        return {"momentum": params.new_zeros(params.shape)}

    def broadcast(self, params: Tensor, server_state: State, round: int) -> State:
        return {"params": params, "momentum": server_state["momentum"]}

    def direction(
        self, shared: State, local: Tensor, x: Tensor, y: Tensor, grad_fn: GradFn
    ) -> tuple[Tensor, Tensor]:
        """``d_i(local)`` on one minibatch and the loss there (MimeLite: the minibatch gradient)."""
        return grad_fn(local, x, y)

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        x, m = shared["params"], shared["momentum"]
        full, loss = grad_fn(x, xs.flatten(0, 1), ys.flatten(0, 1))
        local = x
        for step in range(self.local_steps):
            d, _ = self.direction(shared, local, xs[step], ys[step], grad_fn)
            local = local - lr * ((1 - self.beta) * d + self.beta * m)
        return ClientOutput({"delta": x - local, "grad": full}, state, loss)

    def next_state(self, params: Tensor, grad: Tensor, state: State) -> State:
        return {"momentum": (1 - self.beta) * grad + self.beta * state["momentum"]}

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
        new = params - self.server_lr * aggregator["delta"](messages["delta"])
        grad = aggregator["grad"](messages["grad"])
        return ServerOutput(new, self.next_state(params, grad, state))


@ALGORITHMS.register("mime")
class Mime(MimeLite):
    """Mime: MimeLite plus the SVRG correction ``g_i(y) - g_i(a) + c`` at the previous round's anchor."""

    name = "mime"

    def init_server_state(self, params: Tensor) -> State:
        zeros = params.new_zeros(params.shape)
        return {
            "momentum": zeros,
            "anchor": params.clone(),
            "control": zeros.clone(),
            "ready": params.new_zeros(()),
        }

    def broadcast(self, params: Tensor, server_state: State, round: int) -> State:
        return {"params": params, **server_state}

    @staticmethod
    def corrected(g_local: Tensor, g_anchor: Tensor, control: Tensor) -> Tensor:
        """SVRG's ``g_i(y) - g_i(a) + c``: the control variate ``g_i(a) - c`` has mean zero."""
        return g_local - g_anchor + control

    def direction(
        self, shared: State, local: Tensor, x: Tensor, y: Tensor, grad_fn: GradFn
    ) -> tuple[Tensor, Tensor]:
        g, loss = grad_fn(local, x, y)
        g_anchor, _ = grad_fn(shared["anchor"], x, y)
        return torch.where(shared["ready"] > 0, self.corrected(g, g_anchor, shared["control"]), g), loss

    def next_state(self, params: Tensor, grad: Tensor, state: State) -> State:
        return {
            **super().next_state(params, grad, state),
            "anchor": params,
            "control": grad,
            "ready": params.new_ones(()),
        }
