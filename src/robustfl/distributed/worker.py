"""A worker rank: the client step of its own clients, exactly as the simulator computes it.

The worker builds the same run as the simulator (data, partitions, model, algorithm, compressor,
data attack) from the config, and keeps the client state of its own clients. For each ``BROADCAST`` of
round ``r`` it draws the round's cohort from the shared streams (so it knows which of its clients take
part and which are Byzantine, without being told), samples their minibatches from their own streams,
runs the executor (``vmap`` or loop, as the simulator would pick) and uploads (under a coded scheme,
``[coding]``, a worker computes the gradients of the partitions its clients encode and uploads the
encodings: ``phases.encode_coded``):

* an honest client's message as the compressor's wire bytes (``Message.row(i).to_bytes()``), or its raw
  float bytes without a compressor;
* in a round where a message attack acts, a Byzantine client's true row raw (the attack's ``own``), and
  with a compressor also the honest clients' raw rows (what an omniscient attacker observes; counted
  apart from the protocol bytes). The server runs the colluding attack and returns each Byzantine client
  its crafted row (``CRAFTED``), which the client compresses with its own compressor state and sends
  (``FINAL``).

After its last message of a round the worker writes its clients' state atomically to
``OUT/workers/rank<k>/round_<r>.pt`` when the server will checkpoint that round, and loads it back when
a resumed server starts from that round.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustfl.distributed import wire
from robustfl.distributed.faults import Faults
from robustfl.distributed.transport import Frame, Kind, recv_frame, send_frame
from robustfl.engine import phases
from robustfl.engine.inputs import CohortInputs
from robustfl.engine.participation import draw_cohort
from robustfl.experiment.config import ExperimentConfig
from robustfl.experiment.rundir import atomic_write

log = logging.getLogger(__name__)
KEEP_STATES = 3


def checkpoint_rounds(config: ExperimentConfig, r: int) -> bool:
    """Whether the runner checkpoints after ``r`` completed rounds (its rule)."""
    tr = config.training
    return bool(tr.checkpoint_every and r % tr.checkpoint_every == 0) or r == tr.rounds


def state_path(out: Path, rank: int, r: int) -> Path:
    return out / "workers" / f"rank{rank}" / f"round_{r:06d}.pt"


class Worker:
    """Serves rounds for ``ids`` until the server says ``STOP`` (see the module docstring)."""

    def __init__(
        self, config: ExperimentConfig, run: Any, rank: int, ids: Tensor, out: Path, device: torch.device
    ) -> None:
        self.config, self.sim, self.rank, self.out, self.device = config, run.sim, rank, out, device
        self.switch = getattr(run, "switch", None)  # [model.low_rank]
        self.switched = self.switch is not None and self.switch.round == 0
        self.ids = ids
        self.mine = torch.zeros(self.sim.n, dtype=torch.bool)
        self.mine[ids] = True
        self.faults = Faults(config.faults, rank)
        self.done = 0  # rounds whose state this worker holds
        self.pending: dict[str, Any] | None = None  # Byzantine rows waiting for CRAFTED

    # ----------------------------------------------------------------------------------------- loop
    def serve(self) -> None:
        self._send(Kind.READY, 0, wire.pack({"clients": self.ids.tolist(), "pid": os.getpid()}))
        while True:
            frame = recv_frame(0, self.device, max_bytes=1 << 40)
            if frame.kind == Kind.STOP:
                return
            if frame.kind == Kind.BROADCAST:
                self._round(frame)
            elif frame.kind == Kind.CRAFTED:
                self._crafted(frame)

    def _send(self, kind: Kind, round: int, payload: bytes) -> None:
        send_frame(0, kind, round, payload, self.device)

    # ---------------------------------------------------------------------------------------- state
    def _save(self, r: int) -> None:
        if not checkpoint_rounds(self.config, r):
            return
        rows = phases.gather_rows(self.sim.client_state, self.ids)
        path = state_path(self.out, self.rank, r)
        blob = {"round": r, "ids": self.ids.clone(), "client_state": rows}

        def write(fh: Any) -> None:
            torch.save(blob, fh)

        atomic_write(path, write)
        for old in sorted(path.parent.glob("round_*.pt"))[:-KEEP_STATES]:
            old.unlink(missing_ok=True)

    def _load(self, r: int) -> None:
        """Take up the state of round ``r`` (a resumed server restarts there)."""
        if r == 0:
            self.sim.client_state = self.sim._init_client_state()
        else:
            path = state_path(self.out, self.rank, r)
            if not path.exists():
                raise ValueError(f"rank {self.rank}: no client state for round {r} at {path}; cannot resume")
            blob = torch.load(path, map_location="cpu", weights_only=True)
            state = self.sim.client_state
            for key, rows in blob["client_state"].items():
                if key not in state:
                    state[key] = torch.zeros((self.sim.n, *rows.shape[1:]), dtype=rows.dtype)
            phases.scatter_rows(state, blob["ids"], blob["client_state"])
        self.done, self.pending = r, None

    # ---------------------------------------------------------------------------------------- round
    def _round(self, frame: Frame) -> None:
        sim, r = self.sim, frame.round
        if self.pending is not None:  # no crafted rows came for them: the round is over
            self.done, self.pending = self.pending["round"] + 1, None
            self._save(self.done)
        self._architecture_for(r)
        if r != self.done:
            self._load(r)
        meta, blobs = wire.unpack(frame.payload)
        cohort_ids, cohort_byz = draw_cohort(sim.n, sim.per_round, sim.byzantine, sim.streams, r)
        keep = self.mine[cohort_ids]
        ids, byz = cohort_ids[keep], cohort_byz[keep]
        self.faults.before_compute(r)
        if len(ids) == 0 or meta.get("tensors") is None:
            self.done = r + 1
            self._save(self.done)
            self._send(Kind.UPLOAD, r, self.faults.before_send(r, wire.pack({"round": r, "clients": []})))
            return
        shared = {k: v.to(sim.device) for k, v in wire.decode_tensors(meta["tensors"], blobs).items()}
        lr = sim.lr_at(r)
        support = phases.upload_support(sim.algorithm, sim.compressor, shared)
        # a coded scheme's worker computes the partitions it encodes (DRACO, DETOX), others their own
        computed, flags = ids, byz
        if sim.coding is not None:
            computed = phases.coded_partitions(sim.coding, ids)
            byz_of = torch.zeros(sim.n, dtype=torch.bool)
            byz_of[cohort_ids] = cohort_byz
            flags = byz_of[computed]
        idx = sim.sampler.sample(computed, r, sim.algorithm.local_steps, sim.batch_size).to(sim.device)
        xs = CohortInputs(sim.x_store, idx, computed, sim.augment, sim.streams, r)
        states = sim._round_states(computed, flags)
        sim.model.train()
        with sim._model_rng(r):
            out = sim.executor.run(sim.algorithm, sim.flat, shared, xs, sim.y_store[idx], states, lr)
        new_state = {k: v for k, v in out.state.items() if k != "byzantine"}
        phases.scatter_rows(sim.client_state, computed, new_state)
        parts = phases.as_parts(out.message, sim.algorithm.parts)
        if sim.coding is not None:
            parts, _ = phases.encode_coded(sim.coding, parts, computed, ids)

        attacked = sim.attack is not None and bool(self._cohort_has_byzantine(r))
        own = byz if attacked else torch.zeros_like(byz)
        records: list[dict[str, Any]] = [
            {"id": int(i), "byz": bool(b)} for i, b in zip(ids, byz, strict=True)
        ]
        blobs_out: list[bytes] = []
        send = ~own
        if bool(send.any()):
            self._encode(parts, ids, send, records, blobs_out, r, support)
        for j in torch.nonzero(own).flatten().tolist():
            records[j]["own"] = self._raw(parts, j, blobs_out)
        if attacked and sim.compressor is not None:  # what the omniscient attacker observes
            for j in torch.nonzero(~own).flatten().tolist():
                records[j]["raw"] = self._raw(parts, j, blobs_out)
        stats = {"loss": out.loss.detach(), **{f"metric.{k}": v.detach() for k, v in out.metrics.items()}}
        specs, stat_blobs = wire.encode_tensors(stats)
        for spec, blob in zip(specs, stat_blobs, strict=True):
            spec["blob"] = len(blobs_out)
            blobs_out.append(blob)
        meta_out = {"round": r, "clients": records, "stats": specs, "stat_ids": computed.tolist()}
        payload = wire.pack(meta_out, blobs_out)
        if bool(own.any()):
            self.pending = {"round": r, "ids": ids[own], "support": support}
        else:
            self.done = r + 1
            self._save(self.done)
        self._send(Kind.UPLOAD, r, self.faults.before_send(r, payload))

    def _architecture_for(self, r: int) -> None:
        """Switch to PUFFERFISH's hybrid from round ``warmup_rounds`` on (as the server does). Only the
        layout matters here: the parameters come with every broadcast. The switch restarts the client
        state, as in the simulator."""
        if self.switch is None or self.switch.round == 0:
            return
        if r >= self.switch.round and not self.switched:
            self.switch.apply(self.sim)
            self.switched = True
            if r == self.switch.round:
                self.done = r
        elif r < self.switch.round and self.switched:
            raise ValueError(
                f"rank {self.rank}: round {r} is before the low-rank switch (round {self.switch.round}) "
                "but this worker already switched; restart the workers to resume from there"
            )

    def _cohort_has_byzantine(self, r: int) -> bool:
        sim = self.sim
        _, byz = draw_cohort(sim.n, sim.per_round, sim.byzantine, sim.streams, r)
        return bool(byz.any())

    def _raw(self, parts: dict[str, Tensor], j: int, blobs: list[bytes]) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        for name, rows in parts.items():
            entry[name] = [len(blobs), wire.dtype_name(rows)]
            blobs.append(wire.tensor_bytes(rows[j]))
        return entry

    def _encode(
        self,
        parts: dict[str, Tensor],
        ids: Tensor,
        select: Tensor,
        records: list[dict[str, Any]],
        blobs: list[bytes],
        r: int,
        support: Tensor | None,
    ) -> None:
        """Each selected client's upload (wire bytes, or raw float bytes without a compressor), of the
        round's upload ``support`` only when there is one (``phases.upload_support``)."""
        sim = self.sim
        rows = torch.nonzero(select).flatten().tolist()
        chosen = {name: v[select] for name, v in parts.items()}
        cids = ids[select]
        if sim.compressor is None:
            sent = phases.restrict(chosen, support)
            for pos, j in enumerate(rows):
                records[j]["wire"] = {
                    name: [len(blobs) + k, wire.dtype_name(v)] for k, (name, v) in enumerate(sent.items())
                }
                blobs.extend(wire.tensor_bytes(v[pos]) for v in sent.values())
            return
        state = sim._compressor_state(chosen, cids)
        messages, state = phases.encode_parts(sim.compressor, chosen, cids, state, sim.streams, r, support)
        phases.scatter_rows(sim.client_state, cids, state)
        for pos, j in enumerate(rows):
            records[j]["wire"] = {name: [len(blobs) + k, "wire"] for k, name in enumerate(messages)}
            blobs.extend(msg.row(pos).to_bytes() for msg in messages.values())

    def _crafted(self, frame: Frame) -> None:
        """Compress the attack's rows for this worker's Byzantine clients and send them."""
        pending = self.pending
        if pending is None or pending["round"] != frame.round:
            return
        meta, blobs = wire.unpack(frame.payload)
        by_id = {int(c["id"]): c for c in meta["clients"]}
        ids = pending["ids"]
        parts = {
            name: torch.stack([_row(blobs, by_id[int(i)]["parts"][name]) for i in ids]).to(self.sim.device)
            for name in self.sim.algorithm.parts
        }
        records: list[dict[str, Any]] = [{"id": int(i), "byz": True} for i in ids]
        out: list[bytes] = []
        select = torch.ones(len(ids), dtype=torch.bool)
        self._encode(parts, ids, select, records, out, frame.round, pending["support"])
        self.done, self.pending = frame.round + 1, None
        self._save(self.done)
        self._send(Kind.FINAL, frame.round, wire.pack({"round": frame.round, "clients": records}, out))


def _row(blobs: list[bytes], entry: list[Any]) -> Tensor:
    """A raw row ``[blob index, dtype]`` as a 1-D tensor."""
    index, dtype = entry
    size = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    return wire.tensor_from(blobs[index], dtype, [len(blobs[index]) // size])
