"""Executors: run one algorithm's client step for a batch of clients (the local-compute phase).

An executor takes the broadcast ``shared``, the clients' minibatches ``xs: Tensor[m, steps, B, ...]``,
``ys: Tensor[m, steps, B]`` and their states (each ``Tensor[m, ...]``) and returns the batched
:class:`~robustfl.algorithms.base.ClientOutput`: every message part ``Tensor[m, d]``, the new states,
the losses ``Tensor[m]`` and the per-client metrics ``Tensor[m]``.

* :class:`VmapExecutor` — ``torch.func.vmap`` over clients in chunks (one batched call per chunk);
* :class:`LoopExecutor` — a Python loop with ``torch.autograd.grad`` (any model: batch norm in
  training mode, fused LSTMs).

Both compute the same math. The distributed runtime runs one of them over its own share of clients, so
a third placement needs no change to any algorithm (FedJAX's ``for_each_client`` is the model).
"""

from __future__ import annotations

import functools
from typing import Protocol

import torch
from torch import Tensor
from torch.func import vmap

from robustfl.algorithms.base import Algorithm, ClientOutput, State
from robustfl.checks import check_int
from robustfl.engine.functional import FlatModel


class Executor(Protocol):
    """Runs ``algorithm.client_step`` for ``m`` clients (see the module docstring)."""

    def run(
        self,
        algorithm: Algorithm,
        flat: FlatModel,
        shared: State,
        xs: Tensor,
        ys: Tensor,
        states: State,
        lr: float,
    ) -> ClientOutput: ...


class VmapExecutor:
    """``vmap`` over clients, ``clients_per_call`` at a time (it changes speed and rounding only)."""

    def __init__(self, clients_per_call: int = 10) -> None:
        self.clients_per_call = check_int("clients_per_call", clients_per_call, minimum=1)

    def run(
        self,
        algorithm: Algorithm,
        flat: FlatModel,
        shared: State,
        xs: Tensor,
        ys: Tensor,
        states: State,
        lr: float,
    ) -> ClientOutput:
        step = functools.partial(algorithm.client_step, lr=lr, grad_fn=flat.vmap_grad_fn())
        batched = vmap(
            step, in_dims=(None, 0, 0, 0), randomness="different", chunk_size=self.clients_per_call
        )
        out: ClientOutput = batched(shared, xs, ys, states)
        return ClientOutput(*out)

    def __repr__(self) -> str:
        return f"VmapExecutor(clients_per_call={self.clients_per_call})"


class LoopExecutor:
    """One client at a time with ``torch.autograd.grad``."""

    def run(
        self,
        algorithm: Algorithm,
        flat: FlatModel,
        shared: State,
        xs: Tensor,
        ys: Tensor,
        states: State,
        lr: float,
    ) -> ClientOutput:
        grad_fn = flat.loop_grad_fn()
        outs = [
            algorithm.client_step(shared, xs[i], ys[i], {k: v[i] for k, v in states.items()}, lr, grad_fn)
            for i in range(xs.shape[0])
        ]
        return stack_outputs(outs)

    def __repr__(self) -> str:
        return "LoopExecutor()"


def stack_outputs(outs: list[ClientOutput]) -> ClientOutput:
    """Stack per-client outputs into one batched :class:`ClientOutput`."""
    first = outs[0]
    if isinstance(first.message, dict):
        message: Tensor | dict[str, Tensor] = {
            k: torch.stack([o.message[k] for o in outs])  # type: ignore[index]
            for k in first.message
        }
    else:
        message = torch.stack([o.message for o in outs])  # type: ignore[misc]
    return ClientOutput(
        message,
        {k: torch.stack([o.state[k] for o in outs]) for k in first.state},
        torch.stack([o.loss for o in outs]),
        {k: torch.stack([o.metrics[k] for o in outs]) for k in first.metrics},
    )
