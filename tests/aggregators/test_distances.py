"""Pairwise squared distances (``_distances.sq_distance_matrix``) on every path: uncentred or centred
Gram matrix, one product or row strips (from ``_STRIP_MIN`` rows), one or several column blocks, and
the recomputation of cancelling pairs. Both scales: gradients (``N(0, 1)`` rows) and model weights
(rows ``1e3 + 1e-3 * noise``, which share a common part a million times their spread).

Tolerances hold for any float32 GEMM: a distance at least 1e-2 of its two squared norms (smaller ones
are recomputed) has a relative error of at most about ``d * 6e-8 / 1e-2``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import NNM, Krum, MultiKrum
from robustfl.aggregators import _distances as dist_mod
from robustfl.aggregators._distances import nearest_mask_np, pairwise_sq_distances, sq_distance_matrix
from robustfl.aggregators.krum import krum_scores_np, lowest_scores_np, weighted_row_sum

STRIP = dist_mod._STRIP_MIN


def exact(x: torch.Tensor) -> np.ndarray:
    x64 = x.double()
    return ((x64.unsqueeze(1) - x64.unsqueeze(0)) ** 2).sum(-1).numpy()


def rows(n: int, d: int, seed: int, scale: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, d, generator=g, dtype=torch.float64)
    x = noise if scale == "gradients" else 1e3 + 1e-3 * noise
    return x.to(dtype)


def rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    """The largest relative error off the diagonal (identical rows must be at distance exactly 0)."""
    off = ~np.eye(got.shape[0], dtype=bool)
    err, scale = np.abs(got - ref)[off], ref[off]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.where(err == 0, 0.0, err / scale).max(initial=0.0))


def max_rel_error(x: torch.Tensor) -> float:
    return rel_error(sq_distance_matrix(x)[0], exact(x))


@contextmanager
def patched(**values: int) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in values.items():
            mp.setattr(dist_mod, name, value)
        yield


@settings(max_examples=30, deadline=None)
@given(
    st.one_of(st.integers(2, 12), st.integers(STRIP - 3, STRIP + 9)),
    st.integers(1, 160),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["gradients", "weights"]),
)
def test_within_tolerance_of_float64_around_the_strip_threshold(
    n: int, d: int, seed: int, scale: str
) -> None:
    x = rows(n, d, seed, scale)
    assert max_rel_error(x) <= max(1e-3, d * 6e-6)


@pytest.mark.parametrize("scale", ["gradients", "weights"])
@pytest.mark.parametrize("block", [10**9, 7 * 40, 40])  # one block; 7 columns a block; one column
def test_column_blocks_and_strips_agree(scale: str, block: int) -> None:
    x = rows(40, 60, 3, scale)
    with patched(_HEAD_NUMEL=block, _BLOCK_NUMEL=block, _STRIP_MIN=8, _STRIP_ROWS=8):  # 5 strips of 8 rows
        strips, _ = sq_distance_matrix(x)
    single, _ = sq_distance_matrix(x)
    assert np.array_equal(strips, strips.T)  # the upper triangle mirrored
    for got in (strips, single):
        assert rel_error(got, exact(x)) <= 1e-3


def test_centring_is_decided_by_the_rows() -> None:
    grads = rows(10, 50, 0, "gradients")
    assert not dist_mod._shared_part_is_large(grads @ grads.T)
    w = rows(10, 50, 0, "weights")
    assert dist_mod._shared_part_is_large(w @ w.T)


def test_shared_part_outside_the_first_block_is_still_exact() -> None:
    # the first column block looks like gradients, the rest like weights: the uncentred Gram matrix
    # cancels there, and the recomputation around a row restores the distances
    x = rows(12, 300, 5, "weights")
    x[:, :100] = rows(12, 100, 6, "gradients") * 1e-3
    with patched(_HEAD_NUMEL=12 * 100, _BLOCK_NUMEL=12 * 100):  # the decision sees the first 100 columns
        assert not dist_mod._shared_part_is_large(x[:, :100] @ x[:, :100].T)
        assert max_rel_error(x) <= 1e-3


@pytest.mark.parametrize("n", [16, STRIP + 2])
@pytest.mark.parametrize("scale", ["gradients", "weights"])
def test_non_finite_and_overflowing_rows_are_unusable(n: int, scale: str) -> None:
    x = rows(n, 30, 1, scale)
    x[2, 3] = float("nan")
    x[4, 0] = float("inf")
    x[5] = 1e30  # finite, but its squared norm overflows float32: the work moves to float64
    got, usable = sq_distance_matrix(x)
    bad = [2, 4]
    assert not usable[bad].any() and usable.sum() == n - 2
    assert np.isinf(got[bad][:, [0, 1, 3]]).all() and (np.diag(got) == 0).all()
    good = np.flatnonzero(usable)
    assert rel_error(got[np.ix_(good, good)], exact(x)[np.ix_(good, good)]) <= 1e-3


def test_no_finite_row_gives_infinite_distances() -> None:
    x = torch.full((5, 3), float("nan"))
    got, usable = sq_distance_matrix(x)
    assert not usable.any() and np.isinf(got[~np.eye(5, dtype=bool)]).all() and (np.diag(got) == 0).all()


def test_tensor_wrapper_matches_arrays() -> None:
    x = rows(9, 20, 2, "weights")
    got, _ = sq_distance_matrix(x)
    assert torch.equal(pairwise_sq_distances(x), torch.from_numpy(got))


@pytest.mark.parametrize("n", [20, STRIP + 4])
@pytest.mark.parametrize("scale", ["gradients", "weights"])
def test_rules_select_what_float64_distances_select(n: int, scale: str) -> None:
    # a quarter of the rows is pushed away; the float32 selections must be valid for the exact
    # distances up to the float32 tolerance (rows within it of the threshold may swap)
    f = n // 4
    x = rows(n, 64, 11, scale, torch.float64)
    x[-f:] += 5 * (1.0 if scale == "gradients" else 1e-3)
    x32 = x.float()
    got, _ = sq_distance_matrix(x32)
    ref = exact(x32)
    tol = 1e-3
    k = n - f - 1
    ref_scores = krum_scores_np(ref, k)
    chosen = lowest_scores_np(krum_scores_np(got, k), n - f)
    others = np.setdiff1d(np.arange(n), chosen)
    assert ref_scores[chosen].max() <= ref_scores[others].min() * (1 + tol)
    assert set(chosen.tolist()).isdisjoint(range(n - f, n))
    krum = int((Krum(f)(x32) == x32).all(1).nonzero()[0])
    assert ref_scores[krum] <= ref_scores.min() * (1 + tol)
    mask = nearest_mask_np(got, n - f)
    for i in range(n):
        assert ref[i][mask[i]].max() <= ref[i][~mask[i]].min() * (1 + tol)
    mixed = torch.from_numpy(mask).float().div_(n - f) @ x32
    assert torch.allclose(NNM(f)(x32), mixed, rtol=1e-6, atol=1e-6 * float(x32.abs().max()))
    assert torch.allclose(MultiKrum(f)(x32), x32[torch.from_numpy(chosen)].mean(0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n", [16, 1024])
def test_multikrum_mean_of_weights_is_as_accurate_as_torch_mean(n: int) -> None:
    # rows near 1e3: one float32 matrix-vector product over 1024 rows is ~6e-3 off (sequential
    # accumulation); blocks of 32 rows keep it near torch.mean's (float32 spacing at 1e3: 6e-5)
    x = rows(n, 200, 9, "weights")
    f = (n - 1) // 4
    got = MultiKrum(f)(x)
    _, chosen = torch.topk(-torch.from_numpy(krum_scores_np(sq_distance_matrix(x)[0], n - f - 1)), n - f)
    exact = x.double()[chosen].mean(0)
    assert float((got.double() - exact).abs().max()) <= 1.5e-3
    w = np.zeros(n, dtype=np.float32)
    w[3] = 1.0
    assert torch.equal(weighted_row_sum(x, w), x[3])  # one weight of 1: that row, bit for bit


@pytest.mark.parametrize("d", [5461, 5462])  # 12 chosen rows: just below and above 2^16 elements
@pytest.mark.parametrize("scale", ["gradients", "weights"])
def test_multikrum_mean_on_both_sides_of_the_copy_threshold(d: int, scale: str) -> None:
    x = rows(16, d, 13, scale)
    chosen = lowest_scores_np(krum_scores_np(sq_distance_matrix(x)[0], 11), 12)
    exact = x.double()[torch.from_numpy(chosen)].mean(0)
    err = (MultiKrum(4)(x).double() - exact).abs().max()
    assert float(err) <= 16 * 6e-8 * float(x.abs().max())
