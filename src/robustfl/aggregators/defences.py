"""Server-side backdoor defences of seed 004 ch. 8 ('Defense techniques', Sec. 8.5 hyper-parameters):
norm-difference clipping (NDC) and weak differential privacy, as aggregators over update rows
``x_i = w_i - w`` (client model minus the global model it started from).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from robustfl.aggregators.base import AGGREGATORS, Aggregator
from robustfl.checks import check_int, check_positive
from robustfl.utils import make_generator


def _inner(inner: Aggregator | str) -> Aggregator:
    if isinstance(inner, str):
        return AGGREGATORS.get(inner)
    if not isinstance(inner, Aggregator):
        raise ValueError(f"inner must be an aggregator name or an Aggregator, got {inner!r}")
    return inner


def clip_rows(x: Tensor, threshold: float) -> Tensor:
    """``x_i / max(1, ||x_i|| / threshold)``: every row scaled into the l2 ball of radius ``threshold``.

    A row with a NaN or infinite entry has no defined norm; it is replaced by zeros (the update is
    dropped, the client's model counts as unchanged).
    """
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    out = x / torch.clamp(norms / threshold, min=1.0)  # one [n, d] output, no other temporary
    bad = ~torch.isfinite(norms).squeeze(1)  # NaN/Inf entries, or a norm that overflows: x / inf
    if bool(bad.any()):
        out[bad] = 0.0
    return out


@AGGREGATORS.register("ndc", "norm-difference-clipping")
class NormDifferenceClipping(Aggregator):
    """NDC (Sun et al., 2019; seed 004 ch. 8): clip each update to ``||w_i - w|| <= threshold``, then
    aggregate with ``inner`` (the plain mean by default, as in the chapter; threshold 2 for its Tasks 1
    and 2)."""

    breakdown = "bounds each row's influence by threshold/n; no breakdown guarantee"

    def __init__(self, threshold: float = 2.0, inner: Aggregator | str = "average") -> None:
        self.threshold = check_positive("threshold", threshold)
        self.inner = _inner(inner)

    def check_n(self, n: int) -> None:
        self.inner.check_n(n)

    def _aggregate(self, x: Tensor) -> Tensor:
        return self.inner(clip_rows(x, self.threshold))

    def reset(self) -> None:
        self.inner.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])


@AGGREGATORS.register("weak-dp", "weakdp")
class WeakDP(NormDifferenceClipping):
    """Weak DP (Sun et al., 2019; seed 004 ch. 8): NDC, then ``N(0, sigma^2)`` noise added to every
    coordinate of the aggregate (``sigma = 0.005`` for the chapter's Task 1). The noise comes from a
    generator seeded with ``derive_seed(seed, "weak-dp")``; ``reset()`` restarts it."""

    def __init__(
        self, threshold: float = 2.0, sigma: float = 0.005, seed: int = 0, inner: Aggregator | str = "average"
    ) -> None:
        super().__init__(threshold, inner)
        self.sigma = check_positive("sigma", sigma, allow_zero=True)
        self.seed = check_int("seed", seed)
        self._gen = make_generator(self.seed, "weak-dp")

    def _aggregate(self, x: Tensor) -> Tensor:
        out = super()._aggregate(x)
        noise = torch.randn(out.shape, generator=self._gen, dtype=torch.float64)
        return out + (self.sigma * noise).to(device=out.device, dtype=out.dtype)

    def reset(self) -> None:
        super().reset()
        self._gen = make_generator(self.seed, "weak-dp")

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "generator": self._gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict({"inner": state["inner"]})
        self._gen.set_state(state["generator"])
