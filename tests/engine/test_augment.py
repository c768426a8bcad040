"""Augmentation in the vectorised data path: per-client draws, crops stay inside the padded image."""

import torch

from robustfl.engine.augment import Augment
from robustfl.streams import Streams


def images(m: int) -> torch.Tensor:
    return torch.arange(m * 2 * 3 * 1 * 4 * 4, dtype=torch.float32).reshape(m, 2, 3, 1, 4, 4)


def test_no_augmentation_is_the_identity() -> None:
    x = images(2)
    assert Augment()(x, torch.tensor([0, 1]), Streams(0), 0) is x


def test_flip_only_mirrors_rows_and_crop_pads_with_zeros() -> None:
    x = images(1)
    out = Augment(flip=True)(x, torch.tensor([3]), Streams(0), 0)
    for s in range(2):
        for b in range(3):
            img, got = x[0, s, b, 0], out[0, s, b, 0]
            assert torch.equal(got, img) or torch.equal(got, img.flip(1))
    cropped = Augment(crop_padding=2)(x, torch.tensor([3]), Streams(0), 0)
    for s in range(2):
        for b in range(3):
            nonzero = cropped[0, s, b, 0][cropped[0, s, b, 0] != 0]
            assert set(nonzero.tolist()) <= set(x[0, s, b, 0].flatten().tolist())


def test_a_clients_augmentation_does_not_depend_on_other_clients() -> None:
    aug = Augment(crop_padding=1, flip=True)
    x = images(3)
    together = aug(x, torch.tensor([0, 5, 7]), Streams(2), 4)
    alone = aug(x[1:2], torch.tensor([5]), Streams(2), 4)
    assert torch.equal(together[1], alone[0])
