"""Costs of the extended bipartite matching (Wang et al., ICLR 2020, eq. 5.3).

A cost maps one client's neurons ``v`` (``[L_j, D]``) and the current global model's statistics (the
sum ``s_i`` and count ``m_i`` of the neurons matched to each of the ``L`` global neurons, from the
*other* clients) to an ``[L_j, L + L_j]`` matrix: column ``i < L`` is the cost of matching neuron ``l``
to global neuron ``i``; column ``L + t - 1`` (``t = 1..L_j``) the cost of opening the ``t``-th new
global neuron (``ε + f(t)`` in eq. 5.3). Everything is computed in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class MatchingCost(Protocol):
    """Builds the extended cost matrix of eq. 5.3 for one client."""

    def __call__(
        self, neurons: np.ndarray, sums: np.ndarray, counts: np.ndarray, num_clients: int
    ) -> np.ndarray: ...


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class BBPMAPCost:
    """BBP-MAP cost of PFNM (Yurochkin et al., ICML 2019), the default cost of FedMA.

    Model: global neurons ``θ_i ~ N(μ0·1, σ0² I)``, a client's neuron ``v ~ N(θ_i, σ² I)``, which global
    neurons a client uses drawn from the Beta-Bernoulli process with mass ``γ0`` (Indian-buffet prior).
    With the natural parameters of the posterior of ``θ_i`` given the other clients' matched neurons,
    ``η_i = μ0/σ0² + s_i/σ²`` and ``λ_i = 1/σ0² + m_i/σ²``, twice the negative log posterior gain is

    - matching ``v_l`` to ``i``:  ``-(‖η_i + v_l/σ²‖² / (λ_i + 1/σ²) - ‖η_i‖²/λ_i) - 2 log(m_i / (J - m_i))``
    - the ``t``-th new neuron:  ``-(‖μ0/σ0² + v_l/σ²‖² / (1/σ0² + 1/σ²) - D μ0²/σ0²) - 2 log(γ0 / J) + 2 log t``

    PFNM's cost leaves out the Gaussian normalising terms; ``log_det=True`` adds them (twice the
    log marginal likelihood, exact for the model): ``+ D log((λ_i + 1/σ²)/λ_i)`` for an existing and
    ``+ D log(1 + σ0²/σ²)`` for a new neuron, which favours matching more strongly as ``D`` grows.
    ``σ²`` is a per-coordinate variance and must fit the weights' scale: when it is large against the
    squared distances between neurons, the prior terms decide alone (popular global neurons absorb
    unrelated ones when J is large; with few clients new neurons are opened). The chapter's values:
    ``γ0 = 7, σ0² = 1, σ² = 1`` for VGG-9 on CIFAR-10 and ``γ0 = 1e-3`` (``σ0² = σ² = 1``) for the
    Shakespeare LSTM; it gives no values for LeNet/MNIST.
    """

    gamma0: float = 7.0
    sigma0_sq: float = 1.0
    sigma_sq: float = 1.0
    mu0: float = 0.0
    log_det: bool = False

    def __post_init__(self) -> None:
        _positive("gamma0", self.gamma0)
        _positive("sigma0_sq", self.sigma0_sq)
        _positive("sigma_sq", self.sigma_sq)
        if not math.isfinite(self.mu0):
            raise ValueError(f"mu0 must be finite, got {self.mu0!r}")

    def __call__(
        self, neurons: np.ndarray, sums: np.ndarray, counts: np.ndarray, num_clients: int
    ) -> np.ndarray:
        p0, p = 1.0 / self.sigma0_sq, 1.0 / self.sigma_sq
        v = neurons * p
        vv = np.einsum("ld,ld->l", v, v)
        eta = self.mu0 * p0 + sums * p
        lam = p0 + counts * p
        ee = np.einsum("id,id->i", eta, eta)
        gain = (ee[None, :] + 2.0 * v @ eta.T + vv[:, None]) / (lam + p)[None, :] - (ee / lam)[None, :]
        m = np.clip(counts, 1, num_clients - 1) if num_clients > 1 else counts
        popularity = 2.0 * np.log(m / np.maximum(num_clients - m, 1))
        existing = -gain - popularity[None, :]
        prior = self.mu0 * p0 + v
        d = neurons.shape[1]
        new_gain = np.einsum("ld,ld->l", prior, prior) / (p0 + p) - d * self.mu0**2 * p0
        t = np.arange(1, neurons.shape[0] + 1)
        new = -new_gain[:, None] - 2.0 * math.log(self.gamma0 / num_clients) + 2.0 * np.log(t)[None, :]
        if self.log_det:
            existing = existing + d * np.log((lam + p) / lam)[None, :]
            new = new + d * math.log(1.0 + p / p0)
        return np.hstack([existing, new])


@dataclass(frozen=True)
class SquaredEuclideanCost:
    """``c(v, θ_i) = ‖v - θ_i‖²`` with ``θ_i`` the mean of the neurons matched to ``i`` (k-means-like, eq. 5.2).

    A new global neuron costs ``threshold + size_penalty · t`` for the ``t``-th one (``ε + f(t)`` of
    eq. 5.3 with a linear ``f``; the chapter gives no values for ``ε`` or ``f``). ``threshold=None``
    opens new neurons only when a client has more neurons than the global model (fixed-size matching,
    the Wasserstein-barycenter special case the chapter mentions).
    """

    threshold: float | None = None
    size_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.threshold is not None and not (
            isinstance(self.threshold, int | float) and math.isfinite(self.threshold)
        ):
            raise ValueError(f"threshold must be a finite number or None, got {self.threshold!r}")
        if not (isinstance(self.size_penalty, int | float) and self.size_penalty >= 0):
            raise ValueError(f"size_penalty must be >= 0, got {self.size_penalty!r}")

    def __call__(
        self, neurons: np.ndarray, sums: np.ndarray, counts: np.ndarray, num_clients: int
    ) -> np.ndarray:
        theta = sums / np.maximum(counts, 1)[:, None]
        vv = np.einsum("ld,ld->l", neurons, neurons)
        tt = np.einsum("id,id->i", theta, theta)
        existing = np.maximum(vv[:, None] + tt[None, :] - 2.0 * neurons @ theta.T, 0.0)
        lj = neurons.shape[0]
        t = np.arange(1, lj + 1, dtype=np.float64)
        if self.threshold is None:
            spread = float(existing.max() - existing.min()) if existing.size else 0.0
            base = (float(existing.max()) if existing.size else 0.0) + (lj + 1) * (spread + 1.0)
            new = np.full((lj, lj), base) + self.size_penalty * t[None, :]
        else:
            new = np.broadcast_to(self.threshold + self.size_penalty * t[None, :], (lj, lj))
        return np.hstack([existing, new])


CHAPTER_VGG9_COST = BBPMAPCost(gamma0=7.0, sigma0_sq=1.0, sigma_sq=1.0)
"""BBP-MAP with the chapter's values for VGG-9 on CIFAR-10 (§5.4.4)."""

CHAPTER_LSTM_COST = BBPMAPCost(gamma0=1e-3, sigma0_sq=1.0, sigma_sq=1.0)
"""BBP-MAP with the chapter's values for the LSTM on Shakespeare (§5.4.4)."""
