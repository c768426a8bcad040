"""PGD inside local training (seed 004 ch. 8, attack (b) as the chapter runs it).

The attacker "periodically projects its model on a small ball, centered around the global model of
the previous iteration", and the chapter finds projecting "once every 10 SGD steps" works better
than at every step. :class:`PGDFedAvg` is FedAvg whose client step does exactly that for the round's
Byzantine clients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.algorithms.base import ALGORITHMS, ClientOutput, GradFn, State, tensor_bits
from robustfl.algorithms.fedavg import FedAvg
from robustfl.algorithms.optim import ClientOptimizer, ServerOptimizer
from robustfl.checks import check_int, check_positive


def project_towards(local: Tensor, center: Tensor, radius: Tensor) -> Tensor:
    """``center + (local - center) * min(1, radius / ||local - center||)`` with a tensor ``radius``
    (``inf`` leaves ``local`` unchanged); the vmappable form of ``project_l2_ball``."""
    diff = local - center
    norm = torch.linalg.vector_norm(diff).clamp_min(torch.finfo(diff.dtype).tiny)
    inside = norm <= radius  # also true for radius = inf: then ``local`` is returned bit for bit
    return torch.where(inside, local, center + diff * (radius / norm))


@ALGORITHMS.register("fedavg-pgd", "pgd-fedavg")
class PGDFedAvg(FedAvg):
    """FedAvg whose Byzantine clients project their local model onto the l2 ball of radius
    ``radius * decay^t`` (round ``t``) around the global model every ``project_every`` local steps and
    after the last one, so the update they send satisfies ``||w_i - w|| <= radius * decay^t``.

    The chapter's shrinking budget is ``delta * 0.998^t`` (``decay = 0.998``). The budget travels in the
    broadcast (attackers only: it is not counted in ``bits_down``) and the engine marks the round's
    Byzantine clients in their state (``state["byzantine"]``), so the step stays one vmappable function
    of tensors: honest clients get ``radius = inf`` and take FedAvg's steps bit for bit.
    ``radius = None`` leaves every client unprojected (black-box attackers).
    """

    name = "fedavg-pgd"
    needs_byzantine_flag = True

    def __init__(
        self,
        local_steps: int = 1,
        server_lr: float = 1.0,
        project_every: int = 10,
        radius: float | None = None,
        decay: float = 1.0,
        client_optimizer: ClientOptimizer | None = None,
        server_optimizer: ServerOptimizer | str | None = None,
    ) -> None:
        super().__init__(local_steps, server_lr, client_optimizer, server_optimizer)
        self.project_every = check_int("project_every", project_every, minimum=1)
        self.radius = None if radius is None else check_positive("radius", radius, allow_zero=True)
        self.decay = check_positive("decay", decay)
        if self.decay > 1:
            raise ValueError(f"decay must be in (0, 1], got {decay!r}")

    def budget(self, round: int) -> float:
        """The attackers' radius in ``round``: ``radius * decay^round`` (``inf`` without a radius)."""
        return float("inf") if self.radius is None else self.radius * self.decay**round

    def broadcast(self, params: Tensor, server_state: State, round: int) -> State:
        return {"params": params, "radius": params.new_full((), self.budget(round))}

    def broadcast_bits(self, shared: State) -> int:
        return tensor_bits({"params": shared["params"]})

    def after_local_step(self, local: Tensor, params: Tensor, step: int, state: State) -> Tensor:
        if (step + 1) % self.project_every == 0 or step == self.local_steps - 1:
            return project_towards(local, params, state["radius"])
        return local

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        radius = torch.where(
            state["byzantine"], shared["radius"], torch.full_like(shared["radius"], float("inf"))
        )
        params = shared["params"]
        local, loss = self.local_train(params, xs, ys, {**state, "radius": radius}, lr, grad_fn)
        return ClientOutput(params - local, state, loss)
