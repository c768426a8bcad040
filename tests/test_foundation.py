import pytest
import torch

from robustfl import aggregators
from robustfl.utils import derive_seed, flatten, make_generator, unflatten


def test_flatten_roundtrip_shares_memory() -> None:
    params = [torch.randn(3, 4), torch.randn(5), torch.randn(2, 1, 2)]
    flat = flatten(params)
    assert flat.shape == (12 + 5 + 4,)
    back = unflatten(flat, params)
    for a, b in zip(params, back, strict=True):
        assert torch.equal(a, b)
    back[1][0] = 42.0
    assert flat[12] == 42.0


def test_unflatten_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="expected"):
        unflatten(torch.zeros(7), [torch.zeros(2, 2)])


def test_derived_generators_are_independent_and_reproducible() -> None:
    a = torch.rand(5, generator=make_generator(0, "data", 1))
    b = torch.rand(5, generator=make_generator(0, "data", 1))
    c = torch.rand(5, generator=make_generator(0, "data", 2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert derive_seed(1, "x") != derive_seed(2, "x")


def test_registry_errors_name_the_choices_and_parameters() -> None:
    with pytest.raises(ValueError, match="unknown aggregator 'nope'.*average"):
        aggregators.get("nope")
    with pytest.raises(ValueError, match="has no parameter f"):
        aggregators.get("average", f=2)


@pytest.mark.parametrize(
    "bad", [torch.zeros(3), torch.zeros(0, 4), torch.zeros(2, 0), torch.zeros(2, 2, dtype=torch.int64)]
)
def test_aggregators_reject_malformed_input(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="messages must"):
        aggregators.get("mean")(bad)


def test_average_is_the_mean() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    assert torch.equal(aggregators.Average()(x), torch.tensor([4.0, 5.0, 6.0]))
