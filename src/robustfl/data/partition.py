"""Split a data set's sample indices across clients.

``partition(labels, num_clients, scheme, generator=g, ...)`` returns one ``LongTensor`` of sample
indices per client. Every scheme assigns each sample to at most one client, leaves no client empty
(or raises a ``ValueError`` saying which parameter to change), and is reproducible from ``generator``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

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


def partition(
    labels: Tensor,
    num_clients: int,
    scheme: str = "iid",
    *,
    generator: torch.Generator,
    **options: float,
) -> list[Tensor]:
    """Indices of ``labels`` (int ``[N]``) for each of ``num_clients`` clients under ``scheme``.

    ``scheme`` is a key of ``PARTITION_SCHEMES``; ``options`` are that scheme's keyword parameters
    (``alpha``, ``shards_per_client``, ``size_skew``, ...). An option the scheme does not take is an
    error naming the ones it does, so a typo in a config is caught.
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
    accepted = list(inspect.signature(fn).parameters)[3:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"partition scheme {scheme!r} has no option {', '.join(unknown)}; its options: {', '.join(accepted) or 'none'}"
        )
    parts = fn(labels.to(torch.int64), num_clients, generator, **options)
    return [p.sort().values for p in parts]
