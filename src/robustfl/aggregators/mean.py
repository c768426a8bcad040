"""The plain mean: the non-robust baseline (breakdown point 1/n)."""

from torch import Tensor

from robustfl.aggregators.base import AGGREGATORS, Aggregator


@AGGREGATORS.register("average", "mean")
class Average(Aggregator):
    """``out = (1/n) sum_i x_i``. One corrupted row moves it arbitrarily far (seed 000, 'Robust Gradient
    Aggregation')."""

    breakdown = "no Byzantine rows (breakdown 1/n)"

    def _aggregate(self, x: Tensor) -> Tensor:
        return x.mean(dim=0)
