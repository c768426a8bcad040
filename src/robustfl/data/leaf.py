"""Loaders for the LEAF benchmark's JSON files (Caldas et al., 2018): FEMNIST and Shakespeare.

LEAF writes each split as one or more JSON files ``{"users": [...], "num_samples": [...],
"user_data": {user: {"x": [...], "y": [...]}}}`` under ``data_dir/train`` and ``data_dir/test``.
Every train sample keeps its user as ``Dataset.groups_train``, so the ``natural`` partition can give
each client one writer (FEMNIST) or one speaking role (Shakespeare), as in seed 004 ch. 5 and 8.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustfl.data.dataset import DATASETS, Dataset, from_arrays
from robustfl.data.files import DataFileCorrupt, DataFileMissing, require_dir

SHAKESPEARE_LETTERS = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
"""LEAF's 80-character vocabulary for Shakespeare (Table 5.5's 80 tokens); token id = position here."""


def _read_split(dataset: str, folder: Path) -> tuple[list[str], list[list[Any]], list[list[Any]]]:
    """Users, and per user its ``x`` and ``y`` lists, from all ``*.json`` files in ``folder``."""
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise DataFileMissing(
            f"{dataset}: no LEAF .json files in {folder}; expected data_dir/train/*.json and data_dir/test/*.json "
            "as written by LEAF's preprocessing (see docs/data.md)"
        )
    users: list[str] = []
    xs: list[list[Any]] = []
    ys: list[list[Any]] = []
    for file in files:
        try:
            blob = json.loads(file.read_text())
            for user in blob["users"]:
                users.append(str(user))
                xs.append(blob["user_data"][user]["x"])
                ys.append(blob["user_data"][user]["y"])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataFileCorrupt(
                f"{dataset}: cannot parse {file}: {exc}; the file is corrupt or truncated"
            ) from None
        except (KeyError, TypeError) as exc:
            raise DataFileCorrupt(
                f"{dataset}: {file} is not LEAF JSON (missing {exc}); it needs users and user_data[user].x/.y"
            ) from None
    return users, xs, ys


def _groups(users: list[str], xs: list[list[Any]], order: dict[str, int]) -> torch.Tensor:
    return torch.cat(
        [torch.full((len(x),), order[u], dtype=torch.int64) for u, x in zip(users, xs, strict=True)]
    )


@DATASETS.register("femnist")
def load_femnist(data_dir: str | Path | None = None) -> Dataset:
    """FEMNIST: 62 classes (digits, upper- and lower-case letters) of 28×28 handwriting, grouped by writer.

    ``x`` holds 784 floats per image (as LEAF stores them), ``y`` the class in ``[0, 62)``.
    """
    root = require_dir("femnist", data_dir)
    splits = []
    users = []
    for split in ("train", "test"):
        u, xs, ys = _read_split("femnist", root / split)
        try:
            x = torch.from_numpy(np.asarray([img for user in xs for img in user], dtype=np.float32))
            y = torch.from_numpy(np.asarray([label for user in ys for label in user], dtype=np.int64))
        except (ValueError, TypeError) as exc:
            raise DataFileCorrupt(
                f"femnist: {root / split}: images must be lists of 784 numbers ({exc})"
            ) from None
        if x.dim() != 2 or x.shape[1] != 784 or x.shape[0] != y.shape[0]:
            raise DataFileCorrupt(
                f"femnist: {root / split}: expected 784 pixels and one label per image, got x {tuple(x.shape)}, y {tuple(y.shape)}"
            )
        splits.append((x.view(-1, 28, 28), y))
        users.append((u, xs))
    order = {u: i for i, u in enumerate(users[0][0])}
    return from_arrays(
        "femnist", *splits[0], *splits[1], num_classes=62, groups_train=_groups(*users[0], order)
    )


def _encode(texts: list[str]) -> np.ndarray:
    """Token ids of the concatenated ``texts`` (one id per character).

    A character outside LEAF's vocabulary maps to the space, so stray punctuation cannot stop a run.
    """
    table = np.full(0x110000, SHAKESPEARE_LETTERS.index(" "), dtype=np.uint8)
    for i, c in enumerate(SHAKESPEARE_LETTERS):
        table[ord(c)] = i
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    return table[codes].astype(np.int64)


@DATASETS.register("shakespeare")
def load_shakespeare(data_dir: str | Path | None = None) -> Dataset:
    """Shakespeare next-character prediction, grouped by speaking role (seed 004 ch. 5: FedMA's LSTM task).

    Each sample is a string of ``T`` characters (80 in LEAF) and the character that follows; both are
    encoded with ``SHAKESPEARE_LETTERS`` (80 tokens; characters outside it become a space). ``x`` is
    int64 ``[N, T]``, ``y`` int64 ``[N]``; ``num_classes`` = 80.
    """
    root = require_dir("shakespeare", data_dir)
    splits = []
    users = []
    for split in ("train", "test"):
        u, xs, ys = _read_split("shakespeare", root / split)
        seqs = [text for user in xs for text in user]
        nexts = [char for user in ys for char in user]
        lengths = {len(t) for t in seqs}
        bad_x = any(not isinstance(t, str) for t in seqs)
        bad_y = any(not isinstance(c, str) or len(c) != 1 for c in nexts)
        if not seqs or bad_x or bad_y or len(lengths) != 1:
            raise DataFileCorrupt(
                f"shakespeare: {root / split}: every x must be a string of one common length and every y one character"
            )
        tokens = torch.from_numpy(_encode(seqs)).view(len(seqs), lengths.pop())
        splits.append((tokens, torch.from_numpy(_encode(nexts))))
        users.append((u, xs))
    if splits[0][0].shape[1] != splits[1][0].shape[1]:
        raise DataFileCorrupt("shakespeare: train and test sequences differ in length")
    order = {u: i for i, u in enumerate(users[0][0])}
    n = len(SHAKESPEARE_LETTERS)
    return Dataset(
        "shakespeare", *splits[0], *splits[1], num_classes=n, groups_train=_groups(*users[0], order)
    )
