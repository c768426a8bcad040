import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from robustfl.models import MODELS, build_model, model_summary, num_parameters, uses_batchnorm

MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)


@pytest.mark.parametrize("name", ["lenet", "mlp"])
@pytest.mark.parametrize("shape", [MNIST, CIFAR])
def test_image_models_forward_any_image_shape(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, shape, 7)
    assert model(torch.randn(3, *shape)).shape == (3, 7)


def test_lenet_and_mlp_parameter_counts() -> None:
    assert num_parameters(build_model("lenet", MNIST, 10)) == 61_706
    assert num_parameters(build_model("lenet", CIFAR, 10)) == 83_126
    assert num_parameters(build_model("mlp", MNIST, 10)) == 199_210
    assert num_parameters(build_model("mlp", MNIST, 10, hidden=[])) == 7_850


@pytest.mark.parametrize("name", ["lenet", "mlp"])
def test_vmap_gradient_equals_per_sample_loop(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, MNIST, 10)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = torch.randn(4, *MNIST), torch.randint(0, 10, (4,))

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
    with pytest.raises(ValueError, match="hidden"):
        build_model("mlp", MNIST, 10, hidden=[0])
    with pytest.raises(ValueError, match="has no parameter width"):
        build_model("lenet", MNIST, 10, width=3)


def test_helpers() -> None:
    lenet = build_model("lenet", MNIST, 10)
    assert not uses_batchnorm(lenet)
    assert uses_batchnorm(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))
    table = model_summary(lenet)
    assert table.row_count == len(list(lenet.parameters())) + 1
    assert {"lenet", "mlp"} <= set(MODELS.names())
