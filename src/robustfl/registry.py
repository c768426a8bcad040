"""Name -> class registries, so configs and the CLI can say ``"krum"`` instead of importing a class."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A case-insensitive map from names to factories of ``kind`` objects.

    ``get(name, **params)`` builds one, turning an unknown name or parameter into a ``ValueError``
    that lists what is available instead of a ``TypeError`` from deep inside a constructor.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, *names: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Class decorator: ``@AGGREGATORS.register("krum")``."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            for name in names:
                key = name.lower()
                if key in self._entries and self._entries[key] is not factory:
                    raise ValueError(f"{self.kind} name {name!r} registered twice")
                self._entries[key] = factory
            return factory

        return decorate

    def names(self) -> list[str]:
        return sorted(self._entries)

    def primary_names(self) -> list[str]:
        """One name per factory: the first it was registered under, in registration order."""
        seen: dict[int, str] = {}
        for name, factory in self._entries.items():
            seen.setdefault(id(factory), name)
        return list(seen.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __getitem__(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name.lower()]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def get(self, name: str, **params: Any) -> T:
        """Build the ``name`` entry with ``params``, validating the parameter names first."""
        factory = self[name]
        signature = inspect.signature(factory)
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
        if not accepts_any:
            unknown = sorted(set(params) - set(signature.parameters))
            if unknown:
                allowed = ", ".join(signature.parameters) or "none"
                raise ValueError(
                    f"{self.kind} {name!r} has no parameter {', '.join(unknown)}; its parameters: {allowed}"
                )
        return factory(**params)

    def parameters(self, name: str) -> dict[str, Any]:
        """The constructor parameters of ``name`` with their defaults (``inspect.Parameter.empty`` if none)."""
        return {k: p.default for k, p in inspect.signature(self[name]).parameters.items()}


class Configurable:
    """Base of every registered component (aggregators, attacks, compressors, algorithms, ...).

    ``params()`` lists the public attributes the constructor set (for ``repr`` and a run's resolved
    config); subclasses with derived attributes override it. ``state_dict()`` / ``load_state_dict()``
    hold what a component remembers between rounds (``torch.optim`` style: tensors and plain values,
    so checkpoints load with ``weights_only=True``); stateless components keep the empty default and
    stateful ones (BGMD's memory, centered clipping's centre, a shuffle's generator) override both.
    """

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def state_dict(self) -> dict[str, Any]:
        """What this component remembers between calls (stateless: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state but got {sorted(state)}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
