"""The white-box model-poisoning steps of seed 004 ch. 8 (attacks (b) and (c) of Sec. 8.1), over flat
parameter vectors.

PGD: the attacker trains on its poisoned data ``D'`` and periodically projects its model onto the
l2 ball of radius ``delta`` around the global model ``w`` it received, so ``||w_i - w|| <= delta`` and
norm-based defences do not notice it. Model replacement (Bagdasaryan et al., 2018): it sends
``w + (n_S / n_i) (w_i - w)``, which, when honest clients barely move, makes the weighted FedAvg
aggregate ``sum_i (n_i / n_S) w_i`` land on ``w_i``.

:class:`PGDProjection` and :class:`ModelReplacement` apply these steps as message attacks to the
Byzantine workers' own updates, so in the simulator they combine with a data attack that makes
those workers train on the poisoned mix.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.attacks.base import ATTACKS, Attack, require_own
from robustfl.checks import check_positive


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


def _rows_in_ball(rows: Tensor, radius: float) -> Tensor:
    """Each row projected onto the l2 ball of radius ``radius`` around 0 (non-finite rows: zeros)."""
    ok = torch.isfinite(rows).all(dim=1, keepdim=True)
    rows = torch.where(ok, rows, torch.zeros((), dtype=rows.dtype, device=rows.device))
    norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
    return rows / torch.clamp(norms / radius, min=1.0) if radius > 0 else torch.zeros_like(rows)


@ATTACKS.register("pgd", "pgd-projection")
class PGDProjection(Attack):
    """Attack (b) at the message level: each Byzantine worker sends its own update (trained on the
    poisoned data, see :class:`robustfl.attacks.edge_case.EdgeCaseMix`) projected onto the l2 ball of
    radius ``pgd_radius(radius, round, decay)``. A FedAvg message is ``w - w_i``, so this enforces
    ``||w_i - w|| <= delta``. The chapter projects every few local SGD steps; projecting the final
    update once, as here, satisfies the same constraint without touching the local training loop
    (apply :func:`project_l2_ball` inside a custom client step for the per-step variant)."""

    omniscient = False
    needs_own = True

    def __init__(self, radius: float = 2.0, decay: float = 1.0) -> None:
        self.radius = check_positive("radius", radius)
        self.decay = check_positive("decay", decay)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        return _rows_in_ball(require_own(own), pgd_radius(self.radius, round, self.decay))


@ATTACKS.register("model-replacement", "modelreplacement")
class ModelReplacement(Attack):
    """Attack (c) (and, with ``radius=None``, Bagdasaryan et al.'s plain model replacement): each
    Byzantine worker sends its own update, first projected onto the ball of radius
    ``radius * decay^round`` if ``radius`` is given (PGD), then scaled by ``scale = n_S / n_i``.
    ``scale=None`` uses ``n = h + f``, the factor for equally weighted clients (``n_i = n_S / n``), as
    in the simulator's FedAvg."""

    omniscient = False
    needs_own = True

    def __init__(self, scale: float | None = None, radius: float | None = None, decay: float = 1.0) -> None:
        self.scale = None if scale is None else check_positive("scale", scale)
        self.radius = None if radius is None else check_positive("radius", radius)
        self.decay = check_positive("decay", decay)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        own = require_own(own)
        rows = own if self.radius is None else _rows_in_ball(own, pgd_radius(self.radius, round, self.decay))
        scale = float(honest.shape[0] + f) if self.scale is None else self.scale
        return rows * scale
