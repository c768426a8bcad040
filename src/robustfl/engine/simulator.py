"""The single-process simulator: ``n`` clients and one server, a round composed of the shared phases.

A round (``Simulator.step``; ``robustfl.engine.phases`` holds the functions):

1. **plan** — the cohort (``per_round`` of the ``n`` clients, from the shared ``cohort`` stream) and the
   round's Byzantine ids (:class:`~robustfl.engine.participation.ByzantineSchedule`);
2. **broadcast** — ``algorithm.broadcast(params, server_state, round)``; ``bits_down`` counts it
   exactly for every client of the cohort;
3. **compute** — each client draws ``local_steps`` minibatches from its own partition (stream
   ``sample``, per client and round), optionally augmented (stream ``augment``), and the executor runs
   the client step: ``vmap`` over clients in chunks, or a loop;
4. **attack** — a message attack replaces the Byzantine rows:
   ``attack(honest[h, d], f, rng=, round=, own=true_byzantine[f, d])``. A data attack
   ``data_attack(x, y, generator=g) -> (x', y', touched)`` instead poisoned the Byzantine clients' local
   data once at construction; they then train honestly on it;
5. **compress** — every row compressed with its client's own stream (``compress``), shared draws from
   ``compress-shared``; the compressor's per-client state (error-feedback memory) lives in client
   state; ``bits_up`` is the exact count;
6. **decode** — with a coded scheme (DRACO, DETOX: ``coding``), the clients' gradients were encoded
   after the compute phase and the server decodes them here, in place of the aggregator;
7. **aggregate** + **update** — the algorithm's server step.

Randomness comes from :class:`~robustfl.streams.Streams` (one table, derived from ``seed``): a draw of
one client depends only on (seed, stream, client id, round), so no generator state is checkpointed
and a resumed run continues identically. Randomness inside the model (dropout) draws from torch's
global generator, seeded for each round's compute phase from the ``dropout`` stream inside
``torch.random.fork_rng``. With dropout the vectorised path and the loop path draw different masks,
so they agree in distribution only.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfl.aggregators.base import Aggregator
from robustfl.aggregators.mean import Average
from robustfl.algorithms.base import Algorithm, Cohort, State
from robustfl.checks import check_int
from robustfl.compressors.base import Compressor
from robustfl.engine import phases
from robustfl.engine.augment import Augment
from robustfl.engine.executors import Executor, LoopExecutor, VmapExecutor
from robustfl.engine.functional import FlatModel, vmap_blocker
from robustfl.engine.inputs import CohortInputs
from robustfl.engine.participation import ByzantineSchedule, draw_cohort
from robustfl.engine.sampling import ClientSampler
from robustfl.streams import Streams

log = logging.getLogger(__name__)

_VMAP_FALLBACK = "not yet implemented the batching rule"
_SAMPLES_PER_CALL = 320
"""Default vmap chunk: about this many samples per batched call. On our CPU (LeNet, batch 32, one
thread) one call over 100 clients was slower than the per-client loop, while chunks of 10 clients
beat the loop (docs/RESULTS.md, "Simulator"); larger batched calls stop fitting in cache."""
PHASES = ("plan", "compute", "attack", "compress", "decode", "aggregate", "update")


class DatasetLike(Protocol):
    """What the simulator reads from a dataset: train and test tensors."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


@dataclass
class RoundStats:
    """What one round produced. ``round`` counts completed rounds (1 after the first ``step``).

    ``metrics`` holds the server step's metrics, the honest mean of the clients' metrics, and
    ``byzantine_ids`` (the ids that attacked this round) and ``clients`` (the cohort size).
    """

    round: int
    loss: float
    lr: float
    bits_up: int
    bits_down: int
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


class Simulator:
    """Simulates ``n = len(partitions)`` clients and one server (see the module docstring).

    ``partitions[i]`` holds the indices of client ``i``'s samples in ``dataset.x_train``. ``lr`` is a
    float or a schedule ``round -> lr`` (round counted from 0). ``per_round`` clients take part in each
    round (default all). ``byzantine`` says who is Byzantine and when (default: the last
    ``num_byzantine`` clients, every round). ``vectorise=None`` picks ``vmap`` unless the model cannot
    be vmapped (batch norm in training mode, a fused recurrent layer, a trial call fails or warns that
    vmap would loop internally), logging why; ``sim.vectorised`` tells which path runs and
    ``sim.path_reason`` why. The choice depends only on the model, never on timings.
    ``clients_per_call`` is the vmap chunk (default: about 320 samples per call); it changes speed and
    float rounding only. ``augment`` transforms image minibatches per client (random crop, flip).
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: DatasetLike,
        partitions: list[Tensor],
        algorithm: Algorithm,
        aggregator: Aggregator,
        *,
        num_byzantine: int = 0,
        byzantine: ByzantineSchedule | None = None,
        per_round: int | None = None,
        attack: Any = None,
        data_attack: Any = None,
        compressor: Compressor | None = None,
        batch_size: int = 32,
        lr: float | Callable[[int], float] = 0.1,
        seed: int = 0,
        device: torch.device | str = "cpu",
        vectorise: bool | None = None,
        clients_per_call: int | None = None,
        augment: Augment | None = None,
        label_smoothing: float = 0.0,
        coding: Any = None,
        root_samples: int = 100,
    ) -> None:
        self.device = torch.device(device)
        self.algorithm = algorithm
        self.aggregator = aggregator
        self.attack = attack
        self.compressor = compressor
        self.augment = augment or Augment()
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.clients_per_call = (
            max(1, _SAMPLES_PER_CALL // self.batch_size)
            if clients_per_call is None
            else check_int("clients_per_call", clients_per_call, minimum=1)
        )
        self.seed = check_int("seed", seed)
        self.streams = Streams(self.seed)
        self.n = len(partitions)
        if self.n == 0:
            raise ValueError("partitions is empty; give one index tensor per client")
        self.per_round = self.n if per_round is None else check_int("per_round", per_round, minimum=1)
        if self.per_round > self.n:
            raise ValueError(f"per_round = {self.per_round} is more than the {self.n} clients")
        if byzantine is None:
            byzantine = ByzantineSchedule(f=check_int("num_byzantine", num_byzantine))
        elif num_byzantine not in (0, byzantine.f):
            raise ValueError(f"num_byzantine = {num_byzantine} disagrees with byzantine.f = {byzantine.f}")
        if byzantine.f >= self.n:
            raise ValueError(
                f"num_byzantine must be < the number of clients ({self.n}) so at least one is honest, "
                f"got {byzantine.f}"
            )
        byzantine.check(self.n, self.per_round)
        self.byzantine = byzantine
        self.num_byzantine = byzantine.f
        if not callable(lr) and (isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0):
            raise ValueError(f"lr must be a positive number or a callable round -> lr, got {lr!r}")
        self._lr = lr
        aggregator.check_n(self.per_round)
        self.aggregators = phases.aggregators_for(aggregator, algorithm.parts)

        self.model = model.to(self.device).train()  # clients train in train mode; evaluate() uses eval
        self.flat = FlatModel(self.model, label_smoothing=label_smoothing)
        self.params = self.flat.flat_params()
        self.round = 0

        x_train, y_train = dataset.x_train, dataset.y_train
        self.x_test = dataset.x_test.to(self.device)
        self.y_test = dataset.y_test.to(self.device)
        partitions = [self._check_partition(i, p, len(x_train)) for i, p in enumerate(partitions)]
        if data_attack is not None and byzantine.resample and byzantine.f > 0:
            raise ValueError(
                "a data attack poisons fixed clients' data: it cannot run with byzantine.resample = true"
            )
        self.x_store, self.y_store, partitions = self._poison(x_train, y_train, partitions, data_attack)
        self.sampler = ClientSampler(partitions, self.streams)

        self._check_model_fits()
        self.client_state: State = self._init_client_state()
        self.server_state: State = algorithm.init_server_state(self.params)
        self.root_samples = check_int("root_samples", root_samples, minimum=1)
        self._root = self._root_set(partitions, len(x_train))
        self.coding = coding
        if coding is not None:
            self._check_coding(coding)
        self._vectorise = vectorise
        self.vectorised, self.path_reason = self._pick_path(vectorise)
        self.executor: Executor = VmapExecutor(self.clients_per_call) if self.vectorised else LoopExecutor()

    def swap_model(
        self,
        model: nn.Module,
        *,
        compressor: Compressor | None = None,
        aggregator: Aggregator | None = None,
    ) -> None:
        """Train ``model`` from the next round on (PUFFERFISH's switch from vanilla warm-up to the
        low-rank network, Algorithm 2 of Wang, Agarwal and Papailiopoulos, MLSys 2021).

        Its parameters become the flat vector; client and server state start afresh (``init_*_state``,
        the compressor's memory with them); ``compressor`` and ``aggregator``, when given, replace the
        current ones (one built for the old parameter layout must be rebuilt for the new one); the
        vmap/loop path is chosen again. The round counter, data, streams and schedules are kept.
        """
        if aggregator is not None:
            aggregator.check_n(self.per_round)
            self.aggregator = aggregator
            self.aggregators = phases.aggregators_for(aggregator, self.algorithm.parts)
        if compressor is not None:
            self.compressor = compressor
        self.model = model.to(self.device).train()
        self.flat = FlatModel(self.model, label_smoothing=self.flat.label_smoothing)
        self.params = self.flat.flat_params()
        self._check_model_fits()
        self.client_state = self._init_client_state()
        self.server_state = self.algorithm.init_server_state(self.params)
        self.vectorised, self.path_reason = self._pick_path(self._vectorise)
        self.executor = VmapExecutor(self.clients_per_call) if self.vectorised else LoopExecutor()

    # ----------------------------------------------------------------------------------- construction
    def _init_client_state(self) -> State:
        one = self.algorithm.init_client_state(self.params)
        return {k: v.unsqueeze(0).repeat_interleave(self.n, 0) for k, v in one.items()}

    def _compressor_state(self, parts: dict[str, Tensor], ids: Tensor) -> State:
        """The cohort's compressor state rows, allocated for all clients at the first message (its
        parts' shapes are known only then)."""
        prefix = phases.COMPRESSOR_STATE + "."
        if self.compressor is not None and not any(k.startswith(prefix) for k in self.client_state):
            example = {name: rows[0] for name, rows in parts.items()}
            self.client_state.update(phases.init_compressor_state(self.compressor, example, self.n))
        return phases.gather_rows({k: v for k, v in self.client_state.items() if k.startswith(prefix)}, ids)

    def _needs_reference(self) -> bool:
        aggs = self.aggregators.values() if isinstance(self.aggregators, dict) else [self.aggregators]
        return any(getattr(a, "needs_reference", False) for a in aggs)

    def _root_set(self, partitions: list[Tensor], size: int) -> Tensor | None:
        """The server's clean root data set (FLTrust, Cao et al., NDSS 2021: 100 samples), drawn once
        from the ``root`` stream among the training samples; ``None`` when no rule needs it."""
        if not self._needs_reference():
            return None
        pool = torch.cat([p for p in partitions]).unique()
        pick = torch.randperm(len(pool), generator=self.streams.shared("root"))[: self.root_samples]
        return pool[pick]

    def _reference(self, shared: State, lr: float, round_index: int) -> Tensor:
        """The server's own update: the algorithm's client step on root minibatches (drawn with
        replacement from the ``root`` stream of the round), from a fresh client state."""
        assert self._root is not None
        gen = self.streams.shared("root", round_index)
        pos = torch.randint(len(self._root), (self.algorithm.local_steps, self.batch_size), generator=gen)
        idx = self._root[pos].to(self.device)
        state = self.algorithm.init_client_state(self.params)
        if self.algorithm.needs_byzantine_flag:
            state["byzantine"] = torch.tensor(False, device=self.device)
        out = self.algorithm.client_step(
            shared, self.x_store[idx], self.y_store[idx], state, lr, self.flat.loop_grad_fn()
        )
        return next(iter(phases.as_parts(out.message, self.algorithm.parts).values()))

    def _check_coding(self, scheme: Any) -> None:
        """A coded scheme encodes one gradient per client at the broadcast parameters, every round."""
        if scheme.workers != self.n:
            raise ValueError(
                f"the coded scheme is for P={scheme.workers} workers but there are {self.n} clients"
            )
        if self.per_round != self.n:
            raise ValueError("a coded scheme needs every client in every round: leave per_round unset")
        algo = self.algorithm
        if len(algo.parts) != 1 or algo.local_steps != 1 or self.client_state:
            raise ValueError(
                f"a coded scheme encodes one gradient per client and round; {algo!r} uploads "
                f"{len(algo.parts)} part(s) after {algo.local_steps} local step(s) with client state "
                f"{sorted(self.client_state) or 'none'}: use sgd without worker momentum"
            )

    def _check_partition(self, i: int, part: Tensor, size: int) -> Tensor:
        if not isinstance(part, Tensor) or part.dim() != 1 or part.is_floating_point():
            raise ValueError(f"partitions[{i}] must be a 1-D integer index tensor")
        if part.numel() == 0:
            raise ValueError(f"partitions[{i}] is empty; every client needs at least one sample")
        if int(part.min()) < 0 or int(part.max()) >= size:
            raise ValueError(f"partitions[{i}] has indices outside the training set [0, {size})")
        return part.to(torch.long).cpu()

    def _check_model_fits(self) -> None:
        """One forward pass on two training samples: the model must accept the inputs and have an
        output per class (a user error here would otherwise surface deep inside the first round)."""
        classes = int(max(int(self.y_store.max()), int(self.y_test.max()))) + 1
        self.model.eval()  # so batch-norm statistics are not touched
        try:
            with torch.no_grad():
                out = self.flat.logits(self.params, self.x_store[:2])
        except RuntimeError as err:
            raise ValueError(
                f"the model cannot process the training inputs of shape {tuple(self.x_store.shape[1:])}: "
                f"{err}; build it for this dataset's input shape"
            ) from None
        finally:
            self.model.train()
        if out.dim() != 2 or out.shape[1] < classes:
            raise ValueError(
                f"the model outputs shape {tuple(out.shape)} for a batch of 2, expected [2, C] with C >= "
                f"{classes} (labels of the training data, after any data attack, and of the test data go up "
                f"to {classes - 1}); build it with num_classes={classes}"
            )

    @contextlib.contextmanager
    def _model_rng(self, round_index: int) -> Iterator[None]:
        """Seed torch's global generator (dropout) for ``round_index`` and restore it afterwards."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.streams.seed_of("dropout", round_index))
            yield

    def _poison(
        self, x: Tensor, y: Tensor, partitions: list[Tensor], data_attack: Any
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Append each Byzantine client's poisoned copy of its data and point its partition at it."""
        xs, ys = [x], [y]
        if data_attack is not None and self.num_byzantine > 0:
            offset = len(x)
            for i in self.byzantine.byzantine_ids(self.n, self.streams, 0).tolist():
                gen = self.streams.client("data-attack", i)
                px, py, _ = data_attack(x[partitions[i]], y[partitions[i]], generator=gen)
                xs.append(px)
                ys.append(py)
                partitions[i] = torch.arange(offset, offset + len(px))
                offset += len(px)
        return torch.cat(xs).to(self.device), torch.cat(ys).to(self.device), partitions

    def _pick_path(self, vectorise: bool | None) -> tuple[bool, str]:
        if vectorise is False:
            return False, "loop path requested"
        blocker = vmap_blocker(self.model)
        if blocker is not None:
            if vectorise:
                raise ValueError(f"vectorise=True but vmap cannot serve this model: {blocker}")
            log.info("simulator: per-client loop path (%s)", blocker)
            return False, blocker
        if vectorise:
            return True, "vectorised path requested"
        try:  # one trial on the first samples and clients; no stream is advanced
            ids = torch.arange(min(self.n, 2))
            steps, b = self.algorithm.local_steps, min(self.batch_size, len(self.x_store))
            idx = torch.arange(b).repeat(len(ids), steps, 1).to(self.device)
            states = self._round_states(ids, torch.zeros(len(ids), dtype=torch.bool))
            shared = self.algorithm.broadcast(self.params, self.server_state, 0)
            with self._model_rng(-1), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                VmapExecutor(self.clients_per_call).run(
                    self.algorithm, self.flat, shared, self.x_store[idx], self.y_store[idx], states, 0.0
                )
        except Exception as err:  # any failure of vmap means: use the loop
            reason = f"vmap failed: {type(err).__name__}: {err}"
            log.info("simulator: per-client loop path (%s)", reason)
            return False, reason
        slow = [str(w.message) for w in caught if _VMAP_FALLBACK in str(w.message)]
        if slow:  # vmap would loop over clients internally, slower than our loop (LSTM on CPU: 3.5x)
            reason = f"vmap has no batching rule for an operator of this model: {slow[0]}"
            log.info("simulator: per-client loop path (%s)", reason)
            return False, reason
        return True, "vmap over clients"

    # --------------------------------------------------------------------------------------- a round
    def lr_at(self, round_index: int) -> float:
        """The learning rate of round ``round_index`` (from 0)."""
        if not callable(self._lr):
            return float(self._lr)
        lr = float(self._lr(round_index))
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(
                f"the lr schedule returned {lr!r} for round {round_index}; it must be positive and finite"
            )
        return lr

    def _algorithm_state_keys(self) -> list[str]:
        return [k for k in self.client_state if not k.startswith(phases.COMPRESSOR_STATE + ".")]

    def _round_states(self, ids: Tensor, byzantine: Tensor) -> State:
        """The cohort's algorithm state rows (plus the Byzantine flag where the algorithm reads it)."""
        states = phases.gather_rows({k: self.client_state[k] for k in self._algorithm_state_keys()}, ids)
        if self.algorithm.needs_byzantine_flag:
            states["byzantine"] = byzantine.to(self.device)
        return states

    def plan(self, round_index: int) -> Cohort:
        """The cohort of round ``round_index``: ids, Byzantine rows, reported data sizes."""
        ids, byz = draw_cohort(self.n, self.per_round, self.byzantine, self.streams, round_index)
        return Cohort(ids, byz, self.sampler.sizes(ids))

    def step(self) -> RoundStats:
        """Run one round and return its statistics."""
        seconds = dict.fromkeys(PHASES, 0.0)
        r = self.round
        lr = self.lr_at(r)

        t = time.perf_counter()
        cohort = self.plan(r)
        shared = self.algorithm.broadcast(self.params, self.server_state, r)
        idx = self.sampler.sample(cohort.ids, r, self.algorithm.local_steps, self.batch_size).to(self.device)
        xs = CohortInputs(self.x_store, idx, cohort.ids, self.augment, self.streams, r)  # read by chunks
        states = self._round_states(cohort.ids, cohort.byzantine)
        seconds["plan"] = time.perf_counter() - t

        t = time.perf_counter()
        self.model.train()
        with self._model_rng(r):
            out = self.executor.run(self.algorithm, self.flat, shared, xs, self.y_store[idx], states, lr)
        new_states = {k: v for k, v in out.state.items() if k != "byzantine"}
        phases.scatter_rows(self.client_state, cohort.ids, new_states)
        parts = phases.as_parts(out.message, self.algorithm.parts)
        coding_metrics: dict[str, float] = {}
        if self.coding is not None:
            parts, coding_metrics["encode_seconds"] = phases.encode_coded(self.coding, parts)
        seconds["compute"] = time.perf_counter() - t

        t = time.perf_counter()
        parts = phases.inject(self.attack, parts, cohort.byzantine, self.streams, r)
        seconds["attack"] = time.perf_counter() - t

        t = time.perf_counter()
        comp_state = self._compressor_state(parts, cohort.ids)
        support = phases.upload_support(self.algorithm, self.compressor, shared)
        parts, bits_up, comp_state = phases.transmit(
            self.compressor, parts, cohort.ids, comp_state, self.streams, r, support
        )
        phases.scatter_rows(self.client_state, cohort.ids, comp_state)
        if (
            self.compressor is None
            and (own_bits := self.algorithm.message_bits(phases.restrict(parts, support))) is not None
        ):
            bits_up = own_bits  # the algorithm's own wire format (C-RSA's ternary signs)
        seconds["compress"] = time.perf_counter() - t

        aggregators, server_cohort = self.aggregators, cohort
        if self.coding is not None:
            t = time.perf_counter()
            parts, decoded = phases.decode_coded(self.coding, parts, self.params.dtype, self.streams, r)
            coding_metrics |= {**decoded, "redundancy": float(self.coding.redundancy)}
            aggregators, server_cohort = Average(), Cohort.of(1)  # the decoder replaced the rule
            seconds["decode"] = time.perf_counter() - t

        t = time.perf_counter()
        if self._root is not None:
            reference = self._reference(shared, lr, r)
            for agg in aggregators.values() if isinstance(aggregators, dict) else [aggregators]:
                if getattr(agg, "needs_reference", False):
                    agg.set_reference(reference)  # type: ignore[attr-defined]
        result = phases.aggregate_update(
            self.algorithm, self.params, parts, aggregators, self.server_state, lr, r, server_cohort
        )
        seconds["aggregate"] = time.perf_counter() - t

        t = time.perf_counter()
        self.params, self.server_state = result.params, result.state
        self.flat.load_flat(self.params)
        seconds["update"] = time.perf_counter() - t

        self.round += 1
        metrics: dict[str, Any] = {
            **phases.client_metrics(out.metrics, cohort.byzantine),
            **result.metrics,
            **coding_metrics,
            "clients": len(cohort.ids),
            "byzantine_ids": cohort.ids[cohort.byzantine].tolist(),
        }
        return RoundStats(
            round=self.round,
            loss=phases.honest_mean(out.loss.detach(), cohort.byzantine),
            lr=lr,
            bits_up=bits_up,
            bits_down=self.algorithm.broadcast_bits(shared) * len(cohort.ids),
            seconds=seconds,
            metrics=metrics,
        )

    # ---------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(
        self, extra: Mapping[str, tuple[Tensor, Tensor]] | None = None, batch_size: int = 1000
    ) -> dict[str, float]:
        """Loss and accuracy of the global model on the test set and on each ``extra`` set.

        Keys: ``test_loss``, ``test_accuracy`` and ``<name>_loss``, ``<name>_accuracy`` for each extra
        ``name -> (x, y)`` (a backdoor test set labelled with the target class gives
        ``backdoor_accuracy``, the attack's success rate). Each further parameter vector the
        algorithm names (``evaluation_params``: masked training's ``core``) adds the same keys
        prefixed with its name (``core_test_accuracy``).
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        sets = {"test": (self.x_test, self.y_test), **dict(extra or {})}
        variants = {"": self.params}
        variants |= {
            f"{k}_": v for k, v in self.algorithm.evaluation_params(self.params, self.server_state).items()
        }
        was_training = self.model.training
        self.model.eval()
        out: dict[str, float] = {}
        try:
            for prefix, params in variants.items():
                for name, (x, y) in sets.items():
                    x, y = x.to(self.device), y.to(self.device)
                    loss_sum, correct = 0.0, 0
                    for start in range(0, len(x), batch_size):
                        logits = self.flat.logits(params, x[start : start + batch_size])
                        target = y[start : start + batch_size]
                        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
                        correct += int((logits.argmax(dim=1) == target).sum())
                    out[f"{prefix}{name}_loss"] = loss_sum / max(len(x), 1)
                    out[f"{prefix}{name}_accuracy"] = correct / max(len(x), 1)
        finally:
            self.model.train(was_training)
        return out

    # ------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume to the identical result (tensors and plain values only).

        No generator state: every draw is derived from (seed, stream, client, round)."""
        aggregators = self.aggregators if isinstance(self.aggregators, dict) else {"": self.aggregators}
        return {
            "round": self.round,
            "params": self.params.clone(),
            "buffers": {k: v.clone() for k, v in self.model.named_buffers()},
            "client_state": {k: v.clone() for k, v in self.client_state.items()},
            "server_state": {k: v.clone() for k, v in self.server_state.items()},
            "aggregators": {k: a.state_dict() for k, a in aggregators.items()},
            "algorithm": self.algorithm.state_dict(),
            "attack": self.attack.state_dict() if hasattr(self.attack, "state_dict") else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()`` taken from a simulator built with the same arguments."""
        params = state["params"]
        if params.shape != self.params.shape:
            raise ValueError(
                f"state_dict params have shape {tuple(params.shape)}, this model has ({self.flat.dim},)"
            )
        rows = {k: int(v.shape[0]) for k, v in state["client_state"].items()}
        if any(r != self.n for r in rows.values()):
            raise ValueError(f"state_dict is for {sorted(set(rows.values()))} clients, not {self.n}")
        self.round = int(state["round"])
        self.params = params.clone().to(self.device)
        self.flat.load_flat(self.params)
        buffers = dict(self.model.named_buffers())
        with torch.no_grad():
            for k, v in state["buffers"].items():
                buffers[k].copy_(v)
        self.client_state = {k: v.clone().to(self.device) for k, v in state["client_state"].items()}
        self.server_state = {k: v.clone().to(self.device) for k, v in state["server_state"].items()}
        aggregators = self.aggregators if isinstance(self.aggregators, dict) else {"": self.aggregators}
        for k, agg in aggregators.items():
            agg.load_state_dict(state["aggregators"][k])
        self.algorithm.load_state_dict(state["algorithm"])
        if self.attack is not None and state["attack"] is not None:
            self.attack.load_state_dict(state["attack"])
