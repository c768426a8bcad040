"""FoolsGold (Fung, Yoon & Beschastnikh, "The Limitations of Federated Learning in Sybil Settings",
RAID 2020, Algorithm 1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from robustfl.aggregators._cosine import cosine_distances, weighted_rows
from robustfl.aggregators._distances import finite_rows
from robustfl.aggregators.base import AGGREGATORS, Aggregator, check_positive, require_n


def foolsgold_weights(history: Tensor, kappa: float = 1.0) -> Tensor:
    """Algorithm 1's learning rates ``alpha_i`` (float64 ``[n]``) from the clients' summed updates.

    ``cs_ij = cos(H_i, H_j)`` (``cs_ii = 0``), ``v_i = max_j cs_ij``; pardoning:
    ``cs_ij <- cs_ij v_i / v_j`` when ``v_j > v_i``; ``alpha_i = 1 - max_j cs_ij`` clipped to [0, 1] and
    divided by its maximum, 1 replaced by 0.99, then ``alpha_i = kappa (ln(alpha_i / (1 - alpha_i)) + 0.5)``
    clipped to [0, 1].
    """
    n = history.shape[0]
    cs = 1.0 - cosine_distances(history)
    cs.fill_diagonal_(0.0)
    v = cs.max(dim=1).values
    pardon = v.unsqueeze(0) > v.unsqueeze(1)  # [i, j]: v_j > v_i
    ratio = v.unsqueeze(1) / torch.where(v.unsqueeze(0) == 0, 1.0, v.unsqueeze(0))
    cs = torch.where(pardon, cs * ratio, cs)
    alpha = (1.0 - cs.max(dim=1).values).clamp(0.0, 1.0)
    if n == 0 or float(alpha.max()) == 0:
        return torch.zeros_like(alpha)
    alpha = alpha / alpha.max()
    alpha = torch.where(alpha == 1.0, 0.99, alpha)
    with torch.no_grad():
        logit = kappa * (torch.log(alpha / (1.0 - alpha)) + 0.5)
    return torch.nan_to_num(logit, nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)


@AGGREGATORS.register("foolsgold")
class FoolsGold(Aggregator):
    """Down-weights clients whose *accumulated* updates point the same way (sybils).

    The rule keeps ``H_c = sum_t x_{c,t}`` for every client ``c`` it has seen and returns
    ``sum_i alpha_i x_i / sum_i alpha_i`` with ``alpha`` from :func:`foolsgold_weights` on the histories
    of this call's clients (zero if every ``alpha_i`` is 0). Which client sent row ``i`` comes from
    :meth:`set_clients`, which the engine calls with the round's cohort before every aggregation (so
    client sampling keeps each history with its client); without it row ``i`` is client ``i``, the
    paper's fixed participants. Under sampling the weights compare the clients of this round only
    (our reading: the paper has every client in every round). The paper applies
    ``w += sum_i alpha_i x_i`` with its learning rate folded in; normalising by ``sum_i alpha_i`` keeps
    the output an estimate of the honest mean when sybils get weight 0 (our choice). The paper's
    optional feature-importance weighting of the output layer is not applied (it needs the layer
    layout). ``kappa = 1`` is the paper's confidence parameter.

    Non-finite rows add nothing to the history and get weight 0. The history is explicit state:
    ``state_dict()``, ``load_state_dict()``, ``reset()``. Cosines are computed in float64 from centred
    unit vectors (accurate when histories are nearly parallel).
    """

    breakdown = "any number of sybils whose updates agree; n >= 2"
    tracks_clients = True

    def __init__(self, kappa: float = 1.0) -> None:
        self.kappa = check_positive("kappa", kappa)
        self._history: Tensor | None = None
        self._clients: Tensor | None = None

    def set_clients(self, ids: Tensor) -> None:
        """The client id of each row of the next call (used once, then forgotten)."""
        ids = torch.as_tensor(ids, dtype=torch.long).flatten().cpu()
        if ids.numel() and (int(ids.min()) < 0 or ids.unique().numel() != ids.numel()):
            raise ValueError("FoolsGold client ids must be distinct and non-negative")
        self._clients = ids

    def check_n(self, n: int) -> None:
        require_n("FoolsGold", n, 0, n >= 2, "n >= 2 (it compares clients with one another)")

    def state_dict(self) -> dict[str, Any]:
        return {"history": None if self._history is None else self._history.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        history = state.get("history")
        if history is not None and not (isinstance(history, Tensor) and history.dim() == 2):
            raise ValueError("FoolsGold state 'history' must be None or a Tensor[n, d]")
        self._history = None if history is None else history.clone()

    def reset(self) -> None:
        self._history = None
        self._clients = None

    def _rows_of(self, x: Tensor) -> Tensor:
        """History rows for this call's clients, growing the history to the largest id seen."""
        ids, self._clients = self._clients, None
        if ids is None:
            ids = torch.arange(x.shape[0])
        elif ids.numel() != x.shape[0]:
            raise ValueError(f"FoolsGold was told {ids.numel()} client ids for {x.shape[0]} rows")
        rows = int(ids.max()) + 1
        if self._history is None:
            self._history = x.new_zeros(rows, x.shape[1])
        elif self._history.shape[1] != x.shape[1]:
            raise ValueError(
                f"FoolsGold's history has d={self._history.shape[1]} but the messages have "
                f"d={x.shape[1]}; call reset() first"
            )
        elif self._history.shape[0] < rows:
            grown = self._history.new_zeros(rows, x.shape[1])
            grown[: self._history.shape[0]] = self._history
            self._history = grown
        return ids.to(self._history.device)

    def _aggregate(self, x: Tensor) -> Tensor:
        ok = finite_rows(x)
        all_ok = bool(ok.all())
        clean = (
            x if all_ok else torch.where(ok.unsqueeze(1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        )
        ids = self._rows_of(x)
        assert self._history is not None
        self._history.index_add_(0, ids, clean.to(self._history))
        every = ids.numel() == self._history.shape[0] and bool(
            (ids == torch.arange(ids.numel(), device=ids.device)).all()
        )
        rows = self._history if every else self._history[ids]  # no [n, d] gather when all clients, in order
        alpha = torch.where(ok, foolsgold_weights(rows, self.kappa), 0.0)
        total = float(alpha.sum())
        if total == 0:
            return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        return weighted_rows(alpha / total, clean)
