"""Edge-case set, poisoned mix, PGD projection, model replacement and backdoor metrics."""

from pathlib import Path

import numpy as np
import pytest
import torch

import robustfl
from robustfl.attacks import EdgeCaseMix, ModelReplacement, PGDProjection
from robustfl.attacks.edge_case import build_edge_case_set, poisoned_mix, ppca_log_density
from robustfl.attacks.metrics import accuracy, accuracy_parity_ratio, backdoor_accuracy
from robustfl.attacks.model_poisoning import model_replacement, pgd_radius, project_l2_ball

MNIST = Path(robustfl.__file__).parent / "data" / "embedded" / "mnist5k.npz"


@pytest.fixture(scope="module")
def mnist() -> tuple[torch.Tensor, torch.Tensor]:
    d = np.load(MNIST)
    return torch.tensor(d["x"]).float() / 255, torch.tensor(d["y"]).long()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_ppca_density_ranks_an_outlier_last() -> None:
    x = torch.randn(200, 10, generator=gen()) * 0.1
    x[17] += 3.0
    density = ppca_log_density(x, components=3)
    assert int(density.argmin()) == 17
    # with every component kept minus one, it matches the exact Gaussian log density up to round-off
    full = torch.distributions.MultivariateNormal(x.double().mean(0), torch.cov(x.double().T))
    exact = full.log_prob(x.double())
    assert torch.allclose(ppca_log_density(x, components=9), exact, atol=0.2)


def test_edge_case_set_takes_the_lowest_density_sevens(mnist) -> None:
    x, y = mnist
    e = build_edge_case_set(x, y, generator=gen())
    assert e.train_x.shape[0] == 66 and e.test_x.shape[0] == 34
    assert (e.train_y == 1).all() and (e.test_y == 1).all()
    tail = torch.cat([e.train_index, e.test_index])
    assert (y[tail] == 7).all() and tail.unique().numel() == 100
    sevens = torch.nonzero(y == 7).flatten()
    density = ppca_log_density(x[sevens], 20)
    in_tail = torch.isin(sevens, tail)
    assert density[in_tail].max() <= density[~in_tail].min()
    assert e.clean_x.shape[0] == 4900  # the tail is removed from the clean pool
    assert not any(torch.equal(e.train_x[0], c) for c in e.clean_x[e.clean_y == 7])
    again = build_edge_case_set(x, y, generator=gen())
    assert torch.equal(again.train_index, e.train_index)


def test_edge_case_set_errors(mnist) -> None:
    x, y = mnist
    with pytest.raises(ValueError, match="differ"):
        build_edge_case_set(x, y, generator=gen(), source=1, target=1)
    with pytest.raises(ValueError, match="tail_fraction"):
        build_edge_case_set(x, y, generator=gen(), tail_fraction=0.001)


def test_poisoned_mix_proportions() -> None:
    ex, ey = torch.zeros(70, 4), torch.ones(70, dtype=torch.long)
    cx, cy = torch.ones(300, 4), torch.zeros(300, dtype=torch.long)
    x, y = poisoned_mix(ex, ey, cx, cy, generator=gen())
    assert x.shape == (166, 4) and int(y.sum()) == 66
    assert not torch.equal(y[:66], torch.ones(66, dtype=torch.long))  # shuffled
    with pytest.raises(ValueError, match="n_edge=80"):
        poisoned_mix(ex, ey, cx, cy, generator=gen(), n_edge=80)


def test_pgd_projection_keeps_model_in_the_ball() -> None:
    center = torch.randn(50, generator=gen())
    for scale in [0.01, 1.0, 100.0]:
        w = center + scale * torch.randn(50, generator=gen(1))
        p = project_l2_ball(w, center, radius=2.0)
        assert torch.linalg.vector_norm(p - center) <= 2.0 + 1e-5
        if torch.linalg.vector_norm(w - center) <= 2.0:
            assert torch.equal(p, w)
        else:  # on the boundary, along the same direction
            assert torch.linalg.vector_norm(p - center).item() == pytest.approx(2.0, rel=1e-5)
            assert torch.nn.functional.cosine_similarity(p - center, w - center, dim=0) > 0.9999
    assert pgd_radius(1.5, 100, decay=0.998) == pytest.approx(1.5 * 0.998**100)


def test_model_replacement_makes_fedavg_land_on_the_attacker_model() -> None:
    w = torch.randn(20, generator=gen())
    w_att = w + torch.randn(20, generator=gen(1))
    sizes = torch.tensor([100.0, 300.0, 50.0, 50.0])  # attacker is client 0
    sent = [model_replacement(w_att, w, float(sizes.sum()), 100.0), w, w, w]  # honest clients converged
    fedavg = sum(s / sizes.sum() * m for s, m in zip(sizes, sent, strict=True))
    assert torch.allclose(fedavg, w_att, atol=1e-5)
    with pytest.raises(ValueError, match="n_attacker"):
        model_replacement(w_att, w, 10.0, 20.0)


def test_metrics() -> None:
    assert accuracy(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 0])) == 0.5
    assert backdoor_accuracy(torch.tensor([1, 1, 7, 1]), target=1) == 0.75
    assert accuracy_parity_ratio([0.9, 0.45, 0.6]) == pytest.approx(0.5)
    assert accuracy_parity_ratio([0.0, 0.0]) == 1.0
    with pytest.raises(ValueError, match="accuracies"):
        accuracy_parity_ratio([])


def test_pgd_message_attack_bounds_each_update() -> None:
    own = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    out = PGDProjection(radius=2.0)(torch.zeros(5, 2), 2, own=own)
    assert torch.allclose(out[0], torch.tensor([1.2, 1.6])) and torch.equal(out[1], own[1])
    decayed = PGDProjection(radius=2.0, decay=0.5)(torch.zeros(5, 2), 2, own=own, round=2)
    assert torch.linalg.vector_norm(decayed[0]).item() == pytest.approx(0.5)


def test_model_replacement_message_attack() -> None:
    own = torch.tensor([[3.0, 4.0]])
    honest = torch.zeros(9, 2)
    assert torch.equal(ModelReplacement()(honest, 1, own=own), own * 10)  # n = 10 equal clients
    pgd_mr = ModelReplacement(scale=4.0, radius=1.0)(honest, 1, own=own)
    assert torch.allclose(pgd_mr, torch.tensor([[2.4, 3.2]]))
    # averaged with honest updates that barely move, the aggregate is the attacker's own update
    assert torch.allclose(torch.cat([honest, ModelReplacement()(honest, 1, own=own)]).mean(0), own[0])


def test_edge_case_mix_replaces_the_fraction_with_edge_samples() -> None:
    edge_x, edge_y = torch.full((5, 1, 2, 2), 9.0), torch.ones(5, dtype=torch.long)
    x, y = torch.zeros(20, 1, 2, 2), torch.zeros(20, dtype=torch.long)
    mix = EdgeCaseMix(edge_x, edge_y, fraction=0.5)
    x2, y2, touched = mix(x, y, generator=gen())
    assert touched.sum() == 10 and (y2[touched] == 1).all() and (x2[touched] == 9.0).all()
    assert (x2[~touched] == 0).all() and (y2[~touched] == 0).all()
    assert EdgeCaseMix(edge_x, edge_y).fraction == pytest.approx(66 / 166)
    with pytest.raises(ValueError, match="same"):
        EdgeCaseMix(edge_x, edge_y)(torch.zeros(20, 4), y, generator=gen())


@pytest.mark.parametrize("honest", [0.0, 0.25, 0.5, 1.0])
def test_share_edge_cases_gives_the_honest_part_back_correctly_labelled(mnist, honest: float) -> None:
    from dataclasses import dataclass

    from robustfl.attacks.edge_case import split_off_edge_cases

    @dataclass(frozen=True)
    class Data:
        x_train: torch.Tensor
        y_train: torch.Tensor
        groups_train: torch.Tensor

    x, y = mnist
    data = Data(x, y, torch.arange(len(y)))
    base, full = split_off_edge_cases(data, 0)
    shared, edge = split_off_edge_cases(data, 0, honest_edge_fraction=honest)
    m = full.train_x.shape[0]
    n_honest = round(honest * m)
    assert edge.train_x.shape[0] == m - n_honest and bool((edge.train_y == 1).all())
    assert torch.equal(edge.test_index, full.test_index)  # the backdoor test set is untouched
    assert len(shared.y_train) == len(base.y_train) + n_honest
    assert torch.equal(shared.x_train[: len(base.y_train)], base.x_train)
    added_y = shared.y_train[len(base.y_train) :]
    assert bool((added_y == 7).all())  # 7s labelled 7
    # every edge train sample is on exactly one side; the groups follow the samples they label
    added = shared.groups_train[len(base.y_train) :]
    assert sorted([*added.tolist(), *edge.train_index.tolist()]) == full.train_index.tolist()
    assert torch.equal(shared.x_train, x[shared.groups_train])
    with pytest.raises(ValueError, match="honest_edge_fraction must be in"):
        split_off_edge_cases(data, 0, honest_edge_fraction=1.5)


def test_edge_case_mix_without_edge_samples_only_at_fraction_zero() -> None:
    empty_x, empty_y = torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)
    x, y = torch.randn(10, 2), torch.zeros(10, dtype=torch.long)
    x2, y2, touched = EdgeCaseMix(empty_x, empty_y, fraction=0.0)(x, y, generator=gen())
    assert torch.equal(x2, x) and torch.equal(y2, y) and not bool(touched.any())
    with pytest.raises(ValueError, match="M = 0 only with fraction = 0"):
        EdgeCaseMix(empty_x, empty_y, fraction=0.5)
