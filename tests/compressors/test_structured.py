"""RandL, BlockSampling, Compose (seed 000 Lemma 4) and PowerSGD."""

import math

import pytest
import torch

from robustfl import compressors as C

SHAPES = [(6, 2, 2, 2), (6,), (5, 7), (5,)]
D = sum(math.prod(s) for s in SHAPES)


def test_randl_uses_one_mask_for_all_senders_and_counts_its_seed_once(rng: torch.Generator) -> None:
    x = torch.randn(4, 30, generator=rng)
    msg = C.RandL(l=6).compress(x, rng)
    out = C.RandL(l=6).decompress(msg)
    support = out != 0
    assert torch.equal(support, support[:1].expand(4, -1)) and int(support[0].sum()) == 6
    assert torch.equal(out[support], x[support])
    assert msg.shared_bits == 63 and msg.bits_per_row.tolist() == [6 * 32] * 4
    assert msg.row(2).bits == 63 + 6 * 32


def test_randl_sign_mode_sends_ternary_signs(rng: torch.Generator) -> None:
    x = torch.tensor([[1.0, -2.0, 0.0, 3.0]])
    c = C.RandL(l=4, sign=True)
    msg = c.compress(x, rng)
    assert torch.equal(c.decompress(msg), torch.tensor([[1.0, -1.0, 0.0, 1.0]]))
    assert msg.bits == 63 + 2 * 4


def test_blocksampling_prefers_heavy_columns_and_shares_indices(rng: torch.Generator) -> None:
    x = torch.full((3, 50), 1e-3)
    x[:, 7] = 10.0
    x[:, 31] = -8.0
    counts = torch.zeros(50)
    for _ in range(50):
        out = C.BlockSampling(k=2)(x, rng)
        counts += (out[0] != 0).float()
        assert torch.equal(out != 0, (out[:1] != 0).expand(3, -1))
    assert counts[7] == 50 and counts[31] == 50
    msg = C.BlockSampling(k=4).compress(x, rng)
    assert msg.shared_bits == 4 * 6 and msg.bits_per_row.tolist() == [4 * 32] * 3  # ceil(log2 50) = 6


def test_blocksampling_handles_fewer_nonzero_columns_than_k(rng: torch.Generator) -> None:
    x = torch.zeros(2, 10)
    x[:, 3] = 1.0
    out = C.BlockSampling(k=4)(x, rng)
    assert torch.equal(out, x)


def test_blocksampling_is_contractive_in_frobenius_norm(rng: torch.Generator) -> None:
    c = C.BlockSampling(k=6)
    for _ in range(4):
        g = torch.randn(5, 30, dtype=torch.float64, generator=rng) * torch.rand(
            30, dtype=torch.float64, generator=rng
        )
        err = torch.stack([((c(g, rng) - g) ** 2).sum() for _ in range(300)]).mean()
        assert float(err) <= (1 - c.delta(30)) * float((g**2).sum()) * 1.05


def test_compose_sends_quantised_codes_of_the_kept_coordinates_only(rng: torch.Generator) -> None:
    x = torch.randn(3, 64, generator=rng)
    c = C.Compose(C.BlockSampling(k=8), C.QSGD(s=4, coding="fixed"))
    msg = c.compress(x, rng)
    # per sender: norm 32 + 8 codes x (1 sign + 3 level bits); shared: 8 indices x 6 bits
    assert msg.bits_per_row.tolist() == [32 + 8 * 4] * 3 and msg.shared_bits == 8 * 6
    out = c.decompress(msg)
    kept = out[0] != 0
    assert int(kept.sum()) <= 8
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    levels = out * 4 / norms  # Q_s values are norm * integer / s
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-4)


def test_compose_of_unbiased_parts_is_unbiased(rng: torch.Generator) -> None:
    c = C.Compose(C.RandK(k=5), C.QSGD(s=2))
    assert c.unbiased
    x = torch.randn(12, dtype=torch.float64, generator=rng)
    s = c(x.expand(3000, -1).contiguous(), rng)
    z = (s.mean(0) - x).abs() / (s.std(0) / math.sqrt(3000))
    assert float(z.max()) < 5


def test_compose_meets_lemma_4(rng: torch.Generator) -> None:
    c = C.Compose(C.BlockSampling(k=8), C.QSGD(s=16))
    d = 40
    delta = c.delta(d)
    assert delta is not None and delta == pytest.approx((1 - C.QSGD(s=16).omega(d)) * 8 / d)
    x = torch.randn(d, dtype=torch.float64, generator=rng)
    err = torch.stack([((c(x, rng) - x) ** 2).sum() for _ in range(400)]).mean()
    assert float(err) <= (1 - delta) * float(x @ x)


def test_compose_builds_from_names_and_rejects_wrong_roles() -> None:
    c = C.get("compose", outer={"name": "topk", "k": 3}, inner="terngrad")
    assert isinstance(c.outer, C.TopK) and isinstance(c.inner, C.TernGrad)
    with pytest.raises(ValueError, match="outer must be a sparsifier"):
        C.Compose(C.QSGD(), C.QSGD())
    with pytest.raises(ValueError, match="inner must be a per-coordinate"):
        C.Compose(C.TopK(k=2), C.TopK(k=2))


def test_powersgd_is_exact_on_low_rank_layers_after_warm_start(rng: torch.Generator) -> None:
    n = 2
    u, v = torch.randn(n, 5, 1, generator=rng), torch.randn(n, 1, 7, generator=rng)
    low = (u @ v).reshape(n, -1)
    conv = (torch.randn(n, 6, 1, generator=rng) @ torch.randn(n, 1, 8, generator=rng)).reshape(n, -1)
    x = torch.cat([conv, torch.randn(n, 6), low, torch.randn(n, 5)], dim=1).double()
    c = C.PowerSGD(rank=1, shapes=SHAPES)
    c(x, rng)
    out = c(x, rng)  # second power iteration from the warm-started Q
    torch.testing.assert_close(out, x, rtol=1e-6, atol=1e-6)
    msg = c.compress(x, rng)
    assert msg.bits_per_row.tolist() == [64 * ((6 + 8) + (5 + 7) + 6 + 5)] * n


def test_powersgd_state_and_shape_errors(rng: torch.Generator) -> None:
    c = C.PowerSGD(rank=2, shapes=SHAPES)
    c(torch.randn(3, D), rng)
    with pytest.raises(ValueError, match="call reset"):
        c(torch.randn(2, D), rng)
    c.reset()
    c(torch.randn(2, D), rng)
    with pytest.raises(ValueError, match="shapes cover"):
        c(torch.randn(2, D + 1), rng)
    with pytest.raises(ValueError, match="shapes must be"):
        C.PowerSGD(rank=1, shapes=None)


def test_structured_compressors_round_trip_through_bytes(rng: torch.Generator) -> None:
    x = torch.randn(2, D, generator=rng)
    for c in (
        C.RandL(ratio=0.3),
        C.RandL(l=4, sign=True),
        C.BlockSampling(k=9),
        C.Compose(C.BlockSampling(k=9), C.QSGD(s=3)),
        C.Compose(C.RandK(k=9), C.TernGrad()),
        C.Compose(C.TopK(k=9), C.Sign()),
        C.PowerSGD(rank=2, shapes=SHAPES),
        C.ATOMO(budget=4.0),
        C.ATOMO(budget=1.5, atoms="svd", shapes=SHAPES),
    ):
        msg = c.compress(x, rng)
        direct = c.decompress(msg)
        assert torch.equal(c.decompress(C.Message.from_bytes(msg.to_bytes())), direct), c
        row = msg.row(1)
        data = row.to_bytes()
        assert 0 <= len(data) * 8 - row.bits <= 8 * 256, c
        assert torch.equal(c.decompress(C.Message.from_bytes(data)), direct[1:2]), c


def test_blocksampling_inclusion_matches_successive_sampling(rng: torch.Generator) -> None:
    """With weights (4, 1, 1) and k = 1 the heavy column is chosen with probability 4/6."""
    x = torch.tensor([[2.0, 1.0, 1.0]])
    c = C.BlockSampling(k=1)
    hits = sum(int(c.select(x, rng)[1][0, 0]) == 0 for _ in range(2000))
    p = 4 / 6
    assert abs(hits / 2000 - p) < 5 * math.sqrt(p * (1 - p) / 2000)


def test_blocksampling_fills_with_uniform_zero_columns(rng: torch.Generator) -> None:
    x = torch.zeros(1, 6)
    x[0, 0] = 1.0
    c = C.BlockSampling(k=2)
    counts = torch.zeros(6)
    for _ in range(1000):
        counts[c.select(x, rng)[1][0]] += 1
    assert counts[0] == 1000
    assert float((counts[1:] / 1000 - 0.2).abs().max()) < 5 * math.sqrt(0.2 * 0.8 / 1000)


@pytest.mark.parametrize(("d", "k"), [(40, 3), (12, 6)])
def test_seeded_masks_are_uniform_subsets(d: int, k: int) -> None:
    from robustfl.compressors.sparse import mask_from_seed

    counts = torch.zeros(d)
    for seed in range(1500):
        m = mask_from_seed(seed, d, k)
        assert m.numel() == k and m.unique().numel() == k and torch.equal(m, mask_from_seed(seed, d, k))
        counts[m] += 1
    p = k / d
    assert float((counts / 1500 - p).abs().max()) < 5 * math.sqrt(p * (1 - p) / 1500)


def test_powersgd_state_survives_a_checkpoint_round_trip(rng: torch.Generator) -> None:
    x = torch.randn(2, D, generator=rng)
    a = C.PowerSGD(rank=1, shapes=SHAPES)
    a(x, rng)
    b = C.PowerSGD(rank=1, shapes=SHAPES)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x, rng), b(x, rng))
    ef = C.ErrorFeedback(C.Compose(C.TopK(k=3), C.QSGD(s=2)))
    ef(x, rng)
    ef2 = C.ErrorFeedback(C.Compose(C.TopK(k=3), C.QSGD(s=2)))
    ef2.load_state_dict(ef.state_dict())
    assert ef2.memory is not None and torch.equal(ef2.memory, ef.memory)
    with pytest.raises(ValueError, match="keeps no state"):
        C.QSGD().load_state_dict({"q.0": torch.zeros(1)})


def test_randl_parameter_errors_name_l() -> None:
    with pytest.raises(ValueError, match="exactly one of l"):
        C.RandL()
    with pytest.raises(ValueError, match="l must be >= 1"):
        C.RandL(l=0)
