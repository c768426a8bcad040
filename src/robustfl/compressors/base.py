"""The compressor contract: ``msg = c.compress(x, rng)``, ``x_hat = c.decompress(msg)``, ``msg.bits``.

``x`` is one flat vector ``Tensor[d]`` (one sender) or a batch ``Tensor[n, d]`` (one row per sender,
as the simulator compresses all clients at once). A ``Message`` is a set of named payload fields, each
with the codec (``codecs.py``) that writes it on the wire, so ``msg.bits`` is the exact size of the
payload: values at their wire precision, indices, scales and norms, entropy-coded lengths where the
method specifies a code. Fields are either *per row* (each sender sends its own) or *shared* (sent
once for the batch, e.g. BlockSampling's coordinate set or RandL's mask seed).

Randomness comes from ``rng``: a ``torch.Generator`` for the whole batch, or :class:`RowStreams` (one
generator per sender plus one shared), which makes each sender's message depend only on its own
stream (what the engine passes: ``robustfl.streams``). Random draws are made on the generator's device
and moved to the input's device, so a CPU generator works for CUDA inputs (bit-for-bit reproducible
across devices) and a CUDA generator avoids the host round trip for CUDA inputs.
"""

from __future__ import annotations

import functools
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from robustfl.compressors.codecs import FLOAT_BITS, Codec
from robustfl.registry import Configurable, Registry

if TYPE_CHECKING:
    from robustfl.compressors.wire import Expect


@dataclass(frozen=True)
class Field:
    """One payload field: ``data`` is ``Tensor[n, m]`` (per row), a list of ``n`` tensors (per row, of
    varying length) or any tensor sent once for the batch (``per_row=False``)."""

    data: Tensor | list[Tensor]
    codec: Codec
    per_row: bool = True

    def row_bits(self, n: int) -> Tensor:
        """Bits each of the ``n`` rows spends on this field (zeros for a shared field)."""
        if not self.per_row:
            return torch.zeros(n, dtype=torch.long)
        if isinstance(self.data, list):
            return torch.stack([self.codec.bits(t).sum() for t in self.data])
        return self.codec.bits(self.data.reshape(n, -1))

    def shared_bits(self) -> int:
        if self.per_row:
            return 0
        assert isinstance(self.data, Tensor)
        return int(self.codec.bits(self.data).sum())

    def take_row(self, i: int) -> Field:
        if not self.per_row:
            return self
        if isinstance(self.data, list):
            return Field([self.data[i]], self.codec)
        return Field(self.data[i : i + 1], self.codec)


@dataclass
class Message:
    """What ``compress`` returns: the payload fields of ``n`` senders' messages over ``R^d``.

    ``bits`` = ``bits_per_row.sum() + shared_bits``; ``row(i)`` is sender ``i``'s self-contained
    message (its own fields plus the shared ones), the unit the distributed runtime sends with
    ``to_bytes()``. ``params`` is the compressor's canonical parameter text (``wire_params()``, set by
    ``compress`` and carried in the wire header), so a decoder with other parameters refuses it.
    """

    compressor: str
    n: int
    d: int
    dtype: torch.dtype
    fields: dict[str, Field]
    squeeze: bool = False
    params: str | None = None
    _bits_rows: Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def bits_per_row(self) -> Tensor:
        """``Tensor[n]`` (int64, CPU): the bits each sender's own fields take."""
        if self._bits_rows is None:
            total = torch.zeros(self.n, dtype=torch.long)
            for f in self.fields.values():
                total = total + f.row_bits(self.n)
            self._bits_rows = total
        return self._bits_rows

    @property
    def shared_bits(self) -> int:
        """Bits of the fields sent once for the whole batch."""
        return sum(f.shared_bits() for f in self.fields.values())

    @property
    def bits(self) -> int:
        """Exact payload bits of the whole batch."""
        return int(self.bits_per_row.sum()) + self.shared_bits

    def get(self, name: str) -> Tensor:
        """The tensor of field ``name``; a missing or ragged field raises ``ValueError``."""
        f = self.fields.get(name)
        if f is None or not isinstance(f.data, Tensor):
            raise ValueError(f"{self.compressor} message has no tensor field {name!r}")
        return f.data

    def get_rows(self, name: str, width: int | None = None) -> Tensor:
        """Per-row field ``name`` as ``Tensor[n, width]`` (``width`` inferred when ``None``); a size
        that does not fit raises ``ValueError``."""
        t = self.get(name)
        m = width if width is not None else t.numel() // self.n
        if t.numel() != self.n * m:
            expect = f"{self.n} x {width}" if width is not None else f"a multiple of {self.n}"
            raise ValueError(
                f"{self.compressor} message field {name!r} has {t.numel()} entries, expected {expect}"
            )
        return t.reshape(self.n, m)

    def get_list(self, name: str) -> list[Tensor]:
        """The per-row tensors of ragged field ``name``."""
        f = self.fields.get(name)
        if f is None or not isinstance(f.data, list) or len(f.data) != self.n:
            raise ValueError(f"{self.compressor} message has no per-row list field {name!r}")
        return f.data

    def row(self, i: int) -> Message:
        """Sender ``i``'s message alone (``n = 1``), including the shared fields it needs to decode."""
        if not -self.n <= i < self.n:
            raise ValueError(f"row index {i} out of range for a message of {self.n} rows")
        i %= self.n
        fields = {k: f.take_row(i) for k, f in self.fields.items()}
        return Message(
            self.compressor, 1, self.d, self.dtype, fields, squeeze=self.squeeze, params=self.params
        )

    def to_bytes(self) -> bytes:
        """The wire form (``wire.py``): a small header, then the bit-packed payload, then a CRC32."""
        from robustfl.compressors.wire import encode

        return encode(self)

    @staticmethod
    def from_bytes(data: bytes, expect: Expect | None = None) -> Message:
        """Parse ``to_bytes`` output. ``expect`` (``wire.Expect``: the model's ``d``, the senders per
        message, a size cap) states what the receiver accepts; anything else, and any malformed or
        truncated bytes, raise ``ValueError`` before the message's arrays are allocated."""
        from robustfl.compressors.wire import decode

        return decode(data, expect)


def check_vector(x: object) -> tuple[Tensor, bool]:
    """Validate compressor input; returns the batch view ``Tensor[n, d]`` and whether ``x`` was 1-D."""
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a torch.Tensor of shape [d] or [n, d], got {type(x).__name__}")
    if x.dim() not in (1, 2) or x.numel() == 0:
        raise ValueError(f"x must be a non-empty tensor of shape [d] or [n, d], got {tuple(x.shape)}")
    if x.dtype not in FLOAT_BITS:
        raise ValueError(f"x must be a float16/bfloat16/float32/float64 tensor, got {x.dtype}")
    return (x.unsqueeze(0), True) if x.dim() == 1 else (x, False)


@dataclass(frozen=True)
class RowStreams:
    """Randomness split by owner: ``rows[i]`` is sender ``i``'s own generator (its dither, its random
    coordinates) and ``shared`` the generator of draws all senders share (rand-l's mask, block sampling's
    coordinate set). Compressing row ``i`` alone with ``RowStreams((rows[i],), shared)`` gives exactly
    row ``i`` of the batch result, so a client's message never depends on who else sends."""

    rows: tuple[torch.Generator, ...]
    shared: torch.Generator

    def take(self, i: int) -> RowStreams:
        """Sender ``i``'s part: its own generator and the shared one."""
        return RowStreams((self.rows[i],), self.shared)


Randomness = torch.Generator | RowStreams | None
"""What ``compress`` accepts as ``rng``: one generator for the whole batch, one per row, or none."""


def shared_generator(rng: Randomness) -> torch.Generator | None:
    """The generator for draws every row shares."""
    return rng.shared if isinstance(rng, RowStreams) else rng


def _per_row(rng: RowStreams, shape: tuple[int, ...]) -> None:
    if not shape or shape[0] != len(rng.rows):
        raise ValueError(f"{len(rng.rows)} row generators cannot draw a batch of shape {shape}")


def uniform(shape: tuple[int, ...], rng: Randomness, device: torch.device) -> Tensor:
    """``U[0, 1)`` draws from ``rng`` (made on the generator's device, returned on ``device``); with
    :class:`RowStreams` row ``i`` of the result comes from ``rng.rows[i]``."""
    if isinstance(rng, RowStreams):
        _per_row(rng, shape)
        return torch.stack([uniform(shape[1:], g, device) for g in rng.rows])
    gen_device = rng.device if rng is not None else torch.device("cpu")
    return torch.rand(shape, generator=rng, device=gen_device).to(device)


def normal(shape: tuple[int, ...], rng: Randomness, device: torch.device) -> Tensor:
    """``N(0, 1)`` draws, split by row like :func:`uniform`."""
    if isinstance(rng, RowStreams):
        _per_row(rng, shape)
        return torch.stack([normal(shape[1:], g, device) for g in rng.rows])
    gen_device = rng.device if rng is not None else torch.device("cpu")
    return torch.randn(shape, generator=rng, device=gen_device).to(device)


def draw_seeds(n: int, rng: Randomness) -> Tensor:
    """``n`` fresh 63-bit seeds (int64, CPU) for seed-coded masks, one per row with :class:`RowStreams`."""
    if isinstance(rng, RowStreams):
        _per_row(rng, (n,))
        return torch.cat([draw_seeds(1, g) for g in rng.rows])
    gen_device = rng.device if rng is not None else torch.device("cpu")
    return torch.randint(0, 2**63 - 1, (n,), generator=rng, device=gen_device, dtype=torch.long).cpu()


class Compressor(Configurable, ABC):
    """``compress``/``decompress`` over a batch of flat vectors with exact bit accounting.

    Declared properties: ``unbiased`` (``E[x_hat] = x``), ``omega(d)`` (for unbiased compressors the
    variance factor: ``E||x_hat - x||^2 <= omega ||x||^2``) and ``delta(d)`` (contractive compressors:
    ``E||x_hat - x||^2 <= (1 - delta) ||x||^2``; ``None`` when no such guarantee holds). An unbiased
    compressor rescaled by ``1 / (1 + omega)`` is contractive with ``delta = 1 / (1 + omega)``.
    """

    name: ClassVar[str]
    unbiased: bool = False
    batch_coupled: ClassVar[bool] = False
    """Whether a row's message depends on the other rows of the batch (block sampling picks its
    coordinates from every sender's column norms): such a compressor must see the whole batch at once
    and cannot run on the senders' side of a real deployment."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every ``encode`` a subclass defines tags its message with ``wire_params()`` (as ``compress``
        does), so messages of the engine's stateful path can go on the wire and be checked on decode."""
        super().__init_subclass__(**kwargs)
        if "encode" in cls.__dict__:
            cls.encode = _tag_params(cls.__dict__["encode"])  # type: ignore[method-assign]

    def compress(self, x: Tensor, rng: Randomness = None) -> Message:
        """Compress ``x: Tensor[d]`` or ``Tensor[n, d]`` (one row per sender)."""
        batch, squeeze = check_vector(x)
        msg = self._compress(batch, rng)
        msg.squeeze = squeeze
        msg.params = self.wire_params()
        return msg

    def decompress(self, msg: Message) -> Tensor:
        """The reconstruction ``x_hat``, shaped like the ``x`` that was compressed."""
        if not isinstance(msg, Message):
            raise ValueError(f"decompress() needs a Message, got {type(msg).__name__}")
        if msg.compressor != self.name:
            raise ValueError(f"{type(self).__name__} cannot decode a {msg.compressor!r} message")
        if msg.params is not None and msg.params != self.wire_params():
            raise ValueError(
                f"this {msg.compressor} message was made with parameters {msg.params}, but the decoder "
                f"has {self.wire_params()}; decode with the sender's compressor settings"
            )
        out = self._decompress(msg)
        return out[0] if msg.squeeze else out

    def __call__(self, x: Tensor, rng: Randomness = None) -> Tensor:
        """``decompress(compress(x, rng))``."""
        return self.decompress(self.compress(x, rng))

    @abstractmethod
    def _compress(self, x: Tensor, rng: Randomness) -> Message: ...

    @abstractmethod
    def _decompress(self, msg: Message) -> Tensor: ...

    def omega(self, d: int) -> float | None:
        """Variance factor of an unbiased compressor in dimension ``d`` (``None`` if biased)."""
        return None

    def delta(self, d: int) -> float | None:
        """Contraction factor in dimension ``d``; an unbiased one with ``omega < 1`` has ``1 - omega``."""
        w = self.omega(d)
        return 1.0 - w if w is not None and w < 1 else None

    def init_row_state(self, row: Tensor) -> dict[str, Tensor]:
        """Per-sender state this compressor keeps between rounds (error feedback's memory); the engine
        stores it in client state, indexed by client id. Stateless compressors: empty."""
        return {}

    def encode(
        self, x: Tensor, rng: Randomness, state: dict[str, Tensor]
    ) -> tuple[Message, dict[str, Tensor]]:
        """Compress the batch ``x: Tensor[n, d]`` given each sender's state (rows of ``state``), and
        return the message and the new state. Stateless compressors: ``compress`` and ``state``."""
        return self.compress(x, rng), state

    def reset(self) -> None:
        """Forget state kept between calls (PowerSGD's warm start); stateless compressors: nothing."""

    def wire_params(self) -> str:
        """Canonical text of ``params()`` (compact JSON, keys sorted; a SHA-256 digest when longer than
        512 characters, e.g. long layer shape lists), sent in every message's header."""
        text = json.dumps(_canonical(self.params()), sort_keys=True, separators=(",", ":"))
        return text if len(text) <= 512 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _tag_params(encode: Callable[..., tuple[Message, dict[str, Tensor]]]) -> Callable[..., Any]:
    @functools.wraps(encode)
    def tagged(self: Compressor, *args: Any, **kwargs: Any) -> tuple[Message, dict[str, Tensor]]:
        msg, state = encode(self, *args, **kwargs)
        if msg.params is None:
            msg.params = self.wire_params()
        return msg, state

    return tagged


def _canonical(value: Any) -> Any:
    """JSON-ready form of parameter values: nested compressors by name and canonical parameters."""
    if isinstance(value, Compressor):
        return {"name": value.name, "params": value.wire_params()}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, torch.dtype):
        return str(value)
    return value


COMPRESSORS: Registry[Compressor] = Registry("compressor")
