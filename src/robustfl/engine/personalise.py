"""Per-client accuracy on held-out client data, and the personalisation phase.

:class:`ClientEvaluation` measures, at an evaluation of federated training, each honest client's accuracy
on its own held-out split (``robustfl.data.holdout``): first of the global model, then — at the rounds
its :class:`Personalisation` is due — of the personalised models, which every client computes from the
global model with its own training split (``robustfl.algorithms.personalise``: local fine-tuning, or
weighted gradient averaging with bias correction). Both are reported as the mean over the clients
(each client counts once, whatever its size) and the worst 10% (the mean of the lowest
``ceil(0.1 k)`` of the ``k`` accuracies):

| key | what |
|---|---|
| ``client_accuracy_mean`` / ``client_accuracy_worst10`` | the global model on each client's test split |
| ``personal_accuracy_mean`` / ``personal_accuracy_worst10`` | each client's personalised model on it |
| ``personal_seconds`` | wall time of the personalisation phase |

The phase runs the client step through the simulator's own executor (``vmap`` over clients in chunks,
or the loop), so it is vectorised exactly as a training round. Its minibatches come from each client's
training split with the ``sample`` stream under the tag ``personalise`` (per client and round, so they
differ from the training rounds' draws and do not shift them), its dropout masks from the ``dropout``
stream under the same tag; it simulates no attack. Byzantine clients (the fixed ids; none with
``resample``) neither personalise, nor collaborate, nor count in the per-client metrics. Module
buffers (batch-norm running statistics) are restored afterwards, so the global model and the rest of
the run are unchanged; personalised models are not kept.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from robustfl.algorithms.personalise import PersonalisationStep, WeightedAveraging, worst_fraction_mean
from robustfl.checks import check_int, check_positive

WORST = 0.1
"""The share of clients the worst-case metric averages over (the lowest decile)."""


class Personalisation:
    """The phase: ``step`` (a personalisation client step) at ``lr`` with minibatches of ``batch_size``,
    due after round ``final_round`` and, with ``every``, after every round that is a multiple of it.

    With weighted averaging each collaborator contributes the first ``collaborator_batch_size`` samples
    of its own minibatch of the step (default: all ``batch_size``) to the shared batch at which every
    personalising client evaluates the clients' mean gradient: a step then costs ``batch_size + m *
    collaborator_batch_size`` sample gradients per client, ``m`` the number of collaborators.
    """

    def __init__(
        self,
        step: PersonalisationStep,
        lr: float,
        batch_size: int,
        final_round: int,
        every: int | None = None,
        collaborator_batch_size: int | None = None,
    ) -> None:
        self.step = step
        self.lr = check_positive("lr", lr)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.collaborator_batch_size = (
            self.batch_size
            if collaborator_batch_size is None
            else check_int("collaborator_batch_size", collaborator_batch_size, minimum=1)
        )
        if self.collaborator_batch_size > self.batch_size:
            raise ValueError(
                f"collaborator_batch_size = {self.collaborator_batch_size} exceeds batch_size = "
                f"{self.batch_size}: a collaborator contributes part of its own minibatch"
            )
        self.final_round = check_int("final_round", final_round, minimum=1)
        self.every = None if every is None else check_int("every", every, minimum=1)

    def due(self, round: int) -> bool:
        """Whether the evaluation after ``round`` completed rounds personalises."""
        return round == self.final_round or (self.every is not None and round % self.every == 0)

    def run(self, sim: Any, ids: Tensor) -> Tensor:
        """The personalised models ``[m, d]`` of the clients ``ids`` from ``sim``'s global model."""
        steps, m, r = self.step.local_steps, len(ids), int(sim.round)
        idx = sim.sampler.sample(ids, r, steps, self.batch_size, "personalise").to(sim.device)
        shared = {"params": sim.params}
        if isinstance(self.step, WeightedAveraging) and self.step.alpha > 0:
            b = self.collaborator_batch_size
            together = idx[:, :, :b].transpose(0, 1).reshape(steps, m * b)  # [steps, m b]
            shared |= {"xc": sim.x_store[together], "yc": sim.y_store[together]}
        one = self.step.init_client_state(sim.params)
        states = {k: v.unsqueeze(0).repeat_interleave(m, 0) for k, v in one.items()}
        buffers = {k: v.clone() for k, v in sim.model.named_buffers()}
        was_training = sim.model.training
        sim.model.train()
        try:
            with torch.random.fork_rng(devices=[sim.device] if sim.device.type == "cuda" else []):
                torch.manual_seed(sim.streams.seed_of("dropout", "personalise", r))
                out = sim.executor.run(
                    self.step, sim.flat, shared, sim.x_store[idx], sim.y_store[idx], states, self.lr
                )
        finally:
            with torch.no_grad():
                for k, v in sim.model.named_buffers():
                    v.copy_(buffers[k])
            sim.model.train(was_training)
        models = out.message  # one part: the personalised models [m, d]
        assert isinstance(models, Tensor)
        return models.detach()


class ClientEvaluation:
    """Per-client accuracy on ``test_parts`` (indices into ``sim.x_store``, one tensor per client) of the
    global model, and of the personalised models when ``personalisation`` is due (module docstring)."""

    def __init__(self, test_parts: list[Tensor], personalisation: Personalisation | None = None) -> None:
        if not test_parts or any(p.numel() == 0 for p in test_parts):
            raise ValueError(
                "per-client evaluation needs a non-empty test split for every client: "
                "set data.client_test_fraction > 0"
            )
        self.test_parts = [p.to(torch.long) for p in test_parts]
        self.personalisation = personalisation

    def honest_ids(self, sim: Any) -> Tensor:
        """The clients that are never Byzantine (all of them when the ids are redrawn every round)."""
        ids = torch.arange(len(self.test_parts))
        schedule = sim.byzantine
        if schedule.f == 0 or schedule.resample:
            return ids
        byz = schedule.byzantine_ids(len(self.test_parts), sim.streams, 0).cpu()
        return ids[~torch.isin(ids, byz)]

    @torch.no_grad()
    def accuracies(self, sim: Any, ids: Tensor, models: Tensor | None = None) -> Tensor:
        """Accuracy of each client of ``ids`` on its own test split: with the global model, or with row
        ``k`` of ``models`` for client ``ids[k]``."""
        was_training = sim.model.training
        sim.model.eval()
        try:
            out = []
            for k, i in enumerate(ids.tolist()):
                part = self.test_parts[i].to(sim.device)
                params = sim.params if models is None else models[k]
                logits = sim.flat.logits(params, sim.x_store[part])
                out.append((logits.argmax(dim=1) == sim.y_store[part]).double().mean())
        finally:
            sim.model.train(was_training)
        return torch.stack(out).cpu()

    def evaluate(self, sim: Any) -> dict[str, float]:
        """The metrics of the module docstring for the simulator's current global model."""
        ids = self.honest_ids(sim)
        acc = self.accuracies(sim, ids)
        out = {
            "client_accuracy_mean": float(acc.mean()),
            "client_accuracy_worst10": worst_fraction_mean(acc, WORST),
        }
        phase = self.personalisation
        if phase is not None and phase.due(int(sim.round)):
            start = time.perf_counter()
            models = phase.run(sim, ids)
            personal = self.accuracies(sim, ids, models)
            out |= {
                "personal_accuracy_mean": float(personal.mean()),
                "personal_accuracy_worst10": worst_fraction_mean(personal, WORST),
                "personal_seconds": time.perf_counter() - start,
            }
        return out
