"""Flower ``ArrayRecord`` <-> one flat robustfl vector, and robustfl wire bytes as a uint8 array."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

WIRE_KEY = "robustfl.wire"
"""ArrayRecord key of a compressed upload: the compressor's wire bytes (``Message.to_bytes()``) as uint8."""
UPDATE_KEY = "robustfl.update"
"""ArrayRecord key of an uncompressed robustfl upload: the algorithm's message as float32."""
SHARED_KEY = "robustfl.shared"
"""RecordDict key of the broadcast beyond the global arrays (SCAFFOLD's ``c``, Mime's momentum)."""
PARAMS_FLAG = "robustfl.params-shared"
"""ConfigRecord key: whether the algorithm's broadcast holds the global parameters as ``params``."""


def part_key(base: str, part: str, parts: tuple[str, ...]) -> str:
    """The ArrayRecord key of one uploaded part: ``base`` for one-part algorithms, ``base/part`` else."""
    return base if len(parts) == 1 else f"{base}/{part}"


@dataclass(frozen=True)
class Layout:
    """Keys, shapes and dtypes of a model's arrays, in order."""

    keys: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    @property
    def dim(self) -> int:
        return sum(int(np.prod(s)) for s in self.shapes)


def flatten(record: Any) -> tuple[Tensor, Layout]:
    """An ``ArrayRecord`` as one float32 vector plus the layout that restores it."""
    keys, shapes, dtypes, flats = [], [], [], []
    for key, array in record.items():
        value = np.asarray(array.numpy())
        keys.append(key)
        shapes.append(tuple(int(s) for s in value.shape))
        dtypes.append(str(value.dtype))
        flats.append(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)).reshape(-1))
    vector = torch.cat(flats) if flats else torch.zeros(0)
    return vector, Layout(tuple(keys), tuple(shapes), tuple(dtypes))


def unflatten(vector: Tensor, layout: Layout) -> Any:
    """The ``ArrayRecord`` of ``vector`` in ``layout`` (each array back at its dtype)."""
    from flwr.app import Array, ArrayRecord

    arrays, offset = {}, 0
    values = vector.detach().to("cpu", torch.float32).numpy()
    for key, shape, dtype in zip(layout.keys, layout.shapes, layout.dtypes, strict=True):
        size = int(np.prod(shape))
        arrays[key] = Array(values[offset : offset + size].reshape(shape).astype(dtype))
        offset += size
    return ArrayRecord(array_dict=arrays)


def wire_array(data: bytes) -> Any:
    """Wire bytes as a Flower ``Array`` of uint8."""
    from flwr.app import Array

    return Array(np.frombuffer(data, dtype=np.uint8).copy())


def wire_bytes(array: Any) -> bytes:
    """The bytes of a uint8 ``Array``; another dtype raises ``ValueError``."""
    value = np.asarray(array.numpy())
    if value.dtype != np.uint8 or value.ndim != 1:
        raise ValueError(f"{WIRE_KEY} must be a 1-D uint8 array, got {value.dtype} of shape {value.shape}")
    return value.tobytes()
