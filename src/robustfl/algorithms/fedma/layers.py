"""The permutation structure of a network: its chain of matchable layers and the tensor surgery on them.

Wang et al. (ICLR 2020) §5.1.2: a hidden layer's neurons are FC units (rows of ``weight``, with the
bias), conv filters (``weight[o]`` flattened over ``c_in·k·k``, with the bias; eq. 5.5), embedding
dimensions (columns of the embedding table, "handled like a fully connected layer") or LSTM hidden
units (the four gates' input-to-hidden rows stacked, an ``S·D`` vector; eq. 5.6). Permuting a layer's
neurons and, identically, the next layer's input axis (a conv channel owns ``h·w`` consecutive inputs
of a following FC layer; an LSTM unit also indexes the columns of ``weight_hh``) leaves the function
unchanged. ``layer_chain(model)`` reads this structure from the modules in registration order, which
must be the order they are applied in (true for ``mlp``, ``lenet``, ``lenet-caffe``, ``vgg9``, ``lstm``).
BatchNorm, residual and multi-layer or bidirectional recurrent layers are not supported (the chapter
leaves them out too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

StateDict = dict[str, Tensor]


@dataclass(frozen=True)
class Axis:
    """An axis of parameter ``name`` indexed by a layer's neurons: ``index = (outer_k · L + unit) · inner + r``.

    ``reads`` marks an axis that *reads* the neurons (an input axis, like an LSTM's ``weight_hh``
    columns) rather than being them: averaging keeps its zero padding (see ``averaging``).
    """

    name: str
    dim: int
    outer: int = 1
    inner: int = 1
    reads: bool = False


@dataclass(frozen=True)
class Layer:
    """One matchable layer: its kind and module name (widths are read from the tensors, so one chain
    describes a model family of any widths)."""

    kind: str
    prefix: str

    @property
    def names(self) -> tuple[str, ...]:
        """Its parameter names in the state dict."""
        suffixes = {
            "lstm": ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
            "embedding": ("weight",),
        }.get(self.kind, ("weight", "bias"))
        return tuple(f"{self.prefix}.{s}" for s in suffixes)

    def size(self, state: StateDict) -> int:
        """Its number of neurons in ``state``."""
        if self.kind == "embedding":
            return state[f"{self.prefix}.weight"].shape[1]
        if self.kind == "lstm":
            return state[f"{self.prefix}.weight_hh_l0"].shape[1]
        return state[f"{self.prefix}.weight"].shape[0]

    def own_axes(self) -> list[Axis]:
        """Axes indexed by this layer's own neurons (an LSTM's ``weight_hh`` has two)."""
        p = self.prefix
        if self.kind == "embedding":
            return [Axis(f"{p}.weight", 1)]
        if self.kind == "lstm":
            gates = [
                Axis(f"{p}.{s}", 0, outer=4)
                for s in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
            ]
            return [*gates, Axis(f"{p}.weight_hh_l0", 1, reads=True)]
        return [Axis(f"{p}.weight", 0), Axis(f"{p}.bias", 0)]

    def input_axis(self, state: StateDict, previous_width: int) -> Axis:
        """The axis indexed by the previous layer's neurons (``previous_width`` of them)."""
        if self.kind == "embedding":
            raise ValueError(f"layer {self.prefix!r}: an embedding must be the first layer of the chain")
        name = f"{self.prefix}.weight_ih_l0" if self.kind == "lstm" else f"{self.prefix}.weight"
        size = state[name].shape[1]
        if size % previous_width:
            raise ValueError(
                f"layer {self.prefix!r} reads {size} inputs, not a multiple of the previous layer's "
                f"{previous_width} neurons; FedMA needs a plain chain of layers"
            )
        return Axis(name, 1, inner=size // previous_width, reads=True)

    def neurons(self, state: StateDict) -> Tensor:
        """``[L, D]``: one row per neuron, the vectors eq. 5.2 matches."""
        p = self.prefix
        if self.kind == "embedding":
            return state[f"{p}.weight"].t()
        if self.kind == "lstm":
            w = state[f"{p}.weight_ih_l0"]
            units = w.shape[0] // 4
            return w.view(4, units, -1).permute(1, 0, 2).reshape(units, -1)
        w, b = state[f"{p}.weight"], state[f"{p}.bias"]
        return torch.cat([w.flatten(1), b[:, None]], dim=1)


def layer_chain(model: nn.Module) -> list[Layer]:
    """The matchable layers of ``model`` in order; a ``ValueError`` names a module FedMA cannot handle."""
    chain = []
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        if isinstance(module, nn.Linear) and module.bias is not None:
            chain.append(Layer("linear", name))
        elif isinstance(module, nn.Conv2d) and module.bias is not None and module.groups == 1:
            chain.append(Layer("conv", name))
        elif isinstance(module, nn.Embedding):
            chain.append(Layer("embedding", name))
        elif (
            isinstance(module, nn.LSTM)
            and module.num_layers == 1
            and module.bias
            and not module.bidirectional
            and module.proj_size == 0
        ):
            chain.append(Layer("lstm", name))
        else:
            raise ValueError(
                f"FedMA matches Linear and Conv2d layers with bias, Embedding and one-layer LSTMs; "
                f"module {name!r} ({type(module).__name__}) is not one of them"
            )
    if len(chain) < 2 or chain[-1].kind != "linear":
        raise ValueError("FedMA needs a chain of at least two layers ending in a Linear classifier")
    return chain


def _split(t: Tensor, axis: Axis, units: int) -> Tensor:
    """``t`` with ``axis`` moved first and split into ``[outer, units, inner, ...]``."""
    moved = t.movedim(axis.dim, 0)
    return moved.reshape(axis.outer, units, axis.inner, *moved.shape[1:])


def _merge(t: Tensor, axis: Axis) -> Tensor:
    return t.reshape(-1, *t.shape[3:]).movedim(0, axis.dim)


def presence(axis: Axis, assignment: Tensor, size: int) -> Tensor:
    """A 0/1 vector along ``axis`` (of ``outer · size · inner`` entries): 1 where a unit in ``assignment`` sits."""
    present = torch.zeros(size)
    present[assignment] = 1.0
    return present.view(1, size, 1).expand(axis.outer, size, axis.inner).reshape(-1)


def lift(t: Tensor, axis: Axis, assignment: Tensor, size: int) -> Tensor:
    """Scatter ``t``'s units along ``axis`` to global positions ``assignment`` of ``size`` (zeros elsewhere).

    ``W_j Π_j^T`` of §5.1.1 with the "dummy" neurons padded with zeros.
    """
    units = assignment.numel()
    parts = _split(t, axis, units)
    out = parts.new_zeros(axis.outer, size, *parts.shape[2:])
    out[:, assignment] = parts
    return _merge(out, axis)


def select(t: Tensor, axis: Axis, assignment: Tensor, size: int) -> Tensor:
    """The inverse of ``lift``: keep the global units ``assignment`` along ``axis`` (a client's own size)."""
    return _merge(_split(t, axis, size)[:, assignment], axis)


def widths(chain: list[Layer], state: StateDict) -> tuple[int, ...]:
    """The hidden widths of ``state`` (every layer but the classifier), what the model builders take."""
    return tuple(layer.size(state) for layer in chain[:-1])


def permute(state: StateDict, chain: list[Layer], permutations: list[Tensor]) -> StateDict:
    """The same network with hidden layer ``n``'s neuron ``l`` moved to position ``permutations[n][l]``.

    Applies eq. 5.4/5.5/5.6's ``Π_n`` to layer ``n``'s neurons and ``Π_n^T`` to layer ``n+1``'s inputs, so
    the function is unchanged.
    """
    out = dict(state)
    for n, (layer, perm) in enumerate(zip(chain[:-1], permutations, strict=True)):
        size = layer.size(out)
        if sorted(perm.tolist()) != list(range(size)):
            raise ValueError(f"permutations[{n}] must be a permutation of range({size})")
        for axis in layer.own_axes():
            out[axis.name] = lift(out[axis.name], axis, perm, size)
        axis = chain[n + 1].input_axis(out, size)
        out[axis.name] = lift(out[axis.name], axis, perm, size)
    return out
