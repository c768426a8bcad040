"""Per-layer compression (seed 004 §3.5): LayerWise, b-bit QSGD, spectral-ATOMO views, SIGNUM."""

import math
from pathlib import Path

import pytest
import torch

from robustfl import compressors as C
from robustfl.compressors.codecs import index_bits
from robustfl.compressors.layers import matrix_view
from robustfl.models import build_model

SHAPES = [(6, 2, 3, 3), (6,), (5, 7), (5,)]
SIZES = [math.prod(s) for s in SHAPES]
D = sum(SIZES)


def test_matrix_views() -> None:
    assert matrix_view((6, 2, 3, 3)) == (6, 18)
    assert matrix_view((6, 2, 3, 3), "pairs") == (6, 18)  # [xy/2, 2k^2] = [6, 18]
    assert matrix_view((64, 3, 3, 3), "pairs") == (96, 18)
    assert matrix_view((3, 3, 3, 3), "pairs") == (9, 9)  # odd xy: [xy, k^2]
    assert matrix_view((5, 7), "pairs") == (5, 7) and matrix_view((5,)) == (5,)
    with pytest.raises(ValueError, match="conv"):
        matrix_view((2, 2, 1, 1), "rows")


def test_b_bit_qsgd_levels_and_exact_fixed_width_bits(rng: torch.Generator) -> None:
    assert [C.qsgd_levels(b) for b in (1, 2, 4, 8)] == [1, 3, 15, 255]
    x = torch.randn(3, D, generator=rng)
    for bits in (1, 2, 4, 8):
        c = C.get("qsgd-layers", bits=bits, shapes=SHAPES, coding="fixed")
        msg = c.compress(x, rng)
        # one float norm per layer (bucket) + b level bits + 1 sign bit per coordinate
        assert msg.bits_per_row.tolist() == [sum(32 + n * (bits + 1) for n in SIZES)] * 3
        assert c.decompress(msg).shape == x.shape


def test_layerwise_equals_each_layer_compressed_on_its_own() -> None:
    x = torch.randn(2, D, generator=torch.Generator().manual_seed(5))
    c = C.LayerWise({"name": "qsgd", "s": 3}, SHAPES)
    got = c(x, torch.Generator().manual_seed(9))
    gen, expected, offset, bits = torch.Generator().manual_seed(9), [], 0, 0
    for size in SIZES:
        part = C.QSGD(s=3)
        msg = part.compress(x[:, offset : offset + size], gen)
        expected.append(part.decompress(msg))
        bits += msg.bits
        offset += size
    torch.testing.assert_close(got, torch.cat(expected, 1))
    assert c.compress(x, torch.Generator().manual_seed(9)).bits == bits
    # one norm per layer: a huge layer does not drown the others (one global norm would)
    x = torch.ones(1, D)
    x[0, : SIZES[0]] = 1e6
    out = C.LayerWise({"name": "qsgd", "s": 255}, SHAPES)(x, torch.Generator().manual_seed(0))
    assert torch.all(out[0, SIZES[0] :].abs() > 0)  # levels >= floor(255 / sqrt(35)) = 43
    whole = C.QSGD(s=255)(x, torch.Generator().manual_seed(0))
    assert float((whole[0, SIZES[0] :] != 0).float().mean()) < 0.5


def test_spectral_atomo_per_layer_bits_and_full_budget_is_exact(rng: torch.Generator) -> None:
    x = torch.randn(2, D, generator=rng, dtype=torch.float64)
    for conv in ("pairs", "out"):
        c = C.get("spectral-atomo", budget=1.5, shapes=SHAPES, conv=conv)
        msg = c.compress(x, rng)
        views = [matrix_view(s, conv) for s in SHAPES]
        for i in range(2):
            expect = 0
            for layer, view in enumerate(views):
                if len(view) == 2:
                    kept = int(msg.get_rows(f"L{layer}.counts")[i].sum())
                    expect += index_bits(min(view) + 1) + 64 * kept * (view[0] + view[1])
                else:
                    expect += 64 * view[0]  # vectors go raw
            assert int(msg.row(i).bits) == expect
        # a budget of at least every layer's rank keeps every atom with p = 1: lossless
        full = C.get("spectral-atomo", budget=100, shapes=SHAPES, conv=conv)
        torch.testing.assert_close(full(x, rng), x)


def test_terngrad_layers_scale_each_layer_by_its_own_max(rng: torch.Generator) -> None:
    x = torch.randn(1, D, generator=rng)
    c = C.get("terngrad-layers", shapes=SHAPES)
    msg = c.compress(x, rng)
    assert msg.bits == sum(32 + 2 * n for n in SIZES)
    out, offset = c.decompress(msg), 0
    for size in SIZES:
        part = out[0, offset : offset + size]
        assert set(part.abs().unique().tolist()) <= {0.0, float(x[0, offset : offset + size].abs().max())}
        offset += size


def test_messages_survive_the_wire(rng: torch.Generator) -> None:
    x = torch.randn(2, D, generator=rng)
    for c in (
        C.get("qsgd-layers", bits=2, shapes=SHAPES),
        C.get("spectral-atomo", budget=2, shapes=SHAPES),
        C.get("terngrad-layers", shapes=SHAPES),
    ):
        msg = c.compress(x, rng)
        for i in range(2):
            back = C.Message.from_bytes(msg.row(i).to_bytes())
            assert back.bits == msg.row(i).bits
            torch.testing.assert_close(c.decompress(back), c.decompress(msg.row(i)))


def _row_states(c: C.Compressor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The engine's per-client state for the rows of ``x`` (``init_row_state`` stacked)."""
    rows = [c.init_row_state(r) for r in x]
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def test_powersgd_with_error_feedback_on_a_pufferfish_layout(rng: torch.Generator) -> None:
    model = build_model("resnet18-pufferfish", (3, 8, 8), 10)
    shapes = [tuple(p.shape) for p in model.parameters()]
    d = sum(p.numel() for p in model.parameters())
    c = C.build("powersgd", {"rank": 4}, error_feedback=True, shapes=shapes)
    x = torch.randn(2, d, generator=rng)
    msg, state = c.encode(x, rng, _row_states(c, x))  # the engine's path: state per client
    values = 0
    for s in shapes:
        a, b = s[0], math.prod(s) // s[0]
        values += 4 * (a + b) if len(s) >= 2 and a > 1 and b > 1 and 4 * (a + b) < a * b else math.prod(s)
    assert msg.bits_per_row.tolist() == [32 * values] * 2
    assert state["ef_memory"].shape == (2, d) and torch.all(torch.isfinite(state["ef_memory"]))
    assert int(state["powersgd_started"].sum()) == 2


def test_layerwise_keeps_per_client_state_like_the_object_path(rng: torch.Generator) -> None:
    xs = [torch.randn(2, D, generator=rng) for _ in range(3)]
    for inner in ({"name": "powersgd", "rank": 1}, "signum"):
        held, engine = C.LayerWise(inner, SHAPES), C.LayerWise(inner, SHAPES)
        state = _row_states(engine, xs[0])
        for x in xs:
            seed = int(torch.randint(0, 2**31, (1,), generator=rng))
            a = held.decompress(held.compress(x, torch.Generator().manual_seed(seed)))
            msg, state = engine.encode(x, torch.Generator().manual_seed(seed), state)
            torch.testing.assert_close(engine.decompress(msg), a)
        assert all(k.startswith("L") for k in state)


def test_layerwise_state_and_validation(rng: torch.Generator) -> None:
    c = C.LayerWise({"name": "powersgd", "rank": 1}, SHAPES)
    c.compress(torch.randn(2, D, generator=rng), rng)
    state = c.state_dict()
    assert sorted(state) == ["L0.q", "L1.q", "L2.q", "L3.q"]
    assert state["L1.q"].numel() == 0 and state["L0.q"].shape == (2, 18)  # vectors have no warm start
    fresh = C.LayerWise({"name": "powersgd", "rank": 1}, SHAPES)
    fresh.load_state_dict(state)
    x = torch.randn(2, D, generator=rng)
    torch.testing.assert_close(fresh(x, rng), c(x, rng))
    with pytest.raises(ValueError, match="L<layer>"):
        fresh.load_state_dict({"q": state["L0.q"]})
    with pytest.raises(ValueError, match="d=3"):
        c.compress(torch.randn(2, 3))
    with pytest.raises(ValueError, match="nested"):
        C.LayerWise({"name": "layerwise", "shapes": SHAPES}, SHAPES)
    with pytest.raises(ValueError, match="bound to other shapes"):
        C.LayerWise(C.PowerSGD(rank=1, shapes=SHAPES), SHAPES)
    with pytest.raises(ValueError, match="bits"):
        C.qsgd_levels(0)
    assert C.LayerWise("qsgd", SHAPES).unbiased and C.LayerWise("qsgd", SHAPES).omega(D) == pytest.approx(
        math.sqrt(max(SIZES))
    )


def test_signum_sends_one_bit_per_coordinate_of_the_momentum() -> None:
    c = C.Signum(beta=0.5)
    x1 = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.5, -0.5]])
    msg = c.compress(x1)
    assert msg.bits == 6 and msg.bits_per_row.tolist() == [3, 3]
    torch.testing.assert_close(c.decompress(msg), torch.sign(x1))
    x2 = torch.tensor([[-3.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    # m = 0.5 * (0.5 x1) + 0.5 x2 = [[-1.25, 0, 1.25], [0.125, 0.125, -0.125]]; sign(0) is sent as +1
    torch.testing.assert_close(c(x2), torch.tensor([[-1.0, 1.0, 1.0], [1.0, 1.0, -1.0]]))
    state = c.state_dict()
    c.reset()
    assert c.state_dict() == {}
    c.load_state_dict(state)
    with pytest.raises(ValueError, match="reset"):
        c.compress(torch.randn(3, 3))
    with pytest.raises(ValueError, match="beta"):
        C.Signum(beta=1.0)
    # the engine's path keeps the momentum in per-client state and gives the same messages
    engine = C.Signum(beta=0.5)
    state = engine.init_row_state(x1[0])
    state = {k: torch.stack([v, v]) for k, v in state.items()}
    msg1, state = engine.encode(x1, None, state)
    torch.testing.assert_close(engine.decompress(msg1), torch.sign(x1))
    msg2, state = engine.encode(x2, None, state)
    torch.testing.assert_close(engine.decompress(msg2), torch.tensor([[-1.0, 1.0, 1.0], [1.0, 1.0, -1.0]]))


def test_layer_wise_codes_run_in_the_engine(tmp_path: Path) -> None:
    from robustfl.experiment.config import load_config
    from robustfl.experiment.runner import run

    base = ["training.rounds=2", "training.eval_every=2", "workers.f=0", 'model.name="mlp"']
    demo = Path(__file__).resolve().parents[2] / "src" / "robustfl" / "configs" / "demo.toml"
    signum = load_config(demo, [*base, 'compressor.name="signum"', 'aggregator.name="sign-majority"'])
    summary = run(signum, tmp_path / "signum", quiet=True)
    assert summary["bits_up"] == 10 * 2 * 199_210  # one bit per coordinate, 10 workers, 2 rounds
    atomo = load_config(demo, [*base, 'compressor.name="spectral-atomo"', "compressor.params={ budget = 2 }"])
    summary = run(atomo, tmp_path / "atomo", quiet=True)
    assert 0 < summary["bits_up"] < 10 * 2 * 32 * 199_210
