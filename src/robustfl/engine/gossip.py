"""The decentralised runner: nodes on a graph, local steps, then compressed robust gossip (no server).

:class:`GossipSimulator` is a :class:`~robustfl.engine.simulator.Simulator` whose round is

    plan (every node) → compute (the executor runs ``Gossip.client_step`` for all nodes: local steps
    on each node's own model, client state ``"model"``) → ``gossip_steps`` times:
    compress (``q_i = C(x_i - x̂_i)``, exact bits on every link) → attack (Byzantine edges) →
    aggregate (the neighbour rule, ``robustfl.engine.neighbours``) → update (``x_i += gamma (A_i - x̂_i)``)

with the math of :mod:`robustfl.algorithms.gossip` (CHOCO-SGD with robust neighbour aggregation).

Byzantine nodes (the ``[byzantine]`` schedule's ids, fixed for the run) compute and gossip like the
others, but on every link to an honest neighbour they send what the message attack says. The attack
works in model space and **per receiver**: for honest node ``i`` with Byzantine neighbours ``B_i``,
``z = attack(honest = [x̂_i, x̂_j for honest j in N(i)], f = |B_i|, own = [x̂_b for b in B_i])`` after the
step's honest messages arrived (an omniscient, rushing adversary that tailors each receiver's view, the
threat model of He, Karimireddy and Jaggi 2022). The Byzantine sender must use the wire format, so it
sends ``C(z_b - c_bi)`` where ``c_bi`` is ``i``'s copy of ``x̂_b``, and ``i`` adds it to that copy
(with the identity compressor the copy becomes ``z_b``). Byzantine nodes themselves receive honest
values. Randomness: the ``attack`` stream per (round, gossip step, receiver); honest messages from
each node's ``compress`` stream per (round, gossip step); the graph from the ``topology`` stream.

Bits (``RoundStats.bits_up``): every message on every directed link, ``sum_i deg_i bits(q_i)`` plus the
Byzantine edges' own messages; ``bits_down = 0``. Evaluation reports, over the honest nodes, the mean
(``test_accuracy``) and worst (``worst_test_accuracy``) test accuracy of their own models, the accuracy
of their average model and the consensus distance ``1/|H| sum_{i in H} ||x_i - x̄_H||^2``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfl.aggregators.base import Aggregator
from robustfl.aggregators.mean import Average
from robustfl.algorithms.base import Algorithm
from robustfl.checks import check_int, check_positive
from robustfl.compressors.base import Compressor, RowStreams
from robustfl.engine import phases
from robustfl.engine.inputs import CohortInputs
from robustfl.engine.neighbours import NeighbourRule
from robustfl.engine.simulator import DatasetLike, RoundStats, Simulator
from robustfl.streams import Streams
from robustfl.topology import build_topology

GOSSIP_PHASES = ("plan", "compute", "compress", "attack", "aggregate", "update")


def consensus_distance(models: Tensor, keep: Tensor) -> float:
    """``1/|H| sum_{i in H} ||x_i - x̄_H||^2`` over the rows ``H`` of the bool mask ``keep``."""
    rows = models[keep].double()
    return float((rows - rows.mean(dim=0)).pow(2).sum(dim=1).mean())


@dataclass
class GossipResult:
    """What :meth:`GossipNetwork.run` produced: the new models, exact bits on all links, the share of
    edges the clipping rule clipped (averaged over the steps; 0 for other rules), seconds per phase."""

    models: Tensor
    bits: int
    clipped_fraction: float
    seconds: dict[str, float]


class GossipNetwork:
    """The gossip phase of a round (CHOCO steps with a neighbour rule) and the copies it keeps.

    ``public[i]`` is ``x̂_i`` (every holder's copy of an honest node agrees); ``copies[b]`` is the copy
    honest receiver ``dst[e]`` holds of Byzantine sender ``src[e]`` for Byzantine edge ``e =
    byz_edges[b]``. Both start at ``initial``. ``byzantine`` marks the Byzantine nodes; they attack only
    when ``attack`` is given. ``compressor`` (``None``: values at their width) compresses every message;
    its per-node state (error-feedback memory) is kept here.
    """

    def __init__(
        self,
        rule: NeighbourRule,
        initial: Tensor,
        streams: Streams,
        *,
        gamma: float = 1.0,
        steps: int = 1,
        byzantine: Tensor | None = None,
        attack: Any = None,
        compressor: Compressor | None = None,
    ) -> None:
        self.rule, self.topology, self.streams = rule, rule.topology, streams
        self.gamma = check_positive("gamma", gamma)
        self.steps = check_int("gossip_steps", steps)
        self.n = self.topology.n
        self.byz = torch.zeros(self.n, dtype=torch.bool) if byzantine is None else byzantine.bool().cpu()
        if self.byz.shape != (self.n,):
            raise ValueError(
                f"byzantine must be a bool mask of the {self.n} nodes, got {tuple(self.byz.shape)}"
            )
        self.attack, self.compressor = attack, compressor
        self.src, self.dst = self.topology.edges
        attacked = self.byz[self.src] & ~self.byz[self.dst]
        if attack is None:
            attacked = torch.zeros_like(attacked)
        self.byz_edges = attacked.nonzero().squeeze(1)
        self.slot = torch.full((len(self.src),), -1, dtype=torch.long)
        self.slot[self.byz_edges] = torch.arange(len(self.byz_edges))
        self.receivers = [
            (i, self.byz_edges[self.dst[self.byz_edges] == i])
            for i in self.dst[self.byz_edges].unique().tolist()
        ]
        initial = initial.detach()
        self.public = initial.unsqueeze(0).repeat(self.n, 1)
        self.copies = initial.unsqueeze(0).repeat(len(self.byz_edges), 1)
        self.compressor_state: dict[str, Tensor] = (
            {} if compressor is None else _row_state(compressor, initial, self.n)
        )

    def run(self, models: Tensor, round: int) -> GossipResult:
        """``steps`` gossip steps from the nodes' ``models: [n, d]`` in ``round``."""
        seconds = dict.fromkeys(("compress", "attack", "aggregate", "update"), 0.0)
        bits, clipped = 0, 0
        honest_link = self.slot < 0
        for s in range(self.steps):
            t = time.perf_counter()
            decoded, link_bits = self._send(models - self.public, round, s)
            self.public = self.public + decoded
            bits += int(link_bits[self.src][honest_link].sum())
            seconds["compress"] += time.perf_counter() - t

            t = time.perf_counter()
            if len(self.byz_edges):
                bits += self._attack(round, s)
            seconds["attack"] += time.perf_counter() - t

            t = time.perf_counter()
            target = self.rule(self.public, self.slot, self.copies)
            clipped += self.rule.clipped
            seconds["aggregate"] += time.perf_counter() - t

            t = time.perf_counter()
            models = models + self.gamma * (target - self.public)
            seconds["update"] += time.perf_counter() - t
        share = clipped / (self.steps * len(self.src)) if self.steps else 0.0
        return GossipResult(models, bits, share, seconds)

    def _send(self, rows: Tensor, r: int, s: int) -> tuple[Tensor, Tensor]:
        """Each node's message ``C(rows_i)`` decoded, and the bits each node puts on one link."""
        if self.compressor is None:
            return rows, torch.full((self.n,), 8 * rows.element_size() * rows.shape[1], dtype=torch.long)
        keys = ("round", r, "gossip", s)
        rng = RowStreams(
            tuple(self.streams.generator("compress", "client", i, *keys) for i in range(self.n)),
            self.streams.generator("compress-shared", "shared", *keys),
        )
        msg, self.compressor_state = self.compressor.encode(rows, rng, self.compressor_state)
        return self.compressor.decompress(msg).to(rows), msg.bits_per_row + msg.shared_bits

    def _attack(self, r: int, s: int) -> int:
        """The Byzantine edges' messages of gossip step ``s``: receivers' copies updated, bits returned."""
        targets = torch.empty_like(self.copies)
        for i, edges in self.receivers:
            honest = [i, *[j for j in self.topology.neighbours(i) if not self.byz[j]]]
            own = self.public[self.src[edges]]
            gen = self.streams.generator("attack", "shared", "round", r, "gossip", s, "receiver", i)
            z = self.attack(self.public[honest], len(edges), rng=gen, round=r, own=own)
            if tuple(z.shape) != tuple(own.shape):
                raise ValueError(f"attack returned shape {tuple(z.shape)}, expected {tuple(own.shape)}")
            targets[self.slot[edges]] = z.to(targets)
        rows = targets - self.copies
        if self.compressor is None:
            self.copies = targets
            return len(self.byz_edges) * 8 * rows.element_size() * rows.shape[1]
        keys = ("round", r, "gossip", s)
        rng = RowStreams(
            tuple(
                self.streams.generator("compress", "client", int(self.src[e]), *keys, "to", int(self.dst[e]))
                for e in self.byz_edges
            ),
            self.streams.generator("compress-shared", "shared", *keys, "byzantine"),
        )
        msg, _ = self.compressor.encode(rows, rng, _row_state(self.compressor, rows[0], len(rows)))
        self.copies = self.copies + self.compressor.decompress(msg).to(rows)
        return int(msg.bits)

    def state_dict(self) -> dict[str, Any]:
        return {
            "public": self.public.clone(),
            "copies": self.copies.clone(),
            "compressor": {k: v.clone() for k, v in self.compressor_state.items()},
            "rule": self.rule.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key in ("public", "copies"):
            if tuple(state[key].shape) != tuple(getattr(self, key).shape):
                raise ValueError(
                    f"state_dict gossip {key} has shape {tuple(state[key].shape)}, not "
                    f"{tuple(getattr(self, key).shape)}: another graph or model"
                )
        self.public, self.copies = state["public"].clone(), state["copies"].clone()
        self.compressor_state = {k: v.clone() for k, v in state["compressor"].items()}
        self.rule.load_state_dict(state["rule"])


def _row_state(compressor: Compressor, row: Tensor, n: int) -> dict[str, Tensor]:
    """``n`` senders' fresh compressor state (error-feedback memory, ...) for rows like ``row``."""
    return {k: v.unsqueeze(0).repeat_interleave(n, 0) for k, v in compressor.init_row_state(row).items()}


class GossipSimulator(Simulator):
    """Decentralised training of ``n = len(partitions)`` nodes (see the module docstring).

    Takes the :class:`Simulator` arguments; ``algorithm`` must be decentralised (``Gossip``). Every node
    takes part in every round (no ``per_round``), the Byzantine ids are fixed (``every = 1``, no
    ``resample``) and there is no coded scheme. ``aggregator`` is the neighbour rule of
    ``rule = "aggregator"``; the other rules need the default mean there. ``sim.network`` is the
    :class:`GossipNetwork`, ``sim.topology`` its graph.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: DatasetLike,
        partitions: list[Tensor],
        algorithm: Algorithm,
        aggregator: Aggregator,
        **kwargs: Any,
    ) -> None:
        if not getattr(algorithm, "decentralised", False):
            raise ValueError(f"{algorithm!r} has a server step; run it with Simulator")
        if kwargs.get("per_round") not in (None, len(partitions)):
            raise ValueError("gossip runs every node in every round: leave workers.per_round unset")
        if kwargs.get("coding") is not None:
            raise ValueError("gossip has no server to decode a coded scheme: remove [coding]")
        rule: str = getattr(algorithm, "rule", "weighted")
        if rule != "aggregator" and type(aggregator) is not Average:
            raise ValueError(
                f"gossip's rule {rule!r} does not use [aggregator] ({aggregator!r}): set "
                "algorithm.params.rule = 'aggregator' to aggregate neighbours with it, or remove [aggregator]"
            )
        if getattr(aggregator, "needs_reference", False):
            raise ValueError(
                f"gossip has no server with the root data {aggregator!r} needs: choose another rule"
            )
        super().__init__(model, dataset, partitions, algorithm, aggregator, **kwargs)
        if self.byzantine.every != 1 or self.byzantine.resample:
            raise ValueError(
                "gossip keeps its Byzantine nodes for the whole run (neighbours hold copies of them): "
                "leave byzantine.every = 1 and byzantine.resample = false"
            )
        alg: Any = algorithm
        self.topology = build_topology(alg.topology, self.n, p=alg.p, seed=self.streams.seed_of("topology"))
        neighbour_rule = NeighbourRule(
            self.topology,
            rule,
            tau=alg.tau,
            clip_count=alg.clip_count,
            aggregator=aggregator if rule == "aggregator" else None,
        )
        self.byz = torch.zeros(self.n, dtype=torch.bool)
        self.byz[self.byzantine.byzantine_ids(self.n, self.streams, 0)] = True
        self.network = GossipNetwork(
            neighbour_rule,
            self.params,
            self.streams,
            gamma=alg.gamma,
            steps=alg.gossip_steps,
            byzantine=self.byz,
            attack=self.attack if self.num_byzantine > 0 else None,
            compressor=self.compressor,
        )

    def swap_model(self, model: nn.Module, **kwargs: Any) -> None:
        raise ValueError("gossip cannot swap the model mid-run: remove model.low_rank")

    # --------------------------------------------------------------------------------------- a round
    def step(self) -> RoundStats:
        """One round: local steps on every node, then the network's gossip steps."""
        seconds = dict.fromkeys(GOSSIP_PHASES, 0.0)
        r = self.round
        lr = self.lr_at(r)

        t = time.perf_counter()
        ids = torch.arange(self.n)
        shared = self.algorithm.broadcast(self.params, self.server_state, r)
        idx = self.sampler.sample(ids, r, self.algorithm.local_steps, self.batch_size).to(self.device)
        xs = CohortInputs(self.x_store, idx, ids, self.augment, self.streams, r)
        states = self._round_states(ids, self.byz)
        seconds["plan"] = time.perf_counter() - t

        t = time.perf_counter()
        self.model.train()
        with self._model_rng(r):
            out = self.executor.run(self.algorithm, self.flat, shared, xs, self.y_store[idx], states, lr)
        seconds["compute"] = time.perf_counter() - t

        result = self.network.run(out.state["model"].detach(), r)
        seconds.update({k: seconds[k] + v for k, v in result.seconds.items()})

        t = time.perf_counter()
        self.client_state["model"] = result.models
        self.params = result.models[~self.byz].mean(dim=0)
        self.flat.load_flat(self.params)
        seconds["update"] += time.perf_counter() - t

        self.round += 1
        metrics: dict[str, Any] = {
            "consensus_distance": consensus_distance(result.models, ~self.byz),
            "spectral_gap": self.topology.spectral_gap,
            "bits_per_node": result.bits / self.n,
            "clients": self.n,
            "byzantine_ids": ids[self.byz].tolist(),
        }
        if self.network.rule.rule == "clip":
            metrics["clipped_fraction"] = result.clipped_fraction
        return RoundStats(
            round=self.round,
            loss=phases.honest_mean(out.loss.detach(), self.byz),
            lr=lr,
            bits_up=result.bits,
            bits_down=0,
            seconds=seconds,
            metrics=metrics,
        )

    # ---------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(
        self, extra: Mapping[str, tuple[Tensor, Tensor]] | None = None, batch_size: int = 1000
    ) -> dict[str, float]:
        """Over the honest nodes' own models: ``test_accuracy`` (mean), ``worst_test_accuracy``,
        ``test_loss`` (mean), ``average_model_test_accuracy`` (their average model),
        ``consensus_distance``; the same mean/worst for every ``extra`` set."""
        batch_size = check_int("batch_size", batch_size, minimum=1)
        sets = {"test": (self.x_test, self.y_test), **dict(extra or {})}
        models = self.client_state["model"]
        honest = (~self.byz).nonzero().squeeze(1).tolist()
        was_training = self.model.training
        self.model.eval()
        out: dict[str, float] = {}
        try:
            for name, (x, y) in sets.items():
                x, y = x.to(self.device), y.to(self.device)
                scores = [self._score(models[i], x, y, batch_size) for i in honest]
                losses, accs = zip(*scores, strict=True)
                out[f"{name}_loss"] = sum(losses) / len(losses)
                out[f"{name}_accuracy"] = sum(accs) / len(accs)
                out[f"worst_{name}_accuracy"] = min(accs)
                out[f"average_model_{name}_accuracy"] = self._score(self.params, x, y, batch_size)[1]
        finally:
            self.model.train(was_training)
        out["consensus_distance"] = consensus_distance(models, ~self.byz)
        return out

    def _score(self, params: Tensor, x: Tensor, y: Tensor, batch_size: int) -> tuple[float, float]:
        """(mean loss, accuracy) of the flat ``params`` on ``(x, y)``."""
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            logits = self.flat.logits(params, x[start : start + batch_size])
            target = y[start : start + batch_size]
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(dim=1) == target).sum())
        return loss_sum / max(len(x), 1), correct / max(len(x), 1)

    # ------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["gossip"] = self.network.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.network.load_state_dict(state["gossip"])
        super().load_state_dict(state)


__all__ = ["GOSSIP_PHASES", "GossipNetwork", "GossipResult", "GossipSimulator", "consensus_distance"]
