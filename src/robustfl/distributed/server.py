"""Rank 0: the server of a distributed run, composing the simulator's phases over the network.

A round ``r`` (the same phase functions as :meth:`robustfl.engine.Simulator.step`):

1. **plan** — the cohort from the shared streams (every worker draws the same one);
2. **broadcast** — ``algorithm.broadcast(...)`` as raw tensor bytes to each worker with clients in the
   cohort (an empty round header to the others);
3. **collect** — ``UPLOAD`` frames until every live worker replied or ``training.round_timeout``
   seconds passed. A crashed worker (closed connection) is dropped from the run, a silent one is
   reported missing for the round and not waited for again until it replies at all (so a hung
   worker costs one timeout, not one per round); a reply of an older round is late and discarded;
4. **attack** — in a round with a message attack the server, as the channel of the colluding
   Byzantine clients, runs ``attack(honest, f, rng=, round=, own=)`` on the rows it observed (the
   simulator's :func:`~robustfl.engine.phases.inject`) and returns each Byzantine client its crafted row;
   with a compressor the client compresses it with its own state and sends it (``FINAL``);
5. **decode** — each row from its wire bytes (``Message.from_bytes`` + ``decompress``) or raw float
   bytes. Undecodable bytes, a wrong size or NaN/Inf values drop that client's row, with an event:
   treated as Byzantine, never a crash;
   (with ``[model.low_rank]``, the server and every worker switch to PUFFERFISH's hybrid network before
   round ``warmup_rounds``, as the simulator does; the server's SVD factors reach the workers as the
   broadcast parameters);
6. **coded decode** — under a coded scheme (``[coding]``: DRACO, DETOX) the rows are the workers'
   encodings and the scheme's decoder, which needs every worker's row, turns them into one gradient
   that replaces the rule (as the simulator's decode phase);
7. **aggregate** + **update** — if the rule's bound holds for the rows that arrived (``check_n``), the
   algorithm's server step on them, in cohort order; otherwise the run stops with one message naming
   the round and the missing ranks.

With every reply in time the rows, their order and every random draw equal the simulator's, so the
metrics are the same. Events (``crashed``, ``missing``, ``late``, ``dropped``, ``replica-disagreement``)
are logged as they happen and written to ``metrics.jsonl`` (``events``) with the next evaluation.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import torch
from torch import Tensor

from robustfl.aggregators import Average
from robustfl.algorithms.base import Cohort
from robustfl.compressors.base import Message
from robustfl.distributed import wire
from robustfl.distributed.transport import HEADER_BYTES, Dead, Kind, ServerLink
from robustfl.engine import phases
from robustfl.engine.executors import LoopExecutor
from robustfl.engine.simulator import PHASES, RoundStats
from robustfl.experiment.config import ExperimentConfig

log = logging.getLogger(__name__)


def round_time() -> float:
    """Wall-clock time of an event (Unix seconds, millisecond precision)."""
    return round(time.time(), 3)


class RoundFailed(ValueError):
    """Too few messages arrived for the rule's bound: the run cannot continue honestly."""


class DistributedServer:
    """The runner's view of a distributed run (``round``, ``step``, ``evaluate``, ``state_dict``)."""

    def __init__(
        self, config: ExperimentConfig, run: Any, link: ServerLink, assignment: dict[int, Tensor]
    ) -> None:
        self.config, self.run, self.sim, self.link = config, run, run.sim, link
        self.assignment = assignment
        self.owners: dict[int, list[int]] = {}
        for rank, ids in assignment.items():
            for i in ids.tolist():
                self.owners.setdefault(i, []).append(rank)
        self.live = set(assignment)
        self.behind: set[int] = set()  # missed a round and has not caught up: not waited for
        self.timeout = float(config.training.round_timeout)
        self.events: list[dict[str, Any]] = []
        self.totals = {"wire_bytes_up": 0, "wire_bytes_down": 0, "observed_bytes": 0}
        self.shapes = self._message_shapes()
        self.support: Tensor | None = None  # the round's upload support (phases.upload_support)

    # ------------------------------------------------------------------------------ runner protocol
    @property
    def round(self) -> int:
        return int(self.sim.round)

    def evaluate(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.run.evaluate())
        out.update(self.totals)
        out["events"], self.events = self.events, []
        return out

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = self.run.state_dict()
        state["distributed"] = {"events": list(self.events), **self.totals}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run.load_state_dict(state)
        self.shapes = self._message_shapes()  # the checkpoint may hold PUFFERFISH's hybrid
        extra = dict(state.get("distributed", {}))
        self.events = list(extra.pop("events", []))
        self.totals.update({k: int(v) for k, v in extra.items()})

    # ------------------------------------------------------------------------------------- helpers
    def _event(self, round: int, what: str, rank: int, **info: Any) -> None:
        event = {"round": round, "event": what, "rank": rank, "time": round_time(), **info}
        self.events.append(event)
        log.warning("round %d: rank %d %s %s", round, rank, what, info or "")

    def _message_shapes(self) -> dict[str, tuple[int, str]]:
        """Each uploaded part's width and dtype, from one trial client step (nothing is kept)."""
        sim = self.sim
        ids = torch.zeros(1, dtype=torch.long)
        shared = sim.algorithm.broadcast(sim.params, sim.server_state, sim.round)
        idx = sim.sampler.sample(ids, 0, sim.algorithm.local_steps, sim.batch_size).to(sim.device)
        buffers = {k: v.clone() for k, v in sim.model.named_buffers()}
        states = sim._round_states(ids, torch.zeros(1, dtype=torch.bool))
        with sim._model_rng(-1):
            out = LoopExecutor().run(
                sim.algorithm, sim.flat, shared, sim.x_store[idx], sim.y_store[idx], states, sim.lr_at(0)
            )
        with torch.no_grad():
            for k, v in sim.model.named_buffers():
                v.copy_(buffers[k])
        parts = phases.as_parts(out.message, sim.algorithm.parts)
        if sim.coding is not None:  # one worker's encoding of copies of the row: the message's shape
            parts = {
                name: sim.coding.encode_some([0], v.expand(sim.coding.per_worker, -1).unsqueeze(0))
                for name, v in parts.items()
            }
        return {name: (int(v.shape[1]), wire.dtype_name(v)) for name, v in parts.items()}

    def wait_ready(self, seconds: float) -> None:
        """Wait for every worker's ``READY`` (they load data and build the model first)."""
        waiting, deadline = set(self.live), time.monotonic() + seconds
        while waiting and (item := self.link.get(deadline)) is not None:
            if isinstance(item, Dead):
                self.live.discard(item.src)
                waiting.discard(item.src)
                self._event(self.round, "crashed", item.src, reason=item.reason)
            elif item.kind == Kind.READY:
                waiting.discard(item.src)
        for rank in sorted(waiting):
            self._event(self.round, "missing", rank, stage="ready")

    def _collect(
        self, kind: Kind, r: int, expected: set[int]
    ) -> dict[int, tuple[dict[str, Any], list[bytes]]]:
        """The replies of ``kind`` for round ``r`` from ``expected`` ranks until the deadline."""
        replies: dict[int, tuple[dict[str, Any], list[bytes]]] = {}
        answered: set[int] = set()
        deadline = time.monotonic() + self.timeout
        while expected - answered and (item := self.link.get(deadline)) is not None:
            if isinstance(item, Dead):
                if item.src in self.live:
                    self.live.discard(item.src)
                    self._event(r, "crashed", item.src, reason=item.reason)
                expected.discard(item.src)
                continue
            if item.kind == Kind.READY:
                continue
            self.totals["wire_bytes_up"] += HEADER_BYTES + len(item.payload)
            if item.round != r or item.kind != kind or item.src in answered:
                self._event(r, "late", item.src, reply_round=item.round, kind=Kind(item.kind).name)
                self.behind.discard(item.src)  # alive: wait for it again from the next round
                continue
            answered.add(item.src)
            self.behind.discard(item.src)
            try:
                meta, blobs = wire.unpack(item.payload)
                if meta.get("round") != r or not isinstance(meta.get("clients"), list):
                    raise wire.WireError("the record is not this round's reply")
            except wire.WireError as err:
                self._event(r, "dropped", item.src, reason=str(err))
                continue
            replies[item.src] = (meta, blobs)
        for rank in sorted(expected - answered):
            self._event(r, "missing", rank, stage=kind.name)
            self.behind.add(rank)
        for rank in sorted(self.live - expected - answered) if kind == Kind.UPLOAD else []:
            self._event(r, "missing", rank, stage=kind.name, waited=False)
        return replies

    def _row(
        self, name: str, entry: Any, blobs: list[bytes], compressed: bool, upload: bool
    ) -> tuple[Tensor, int, int]:
        """One decoded row of part ``name``: ``(row, own bits, shared bits)``; raises ``WireError``.
        ``upload``: the row is a client's upload (field ``wire``), which carries only the round's upload
        support when there is one (``K`` values, put back into zeros ``[d]``); else a full raw row (the
        rows the attacker observes and the Byzantine clients' own)."""
        full, dtype = self.shapes[name]
        d = phases.sent_width(self.support, full) if upload else full
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)):
            raise wire.WireError(f"bad entry for part {name!r}")
        index, form = entry
        if not 0 <= index < len(blobs):
            raise wire.WireError(f"part {name!r} points at blob {index} of {len(blobs)}")
        blob, compressor = blobs[index], self.sim.compressor
        if compressed and compressor is not None:
            if form != "wire":
                raise wire.WireError(f"part {name!r} is not compressed but the run has a compressor")
            try:
                msg = Message.from_bytes(blob)
                if msg.n != 1 or msg.d != d:
                    raise wire.WireError(f"message of {msg.n} x {msg.d}, expected 1 x {d}")
                row = compressor.decompress(msg).reshape(-1).to(getattr(torch, dtype))
            except wire.WireError:
                raise
            except Exception as err:
                raise wire.WireError(f"undecodable {name!r}: {type(err).__name__}: {err}") from None
            bits, shared = int(msg.bits_per_row.sum()), int(msg.shared_bits)
        else:
            if form != dtype:
                raise wire.WireError(f"part {name!r} is {form!r}, expected raw {dtype}")
            row = wire.tensor_from(blob, dtype, [d])
            bits, shared = 8 * len(blob), 0
        if row.numel() != d:
            raise wire.WireError(f"part {name!r} has {row.numel()} values, expected {d}")
        if not bool(torch.isfinite(row).all()):
            raise wire.WireError(f"part {name!r} has NaN/Inf values")
        if d != full:
            row = phases.expand({name: row}, self.support, {name: full})[name]
        return row.to(self.sim.device), bits, shared

    def _decode(
        self,
        r: int,
        replies: dict[int, tuple[dict[str, Any], list[bytes]]],
        field: str,
        compressed: bool,
        allowed: set[int],
    ) -> dict[int, list[tuple[int, bytes, Any]]]:
        """``client id -> [(rank, fingerprint, value)]`` for each client entry carrying ``field``."""
        found: dict[int, list[tuple[int, bytes, Any]]] = {}
        for rank, (meta, blobs) in replies.items():
            for c in meta["clients"]:
                if isinstance(c, dict) and field not in c:
                    continue
                try:
                    cid = c["id"] if isinstance(c, dict) else None
                    if not isinstance(cid, int) or cid not in allowed or rank not in self.owners.get(cid, []):
                        raise wire.WireError(
                            f"client {cid!r} may not send {field!r} from this rank this round"
                        )
                    value = {
                        name: self._row(name, c[field].get(name), blobs, compressed, field == "wire")
                        for name in self.shapes
                    }
                except (wire.WireError, AttributeError, TypeError, KeyError) as err:
                    self._event(
                        r,
                        "dropped",
                        rank,
                        client=c.get("id") if isinstance(c, dict) else None,
                        reason=str(err),
                    )
                    continue
                fingerprint = b"".join(wire.tensor_bytes(v[0]) for v in value.values())
                found.setdefault(cid, []).append((rank, fingerprint, value))
        return found

    def _vote(self, r: int, found: dict[int, list[tuple[int, bytes, Any]]]) -> dict[int, Any]:
        """One value per client: the one most replicas sent bit for bit (the only one without replicas)."""
        chosen = {}
        for cid, candidates in found.items():
            counts = Counter(fp for _, fp, _ in candidates)
            best = counts.most_common(1)[0][0]
            if len(counts) > 1:
                ranks = [rank for rank, fp, _ in candidates if fp != best]
                self._event(r, "replica-disagreement", ranks[0], client=cid, ranks=ranks)
            chosen[cid] = next(v for _, fp, v in candidates if fp == best)
        return chosen

    def _stats(
        self, replies: dict[int, tuple[dict[str, Any], list[bytes]]], r: int
    ) -> dict[int, dict[str, Tensor]]:
        """Per client: its loss and metrics (0-d tensors) from the replies' stats blobs."""
        out: dict[int, dict[str, Tensor]] = {}
        for rank, (meta, blobs) in replies.items():
            try:
                specs = meta.get("stats") or []
                tensors = wire.decode_tensors(specs, [blobs[s["blob"]] for s in specs])
                ids = [int(i) for i in meta["stat_ids"]]  # the rows computed (a coded scheme's partitions)
                if any(v.shape != (len(ids),) for v in tensors.values()) or "loss" not in tensors:
                    raise wire.WireError("stats do not match the clients")
            except (wire.WireError, KeyError, TypeError, IndexError) as err:
                if meta["clients"]:
                    self._event(r, "dropped", rank, reason=f"stats: {err}")
                continue
            for j, cid in enumerate(ids):
                if cid not in out:
                    out[cid] = {k: v[j] for k, v in tensors.items()}
        return out

    # --------------------------------------------------------------------------------------- round
    def step(self) -> RoundStats:
        sim, algo = self.sim, self.sim.algorithm
        seconds = dict.fromkeys(PHASES, 0.0)
        r, t = self.round, time.perf_counter()
        switch = getattr(self.run, "switch", None)  # [model.low_rank]: PUFFERFISH's end of warm-up
        if switch is not None and 0 < switch.round == r:
            switch.apply(sim)
            self.shapes = self._message_shapes()  # the hybrid's message widths
        lr = sim.lr_at(r)
        cohort = sim.plan(r)
        shared = algo.broadcast(sim.params, sim.server_state, r)
        self.support = phases.upload_support(algo, sim.compressor, shared)
        specs, blobs = wire.encode_tensors(shared)
        full = wire.pack({"round": r, "tensors": specs}, blobs)
        empty = wire.pack({"round": r, "tensors": None})
        in_cohort = set(cohort.ids.tolist())
        for rank in sorted(self.live):
            has = bool(set(self.assignment[rank].tolist()) & in_cohort)
            self.totals["wire_bytes_down"] += self.link.send(rank, Kind.BROADCAST, r, full if has else empty)
        seconds["plan"] = time.perf_counter() - t

        t = time.perf_counter()
        replies = self._collect(Kind.UPLOAD, r, self.live - self.behind)
        seconds["compute"] = time.perf_counter() - t

        t = time.perf_counter()
        byz_of = dict(zip(cohort.ids.tolist(), cohort.byzantine.tolist(), strict=True))
        honest_ids = {i for i, b in byz_of.items() if not b}
        byz_ids = {i for i, b in byz_of.items() if b}
        attacked = sim.attack is not None and bool(byz_ids)
        stats = self._stats(replies, r)
        self.totals["observed_bytes"] += _observed_bytes(replies)
        compressed = self._vote(
            r, self._decode(r, replies, "wire", True, honest_ids if attacked else in_cohort)
        )
        rows: dict[int, Any] = dict(compressed)
        if attacked:
            observed_field = "raw" if sim.compressor is not None else "wire"
            observed = self._vote(r, self._decode(r, replies, observed_field, False, honest_ids))
            own = self._vote(r, self._decode(r, replies, "own", False, byz_ids))
            rows.update(self._attack(r, observed, own, compressed))
        seconds["attack"] = time.perf_counter() - t

        t = time.perf_counter()
        self._check_bound(r, len(rows), len(cohort.ids))
        ids = torch.tensor(sorted(rows), dtype=torch.long)
        byz = torch.tensor([byz_of[i] for i in ids.tolist()], dtype=torch.bool)
        parts = {name: torch.stack([rows[i][name][0] for i in ids.tolist()]) for name in self.shapes}
        bits_up = sum(rows[i][name][1] for i in ids.tolist() for name in self.shapes)
        bits_up += sum(max((rows[i][name][2] for i in ids.tolist()), default=0) for name in self.shapes)
        if (
            sim.compressor is None
            and (own_bits := algo.message_bits(phases.restrict(parts, self.support))) is not None
        ):
            bits_up = own_bits  # the algorithm's own wire format (C-RSA's ternary signs), as the simulator
        seconds["compress"] = time.perf_counter() - t

        aggregators, arrived = sim.aggregators, Cohort(ids, byz, sim.sampler.sizes(ids))
        coding_metrics: dict[str, float] = {}
        if sim.coding is not None:
            t = time.perf_counter()
            parts, decoded = phases.decode_coded(sim.coding, parts, sim.params.dtype, sim.streams, r)
            coding_metrics = {**decoded, "redundancy": float(sim.coding.redundancy)}
            aggregators, arrived = Average(), Cohort.of(1)  # the decoder replaced the rule
            seconds["decode"] = time.perf_counter() - t

        t = time.perf_counter()
        result = phases.aggregate_update(
            algo, sim.params, parts, aggregators, sim.server_state, lr, r, arrived
        )
        seconds["aggregate"] = time.perf_counter() - t
        sim.params, sim.server_state = result.params, result.state
        sim.flat.load_flat(sim.params)
        sim.round += 1

        have = [i for i in ids.tolist() if i in stats]
        flags = torch.tensor([byz_of[i] for i in have], dtype=torch.bool)
        losses = torch.stack([stats[i]["loss"] for i in have]) if have else torch.full((1,), float("nan"))
        client_metrics = {
            k.removeprefix("metric."): torch.stack([stats[i][k] for i in have])
            for k in (stats[have[0]] if have else {})
            if k.startswith("metric.")
        }
        metrics: dict[str, Any] = {
            **phases.client_metrics(client_metrics, flags),
            **result.metrics,
            **coding_metrics,
            "clients": len(ids),
            "byzantine_ids": ids[byz].tolist(),
        }
        return RoundStats(
            round=self.round,
            loss=phases.honest_mean(losses, flags if have else torch.zeros(1, dtype=torch.bool)),
            lr=lr,
            bits_up=int(bits_up),
            bits_down=algo.broadcast_bits(shared) * len(cohort.ids),
            seconds=seconds,
            metrics=metrics,
        )

    def _attack(
        self, r: int, observed: dict[int, Any], own: dict[int, Any], compressed: dict[int, Any]
    ) -> dict[int, Any]:
        """The colluding attack on the rows the server observed; the Byzantine clients' final rows."""
        sim = self.sim
        if not own:
            return {}
        ids = sorted(set(observed) | set(own))
        mask = torch.tensor([i in own for i in ids], dtype=torch.bool)
        source = {**observed, **own}
        parts = {name: torch.stack([source[i][name][0] for i in ids]) for name in self.shapes}
        crafted = phases.inject(sim.attack, parts, mask, sim.streams, r)
        byz_ids = [i for i in ids if i in own]
        rows = {name: crafted[name][mask] for name in self.shapes}
        if sim.compressor is None:  # the crafted rows (on the upload support) are what they send
            sent = phases.restrict(rows, self.support)
            received = phases.expand(sent, self.support, {name: w for name, (w, _) in self.shapes.items()})
            return {
                i: {
                    name: (received[name][j], 8 * sent[name][j].element_size() * sent[name][j].numel(), 0)
                    for name in self.shapes
                }
                for j, i in enumerate(byz_ids)
            }
        for rank in sorted(self.live):
            mine = [j for j, i in enumerate(byz_ids) if rank in self.owners[i]]
            if not mine:
                continue
            blobs: list[bytes] = []
            records = []
            for j in mine:
                entry = {}
                for name in self.shapes:
                    entry[name] = [len(blobs), wire.dtype_name(rows[name])]
                    blobs.append(wire.tensor_bytes(rows[name][j]))
                records.append({"id": byz_ids[j], "parts": entry})
            self.totals["wire_bytes_down"] += self.link.send(
                rank, Kind.CRAFTED, r, wire.pack({"round": r, "clients": records}, blobs)
            )
        expected = {rank for rank in self.live if any(rank in self.owners[i] for i in byz_ids)}
        final = self._collect(Kind.FINAL, r, expected)
        return self._vote(r, self._decode(r, final, "wire", True, set(byz_ids)))

    def _check_bound(self, r: int, arrived: int, planned: int) -> None:
        """Stop with one clear message when the rule cannot serve the messages that arrived."""
        if arrived == planned:
            return
        if self.sim.coding is not None:
            raise RoundFailed(
                f"round {r}: only {arrived} of {planned} workers' messages arrived and the coded scheme "
                f"{self.sim.coding!r} decodes from all of them: raise training.round_timeout or give each "
                "client to several ranks (workers.replicas)"
            )
        aggs = self.sim.aggregators
        try:
            if arrived == 0:
                raise ValueError("no message arrived")
            if self.sim.algorithm.uses_aggregator:
                for agg in aggs.values() if isinstance(aggs, dict) else [aggs]:
                    agg.check_n(arrived)
        except ValueError as err:
            missing = sorted({e["rank"] for e in self.events if e["round"] == r and e["event"] != "late"})
            raise RoundFailed(
                f"round {r}: only {arrived} of {planned} clients' messages arrived (ranks with missing, dropped "
                f"or crashed replies: {missing}) and the rule's bound fails: {err}; raise "
                "training.round_timeout or run with fewer Byzantine clients (workers.f)"
            ) from None

    def stop(self) -> None:
        """Tell every live worker the run is over and let the frames go out."""
        for rank in sorted(self.live):
            self.link.send(rank, Kind.STOP, self.round, b"")
        self.link.close()


def _observed_bytes(replies: dict[int, tuple[dict[str, Any], list[bytes]]]) -> int:
    """Bytes of the attack's side channel: the rows the colluding attacker observes raw (honest rows
    under a compressor, the Byzantine clients' true rows). A simulation device, not protocol bytes."""
    total = 0
    for meta, blobs in replies.values():
        for c in meta["clients"]:
            for key in ("raw", "own"):
                raw = c.get(key) if isinstance(c, dict) else None
                if isinstance(raw, dict):
                    total += sum(
                        len(blobs[e[0]])
                        for e in raw.values()
                        if isinstance(e, list) and e and isinstance(e[0], int) and 0 <= e[0] < len(blobs)
                    )
    return total
