"""``robustfl reproduce fedma``: the comparison at equal communications, the table and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from robustfl.algorithms.fedma import SGDTrainer, TrainRequest, width_factory
from robustfl.cli import app
from robustfl.experiment import fedma_runs


def _clients(j: int = 3, n: int = 30, d: int = 6, seed: int = 0) -> tuple[list, tuple]:
    g = torch.Generator().manual_seed(seed)
    centers = 3 * torch.randn(3, d, generator=g)

    def draw(labels: torch.Tensor) -> torch.Tensor:
        return (centers[labels] + torch.randn(labels.numel(), d, generator=g)).view(-1, 1, 1, d)

    clients = []
    for k in range(j):  # client k mostly holds class k: strong heterogeneity
        y = torch.where(torch.rand(n, generator=g) < 0.8, k % 3, torch.randint(0, 3, (n,), generator=g))
        clients.append((draw(y), y))
    y_test = torch.arange(60) % 3
    return clients, (draw(y_test), y_test)


def test_compare_gives_every_method_equal_communications() -> None:
    clients, test = _clients()
    make = width_factory("mlp", (1, 1, 6), 3)
    rows = fedma_runs.compare(
        clients, test, make, [8], 3, SGDTrainer(epochs=3, lr=0.05, batch_size=10), rounds=2
    )
    by = {r.method: r for r in rows}
    assert set(by) >= {"FedMA", "FedAvg", "FedProx", "Ensemble"}
    assert by["FedMA"].communications == by["FedAvg"].communications == by["FedProx"].communications == 4
    assert by["FedAvg"].rounds == 4 and by["FedMA"].rounds == 2 and by["Ensemble"].rounds is None
    assert by["Ensemble"].growth == 3.0 and by["FedMA"].growth >= 1.0
    for name in ("FedAvg", "FedProx"):
        equal = by.get(f"{name} at FedMA's bytes")
        if equal is not None:
            assert equal.bytes_total <= by["FedMA"].bytes_total
    # well-separated clusters: every method beats chance (1/3) by a wide margin
    assert all(r.accuracy > 0.55 for r in rows), rows
    table = fedma_runs.table_markdown(rows, fedma_runs.ANCHORS["vgg9-cifar10"])
    assert "| FedMA |" in table and "87.53 / 1.11x" in table


def test_proximal_term_pulls_towards_the_start() -> None:
    """FedProx's mu (w - w0): with a huge mu the weights barely leave where they started."""
    clients, _ = _clients(j=1)
    x, y = clients[0]
    moved = []
    for mu in (0.0, 50.0):
        torch.manual_seed(0)
        model = width_factory("mlp", (1, 1, 6), 3)([8])
        start = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
        names = frozenset(n for n, _ in model.named_parameters())
        request = TrainRequest(model, x, y, names, "local", False, 0, torch.Generator().manual_seed(0))
        SGDTrainer(epochs=10, lr=0.01, momentum=0.0, prox_mu=mu)(request)
        moved.append(float((torch.nn.utils.parameters_to_vector(model.parameters()).detach() - start).norm()))
    assert moved[1] < 0.3 * moved[0], moved
    with pytest.raises(ValueError, match="prox_mu"):
        SGDTrainer(prox_mu=-1.0)


def test_reproduce_validates_its_setup(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="setup must be one of"):
        fedma_runs.reproduce(tmp_path, "nope")
    with pytest.raises(ValueError, match="unknown setup field"):
        fedma_runs.reproduce(tmp_path, "embedded", colour="red")


def test_cli_needs_files_for_the_chapter_setups(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["reproduce", "fedma", "--setup", "vgg9-cifar10", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "--data-dir" in result.output
