"""Code paths chosen by input (issue 19): the same results on every path and at every threshold.

Order statistics are exact values, so every path (NumPy or torch sorts of column blocks, one block or
many) must return them bit for bit; rules built on them (Median, TrimmedMean, Meamed, Bulyan) are
compared with their sort-based definitions.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import Meamed, Median, TrimmedMean
from robustfl.aggregators import coordinatewise as cw
from robustfl.aggregators.coordinatewise import coordinate_median, mean_of_rows, order_statistics

SIZES = [1, 2, 3, 16, 63, 64, 65, 127, 128, 129, 130, 257]


def sorted_reference(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isnan(x), float("inf"), x).sort(dim=0).values


def messy(n: int, d: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Small integers (many ties), a few NaN and +-Inf entries."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-4, 5, (n, d), generator=g).to(dtype)
    specials = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=dtype)
    mask = torch.rand(n, d, generator=g) < 0.03
    x[mask] = specials[torch.randint(0, 3, (int(mask.sum()),), generator=g)]
    return x


@pytest.mark.parametrize("path", ["numpy", "torch"])
@settings(max_examples=15, deadline=None)
@given(
    st.sampled_from(SIZES),
    st.integers(1, 40),
    st.integers(0, 2**31 - 1),
    st.sampled_from([torch.float32, torch.float64]),
    st.integers(1, 9),
    st.data(),
)
def test_order_statistics_are_exact_on_every_path(
    path: str, n: int, d: int, seed: int, dtype: torch.dtype, cols: int, data: st.DataObject
) -> None:
    x = messy(n, d, seed, dtype)
    ref = sorted_reference(x)
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo + 1, n))
    with pytest.MonkeyPatch.context() as mp:
        if path == "torch":  # the NumPy path serves float32/float64 on CPU; force the other one
            mp.setattr(cw, "_NUMPY_DTYPES", ())
        assert torch.equal(order_statistics(x, lo, hi), ref[lo:hi])
        mp.setattr(cw, "BLOCK_NUMEL", cols * n)  # `cols` columns per block
        assert torch.equal(order_statistics(x, lo, hi), ref[lo:hi])
        assert torch.equal(order_statistics(x.T.contiguous().T, lo, hi), ref[lo:hi])  # strided input
        middle = mean_of_rows(ref[(n - 1) // 2 : n // 2 + 1])  # +inf and -inf in the middle give NaN
        torch.testing.assert_close(coordinate_median(x), middle, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("n", SIZES)
def test_rules_are_bit_identical_across_paths_and_match_their_definitions(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = torch.randn(n, 300, generator=torch.Generator().manual_seed(n))
    f = (n - 1) // 4
    if f > 0:  # f = 0 is the plain mean, where a NaN stays NaN
        x[0, :5] = float("nan")
    s = sorted_reference(x)
    median, trimmed, meamed = Median()(x), TrimmedMean(f)(x), Meamed(f)(x)
    assert torch.equal(median, s[(n - 1) // 2] * 0.5 + s[n // 2] * 0.5)
    assert torch.equal(trimmed, s[f : n - f].mean(0) if f > 0 else x.mean(0))
    monkeypatch.setattr(cw, "_NUMPY_DTYPES", ())
    assert torch.equal(Median()(x), median)
    assert torch.equal(TrimmedMean(f)(x), trimmed)
    assert torch.equal(Meamed(f)(x), meamed)
    monkeypatch.setattr(cw, "BLOCK_NUMEL", 7 * n)
    assert torch.equal(Median()(x), median)
    assert torch.equal(TrimmedMean(f)(x), trimmed)


def test_inputs_that_need_gradients_take_the_torch_path() -> None:
    x = torch.randn(9, 20, generator=torch.Generator().manual_seed(0), requires_grad=True)
    out = TrimmedMean(2)(x)
    assert torch.equal(out.detach(), TrimmedMean(2)(x.detach()))
    out.sum().backward()
    assert x.grad is not None and float(x.grad.sum()) == pytest.approx(20.0)


def iterated_krum_by_resorting(dist: torch.Tensor, f: int, theta: int, neighbours: str) -> torch.Tensor:
    """The definition: re-sort the remaining submatrix at every step (the code before issue 19)."""
    from robustfl.aggregators.krum import krum_scores, neighbour_count

    remaining = torch.arange(dist.shape[0])
    chosen = []
    for _ in range(theta):
        sub = dist.index_select(0, remaining).index_select(1, remaining)
        r = remaining.numel()
        scores = krum_scores(sub, max(neighbour_count(r, f, neighbours), min(1, r - 1)))  # type: ignore[arg-type]
        pick = int(torch.argmin(scores))
        chosen.append(remaining[pick])
        remaining = torch.cat([remaining[:pick], remaining[pick + 1 :]])
    return torch.stack(chosen)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(3, 40),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["byzfl", "paper"]),
    st.booleans(),
)
def test_iterated_krum_picks_what_resorting_picks(n: int, seed: int, neighbours: str, ties: bool) -> None:
    from robustfl.aggregators._distances import pairwise_sq_distances
    from robustfl.aggregators.bulyan import iterated_krum

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-2, 3, (n, 3), generator=g).double() if ties else torch.randn(n, 5, generator=g)
    if n > 4:
        x[1] = float("nan")
    dist = pairwise_sq_distances(x)
    f = (n - 3) // 4
    theta = n - 2 * f
    got = iterated_krum(dist, f, theta, neighbours)  # type: ignore[arg-type]
    assert torch.equal(got, iterated_krum_by_resorting(dist, f, theta, neighbours))


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 30), st.integers(1, 50), st.integers(0, 2**31 - 1), st.booleans())
def test_arc_changes_only_clipped_rows_and_matches_its_formula(n: int, d: int, seed: int, bad: bool) -> None:
    from robustfl.aggregators import ARC

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g) * 10
    f = n // 3
    k = (2 * f * (n - f)) // n
    out = ARC(f)(x)
    if k == 0:
        assert torch.equal(out, x)
        return
    norms = torch.linalg.vector_norm(x, dim=1)
    tau = norms.kthvalue(n - k).values
    assert torch.equal(out, x * torch.where(norms > tau, tau / norms, 1.0).unsqueeze(1))


@pytest.mark.parametrize("d", [10, 3000])
def test_monna_blocks_give_the_distances_of_one_pass(d: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustfl.aggregators import monna

    x = torch.randn(40, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    whole = torch.linalg.vector_norm(x - x[3], dim=1)
    monkeypatch.setattr(monna, "BLOCK_NUMEL", 40 * 7)  # 7 columns per block
    assert torch.allclose(monna.distances_to_row(x, x[3]), whole, rtol=1e-12, atol=0)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**31 - 1), st.booleans(), st.data())
def test_nearest_mask_is_the_head_of_a_stable_argsort(
    n: int, seed: int, ties: bool, data: st.DataObject
) -> None:
    from robustfl.aggregators._distances import nearest_mask_np, sorted_rows

    g = torch.Generator().manual_seed(seed)
    dist = (
        torch.randint(0, 4, (n, n), generator=g).double() if ties else torch.rand(n, n, generator=g).double()
    )
    dist[torch.rand(n, n, generator=g) < 0.1] = float("inf")
    k = data.draw(st.integers(1, n))
    expected = torch.zeros(n, n, dtype=torch.bool)
    expected.scatter_(1, torch.sort(dist, dim=1, stable=True).indices[:, :k], True)
    assert torch.equal(torch.from_numpy(nearest_mask_np(dist.numpy(), k)), expected)
    assert torch.equal(sorted_rows(dist), dist.sort(dim=1).values)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 12), st.integers(1, 30), st.integers(1, 3), st.integers(0, 2**31 - 1), st.booleans())
def test_centered_clipping_direct_and_streaming_paths_agree(
    n: int, d: int, L: int, seed: int, weights: bool
) -> None:
    from robustfl.aggregators import CenteredClipping, clipping

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 3
    if weights:  # model weights: a large common part
        x = x * 1e-3 + torch.randn(d, generator=g, dtype=torch.float64) * 100
    v = torch.zeros(d, dtype=torch.float64)
    for _ in range(L):  # the definition, seed 002
        u = x - v
        v = v + (u * torch.clamp(1.0 / u.norm(dim=1), max=1.0)[:, None]).mean(0)
    assert n * d <= clipping.DIRECT_NUMEL
    direct = CenteredClipping(L=L, tau=1.0)(x)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(clipping, "DIRECT_NUMEL", 0)
        streaming = CenteredClipping(L=L, tau=1.0)(x)
    assert torch.allclose(direct, v, rtol=1e-12, atol=1e-9)
    assert torch.allclose(streaming, v, rtol=1e-9, atol=1e-6)


def test_centered_clipping_small_path_falls_back_on_non_finite_rows() -> None:
    from robustfl.aggregators import CenteredClipping

    x = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    x[2] = float("nan")
    out = CenteredClipping(tau=0.5)(x)
    assert torch.isfinite(out).all()
    assert (out - CenteredClipping(tau=0.5)(torch.cat([x[:2], x[3:]])) * 5 / 6).norm() <= 1e-5


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 40), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_bucketing_matches_its_definition_bit_for_bit(n: int, s: int, seed: int) -> None:
    from robustfl.aggregators import Bucketing
    from robustfl.utils import make_generator

    x = torch.randn(n, 7, generator=torch.Generator().manual_seed(seed))
    perm = torch.randperm(n, generator=make_generator(5, "bucketing"))
    expected = []
    for b in range(-(-n // s)):
        rows = perm[b * s : (b + 1) * s].sort().values  # added in row order, from zero
        total = torch.zeros(7)
        for r in rows:
            total = total + x[r]
        expected.append(total / len(rows))
    assert torch.equal(Bucketing(s=s, seed=5)(x), torch.stack(expected))


@pytest.mark.parametrize("shape", [(3, 1), (5, 1), (1, 4), (7, 9)])
@pytest.mark.parametrize("width", [1, 2, None])
def test_order_statistics_never_write_into_the_input(
    shape: tuple[int, int], width: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if width is not None:
        monkeypatch.setattr(cw, "BLOCK_NUMEL", width * shape[0])
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    before = x.clone()
    n = shape[0]
    order_statistics(x, 0, n)
    coordinate_median(x)
    Meamed((n - 1) // 2)(x)
    assert torch.equal(x, before)
