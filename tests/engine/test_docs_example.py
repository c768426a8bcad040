"""docs/engine.md's worked example of adding an algorithm runs as written, in both executors."""

import re
from pathlib import Path

import torch
from tiny_task import split, tiny_cnn, tiny_data

from robustfl.aggregators import Average
from robustfl.algorithms import ALGORITHMS
from robustfl.engine import Simulator

DOC = Path(__file__).resolve().parents[2] / "docs" / "engine.md"


def example_source() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("### Worked example")
    return re.findall(r"```python\n(.*?)```", text[start:], flags=re.S)[0]


def test_worked_example_registers_and_trains() -> None:
    namespace: dict = {}
    if "fedavg-hint" not in ALGORITHMS:
        exec(compile(example_source(), str(DOC), "exec"), namespace)
    algorithm = ALGORITHMS.get("fedavg-hint", local_steps=2)
    runs = []
    for vectorise in (True, False):
        sim = Simulator(tiny_cnn(), tiny_data(), split(6), algorithm, Average(), batch_size=8, lr=0.1, seed=0,
                        vectorise=vectorise)  # fmt: skip
        stats = [sim.step() for _ in range(3)]
        assert stats[-1].metrics["delta_norm"] > 0 and "loss_drop" in stats[-1].metrics
        assert stats[0].bits_down == 2 * 32 * sim.flat.dim * 6  # params + hint
        runs.append(sim.params)
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-4, atol=1e-5)
