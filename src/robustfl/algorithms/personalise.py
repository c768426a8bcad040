"""Personalisation after federated training: each client adapts the global model to its own data.

Two client computations, each a pure client step on the engine contract so the engine's executors
(``vmap`` over clients, or the loop) run them unchanged:

* :class:`FineTune` — ``steps`` SGD steps from the global model ``x`` on the client's own minibatches:
  ``x_j <- x_j - lr * g_j(x_j)``.
* :class:`WeightedAveraging` — the scheme of Chayti, Karimireddy, Stich, Flammarion & Jaggi, "Linear
  speedup in personalized collaborative learning", arXiv:2111.05968 (2021), as stated in M. Jaggi's
  talk "Learning with strange gradients" (slide "Personalized learning / optimization"). Client ``0``
  (the one personalising) steps on a weighted average of every client's gradient at its own model::

      weighted gradient averaging:   x <- x - lr * sum_i alpha_i g_i(x)
      with bias correction:          x <- x - lr * sum_i (alpha_i g_i(x) + c_i)

  where ``c_i`` estimates ``alpha_i (grad f_0(x) - grad f_i(x))``, learnt by an exponential moving
  average, so the step follows the client's own objective ``f_0`` with the variance of the average.

Readings of the talk we had to choose (the talk gives the two update rules only):

1. **Weights.** One scalar ``alpha`` in ``[0, 1]``: ``alpha_i = (1 - alpha) [i = 0] + alpha / n`` over
   the ``n`` clients (client 0 included), i.e. ``(1 - alpha)`` times the own gradient plus ``alpha``
   times the clients' plain mean (uniform, as FedAvg's default ``weighting``). ``alpha = 0`` is local
   SGD (:class:`FineTune` exactly), ``alpha = 1`` without correction steps on the federated objective
   ``(1/n) sum_i f_i`` (every client then computes the same model).
2. **Correction.** The slide adds ``c_i`` outside the weight, so ``c_i`` carries it:
   ``c_i = alpha_i m_i`` with ``m_i <- (1 - beta) m_i + beta (g_0(x) - g_i(x))``, ``m_i = 0`` at the
   start (a plain EMA, no start-up debiasing). Only ``sum_i c_i`` enters the step and the weights sum
   to one, so we keep the single vector ``c = sum_i alpha_i m_i``, itself the EMA of
   ``g_0 - G`` with ``G = sum_i alpha_i g_i``. ``c`` is updated with the step's gradients *before*
   the step, so ``beta = 1`` is local SGD again and ``beta -> 0`` weighted averaging.
3. **Samples.** The bias estimate reuses the step's minibatches (the paper's analysis may draw them
   independently: twice the gradients). In a step, each collaborator draws one minibatch and every
   personalising client evaluates its gradient there (the gradient of the mean loss over the
   concatenated batches; equal batch sizes make it the clients' mean gradient); client 0's own
   gradient is on its own minibatch, which it contributes to the average too (whole, or its first
   ``collaborator_batch_size`` samples: the engine's knob on the ``n``-fold cost of the average).
4. **Output.** Plain SGD (no momentum) from the global model for ``steps`` steps; the last iterate is
   the personalised model (the theorem's ``x_out`` is a randomly chosen iterate).

Neither step changes the global model: :meth:`server_step` returns it unchanged (personalised models
stay with their clients). They are not training algorithms and so are not in ``ALGORITHMS``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustfl.algorithms.base import (
    Aggregators,
    Algorithm,
    ClientOutput,
    Cohort,
    GradFn,
    Messages,
    ServerOutput,
    State,
)
from robustfl.checks import check_fraction, check_int

METHODS = ("finetune", "weighted")


def correction_update(correction: Tensor, own: Tensor, weighted: Tensor, beta: float) -> Tensor:
    """One EMA step of the summed correction ``c = sum_i alpha_i m_i`` (reading 2):
    ``c <- (1 - beta) c + beta (g_0 - sum_i alpha_i g_i)``."""
    return (1 - beta) * correction + beta * (own - weighted)


def worst_fraction_mean(values: Tensor, fraction: float = 0.1) -> float:
    """Mean of the lowest ``ceil(fraction * k)`` of the ``k`` values (at least one): with
    ``fraction = 0.1`` the "worst 10%" of per-client accuracies (the lowest decile; 2 of 20 clients)."""
    fraction = check_fraction("fraction", fraction)
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"values must be a non-empty 1-D tensor, got shape {tuple(values.shape)}")
    k = max(1, math.ceil(fraction * values.numel() - 1e-9))
    return float(values.double().sort().values[:k].mean())


class PersonalisationStep(Algorithm):
    """What both personalisation steps share: the broadcast is the global model (plus the
    collaborators' batches), the upload is the personalised model, the server keeps the global one."""

    parts = ("model",)

    def __init__(self, steps: int) -> None:
        self.local_steps = check_int("steps", steps, minimum=1)

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
        """Personalised models stay with their clients: the global model is unchanged."""
        return ServerOutput(params, state)


class FineTune(PersonalisationStep):
    """``steps`` SGD steps from the global model on the client's own minibatches (local fine-tuning)."""

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        x, first = shared["params"], None
        for t in range(self.local_steps):
            g, loss = grad_fn(x, xs[t], ys[t])
            x = x - lr * g
            first = loss if first is None else first
        assert first is not None
        return ClientOutput(x, state, first)


class WeightedAveraging(PersonalisationStep):
    """Weighted gradient averaging, with bias correction when ``correction`` (module docstring).

    The broadcast must also hold the collaborators' minibatches of every step: ``shared["xc"]:
    [steps, n B, ...]`` and ``shared["yc"]: [steps, n B]`` (the ``n`` clients' batches concatenated,
    the client's own among them). Client state: ``{"correction": c}``, zero at the start.
    """

    def __init__(self, steps: int, alpha: float = 0.5, correction: bool = True, beta: float = 0.1) -> None:
        super().__init__(steps)
        self.alpha = check_fraction("alpha", alpha)
        if not isinstance(correction, bool):
            raise ValueError(f"correction must be true or false, got {correction!r}")
        self.correction = correction
        self.beta = check_fraction("beta", beta)
        if correction and self.beta == 0:
            raise ValueError("beta must be > 0 with correction = true (beta = 0 never learns c)")

    def init_client_state(self, params: Tensor) -> State:
        return {"correction": torch.zeros_like(params)} if self.correction else {}

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        x, first = shared["params"], None
        c = state.get("correction")
        for t in range(self.local_steps):
            own, loss = grad_fn(x, xs[t], ys[t])
            if self.alpha > 0:
                mean, _ = grad_fn(x, shared["xc"][t], shared["yc"][t])
                weighted = (1 - self.alpha) * own + self.alpha * mean
            else:
                weighted = own
            if c is not None:
                c = correction_update(c, own, weighted, self.beta)
                weighted = weighted + c
            x = x - lr * weighted
            first = loss if first is None else first
        assert first is not None
        return ClientOutput(x, {} if c is None else {"correction": c}, first)


def make_step(method: str, steps: int, alpha: float, correction: bool, beta: float) -> PersonalisationStep:
    """The client step of ``method`` (``finetune`` or ``weighted``)."""
    if method == "finetune":
        return FineTune(steps)
    if method == "weighted":
        return WeightedAveraging(steps, alpha=alpha, correction=correction, beta=beta)
    raise ValueError(f"personalise method must be one of {', '.join(METHODS)}, got {method!r}")


__all__ = [
    "METHODS",
    "FineTune",
    "PersonalisationStep",
    "WeightedAveraging",
    "correction_update",
    "make_step",
    "worst_fraction_mean",
]
