"""The coded-scheme contract (DRACO's (A, E, D) tuple, Chen et al. 2018, §6.2 of seed 004 ch. 6).

A scheme fixes, for ``P`` workers and ``B`` data partitions,

* the **assignment** ``A``: which partitions each worker computes (``assignment()[j]``, a list of
  ``per_worker`` partition ids; the redundancy ratio is ``r = ||A||_0 / P``, Definition 6.2);
* the **encoder** ``E_j``: what worker ``j`` sends, a fixed linear combination of the gradients of its
  partitions (``encode`` / ``encode_all``);
* the **decoder** ``D``: the server's estimate of the *mean* of the ``B`` partition gradients from the
  ``P`` received messages, some of which may be arbitrary (``decode`` / ``decode_report``).

All schemes here use ``B = P`` partitions of equal size (the chapter's "B = P" convention): partition
``k`` is exactly the share plain distributed SGD would give worker ``k``, so a coded run consumes the
same minibatch as the uncoded one. ``decode`` returns the mean ``(1/P) sum_k g_k`` rather than the
chapter's sum ``G 1_P``, so its output has the scale of a plain aggregator's.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from robustfl.checks import check_int
from robustfl.registry import Configurable, Registry


@dataclass(frozen=True)
class DecodeReport:
    """What one decode saw: for the round's metrics.

    ``located``: workers the decoder identified as sending something other than their encoding;
    ``no_majority``: vote groups without a strict majority (their vote is the zero vector);
    ``residual``: the cyclic locator's syndrome residual relative to the messages (``None`` for
    vote-based schemes; ~1e-15 when at most ``s`` workers deviate, large when more did);
    ``seconds``: decode wall time.
    """

    located: tuple[int, ...]
    no_majority: int
    seconds: float
    residual: float | None = None

    def metrics(self) -> dict[str, float]:
        """Flat numbers for ``metrics.jsonl``."""
        out = {
            "decode_seconds": self.seconds,
            "located_adversaries": float(len(self.located)),
            "groups_without_majority": float(self.no_majority),
        }
        if self.residual is not None:
            out["locator_residual"] = self.residual
        return out


class CodedScheme(Configurable, ABC):
    """An (assignment, encoder, decoder) triple for ``workers`` workers; see the module docstring.

    Subclasses set ``workers`` and ``per_worker`` and implement ``assignment``, ``coefficients`` and
    ``_decode``. Encoding is linear: worker ``j`` sends ``sum_i coefficients()[j, i] * grads[i]`` over
    the gradients of its partitions in ``assignment()[j]`` order (complex coefficients are sent as
    ``[real parts, imaginary parts]``, so every message is a real vector of ``message_dim(d)``).
    """

    workers: int
    per_worker: int

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in super().params().items() if k != "per_worker"}

    @property
    def num_partitions(self) -> int:
        """``B``: the number of equal data partitions a round's minibatch is split into (= ``P``)."""
        return self.workers

    @property
    def redundancy(self) -> float:
        """Definition 6.2: ``r = ||A||_0 / P``, gradients computed per worker relative to plain SGD."""
        return self.workers * self.per_worker / self.num_partitions

    @abstractmethod
    def assignment(self) -> list[list[int]]:
        """``assignment()[j]``: the partition ids worker ``j`` computes, in encoding order."""

    @abstractmethod
    def coefficients(self) -> Tensor:
        """``Tensor[P, per_worker]``: worker ``j`` sends ``sum_i C[j, i] g_{assignment()[j][i]}``."""

    def message_dim(self, d: int) -> int:
        """Length of a message for ``d`` model parameters (``2d`` for complex codes)."""
        return 2 * d if self.coefficients().is_complex() else d

    def encode(self, worker: int, grads: Tensor) -> Tensor:
        """Worker ``worker``'s message from ``grads: Tensor[per_worker, d]`` (its partitions' gradients)."""
        check_int("worker", worker)
        if worker >= self.workers:
            raise ValueError(f"worker must be < P={self.workers}, got {worker}")
        if grads.dim() != 2 or grads.shape[0] != self.per_worker:
            raise ValueError(
                f"grads must have shape [per_worker={self.per_worker}, d], got {tuple(grads.shape)}"
            )
        return self._combine(self.coefficients()[worker : worker + 1], grads.unsqueeze(0))[0]

    def encode_all(self, grads: Tensor) -> Tensor:
        """All ``P`` messages at once from ``grads: Tensor[P, per_worker, d]`` -> ``Tensor[P, m]``."""
        if grads.dim() != 3 or grads.shape[:2] != (self.workers, self.per_worker):
            raise ValueError(
                f"grads must have shape [P={self.workers}, per_worker={self.per_worker}, d], "
                f"got {tuple(grads.shape)}"
            )
        return self._combine(self.coefficients(), grads)

    def encode_some(self, workers: list[int], grads: Tensor) -> Tensor:
        """The messages of ``workers`` only (one process's share), from ``grads: Tensor[m, per_worker,
        d]`` (row ``i``: the gradients of ``assignment()[workers[i]]``) -> ``Tensor[m, message_dim]``."""
        if any(not 0 <= j < self.workers for j in workers):
            raise ValueError(f"workers must be in [0, P={self.workers}), got {workers}")
        if grads.dim() != 3 or grads.shape[:2] != (len(workers), self.per_worker):
            raise ValueError(
                f"grads must have shape [{len(workers)}, per_worker={self.per_worker}, d], "
                f"got {tuple(grads.shape)}"
            )
        return self._combine(self.coefficients()[workers], grads)

    @staticmethod
    def _combine(coef: Tensor, grads: Tensor) -> Tensor:
        if not grads.is_floating_point():
            raise ValueError(f"grads must be float32 or float64, got {grads.dtype}")
        if not coef.is_complex():
            return torch.einsum("pr,prd->pd", coef.to(grads), grads)
        g = grads.to(torch.float64)
        re = torch.einsum("pr,prd->pd", coef.real.to(g), g)
        im = torch.einsum("pr,prd->pd", coef.imag.to(g), g)
        return torch.cat([re, im], dim=1)

    def decode(self, received: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The estimate of the mean partition gradient from ``received: Tensor[P, m]``."""
        return self.decode_report(received, generator)[0]

    def decode_report(
        self, received: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, DecodeReport]:
        """``decode`` plus a ``DecodeReport``. ``generator`` drives the decoder's own randomness
        (DETOX's vote groups, the cyclic locator's projections); ``None`` uses torch's global RNG."""
        self._check_received(received)
        start = time.perf_counter()
        out, located, no_majority, residual = self._decode(received, generator)
        report = DecodeReport(located, no_majority, time.perf_counter() - start, residual)
        return out, report

    def _check_received(self, received: Tensor) -> None:
        if not isinstance(received, Tensor) or received.dim() != 2:
            shape = tuple(received.shape) if isinstance(received, Tensor) else type(received).__name__
            raise ValueError(f"received must be a Tensor[P, m] (one message per worker), got {shape}")
        if received.shape[0] != self.workers:
            raise ValueError(f"received has {received.shape[0]} rows but the scheme has P={self.workers}")
        if not received.is_floating_point() or received.shape[1] == 0:
            raise ValueError(f"received must be a non-empty float tensor, got {received.dtype}")

    @abstractmethod
    def _decode(
        self, received: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, tuple[int, ...], int, float | None]:
        """``(estimate[d], located workers, groups without majority, locator residual or None)``."""


CODINGS: Registry[CodedScheme] = Registry("coding scheme")
