import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import CAF


def direct_caf(x: torch.Tensor, f: int) -> torch.Tensor:
    """The documented filter computed in d-space with an explicit d x d covariance."""
    n = x.shape[0]
    c = torch.ones(n, dtype=torch.float64)
    best_mu, best_val = x.mean(0), math.inf
    while c.sum() > n - 2 * f:
        mu = (c[:, None] * x).sum(0) / c.sum()
        diffs = x - mu
        cov = (c[:, None] * diffs).T @ diffs / c.sum()
        vals, vecs = torch.linalg.eigh(cov)
        if vals[-1] < best_val:
            best_mu, best_val = mu, float(vals[-1])
        tau = (diffs @ vecs[:, -1]) ** 2
        c = (c * (1 - tau / tau[c > 0].max())).clamp(min=0)
    return best_mu


def test_hand_example_drops_the_outlier() -> None:
    x = torch.tensor([[0.0, 0], [2, 0], [0, 2], [2, 2], [100, 100]])
    # round 1: the top direction points at (100, 100), whose weight drops to 0; the square's corners on
    # that diagonal lose a little weight, so the result is the square's centre up to ~0.5%
    out = CAF(f=1)(x)
    assert torch.allclose(out, direct_caf(x.double(), 1).float())
    assert torch.allclose(out, torch.tensor([1.0, 1.0]), atol=0.01)


@pytest.mark.parametrize(("n", "f", "d"), [(5, 1, 3), (8, 3, 4), (11, 5, 2), (7, 2, 10)])
def test_matches_direct_computation(n: int, f: int, d: int) -> None:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n * d), dtype=torch.float64)
    x[0] += 4.0
    assert torch.allclose(CAF(f)(x), direct_caf(x, f), atol=1e-9)


def test_f_zero_is_the_mean() -> None:
    x = torch.randn(6, 3, dtype=torch.float64)
    assert torch.allclose(CAF(0)(x), x.mean(0))


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(3, 9),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    bad=st.sampled_from([1e6, -1e6, math.nan, math.inf, 1e38]),
    steps=st.sampled_from([None, 1, 3]),
)
def test_bad_rows_get_zero_weight(n: int, d: int, seed: int, bad: float, steps: int | None) -> None:
    # the stated distance: the output is a weighted mean of honest rows, inside their bounding box
    f = (n - 1) // 2
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    x[:f] = bad
    out = CAF(f, power_steps=steps)(x)
    honest = x[f:]
    assert (out >= honest.min(0).values - 1e-4).all() and (out <= honest.max(0).values + 1e-4).all()


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"n > 2f, got n=6, f=3"):
        CAF(f=3)(torch.zeros(6, 2))
    with pytest.raises(ValueError, match="f must be an integer"):
        CAF(f=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("m", [5, 130, 300])
def test_top_eigenpair_matches_a_full_decomposition(m: int) -> None:
    import numpy as np
    import scipy.sparse.linalg

    from robustfl.aggregators.caf import top_eigenpair

    rng = np.random.default_rng(m)
    b = rng.standard_normal((m, 40))
    a = b @ b.T
    full_vals, full_vecs = np.linalg.eigh(a)
    for start in (None, rng.standard_normal(m)):
        val, vec = top_eigenpair(scipy.sparse.linalg.aslinearoperator(a), start)
        assert val == pytest.approx(full_vals[-1], rel=1e-10)
        assert abs(float(vec @ full_vecs[:, -1])) == pytest.approx(1.0, abs=1e-8)


def test_large_support_uses_lanczos_and_matches_direct_computation() -> None:
    x = torch.randn(140, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    x[:20] += 5.0
    assert torch.allclose(CAF(30)(x), direct_caf(x, 30), atol=1e-8)


def shifted(n: int, d: int, f: int, seed: int, base: float, noise: float, shift: float) -> torch.Tensor:
    """``n`` rows ``base + noise * N(0, diag(1, 2, 4, ...))`` (a spectrum with gaps, so the top
    eigenvector is well conditioned) whose first ``f`` rows are moved ``shift * noise`` along every axis."""
    gen = torch.Generator().manual_seed(seed)
    scales = 2.0 ** (torch.arange(d, dtype=torch.float64) % 6)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * scales * noise
    x[:f] += shift * noise
    return x + base


@pytest.mark.parametrize("n", [12, 140])  # dense eigensolver / Lanczos
@pytest.mark.parametrize(("base", "noise"), [(0.0, 1.0), (1e3, 1e-2)])  # gradients / model weights
def test_exact_mode_matches_direct_computation(n: int, base: float, noise: float) -> None:
    f = n // 4
    x = shifted(n, 6, f, seed=n, base=base, noise=noise, shift=6.0)
    assert torch.allclose(CAF(f)(x), direct_caf(x, f), rtol=0, atol=1e-9 * max(1.0, base))


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("n", [20, 140])
@pytest.mark.parametrize(("base", "noise"), [(0.0, 1.0), (1e3, 1e-2)])
def test_power_steps_remove_the_same_outliers_as_the_exact_eigenpair(
    steps: int, n: int, base: float, noise: float
) -> None:
    from robustfl.aggregators._distances import pairwise_sq_distances_and_usable
    from robustfl.aggregators.caf import filter_weights

    f = n // 5
    x = shifted(n, 8, f, seed=steps + n, base=base, noise=noise, shift=200.0)
    dist, ok = pairwise_sq_distances_and_usable(x)
    exact = filter_weights(dist.numpy(), ok.numpy(), n - 2 * f)
    power = filter_weights(dist.numpy(), ok.numpy(), n - 2 * f, power_steps=steps)
    assert power.sum() == pytest.approx(1.0) and (power >= 0).all()
    assert exact[:f].sum() < 1e-2 and power[:f].sum() < 1e-2
    # both are means of (almost only) the honest rows, close on the scale of their spread (plus what
    # an outlier weight up to 2.5e-3 adds: 0.5 noise)
    honest = x[f:]
    out = CAF(f, power_steps=steps)(x)
    assert ((out - CAF(f)(x)).abs() <= 0.25 * honest.std(0) + 0.5 * noise).all()
    assert (out >= honest.min(0).values).all() and (out <= honest.max(0).values).all()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_power_steps_is_validated(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^power_steps must be None \(exact eigenpair\) or an integer >= 1"):
        CAF(1, power_steps=bad)  # type: ignore[arg-type]


@settings(max_examples=15, deadline=None)
@given(
    n=st.sampled_from([5, 16, 127, 128, 129]),  # around LANCZOS_MIN_M
    steps=st.sampled_from([None, 1, 3]),
    seed=st.integers(0, 2**16),
    nan_rows=st.integers(0, 2),
)
def test_weighted_mean_of_honest_rows_around_the_thresholds(
    n: int, steps: int | None, seed: int, nan_rows: int
) -> None:
    f = (n - 1) // 4
    x = shifted(n, 5, f, seed=seed, base=1e3, noise=1e-2, shift=200.0)
    x[: min(nan_rows, f)] = math.nan  # some of the f bad rows unusable: cut out before the rounds
    out = CAF(f, power_steps=steps)(x)
    honest = x[f:]
    margin = 0.02  # outliers keep weights below 1e-2 (times their distance, 2)
    assert (out >= honest.min(0).values - margin).all() and (out <= honest.max(0).values + margin).all()
    if steps is None and nan_rows == 0:
        assert torch.allclose(out, direct_caf(x, f), rtol=0, atol=1e-6)


@settings(max_examples=12, deadline=None)
@given(
    steps_n=st.sampled_from([(1, 119), (1, 120), (1, 121), (3, 279), (3, 280)]),  # around ROWS_PER_READ
    seed=st.integers(0, 2**16),
    common=st.booleans(),
    nan_row=st.booleans(),
)
def test_rows_route_matches_the_distance_route(
    steps_n: tuple[int, int], seed: int, common: bool, nan_row: bool
) -> None:
    import numpy as np

    from robustfl.aggregators._distances import pairwise_sq_distances_and_usable
    from robustfl.aggregators.caf import filter_weights, power_weights_on_rows

    steps, n = steps_n
    f = n // 5
    noise = 1e-2 if common else 1.0
    x = shifted(n, 7, f, seed=seed, base=1e3 if common else 0.0, noise=noise, shift=30.0)
    if nan_row:
        x[0, 3] = math.nan
    dist, ok = pairwise_sq_distances_and_usable(x)
    by_distances = filter_weights(dist.numpy(), ok.numpy(), n - 2 * f, power_steps=steps)
    on_rows = power_weights_on_rows(x, n - 2 * f, steps)
    if nan_row:
        assert on_rows is None  # the caller takes the distance route
    else:
        assert on_rows is not None and np.allclose(on_rows, by_distances, rtol=0, atol=1e-9)
    expected = by_distances @ torch.nan_to_num(x).numpy()
    assert np.allclose(CAF(f, power_steps=steps)(x).numpy(), expected, rtol=0, atol=1e-9 * (1 + 1e3 * common))


@pytest.mark.parametrize("steps", [None, 1, 3])
def test_float32_model_weights_stay_accurate(steps: int | None) -> None:
    # rows 1e3 + 1e-2 noise in float32 (the rows route from n = 120 / 280, the distances below) agree
    # with the same rows in float64 to a few float32 ulps of 1e3 (6e-5 each)
    n = 300 if steps else 40
    x = shifted(n, 16, n // 5, seed=3, base=1e3, noise=1e-2, shift=30.0).float()
    out = CAF(n // 5, power_steps=steps)(x)
    assert out.dtype == torch.float32
    assert (out.double() - CAF(n // 5, power_steps=steps)(x.double())).abs().max() < 5e-4


@pytest.mark.parametrize("numpy_max", [0, 1 << 30])  # the rows route's products in torch / NumPy
def test_rows_route_products_in_torch_and_numpy(numpy_max: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from robustfl.aggregators import caf
    from robustfl.aggregators._distances import pairwise_sq_distances_and_usable

    monkeypatch.setattr(caf, "NUMPY_MAX_NUMEL", numpy_max)
    x = shifted(150, 9, 30, seed=5, base=1e3, noise=1e-2, shift=30.0)
    dist, ok = pairwise_sq_distances_and_usable(x)
    for steps in (1, 3):
        on_rows = caf.power_weights_on_rows(x, 90, steps)
        assert on_rows is not None
        assert np.allclose(
            on_rows, caf.filter_weights(dist.numpy(), ok.numpy(), 90, steps), rtol=0, atol=1e-9
        )


@pytest.mark.parametrize("d", [4096, 4097])  # n d = 2^18 = NUMPY_MAX_NUMEL: rows route / distances
def test_power_steps_results_agree_across_the_size_switch(d: int) -> None:
    import numpy as np

    from robustfl.aggregators._distances import pairwise_sq_distances_and_usable
    from robustfl.aggregators.caf import filter_weights

    x = shifted(64, d, 12, seed=d, base=1e3, noise=1e-2, shift=30.0)
    dist, ok = pairwise_sq_distances_and_usable(x)
    expected = filter_weights(dist.numpy(), ok.numpy(), 40, power_steps=1) @ x.numpy()
    assert np.allclose(CAF(12, power_steps=1)(x).numpy(), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("dtype", "big"), [(torch.float32, 1e13), (torch.float64, 1e61)])
def test_rows_too_large_for_the_rows_route_take_the_distances(dtype: torch.dtype, big: float) -> None:
    from robustfl.aggregators.caf import power_weights_on_rows

    x = torch.randn(20, 6, generator=torch.Generator().manual_seed(1), dtype=dtype)
    assert power_weights_on_rows(x, 12, 1) is not None
    x[:3] = big
    assert power_weights_on_rows(x, 12, 1) is None
    out = CAF(4, power_steps=1)(x)
    assert (out >= x[3:].min(0).values - 1e-4).all() and (out <= x[3:].max(0).values + 1e-4).all()


@pytest.mark.parametrize("steps", [None, 1, 3])
@pytest.mark.parametrize("n", [5, 300])
def test_identical_rows(steps: int | None, n: int) -> None:
    # Sigma = 0 in the first round: the loop stops (with Lanczos, ARPACK used to fail on it)
    x = torch.full((n, 3), 7.0)
    assert torch.allclose(CAF(n // 4, power_steps=steps)(x), x[0])
