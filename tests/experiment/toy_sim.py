"""A toy simulator with the engine's interface, so the run machinery is tested in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from robustfl.experiment.config import ExperimentConfig
from robustfl.utils import make_generator


@dataclass
class ToyStats:
    loss: float
    bits_up: int
    bits_down: int
    seconds: dict[str, float] = field(default_factory=dict)


class ToySim:
    """Noisy gradient descent on 0.5 * ||w - t||^2: parameters, a generator and a round counter to resume."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.gen = make_generator(config.training.seed, "toy")
        self.lr = config.training.lr
        self.w = torch.zeros(5, dtype=torch.float64)
        self.target = torch.arange(5, dtype=torch.float64)
        self.round = 0

    def step(self) -> ToyStats:
        loss = float(0.5 * ((self.w - self.target) ** 2).sum())
        grad = self.w - self.target + 0.5 * torch.randn(5, generator=self.gen, dtype=torch.float64)
        self.w = self.w - self.lr * grad
        self.round += 1
        return ToyStats(loss, bits_up=320, bits_down=320, seconds={"compute": 1e-4})

    def evaluate(self) -> dict[str, Any]:
        dist = float((self.w - self.target).norm())
        return {"test_loss": dist, "test_accuracy": 1.0 / (1.0 + dist)}

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.clone(), "gen": self.gen.get_state(), "round": self.round}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = state["w"].clone()
        self.gen.set_state(state["gen"])
        self.round = int(state["round"])
