import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from robustfl.models import (
    MODELS,
    build_model,
    model_summary,
    num_parameters,
    prefers_loop,
    uses_batchnorm,
    uses_dropout,
)

MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)


IMAGE_MODELS = ["lenet", "lenet-caffe", "mlp", "crsa-cnn", "resnet18", "vgg9"]


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("shape", [MNIST, CIFAR])
def test_image_models_forward_any_image_shape(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, shape, 7)
    assert model(torch.randn(3, *shape)).shape == (3, 7)


def test_lenet_and_mlp_parameter_counts() -> None:
    assert num_parameters(build_model("lenet", MNIST, 10)) == 61_706
    assert num_parameters(build_model("lenet", CIFAR, 10)) == 83_126
    assert num_parameters(build_model("mlp", MNIST, 10)) == 199_210
    assert num_parameters(build_model("mlp", MNIST, 10, hidden=[])) == 7_850


def test_seed_model_parameter_counts() -> None:
    # seed 001 §5 reports 368,052; our documented layout has 368,618 (0.15% more)
    assert num_parameters(build_model("crsa-cnn", CIFAR, 10)) == 368_618
    # seed 004 Tables 4.4/4.6 (PUFFERFISH): no BatchNorm after the stem; the common variant has one
    assert num_parameters(build_model("resnet18", CIFAR, 10)) == 11_173_834
    assert num_parameters(build_model("resnet18", CIFAR, 10, stem_bn=True)) == 11_173_962
    # seed 004 Table 5.4/5.7: VGG-9 has 3,491,530 parameters
    vgg = build_model("vgg9", CIFAR, 10)
    assert num_parameters(vgg) == 3_491_530
    assert num_parameters(build_model("vgg9", CIFAR, 10, dropout=False)) == 3_491_530
    assert sum(isinstance(m, nn.Dropout) for m in vgg.modules()) == 3
    # seed 004 Table 5.5/5.6: the Shakespeare LSTM has 293,584 parameters
    assert num_parameters(build_model("lstm", (80,), 80)) == 293_584
    shapes = {k: tuple(v.shape) for k, v in build_model("lstm", (80,), 80).named_parameters()}
    assert shapes["encoder.weight"] == (80, 8)
    assert shapes["lstm.weight_ih_l0"] == (1024, 8)
    assert shapes["lstm.weight_hh_l0"] == (1024, 256)
    assert shapes["decoder.weight"] == (80, 256)


def test_fedma_chapter_models_and_widths() -> None:
    # Table 5.3: Caffe's LeNet 20-50-500 has 431k (431,080) parameters on MNIST
    assert num_parameters(build_model("lenet-caffe", MNIST, 10)) == 431_080
    # Table 5.7: FedMA's grown VGG-9 (47, 79, 143, 143, 271, 271, 527, 527) has 3,900,235 parameters
    grown = build_model("vgg9", CIFAR, 10, widths=[47, 79, 143, 143, 271, 271, 527, 527])
    assert num_parameters(grown) == 3_900_235
    # Table 5.6: the grown LSTM (embedding 21, hidden 257) has 310,160 parameters
    assert num_parameters(build_model("lstm", (80,), 80, embed_dim=21, hidden_size=257)) == 310_160
    # chapter 8's width factor multiplies the conv channels only
    thin = build_model("vgg9", CIFAR, 10, width_factor=0.5)
    assert thin.widths == (16, 32, 64, 64, 128, 128, 512, 512)
    assert num_parameters(build_model("lenet", MNIST, 10, widths=[6, 16, 120, 84])) == 61_706
    assert build_model("lenet-caffe", MNIST, 10, widths=[3, 4, 5])(torch.randn(2, *MNIST)).shape == (2, 10)
    with pytest.raises(ValueError, match="widths must be 3 positive"):
        build_model("lenet-caffe", MNIST, 10, widths=[20, 50])
    with pytest.raises(ValueError, match="width_factor"):
        build_model("vgg9", CIFAR, 10, width_factor=0)


def test_lstm_reads_token_ids_and_follows_table_5_5() -> None:
    model = build_model("lstm", (12,), 30, num_layers=2, hidden_size=16, embed_dim=5)
    tokens = torch.randint(0, 30, (3, 12))
    assert model(tokens).shape == (3, 30)
    # the prediction uses the whole sequence: changing the first token changes the logits
    changed = tokens.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 30
    assert not torch.allclose(model(tokens), model(changed))
    names = [k for k, _ in build_model("lstm", (80,), 80).named_parameters()]
    assert names == [
        "encoder.weight",
        "lstm.weight_ih_l0",
        "lstm.weight_hh_l0",
        "lstm.bias_ih_l0",
        "lstm.bias_hh_l0",
        "decoder.weight",
        "decoder.bias",
    ]
    with pytest.raises(ValueError, match="sequence_length"):
        build_model("lstm", MNIST, 10)
    with pytest.raises(ValueError, match="hidden_size"):
        build_model("lstm", (12,), 30, hidden_size=0)


@pytest.mark.filterwarnings("ignore:There is a performance drop")
@pytest.mark.parametrize(
    ("name", "shape"), [("lenet", MNIST), ("mlp", MNIST), ("crsa-cnn", CIFAR), ("lstm", (6,))]
)
def test_vmap_gradient_equals_per_sample_loop(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build_model(name, shape, 10)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randint(0, 10, (4, *shape)) if name == "lstm" else torch.randn(4, *shape)
    y = torch.randint(0, 10, (4,))

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(out, yi.unsqueeze(0))

    batched = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(4):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for k, p in model.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(batched[k][i], p.grad, rtol=1e-5, atol=1e-6)


def test_build_model_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet1000'"):
        build_model("resnet1000", MNIST, 10)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("lenet", (0, 28, 28), 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("lenet", MNIST, 0)
    with pytest.raises(ValueError, match="too small"):
        build_model("lenet", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="too small"):
        build_model("vgg9", (3, 4, 4), 10)
    with pytest.raises(ValueError, match="needs image inputs"):
        build_model("crsa-cnn", (784,), 10)
    with pytest.raises(ValueError, match="hidden"):
        build_model("mlp", MNIST, 10, hidden=[0])
    with pytest.raises(ValueError, match="has no parameter width"):
        build_model("lenet", MNIST, 10, width=3)


def test_helpers() -> None:
    lenet = build_model("lenet", MNIST, 10)
    assert not uses_batchnorm(lenet)
    assert not uses_batchnorm(build_model("vgg9", CIFAR, 10))
    assert uses_batchnorm(build_model("resnet18", CIFAR, 10))
    assert uses_dropout(build_model("vgg9", CIFAR, 10))
    assert prefers_loop(build_model("resnet18", CIFAR, 10)) and prefers_loop(build_model("lstm", (5,), 10))
    assert not prefers_loop(build_model("vgg9", CIFAR, 10)) and not prefers_loop(lenet)
    assert not uses_dropout(build_model("vgg9", CIFAR, 10, dropout=False))
    assert not uses_dropout(lenet)
    table = model_summary(lenet)
    assert table.row_count == len(list(lenet.parameters())) + 1
    assert set(MODELS.names()) >= {
        "crsa-cnn",
        "lenet",
        "lenet-caffe",
        "lstm",
        "mlp",
        "resnet18",
        "vgg9",
        "resnet18-pufferfish",
    }


def test_vgg9_dropout_runs_under_vmap_with_per_sample_randomness() -> None:
    model = build_model("vgg9", (3, 8, 8), 10)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = torch.randn(3, 3, 8, 8), torch.randint(0, 10, (3,))

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    with pytest.raises(RuntimeError, match="randomness"):
        vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    grads = vmap(grad(loss), in_dims=(None, 0, 0), randomness="different")(params, x, y)
    assert grads["classifier.6.weight"].shape == (3, 10, 512)
