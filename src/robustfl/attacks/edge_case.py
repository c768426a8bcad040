"""Edge-case backdoor data (seed 004 ch. 8, 'Attack of the Tails').

The chapter's Task 2 relabels handwritten 7s from ARDIS (Swedish church records) as 1 to backdoor an
(E)MNIST classifier: 7s that are valid digits but live in the tail of the training distribution
(Definition 8.1: ``P_X(x) <= p`` for small ``p``; Fig. 8.1 checks it with a density model). ARDIS cannot
be downloaded here, so we build the tail from the data itself: fit a density model to the source class
(probabilistic PCA: a Gaussian with the top ``components`` principal variances plus one isotropic
residual variance, Tipping & Bishop 1999) and take its ``tail_fraction`` lowest-density samples. They
are relabelled ``target``, removed from the clean pool, and split at random into an edge-case train set
(for the attacker's poisoned mix) and an edge-case test set (for backdoor accuracy).
:func:`poisoned_mix` builds the attacker's ``D'`` with the chapter's Task 2 proportions: 66 edge-case
samples mixed with 100 clean samples.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from robustfl.attacks.data import DATA_ATTACKS, DataAttack, check_fraction
from robustfl.checks import check_int
from robustfl.utils import make_generator


def ppca_log_density(x: Tensor, components: int = 20) -> Tensor:
    """Log density of each row of ``x: Tensor[N, ...]`` under a probabilistic PCA fitted to ``x``.

    With centred rows ``c``, the top ``k`` eigenpairs ``(lambda_j, u_j)`` of the covariance and the
    mean ``s2`` of the remaining ``D - k`` eigenvalues,
    ``log p = -1/2 [sum_j (u_j.c)^2 / lambda_j + (|c|^2 - sum_j (u_j.c)^2) / s2 + sum_j log lambda_j
    + (D - k) log s2 + D log 2 pi]``.
    """
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    n, d = flat.shape
    k = check_int("components", components, minimum=1)
    if not k < min(n, d):
        raise ValueError(f"components must be < min(samples, features) = {min(n, d)}, got {components}")
    c = flat - flat.mean(dim=0)
    _, s, vt = torch.linalg.svd(c, full_matrices=False)
    eig = s**2 / (n - 1)
    lam = eig[:k].clamp(min=1e-12)
    s2 = float((c.pow(2).sum() / (n - 1) - eig[:k].sum()) / (d - k))
    s2 = max(s2, 1e-12)
    proj = c @ vt[:k].T
    in_span = proj.pow(2)
    residual = c.pow(2).sum(dim=1) - in_span.sum(dim=1)
    quad = (in_span / lam).sum(dim=1) + residual.clamp(min=0) / s2
    return -0.5 * (quad + lam.log().sum() + (d - k) * math.log(s2) + d * math.log(2 * math.pi))


@dataclass(frozen=True)
class EdgeCaseSet:
    """The clean pool (tail removed) and the edge-case train/test sets (labelled ``target``).

    ``train_index``/``test_index`` index the original ``(x, y)`` the set was built from.
    """

    clean_x: Tensor
    clean_y: Tensor
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    train_index: Tensor
    test_index: Tensor
    source: int
    target: int


def build_edge_case_set(
    x: Tensor,
    y: Tensor,
    *,
    generator: torch.Generator,
    source: int = 7,
    target: int = 1,
    tail_fraction: float = 0.2,
    test_fraction: float = 0.34,
    components: int = 20,
) -> EdgeCaseSet:
    """Take the ``tail_fraction`` lowest-density samples of class ``source`` (see
    :func:`ppca_log_density`), relabel them ``target`` and split them into train/test at random.

    Defaults: 7s relabelled 1 as in the chapter's Task 2; on the embedded 500-per-class MNIST they give
    100 tail 7s, 66 for training (the chapter mixes 66 edge-case samples into the attacker's data) and
    34 for testing.
    """
    if not isinstance(x, Tensor) or not isinstance(y, Tensor) or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            "build_edge_case_set takes x: Tensor[N, ...] and labels y: Tensor[N] of equal length"
        )
    check_int("source", source)
    check_int("target", target)
    if source == target:
        raise ValueError(f"source and target must differ, got {source} for both")
    tail_fraction = check_fraction("tail_fraction", tail_fraction)
    test_fraction = check_fraction("test_fraction", test_fraction)
    members = torch.nonzero(y == source).flatten()
    n_tail = round(tail_fraction * members.numel())
    n_test = round(test_fraction * n_tail)
    if n_tail < 2 or n_test < 1 or n_test >= n_tail:
        raise ValueError(
            f"class {source} has {members.numel()} samples: tail_fraction={tail_fraction} and "
            f"test_fraction={test_fraction} leave {n_tail} tail samples, {n_test} for testing; "
            "need at least one for each split"
        )
    density = ppca_log_density(x[members], components)
    tail = members[torch.argsort(density)[:n_tail]]
    tail = tail[torch.randperm(n_tail, generator=generator).to(tail.device)]
    test_index, train_index = tail[:n_test].sort().values, tail[n_test:].sort().values
    keep = torch.ones(y.shape[0], dtype=torch.bool, device=y.device)
    keep[tail] = False
    return EdgeCaseSet(
        clean_x=x[keep],
        clean_y=y[keep],
        train_x=x[train_index],
        train_y=torch.full_like(y[train_index], target),
        test_x=x[test_index],
        test_y=torch.full_like(y[test_index], target),
        train_index=train_index,
        test_index=test_index,
        source=source,
        target=target,
    )


EDGE_CASE_SET_PARAMS = (
    "source",
    "target",
    "tail_fraction",
    "test_fraction",
    "components",
    "honest_edge_fraction",
)
"""The keyword arguments of :func:`build_edge_case_set` a config may set (next to ``EdgeCaseMix``'s)."""


def share_edge_cases(edge: EdgeCaseSet, honest_fraction: float, generator: torch.Generator) -> EdgeCaseSet:
    """Give a random ``honest_fraction`` of the edge-case train set back to the honest side (seed 004
    ch. 8, Fig. 8.3: the adversary holds ``p`` of the edge examples, the honest clients ``1 - p``).

    The returned set's ``clean_x``/``clean_y`` gain those samples with their true label ``source`` (7s
    labelled 7), ``train_*`` keep the rest (the adversary's share, labelled ``target``); ``train_index``
    follows ``train_*``. ``honest_fraction = 1`` leaves the adversary no edge example: then no
    edge-case data attack can be built from the set (run without one: the chapter's ``p = 0`` point)."""
    honest_fraction = float(honest_fraction)
    if not 0.0 <= honest_fraction <= 1.0:
        raise ValueError(f"honest_edge_fraction must be in [0, 1], got {honest_fraction}")
    m = edge.train_x.shape[0]
    order = torch.randperm(m, generator=generator).to(edge.train_x.device)
    n_honest = round(honest_fraction * m)
    honest, adversary = order[:n_honest].sort().values, order[n_honest:].sort().values
    honest_y = torch.full_like(edge.train_y[honest], edge.source)
    return dataclasses.replace(
        edge,
        clean_x=torch.cat([edge.clean_x, edge.train_x[honest]]),
        clean_y=torch.cat([edge.clean_y, honest_y]),
        train_x=edge.train_x[adversary],
        train_y=edge.train_y[adversary],
        train_index=edge.train_index[adversary.to(edge.train_index.device)],
    )


def split_off_edge_cases(
    dataset: Any, seed: int, honest_edge_fraction: float = 0.0, **params: Any
) -> tuple[Any, EdgeCaseSet]:
    """The edge-case set of ``dataset``'s train split (:func:`build_edge_case_set` with ``params``, drawn
    from ``make_generator(seed, "edge-case")``) and a copy of ``dataset`` (a frozen dataclass such as
    :class:`robustfl.data.Dataset`) whose train split is the clean pool, i.e. without the edge cases.
    ``groups_train``, when the dataset has it, is filtered the same way.

    ``honest_edge_fraction > 0`` (:func:`share_edge_cases`) appends that share of the edge-case train
    set, correctly labelled, to the clean pool, which the partition then spreads over the clients."""
    edge = build_edge_case_set(
        dataset.x_train, dataset.y_train, generator=make_generator(seed, "edge-case"), **params
    )
    full = edge.train_index
    if honest_edge_fraction:
        edge = share_edge_cases(edge, honest_edge_fraction, make_generator(seed, "edge-case-share"))
    changes: dict[str, Any] = {"x_train": edge.clean_x, "y_train": edge.clean_y}
    groups = getattr(dataset, "groups_train", None)
    if groups is not None:
        keep = torch.ones(groups.shape[0], dtype=torch.bool, device=groups.device)
        keep[torch.cat([full, edge.test_index]).to(groups.device)] = False
        returned = full[~torch.isin(full, edge.train_index)]  # ascending, as appended to the pool
        changes["groups_train"] = torch.cat([groups[keep], groups[returned.to(groups.device)]])
    return dataclasses.replace(dataset, **changes), edge


def poisoned_mix(
    edge_x: Tensor,
    edge_y: Tensor,
    clean_x: Tensor,
    clean_y: Tensor,
    *,
    generator: torch.Generator,
    n_edge: int = 66,
    n_clean: int = 100,
) -> tuple[Tensor, Tensor]:
    """The attacker's dataset ``D'``: ``n_edge`` edge-case samples and ``n_clean`` clean samples drawn
    without replacement, shuffled together (seed 004 ch. 8, Task 2: 66 ARDIS 7s + 100 EMNIST images;
    the chapter finds mixing essential to pass Krum-type defences)."""
    n_edge = check_int("n_edge", n_edge)
    n_clean = check_int("n_clean", n_clean)
    if n_edge > edge_x.shape[0] or n_clean > clean_x.shape[0]:
        raise ValueError(
            f"poisoned_mix asks for n_edge={n_edge} of {edge_x.shape[0]} edge-case and n_clean={n_clean} "
            f"of {clean_x.shape[0]} clean samples; lower them"
        )
    ei = torch.randperm(edge_x.shape[0], generator=generator)[:n_edge]
    ci = torch.randperm(clean_x.shape[0], generator=generator)[:n_clean]
    xs = torch.cat([edge_x[ei.to(edge_x.device)], clean_x[ci.to(clean_x.device)]])
    ys = torch.cat([edge_y[ei.to(edge_y.device)], clean_y[ci.to(clean_y.device)]])
    order = torch.randperm(xs.shape[0], generator=generator).to(xs.device)
    return xs[order], ys[order]


@DATA_ATTACKS.register("edge-case", "edge-case-mix")
class EdgeCaseMix(DataAttack):
    """The black-box attacker's local data (seed 004 ch. 8, attack (a)): a ``fraction`` of the
    client's samples replaced by edge-case samples (e.g. ``EdgeCaseSet.train_x/train_y``, labelled
    with the target), the rest left clean. The default ``66/166`` is the chapter's Task 2 mix (66 ARDIS
    7s with 100 EMNIST images). Edge-case samples are used in a random order, each once before any is
    repeated. The attacker then trains honestly on this data and sends an honest-looking update.

    In an experiment config (``[data_attack] name = "edge-case"``) the edge-case samples are built from
    the loaded data set by :func:`split_off_edge_cases`; ``params`` then take ``fraction`` and the
    :data:`EDGE_CASE_SET_PARAMS` of :func:`build_edge_case_set`."""

    def __init__(self, edge_x: Tensor, edge_y: Tensor, fraction: float = 66 / 166) -> None:
        super().__init__(fraction)
        if not isinstance(edge_x, Tensor) or not isinstance(edge_y, Tensor) or edge_y.dim() != 1:
            raise ValueError("EdgeCaseMix needs edge_x: Tensor[M, ...] and edge_y: Tensor[M]")
        if edge_x.shape[0] != edge_y.shape[0] or (edge_x.shape[0] == 0 and self.fraction > 0):
            raise ValueError(
                f"edge_x and edge_y must hold the same M >= 1 samples (M = 0 only with fraction = 0), "
                f"got {edge_x.shape[0]}, {edge_y.shape[0]}"
            )
        self._edge_x = edge_x
        self._edge_y = edge_y

    def params(self) -> dict[str, object]:
        return {"fraction": self.fraction, "edge_samples": self._edge_x.shape[0]}

    def _corrupt(self, x: Tensor, y: Tensor, idx: Tensor, generator: torch.Generator) -> None:
        if self._edge_x.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"edge-case samples have shape {tuple(self._edge_x.shape[1:])} but the client's data "
                f"{tuple(x.shape[1:])}: build the edge-case set from the same (preprocessed) data"
            )
        m = self._edge_x.shape[0]
        rounds = -(-idx.numel() // m)
        order = torch.cat([torch.randperm(m, generator=generator) for _ in range(rounds)])[: idx.numel()]
        x[idx] = self._edge_x[order.to(self._edge_x.device)].to(device=x.device, dtype=x.dtype)
        y[idx] = self._edge_y[order.to(self._edge_y.device)].to(device=y.device, dtype=y.dtype)
