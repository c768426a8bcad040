import pytest
import torch

from robustfl.data import DATASETS, Dataset, load_dataset


def test_embedded_mnist_shapes_split_and_balance() -> None:
    ds = load_dataset()
    assert ds.name == "embedded-mnist"
    assert ds.input_shape == (1, 28, 28)
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.num_classes == 10
    assert torch.equal(ds.y_train.bincount(), torch.full((10,), 400))
    assert torch.equal(ds.y_test.bincount(), torch.full((10,), 100))
    # the train split is shuffled, not sorted by label
    assert (ds.y_train[1:] != ds.y_train[:-1]).float().mean() > 0.5


def test_embedded_mnist_is_normalised_with_train_statistics() -> None:
    ds = load_dataset("embedded-mnist")
    assert abs(float(ds.x_train.mean())) < 1e-4
    assert abs(float(ds.x_train.std()) - 1.0) < 1e-3
    # the test split uses the train statistics, so it is close to but not exactly standardised
    assert abs(float(ds.x_test.mean())) < 0.1
    assert float(ds.x_test.mean()) != pytest.approx(0.0, abs=1e-6)


def test_embedded_mnist_train_and_test_are_disjoint() -> None:
    ds = load_dataset()
    train = {row.numpy().tobytes() for row in ds.x_train.flatten(1)}
    assert not any(row.numpy().tobytes() in train for row in ds.x_test.flatten(1))


def test_each_load_is_an_independent_copy() -> None:
    a = load_dataset()
    a.y_train[:] = 0
    b = load_dataset()
    assert torch.equal(b.y_train.bincount(), torch.full((10,), 400))


def test_unknown_dataset_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*embedded-mnist"):
        load_dataset("imagenet")
    assert "embedded-mnist" in DATASETS


def test_dataset_rejects_inconsistent_tensors() -> None:
    x = torch.zeros(4, 1, 2, 2)
    y = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match="y_train must be int64"):
        Dataset("d", x, y[:3], x, y, 2)
    with pytest.raises(ValueError, match="labels outside"):
        Dataset("d", x, y + 2, x, y, 2)
    with pytest.raises(ValueError, match="differ in shape"):
        Dataset("d", x, y, torch.zeros(4, 1, 3, 3), y, 2)


def test_dataset_accepts_token_sequences_and_checks_groups() -> None:
    tokens = torch.randint(0, 5, (6, 4))
    y = torch.zeros(6, dtype=torch.int64)
    ds = Dataset("t", tokens, y, tokens[:2], y[:2], 5, groups_train=torch.arange(6))
    assert ds.input_shape == (4,)
    assert torch.equal(ds.clone().groups_train, torch.arange(6))
    with pytest.raises(ValueError, match="int64 \\[N, T\\] tokens"):
        Dataset("t", tokens.float(), y, tokens[:2].float(), y[:2], 5)
    with pytest.raises(ValueError, match="groups_train must be int64 \\[6\\]"):
        Dataset("t", tokens, y, tokens[:2], y[:2], 5, groups_train=torch.arange(5))
