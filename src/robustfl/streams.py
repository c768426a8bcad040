"""The one table of named random streams of a run, all derived from the config seed.

Every random draw of a run comes from a ``torch.Generator`` seeded with
``derive_seed(seed, stream, *keys)`` (SHA-256 of the labels, so adding a consumer never shifts another's
numbers). Two kinds of stream:

* **per-client** streams (``client(stream, client, round)``): a draw that belongs to one client depends
  only on ``(seed, stream, client id, round)`` — never on ``n``, on which other clients take part, or on
  how many draws the client made before. Client 7's minibatches in round 12 are the same whether 10 or
  1,000 clients run, in one process or many.
* **shared** streams (``shared(stream, round)``): draws every party must agree on (the round's cohort,
  the Byzantine ids, rand-l's mask, the attack's randomness).

Because each generator is derived afresh from its labels, no generator state needs checkpointing: a
resumed run, or another process computing the same client, draws the same numbers.
"""

from __future__ import annotations

import torch

from robustfl.utils import derive_seed

STREAMS: dict[str, str] = {
    "partition": "shared: how the training samples are split among the clients",
    "model-init": "shared: the model's initial weights",
    "sample": "per client and round: the client's minibatch indices",
    "augment": "per client and round: random crops and flips of the client's minibatches",
    "data-attack": "per client: the poisoning of a Byzantine client's local data (once, at construction)",
    "compress": "per client and round: the compressor's dither / random coordinates of the client's message",
    "compress-shared": "shared per round: draws every sender shares (rand-l's mask, block sampling's set)",
    "attack": "shared per round: the message attack's randomness",
    "cohort": "shared per round: which clients take part (workers.per_round)",
    "byzantine": "shared: which ids are Byzantine (byzantine.ids = 'random'; per round with resample)",
    "dropout": "per round: randomness inside the model (dropout), torch's global generator",
    "component": "shared: the seed of a component's constructor (BGMD's blocks, bucketing's shuffle, ...)",
    "root": "shared: the server's root data set (FLTrust) and, per round, its minibatches",
    "coding": "shared per round: a coded scheme's decoder (DETOX's vote groups, the cyclic locator)",
    "topology": "shared: the communication graph of decentralised training (the Erdős–Rényi draw)",
}
"""Every stream's name and what it drives (docs/engine.md prints this table)."""


def _check(stream: str) -> str:
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; the streams are: {', '.join(STREAMS)}")
    return stream


def _round(round: int | None) -> tuple[object, ...]:
    return () if round is None else ("round", int(round))


class Streams:
    """The random streams of one run, derived from ``seed``.

    ``Streams(0).client("sample", 3, 12)`` is client 3's sampling generator for round 12; every call
    returns a fresh generator in the same state, so draws never depend on call order.
    """

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.seed = seed

    def seed_of(self, stream: str, *keys: object) -> int:
        """The 63-bit integer seed of ``stream`` under ``keys`` (for constructors that take a seed)."""
        return derive_seed(self.seed, _check(stream), *keys)

    def generator(self, stream: str, *keys: object) -> torch.Generator:
        """A CPU generator seeded with :meth:`seed_of` ``(stream, *keys)``."""
        gen = torch.Generator()
        gen.manual_seed(self.seed_of(stream, *keys))
        return gen

    def client(self, stream: str, client: int, round: int | None = None, *tags: object) -> torch.Generator:
        """Client ``client``'s generator of ``stream`` for ``round`` (``None``: once per run); ``tags``
        (e.g. an uploaded part's name) give independent sub-streams."""
        return self.generator(
            stream, "client", int(client), *(() if round is None else ("round", int(round))), *tags
        )

    def clients(
        self, stream: str, ids: torch.Tensor | list[int], round: int | None = None, *tags: object
    ) -> list[torch.Generator]:
        """:meth:`client` for each id of ``ids``, in order."""
        return [self.client(stream, int(i), round, *tags) for i in ids]

    def shared(self, stream: str, round: int | None = None, *tags: object) -> torch.Generator:
        """The shared generator of ``stream`` for ``round`` (``None``: once per run); ``tags`` as in
        :meth:`client`."""
        return self.generator(stream, "shared", *(() if round is None else ("round", int(round))), *tags)

    def __repr__(self) -> str:
        return f"Streams(seed={self.seed})"
