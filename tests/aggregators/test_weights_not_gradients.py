"""Model weights, not gradients: rows ``W + e_i`` that share a large common part (issue 10 §6).

``W ~ N(0, 10^2)`` in ``d = 1000`` with a per-row spread of 1e-4: the Gram identity on the raw rows
returns rounding error. Every distance-based rule must see the distances of the float32 rows as
float64 sees them, and its output must be the one float64 gives.
"""

from __future__ import annotations

import pytest
import torch

from robustfl.aggregators import AGGREGATORS, Aggregator
from robustfl.aggregators._distances import pairwise_sq_distances
from robustfl.aggregators.geomed import weiszfeld_with_weights

D = 1000
SPREAD = 1e-4


def weights(
    n_honest: int = 7, n_out: int = 3, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``n_honest`` rows ``W + e_i`` (spread 1e-4), then ``n_out`` outliers with 3x the spread."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, generator=g, dtype=torch.float64) * 10
    e = torch.randn(n_honest + n_out, D, generator=g, dtype=torch.float64) * SPREAD
    e[n_honest:] *= 3
    return (w + e).to(dtype)


def exact_sq_distances(x: torch.Tensor) -> torch.Tensor:
    x64 = x.double()
    return ((x64.unsqueeze(1) - x64.unsqueeze(0)) ** 2).sum(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairwise_distances_within_1e4_of_float64(dtype: torch.dtype, seed: int) -> None:
    x = weights(seed=seed, dtype=dtype)
    exact = exact_sq_distances(x)
    got = pairwise_sq_distances(x)
    off = ~torch.eye(x.shape[0], dtype=torch.bool)
    rel = ((got - exact).abs() / exact)[off]
    assert float(rel.max()) <= 1e-4


def test_distances_survive_a_far_outlier_and_a_bad_centre() -> None:
    # the rows with the median norm may be far from the honest cluster: refinement recentres
    x = weights(seed=4).double()
    x[7] = -x[7]  # the same norm as W, on the other side of the origin
    x[8] = x[8] * 1.0001
    x[9] = 0.0
    x = x.float()
    exact = exact_sq_distances(x)
    got = pairwise_sq_distances(x)
    off = ~torch.eye(10, dtype=torch.bool)
    assert float(((got - exact).abs() / exact)[off].max()) <= 1e-4


@pytest.mark.parametrize("seed", range(5))
def test_multikrum_keeps_no_outlier(seed: int) -> None:
    x = weights(seed=seed)
    out = AGGREGATORS.get("multi-krum", f=3)(x)
    honest = x[:7].double().mean(0)
    # one outlier among the 7 averaged rows would move the mean by about 3 * 1e-4 * sqrt(d) / 7 = 1.4e-3
    assert float((out.double() - honest).norm()) < 1e-4


RULES: list[tuple[str, dict[str, object]]] = [
    ("krum", {"f": 3}),
    ("multi-krum", {"f": 3}),
    ("bulyan", {"f": 1}),
    ("nnm", {"f": 3}),
    ("mda", {"f": 3}),
    ("monna", {"f": 3}),
    ("caf", {"f": 3}),
    ("caf", {"f": 3, "power_steps": 1}),
    ("caf", {"f": 3, "power_steps": 3}),
    ("smea", {"f": 3}),
    ("geometric-median", {}),
    ("geometric-median", {"nu": 0.1, "T": 3, "tol": None, "init": "zero"}),
    ("bgmd", {"ratio": 0.5, "sampling": "topk", "nu": 1e-9, "T": 50}),
]


@pytest.mark.parametrize(("name", "params"), RULES, ids=lambda v: str(v))
@pytest.mark.parametrize("seed", [6, 7])
def test_rule_on_weights_agrees_with_float64(name: str, params: dict[str, object], seed: int) -> None:
    x = weights(seed=seed)
    rule: Aggregator = AGGREGATORS.get(name, **params)
    twin: Aggregator = AGGREGATORS.get(name, **params)
    out = rule(x).double()
    ref = twin(x.double())
    # float32 arithmetic at |W| ~ 10 rounds each output entry by a few 1e-7 (about 1e-4 over
    # d = 1000; Bulyan's per-coordinate trim is the worst), against a spread of 4.5e-3 between rows:
    # a rule that picked or weighted rows differently would be off by ~1e-3
    err = (out - ref).norm(dim=-1)
    assert float(err.max()) <= 2e-4


@pytest.mark.parametrize("init", ["zero", "median"])
def test_weiszfeld_weights_within_1e4_of_float64(init: str) -> None:
    x = weights(seed=7)
    _, w32 = weiszfeld_with_weights(x, nu=1e-9, T=30, init=init)  # type: ignore[arg-type]
    _, w64 = weiszfeld_with_weights(x.double(), nu=1e-9, T=30, init=init)  # type: ignore[arg-type]
    assert float(((w32.double() - w64).abs() / w64).max()) <= 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gram_in_column_blocks_equals_one_block(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustfl.aggregators import _distances

    x = weights(seed=8, dtype=dtype)
    x[2, 5] = float("nan")
    one = pairwise_sq_distances(x)
    monkeypatch.setattr(_distances, "_BLOCK_NUMEL", 10 * 37)  # 37 columns per block, 28 blocks
    blocks = pairwise_sq_distances(x)
    assert torch.equal(torch.isinf(blocks), torch.isinf(one)) and bool(torch.isinf(blocks[2, 0]))
    finite = torch.isfinite(one)
    exact = exact_sq_distances(x)
    off = finite & ~torch.eye(10, dtype=torch.bool)
    assert float(((blocks - exact).abs() / exact)[off].max()) <= 1e-4
