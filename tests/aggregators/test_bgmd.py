import pytest
import torch

from robustfl.aggregators import AGGREGATORS, BlockGeometricMedian, GeometricMedian
from robustfl.aggregators.bgmd import sample_block


def rows(n: int, d: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sampling", ["proportional", "topk"])
def test_full_block_with_zero_memory_is_geometric_median(dtype: torch.dtype, sampling: str) -> None:
    x = rows(7, 13, dtype=dtype)
    out = BlockGeometricMedian(k=13, sampling=sampling, nu=0.01, T=20)(x)  # type: ignore[arg-type]
    assert out.dtype == dtype
    assert torch.allclose(out, GeometricMedian(nu=0.01, T=20, tol=None, init="zero")(x))


def test_output_is_gm_of_block_and_memory_is_the_residual_mean() -> None:
    x1, x2 = rows(6, 40, seed=1), rows(6, 40, seed=2)
    bgmd = BlockGeometricMedian(k=8, nu=0.05, T=10, memory_weights="mean")
    out1 = bgmd(x1)
    i1 = bgmd.last_indices
    assert i1 is not None and i1.shape == (8,) and torch.equal(i1, i1.sort().values)
    gm = GeometricMedian(nu=0.05, T=10, tol=None, init="zero")
    expected = torch.zeros(40, dtype=torch.float64)
    expected[i1] = gm(x1[:, i1])
    assert torch.allclose(out1, expected)
    delta = torch.zeros_like(x1)
    delta[:, i1] = x1[:, i1]
    mem1 = bgmd.memory
    assert mem1 is not None and torch.allclose(mem1, (x1 - delta).mean(0))
    # second call: G = x2 + m; residual memory computed by hand from G
    out2 = bgmd(x2)
    i2 = bgmd.last_indices
    assert i2 is not None
    g = x2 + mem1
    expected = torch.zeros(40, dtype=torch.float64)
    expected[i2] = gm(g[:, i2])
    assert torch.allclose(out2, expected)
    residual = g.clone()
    residual[:, i2] = 0.0
    assert torch.allclose(bgmd.memory, residual.mean(0))  # type: ignore[arg-type]


def test_topk_picks_largest_column_norms_including_memory() -> None:
    x = torch.zeros(4, 6, dtype=torch.float64)
    x[:, 2] = 5.0
    x[:, 4] = -3.0
    x[:, 0] = 1.0
    bgmd = BlockGeometricMedian(k=2, sampling="topk")
    bgmd(x)
    assert bgmd.last_indices.tolist() == [2, 4]  # type: ignore[union-attr]
    bgmd(torch.zeros(4, 6, dtype=torch.float64))  # only the memory (column 0) is nonzero now
    assert 0 in bgmd.last_indices.tolist()  # type: ignore[union-attr]


def test_proportional_sampling_frequencies() -> None:
    s = torch.tensor([1.0, 0.0, 3.0, 6.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(4)
    for _ in range(3000):
        counts[sample_block(s, 1, "proportional", g)] += 1
    assert counts[1] == 0
    assert torch.allclose(counts / 3000, torch.tensor([0.1, 0.0, 0.3, 0.6]), atol=0.03)


def test_fewer_positive_columns_than_k_and_all_zero_input() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.tensor([0.0, 2.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    idx = sample_block(s, 4, "proportional", g)
    assert idx.unique().numel() == 4 and {1, 4} <= set(idx.tolist())
    out = BlockGeometricMedian(k=3)(torch.zeros(5, 10))
    assert torch.equal(out, torch.zeros(10))


def test_reset_reproduces_and_seed_matters() -> None:
    x = rows(5, 30)
    a = BlockGeometricMedian(ratio=0.2, seed=3)
    first = [a(x), a(x)]
    a.reset()
    assert a.memory is None and a.last_indices is None
    again = [a(x), a(x)]
    assert all(torch.equal(p, q) for p, q in zip(first, again, strict=True))
    b = BlockGeometricMedian(ratio=0.2, seed=4)
    b(x)
    assert not torch.equal(b.last_indices, BlockGeometricMedian(ratio=0.2, seed=3)(x).nonzero())  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e38])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bad_rows_do_not_poison_sampling_or_memory(bad: float, dtype: torch.dtype) -> None:
    honest = rows(7, 50, seed=5, dtype=dtype)
    x = torch.cat([honest, torch.full((3, 50), bad, dtype=dtype)])
    bgmd = BlockGeometricMedian(ratio=0.3, T=50)
    for _ in range(3):
        out = bgmd(x)
        assert torch.isfinite(out).all() and torch.isfinite(bgmd.memory).all()  # type: ignore[arg-type]
    if bad == 1e38 and dtype == torch.float64:
        return  # a finite row (1e38**2 fits in float64) enters the memory with its small Weiszfeld weight
    clean = BlockGeometricMedian(ratio=0.3, T=50)
    for _ in range(3):
        expected = clean(honest)
    assert torch.allclose(out, expected, atol=1e-5)


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="exactly one of k"):
        BlockGeometricMedian()
    with pytest.raises(ValueError, match="exactly one of k"):
        BlockGeometricMedian(k=3, ratio=0.1)
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\]"):
        BlockGeometricMedian(ratio=1.5)
    with pytest.raises(ValueError, match="sampling must be"):
        BlockGeometricMedian(k=2, sampling="uniform")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k=9 exceeds the dimension d=4"):
        BlockGeometricMedian(k=9)(torch.zeros(3, 4))
    bgmd = BlockGeometricMedian(k=2)
    bgmd(torch.ones(3, 4))
    with pytest.raises(ValueError, match="memory has d=4 but the messages have d=5.*reset"):
        bgmd(torch.ones(3, 5))
    assert isinstance(AGGREGATORS.get("bgmd", ratio=0.1), BlockGeometricMedian)


def test_robust_memory_is_the_weiszfeld_weighted_residual() -> None:
    x = rows(6, 40, seed=4)
    bgmd = BlockGeometricMedian(k=8, nu=0.05, T=10)
    out = bgmd(x)
    idx = bgmd.last_indices
    assert idx is not None
    block = x[:, idx]
    # the weights of the last Weiszfeld step, recomputed from the previous iterate by hand
    previous = GeometricMedian(nu=0.05, T=9, tol=None, init="zero")(block)
    w = 1.0 / torch.linalg.vector_norm(block - previous, dim=1).clamp(min=0.05)
    w = w / w.sum()
    assert torch.allclose(out[idx], (w[:, None] * block).sum(0))
    residual = x.clone()
    residual[:, idx] = 0.0
    assert torch.allclose(bgmd.memory, (w[:, None] * residual).sum(0))  # type: ignore[arg-type]


def test_robust_memory_resists_scaled_bit_flip_rows_that_poison_the_mean_memory() -> None:
    gen = torch.Generator().manual_seed(0)
    honest = 1.0 + 0.1 * torch.randn(8, 200, dtype=torch.float64, generator=gen)
    x = torch.cat([honest, -100.0 * honest[:2]])
    robust = BlockGeometricMedian(ratio=0.1, T=20)
    literal = BlockGeometricMedian(ratio=0.1, T=20, memory_weights="mean")
    robust(x), literal(x)
    off = torch.ones(200, dtype=torch.bool)
    off[robust.last_indices] = False  # type: ignore[index]
    # honest coordinates are ~1: the robust memory stays near them, the mean memory is pulled to ~ -19
    assert robust.memory[off].min() > 0.5  # type: ignore[index]
    off_literal = torch.ones(200, dtype=torch.bool)
    off_literal[literal.last_indices] = False  # type: ignore[index]
    assert literal.memory[off_literal].max() < -10  # type: ignore[index]
