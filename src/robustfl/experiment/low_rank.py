"""``[model] low_rank``: PUFFERFISH's vanilla warm-up, then the hybrid low-rank network (Algorithm 2).

Wang, Agarwal and Papailiopoulos, "PUFFERFISH: Communication-efficient Models At No Extra Cost" (MLSys
2021). Before round ``warmup_rounds`` the run's model is replaced by its hybrid (weight layers
``K, K+1, ...`` factorised with rank ``rank_ratio`` × full rank, the last layer full): with warm-up the
factors are the SVD factors ``Ũ Σ^½``, ``Σ^½ Ṽᵀ`` of the warmed-up weights and every other parameter and
buffer (BatchNorm statistics too) is carried over; with ``warmup_rounds = 0`` the hybrid starts from its
own random factors (drawn from the ``model-init`` stream, key ``low-rank``). Client, server and
compressor state restart (a low-rank model is simply a smaller message), and the compressor and the
rule are rebuilt for the new parameter layout (``Simulator.swap_model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robustfl.experiment.config import ConfigError, ExperimentConfig
from robustfl.streams import Streams


@dataclass(frozen=True)
class LowRankSwitch:
    """The switch ``config.model.low_rank`` asks for, applied to a simulator by :meth:`apply`."""

    config: ExperimentConfig

    @property
    def round(self) -> int:
        """The switch happens before this round (0-based)."""
        low = self.config.model.low_rank
        assert low is not None
        return low.warmup_rounds

    def spec(self) -> Any:
        """The :class:`HybridSpec` of the run's model (K from the config, or the chapter's)."""
        from robustfl.models.pufferfish import HYBRIDS, HybridSpec

        low, name = self.config.model.low_rank, self.config.model.name
        assert low is not None
        known = HYBRIDS.get(name)
        if low.first_low_rank is None and known is None:
            raise ConfigError(
                f"config error: model.low_rank.first_low_rank: model {name!r} has no chapter K "
                f"(known: {', '.join(sorted(HYBRIDS))}); set first_low_rank = K"
            )
        k = low.first_low_rank if low.first_low_rank is not None else known.first_low_rank  # type: ignore[union-attr]
        return HybridSpec(k, known.keep_full if known is not None else ())

    def hybrid_of(self, model: torch.nn.Module) -> torch.nn.Module:
        """The hybrid of ``model`` (a copy): SVD factors after warm-up, fresh factors without."""
        from robustfl.models.pufferfish import hybrid

        low = self.config.model.low_rank
        assert low is not None
        spec = self.spec()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(Streams(self.config.training.seed).seed_of("model-init", "low-rank"))
            try:
                return hybrid(model, spec, low.rank_ratio, svd=low.warmup_rounds > 0)
            except ValueError as err:
                raise ConfigError(f"config error: model.low_rank: {err}") from None

    def apply(self, sim: Any) -> None:
        """Swap ``sim``'s model for its hybrid, with the compressor and rule rebuilt for its layout."""
        from robustfl.experiment.build import build_aggregator, build_compressor, context
        from robustfl.layout import ParameterLayout

        new = self.hybrid_of(sim.model)
        if not any(p.requires_grad for p in new.parameters()):
            raise ConfigError("config error: model.low_rank: the hybrid has no trainable parameters")
        ctx = context(self.config, ParameterLayout.of(new))
        sim.swap_model(
            new, compressor=build_compressor(self.config, ctx), aggregator=build_aggregator(self.config, ctx)
        )


def low_rank_switch(config: ExperimentConfig) -> LowRankSwitch | None:
    """The switch of ``config`` (``None`` without ``[model.low_rank]``); checks the spec early."""
    if config.model.low_rank is None:
        return None
    switch = LowRankSwitch(config)
    switch.spec()
    return switch
