"""Snapshot and restore the mutable state of plain Python objects (aggregators, attacks, compressors).

Rules keep their memory as attributes (BGMD's memory, centered clipping's centre, error feedback's
residuals). ``object_state`` copies every attribute that is a tensor, number, string, generator, or a
list/tuple/dict/object made of those; ``load_object_state`` writes such a copy back in place. Objects
with their own ``state_dict``/``load_state_dict`` use those instead. Callables (e.g. a schedule) are
configuration, not state, and are left out.
"""

from __future__ import annotations

import enum
import functools
import inspect
from typing import Any

import numpy as np
import torch
from torch import Tensor

_LEAVES = (bool, int, float, str, bytes, type(None), torch.dtype, torch.device)


def object_state(obj: object) -> dict[str, Any]:
    """A deep copy of the mutable state of ``obj`` made of tensors and plain values."""
    if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):
        return {"__state_dict__": _encode(obj.state_dict())}
    return {k: _encode(v) for k, v in vars(obj).items() if not _is_configuration(v)}


def _is_configuration(value: Any) -> bool:
    return inspect.isroutine(value) or isinstance(value, type | functools.partial)


def load_object_state(obj: object, state: dict[str, Any]) -> None:
    """Restore ``obj`` in place from ``object_state(obj)`` taken earlier."""
    if "__state_dict__" in state:
        obj.load_state_dict(_decode(None, state["__state_dict__"]))  # type: ignore[attr-defined]
        return
    for key, value in state.items():
        setattr(obj, key, _decode(getattr(obj, key, None), value))


def _encode(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, _LEAVES):
        return value
    if isinstance(value, torch.Generator):
        return {"__generator__": value.get_state()}
    if isinstance(value, enum.Enum):
        return {"__enum__": value.name}
    if isinstance(value, np.ndarray):
        return {"__numpy__": torch.from_numpy(value.copy())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return {"__sequence__": [_encode(v) for v in value], "__tuple__": isinstance(value, tuple)}
    if isinstance(value, dict):
        return {"__dict__": {k: _encode(v) for k, v in value.items()}}
    if hasattr(value, "__dict__"):
        return {"__object__": object_state(value)}
    raise ValueError(f"cannot snapshot state of type {type(value).__name__}; give it state_dict()")


def _decode(current: Any, value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.clone()
    if not isinstance(value, dict):
        return value
    if "__generator__" in value:
        gen = current if isinstance(current, torch.Generator) else torch.Generator()
        gen.set_state(value["__generator__"])
        return gen
    if "__enum__" in value:
        if not isinstance(current, enum.Enum):
            raise ValueError("cannot restore an enum attribute that the target does not have")
        return type(current)[value["__enum__"]]
    if "__numpy__" in value:
        return value["__numpy__"].numpy().copy()
    if "__sequence__" in value:
        old = list(current) if isinstance(current, list | tuple) else []
        items = [_decode(old[i] if i < len(old) else None, v) for i, v in enumerate(value["__sequence__"])]
        return tuple(items) if value["__tuple__"] else items
    if "__dict__" in value:
        old_map = current if isinstance(current, dict) else {}
        return {k: _decode(old_map.get(k), v) for k, v in value["__dict__"].items()}
    if "__object__" in value:
        if current is None:
            raise ValueError("cannot restore a nested object that the target does not have")
        load_object_state(current, value["__object__"])
        return current
    return value
