"""C-RSA: RSA with rand-l compressed broadcasts and ternary uploads (seed 001, eqs. 8–9, Algorithm 1).

Round ``t`` (``alpha`` = the round's lr, ``omega_t`` = ``l`` coordinates drawn from one seed):

    master broadcasts C(x_0) = P_omega(x_0): the l kept values of x_0 and the seed of omega
    worker (eq. 8):   x_k <- x_k - alpha * (grad f(x_k, xi_k) + lambda * P_omega(sign(x_k - C(x_0))))
    worker sends      P_omega(sign(C(x_0) - x_k))            (l ternary values in {-1, 0, +1})
    master (eq. 9):   x_0 <- x_0 - alpha * (mu * x_0 + lambda * sum_k P_omega(sign(msg_k)))

``gamma = l / d`` is the compression ratio; ``E_omega P_omega(sign(v)) = gamma * sign(v)`` (eqs. 18–19),
so C-RSA follows RSA's penalty scaled by ``gamma`` (eqs. 20–21). With ``gamma = 1`` it is RSA.

Wire format, exactly: the broadcast is ``32 l + 63`` bits (``l`` float32 values and the 63-bit mask
seed, as RandL's shared seed); an upload is the ``l`` kept coordinates only (the message is
``Tensor[l]``, in the order of ``omega``), ``2 l`` bits (one ternary symbol per coordinate at 2 bits,
as ``RandL(sign=True)``), reported through :meth:`message_bits`. The broadcast dict also carries the
indices ``omega`` for the simulation's convenience; they are not counted (the seed regenerates them).

Readings the seed leaves open, written down:

* the master draws ``omega_t`` from ``derive_seed(seed, "c-rsa", t)``, one fresh uniform ``l``-subset per
  round, the same for every worker (Definition 1's rand-l with a shared seed);
* Byzantine workers "must follow the compression rule" (Alg. 1): the master reads *any* received row
  as ternary, ``sign(msg)`` (a NaN counts as 0), so a Byzantine worker can send no more than an
  arbitrary ternary vector on ``omega``. The engine's attacks act on the uploaded ternary message, which
  for sign-flipping is exactly the paper's "negate the true message"; a Gaussian message becomes random
  signs; a large-number message keeps the true signs (harmless after ``sign``);
* ``l = max(1, round(gamma * d))``; synchronous rounds as in :mod:`robustfl.algorithms.rsa`;
* a compressor configured on top is applied to the ternary rows as to any message (not needed: the
  upload is already 2 bits per value; leave ``compressor`` unset).
"""

from __future__ import annotations

import torch
from torch import Tensor

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
from robustfl.algorithms.rsa import RSA
from robustfl.checks import check_int
from robustfl.compressors.sparse import SEED_BITS, mask_from_seed
from robustfl.utils import derive_seed

TERNARY_BITS = 2


@ALGORITHMS.register("c-rsa", "crsa")
class CRSA(RSA):
    """C-RSA with ratio ``gamma = l / d`` (default 0.5), penalty ``lam`` and regulariser ``mu``."""

    name = "c-rsa"

    def __init__(self, gamma: float = 0.5, lam: float = 0.001, mu: float = 0.01, seed: int = 0) -> None:
        super().__init__(lam=lam, mu=mu)
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0 < gamma <= 1:
            raise ValueError(f"gamma (= l / d) must be in (0, 1], got {gamma!r}")
        self.gamma = float(gamma)
        self.seed = check_int("seed", seed)

    def kept(self, d: int) -> int:
        """``l`` for a model of ``d`` parameters."""
        return max(1, min(d, round(self.gamma * d)))

    def round_seed(self, round: int) -> int:
        return derive_seed(self.seed, "c-rsa", round)

    def omega(self, d: int, round: int) -> Tensor:
        """The sorted coordinates ``omega_t`` kept in round ``round``."""
        return mask_from_seed(self.round_seed(round), d, self.kept(d))

    def broadcast(self, params: Tensor, server_state: State, round: int) -> State:
        idx = self.omega(params.numel(), round).to(params.device)
        return {"values": params[idx], "index": idx}

    def broadcast_bits(self, shared: State) -> int:
        values = shared["values"]
        return 8 * values.element_size() * values.numel() + SEED_BITS

    def message_bits(self, parts: dict[str, Tensor]) -> int:
        return TERNARY_BITS * sum(v.numel() for v in parts.values())

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        idx, cx0 = shared["index"], shared["values"]
        xk = state["model"]
        grad, loss = grad_fn(xk, xs[0], ys[0])
        message = torch.sign(cx0 - xk[idx])  # P_omega(sign(C(x_0) - x_k)) on the l kept coordinates
        penalty = torch.zeros_like(xk).index_add(0, idx, -message)  # P_omega(sign(x_k - C(x_0)))
        new = xk - lr * (grad + self.lam * penalty)
        return ClientOutput(message, {"model": new}, loss, {"distance_l1": (cx0 - xk[idx]).abs().sum()})

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
        idx = self.omega(params.numel(), round).to(params.device)
        if messages.shape[1] != idx.numel():
            raise ValueError(f"c-rsa messages must have l = {idx.numel()} values, got {messages.shape[1]}")
        votes = torch.sign(messages).nan_to_num(nan=0.0).sum(0)
        sign_sum = torch.zeros_like(params).index_add(0, idx, votes.to(params))
        return ServerOutput(self.master_step(params, sign_sum, lr), state)
