"""PUFFERFISH low-rank layers, hybrid networks and Algorithm 2's SVD initialisation (seed 004 ch. 4)."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from robustfl.data import load_dataset
from robustfl.models import (
    HYBRIDS,
    HybridSpec,
    LowRankConv2d,
    LowRankLinear,
    LowRankLSTMLayer,
    LSTMLayer,
    build_model,
    factorise,
    hybrid,
    num_parameters,
    svd_initialise,
    weight_layers,
)
from robustfl.models.lowrank import rank_for, svd_factors
from robustfl.models.macs import count_macs, model_macs

CIFAR, IMAGENET = (3, 32, 32), (3, 224, 224)

# (model, input shape, classes, vanilla, PUFFERFISH): Tables 4.2, 4.3, 4.4, 4.5
COUNTS = [
    ("resnet18", CIFAR, 10, 11_173_834, 3_336_138),
    ("vgg19-bn", CIFAR, 10, 20_560_330, 8_370_634),
    ("resnet50", IMAGENET, 1000, 25_557_032, 15_202_344),
    ("wide-resnet50-2", IMAGENET, 1000, 68_883_240, 40_047_400),
    ("word-lstm", (35,), 33_278, 85_962_278, 67_962_278),
    ("transformer", (2, 16), 9_521, 48_978_432, 26_696_192),
]


@pytest.mark.parametrize(("name", "shape", "classes", "vanilla", "low"), COUNTS)
def test_parameter_counts_match_the_chapter(
    name: str, shape: tuple[int, ...], classes: int, vanilla: int, low: int
) -> None:
    with torch.device("meta"):
        full = build_model(name, shape, classes)
        small = build_model(f"{name}-pufferfish", shape, classes)
        converted = hybrid(full, HYBRIDS[name], svd=False)
    assert num_parameters(full) == vanilla
    assert num_parameters(small) == low
    assert num_parameters(converted) == low  # the registry entry is the hybrid of the vanilla net


def test_macs_match_tables_4_4_and_4_6() -> None:
    # counted analytically from shapes on the meta device; the tables give two decimals
    expected = {"resnet18": (0.56, 0.22), "vgg19-bn": (0.40, 0.29)}
    for name, (full, low) in expected.items():
        assert round(model_macs(name, CIFAR, 10) / 1e9, 2) == full
        assert round(model_macs(f"{name}-pufferfish", CIFAR, 10) / 1e9, 2) == low
    # a single conv and linear layer: the closed forms of Table 4.1
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, torch.zeros(2, 3, 5, 5)) == 8 * 5 * 5 * 3 * 9
    low = LowRankConv2d(3, 8, 3, rank=2, padding=1)
    assert count_macs(low, torch.zeros(2, 3, 5, 5)) == 2 * 3 * 9 * 25 + 2 * 8 * 25
    lstm, lowlstm = LSTMLayer(6, 4), LowRankLSTMLayer(6, 4, 2)
    assert count_macs(lstm, torch.zeros(1, 3, 6)) == 3 * 4 * 4 * (6 + 4)
    assert count_macs(lowlstm, torch.zeros(1, 3, 6)) == 3 * (4 * 2 * (6 + 4) + 8 * 4 * 2)


def test_hybrid_layer_choice_follows_the_derivation() -> None:
    with torch.device("meta"):
        resnet = build_model("resnet18-pufferfish", CIFAR, 10)
        vgg = build_model("vgg19-bn-pufferfish", CIFAR, 10)
        tr = build_model("transformer-pufferfish", (2, 4), 100)
    # ResNet-18: conv1 and the first block stay full (K = 4), shortcuts and the classifier too
    assert isinstance(resnet.conv1, nn.Conv2d) and isinstance(resnet.layer1[0].conv2, nn.Conv2d)
    assert isinstance(resnet.layer1[1].conv1, LowRankConv2d)
    assert isinstance(resnet.layer2[0].shortcut[0], nn.Conv2d) and isinstance(resnet.linear, nn.Linear)
    assert resnet.layer4[1].conv2.rank == 128 and resnet.layer1[1].conv1.rank == 16  # Table 4.13
    # VGG-19: conv9 full, conv10 on low rank (K = 10), the last FC full
    convs = [m for m in vgg.features if isinstance(m, nn.Conv2d | LowRankConv2d)]
    assert [isinstance(c, LowRankConv2d) for c in convs] == [False] * 9 + [True] * 7
    assert [type(m).__name__ for m in vgg.classifier if not isinstance(m, nn.ReLU | nn.Flatten)] == [
        "LowRankLinear",
        "LowRankLinear",
        "Linear",
    ]
    # Transformer: first encoder and decoder layers full, the tied projection full
    assert isinstance(tr.encoder[0].self_attention.wq, nn.Linear)
    assert isinstance(tr.encoder[1].self_attention.wq, LowRankLinear)
    assert isinstance(tr.decoder[5].ffn.layer2, LowRankLinear) and tr.decoder[5].ffn.layer2.rank == 128
    assert tr.projection.weight is tr.embedding.weight


def test_factorised_layers_equal_full_layers_at_full_rank() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(7, 5).double()
    conv = nn.Conv2d(3, 6, 3, stride=2, padding=1).double()
    lstm = LSTMLayer(4, 3).double()
    x_lin, x_conv, x_seq = torch.randn(4, 7), torch.randn(2, 3, 9, 9), torch.randn(2, 5, 4)
    cases = [
        (lin, LowRankLinear.from_full(lin, 5), x_lin),
        (conv, LowRankConv2d.from_full(conv, 6), x_conv),
        (lstm, LowRankLSTMLayer.from_full(lstm, 3), x_seq),
    ]
    for full, low, x in cases:
        torch.testing.assert_close(low(x.double()), full(x.double()), rtol=1e-9, atol=1e-10)


def test_svd_initialisation_is_the_best_rank_r_approximation() -> None:
    torch.manual_seed(1)
    w = torch.randn(12, 9, dtype=torch.float64)
    sigma = torch.linalg.svdvals(w)
    for r in (1, 3, 9):
        left, right = svd_factors(w, r)
        # Eckart–Young: the Frobenius error is the energy of the dropped singular values
        err = torch.linalg.matrix_norm(w - left @ right) ** 2
        torch.testing.assert_close(err, (sigma[r:] ** 2).sum(), rtol=1e-9, atol=1e-9)
        # U = Ũ Σ^½ and Vᵀ = Σ^½ Ṽᵀ: both factors carry the same singular values
        torch.testing.assert_close(torch.linalg.svdvals(left), sigma[:r].sqrt())
        torch.testing.assert_close(torch.linalg.svdvals(right), sigma[:r].sqrt())
    with pytest.raises(ValueError, match="rank"):
        svd_factors(w, 10)
    assert rank_for(512, 4608, 0.25) == 128 and rank_for(3, 3, 0.1) == 1
    with pytest.raises(ValueError, match="rank_ratio"):
        rank_for(4, 4, 0.0)


def _small_bn_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 12),
        nn.ReLU(),
        nn.Linear(12, 5),
    )


def test_svd_switch_copies_batchnorm_statistics_and_full_layers() -> None:
    torch.manual_seed(2)
    vanilla = _small_bn_net()
    vanilla.train()
    vanilla(torch.randn(6, 3, 4, 4))  # move the BN running statistics away from their initial values
    spec = HybridSpec(2)  # conv 1 full, conv 2 and the hidden FC low rank, the classifier full
    switched = hybrid(vanilla, spec, rank_ratio=0.5, svd=True)
    built = svd_initialise(vanilla, hybrid(_small_bn_net(), spec, rank_ratio=0.5, svd=False))
    assert switched.state_dict().keys() == built.state_dict().keys()
    for a, b in zip(switched.state_dict().values(), built.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    state, before = built.state_dict(), vanilla.state_dict()
    for key in ("4.running_mean", "4.running_var", "4.weight", "0.weight", "9.weight", "9.bias"):
        torch.testing.assert_close(state[key], before[key])
    torch.testing.assert_close(state["7.v.bias"], before["7.bias"])
    # a factorised conv is the rank-r truncation of the vanilla kernel (r = 0.5 * min(16, 72) = 8)
    low = built[3]
    assert isinstance(low, LowRankConv2d) and low.rank == 8
    left, right = svd_factors(vanilla[3].weight.detach().reshape(16, -1).double(), 8)
    torch.testing.assert_close(low.full_weight().reshape(16, -1).double(), left @ right, rtol=1e-3, atol=2e-5)
    assert isinstance(vanilla[3], nn.Conv2d)  # the vanilla model is untouched
    # at full rank the switched network computes the vanilla one's function (BN statistics included)
    exact = hybrid(vanilla.double(), spec, rank_ratio=1.0, svd=True).eval()
    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(exact(x), vanilla.eval()(x), rtol=1e-9, atol=1e-10)


def test_factorise_validates_its_arguments() -> None:
    model = build_model("mlp", (1, 28, 28), 10)
    assert weight_layers(model) == ["net.1", "net.3", "net.5"]  # Linear layers after the Flatten
    with pytest.raises(ValueError, match="not full-rank weight layers"):
        factorise(model, ["nothing"])
    with pytest.raises(ValueError, match="rank_ratio"):
        factorise(model, [], rank_ratio=1.5)
    with pytest.raises(ValueError, match="first_low_rank"):
        build_model("resnet18-pufferfish", CIFAR, 10, first_low_rank=0)
    with pytest.raises(ValueError, match="built for sequences of 3"):
        build_model("transformer", (2, 3), 9, d_model=8, heads=2, d_ff=8, layers=1)(
            torch.zeros(1, 2, 4).long()
        )
    with pytest.raises(ValueError, match="no parameter width"):
        build_model("resnet18-pufferfish", CIFAR, 10, width=2)
    with pytest.raises(ValueError, match="no full-rank counterpart"):
        svd_initialise(build_model("mlp", (1, 28, 28), 10), build_model("resnet18-pufferfish", CIFAR, 10))


def _per_client_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, dict]:
    """Per-client gradients by vmap and by a loop (clients = first axis of x, y)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (xb,)), yb)

    batched = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    looped = [grad(loss)(params, x[i], y[i]) for i in range(x.shape[0])]
    return batched, {k: torch.stack([g[k] for g in looped]) for k in params}


@pytest.mark.parametrize("which", ["mlp", "lstm", "transformer"])
def test_low_rank_models_run_under_vmap(which: str) -> None:
    torch.manual_seed(3)
    if which == "mlp":
        model = factorise(build_model("mlp", (1, 6, 6), 4, hidden=[8]), ["net.1"], rank_ratio=0.5)
        x, y = torch.randn(3, 5, 1, 6, 6), torch.randint(0, 4, (3, 5))
    elif which == "lstm":
        model = build_model("word-lstm-pufferfish", (4,), 11, embed_dim=6, hidden_size=6, dropout=0.0)
        x, y = torch.randint(0, 11, (3, 2, 4)), torch.randint(0, 11, (3, 2, 4))
    else:
        model = build_model(
            "transformer-pufferfish", (2, 3), 9, d_model=8, heads=2, d_ff=16, layers=2, dropout=0.0
        )
        x, y = torch.randint(0, 9, (3, 2, 2, 3)), torch.randint(0, 9, (3, 2, 3))
    assert any(isinstance(m, LowRankLinear | LowRankLSTMLayer) for m in model.modules())
    batched, looped = _per_client_grads(model, x, y)
    for k in batched:
        torch.testing.assert_close(batched[k], looped[k], rtol=1e-4, atol=1e-6)


def test_a_hybrid_network_trains_on_embedded_data() -> None:
    torch.manual_seed(4)
    ds = load_dataset("embedded-mnist")
    x, y = ds.x_train[:1024], ds.y_train[:1024]
    vanilla = build_model("lenet", ds.input_shape, ds.num_classes)
    model = factorise(vanilla, weight_layers(vanilla)[1:-1], rank_ratio=0.5, svd=False)  # K = 2
    assert num_parameters(model) < num_parameters(vanilla)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    lossfn = nn.functional.cross_entropy
    with torch.no_grad():
        before = float(lossfn(model(x), y))
    for _ in range(2):
        for i in range(0, 1024, 32):
            opt.zero_grad()
            lossfn(model(x[i : i + 32]), y[i : i + 32]).backward()
            opt.step()
    with torch.no_grad():
        after = float(lossfn(model(x), y))
    assert after < 0.5 * before  # about 2.3 -> 0.6 measured
