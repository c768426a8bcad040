"""Helpers shared by the coding tests: partition gradients, honest messages and adversarial rows."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.coding import CodedScheme


def honest_messages(scheme: CodedScheme, parts: Tensor) -> Tensor:
    """Every worker's honest message when partition ``k``'s gradient is ``parts[k]``."""
    return scheme.encode_all(parts[torch.tensor(scheme.assignment())])


def corrupt(msg: Tensor, workers: list[int], gen: torch.Generator, kind: str) -> Tensor:
    """``msg`` with the rows of ``workers`` replaced by arbitrary values of the given ``kind``."""
    out = msg.clone()
    n, m = len(workers), msg.shape[1]
    if n == 0:
        return out
    if kind == "gaussian":
        scale = 10.0 ** (torch.rand(n, 1, generator=gen, dtype=torch.float64) * 9 - 3)
        out[workers] = torch.randn(n, m, generator=gen, dtype=torch.float64).to(msg) * scale.to(msg)
    elif kind == "constant":
        out[workers] = -100.0
    elif kind == "reverse":
        out[workers] = -100.0 * msg[workers]
    elif kind == "nonfinite":
        out[workers] = float("nan")
        out[workers[0], 0] = float("inf")
    else:
        raise AssertionError(kind)
    return out
