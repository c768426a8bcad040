"""Executors: run one algorithm's client step for a batch of clients (the local-compute phase).

An executor takes the broadcast ``shared``, the clients' minibatches ``xs: Tensor[m, steps, B, ...]``
(or a :class:`~robustfl.engine.inputs.CohortInputs` that gathers the rows of each chunk as it is read),
``ys: Tensor[m, steps, B]`` and their states (each ``Tensor[m, ...]``) and returns the batched
:class:`~robustfl.algorithms.base.ClientOutput`: every message part ``Tensor[m, d]``, the new states,
the losses ``Tensor[m]`` and the per-client metrics ``Tensor[m]``.

* :class:`VmapExecutor` — ``torch.func.vmap`` over clients in chunks (one batched call per chunk);
* :class:`LoopExecutor` — a Python loop with ``torch.autograd.grad`` (any model: batch norm in
  training mode, fused LSTMs).

Both compute the same math. The distributed runtime runs one of them over its own share of clients, so
a third placement needs no change to any algorithm (FedJAX's ``for_each_client`` is the model).

**No concatenation.** Both executors write into one preallocated message buffer ``[m, d]``: a client's
first gradient goes layer by layer straight into its row (``FlatModel.write_flat``), so a client step
that sends its gradient (distributed SGD) leaves its message in place; any other message is copied
into the row after the step. Every other output (states, losses, metrics) is copied chunk by chunk into
an ``[m, ...]`` tensor allocated at the first chunk, so neither the per-layer gradients nor the chunks
are ever concatenated and no list of chunk outputs is alive at once. The message buffer is kept for
the next call with the same ``m``, ``d``, dtype and device, unless something still refers to it (an
aggregator that kept the messages, a caller that holds the output): then a new one is allocated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch
from torch import Tensor
from torch.func import vmap

from robustfl.algorithms.base import Algorithm, ClientOutput, State
from robustfl.checks import check_int
from robustfl.engine.functional import FlatModel
from robustfl.engine.inputs import CohortInputs


class Executor(Protocol):
    """Runs ``algorithm.client_step`` for ``m`` clients (see the module docstring)."""

    def run(
        self,
        algorithm: Algorithm,
        flat: FlatModel,
        shared: State,
        xs: Tensor | CohortInputs,
        ys: Tensor,
        states: State,
        lr: float,
    ) -> ClientOutput: ...


def _storage_refs(t: Tensor) -> int:
    """How many tensors share ``t``'s storage (views included); -1 when torch cannot tell."""
    try:
        return int(torch._C._storage_Use_Count(t.untyped_storage()._cdata))
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch without the counter
        return -1


class MessageBuffer:
    """The ``[m, d]`` message buffer an executor writes into, kept across rounds while it is free.

    ``get`` returns the kept buffer when its shape, dtype and device match and no tensor outside this
    object refers to its storage (the storage's use count is what it was at allocation); otherwise a
    new, uninitialised one, which it then keeps.
    """

    def __init__(self) -> None:
        self._buffer: Tensor | None = None
        self._refs = 0

    def get(self, m: int, d: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        buf = self._buffer
        if (
            buf is not None
            and buf.shape == (m, d)
            and buf.dtype == dtype
            and buf.device == device
            and self._refs > 0
            and _storage_refs(buf) == self._refs
        ):
            return buf
        self._buffer = None  # let the old one go before the new one is allocated
        buf = torch.empty(m, d, dtype=dtype, device=device)
        self._buffer, self._refs = buf, _storage_refs(buf)
        return buf


def _same_memory(a: Tensor, b: Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


def _put(dst: Tensor, src: Tensor) -> None:
    """``dst.copy_(src)`` unless ``src`` already is ``dst`` (a gradient the client step sent as is)."""
    if not _same_memory(dst, src):
        dst.copy_(src)


class _Outputs:
    """The ``[m, ...]`` outputs of one executor call, filled rows ``[a, b)`` at a time.

    The message part that the client step returned in place of its first gradient, or else the first
    part of shape ``[d]`` and the buffer's dtype, lives in ``first`` (the buffer the first gradients
    were written into); every other leaf gets a tensor allocated at the first chunk. Within a chunk
    every other leaf is copied before ``first``'s rows are overwritten, so an output that aliases the
    first gradient (a state that keeps it) is saved before the message replaces it.
    """

    def __init__(self, m: int, first: Tensor) -> None:
        self.m, self.first = m, first
        self.in_first: str | None = None
        self.message: dict[str, Tensor] = {}
        self.state: dict[str, Tensor] = {}
        self.metrics: dict[str, Tensor] = {}
        self.loss: Tensor | None = None
        self.order: list[str] | None = None  # the message's part names ([""]: one tensor)

    def _alloc(self, like: Tensor) -> Tensor:
        return like.new_empty((self.m, *like.shape[1:]))

    def _fill(self, store: dict[str, Tensor], values: Mapping[str, Tensor], a: int, b: int) -> None:
        for k, v in values.items():
            if k not in store:
                store[k] = self._alloc(v)
            _put(store[k][a:b], v)

    def write(self, a: int, b: int, out: ClientOutput) -> None:
        parts = {"": out.message} if isinstance(out.message, Tensor) else dict(out.message)
        if self.order is None:  # first chunk: which part lives in ``first``
            self.order = list(parts)
            rows = self.first[a:b]
            fits = [k for k, v in parts.items() if v.shape == rows.shape and v.dtype == rows.dtype]
            in_place = [k for k in fits if _same_memory(parts[k], rows)]
            self.in_first = next(iter(in_place or fits), None)
        if self.loss is None:
            self.loss = self._alloc(out.loss)
        _put(self.loss[a:b], out.loss)
        self._fill(self.state, out.state, a, b)
        self._fill(self.metrics, out.metrics, a, b)
        self._fill(self.message, {k: v for k, v in parts.items() if k != self.in_first}, a, b)
        if self.in_first is not None:
            _put(self.first[a:b], parts[self.in_first])

    def result(self) -> ClientOutput:
        assert self.loss is not None and self.order is not None, "no client was run"
        if self.in_first is not None:
            self.message[self.in_first] = self.first
        message: Tensor | dict[str, Tensor] = (
            self.message[""] if self.order == [""] else {k: self.message[k] for k in self.order}
        )
        return ClientOutput(message, self.state, self.loss, self.metrics)


def _message_dtype(flat: FlatModel) -> torch.dtype:
    return flat.shapes[0].dtype


class VmapExecutor:
    """``vmap`` over clients, ``clients_per_call`` at a time (it changes speed and rounding only).

    The chunks are those of ``vmap(..., chunk_size=clients_per_call)``; each chunk's outputs are
    written into the call's ``[m, ...]`` outputs (see the module docstring), so the results equal
    the chunked ``vmap`` with concatenated per-layer gradients bit for bit.
    """

    def __init__(self, clients_per_call: int = 10) -> None:
        self.clients_per_call = check_int("clients_per_call", clients_per_call, minimum=1)
        self.buffer = MessageBuffer()

    def run(
        self,
        algorithm: Algorithm,
        flat: FlatModel,
        shared: State,
        xs: Tensor | CohortInputs,
        ys: Tensor,
        states: State,
        lr: float,
    ) -> ClientOutput:
        m = xs.shape[0]
        first = self.buffer.get(m, flat.dim, _message_dtype(flat), xs.device)

        def one_client(shared: State, x: Tensor, y: Tensor, state: State, row: Tensor) -> ClientOutput:
            return ClientOutput(*algorithm.client_step(shared, x, y, state, lr, flat.vmap_grad_fn(row)))

        batched = vmap(one_client, in_dims=(None, 0, 0, 0, 0), randomness="different")
        outputs = _Outputs(m, first)
        for a in range(0, m, self.clients_per_call):
            b = min(a + self.clients_per_call, m)
            chunk = {k: v[a:b] for k, v in states.items()}
            outputs.write(a, b, batched(shared, xs[a:b], ys[a:b], chunk, first[a:b]))
        return outputs.result()

    def __repr__(self) -> str:
        return f"VmapExecutor(clients_per_call={self.clients_per_call})"


class LoopExecutor:
    """One client at a time with ``torch.autograd.grad``."""

    def __init__(self) -> None:
        self.buffer = MessageBuffer()

    def run(
        self,
        algorithm: Algorithm,
        flat: FlatModel,
        shared: State,
        xs: Tensor | CohortInputs,
        ys: Tensor,
        states: State,
        lr: float,
    ) -> ClientOutput:
        m = xs.shape[0]
        first = self.buffer.get(m, flat.dim, _message_dtype(flat), xs.device)
        outputs = _Outputs(m, first)
        for i in range(m):
            state = {k: v[i] for k, v in states.items()}
            out = algorithm.client_step(shared, xs[i], ys[i], state, lr, flat.loop_grad_fn(first[i]))
            outputs.write(i, i + 1, _as_rows(out))
        return outputs.result()

    def __repr__(self) -> str:
        return "LoopExecutor()"


def _as_rows(out: ClientOutput) -> ClientOutput:
    """One client's output as a chunk of one row (views: a message left in place stays in place)."""
    message = out.message
    return ClientOutput(
        message.unsqueeze(0)
        if isinstance(message, Tensor)
        else {k: v.unsqueeze(0) for k, v in message.items()},
        {k: v.unsqueeze(0) for k, v in out.state.items()},
        out.loss.unsqueeze(0),
        {k: v.unsqueeze(0) for k, v in out.metrics.items()},
    )
