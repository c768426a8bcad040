"""Data corruption: exactly the psi fraction is touched, the corruption is right, runs are reproducible."""

import pytest
import torch

from robustfl.attacks import (
    DATA_ATTACKS,
    AdditiveFeatureNoise,
    BackdoorLabels,
    ImpulseNoise,
    LabelFlip,
    get_data_attack,
    poison_clients,
)


def data(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


ATTACKS = [
    AdditiveFeatureNoise(0.3),
    ImpulseNoise(0.3),
    BackdoorLabels(0.3, target=3),
    LabelFlip(0.3),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: type(a).__name__)
def test_exactly_the_fraction_is_touched_and_reproducible(attack) -> None:
    x, y = data()
    x_orig, y_orig = x.clone(), y.clone()
    x2, y2, touched = attack(x, y, generator=gen(1))
    assert touched.sum().item() == 60
    changed = (x2 != x).flatten(1).any(1) | (y2 != y)
    assert not changed[~touched].any()  # nothing outside the chosen samples moves
    assert torch.equal(x, x_orig) and torch.equal(y, y_orig)  # inputs untouched
    again = attack(x, y, generator=gen(1))
    assert all(torch.equal(a, b) for a, b in zip((x2, y2, touched), again, strict=True))
    assert not torch.equal(touched, attack(x, y, generator=gen(2))[2])


def test_feature_noise_adds_n100_1() -> None:
    x, y = data(1000)
    x2, _, touched = AdditiveFeatureNoise(0.5)(x, y, generator=gen(0))
    diff = (x2 - x)[touched]
    assert diff.mean().item() == pytest.approx(100.0, abs=0.05)
    assert diff.std().item() == pytest.approx(1.0, abs=0.05)


def test_impulse_sets_exactly_the_pixel_fraction_to_the_data_range() -> None:
    x, y = data()
    x = x * 0.8 + 0.1  # range [0.1, 0.9]
    lo, hi = float(x.min()), float(x.max())
    x2, _, touched = ImpulseNoise(0.5, pixel_fraction=0.75)(x, y, generator=gen(0))
    rows = x2[touched].flatten(1)
    extreme = (rows == lo) | (rows == hi)
    assert (extreme.sum(1) >= 48).all()  # 0.75 * 64 pixels set; a pre-existing extreme may add one
    salt = (rows == hi).float().mean().item()
    assert 0.3 < salt < 0.7
    x3, _, _ = ImpulseNoise(0.5, low=-1.0, high=2.0)(x, y, generator=gen(0))
    assert set(x3[touched].unique().tolist()) >= {-1.0, 2.0}


def test_backdoor_and_label_flip_labels() -> None:
    x, y = data()
    _, y2, touched = BackdoorLabels(0.25, target=7)(x, y, generator=gen(0))
    assert (y2[touched] == 7).all()
    _, y3, touched = LabelFlip(1.0, num_classes=10)(x, y, generator=gen(0))
    assert touched.all() and torch.equal(y3, 9 - y)
    with pytest.raises(ValueError, match="num_classes=5"):
        LabelFlip(1.0, num_classes=5)(x, y, generator=gen(0))


def test_poison_clients_derives_one_generator_per_client() -> None:
    clients = [data(50), data(50), data(50)]
    out, touched = poison_clients(BackdoorLabels(0.5, target=1), clients, byzantine=[0, 2], seed=7)
    assert set(touched) == {0, 2}
    assert out[1] is clients[1]
    assert not torch.equal(touched[0], touched[2])  # same data, different client streams
    out_again, _ = poison_clients(BackdoorLabels(0.5, target=1), clients[:1], byzantine=[0], seed=7)
    assert torch.equal(out_again[0][1], out[0][1])  # client 0 does not depend on the others
    with pytest.raises(ValueError, match="index 3"):
        poison_clients(BackdoorLabels(0.5), clients, byzantine=[3], seed=7)


def test_errors_name_the_problem() -> None:
    x, y = data()
    with pytest.raises(ValueError, match="fraction"):
        BackdoorLabels(1.5)
    with pytest.raises(ValueError, match="labels"):
        BackdoorLabels(0.5)(x, y[:10], generator=gen(0))
    with pytest.raises(ValueError, match="float features"):
        AdditiveFeatureNoise(0.5)(x.to(torch.uint8), y, generator=gen(0))
    assert isinstance(get_data_attack("impulse", fraction=0.2), ImpulseNoise)
    assert "label-flip" in DATA_ATTACKS
