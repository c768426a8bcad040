"""Image augmentation inside the vectorised data path: random crop with padding and horizontal flip.

The standard CIFAR recipe (He et al., CVPR 2016, §4.2: pad 4, random 32x32 crop, random horizontal
flip), applied to the minibatches of a chunk of clients at once by one gather (``engine/inputs.py``).
The crop offsets and flips of client ``i`` in round ``t`` come from ``streams.client("augment", i, t)``,
so they depend on nothing else. Padding is with zeros (on the normalised image).
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.checks import check_int
from robustfl.streams import Streams


class Augment:
    """``crop_padding`` pixels of zero padding then a random crop back to size; ``flip`` mirrors half
    of the images left-right. Inputs ``[m, steps, B, C, H, W]``."""

    def __init__(self, crop_padding: int = 0, flip: bool = False) -> None:
        self.crop_padding = check_int("crop_padding", crop_padding)
        if not isinstance(flip, bool):
            raise ValueError(f"flip must be true or false, got {flip!r}")
        self.flip = flip

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip

    def __call__(self, xs: Tensor, ids: Tensor, streams: Streams, round: int) -> Tensor:
        if not self.active:
            return xs
        if xs.dim() != 6:
            raise ValueError(
                f"augmentation needs image inputs [C, H, W]; got samples of shape {tuple(xs.shape[3:])}"
            )
        m, steps, b, c, h, w = xs.shape
        p = self.crop_padding
        per_client = steps * b
        oy, ox, flips = [], [], []
        for i in ids.tolist():
            gen = streams.client("augment", i, round)
            oy.append(torch.randint(0, 2 * p + 1, (per_client,), generator=gen))
            ox.append(torch.randint(0, 2 * p + 1, (per_client,), generator=gen))
            flips.append(torch.rand(per_client, generator=gen) < 0.5)
        off_y, off_x = torch.cat(oy).to(xs.device), torch.cat(ox).to(xs.device)
        flip = torch.cat(flips).to(xs.device) & self.flip
        flat = xs.reshape(m * per_client, c, h, w)
        padded = torch.nn.functional.pad(flat, (p, p, p, p)) if p else flat
        rows = off_y[:, None] + torch.arange(h, device=xs.device)
        cols = torch.arange(w, device=xs.device).expand(len(flat), w)
        cols = torch.where(flip[:, None], cols.flip(1), cols) + off_x[:, None]
        n_idx = torch.arange(len(flat), device=xs.device)[:, None, None, None]
        c_idx = torch.arange(c, device=xs.device)[None, :, None, None]
        out = padded[n_idx, c_idx, rows[:, None, :, None], cols[:, None, None, :]]
        return out.reshape(xs.shape)

    def __repr__(self) -> str:
        return f"Augment(crop_padding={self.crop_padding}, flip={self.flip})"
