"""Decentralised training by compressed gossip (CHOCO-SGD) with robust neighbour aggregation.

There is no server. Node ``i`` of a graph keeps its own model ``x_i`` (client state ``"model"``) and a
public copy ``x̂_i`` that all its neighbours hold too. One round (``robustfl.engine.gossip`` runs it):

1. **local steps** (this class's client step, run by the engine's executors for all nodes at once):
   ``local_steps`` client-optimizer steps from ``x_i`` on the node's own minibatches;
2. **gossip**, ``gossip_steps`` times (CHOCO-SGD, Koloskova, Stich and Jaggi, ICML 2019, Algorithm 2;
   several steps per round as in Hashemi et al., "On the benefits of multiple gossip steps in
   communication-constrained decentralized optimization", arXiv:2011.10643):

       q_i = C(x_i - x̂_i)                    sent to every neighbour through any robustfl compressor
       x̂_j <- x̂_j + q_j                      for j in {i} ∪ N(i) (every holder of a copy)
       x_i <- x_i + gamma (A_i - x̂_i)

   where ``A_i`` is the neighbour aggregate of ``rule``:

   * ``weighted``: ``A_i = sum_j w_ij x̂_j`` (Metropolis–Hastings ``W``): CHOCO's
     ``x_i + gamma sum_j w_ij (x̂_j - x̂_i)`` exactly;
   * ``clip`` (self-centred clipping, He, Karimireddy and Jaggi, "Byzantine-robust decentralized
     learning via ClippedGossip", arXiv:2202.01545): ``A_i = x̂_i + sum_{j != i} w_ij clip(x̂_j - x̂_i, tau_i)``
     with ``clip(v, tau) = v min(1, tau / ||v||)``; ``tau = inf`` gives ``weighted``;
   * ``aggregator``: ``A_i = agg({x̂_i} ∪ {x̂_j : j in N(i)})``, the run's ``[aggregator]`` (median,
     trimmed mean, ...) over the node and its neighbours, unweighted.

Readings the papers leave open, written down:

* ClippedGossip clips around the node's own model; with compression the node's exact model is not what
  its neighbours' differences are measured against, so we centre at its public copy ``x̂_i`` (then
  ``tau = inf`` is CHOCO exactly, and with the identity compressor ``x̂_i = x_i`` after each step's update).
* ``tau = None`` (default): adaptive radius, recomputed in every gossip step: node ``i`` clips its
  ``clip_count`` farthest neighbours to the distance of the next one (He et al.'s experiments clip the
  farthest one, i.e. ``tau_i`` = the second-largest neighbour distance). ``clip_count`` must be below
  every node's degree.
* ``x̂`` starts at the common initial model, not at 0 (every node can build it from the shared seed), so
  the first messages carry only what training changed.
* ``gossip_steps = 0`` is local training alone (the "each node learns separately" baseline).
"""

from __future__ import annotations

from typing import ClassVar, Literal

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
from robustfl.algorithms.optim import ClientOptimizer
from robustfl.checks import check_int, check_positive
from robustfl.topology import check_topology

RULES = ("weighted", "clip", "aggregator")


@ALGORITHMS.register("gossip")
class Gossip(Algorithm):
    """Local steps, then ``gossip_steps`` CHOCO steps with step ``gamma`` over ``topology`` (see the
    module docstring); ``rule`` aggregates each node's neighbours."""

    name = "gossip"
    decentralised: ClassVar[bool] = True
    """Runs on ``robustfl.engine.gossip.GossipSimulator``: nodes on a graph, no server step."""

    def __init__(
        self,
        topology: str = "ring",
        gossip_steps: int = 1,
        gamma: float = 1.0,
        rule: Literal["weighted", "clip", "aggregator"] = "weighted",
        tau: float | None = None,
        clip_count: int = 1,
        p: float | None = None,
        local_steps: int = 1,
        client_optimizer: ClientOptimizer | None = None,
    ) -> None:
        self.topology = check_topology(topology, p=p)
        self.p = None if p is None else float(p)
        self.gossip_steps = check_int("gossip_steps", gossip_steps)
        self.gamma = check_positive("gamma", gamma)
        if self.gamma > 1:
            raise ValueError(f"gamma (the consensus step) must be in (0, 1], got {gamma!r}")
        if rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
        self.rule = rule
        if tau is not None and rule != "clip":
            raise ValueError(f"tau is the clipping radius of rule 'clip'; rule {rule!r} takes none")
        self.tau = None if tau is None else check_positive("tau", tau)
        self.clip_count = check_int("clip_count", clip_count, minimum=1)
        if self.clip_count != 1 and (rule != "clip" or tau is not None):
            raise ValueError("clip_count is for rule 'clip' with the adaptive radius (tau unset) only")
        self.local_steps = check_int("local_steps", local_steps, minimum=1)
        self.client_optimizer = client_optimizer or ClientOptimizer()

    def init_client_state(self, params: Tensor) -> State:
        return {"model": params.clone()}

    def broadcast(self, params: Tensor, server_state: State, round: int) -> State:
        return {}  # no server: nothing is broadcast

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        """``local_steps`` client-optimizer steps from the node's own model; the message is the new model
        (the gossip phase reads it), the loss that of the first step."""
        local, buffer, first = state["model"], None, None
        for step in range(self.local_steps):
            grad, loss = grad_fn(local, xs[step], ys[step])
            local, buffer = self.client_optimizer.step(local, grad, buffer, lr)
            first = loss if first is None else first
        assert first is not None
        return ClientOutput(local, {"model": local}, first)

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
        raise ValueError(
            "gossip is decentralised and has no server step: run it with "
            "robustfl.engine.gossip.GossipSimulator (a config with [algorithm] name = 'gossip' does)"
        )


__all__ = ["RULES", "Gossip"]
