import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from robustfl.data import DataFileCorrupt, DataFileMissing, load_dataset


def idx_bytes(a: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(np.uint8).tobytes()


def write(path: Path, data: bytes, gz: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        Path(f"{path}.gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def fake_idx_set(
    folder: Path, prefix: str, test_stem: str, gz: bool, label_max: int = 10
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images": rng.integers(0, 256, (20, 28, 28)),
        "train-labels": np.arange(20) % label_max,
        f"{test_stem}-images": rng.integers(0, 256, (6, 28, 28)),
        f"{test_stem}-labels": np.arange(6) % label_max,
    }
    for name, a in arrays.items():
        kind = "idx3" if a.ndim == 3 else "idx1"
        write(folder / f"{prefix}{name}-{kind}-ubyte", idx_bytes(a), gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_raw_and_gz(tmp_path: Path, gz: bool) -> None:
    arrays = fake_idx_set(tmp_path, "", "t10k", gz)
    ds = load_dataset("mnist", tmp_path)
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (6, 1, 28, 28)
    assert torch.equal(ds.y_train, torch.from_numpy(arrays["train-labels"]).long())
    assert abs(float(ds.x_train.mean())) < 1e-5
    # normalisation is affine and increasing, so the pixel order within an image is kept
    assert torch.equal(
        ds.x_train[0, 0].flatten().argsort(stable=True),
        torch.from_numpy(arrays["train-images"][0].flatten()).argsort(stable=True),
    )


def test_fashion_mnist_in_torchvision_layout(tmp_path: Path) -> None:
    fake_idx_set(tmp_path / "FashionMNIST" / "raw", "", "t10k", gz=True)
    ds = load_dataset("fashion-mnist", tmp_path)
    assert ds.name == "fashion-mnist" and ds.num_classes == 10


def test_emnist_split_names_orientation_and_letter_offset(tmp_path: Path) -> None:
    # letters are labelled 1..26 on disk; a 0 label is invalid
    fake_idx_set(tmp_path / "gzip", "emnist-letters-", "test", gz=True, label_max=26)
    with pytest.raises(DataFileCorrupt, match="labels outside"):
        load_dataset("emnist", tmp_path, split="letters")
    fake_idx_set(tmp_path, "emnist-digits-", "test", gz=False)
    ds = load_dataset("emnist", tmp_path)
    assert ds.name == "emnist-digits" and ds.num_classes == 10
    raw = np.random.default_rng(0).integers(0, 256, (20, 28, 28))
    # stored transposed, returned upright
    assert torch.equal(
        ds.x_train[0, 0].flatten().argsort(stable=True),
        torch.from_numpy(raw[0].T.copy().flatten()).argsort(stable=True),
    )
    with pytest.raises(ValueError, match="emnist split 'nope'.*byclass"):
        load_dataset("emnist", tmp_path, split="nope")


def test_missing_idx_file_names_the_file_and_the_folders(tmp_path: Path) -> None:
    fake_idx_set(tmp_path, "", "t10k", gz=True)
    Path(tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        DataFileMissing,
        match=r"t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte.gz\) not found; looked in: .*MNIST/raw",
    ):
        load_dataset("mnist", tmp_path)
    with pytest.raises(FileNotFoundError):
        load_dataset("mnist", tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"set data.data_dir .* --set data.data_dir=PATH"):
        load_dataset("mnist")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-7], "truncated or corrupt"),
        (lambda b: b"\x01" + b[1:], "bad magic"),
        (lambda b: b[:6], "incomplete IDX header"),
    ],
)
def test_corrupt_idx_files_are_reported(tmp_path: Path, damage, message: str) -> None:
    fake_idx_set(tmp_path, "", "t10k", gz=False)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(damage(f.read_bytes()))
    with pytest.raises(DataFileCorrupt, match=message) as err:
        load_dataset("mnist", tmp_path)
    assert str(f) in str(err.value)


def test_broken_gzip_is_reported(tmp_path: Path) -> None:
    fake_idx_set(tmp_path, "", "t10k", gz=True)
    f = tmp_path / "train-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:15])
    with pytest.raises(DataFileCorrupt, match="corrupt or truncated"):
        load_dataset("mnist", tmp_path)


def cifar_records(n: int, label_bytes: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, (n, label_bytes))
    pixels = rng.integers(0, 256, (n, 3072))
    return np.concatenate([labels, pixels], 1).astype(np.uint8).tobytes(), labels, pixels


def test_cifar10_binary(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    train_labels, first_pixels = [], None
    for i in range(1, 6):
        data, labels, pixels = cifar_records(4, 1, i)
        (folder / f"data_batch_{i}.bin").write_bytes(data)
        train_labels.append(labels[:, 0])
        first_pixels = pixels if first_pixels is None else first_pixels
    (folder / "test_batch.bin").write_bytes(cifar_records(3, 1, 9)[0])
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert torch.equal(ds.y_train, torch.from_numpy(np.concatenate(train_labels)).long())
    mean = ds.x_train.mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-5)
    # channel-major records: the green plane of image 0 is bytes 1024..2047 of its pixels
    assert first_pixels is not None
    green = torch.from_numpy(first_pixels[0, 1024:2048].reshape(32, 32).astype(np.int64))
    assert torch.equal(ds.x_train[0, 1].flatten().argsort(stable=True), green.flatten().argsort(stable=True))


def test_cifar10_truncated_and_missing(tmp_path: Path) -> None:
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}.bin").write_bytes(cifar_records(2, 1, i)[0])
    with pytest.raises(DataFileMissing, match="test_batch.bin"):
        load_dataset("cifar10", tmp_path)
    (tmp_path / "test_batch.bin").write_bytes(cifar_records(2, 1, 0)[0][:-100])
    with pytest.raises(DataFileCorrupt, match="test_batch.bin.*whole number of 3073-byte records"):
        load_dataset("cifar10", tmp_path)


def test_cifar100_fine_and_coarse(tmp_path: Path) -> None:
    data, labels, _ = cifar_records(5, 2, 1)
    (tmp_path / "train.bin").write_bytes(data)
    (tmp_path / "test.bin").write_bytes(cifar_records(2, 2, 2)[0])
    fine = load_dataset("cifar100", tmp_path)
    coarse = load_dataset("cifar100", tmp_path, labels="coarse")
    assert fine.num_classes == 100 and coarse.num_classes == 20
    assert torch.equal(fine.y_train, torch.from_numpy(labels[:, 1]).long())
    assert torch.equal(coarse.y_train, torch.from_numpy(labels[:, 0]).long())


def test_npz_channels_first_and_last(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10, 8, 8, 3)).astype(np.uint8)
    f = tmp_path / "d.npz"
    np.savez(f, x_train=x, y_train=np.arange(10) % 4, x_test=x[:3], y_test=np.arange(3))
    ds = load_dataset("npz", path=f)
    assert ds.input_shape == (3, 8, 8) and ds.num_classes == 4
    assert ds.name == "npz:d"
    np.savez(
        f,
        x_train=np.moveaxis(x, -1, 1),
        y_train=np.arange(10) % 4,
        x_test=np.moveaxis(x[:3], -1, 1),
        y_test=np.arange(3),
    )
    assert torch.allclose(load_dataset("npz", f).x_train, ds.x_train)


def test_npz_errors(tmp_path: Path) -> None:
    f = tmp_path / "d.npz"
    with pytest.raises(DataFileMissing, match="d.npz not found"):
        load_dataset("npz", path=f)
    np.savez(f, x_train=np.zeros((2, 4, 4)), y_train=np.zeros(2, np.int64))
    with pytest.raises(DataFileCorrupt, match="lacks x_test, y_test"):
        load_dataset("npz", path=f)
    np.savez(
        f,
        x_train=np.zeros((2, 4, 4)),
        y_train=np.array([{}, {}], dtype=object),
        x_test=np.zeros((1, 4, 4)),
        y_test=np.zeros(1),
    )
    with pytest.raises(DataFileCorrupt, match="object arrays"):
        load_dataset("npz", path=f)
    f.write_bytes(b"not a zip file at all")
    with pytest.raises(DataFileCorrupt, match="corrupt or not a .npz"):
        load_dataset("npz", path=f)
    with pytest.raises(ValueError, match="needs path"):
        load_dataset("npz")
