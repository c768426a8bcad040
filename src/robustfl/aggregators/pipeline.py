"""Composition of pre-aggregators with (optionally) a final aggregator."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from robustfl.aggregators.base import Aggregator, PreAggregator


class Pipeline(Aggregator):
    """``Pipeline(NNM(f=2), Krum(f=2))(x) = Krum(f=2)(NNM(f=2)(x))``: stages applied left to right.

    Every stage but the last must be a ``PreAggregator`` (``Tensor[n, d] -> Tensor[m, d]``); the last
    may be either kind, so a pipeline of pre-aggregators returns a matrix. Each stage validates its own
    input (so an ``n`` the final rule cannot serve after a shrinking pre-aggregator is reported by that
    rule). ``reset()`` resets every stage.
    """

    def __init__(self, *stages: Aggregator) -> None:
        if not stages:
            raise ValueError("Pipeline needs at least one stage, e.g. Pipeline(Clipping(c=1.0), Krum(f=1))")
        for i, stage in enumerate(stages):
            if not isinstance(stage, Aggregator):
                raise ValueError(f"Pipeline stage {i} must be an aggregator, got {type(stage).__name__}")
            if i < len(stages) - 1 and not isinstance(stage, PreAggregator):
                raise ValueError(
                    f"Pipeline stage {i} ({type(stage).__name__}) returns one vector, so it can only be "
                    "the last stage; put pre-aggregators (Clipping, NNM, Bucketing, ...) before it"
                )
        self.stages = stages

    @property
    def breakdown(self) -> str:  # type: ignore[override]
        return self.stages[-1].breakdown

    def _aggregate(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def reset(self) -> None:
        for stage in self.stages:
            stage.reset()

    @property
    def needs_reference(self) -> bool:
        """Whether a stage needs the server's own update each round (FLTrust)."""
        return any(getattr(stage, "needs_reference", False) for stage in self.stages)

    def set_reference(self, g0: Tensor) -> None:
        """Hand the server's update to every stage that needs it."""
        for stage in self.stages:
            if getattr(stage, "needs_reference", False):
                stage.set_reference(g0)  # type: ignore[attr-defined]

    @property
    def tracks_clients(self) -> bool:
        """Whether a stage keeps per-client memory (FoolsGold) and so needs each row's client id."""
        return any(getattr(stage, "tracks_clients", False) for stage in self.stages)

    def set_clients(self, ids: Tensor) -> None:
        """Hand the rows' client ids to every stage that tracks clients (rows keep their order)."""
        for stage in self.stages:
            if getattr(stage, "tracks_clients", False):
                stage.set_clients(ids)  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, Any]:
        return {"stages": [stage.state_dict() for stage in self.stages]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stages = state["stages"]
        if len(stages) != len(self.stages):
            raise ValueError(f"Pipeline state has {len(stages)} stages, this pipeline {len(self.stages)}")
        for stage, s in zip(self.stages, stages, strict=True):
            stage.load_state_dict(s)

    def params(self) -> dict[str, Any]:
        return {"stages": list(self.stages)}

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(map(repr, self.stages))})"
