"""One round as phases: the functions the simulator composes, and the distributed runtime too.

    plan (cohort, Byzantine ids) → broadcast → data (sample, augment) → local compute (an executor)
    → Byzantine injection (attack) → transmit (compress, exact bits) → aggregate and update

Upload support (``Algorithm.upload_support``, masked training's core in masked rounds): when the round's
broadcast fixes a support ``s`` of ``K`` of the ``d`` coordinates, a client sends of each ``d``-wide
part only the columns ``s`` (:func:`restrict`), raw or compressed as a ``[m, K]`` matrix, and the server
puts what it decodes back into zeros ``[m, d]`` (:func:`expand`), so the server step sees ``d``-wide rows.
The compressor's per-client state stays ``d`` wide: entries as wide as the part are gathered on the
support before the encode and scattered back after it, so the state off the support is kept unchanged
(error-feedback memory off the core waits for the next round that sends those coordinates). A
compressor that reads the layer structure of the flat vector (a ``shapes`` parameter: PowerSGD, ATOMO's
SVD atoms, ``LayerWise``) cannot encode a bare support vector; it encodes the ``d``-wide message as
before (:func:`upload_support`; an honest one is zero off the support).

Every function is a function of tensors plus the run's :class:`~robustfl.streams.Streams`, so two
runtimes that call them with the same arguments compute the same numbers. Client state is a dict of
``Tensor[n, ...]`` indexed by client id; a phase reads and writes only the rows of the round's cohort.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from robustfl.aggregators.base import Aggregator
from robustfl.algorithms.base import (
    Aggregators,
    Algorithm,
    Cohort,
    Messages,
    ServerOutput,
    State,
    tensor_bits,
)
from robustfl.compressors.base import Compressor, Message, RowStreams
from robustfl.streams import Streams

COMPRESSOR_STATE = "compress"
"""Prefix of the compressor's per-client state keys in client state (``compress.<part>.<key>``)."""


def gather_rows(state: Mapping[str, Tensor], ids: Tensor) -> State:
    """The cohort's rows of a per-client state."""
    return {k: v[ids.to(v.device)] for k, v in state.items()}


def scatter_rows(state: dict[str, Tensor], ids: Tensor, rows: Mapping[str, Tensor]) -> None:
    """Write the cohort's new rows back into the per-client state (in place)."""
    for k, v in rows.items():
        state[k][ids.to(state[k].device)] = v.to(state[k])


def as_parts(message: Tensor | Mapping[str, Tensor], parts: tuple[str, ...]) -> dict[str, Tensor]:
    """The stacked upload as ``{part: Tensor[m, d_part]}`` (a one-part algorithm's tensor is its part)."""
    if isinstance(message, Tensor):
        if len(parts) != 1:
            raise ValueError(f"the client step returned one tensor but the algorithm uploads parts {parts}")
        return {parts[0]: message.detach()}
    if tuple(message) != parts:
        raise ValueError(f"the client step uploaded parts {tuple(message)}, the algorithm declares {parts}")
    return {k: v.detach() for k, v in message.items()}


def from_parts(parts: Mapping[str, Tensor]) -> Messages:
    """Inverse of :func:`as_parts` for the server step."""
    return next(iter(parts.values())) if len(parts) == 1 else dict(parts)


def inject(
    attack: Any, parts: dict[str, Tensor], byzantine: Tensor, streams: Streams, round: int
) -> dict[str, Tensor]:
    """Replace the Byzantine rows of every part with the attack's output, in place (the parts are the
    round's message buffers: no copy of ``[m, d]``).

    ``attack(honest[h, d], f, rng=, round=, own=)`` sees copies of the honest rows of the part and of
    the Byzantine clients' own true rows; its randomness comes from the shared ``attack`` stream of the
    round (one per part).
    """
    f = int(byzantine.sum())
    if attack is None or f == 0:
        return parts
    out = {}
    for name, rows in parts.items():
        mask = byzantine.to(rows.device)
        honest, own = rows[~mask], rows[mask]
        if honest.shape[0] == 0:
            raise ValueError(
                f"round {round}: every client of the cohort is Byzantine; the attack needs honest rows"
            )
        keys: tuple[object, ...] = (round,) if len(parts) == 1 else (round, "part", name)
        rng = streams.generator("attack", "shared", "round", *keys)
        byz = attack(honest, f, rng=rng, round=round, own=own)
        if tuple(byz.shape) != (f, rows.shape[1]):
            raise ValueError(f"attack returned shape {tuple(byz.shape)}, expected ({f}, {rows.shape[1]})")
        rows[mask] = byz.to(rows)
        out[name] = rows
    return out


def coded_partitions(scheme: Any, workers: Tensor) -> Tensor:
    """The partitions whose gradients ``workers`` encode (sorted, each once): what one process of the
    distributed runtime computes for its share of a coded scheme's workers."""
    assignment = scheme.assignment()
    return torch.tensor(sorted({p for j in workers.tolist() for p in assignment[j]}), dtype=torch.long)


def encode_coded(
    scheme: Any, parts: dict[str, Tensor], partitions: Tensor | None = None, workers: Tensor | None = None
) -> tuple[dict[str, Tensor], float]:
    """A coded scheme's encoding (DRACO, DETOX; ``robustfl.coding``): row ``k`` of the clients'
    messages is the gradient of partition ``partitions[k]`` (default: ``k``), and worker ``j`` sends
    ``encode`` of the partitions of ``scheme.assignment()[j]``, for every worker (the simulator) or for
    ``workers`` (one process's share). Each partition's gradient is computed once and gathered (honest
    workers are deterministic, so this equals computing it on every assigned worker). Returns the
    encoded messages ``[P or len(workers), message_dim]`` and the encoding seconds."""
    import time

    ((name, rows),) = parts.items()
    start = time.perf_counter()
    assignment = scheme.assignment()
    if workers is None:
        index = torch.tensor(assignment, dtype=torch.long, device=rows.device)
        encoded = scheme.encode_all(rows[index])
    else:
        have = range(rows.shape[0]) if partitions is None else partitions.tolist()
        position = {p: k for k, p in enumerate(have)}
        chosen = workers.tolist()
        index = torch.tensor(
            [[position[p] for p in assignment[j]] for j in chosen], dtype=torch.long, device=rows.device
        )
        encoded = scheme.encode_some(chosen, rows[index])
    return {name: encoded}, time.perf_counter() - start


def decode_coded(
    scheme: Any, parts: dict[str, Tensor], dtype: torch.dtype, streams: Streams, round: int
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """The scheme's decoder (before the server step): one recovered gradient ``[1, d]`` and the decode
    metrics (located adversaries, groups without a majority, seconds). Randomness from the shared
    ``coding`` stream of the round."""
    ((name, rows),) = parts.items()
    estimate, report = scheme.decode_report(rows, streams.shared("coding", round))
    return {name: estimate.unsqueeze(0).to(dtype)}, report.metrics()


def reads_layers(compressor: Compressor) -> bool:
    """Whether ``compressor`` (or one it wraps) reads the layer structure of the flat vector: a
    ``shapes`` parameter that is set (PowerSGD, ATOMO's SVD atoms, ``LayerWise``)."""
    for key, value in compressor.params().items():
        values = value if isinstance(value, list | tuple) else [value]
        if key == "shapes" and value is not None:
            return True
        if any(isinstance(v, Compressor) and reads_layers(v) for v in values):
            return True
    return False


def upload_support(algorithm: Algorithm, compressor: Compressor | None, shared: State) -> Tensor | None:
    """The round's upload support (``algorithm.upload_support(shared)``, a bool ``Tensor[d]``), or
    ``None`` when every coordinate goes on the wire: no support, a full one, or a compressor that reads
    layers (:func:`reads_layers`: it encodes the ``d``-wide message)."""
    support = algorithm.upload_support(shared)
    if support is None:
        return None
    if not isinstance(support, Tensor) or support.dtype != torch.bool or support.dim() != 1:
        raise ValueError(
            f"{type(algorithm).__name__}.upload_support must return a bool Tensor[d] or None, got "
            f"{getattr(support, 'dtype', type(support).__name__)} of shape {tuple(getattr(support, 'shape', ()))}"
        )
    if bool(support.all()) or (compressor is not None and reads_layers(compressor)):
        return None
    return support


def _columns(support: Tensor | None, width: int) -> Tensor | None:
    """The support's coordinates for a part ``width`` wide (``None``: the part goes whole)."""
    if support is None or support.numel() != width:
        return None
    return torch.nonzero(support).flatten()


def sent_width(support: Tensor | None, width: int) -> int:
    """How many values of a part ``width`` wide go on the wire: ``K`` on the support, else ``width``."""
    cols = _columns(support, width)
    return width if cols is None else cols.numel()


def restrict(parts: Mapping[str, Tensor], support: Tensor | None) -> dict[str, Tensor]:
    """What goes on the wire: of each part as wide as ``support`` (last dimension) its support's
    columns ``[..., K]``; other parts whole."""
    out = {}
    for name, rows in parts.items():
        cols = _columns(support, rows.shape[-1])
        out[name] = rows if cols is None else rows[..., cols.to(rows.device)]
    return out


def expand(
    sent: Mapping[str, Tensor], support: Tensor | None, widths: Mapping[str, int]
) -> dict[str, Tensor]:
    """Inverse of :func:`restrict` on the server: each part whose full width ``widths[part]`` is the
    support's, received as ``[..., K]``, put back into zeros ``[..., d]`` on the support; the other
    parts are returned as they are."""
    out = dict(sent)
    for name, values in sent.items():
        cols = _columns(support, widths[name])
        if cols is None:
            continue
        if values.shape[-1] != cols.numel():
            raise ValueError(f"part {name!r} has {values.shape[-1]} values, the support {cols.numel()}")
        full = values.new_zeros((*values.shape[:-1], widths[name]))
        full[..., cols.to(values.device)] = values
        out[name] = full
    return out


def init_compressor_state(compressor: Compressor | None, parts: Mapping[str, Tensor], n: int) -> State:
    """Per-client compressor state for ``n`` clients (error-feedback memory, PowerSGD's warm start)."""
    if compressor is None:
        return {}
    state: State = {}
    for name, row in parts.items():
        for key, value in compressor.init_row_state(row).items():
            state[f"{COMPRESSOR_STATE}.{name}.{key}"] = value.unsqueeze(0).repeat_interleave(n, 0)
    return state


def encode_parts(
    compressor: Compressor,
    parts: Mapping[str, Tensor],
    ids: Tensor,
    state: State,
    streams: Streams,
    round: int,
    support: Tensor | None = None,
) -> tuple[dict[str, Message], State]:
    """Compress every part of the clients ``ids`` (rows in that order); return the messages and the
    clients' new compressor state.

    Client ``i``'s draws come from ``streams.client("compress", i, round)`` and the shared ones from
    ``streams.shared("compress-shared", round)`` (one per part for multi-part algorithms), so row ``i``
    of the result is the message client ``i`` sends alone: the simulator encodes the whole cohort at
    once, a distributed worker its own share, and both produce the same bytes.

    With ``support`` (:func:`upload_support`) a ``d``-wide part is encoded on its support's columns only
    (messages ``K`` wide); the state entries ``[m, d]`` are gathered on the support and scattered back,
    so the state off the support is returned unchanged (module docstring).
    """
    messages, new_state = {}, {}
    for name, rows in parts.items():
        keys: tuple[object, ...] = (round,) if len(parts) == 1 else (round, "part", name)
        rng = RowStreams(
            tuple(streams.generator("compress", "client", int(i), "round", *keys) for i in ids),
            streams.generator("compress-shared", "shared", "round", *keys),
        )
        prefix = f"{COMPRESSOR_STATE}.{name}."
        own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        cols = _columns(support, rows.shape[1])
        if cols is None:
            msg, own = compressor.encode(rows, rng, own)
        else:
            wide = {k for k, v in own.items() if v.dim() == 2 and tuple(v.shape) == tuple(rows.shape)}
            gathered = {k: v[:, cols.to(v.device)] if k in wide else v for k, v in own.items()}
            msg, encoded = compressor.encode(rows[:, cols.to(rows.device)], rng, gathered)
            for k in wide:
                full = own[k].clone()
                full[:, cols.to(full.device)] = encoded[k].to(full)
                encoded[k] = full
            own = encoded
        messages[name] = msg
        new_state.update({prefix + k: v for k, v in own.items()})
    return messages, new_state


def transmit(
    compressor: Compressor | None,
    parts: dict[str, Tensor],
    ids: Tensor,
    state: State,
    streams: Streams,
    round: int,
    support: Tensor | None = None,
) -> tuple[dict[str, Tensor], int, State]:
    """Compress and decode every part (:func:`encode_parts`); return what the server decodes, the exact
    uplink bits and the clients' new compressor state (rows of the cohort).

    Without a compressor every value sent travels at its dtype's width (32 bits for float32). With
    ``support`` (:func:`upload_support`) only its columns of each ``d``-wide part are sent, and the
    server's rows are zero off the support (module docstring).
    """
    widths = {name: rows.shape[1] for name, rows in parts.items()}
    if compressor is None:
        sent = restrict(parts, support)
        return expand(sent, support, widths), tensor_bits(sent), state
    messages, new_state = encode_parts(compressor, parts, ids, state, streams, round, support)
    decoded = {name: compressor.decompress(msg).to(parts[name].dtype) for name, msg in messages.items()}
    return expand(decoded, support, widths), sum(int(msg.bits) for msg in messages.values()), new_state


def aggregators_for(aggregator: Aggregator, parts: tuple[str, ...]) -> Aggregators:
    """One aggregator instance per uploaded part (copies of ``aggregator``: separate memory)."""
    if len(parts) == 1:
        return aggregator
    import copy

    return {name: copy.deepcopy(aggregator) for name in parts}


def aggregate_update(
    algorithm: Algorithm,
    params: Tensor,
    parts: Mapping[str, Tensor],
    aggregators: Aggregators,
    server_state: State,
    lr: float,
    round: int,
    cohort: Cohort,
) -> ServerOutput:
    """The algorithm's server step, with the shape of the new parameters checked.

    Rules that keep per-client memory (``tracks_clients``, e.g. FoolsGold) are first told which client
    sent each row, so their memory follows clients under sampling.
    """
    for agg in aggregators.values() if isinstance(aggregators, Mapping) else [aggregators]:
        if getattr(agg, "tracks_clients", False):
            agg.set_clients(cohort.ids)  # type: ignore[attr-defined]
    out = algorithm.server_step(params, from_parts(parts), aggregators, server_state, lr, round, cohort)
    if out.params.shape != params.shape:
        raise ValueError(
            f"the server step returned shape {tuple(out.params.shape)}, expected {tuple(params.shape)}: "
            f"{aggregators!r} must reduce [n, d] to [d] (end a pre-aggregator with a rule, e.g. "
            "Pipeline(NNM(f), Krum(f)))"
        )
    return ServerOutput(out.params.detach(), out.state, out.metrics)


def honest_mean(values: Tensor, byzantine: Tensor) -> float:
    """Mean of ``values`` over the honest rows (all rows if none is honest)."""
    keep = ~byzantine.to(values.device)
    return float(values[keep].mean() if bool(keep.any()) else values.mean())


def client_metrics(metrics: Mapping[str, Tensor], byzantine: Tensor) -> dict[str, float]:
    """Per-client metrics reduced to their honest mean."""
    return {k: honest_mean(v.float(), byzantine) for k, v in metrics.items()}


__all__ = [
    "COMPRESSOR_STATE",
    "aggregate_update",
    "aggregators_for",
    "as_parts",
    "client_metrics",
    "coded_partitions",
    "decode_coded",
    "encode_coded",
    "encode_parts",
    "expand",
    "from_parts",
    "gather_rows",
    "honest_mean",
    "init_compressor_state",
    "inject",
    "reads_layers",
    "restrict",
    "scatter_rows",
    "sent_width",
    "transmit",
    "upload_support",
]
