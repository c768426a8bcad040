"""Split a data set's sample indices across clients.

``partition(labels, num_clients, scheme, generator=g, ...)`` returns one ``LongTensor`` of sample
indices per client. Every scheme assigns each sample to at most one client, leaves no client empty
(or raises a ``ValueError`` saying which parameter to change), and is reproducible from ``generator``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

PARTITION_SCHEMES: dict[str, Callable[..., list[Tensor]]] = {}


def _scheme(name: str) -> Callable[[Callable[..., list[Tensor]]], Callable[..., list[Tensor]]]:
    def decorate(fn: Callable[..., list[Tensor]]) -> Callable[..., list[Tensor]]:
        PARTITION_SCHEMES[name] = fn
        return fn

    return decorate


def _split_sizes(total: int, weights: Tensor) -> list[int]:
    """Largest-remainder rounding of ``total * weights / sum(weights)`` to integers that sum to ``total``."""
    exact = weights / weights.sum() * total
    sizes = exact.floor().to(torch.int64)
    short = total - int(sizes.sum())
    if short:
        order = torch.argsort(exact - sizes, descending=True, stable=True)
        sizes[order[:short]] += 1
    return sizes.tolist()


@_scheme("iid")
def iid(labels: Tensor, num_clients: int, generator: torch.Generator, size_skew: float = 0.0) -> list[Tensor]:
    """Shuffle all samples and deal them out.

    ``size_skew = 0``: equal sizes (they differ by at most one). ``size_skew = s > 0``: power-law sizes,
    client ``i`` (in a random order) gets a share proportional to ``(rank_i + 1)^(-s)``, the quantity
    skew used in FL benchmarks; label proportions stay IID.
    """
    if size_skew < 0:
        raise ValueError(f"size_skew must be >= 0, got {size_skew}")
    n = labels.numel()
    perm = torch.randperm(n, generator=generator)
    weights = torch.arange(1, num_clients + 1, dtype=torch.float64).pow(-size_skew)
    weights = weights[torch.randperm(num_clients, generator=generator)]
    sizes = _split_sizes(n, weights)
    if min(sizes) == 0:
        raise ValueError(
            f"size_skew={size_skew} leaves a client with no samples ({n} samples, {num_clients} clients); "
            "lower size_skew or num_clients"
        )
    return list(torch.split(perm, sizes))


def _seeded_numpy(generator: torch.Generator) -> np.random.Generator:
    """A numpy generator seeded from ``generator`` (numpy has the Dirichlet sampler torch lacks for generators)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))


def _by_class(labels: Tensor, generator: torch.Generator) -> list[Tensor]:
    """The shuffled indices of each class present in ``labels``, in increasing class order."""
    out = []
    for k in labels.unique(sorted=True).tolist():
        idx = torch.nonzero(labels == k).flatten()
        out.append(idx[torch.randperm(idx.numel(), generator=generator)])
    return out


@_scheme("dirichlet")
def dirichlet(
    labels: Tensor, num_clients: int, generator: torch.Generator, alpha: float = 0.5, min_size: int = 1
) -> list[Tensor]:
    """Label skew: for each class ``k`` draw ``p_k ~ Dir_J(alpha)`` and give client ``j`` a ``p_kj`` share of class ``k``.

    The heterogeneous split of seed 004 ch. 5 (FedMA, §5.4: ``Dir_J(0.5)`` on CIFAR-10). Small ``alpha``
    concentrates each class on few clients; large ``alpha`` tends to IID. Every sample is assigned.
    Draws in which a client gets fewer than ``min_size`` samples are redrawn (up to 100 times), as in
    the FedMA/PFNM experiments; then a ``ValueError`` asks for a larger ``alpha`` or fewer clients.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (the Dirichlet concentration), got {alpha}")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise ValueError(f"min_size must be a positive integer, got {min_size!r}")
    rng = _seeded_numpy(generator)
    classes = _by_class(labels, generator)
    for _ in range(100):
        buckets: list[list[Tensor]] = [[] for _ in range(num_clients)]
        for idx in classes:
            share = rng.dirichlet(np.full(num_clients, float(alpha)))
            cuts = (np.cumsum(share)[:-1] * idx.numel()).round().astype(np.int64)
            for j, chunk in enumerate(np.split(np.arange(idx.numel()), cuts)):
                buckets[j].append(idx[torch.from_numpy(chunk)])
        parts = [torch.cat(b) for b in buckets]
        if min(p.numel() for p in parts) >= min_size:
            return parts
    raise ValueError(
        f"dirichlet partition with alpha={alpha} left a client with fewer than min_size={min_size} samples in "
        f"100 draws ({labels.numel()} samples, {num_clients} clients); raise alpha or lower num_clients/min_size"
    )


@_scheme("shards")
def shards(
    labels: Tensor, num_clients: int, generator: torch.Generator, shards_per_client: int = 2
) -> list[Tensor]:
    """McMahan et al. (2017) pathological non-IID split: sort by label, cut into equal shards, deal shards.

    The samples are sorted by label (ties in random order), cut into ``num_clients * shards_per_client``
    contiguous shards of (nearly) equal size, and each client receives ``shards_per_client`` random
    shards. So a client sees at most ``shards_per_client`` labels (exactly, when shards do not straddle
    label boundaries, e.g. balanced classes whose size is a multiple of the shard size). Every sample is assigned.
    """
    if isinstance(shards_per_client, bool) or not isinstance(shards_per_client, int) or shards_per_client < 1:
        raise ValueError(f"shards_per_client must be a positive integer, got {shards_per_client!r}")
    total = num_clients * shards_per_client
    if total > labels.numel():
        raise ValueError(
            f"shards: num_clients * shards_per_client = {total} shards exceed the {labels.numel()} samples; "
            "lower shards_per_client"
        )
    perm = torch.randperm(labels.numel(), generator=generator)
    order = perm[torch.argsort(labels[perm], stable=True)]
    pieces = torch.tensor_split(order, total)
    deal = torch.randperm(total, generator=generator).view(num_clients, shards_per_client)
    return [torch.cat([pieces[s] for s in row.tolist()]) for row in deal]


@_scheme("labels")
def labels_per_client(
    labels: Tensor, num_clients: int, generator: torch.Generator, labels_per_client: int = 2
) -> list[Tensor]:
    """Quantity-based label skew ("#C = k", Li et al., NIID-Bench 2022): each client holds exactly ``k`` labels.

    Client ``j`` gets class ``j mod K`` plus ``k - 1`` other distinct classes drawn at random; each class
    is then split evenly among the clients holding it. Classes that no client drew stay unassigned
    (so this split need not cover the data set).
    """
    classes = _by_class(labels, generator)
    num_classes = len(classes)
    k = labels_per_client
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_classes:
        raise ValueError(
            f"labels_per_client must be an integer in [1, {num_classes}] (the classes present), got {k!r}"
        )
    holders: list[list[int]] = [[] for _ in range(num_classes)]
    for j in range(num_clients):
        first = j % num_classes
        others = [c for c in torch.randperm(num_classes, generator=generator).tolist() if c != first][: k - 1]
        for c in [first, *others]:
            holders[c].append(j)
    buckets: list[list[Tensor]] = [[] for _ in range(num_clients)]
    for idx, owners in zip(classes, holders, strict=True):
        if owners and idx.numel() < len(owners):
            raise ValueError(
                f"labels: a class with {idx.numel()} samples is shared by {len(owners)} clients; "
                "lower num_clients or labels_per_client"
            )
        for owner, chunk in zip(owners, torch.tensor_split(idx, len(owners)) if owners else (), strict=True):
            buckets[owner].append(chunk)
    return [torch.cat(b) for b in buckets]


@_scheme("crsa")
def crsa(
    labels: Tensor, num_clients: int, generator: torch.Generator, own_fraction: float = 0.5
) -> list[Tensor]:
    """The non-IID split of seed 001 (C-RSA, §5): half of each label to "its" worker, the rest spread evenly.

    For the ``k``-th class (in increasing label order), ``floor(own_fraction * n_k)`` of its samples,
    chosen at random, go to client ``k mod num_clients``; all remaining samples of all classes are
    pooled, shuffled and dealt evenly to all clients (sizes differ by at most one). The paper uses 10
    classes and 10 workers, so each worker owns one label; with more classes than clients a client owns
    several labels, with fewer some clients own none. Every sample is assigned.
    """
    if not 0 <= own_fraction <= 1:
        raise ValueError(
            f"own_fraction must be in [0, 1] (the share of each label kept by its worker), got {own_fraction}"
        )
    own: list[list[Tensor]] = [[] for _ in range(num_clients)]
    rest = []
    for k, idx in enumerate(_by_class(labels, generator)):
        m = int(own_fraction * idx.numel())
        own[k % num_clients].append(idx[:m])
        rest.append(idx[m:])
    pool = torch.cat(rest)
    pool = pool[torch.randperm(pool.numel(), generator=generator)]
    parts = [torch.cat([*o, r]) for o, r in zip(own, torch.tensor_split(pool, num_clients), strict=True)]
    if min(p.numel() for p in parts) == 0:
        raise ValueError(
            f"crsa: own_fraction={own_fraction} leaves a client empty; lower own_fraction or num_clients"
        )
    return parts


@_scheme("natural")
def natural(
    labels: Tensor,
    num_clients: int,
    generator: torch.Generator,
    groups: Tensor | None = None,
    min_size: int = 1,
) -> list[Tensor]:
    """The data set's own owners: each client is one group (a LEAF writer or speaking role).

    ``groups`` (int64 ``[N]``, e.g. ``Dataset.groups_train``) names each sample's owner. Among the
    groups with at least ``min_size`` samples, ``num_clients`` are drawn at random and each client
    gets all samples of its group (seed 004 §5.4: Shakespeare roles with at least 10k samples, 66 of
    them sampled). Samples of groups not drawn stay unassigned.
    """
    if groups is None:
        raise ValueError(
            "partition scheme 'natural' needs groups=<owner of each sample> (Dataset.groups_train, set by "
            "the LEAF loaders femnist and shakespeare)"
        )
    if groups.shape != labels.shape or groups.is_floating_point():
        raise ValueError(
            f"groups must be an integer tensor shaped like labels {tuple(labels.shape)}, got {tuple(groups.shape)}"
        )
    ids, counts = groups.unique(return_counts=True)
    eligible = ids[counts >= min_size]
    if eligible.numel() < num_clients:
        raise ValueError(
            f"natural partition: only {eligible.numel()} groups have at least min_size={min_size} samples, "
            f"fewer than num_clients={num_clients}; lower num_clients or min_size"
        )
    members = torch.split(torch.argsort(groups, stable=True), counts.tolist())
    position = {int(g): i for i, g in enumerate(ids.tolist())}
    chosen = eligible[torch.randperm(eligible.numel(), generator=generator)[:num_clients]]
    return [members[position[g]] for g in chosen.tolist()]


@_scheme("grayscale-skew")
def grayscale_skew_split(
    labels: Tensor,
    num_clients: int,
    generator: torch.Generator,
    gray: Tensor | None = None,
    split: str = "domain",
) -> list[Tensor]:
    """The two clients of the data-bias experiment of Wang et al. (FedMA, ICLR 2020, §5.2).

    ``gray`` (bool ``[N]``, from ``grayscale_skew``) marks the samples turned grayscale. ``split =
    "domain"`` (default): client 0 holds the grayscale samples, client 1 the colour ones (each domain
    one client, the chapter's motivation); ``"classes"``: client 0 holds the classes whose samples are
    mostly grayscale, client 1 the others (the other reading of "split the images from colour dominated
    classes and grayscale dominated classes into 2 clients"). ``num_clients`` must be 2.
    """
    if gray is None or gray.dtype != torch.bool or gray.shape != labels.shape:
        raise ValueError(
            "partition scheme 'grayscale-skew' needs gray=<bool mask shaped like labels> (from grayscale_skew)"
        )
    if num_clients != 2:
        raise ValueError(
            f"grayscale-skew splits into 2 clients (grayscale / colour), got num_clients={num_clients}"
        )
    if split == "domain":
        first = gray
    elif split == "classes":
        classes = labels.unique()
        share = torch.stack([gray[labels == k].double().mean() for k in classes])
        first = torch.isin(labels, classes[share > 0.5])
    else:
        raise ValueError(f"split must be 'domain' or 'classes', got {split!r}")
    parts = [torch.nonzero(first).flatten(), torch.nonzero(~first).flatten()]
    if min(p.numel() for p in parts) == 0:
        raise ValueError("grayscale-skew: one client would be empty; check the gray mask")
    return parts


@_scheme("data-efficiency")
def data_efficiency(
    labels: Tensor, num_clients: int, generator: torch.Generator, pieces: int = 5, piece_alpha: float = 0.5
) -> list[Tensor]:
    """The 5×5 partition of FedMA's data-efficiency study (Wang et al., ICLR 2020, §5.2).

    The data is split uniformly at random into ``pieces`` homogeneous pieces of equal size, and each
    piece into ``num_clients / pieces`` heterogeneous sub-pieces by the Dirichlet(``piece_alpha``) label
    split (the chapter's heterogeneous rule; it does not say which one this study used). Clients come
    piece by piece: clients ``p·k .. p·k + k - 1`` are piece ``p``'s, so a run that adds one piece per
    step takes the first ``k``, ``2k``, ... clients. CIFAR-10: 25 clients of about 2,000 samples.
    """
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1 or num_clients % pieces:
        raise ValueError(
            f"data-efficiency: pieces must be a positive integer dividing num_clients={num_clients}, got {pieces!r}"
        )
    out: list[Tensor] = []
    for piece in iid(labels, pieces, generator):
        out += [
            piece[sub]
            for sub in dirichlet(labels[piece], num_clients // pieces, generator, alpha=piece_alpha)
        ]
    return out


def grayscale_skew(
    labels: Tensor,
    generator: torch.Generator,
    biased_classes: int | Tensor = 5,
    majority: float = 0.95,
    minority: float = 0.05,
) -> Tensor:
    """Which samples to turn grayscale for FedMA's data-bias experiment (§5.2): a bool mask ``[N]``.

    ``biased_classes`` classes (drawn at random when an int; or the given class ids) have a
    ``majority`` share of their samples made grayscale, every other class a ``minority`` share (the
    chapter: 5 of CIFAR-10's classes, 95% and 5%). For the test set use ``majority = minority = 0.5``
    (half grayscale in every class). Apply with ``to_grayscale``.
    """
    for name, value in (("majority", majority), ("minority", minority)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be a share in [0, 1], got {value}")
    classes = labels.unique(sorted=True)
    if isinstance(biased_classes, Tensor):
        chosen = biased_classes.to(torch.int64)
    elif (
        isinstance(biased_classes, int)
        and not isinstance(biased_classes, bool)
        and 0 <= biased_classes <= classes.numel()
    ):
        chosen = classes[torch.randperm(classes.numel(), generator=generator)[:biased_classes]]
    else:
        raise ValueError(
            f"biased_classes must be a class count in [0, {classes.numel()}] or a tensor of class ids, got {biased_classes!r}"
        )
    gray = torch.zeros_like(labels, dtype=torch.bool)
    for k, idx in zip(classes.tolist(), _by_class(labels, generator), strict=True):
        share = majority if bool((chosen == k).any()) else minority
        gray[idx[: round(share * idx.numel())]] = True
    return gray


def to_grayscale(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """``x`` (``[N, 3, H, W]``) with the ``mask``-ed images (all when None) replaced by their luma in every channel.

    Luma = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601). On per-channel normalised data this is the luma
    of the normalised channels: colour information is removed, which is what the experiment needs.
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"to_grayscale needs colour images [N, 3, H, W], got {tuple(x.shape)}")
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
    luma = (x * weights).sum(1, keepdim=True).expand_as(x)
    if mask is None:
        return luma.clone()
    return torch.where(mask.view(-1, 1, 1, 1), luma, x)


def _differs(value: Any, default: Any) -> bool:
    if value is None or default is None or isinstance(value, Tensor):
        return value is not default
    return bool(value != default)


def scheme_options(scheme: str) -> dict[str, Any]:
    """The keyword options of ``scheme`` and their defaults."""
    params = list(inspect.signature(PARTITION_SCHEMES[scheme]).parameters.values())[3:]
    return {p.name: p.default for p in params}


def partition(
    labels: Tensor,
    num_clients: int,
    scheme: str = "iid",
    *,
    generator: torch.Generator,
    **options: Any,
) -> list[Tensor]:
    """Indices of ``labels`` (int ``[N]``) for each of ``num_clients`` clients under ``scheme``.

    ``scheme`` is a key of ``PARTITION_SCHEMES``; ``options`` are that scheme's keyword parameters
    (``alpha``, ``shards_per_client``, ``size_skew``, ... see ``scheme_options``). An option of another
    scheme is ignored while it keeps its default (so a config may always pass ``alpha=0.5``), and is an
    error once set to something else; an option no scheme has is an error listing them all.
    """
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise ValueError("labels must be a 1-D integer tensor (one class index per sample)")
    if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
        raise ValueError(f"num_clients must be a positive integer, got {num_clients!r}")
    if num_clients > labels.numel():
        raise ValueError(
            f"num_clients={num_clients} exceeds the {labels.numel()} samples; every client needs one"
        )
    if scheme not in PARTITION_SCHEMES:
        raise ValueError(
            f"unknown partition scheme {scheme!r}; choose one of: {', '.join(sorted(PARTITION_SCHEMES))}"
        )
    fn = PARTITION_SCHEMES[scheme]
    accepted = scheme_options(scheme)
    used = {}
    for name, value in options.items():
        if name in accepted:
            used[name] = value
            continue
        owners = [s for s in sorted(PARTITION_SCHEMES) if name in scheme_options(s)]
        if not owners:
            raise ValueError(
                f"partition has no option {name!r}; options by scheme: "
                + "; ".join(
                    f"{s}: {', '.join(scheme_options(s)) or 'none'}" for s in sorted(PARTITION_SCHEMES)
                )
            )
        if any(_differs(value, scheme_options(s)[name]) for s in owners):
            raise ValueError(
                f"partition option {name}={value!r} applies to scheme {' / '.join(owners)}, not {scheme!r}; "
                f"drop it or choose that scheme"
            )
    parts = fn(labels.to(torch.int64), num_clients, generator, **used)
    return [p.sort().values for p in parts]
