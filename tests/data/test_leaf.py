import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from robustfl.cli import app
from robustfl.data import SHAKESPEARE_LETTERS, DataFileCorrupt, DataFileMissing, load_dataset, partition
from robustfl.models import build_model


def write_leaf(root: Path, split: str, user_data: dict[str, dict[str, list]], files: int = 1) -> None:
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    users = sorted(user_data)
    for k in range(files):
        mine = users[k::files]
        blob = {
            "users": mine,
            "num_samples": [len(user_data[u]["y"]) for u in mine],
            "user_data": {u: user_data[u] for u in mine},
        }
        (folder / f"part_{k}.json").write_text(json.dumps(blob))


def shakespeare_dir(root: Path) -> Path:
    text = "To be, or not to be: that is the question. Whether 'tis nobler in the mind to suffer"

    def samples(offset: int, n: int) -> dict[str, list]:
        return {
            "x": [text[offset + i : offset + i + 10] for i in range(n)],
            "y": [text[offset + i + 10] for i in range(n)],
        }

    write_leaf(
        root, "train", {"HAMLET": samples(0, 5), "OPHELIA": samples(20, 3), "GHOST": samples(40, 1)}, files=2
    )
    write_leaf(root, "test", {"HAMLET": samples(60, 2)})
    return root


def test_shakespeare_tokens_groups_and_lstm(tmp_path: Path) -> None:
    ds = load_dataset("shakespeare", shakespeare_dir(tmp_path))
    assert ds.x_train.shape == (9, 10) and ds.x_train.dtype == torch.int64
    assert ds.input_shape == (10,) and ds.num_classes == 80 == len(SHAKESPEARE_LETTERS)
    decoded = ["".join(SHAKESPEARE_LETTERS[i] for i in row.tolist()) for row in ds.x_train]
    # files are read in name order: part_0.json holds GHOST and OPHELIA, part_1.json HAMLET
    assert decoded[0] == "n. Whether"
    assert decoded[4] == "To be, or "
    assert SHAKESPEARE_LETTERS[int(ds.y_train[4])] == "n"
    # groups follow the users of the train files: 3 users, sizes 1 (GHOST), 5 (HAMLET), 3 (OPHELIA)
    assert sorted(torch.bincount(ds.groups_train).tolist()) == [1, 3, 5]
    model = build_model("lstm", ds.input_shape, ds.num_classes)
    assert model(ds.x_train).shape == (9, 80)


def test_characters_outside_the_vocabulary_become_spaces(tmp_path: Path) -> None:
    write_leaf(tmp_path, "train", {"u": {"x": ["café"], "y": ["é"]}})
    write_leaf(tmp_path, "test", {"u": {"x": ["abcd"], "y": ["e"]}})
    ds = load_dataset("shakespeare", tmp_path)
    assert "".join(SHAKESPEARE_LETTERS[i] for i in ds.x_train[0].tolist()) == "caf "
    assert SHAKESPEARE_LETTERS[int(ds.y_train[0])] == " "


def test_natural_partition_gives_each_client_one_group(tmp_path: Path) -> None:
    ds = load_dataset("shakespeare", shakespeare_dir(tmp_path))
    gen = torch.Generator().manual_seed(0)
    parts = partition(ds.y_train, 2, "natural", generator=gen, groups=ds.groups_train, min_size=2)
    assert sorted(p.numel() for p in parts) == [3, 5]
    for p in parts:
        assert ds.groups_train[p].unique().numel() == 1
    with pytest.raises(ValueError, match="only 2 groups have at least min_size=2"):
        partition(ds.y_train, 3, "natural", generator=gen, groups=ds.groups_train, min_size=2)
    with pytest.raises(ValueError, match="needs groups"):
        partition(ds.y_train, 2, "natural", generator=gen)
    with pytest.raises(ValueError, match="groups=.*applies to scheme natural"):
        partition(ds.y_train, 2, "iid", generator=gen, groups=ds.groups_train)


def test_femnist_images_and_writers(tmp_path: Path) -> None:
    def writer(label: int, n: int) -> dict[str, list]:
        return {"x": [[0.1 * label + 0.001 * i] * 784 for i in range(n)], "y": [label] * n}

    write_leaf(tmp_path, "train", {"f0001": writer(3, 4), "f0002": writer(61, 2)})
    write_leaf(tmp_path, "test", {"f0001": writer(5, 1)})
    ds = load_dataset("femnist", tmp_path)
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.num_classes == 62
    assert ds.y_train.tolist() == [3, 3, 3, 3, 61, 61]
    assert ds.groups_train.tolist() == [0, 0, 0, 0, 1, 1]
    result = CliRunner().invoke(
        app,
        [
            "partition",
            "--dataset",
            "femnist",
            "--data-dir",
            str(tmp_path),
            "--clients",
            "2",
            "--scheme",
            "natural",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "2 clients, 6 of 6 samples assigned" in result.output


def test_leaf_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFileMissing, match=r"no LEAF .json files in .*train"):
        load_dataset("shakespeare", tmp_path)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.json").write_text('{"users": ["u"], "user_data": {"u": {"x": ["abc"]')
    with pytest.raises(DataFileCorrupt, match="a.json.*corrupt or truncated"):
        load_dataset("shakespeare", tmp_path)
    (tmp_path / "train" / "a.json").write_text('{"users": ["u"], "user_data": {}}')
    with pytest.raises(DataFileCorrupt, match="is not LEAF JSON"):
        load_dataset("femnist", tmp_path)
    write_leaf(tmp_path, "train", {"u": {"x": ["abc", "abcd"], "y": ["d", "e"]}})
    (tmp_path / "train" / "a.json").unlink()
    write_leaf(tmp_path, "test", {"u": {"x": ["abc"], "y": ["d"]}})
    with pytest.raises(DataFileCorrupt, match="one common length"):
        load_dataset("shakespeare", tmp_path)
    write_leaf(tmp_path, "train", {"u": {"x": [[0.5] * 10], "y": [1]}})
    with pytest.raises(DataFileCorrupt, match="784 pixels"):
        load_dataset("femnist", tmp_path)
