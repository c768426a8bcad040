"""PGD inside local training (seed 004 ch. 8, attack (b) as the chapter runs it).

The attacker "periodically projects its model on a small ball, centered around the global model of
the previous iteration", and the chapter finds projecting "once every 10 SGD steps" works better
than at every step. :class:`PGDFedAvg` is FedAvg whose client step does exactly that for clients
whose state holds a finite ``radius``; honest clients hold ``radius = inf`` and take FedAvg's steps
unchanged. Because the radius lives in the per-client state, the step stays one vmappable function
of tensors (no branching on who is Byzantine), as the simulator requires.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators.base import check_int, check_positive
from robustfl.algorithms.base import ALGORITHMS, State
from robustfl.algorithms.fedavg import FedAvg


def project_towards(local: Tensor, center: Tensor, radius: Tensor) -> Tensor:
    """``center + (local - center) * min(1, radius / ||local - center||)`` with a tensor ``radius``
    (``inf`` leaves ``local`` unchanged); the vmappable form of ``project_l2_ball``."""
    diff = local - center
    norm = torch.linalg.vector_norm(diff).clamp_min(torch.finfo(diff.dtype).tiny)
    inside = norm <= radius  # also true for radius = inf: then ``local`` is returned bit for bit
    return torch.where(inside, local, center + diff * (radius / norm))


@ALGORITHMS.register("fedavg-pgd", "pgd-fedavg")
class PGDFedAvg(FedAvg):
    """FedAvg where clients with a finite ``state["radius"]`` project their local model onto the l2
    ball of that radius around the global model every ``project_every`` local steps and after the
    last one, so the update they send satisfies ``||w_i - w|| <= radius``.

    After building the simulator, give its attackers their budget with :func:`arm_attackers` (call it
    again each round for the chapter's decaying budget ``delta * 0.998^t``). ``radius`` records the
    budget for whoever builds the simulator: an experiment config
    (``training.algorithm = "fedavg-pgd"``, ``training.algorithm_params = {radius = 1.0}``) arms the
    Byzantine workers with it; ``None`` leaves every client unprojected until :func:`arm_attackers`.
    """

    name = "fedavg-pgd"

    def __init__(
        self,
        local_steps: int = 1,
        server_lr: float = 1.0,
        project_every: int = 10,
        radius: float | None = None,
    ) -> None:
        super().__init__(local_steps, server_lr)
        self.project_every = check_int("project_every", project_every, minimum=1)
        self.radius = None if radius is None else check_positive("radius", radius, allow_zero=True)

    def init_client_state(self, params: Tensor) -> State:
        return {"radius": params.new_full((), float("inf"))}

    def after_local_step(self, local: Tensor, params: Tensor, step: int, state: State) -> Tensor:
        if (step + 1) % self.project_every == 0 or step == self.local_steps - 1:
            return project_towards(local, params, state["radius"])
        return local


def arm_attackers(sim: object, radius: float) -> None:
    """Set the PGD budget of a simulator's Byzantine clients (its last ``num_byzantine``) to ``radius``."""
    radius = check_positive("radius", radius, allow_zero=True)
    state = getattr(sim, "client_state", None)
    if not isinstance(state, dict) or "radius" not in state:
        raise ValueError("arm_attackers needs a Simulator built with algorithm=PGDFedAvg(...)")
    f = int(getattr(sim, "num_byzantine", 0))
    if f > 0:
        state["radius"][-f:] = radius
