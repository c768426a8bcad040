"""The single-process simulator: ``n`` clients (the last ``f`` Byzantine) and one server.

A round (``Simulator.step``):

1. **compute** — every client (Byzantine ones too, so attacks can read their true messages) draws
   ``local_steps`` minibatches of ``batch_size`` from its own partition with its own generator and runs
   the algorithm's client step. Vectorised: one ``torch.func.vmap`` call over all clients; loop: a
   Python loop with ``torch.autograd.grad`` (same math, for models ``vmap`` cannot serve well; see
   ``Simulator``).
2. **attack** — a message attack replaces the last ``f`` rows:
   ``attack(honest[h, d], f, rng=..., round=..., own=true_byzantine[f, d])``. A data attack
   ``data_attack(x, y, generator=g) -> (x', y', touched)`` instead poisoned the Byzantine clients'
   local data once at construction; they then train honestly on it.
3. **compress** — the ``[n, d]`` messages are compressed and decompressed as one batch; ``bits_up`` is
   the compressor's exact count (without a compressor, every value at its dtype's width: 32 bits for
   float32).
4. **aggregate** + **update** — the algorithm's server step. ``bits_down`` counts the broadcast of the
   new model to all ``n`` clients, every parameter at its dtype's width.

All randomness comes from generators derived from ``seed`` (``robustfl.utils.make_generator``):
``("sample", i)`` for client ``i``'s minibatches, ``("data_attack", i)`` for its poisoning,
``"attack"`` and ``"compress"`` for the message attack and the compressor. The generators live on the
CPU. Randomness inside the model (dropout) draws from torch's global generator, which each round's
compute phase seeds with ``derive_seed(seed, "model", round)`` inside ``torch.random.fork_rng`` (the
caller's global state is left as it was). The same seed gives identical parameters and metrics on CPU,
and a resumed run continues identically. With dropout the vectorised path (``vmap`` with
``randomness="different"``: each client its own masks) and the loop path draw different masks, so
they agree in distribution only.
"""

from __future__ import annotations

import contextlib
import functools
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
from torch.func import vmap

from robustfl.aggregators.base import Aggregator, check_int
from robustfl.algorithms.base import Algorithm, State
from robustfl.engine.functional import FlatModel, vmap_blocker
from robustfl.engine.sampling import ClientSampler
from robustfl.engine.state import load_object_state, object_state
from robustfl.utils import derive_seed, make_generator

log = logging.getLogger(__name__)

_VMAP_FALLBACK = "not yet implemented the batching rule"
_SAMPLES_PER_CALL = 320
"""Default vmap chunk: about this many samples per batched call. On our CPU (LeNet, batch 32, one
thread) one call over 100 clients was slower than the per-client loop, while chunks of 10 clients
beat the loop (docs/RESULTS.md, "Simulator"); larger batched calls stop fitting in cache."""
PHASES = ("compute", "attack", "compress", "aggregate", "update")


class DatasetLike(Protocol):
    """What the simulator reads from a dataset: train and test tensors."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


@dataclass
class RoundStats:
    """What one round produced. ``round`` counts completed rounds (1 after the first ``step``)."""

    round: int
    loss: float
    lr: float
    bits_up: int
    bits_down: int
    seconds: dict[str, float] = field(default_factory=dict)


class Simulator:
    """Simulates ``n = len(partitions)`` clients, of which the **last** ``num_byzantine`` are Byzantine.

    ``partitions[i]`` holds the indices of client ``i``'s samples in ``dataset.x_train``. ``lr`` is a
    float or a schedule ``round -> lr`` (round counted from 0). ``vectorise=None`` picks ``vmap`` unless
    the model cannot be vmapped (batch norm in training mode, a trial call fails, or the trial warns that
    vmap lacks a batching rule and would loop internally, as for LSTMs on CPU), logging why;
    ``sim.vectorised`` tells which path runs and ``sim.path_reason`` why. The choice depends only on the
    model, never on timings, so a configuration always runs the same path. ``clients_per_call`` is the
    vmap chunk (default: about 320 samples per call, e.g. 10 clients at batch 32); it changes speed
    and float rounding only.
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
        attack: Any = None,
        data_attack: Any = None,
        compressor: Any = None,
        batch_size: int = 32,
        lr: float | Callable[[int], float] = 0.1,
        seed: int = 0,
        device: torch.device | str = "cpu",
        vectorise: bool | None = None,
        clients_per_call: int | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.algorithm = algorithm
        self.aggregator = aggregator
        self.attack = attack
        self.compressor = compressor
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.clients_per_call = (
            max(1, _SAMPLES_PER_CALL // self.batch_size)
            if clients_per_call is None
            else check_int("clients_per_call", clients_per_call, minimum=1)
        )
        self.seed = check_int("seed", seed)
        self.num_byzantine = check_int("num_byzantine", num_byzantine)
        self.n = len(partitions)
        if self.n == 0:
            raise ValueError("partitions is empty; give one index tensor per client")
        if self.num_byzantine >= self.n:
            raise ValueError(
                f"num_byzantine must be < the number of clients ({self.n}) so at least one is honest, "
                f"got {self.num_byzantine}"
            )
        if not callable(lr) and (isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0):
            raise ValueError(f"lr must be a positive number or a callable round -> lr, got {lr!r}")
        self._lr = lr
        aggregator.check_n(self.n)

        self.model = model.to(self.device).train()  # clients train in train mode; evaluate() uses eval
        self.flat = FlatModel(self.model)
        self.params = self.flat.flat_params()
        self.round = 0

        x_train, y_train = dataset.x_train, dataset.y_train
        self.x_test = dataset.x_test.to(self.device)
        self.y_test = dataset.y_test.to(self.device)
        partitions = [self._check_partition(i, p, len(x_train)) for i, p in enumerate(partitions)]
        self.x_store, self.y_store, partitions = self._poison(x_train, y_train, partitions, data_attack)
        self.sampler = ClientSampler(
            partitions, [make_generator(self.seed, "sample", i) for i in range(self.n)]
        )
        self.attack_generator = make_generator(self.seed, "attack")
        self.compress_generator = make_generator(self.seed, "compress")

        self._check_model_fits()
        one = algorithm.init_client_state(self.params)
        self.client_state: State = {k: v.unsqueeze(0).repeat_interleave(self.n, 0) for k, v in one.items()}
        self.server_state: State = algorithm.init_server_state(self.params)
        self.vectorised, self.path_reason = self._pick_path(vectorise)

    # ----------------------------------------------------------------------------------- construction
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
            torch.manual_seed(derive_seed(self.seed, "model", round_index))
            yield

    def _poison(
        self, x: Tensor, y: Tensor, partitions: list[Tensor], data_attack: Any
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Append each Byzantine client's poisoned copy of its data and point its partition at it."""
        xs, ys = [x], [y]
        if data_attack is not None and self.num_byzantine > 0:
            offset = len(x)
            for i in range(self.n - self.num_byzantine, self.n):
                gen = make_generator(self.seed, "data_attack", i)
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
        try:  # one trial on the first samples; the run's generators are not touched
            steps, b = self.algorithm.local_steps, min(self.batch_size, len(self.x_store))
            idx = torch.arange(b).repeat(min(self.n, 2), steps, 1).to(self.device)
            state = {k: v[: idx.shape[0]] for k, v in self.client_state.items()}
            with self._model_rng(-1), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._vmapped(0.0)(self.params, self.x_store[idx], self.y_store[idx], state)
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

    def _vmapped(self, lr: float) -> Callable[..., tuple[Tensor, State, Tensor]]:
        step = functools.partial(self.algorithm.client_step, lr=lr, grad_fn=self.flat.vmap_grad_fn())
        fn: Callable[..., tuple[Tensor, State, Tensor]] = vmap(
            step, in_dims=(None, 0, 0, 0), randomness="different", chunk_size=self.clients_per_call
        )
        return fn

    def _client_messages(self, xs: Tensor, ys: Tensor, lr: float) -> tuple[Tensor, State, Tensor]:
        if self.vectorised:
            return self._vmapped(lr)(self.params, xs, ys, self.client_state)
        grad_fn = self.flat.loop_grad_fn()
        outs = [
            self.algorithm.client_step(
                self.params, xs[i], ys[i], {k: v[i] for k, v in self.client_state.items()}, lr, grad_fn
            )
            for i in range(self.n)
        ]
        messages = torch.stack([o[0] for o in outs])
        state = {k: torch.stack([o[1][k] for o in outs]) for k in outs[0][1]}
        return messages, state, torch.stack([o[2] for o in outs])

    def step(self) -> RoundStats:
        """Run one round and return its statistics."""
        seconds = dict.fromkeys(PHASES, 0.0)
        lr = self.lr_at(self.round)
        h, f = self.n - self.num_byzantine, self.num_byzantine

        t = time.perf_counter()
        self.model.train()
        idx = self.sampler.sample(self.algorithm.local_steps, self.batch_size).to(self.device)
        with self._model_rng(self.round):
            messages, self.client_state, losses = self._client_messages(
                self.x_store[idx], self.y_store[idx], lr
            )
        messages = messages.detach()
        seconds["compute"] = time.perf_counter() - t

        if self.attack is not None and f > 0:
            t = time.perf_counter()
            byz = self.attack(messages[:h], f, rng=self.attack_generator, round=self.round, own=messages[h:])
            if tuple(byz.shape) != (f, messages.shape[1]):
                raise ValueError(
                    f"attack returned shape {tuple(byz.shape)}, expected ({f}, {messages.shape[1]})"
                )
            messages = torch.cat([messages[:h], byz.to(messages)])
            seconds["attack"] = time.perf_counter() - t

        t = time.perf_counter()
        if self.compressor is not None:
            packed = self.compressor.compress(messages, self.compress_generator)
            messages = self.compressor.decompress(packed)
            bits_up = int(packed.bits)
        else:
            bits_up = 8 * messages.element_size() * messages.numel()
        seconds["compress"] = time.perf_counter() - t

        t = time.perf_counter()
        new_params, self.server_state = self.algorithm.server_step(
            self.params, messages, self.aggregator, self.server_state, lr
        )
        seconds["aggregate"] = time.perf_counter() - t
        if new_params.shape != self.params.shape:
            raise ValueError(
                f"the server step returned shape {tuple(new_params.shape)}, expected ({self.flat.dim},): "
                f"{self.aggregator!r} must reduce [n, d] to [d] (end a pre-aggregator with a rule, e.g. "
                "Pipeline(NNM(f), Krum(f)))"
            )

        t = time.perf_counter()
        self.params = new_params.detach()
        self.flat.load_flat(self.params)
        seconds["update"] = time.perf_counter() - t

        self.round += 1
        return RoundStats(
            round=self.round,
            loss=float(losses[:h].mean()),
            lr=lr,
            bits_up=bits_up,
            bits_down=8 * self.params.element_size() * self.flat.dim * self.n,
            seconds=seconds,
        )

    # ---------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(
        self, extra: Mapping[str, tuple[Tensor, Tensor]] | None = None, batch_size: int = 1000
    ) -> dict[str, float]:
        """Loss and accuracy of the global model on the test set and on each ``extra`` set.

        Keys: ``test_loss``, ``test_accuracy`` and ``<name>_loss``, ``<name>_accuracy`` for each extra
        ``name -> (x, y)`` (a backdoor test set labelled with the target class gives
        ``backdoor_accuracy``, the attack's success rate).
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        sets = {"test": (self.x_test, self.y_test), **dict(extra or {})}
        was_training = self.model.training
        self.model.eval()
        out: dict[str, float] = {}
        try:
            for name, (x, y) in sets.items():
                x, y = x.to(self.device), y.to(self.device)
                loss_sum, correct = 0.0, 0
                for start in range(0, len(x), batch_size):
                    logits = self.flat.logits(self.params, x[start : start + batch_size])
                    target = y[start : start + batch_size]
                    loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
                    correct += int((logits.argmax(dim=1) == target).sum())
                out[f"{name}_loss"] = loss_sum / max(len(x), 1)
                out[f"{name}_accuracy"] = correct / max(len(x), 1)
        finally:
            self.model.train(was_training)
        return out

    # ------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume to the identical result (tensors and plain values only)."""
        return {
            "round": self.round,
            "params": self.params.clone(),
            "buffers": {k: v.clone() for k, v in self.model.named_buffers()},
            "client_state": {k: v.clone() for k, v in self.client_state.items()},
            "server_state": {k: v.clone() for k, v in self.server_state.items()},
            "generators": {
                "sample": [g.get_state() for g in self.sampler.generators],
                "attack": self.attack_generator.get_state(),
                "compress": self.compress_generator.get_state(),
            },
            "aggregator": object_state(self.aggregator),
            "attack": None if self.attack is None else object_state(self.attack),
            "compressor": None if self.compressor is None else object_state(self.compressor),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()`` taken from a simulator built with the same arguments."""
        params = state["params"]
        if params.shape != self.params.shape:
            raise ValueError(
                f"state_dict params have shape {tuple(params.shape)}, this model has ({self.flat.dim},)"
            )
        if len(state["generators"]["sample"]) != self.n:
            raise ValueError(f"state_dict is for {len(state['generators']['sample'])} clients, not {self.n}")
        self.round = int(state["round"])
        self.params = params.clone().to(self.device)
        self.flat.load_flat(self.params)
        buffers = dict(self.model.named_buffers())
        with torch.no_grad():
            for k, v in state["buffers"].items():
                buffers[k].copy_(v)
        self.client_state = {k: v.clone().to(self.device) for k, v in state["client_state"].items()}
        self.server_state = {k: v.clone().to(self.device) for k, v in state["server_state"].items()}
        for g, s in zip(self.sampler.generators, state["generators"]["sample"], strict=True):
            g.set_state(s)
        self.attack_generator.set_state(state["generators"]["attack"])
        self.compress_generator.set_state(state["generators"]["compress"])
        load_object_state(self.aggregator, state["aggregator"])
        if self.attack is not None and state["attack"] is not None:
            load_object_state(self.attack, state["attack"])
        if self.compressor is not None and state["compressor"] is not None:
            load_object_state(self.compressor, state["compressor"])
