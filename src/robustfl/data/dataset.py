"""The in-memory ``Dataset`` every loader returns, and the ``DATASETS`` registry of loaders."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from robustfl.registry import Registry

DATASETS: Registry[Dataset] = Registry("dataset")
"""Name -> loader. Every loader takes ``data_dir`` (ignored where no files are needed) plus its own options."""


@dataclass(frozen=True)
class Dataset:
    """A labelled train/test split held in memory.

    ``x_*`` are float32 ``[N, C, H, W]`` images, normalised with the per-channel mean and standard
    deviation of the *train* split (the same statistics are applied to the test split), or int64
    ``[N, T]`` token sequences (text data sets); ``y_*`` are int64 labels in ``[0, num_classes)``.
    ``groups_train`` (int64 ``[N]``, optional) names the natural owner of each train sample (a
    writer or a speaking role in the LEAF data sets), for the ``natural`` partition.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    groups_train: Tensor | None = None

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            image = x.dim() == 4 and x.is_floating_point()
            tokens = x.dim() == 2 and x.dtype == torch.int64
            if not (image or tokens):
                raise ValueError(
                    f"{self.name}: x_{split} must be float [N, C, H, W] images or int64 [N, T] tokens, "
                    f"got {x.dtype} {tuple(x.shape)}"
                )
            if y.dim() != 1 or y.dtype != torch.int64 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"{self.name}: y_{split} must be int64 [{x.shape[0]}] (one label per sample), got {y.dtype} {tuple(y.shape)}"
                )
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(
                    f"{self.name}: y_{split} has labels outside [0, {self.num_classes}): min {int(y.min())}, max {int(y.max())}"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"{self.name}: train images {tuple(self.x_train.shape[1:])} and test images "
                f"{tuple(self.x_test.shape[1:])} differ in shape"
            )
        g = self.groups_train
        if g is not None and (g.dim() != 1 or g.dtype != torch.int64 or g.shape[0] != self.x_train.shape[0]):
            raise ValueError(
                f"{self.name}: groups_train must be int64 [{self.x_train.shape[0]}] (one owner per train sample), "
                f"got {g.dtype} {tuple(g.shape)}"
            )

    def __repr__(self) -> str:
        """Shapes and sizes, never the tensors (a data set's repr must fit on one line)."""
        groups = "" if self.groups_train is None else f", groups={int(self.groups_train.unique().numel())}"
        return (
            f"Dataset({self.name!r}, train={tuple(self.x_train.shape)} {self.x_train.dtype}, "
            f"test={tuple(self.x_test.shape)}, num_classes={self.num_classes}{groups})"
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one image, or ``(T,)`` for token sequences."""
        return tuple(self.x_train.shape[1:])

    def clone(self) -> Dataset:
        """A deep copy, so a caller may change tensors in place (e.g. poison labels) without side effects."""
        return Dataset(
            self.name,
            self.x_train.clone(),
            self.y_train.clone(),
            self.x_test.clone(),
            self.y_test.clone(),
            self.num_classes,
            None if self.groups_train is None else self.groups_train.clone(),
        )


def from_arrays(
    name: str,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    num_classes: int | None = None,
    groups_train: Tensor | None = None,
) -> Dataset:
    """Build a normalised ``Dataset`` from raw images (``[N, H, W]`` or ``[N, C, H, W]``, any dtype).

    Integer images are scaled by ``1/255``; then every channel ``c`` becomes
    ``(x - mean_c) / std_c`` with ``mean_c, std_c`` over all train pixels of channel ``c``.
    ``num_classes`` defaults to ``max(label) + 1`` over both splits.
    """
    xs = []
    for split, x in (("train", x_train), ("test", x_test)):
        if x.dim() == 0 or x.shape[0] == 0:
            raise ValueError(f"{name}: the {split} split is empty; it needs at least one sample")
        if x.is_complex():
            raise ValueError(f"{name}: x_{split} is complex ({x.dtype}); images must hold real numbers")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: x_{split} holds NaN or infinite values; clean the data first")
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4:
            raise ValueError(
                f"{name}: x_{split} must have shape [N, H, W] or [N, C, H, W], got {tuple(x.shape)}"
            )
        # one float32 copy per split, normalised in place below (no further full-size temporaries)
        xs.append(
            x.to(torch.float32).div_(255.0) if not x.is_floating_point() else x.to(torch.float32, copy=True)
        )
    xtr, xte = xs
    mean = xtr.mean(dim=(0, 2, 3), keepdim=True)
    std = xtr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
    ytr, yte = y_train.to(torch.int64).reshape(-1), y_test.to(torch.int64).reshape(-1)
    if num_classes is None:
        num_classes = int(torch.cat([ytr, yte]).max()) + 1
    xtr.sub_(mean).div_(std)
    xte.sub_(mean).div_(std)
    return Dataset(name, xtr, ytr, xte, yte, num_classes, groups_train)
