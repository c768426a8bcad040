"""The white-box model-poisoning steps of seed 004 ch. 8 (attacks (b) and (c) of Sec. 8.1), over flat
parameter vectors.

PGD: the attacker trains on its poisoned data ``D'`` and periodically projects its model onto the
l2 ball of radius ``delta`` around the global model ``w`` it received, so ``||w_i - w|| <= delta`` and
norm-based defences do not notice it. Model replacement (Bagdasaryan et al., 2018): it sends
``w + (n_S / n_i) (w_i - w)``, which, when honest clients barely move, makes the weighted FedAvg
aggregate ``sum_i (n_i / n_S) w_i`` land on ``w_i``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators.base import check_positive


def _check_pair(w: Tensor, center: Tensor) -> None:
    if not isinstance(w, Tensor) or not isinstance(center, Tensor) or w.shape != center.shape or w.dim() != 1:
        raise ValueError("expected two flat parameter vectors of the same length (robustfl.utils.flatten)")


def project_l2_ball(w: Tensor, center: Tensor, radius: float) -> Tensor:
    """``center + (w - center) * min(1, radius / ||w - center||)``: the closest point to ``w`` within
    distance ``radius`` of ``center`` (the PGD projection step)."""
    _check_pair(w, center)
    radius = check_positive("radius", radius, allow_zero=True)
    diff = w - center
    norm = float(torch.linalg.vector_norm(diff))
    if norm <= radius:
        return w.clone()
    return center + diff * (radius / norm)


def pgd_radius(delta: float, round: int, decay: float = 1.0) -> float:
    """The attack budget at FL round ``round``: ``delta * decay^round`` (the chapter decays it with
    ``decay = 0.998`` to hide better, e.g. ``delta = 0.5 * 0.998^t`` against Krum)."""
    delta = check_positive("delta", delta, allow_zero=True)
    decay = check_positive("decay", decay)
    if round < 0:
        raise ValueError(f"round must be >= 0, got {round}")
    return delta * decay**round


def model_replacement(w_attacker: Tensor, w_global: Tensor, n_selected: float, n_attacker: float) -> Tensor:
    """``w + (n_S / n_i) (w_i - w)``: the attacker's model difference scaled by the total number of
    samples ``n_S`` in the round over its own ``n_i`` (seed 004 ch. 8, attack (c))."""
    _check_pair(w_attacker, w_global)
    n_s = check_positive("n_selected", n_selected)
    n_i = check_positive("n_attacker", n_attacker)
    if n_i > n_s:
        raise ValueError(
            f"n_attacker={n_attacker} cannot exceed n_selected={n_selected} (it is part of the round)"
        )
    return w_global + (n_s / n_i) * (w_attacker - w_global)
