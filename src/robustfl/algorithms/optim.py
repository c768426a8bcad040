"""Functional optimizers of the training recipe: explicit state, one kernel, any runtime.

* :class:`ClientOptimizer` — what a client does with a minibatch gradient: clip its norm (LSTMs), add
  weight decay ``wd * x``, and for local steps take an SGD step with (heavy-ball or Nesterov) momentum.
  The momentum buffer starts at zero every round (a client's local optimizer is re-created each round,
  as in FedAvg's reference implementation; McMahan et al., AISTATS 2017).
* server optimizers (``SERVER_OPTIMIZERS``) — how the server applies the aggregate ``u`` (a gradient for
  distributed SGD, the model delta for FedAvg), ``x <- x - lr * step(u)``: ``sgd`` with momentum
  (FedAvgM; Hsu et al., 2019), and ``adam``, ``yogi``, ``adagrad`` (FedOpt; Reddi et al., ICLR 2021,
  Algorithm 2, with their adaptivity ``tau``). Their state lives in the server state under
  ``opt.<name>`` keys, so checkpoints and the distributed runtime carry it like any other state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from robustfl.checks import check_fraction, check_positive
from robustfl.registry import Configurable, Registry

State = dict[str, Tensor]


class ClientOptimizer(Configurable):
    """Local-step optimizer: ``g <- clip(g); g <- g + wd x; b <- mu b + g; x <- x - lr (g + mu b | b)``.

    ``clip_norm`` bounds ``||g||_2`` (``None``: no clipping); ``momentum`` in ``[0, 1)``;
    ``nesterov`` uses ``g + mu b`` as the step direction.
    """

    def __init__(
        self,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        clip_norm: float | None = None,
    ) -> None:
        self.momentum = check_fraction("momentum", momentum, upper_open=True)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        if not isinstance(nesterov, bool):
            raise ValueError(f"nesterov must be true or false, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        self.nesterov = nesterov
        self.clip_norm = None if clip_norm is None else check_positive("clip_norm", clip_norm)

    @property
    def is_plain(self) -> bool:
        """Whether the optimizer is plain SGD (no clipping, decay or momentum)."""
        return self.momentum == 0 and self.weight_decay == 0 and self.clip_norm is None

    def gradient(self, grad: Tensor, params: Tensor) -> Tensor:
        """The gradient a step uses: clipped to ``clip_norm``, plus weight decay (vmappable)."""
        if self.clip_norm is not None:
            norm = torch.linalg.vector_norm(grad)
            grad = grad * torch.clamp(self.clip_norm / (norm + 1e-12), max=1.0)
        if self.weight_decay:
            grad = grad + self.weight_decay * params
        return grad

    def step(
        self, params: Tensor, grad: Tensor, buffer: Tensor | None, lr: float
    ) -> tuple[Tensor, Tensor | None]:
        """One local step; ``buffer`` is the momentum buffer (``None`` before the first step)."""
        g = self.gradient(grad, params)
        if self.momentum == 0:
            return params - lr * g, None
        buffer = g if buffer is None else self.momentum * buffer + g
        direction = g + self.momentum * buffer if self.nesterov else buffer
        return params - lr * direction, buffer


class ServerOptimizer(Configurable, ABC):
    """``x <- x - lr * direction(u)`` with explicit state (``init_state`` / ``step``)."""

    key: str = "opt"

    def init_state(self, params: Tensor) -> State:
        return {}

    @abstractmethod
    def step(self, params: Tensor, update: Tensor, state: State, lr: float) -> tuple[Tensor, State]:
        """Apply the aggregate ``update`` with step size ``lr``; return new parameters and state."""


SERVER_OPTIMIZERS: Registry[ServerOptimizer] = Registry("server optimizer")


@SERVER_OPTIMIZERS.register("sgd")
class ServerSGD(ServerOptimizer):
    """``b <- mu b + u; x <- x - lr b`` (``mu = 0``: plain step; FedAvgM with ``mu > 0``)."""

    def __init__(self, momentum: float = 0.0, nesterov: bool = False) -> None:
        self.momentum = check_fraction("momentum", momentum, upper_open=True)
        if not isinstance(nesterov, bool) or (nesterov and self.momentum == 0):
            raise ValueError(f"nesterov must be a bool and needs momentum > 0, got {nesterov!r}")
        self.nesterov = nesterov

    def init_state(self, params: Tensor) -> State:
        return {"opt.momentum": torch.zeros_like(params)} if self.momentum else {}

    def step(self, params: Tensor, update: Tensor, state: State, lr: float) -> tuple[Tensor, State]:
        if not self.momentum:
            return params - lr * update, state
        b = self.momentum * state["opt.momentum"] + update
        direction = update + self.momentum * b if self.nesterov else b
        return params - lr * direction, {**state, "opt.momentum": b}


class _Adaptive(ServerOptimizer):
    """FedOpt's adaptive server step (Reddi et al. 2021, Alg. 2): ``m <- b1 m + (1 - b1) u``,
    ``v`` by the subclass's rule, ``x <- x - lr m / (sqrt(v) + tau)``."""

    def __init__(self, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3) -> None:
        self.beta1 = check_fraction("beta1", beta1, upper_open=True)
        self.beta2 = check_fraction("beta2", beta2, upper_open=True)
        self.tau = check_positive("tau", tau)

    def init_state(self, params: Tensor) -> State:
        return {"opt.m": torch.zeros_like(params), "opt.v": torch.full_like(params, self.tau**2)}

    @abstractmethod
    def second_moment(self, v: Tensor, u2: Tensor) -> Tensor: ...

    def step(self, params: Tensor, update: Tensor, state: State, lr: float) -> tuple[Tensor, State]:
        m = self.beta1 * state["opt.m"] + (1 - self.beta1) * update
        v = self.second_moment(state["opt.v"], update * update)
        return params - lr * m / (v.sqrt() + self.tau), {**state, "opt.m": m, "opt.v": v}


@SERVER_OPTIMIZERS.register("adam")
class ServerAdam(_Adaptive):
    """FedAdam: ``v <- b2 v + (1 - b2) u^2``."""

    def second_moment(self, v: Tensor, u2: Tensor) -> Tensor:
        return self.beta2 * v + (1 - self.beta2) * u2


@SERVER_OPTIMIZERS.register("yogi")
class ServerYogi(_Adaptive):
    """FedYogi: ``v <- v - (1 - b2) u^2 sign(v - u^2)``."""

    def second_moment(self, v: Tensor, u2: Tensor) -> Tensor:
        return v - (1 - self.beta2) * u2 * torch.sign(v - u2)


@SERVER_OPTIMIZERS.register("adagrad")
class ServerAdagrad(_Adaptive):
    """FedAdagrad: ``v <- v + u^2`` (``beta1`` applies to ``m``; ``beta2`` is unused)."""

    def second_moment(self, v: Tensor, u2: Tensor) -> Tensor:
        return v + u2


def make_server_optimizer(spec: ServerOptimizer | str | None, **params: object) -> ServerOptimizer:
    """A server optimizer from an instance, a registry name, or ``None`` (plain SGD)."""
    if isinstance(spec, ServerOptimizer):
        return spec
    return SERVER_OPTIMIZERS.get(spec or "sgd", **params)
