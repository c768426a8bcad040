"""Layer-wise FedMA (Algorithm 3) with communication, its byte counts and the §5.2 baselines."""

import pytest
import torch

from robustfl.algorithms.fedma import BBPMAPCost, layer_chain, width_factory
from robustfl.algorithms.fedma.baselines import ensemble_accuracy, fedavg, local_models
from robustfl.algorithms.fedma.procedure import fedma
from robustfl.algorithms.fedma.training import SGDTrainer, TrainRequest, accuracy


def _blobs() -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, torch.Tensor]:
    """Four well-separated Gaussian classes in 10-D; client 0 holds classes 0-1, client 1 classes 2-3."""
    g = torch.Generator().manual_seed(0)
    centers = 4 * torch.randn(4, 10, generator=g)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(4).repeat_interleave(n)
        return centers[y] + torch.randn(4 * n, 10, generator=g), y

    (x, y), (xt, yt) = draw(25), draw(40)
    return [(x[y < 2], y[y < 2]), (x[y >= 2], y[y >= 2])], xt, yt


TRAINER = SGDTrainer(epochs=4, lr=0.05, batch_size=16)


def test_fedma_learns_classes_no_client_sees_together() -> None:
    clients, xt, yt = _blobs()
    make = width_factory("mlp", (10,), 4)
    result = fedma(clients, make, [[16], [12]], 4, TRAINER, rounds=2, evaluate=lambda m: accuracy(m, xt, yt))
    locals_ = local_models(clients, make, [[16], [12]], TRAINER)
    assert all(accuracy(m, xt, yt) < 0.6 for m in locals_)  # each knows 2 of the 4 classes
    assert [h.accuracy for h in result.history][-1] > 0.9  # type: ignore[operator]
    assert ensemble_accuracy(locals_, xt, yt) > 0.9
    # global size between the largest local model and their concatenation
    assert 16 <= result.widths[0] <= 28
    assert [h.communications for h in result.history] == [2, 4]


def test_bytes_are_counted_per_layer_as_sent() -> None:
    clients, _, _ = _blobs()
    make = width_factory("mlp", (10,), 4)
    result = fedma(clients, make, [[6], [5]], 4, SGDTrainer(epochs=1), cost=BBPMAPCost())
    (record,) = result.history
    big = result.widths[0]
    # layer 1 up: each client's (10 + 1) x L_j; down: the global (10 + 1) x L plus L_j indices
    # classifier up: each client's retrained (L + 1) x 4 (inputs lifted to L); down: the global one
    up = 4 * (11 * 6 + 11 * 5) + 2 * 4 * (big + 1) * 4
    down = 2 * 4 * 11 * big + 4 * (6 + 5) + 2 * 4 * (big + 1) * 4
    assert (record.bytes_up, record.bytes_down) == (up, down)
    _, history = fedavg(clients, make, [6], SGDTrainer(epochs=1), rounds=3)
    assert history[-1].bytes_up == history[-1].bytes_down == 3 * 2 * 4 * (11 * 6 + 7 * 4)


def test_layers_are_frozen_as_algorithm_3_says() -> None:
    clients, _, _ = _blobs()
    make = width_factory("mlp", (10,), 4)
    chain = layer_chain(make([8, 8]))
    names = [set(layer.names) for layer in chain]
    seen = []

    def trainer(request: TrainRequest) -> None:
        seen.append((request.client, request.stage, set(request.trainable), request.last_layer_only))
        TRAINER(request)

    fedma(clients, make, [[8, 8], [8, 8]], 4, trainer)
    everything = names[0] | names[1] | names[2]
    expected = [(j, "local", everything, False) for j in range(2)]
    expected += [(j, "retrain", names[1] | names[2], False) for j in range(2)]
    expected += [(j, "retrain", names[2], True) for j in range(2)]
    assert seen == expected


def test_rounds_restart_from_the_global_model_at_each_clients_size() -> None:
    clients, _, _ = _blobs()
    make = width_factory("mlp", (10,), 4)
    sizes = []

    def trainer(request: TrainRequest) -> None:
        if request.stage == "local":
            sizes.append(request.model.net[1].out_features)  # type: ignore[index, union-attr]
        TRAINER(request)

    result = fedma(clients, make, [[7], [5]], 4, trainer, rounds=2)
    assert sizes == [7, 5, 7, 5]
    assert len(result.history) == 2 and result.history[1].bytes_up > result.history[0].bytes_up


def test_errors_name_the_argument() -> None:
    clients, _, _ = _blobs()
    make = width_factory("mlp", (10,), 4)
    with pytest.raises(ValueError, match="rounds"):
        fedma(clients, make, [[4], [4]], 4, TRAINER, rounds=0)
    with pytest.raises(ValueError, match="local_widths"):
        fedma(clients, make, [[4]], 4, TRAINER)
    with pytest.raises(ValueError, match="num_classes"):
        fedma(clients, make, [[4], [4]], 3, TRAINER)
    with pytest.raises(ValueError, match="clients"):
        fedma([], make, [], 4, TRAINER)
    with pytest.raises(ValueError, match="epochs"):
        SGDTrainer(epochs=-1)
    with pytest.raises(ValueError, match="lr"):
        SGDTrainer(lr=-0.1)


def test_growth_table_reproduces_table_5_7() -> None:
    from robustfl.algorithms.fedma import growth_table

    make = width_factory("vgg9", (3, 32, 32), 10, dropout=False)
    original = make([32, 64, 128, 128, 256, 256, 512, 512]).state_dict()
    grown = make([47, 79, 143, 143, 271, 271, 527, 527]).state_dict()
    rows = growth_table(original, grown)
    assert rows[-1].global_count == 3_900_235 and rows[-1].original_count == 3_491_530
    assert round(rows[-1].rate, 2) == 1.12  # the chapter prints 1.11x (3,900,235 / 3,491,530 = 1.117)
    first = rows[0]
    assert (first.global_count, first.original_count) == (1_269, 864)
    with pytest.raises(ValueError, match="same parameter names"):
        growth_table(original, width_factory("mlp", (4,), 2)([3]).state_dict())


@pytest.mark.parametrize(
    ("name", "shape", "hidden", "options"),
    [
        ("lenet-caffe", (1, 16, 16), [3, 4, 6], {}),
        ("lenet", (1, 16, 16), [2, 3, 5, 4], {}),
        ("vgg9", (3, 8, 8), [2, 2, 3, 3, 3, 3, 4, 4], {"dropout": False}),
        ("lstm", (5,), [3, 6], {}),
    ],
)
def test_fedma_runs_on_every_resizable_model(
    name: str, shape: tuple[int, ...], hidden: list[int], options: dict
) -> None:  # type: ignore[type-arg]
    g = torch.Generator().manual_seed(6)
    make = width_factory(name, shape, 4, **options)

    def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = (
            torch.randint(0, 4, (n, *shape), generator=g)
            if name == "lstm"
            else torch.randn(n, *shape, generator=g)
        )
        return x, torch.randint(0, 4, (n,), generator=g)

    clients = [data(12), data(9), data(7)]
    widths_ = [hidden, [h + 1 for h in hidden], hidden]
    result = fedma(clients, make, widths_, 4, SGDTrainer(epochs=1, batch_size=8), rounds=2)
    chain = layer_chain(make(hidden))
    assert len(result.matchings) == len(chain) - 1 == len(result.widths)
    for n, (m, w) in enumerate(zip(result.matchings, result.widths, strict=True)):
        # each client's own size is kept by its matching; the global size is within the bounds
        assert m.size == w and [a.size for a in m.assignments] == [ws[n] for ws in widths_]
        assert max(ws[n] for ws in widths_) <= w <= sum(ws[n] for ws in widths_)
    model = make(result.widths)
    model.load_state_dict(result.global_state)
    assert model(data(2)[0]).shape == (2, 4)
    assert result.history[-1].communications == 2 * len(chain)
