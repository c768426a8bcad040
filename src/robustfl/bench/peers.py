"""Peer libraries timed side by side with our rules: ByzFL and ByzPy, loaded from source folders.

Neither is ever a dependency: the benchmark imports them from a folder the user names (an unpacked
wheel or a checkout) and maps each of our rules to the peer's class with the same definition and
parameters. A rule the peer lacks, or defines differently enough that timing it would compare two
algorithms, has no entry (see ``BYZPY_OMITTED``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from robustfl.aggregators import Aggregator
from robustfl.bench.byzfl_loader import find_package, load_byzfl_aggregators

PEERS = {"ByzFL": "ROBUSTFL_BYZFL", "ByzPy": "ROBUSTFL_BYZPY"}
"""Peer name -> the environment variable that may hold its source folder."""

Call = Callable[[Tensor], object]


@dataclass
class Peer:
    """A loaded peer: ``make(ours, n)`` returns a callable on ``x: Tensor[n, d]`` doing the same as our
    rule ``ours``, or ``None`` when the peer has no such rule."""

    name: str
    version: str
    factories: dict[str, Callable[[dict[str, Any], int], Call]] = field(default_factory=dict)
    writes_input: bool = False

    def make(self, ours: Aggregator, n: int) -> Call | None:
        factory = self.factories.get(type(ours).__name__)
        return None if factory is None else factory(ours.params(), n)


def _dist_version(package: Path) -> str:
    """The version in a ``*.dist-info/METADATA`` beside the package folder (an unpacked wheel)."""
    for meta in sorted(package.parent.glob(f"{package.name}-*.dist-info/METADATA")):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return "unknown (source checkout)"


BYZFL_RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Average": ("Average", ()),
    "Median": ("Median", ()),
    "TrimmedMean": ("TrMean", ("f",)),
    "GeometricMedian": ("GeometricMedian", ("nu", "T")),
    "Krum": ("Krum", ("f",)),
    "MultiKrum": ("MultiKrum", ("f",)),
    "CenteredClipping": ("CenteredClipping", ("L", "tau")),
    "Clipping": ("Clipping", ("c",)),
    "MDA": ("MDA", ("f",)),
    "MoNNA": ("MoNNA", ("f", "idx")),
    "Meamed": ("Meamed", ("f",)),
    "CAF": ("CAF", ("f",)),
    "SMEA": ("SMEA", ("f",)),
    "NNM": ("NNM", ("f",)),
    "Bucketing": ("Bucketing", ("s",)),
    "ARC": ("ARC", ("f",)),
}
"""Our class name -> (ByzFL class name, the parameters passed on with the same meaning)."""


def load_byzfl(path: str) -> Peer:
    module = load_byzfl_aggregators(path)
    factories: dict[str, Callable[[dict[str, Any], int], Call]] = {}
    for ours, (cls_name, names) in BYZFL_RULES.items():
        cls = getattr(module, cls_name)

        def factory(params: dict[str, Any], n: int, cls: Any = cls, names: tuple[str, ...] = names) -> Call:
            return cls(**{k: params[k] for k in names})

        factories[ours] = factory
    # ByzFL's ARC and Clipping overwrite their input: every ByzFL call gets a fresh copy (not timed)
    return Peer("ByzFL", _dist_version(find_package(path)), factories, writes_input=True)


BYZPY_OMITTED = {
    "GeometricMedian": "ByzPy iterates to a tolerance from the median, a different stopping rule",
    "Meamed": "no such rule in ByzPy",
    "BlockGeometricMedian": "no such rule in ByzPy",
    "Bulyan": "no such rule in ByzPy",
}
"""Our rules that get no ByzPy ratio, and why."""


def _byzpy_classes() -> dict[str, Any]:
    names = {
        "Median": "aggregators.coordinate_wise.median:CoordinateWiseMedian",
        "TrimmedMean": "aggregators.coordinate_wise.trimmed_mean:CoordinateWiseTrimmedMean",
        "Krum": "aggregators.geometric_wise.krum:Krum",
        "MultiKrum": "aggregators.geometric_wise.krum:MultiKrum",
        "MDA": "aggregators.geometric_wise.minimum_diameter_average:MinimumDiameterAveraging",
        "SMEA": "aggregators.geometric_wise.smea:SMEA",
        "MoNNA": "aggregators.geometric_wise.monna:MoNNA",
        "CAF": "aggregators.norm_wise.caf:CAF",
        "CenteredClipping": "aggregators.norm_wise.center_clipping:CenteredClipping",
        "ARC": "pre_aggregators.arc:ARC",
        "NNM": "pre_aggregators.nnm:NearestNeighborMixing",
        "Clipping": "pre_aggregators.clipping:Clipping",
        "Bucketing": "pre_aggregators.bucketing:Bucketing",
    }
    out = {}
    for ours, spec in names.items():
        module, cls = spec.split(":")
        out[ours] = getattr(importlib.import_module(f"byzpy.{module}"), cls)
    return out


def load_byzpy(path: str) -> Peer:
    package = find_package(path, "byzpy")
    parent = str(package.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    try:
        classes = _byzpy_classes()
    except ImportError as err:
        raise ValueError(
            f"--byzpy {path!r}: importing ByzPy failed ({err}); install its pure-Python dependencies "
            "(e.g. cloudpickle) where this Python finds them"
        ) from None

    def agg(cls: Any, **kw: Any) -> Callable[[dict[str, Any], int], Call]:
        def factory(params: dict[str, Any], n: int) -> Call:
            rule = cls(**{k: (v(params, n) if callable(v) else params[v]) for k, v in kw.items()})
            return lambda x: rule.aggregate(x.unbind(0))

        return factory

    def pre(cls: Any, **kw: Any) -> Callable[[dict[str, Any], int], Call]:
        def factory(params: dict[str, Any], n: int) -> Call:
            rule = cls(**{k: (v(params, n) if callable(v) else params[v]) for k, v in kw.items()})
            return lambda x: rule.pre_aggregate(x.unbind(0))

        return factory

    c = classes
    factories = {
        "Median": agg(c["Median"]),
        "TrimmedMean": agg(c["TrimmedMean"], f="f"),
        "Krum": agg(c["Krum"], f="f"),
        "MultiKrum": agg(c["MultiKrum"], f="f", q=lambda p, n: n - p["f"] if p["m"] is None else p["m"]),
        "MDA": agg(c["MDA"], f="f"),
        "SMEA": agg(c["SMEA"], f="f"),
        "MoNNA": agg(c["MoNNA"], f="f", reference_index="idx"),
        # three power steps per round (ByzPy's default, pinned): compared with our CAF(power_steps=3)
        "CAF": agg(c["CAF"], f="f", power_iters=lambda p, n: 3),
        # ByzPy restarts from a fixed point each call (init="zero"); ours from the last output: same L steps
        "CenteredClipping": agg(c["CenteredClipping"], c_tau="tau", M="L", init=lambda p, n: "zero"),
        "ARC": pre(c["ARC"], f="f"),
        "NNM": pre(c["NNM"], f="f"),
        "Clipping": pre(c["Clipping"], threshold="c"),
        "Bucketing": pre(c["Bucketing"], bucket_size="s"),
    }
    return Peer("ByzPy", _dist_version(package), factories, writes_input=True)


LOADERS = {"ByzFL": load_byzfl, "ByzPy": load_byzpy}


def load_peers(paths: dict[str, str | None]) -> list[Peer]:
    """The peers whose folder is given in ``paths`` (name -> path) or in their environment variable."""
    peers = []
    for name, env in PEERS.items():
        path = paths.get(name) or os.environ.get(env)
        if path:
            peers.append(LOADERS[name](path))
    return peers
