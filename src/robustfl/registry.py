"""Name -> class registries, so configs and the CLI can say ``"krum"`` instead of importing a class.

Names are case-insensitive and kebab-case: ``top_k`` and ``TOP-K`` find the entry registered as
``top-k`` (underscores are read as hyphens, so older snake_case names keep working).

Users' own components reach a registry three ways (docs/plugins.md):

* ``module:attribute`` as a name (``mypkg.rules:MyRule``) imports ``module`` and uses ``attribute`` as
  the factory, without registering anything;
* :func:`import_modules` (a config's ``imports = [...]``, the CLI's ``--import``) imports modules whose
  ``@REGISTRY.register(...)`` decorators run on import;
* installed packages declare an entry point in the group ``robustfl.plugins``
  (``[project.entry-points."robustfl.plugins"] mine = "mypkg.robustfl_plugin"``); :func:`load_plugins`
  imports them all, and a registry does so by itself the first time a name is not found.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PLUGIN_GROUP = "robustfl.plugins"
_plugins_loaded = False


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def import_modules(modules: Iterable[str], field: str = "imports") -> None:
    """Import every module of ``modules`` (registering what they declare); a missing one is a ValueError.

    Modules are found on ``sys.path`` and in the current folder (as ``python -m`` would).
    """
    _cwd_on_path()
    for module in modules:
        if not isinstance(module, str) or not module.strip():
            raise ValueError(f"{field}: {module!r} is not a module name")
        try:
            importlib.import_module(module.strip())
        except ImportError as err:
            raise ValueError(
                f"{field}: cannot import {module!r} ({err}); is it installed or on PYTHONPATH?"
            ) from None
        except Exception as err:  # the user's module itself failed: report it as their error
            raise ValueError(_failed_import(field, module, err)) from None


def _failed_import(where: str, module: str, err: Exception) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return (
        f"{where}: importing {module!r} raised {type(err).__name__}: {first} "
        f"(`python -c 'import {module}'` shows the traceback)"
    )


def _cwd_on_path() -> None:
    """Let users' modules in the current folder import (a console script's sys.path lacks it)."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


def load_plugins() -> list[str]:
    """Import every entry point of the group ``robustfl.plugins`` once; returns their names.

    An entry point names a module (imported for its registrations) or a function (called with no
    arguments after import).
    """
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    from importlib.metadata import entry_points

    names = []
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            loaded = ep.load()
        except Exception as err:  # a broken third-party plugin must not break robustfl itself
            print(f"robustfl: plugin {ep.name!r} ({ep.value}) failed to load: {err}", file=sys.stderr)
            continue
        if callable(loaded) and not inspect.ismodule(loaded):
            loaded()
        names.append(ep.name)
    return names


def resolve_reference(reference: str, kind: str) -> Any:
    """``"package.module:Attribute"`` -> that attribute (imported), else one ValueError naming the fix."""
    module, _, attribute = reference.partition(":")
    _cwd_on_path()
    try:
        obj: Any = importlib.import_module(module.strip())
    except ImportError as err:
        raise ValueError(
            f"{kind} {reference!r}: cannot import {module!r} ({err}); is it installed or on PYTHONPATH?"
        ) from None
    except Exception as err:  # the user's module itself failed: report it as their error
        raise ValueError(_failed_import(f"{kind} {reference!r}", module, err)) from None
    for part in attribute.strip().split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{kind} {reference!r}: module {module!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{kind} {reference!r} is not a class or function")
    return obj


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
                key = _key(name)
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
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except ValueError:
            return False
        return True

    def __getitem__(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``, or the one a ``module:attribute`` name points to."""
        if ":" in name:
            factory: Callable[..., T] = resolve_reference(name, self.kind)
            return factory
        key = _key(name)
        if key not in self._entries:
            load_plugins()
        try:
            return self._entries[key]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())} "
                f"(or module:Class for your own; see docs/plugins.md)"
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
