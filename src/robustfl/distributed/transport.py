"""Point-to-point frames over ``torch.distributed`` (gloo on CPU, NCCL for CUDA tensors).

A frame is two messages from one rank to another: a header ``int64[4] = [MAGIC, kind, round, nbytes]``
then ``nbytes`` bytes as a ``uint8`` tensor (skipped when empty). Only ``send``/``recv`` are used:
no collective, no RPC, no pickle. Bytes on the wire per frame = 32 + ``nbytes``.

gloo aborts a pair when a receive times out, so the server never waits with a timeout on a socket:
one receiver thread per worker blocks in ``recv`` and puts frames (or the peer's death) in one inbox,
one sender thread per worker sends, and the server waits on the inbox with its round deadline. A hung
worker blocks only its own threads (daemons); a crashed one surfaces as :class:`Dead` (gloo reports
the closed connection).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from enum import IntEnum

import torch
import torch.distributed as dist

FRAME_MAGIC = 0x52464C3146524D45
HEADER_BYTES = 32


class Kind(IntEnum):
    """What a frame carries."""

    READY = 1  # worker -> server: built, owns these clients
    BROADCAST = 2  # server -> worker: the round's shared state
    UPLOAD = 3  # worker -> server: its clients' messages (or Byzantine own rows)
    CRAFTED = 4  # server -> worker: the attack's rows for its Byzantine clients
    FINAL = 5  # worker -> server: the Byzantine clients' compressed crafted messages
    STOP = 6  # server -> worker: the run is over


class ProtocolError(RuntimeError):
    """A frame header that is not ours (the stream from that peer cannot be trusted any more)."""


@dataclass(frozen=True)
class Frame:
    src: int
    kind: int
    round: int
    payload: bytes


@dataclass(frozen=True)
class Dead:
    """A peer whose connection failed (crashed, killed, or sent a frame we cannot parse)."""

    src: int
    reason: str


def send_frame(dst: int, kind: int, round: int, payload: bytes, device: torch.device) -> int:
    """Send one frame (blocking); returns the bytes put on the wire."""
    header = torch.tensor([FRAME_MAGIC, int(kind), int(round), len(payload)], dtype=torch.int64)
    dist.send(header.to(device), dst=dst)
    if payload:
        dist.send(torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device), dst=dst)
    return HEADER_BYTES + len(payload)


def recv_frame(src: int, device: torch.device, max_bytes: int) -> Frame:
    """Receive one frame from ``src`` (blocking)."""
    header = torch.zeros(4, dtype=torch.int64, device=device)
    dist.recv(header, src=src)
    magic, kind, round, nbytes = (int(v) for v in header.cpu())
    if magic != FRAME_MAGIC or kind not in Kind.__members__.values() or not 0 <= nbytes <= max_bytes:
        raise ProtocolError(f"bad frame header from rank {src}: kind {kind}, {nbytes} bytes")
    payload = b""
    if nbytes:
        buf = torch.empty(nbytes, dtype=torch.uint8, device=device)
        dist.recv(buf, src=src)
        payload = buf.cpu().numpy().tobytes()
    return Frame(src, kind, round, payload)


class ServerLink:
    """The server's side: a sender and a receiver thread per worker rank, one inbox."""

    def __init__(self, ranks: list[int], device: torch.device, max_bytes: int) -> None:
        self.device, self.max_bytes = device, max_bytes
        self.inbox: queue.Queue[Frame | Dead] = queue.Queue()
        self.outboxes: dict[int, queue.Queue[tuple[int, int, bytes] | None]] = {}
        self.senders: dict[int, threading.Thread] = {}
        for rank in ranks:
            self.outboxes[rank] = queue.Queue()
            threading.Thread(target=self._receive, args=(rank,), daemon=True).start()
            self.senders[rank] = threading.Thread(target=self._send, args=(rank,), daemon=True)
            self.senders[rank].start()

    def _receive(self, rank: int) -> None:
        while True:
            try:
                frame = recv_frame(rank, self.device, self.max_bytes)
            except Exception as err:  # connection closed, bad header: this peer is gone
                self.inbox.put(Dead(rank, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"))
                return
            self.inbox.put(frame)

    def _send(self, rank: int) -> None:
        box = self.outboxes[rank]
        while (item := box.get()) is not None:
            try:
                send_frame(rank, *item, device=self.device)
            except Exception as err:
                self.inbox.put(Dead(rank, f"send failed: {str(err).splitlines()[0][:200]}"))
                return

    def send(self, rank: int, kind: Kind, round: int, payload: bytes) -> int:
        """Queue a frame for ``rank`` (never blocks); returns its bytes on the wire."""
        self.outboxes[rank].put((int(kind), round, payload))
        return HEADER_BYTES + len(payload)

    def get(self, deadline: float) -> Frame | Dead | None:
        """The next frame or death, or ``None`` once ``deadline`` (``time.monotonic``) has passed."""
        try:
            return self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def close(self, timeout: float = 10.0) -> None:
        """Let the queued frames go out (at most ``timeout`` seconds in all), then stop the senders."""
        for box in self.outboxes.values():
            box.put(None)
        end = time.monotonic() + timeout
        for thread in self.senders.values():
            thread.join(max(0.0, end - time.monotonic()))
