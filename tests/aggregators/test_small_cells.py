"""The small-input paths of CenteredClipping, MoNNA and GeometricMedian (issue 19) and the shared call
path: every path gives the results of the general one (bit for bit where the calls are the same, to
rounding where the distances are computed another way), on gradients and on model weights, on both
sides of every size threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import CenteredClipping, GeometricMedian, MoNNA, clipping, geomed
from robustfl.aggregators._small import SERIAL_NUMEL, OneThreadWhenSmall
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import SERIAL_ROWS, Aggregator
from robustfl.aggregators.clipping import clip_factors, clip_factors_, tau_in


def rows(n: int, d: int, seed: int, weights: bool, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Gradients (``randn``) or model weights (a large common part plus small noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    if weights:
        x = torch.randn(d, generator=g, dtype=dtype) * 1e3 + x * 1e-3
    return x


# --- the shared call path ------------------------------------------------------------------------


class _Probe(Aggregator):
    seen: list[int]

    def __init__(self) -> None:
        self.seen = []

    def _aggregate(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return x[0]


class _Switching(OneThreadWhenSmall, _Probe):
    pass


class _Serial(_Switching):
    serial_below = SERIAL_NUMEL


def test_one_thread_switch_and_its_serial_exception() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        small, wide, tall = (
            torch.zeros(4, 8),
            torch.zeros(2, SERIAL_NUMEL // 2),
            torch.zeros(SERIAL_ROWS + 1, 4),
        )
        switching, serial, plain = _Switching(), _Serial(), _Probe()
        for x in (small, wide, tall):
            switching(x)
            serial(x)
            plain(x)
        assert switching.seen == [1, 1, 1]
        assert serial.seen == [2, 1, 1]  # only the small input with few rows keeps the setting
        assert plain.seen == [2, 2, 2]
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="floating point"):
            switching(torch.zeros(2, 3, dtype=torch.int64))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    "bad",
    [None, [1.0, 2.0], torch.zeros(3), torch.zeros(2, 3, 4), torch.zeros(0, 3), torch.zeros(3, 0),
     torch.zeros(2, 3, dtype=torch.int32), torch.zeros(2, 3, dtype=torch.complex64)],
)  # fmt: skip
def test_invalid_messages_get_the_validation_error(bad: object) -> None:
    from robustfl.aggregators.base import check_messages

    with pytest.raises(ValueError) as expected:
        check_messages(bad)  # type: ignore[arg-type]
    for rule in (_Probe(), _Switching(), CenteredClipping()):
        with pytest.raises(ValueError) as got:
            rule(bad)  # type: ignore[arg-type]
        assert str(got.value) == str(expected.value)


def test_single_thread_restores_the_count_and_ignores_other_devices() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with single_thread(torch.device("cpu")):
            assert torch.get_num_threads() == 1
            with single_thread(torch.device("cpu")):
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with single_thread(torch.device("meta")):
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), single_thread(torch.device("cpu")):
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_half_inputs_are_computed_in_float32_on_every_path() -> None:
    x = rows(8, 50, 0, False, torch.float32)
    for rule, again in ((MoNNA(f=2), MoNNA(f=2)), (GeometricMedian(), GeometricMedian())):
        out = rule(x.half())
        assert out.dtype == torch.float16
        assert torch.equal(out, again(x.half().float()).half())


# --- CenteredClipping ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 1e30), min_size=1, max_size=40),
    st.floats(0.0, 1e39),
    st.sampled_from([np.float32, np.float64]),
)
def test_numpy_clip_factors_are_the_torch_ones_bit_for_bit(
    values: list[float], tau: float, dtype: type[np.floating]
) -> None:
    dist = np.array(values, dtype=dtype)
    t = tau_in(tau, torch.float32 if dtype is np.float32 else torch.float64)
    expected = clip_factors(torch.from_numpy(dist.copy()), t)
    got = dist.copy()
    assert clip_factors_(got, t)
    assert torch.equal(torch.from_numpy(got), expected)
    assert bool(((expected >= 0) & (expected <= 1)).all())
    if t > 0:
        assert bool((expected[torch.from_numpy(dist) <= t] == 1).all())


@pytest.mark.parametrize("tau", [0.7, 0.3, 1.0, 3.4e38])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_clip_factors_at_the_radius(tau: float, dtype: type[np.floating]) -> None:
    r = dtype(tau)  # the radius as the dtype holds it (0.7 rounds down in float32, 0.3 up)
    near = [np.nextafter(r, dtype(0)), r, np.nextafter(r, dtype(np.inf))]
    for values in (near[:2], near, [dtype(0.0), r]):  # all inside (the shortcut), one outside, a zero
        dist = np.array(values, dtype=dtype)
        expected = clip_factors(torch.from_numpy(dist.copy()), tau)
        assert clip_factors_(dist, tau)
        assert torch.equal(torch.from_numpy(dist), expected)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_numpy_clip_factors_refuse_non_finite_norms(bad: float) -> None:
    dist = np.array([1.0, bad, 2.0], dtype=np.float32)
    assert not clip_factors_(dist, 1.0)
    assert np.isnan(dist[1]) or np.isinf(dist[1])  # untouched


def centered_clipping_definition(x: torch.Tensor, steps: int, L: int, tau: float) -> torch.Tensor:
    """Seed 002: ``v <- v + mean_i clip_tau(x_i - v)``, ``L`` steps per call, the output carried over."""
    v = torch.zeros(x.shape[1], dtype=x.dtype)
    for _ in range(steps):
        for _ in range(L):
            u = x - v
            v = v + (u * torch.clamp(tau / u.norm(dim=1), max=1.0)[:, None]).mean(0)
    return v


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 600),
    st.integers(1, 2),
    st.sampled_from([0.0, 0.05, 1.0, 1e3]),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_centered_clipping_paths_agree_with_the_definition(
    n: int, d: int, L: int, tau: float, weights: bool, seed: int
) -> None:
    x = rows(n, d, seed, weights)
    expected = centered_clipping_definition(x, 3, L, tau)
    outs = []
    for tiny, direct in ((1 << 30, 1 << 30), (0, 1 << 30), (0, 0)):  # tiny step, _direct, streaming
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(clipping, "TINY_NUMEL", tiny)
            mp.setattr(clipping, "DIRECT_NUMEL", direct)
            cc = CenteredClipping(L=L, tau=tau)
            for _ in range(3):
                out = cc(x)
            outs.append(out)
    scale = float((x - expected).abs().max()) + 1e-30
    for out in outs:
        assert float((out - expected).abs().max()) <= 1e-9 * scale
    assert torch.equal(outs[0], outs[1])  # the tiny step makes _direct's calls


def test_centered_clipping_tiny_path_threshold_and_huge_tau() -> None:
    n = 16
    for d in (clipping.TINY_NUMEL // n, clipping.TINY_NUMEL // n + 1):
        x = rows(n, d, d, False, torch.float32)
        a, b = CenteredClipping(tau=0.5), CenteredClipping(tau=0.5)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(clipping, "TINY_NUMEL", 0)
            expected = [b(x) for _ in range(3)]
        assert all(torch.equal(a(x), e) for e in expected)
    x = rows(n, 100, 1, False, torch.float32)
    cc = CenteredClipping(tau=1e39)  # beyond float32: nothing is clipped
    cc(x)
    torch.testing.assert_close(cc(x), x.mean(0), rtol=1e-5, atol=1e-6)


def test_centered_clipping_state_in_another_dtype_and_a_non_finite_row() -> None:
    x = rows(6, 20, 2, False)
    cc = CenteredClipping(m=torch.zeros(20, dtype=torch.float32), tau=0.7)
    first = cc(x)  # float32 centre, float64 messages: converted, then the usual path
    assert first.dtype == torch.float64
    torch.testing.assert_close(first, centered_clipping_definition(x, 1, 1, 0.7))
    bad = x.clone()
    bad[2] = float("nan")
    out = cc(bad)  # the NaN row contributes nothing (streaming path), the output stays finite
    assert bool(torch.isfinite(out).all())


# --- MoNNA ---------------------------------------------------------------------------------------


def monna_definition(x: torch.Tensor, f: int, idx: int) -> torch.Tensor:
    """Mean of the ``n - f`` rows nearest ``x_idx`` (stable: ties to the lower index), NaN as +inf."""
    dist = torch.nan_to_num((x - x[idx]).norm(dim=1), nan=float("inf"))
    nearest = torch.sort(dist, stable=True).indices[: x.shape[0] - f]
    weights = torch.zeros(x.shape[0], dtype=x.dtype)
    weights[nearest] = 1.0 / (x.shape[0] - f)
    return weights @ x


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 70),
    st.integers(1, 300),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["gradients", "weights", "ties"]),
    st.sampled_from([torch.float32, torch.float64]),
    st.data(),
)
def test_monna_numpy_selection_matches_the_stable_sort(
    n: int, d: int, seed: int, kind: str, dtype: torch.dtype, data: st.DataObject
) -> None:
    x = rows(n, d, seed, kind == "weights", dtype)
    if kind == "ties":
        x = torch.randint(-1, 2, (n, d), generator=torch.Generator().manual_seed(seed)).to(dtype)
    f = data.draw(st.integers(0, (n - 1) // 2))
    idx = data.draw(st.integers(0, n - 1))
    assert torch.equal(MoNNA(f=f, idx=idx)(x), monna_definition(x, f, idx))


def test_monna_general_path_still_serves_nan_rows_and_a_bad_reference() -> None:
    x = rows(9, 30, 3, False)
    x[4, 2] = float("nan")  # infinitely far: never among the n - f = 7 nearest
    dist = torch.nan_to_num((x - x[0]).norm(dim=1), nan=float("inf"))
    nearest = torch.sort(dist, stable=True).indices[:7]
    assert 4 not in nearest.tolist()
    assert torch.equal(MoNNA(f=2, idx=0)(x), x.index_select(0, nearest).mean(0))
    x[0, 0] = float("inf")  # the reference itself: the coordinate-wise median becomes the reference
    assert bool(torch.isfinite(MoNNA(f=2, idx=0)(x)).all())


# --- GeometricMedian -----------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 400),
    st.integers(0, 2**31 - 1),
    st.booleans(),
    st.sampled_from([(1e-6, 100, 1e-6, "median"), (0.1, 3, None, "zero"), (1e-5, 20, None, "zero")]),
    st.sampled_from([torch.float32, torch.float64]),
)
def test_weiszfeld_direct_path_agrees_with_the_general_one(
    n: int, d: int, seed: int, weights: bool, params: tuple[float, int, float | None, str], dtype: torch.dtype
) -> None:
    nu, T, tol, init = params
    x = rows(n, d, seed, weights, dtype)
    z, w = geomed.weiszfeld_with_weights(x, nu, T, tol, init)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(geomed, "DIRECT_NUMEL", 0)
        z_ref, w_ref = geomed.weiszfeld_with_weights(x, nu, T, tol, init)  # type: ignore[arg-type]
        z64, _ = geomed.weiszfeld_with_weights(x.double(), nu, T, tol, init)  # type: ignore[arg-type]
    # The same steps, distances rounded another way: against the float64 run, the direct path is at
    # most twice as far as the general one, plus rounding (relative to the rows' spread, and a few
    # ulps of the result itself: model weights in float32 sit at that limit).
    eps = torch.finfo(dtype).eps
    spread = float(torch.linalg.vector_norm(x.double() - z64, dim=1).mean())
    error, error_ref = (float(torch.linalg.vector_norm(a.double() - z64)) for a in (z, z_ref))
    assert (
        error <= 2 * error_ref + 1e3 * eps * spread + 4 * eps * float(torch.linalg.vector_norm(z64)) + 1e-300
    )
    assert w.shape == w_ref.shape and abs(float(w.sum()) - 1.0) <= 1e3 * eps


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e20])
def test_weiszfeld_direct_path_leaves_bad_rows_to_the_general_one(bad: float) -> None:
    x = rows(9, 40, 4, False, torch.float32)
    x[3] = bad  # 1e20: finite, but its squared distance overflows float32
    for init in ("median", "zero"):
        z, w = geomed.weiszfeld_with_weights(x, 1e-6, 50, 1e-6, init)  # type: ignore[arg-type]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(geomed, "DIRECT_NUMEL", 0)
            z_ref, w_ref = geomed.weiszfeld_with_weights(x, 1e-6, 50, 1e-6, init)  # type: ignore[arg-type]
        assert torch.equal(z, z_ref) and torch.equal(w, w_ref)
        assert float(w[3]) == 0.0


def test_weiszfeld_direct_path_threshold_and_autograd() -> None:
    n = 16
    for d in (geomed.DIRECT_NUMEL // n, geomed.DIRECT_NUMEL // n + 1):
        x = rows(n, d, d, False, torch.float32)
        out = GeometricMedian.byzfl()(x)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(geomed, "DIRECT_NUMEL", 0)
            torch.testing.assert_close(out, GeometricMedian.byzfl()(x), rtol=1e-5, atol=1e-6)
    x = rows(6, 10, 5, False).requires_grad_()
    out = GeometricMedian()(x)  # autograd: the general path
    out.sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
