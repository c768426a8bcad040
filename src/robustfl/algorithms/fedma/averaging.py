"""Matched averaging of one layer, the classifier's label-weighted average, and one-shot matched averaging.

Wang et al. (ICLR 2020): ``W_n = (1/J) Σ_j W_{j,n} Π_j^T`` (Algorithm 3) where the "dummy" (zero-padded)
neurons are discounted: global neuron ``i`` is the mean over the ``m_i`` clients that have a neuron
matched to it. Along an *input* axis the zero padding is kept (``(1/m_i) Σ_j Π_{j,n-1}^T W_{j,n}``):
a feature that a client lacks contributes nothing to its pre-activation, so the average of the
clients' pre-activations is kept, and duplicated global neurons (two global copies of one feature)
share its outgoing weight instead of doubling it. Likewise the LSTM's hidden-to-hidden weights
``H = (1/J) Σ_j Π_j H_j Π_j^T`` (§5.1.2) are averaged over the clients having row unit ``i`` with zeros
for absent column units; the last layer ``W_N = Σ_j p_jk W_{j,N}`` per class ``k`` with ``p_jk`` client
``j``'s share of the class-``k`` points.
The global neurons are plain means of their matched client neurons (not BBP's posterior means,
which shrink towards the prior mean): matched averaging of identical, permuted networks then returns
the network itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from robustfl.algorithms.fedma.costs import MatchingCost
from robustfl.algorithms.fedma.layers import Layer, StateDict, lift, presence, select
from robustfl.algorithms.fedma.matching import Matching, match_neurons


def _masked_mean(parts: list[tuple[Tensor, Tensor]]) -> Tensor:
    num = torch.stack([t * m for t, m in parts]).sum(0)
    den = torch.stack([m for _, m in parts]).sum(0)
    return torch.where(den > 0, num / den.clamp(min=1e-30), torch.zeros_like(num))


def match_layer(
    layer: Layer,
    states: Sequence[StateDict],
    cost: MatchingCost | None = None,
    iterations: int = 5,
    seed: int = 0,
) -> tuple[Matching, StateDict]:
    """Match layer ``layer`` of the clients' ``states`` (inputs already in global coordinates) and average it.

    Returns the matching and the global layer's parameters.
    """
    matching = match_neurons([layer.neurons(s) for s in states], cost, iterations=iterations, seed=seed)
    out: StateDict = {}
    for name in layer.names:
        parts = []
        for s, a in zip(states, matching.assignments, strict=True):
            t, idx = s[name], torch.from_numpy(a)
            axes = [axis for axis in layer.own_axes() if axis.name == name]
            for axis in axes:
                t = lift(t, axis, idx, matching.size)
            mask = torch.ones_like(t)
            for axis in axes:
                if not axis.reads:
                    shape = [1] * t.dim()
                    shape[axis.dim] = -1
                    mask = mask * presence(axis, idx, matching.size).to(t.dtype).view(shape)
            parts.append((t, mask))
        out[name] = _masked_mean(parts)
    return matching, out


def class_weights(label_counts: Tensor) -> Tensor:
    """``p_jk = n_jk / Σ_j n_jk`` from ``label_counts`` ``[J, K]``; a class nobody holds gets ``1/J``."""
    if label_counts.dim() != 2 or (label_counts < 0).any():
        raise ValueError(
            f"label_counts must be a non-negative [clients, classes] table, got shape {tuple(label_counts.shape)}"
        )
    counts = label_counts.double()
    total = counts.sum(0, keepdim=True)
    return torch.where(total > 0, counts / total.clamp(min=1), torch.full_like(counts, 1 / counts.shape[0]))


def average_classifier(layer: Layer, states: Sequence[StateDict], weights: Tensor) -> StateDict:
    """The last layer: row ``k`` (class ``k``) is ``Σ_j weights[j, k] W_j[k]`` (weights from ``class_weights``)."""
    out: StateDict = {}
    for name in layer.names:
        total = torch.zeros_like(states[0][name])
        for j, s in enumerate(states):
            total += weights[j].to(s[name].dtype).view(-1, *([1] * (s[name].dim() - 1))) * s[name]
        out[name] = total
    return out


def adopt(
    state: StateDict, layer: Layer, global_params: StateDict, following: Layer, assignment: Tensor, size: int
) -> StateDict:
    """A client's state after the broadcast of global layer ``layer``: ``W_{j,n+1} ← Π_j W_{j,n+1}``.

    Its own layer becomes the global one and the ``following`` layer's input axis is lifted to the
    ``size`` global neurons (zeros for the neurons the client did not have).
    """
    out = {**state, **global_params}
    axis = following.input_axis(state, assignment.numel())
    out[axis.name] = lift(state[axis.name], axis, assignment, size)
    return out


def reconstruct(global_state: StateDict, chain: Sequence[Layer], assignments: Sequence[Tensor]) -> StateDict:
    """A client's own-size model cut out of the global model through its matching (FedMA with communication).

    ``assignments[n]`` = the global neurons its layer-``n`` neurons were matched to (one per hidden layer).
    """
    out = dict(global_state)
    sizes = [layer.size(global_state) for layer in chain[:-1]]
    for n, layer in enumerate(chain):
        if n > 0:
            axis = layer.input_axis(global_state, sizes[n - 1])
            out[axis.name] = select(out[axis.name], axis, assignments[n - 1], sizes[n - 1])
        if n < len(chain) - 1:
            for axis in layer.own_axes():
                out[axis.name] = select(out[axis.name], axis, assignments[n], sizes[n])
    return out


def matched_average(
    states: Sequence[StateDict],
    chain: Sequence[Layer],
    cost: MatchingCost | None = None,
    label_counts: Tensor | None = None,
    iterations: int = 5,
    seed: int = 0,
) -> tuple[StateDict, list[Matching]]:
    """One-shot matched averaging of whole networks, layer after layer (PFNM extended to CNNs/LSTMs, eq. 5.4).

    Layer ``n``'s inputs are first lifted through layer ``n-1``'s matching (``Π_{j,n-1}^T W_{j,n}``),
    then matched and averaged; the classifier is averaged with ``class_weights(label_counts)``, or
    uniformly when ``label_counts`` is None. Without retraining in between, this is the chapter's
    "PFNM" baseline; ``fedma`` adds the layer-wise retraining.
    """
    if not states:
        raise ValueError("matched_average needs at least one client state")
    cur = [dict(s) for s in states]
    out: StateDict = {}
    matchings: list[Matching] = []
    for n, layer in enumerate(chain):
        if n > 0:
            prev = matchings[-1]
            for s, a in zip(cur, prev.assignments, strict=True):
                idx = torch.from_numpy(a)
                axis = layer.input_axis(s, idx.numel())
                s[axis.name] = lift(s[axis.name], axis, idx, prev.size)
        if n < len(chain) - 1:
            matching, params = match_layer(layer, cur, cost, iterations, seed)
            matchings.append(matching)
        else:
            weights = (
                torch.full((len(cur), cur[0][layer.names[0]].shape[0]), 1.0 / len(cur), dtype=torch.float64)
                if label_counts is None
                else class_weights(label_counts)
            )
            params = average_classifier(layer, cur, weights)
        out.update(params)
    return out, matchings
