"""Import ByzFL's aggregator modules from a source checkout, for side-by-side timing only.

ByzFL's top-level ``byzfl/__init__.py`` pulls in its federated framework and torchvision; the
aggregators need neither. We register an empty ``byzfl`` package whose ``__path__`` points at the
checkout and execute only ``byzfl.utils`` and ``byzfl.aggregators``. ByzFL is never a dependency.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

ENV_VAR = "ROBUSTFL_BYZFL"


def find_package(path: str | os.PathLike[str], name: str = "byzfl") -> Path:
    """The ``name`` package directory under ``path`` (a checkout root, its ``src``, an unpacked wheel,
    or the package itself)."""
    root = Path(path).expanduser()
    for candidate in (root, root / name, root / "src" / name):
        if (candidate / "aggregators" / "__init__.py").is_file() and candidate.name == name:
            return candidate
    raise ValueError(
        f"--{name} {str(path)!r}: no {name}/aggregators package found there; pass the {name} checkout "
        f"or unpacked wheel (the folder holding src/{name} or {name})"
    )


def _exec_module(name: str, init: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {init}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_byzfl_aggregators(path: str | os.PathLike[str] | None = None) -> Any | None:
    """ByzFL's ``aggregators`` module from ``path`` (else ``$ROBUSTFL_BYZFL``); ``None`` if neither is set."""
    path = path or os.environ.get(ENV_VAR)
    if not path:
        return None
    package = find_package(path)
    if "byzfl.aggregators" in sys.modules:
        return sys.modules["byzfl.aggregators"]
    shell = types.ModuleType("byzfl")
    shell.__path__ = [str(package)]
    sys.modules["byzfl"] = shell
    _exec_module("byzfl.utils", package / "utils" / "__init__.py")
    return _exec_module("byzfl.aggregators", package / "aggregators" / "__init__.py")
