"""Small shared helpers: flat parameter vectors and seeded random generators.

Every message a worker sends is a flat 1-D vector over the model's parameters (DESIGN.md).
``flatten``/``unflatten`` convert between a list of parameter tensors and that vector.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor


def flatten(tensors: Iterable[Tensor]) -> Tensor:
    """Concatenate tensors into one flat 1-D vector (a copy)."""
    parts = [t.reshape(-1) for t in tensors]
    if not parts:
        raise ValueError("flatten() needs at least one tensor")
    return torch.cat(parts)


def unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat vector into tensors shaped like ``like`` (views into ``vector``)."""
    total = sum(t.numel() for t in like)
    if vector.dim() != 1 or vector.numel() != total:
        raise ValueError(f"unflatten(): vector has shape {tuple(vector.shape)}, expected ({total},)")
    out, offset = [], 0
    for t in like:
        out.append(vector[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed derived deterministically from a root seed and any labels.

    ``derive_seed(cfg.seed, "data", client)`` gives each consumer its own independent stream,
    so adding a consumer never shifts the random numbers another one sees.
    """
    text = "/".join([str(seed), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def make_generator(seed: int, *keys: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``derive_seed(seed, *keys)``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, *keys))
    return gen
