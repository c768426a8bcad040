"""Masked / alternating partial training: a core sub-network trained with partial gradients.

Seed 002 (Jaggi, "Learning with Strange Gradients", slide "Alternating Partial Training for Neural
Nets") cites Mohtashami, Jaggi and Stich, "Masked Training of Neural Networks with Partial Gradients"
(AISTATS 2022, arXiv:2106.08895) and AC/DC (Peste, Iofinova, Vladu and Alistarh, "AC/DC: Alternating
Compressed/DeCompressed Training of Deep Neural Networks", NeurIPS 2021), and states convergence on
the original ("parent") network and on the smaller core network at the rate
``O(sqrt(q^4 L F_0 sigma^2 / T))``, with ``q`` the "gradient alignment" between parent and core.

Round ``t`` with global (parent) model ``x``, core mask ``m`` (a 0/1 vector over the flat parameters):

    dense round:   FedAvg — local steps y <- y - lr * opt(grad f_i(y)) from y_0 = x, message x - y
    masked round:  the core network x (.) m trains on the mask's support only:
                   y_0 = x (.) m,  y <- y - lr * opt(m (.) grad f_i(y)),  message m (.) (x - y)
    server:        x <- x - server_lr * step(agg(messages)); in masked rounds only the support moves,
                   x <- m (.) x_new + (1 - m) (.) x  (off-core weights frozen; ``prune``: set to 0)

Schedule (``warmup_rounds`` W, ``masked_rounds`` M, ``dense_rounds`` D): rounds ``t < W`` are dense, then
cycles of M masked rounds followed by D dense rounds (AC/DC's dense warm-up, then compressed and
decompressed phases in turn; end a run inside a masked phase for a sparse final model). ``M = 0``
is FedAvg; ``density = 1`` too, bit for bit (tested).

The mask, as AC/DC: per layer, the ``ceil(density * numel)`` weights of largest magnitude of the server
model (ties to the lower index). Only parameters of two or more dimensions (conv / linear weights)
are masked; biases and normalisation parameters always belong to the core (AC/DC does not prune
them). Without ``shapes`` the whole vector is one layer. The mask follows the server model in every
dense round (the core the model would have now: its accuracy and ``q`` are reported) and is frozen
through a masked phase: refreshed from the server model at the start of each masked phase.

Readings the seed leaves open, written down:

* "partial gradients" (Mohtashami et al.): the gradient is the *core network's* — at ``x (.) m``, the
  off-core weights zeroed in the forward pass — restricted to the support, and it updates the parent's
  support coordinates; the parent keeps its off-core weights (``prune = False``, default). AC/DC prunes
  them: ``prune = True`` zeroes the off-core weights of the server model after every masked round,
  so dense phases regrow them from zero (Peste et al., §3).
* ``q``: the talk gives no formula. We read it off the rate's ``q^4 = (q^2)^2`` factor, the constant of
  the descent step: ``<g, g~> >= ||g||^2 / q^2`` for the parent gradient ``g = grad f_i(x; xi)`` and the
  core's partial gradient ``g~ = m (.) grad f_i(x (.) m; xi)`` on the same minibatch ``xi``. Each client
  reports, at the broadcast model and on its first minibatch of the round, ``alignment = <g, g~> /
  ||g||^2`` (``= 1 / q^2``) and ``grad_cosine = cos(g, g~)``; the engine averages them over the honest
  clients, and the round's ``q = alignment^(-1/2)`` of that mean (a per-client ``q`` would be infinite
  whenever one client's partial gradient does not descend, ``alignment <= 0``, which happens). A full
  mask gives ``alignment = 1`` exactly. Without perturbation (``g~ = m (.) g``),
  ``alignment = ||m (.) g||^2 / ||g||^2 = cos^2``. The diagnostic costs one extra gradient per client
  and round (``track_alignment = False`` skips it; with dropout it draws one more mask after the
  local steps, so training is unchanged).
* wire: the broadcast is the parent (32 bits per value, it is needed for ``g``) plus, in masked rounds,
  the mask as a ``d``-bit bitmap (a client sampled mid-phase cannot recompute it); in dense rounds the
  mask is the top-k of the broadcast model, which a client can compute itself, and costs nothing.
  A masked round's upload is the ``K = |m|`` support values only (:meth:`upload_support`: both ends
  know the mask): ``32 K`` bits per client without a compressor, and a configured compressor encodes
  the ``K``-vector (top-k's indices are over ``K``, a quantiser's levels count ``K`` values), Byzantine
  clients included. The server puts what it decodes back into zeros ``[d]``, so its aggregator and
  step see ``d``-wide rows. The compressor's per-client state stays ``d`` wide: error-feedback memory
  on the core is updated, the memory off the core is kept as it is through the masked phase (nothing
  is lost, only delayed: the next dense round sends it); a new core at the next masked phase is
  simply another support of the same ``d``-wide memory. A compressor that reads the layer structure
  (PowerSGD, ATOMO's SVD atoms, ``LayerWise``: a ``shapes`` parameter) cannot encode a bare support
  vector; it encodes the ``d``-wide message as before (an honest one is zero off the support), at its
  own exact bits, and the server step reads the aggregate's support only.
* the server reads only the support in masked rounds (``m (.) agg``), so nothing a Byzantine client
  puts off the core reaches the server; with a server optimizer that keeps momentum the off-core
  weights are still frozen (the step is applied on the support only).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from robustfl.aggregators.base import Aggregator
from robustfl.algorithms.base import (
    ALGORITHMS,
    Aggregators,
    ClientOutput,
    Cohort,
    GradFn,
    Messages,
    ServerOutput,
    State,
)
from robustfl.algorithms.fedavg import FedAvg
from robustfl.algorithms.optim import ClientOptimizer, ServerOptimizer
from robustfl.checks import check_int
from robustfl.compressors.layers import parse_shapes

MASK = "masked.mask"
"""Server-state key of the current core mask (``Tensor[d]`` bool)."""


@ALGORITHMS.register("masked", "acdc", "partial")
class MaskedTraining(FedAvg):
    """FedAvg alternating dense rounds and masked rounds on a top-``density`` core (module docstring)."""

    name = "masked"

    def __init__(
        self,
        density: float = 0.1,
        masked_rounds: int = 10,
        dense_rounds: int = 10,
        warmup_rounds: int = 0,
        prune: bool = False,
        track_alignment: bool = True,
        shapes: object = None,
        local_steps: int = 1,
        server_lr: float = 1.0,
        client_optimizer: ClientOptimizer | None = None,
        server_optimizer: ServerOptimizer | str | None = None,
        weighting: Literal["uniform", "data-size"] = "uniform",
    ) -> None:
        super().__init__(local_steps, server_lr, client_optimizer, server_optimizer, weighting)
        if isinstance(density, bool) or not isinstance(density, int | float) or not 0 < density <= 1:
            raise ValueError(
                f"density (the core's share of each layer's weights) must be in (0, 1], got {density!r}"
            )
        self.density = float(density)
        self.masked_rounds = check_int("masked_rounds", masked_rounds)
        self.dense_rounds = check_int("dense_rounds", dense_rounds)
        if self.masked_rounds + self.dense_rounds == 0:
            raise ValueError("masked_rounds + dense_rounds must be >= 1 (one cycle of the schedule)")
        self.warmup_rounds = check_int("warmup_rounds", warmup_rounds)
        for key, value in (("prune", prune), ("track_alignment", track_alignment)):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false, got {value!r}")
        self.prune = prune
        self.track_alignment = track_alignment
        self.shapes = None if shapes is None else parse_shapes(shapes)

    # ------------------------------------------------------------------------------------ schedule
    def is_masked(self, round: int) -> bool:
        """Whether round ``round`` (from 0) trains the core only."""
        if round < self.warmup_rounds:
            return False
        return (round - self.warmup_rounds) % (self.masked_rounds + self.dense_rounds) < self.masked_rounds

    def refreshes(self, round: int) -> bool:
        """Whether the mask used in ``round`` is the top-k of that round's server model: every dense
        round and the first round of each masked phase."""
        return not self.is_masked(round) or round == 0 or not self.is_masked(round - 1)

    # ---------------------------------------------------------------------------------------- mask
    def _layers(self, d: int) -> list[tuple[int, int]]:
        """``(offset, numel)`` of every masked layer (tensors of two or more dimensions)."""
        if self.shapes is None:
            return [(0, d)]
        layers, offset = [], 0
        for shape in self.shapes:
            numel = math.prod(shape)
            if len(shape) >= 2:
                layers.append((offset, numel))
            offset += numel
        if offset != d:
            raise ValueError(
                f"shapes describe {offset} parameters but the model has d = {d}: pass the model's shapes"
            )
        return layers

    def core_mask(self, params: Tensor) -> Tensor:
        """The core of ``params``: per masked layer its ``ceil(density * numel)`` largest magnitudes
        (ties to the lower index); every other parameter is kept."""
        mask = torch.ones_like(params, dtype=torch.bool)
        for offset, numel in self._layers(params.numel()):
            k = math.ceil(self.density * numel)
            if k >= numel:
                continue
            order = torch.argsort(params[offset : offset + numel].abs(), descending=True, stable=True)
            layer = torch.zeros(numel, dtype=torch.bool, device=params.device)
            layer[order[:k]] = True
            mask[offset : offset + numel] = layer
        return mask

    # ------------------------------------------------------------------------------------ contract
    def init_server_state(self, params: Tensor) -> State:
        return {**super().init_server_state(params), MASK: self.core_mask(params)}

    def broadcast(self, params: Tensor, server_state: State, round: int) -> State:
        masked = torch.tensor(self.is_masked(round), device=params.device)
        return {"params": params, "mask": server_state[MASK], "masked": masked}

    def broadcast_bits(self, shared: State) -> int:
        params = shared["params"]
        bitmap = params.numel() if bool(shared["masked"]) else 0
        return 8 * params.element_size() * params.numel() + bitmap

    def upload_support(self, shared: State) -> Tensor | None:
        """The core mask in masked rounds (the client sends its ``K`` support values); all in dense ones."""
        return shared["mask"] if bool(shared["masked"]) else None

    def evaluation_params(self, params: Tensor, server_state: State) -> dict[str, Tensor]:
        return {"core": torch.where(server_state[MASK], params, torch.zeros_like(params))}

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        x, core, masked = shared["params"], shared["mask"], shared["masked"]
        active = core | ~masked  # the coordinates trained this round: all of them in dense rounds
        zero = torch.zeros_like(x)
        local, buffer, first_loss, first_grad = torch.where(active, x, zero), None, None, None
        for step in range(self.local_steps):
            grad, loss = grad_fn(local, xs[step], ys[step])
            if first_grad is None:
                first_grad, first_loss = grad, loss
            local, buffer = self.client_optimizer.step(local, torch.where(active, grad, zero), buffer, lr)
        assert first_grad is not None and first_loss is not None  # local_steps >= 1
        delta = torch.where(active, x - local, zero)
        metrics = (
            self._alignment(x, core, masked, first_grad, xs[0], ys[0], grad_fn)
            if self.track_alignment
            else {}
        )
        return ClientOutput(delta, state, first_loss, metrics)

    def _alignment(
        self, x: Tensor, core: Tensor, masked: Tensor, first: Tensor, xb: Tensor, yb: Tensor, grad_fn: GradFn
    ) -> dict[str, Tensor]:
        """``alignment = <g, g~> / ||g||^2 = 1 / q^2`` and ``cos(g, g~)`` for the parent gradient ``g`` at
        ``x`` and the core's partial gradient ``g~ = m (.) grad f(x (.) m)`` on the minibatch ``xb``.
        ``first`` is the round's first gradient (the core's in masked rounds, the parent's in dense
        ones); the other one is computed here."""
        zero = torch.zeros_like(x)
        other, _ = grad_fn(torch.where(masked, x, torch.where(core, x, zero)), xb, yb)
        g = torch.where(masked, other, first)
        partial = torch.where(core, torch.where(masked, first, other), zero)
        inner, g2 = torch.dot(g, partial), torch.dot(g, g)
        cosine = inner / (g2.sqrt() * torch.linalg.vector_norm(partial))
        return {"alignment": inner / g2, "grad_cosine": cosine}

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
        mask = state[MASK]
        opt_state = {k: v for k, v in state.items() if k != MASK}
        update = self.aggregate(messages, aggregator, cohort)
        masked = self.is_masked(round)
        if masked:
            update = torch.where(mask, update, torch.zeros_like(update))
        new, opt_state = self.server_optimizer.step(params, update, opt_state, self.server_lr)
        if masked:
            new = torch.where(mask, new, torch.zeros_like(new) if self.prune else params)
        next_mask = self.core_mask(new) if self.refreshes(round + 1) else mask
        metrics = {"masked_round": float(masked), "core_density": float(next_mask.sum()) / params.numel()}
        return ServerOutput(new, {**opt_state, MASK: next_mask}, metrics)
