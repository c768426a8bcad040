"""The vectorised single-process simulator (``Simulator``) and its building blocks."""

from robustfl.engine.functional import FlatModel, vmap_blocker
from robustfl.engine.simulator import PHASES, DatasetLike, RoundStats, Simulator

__all__ = ["PHASES", "DatasetLike", "FlatModel", "RoundStats", "Simulator", "vmap_blocker"]
