"""PUFFERFISH hybrid networks and Algorithm 2's SVD initialisation (seed 004 ch. 4, §4.2).

A network's *weight layers* are its ``nn.Linear``, ``nn.Conv2d`` and ``LSTMLayer`` modules in
definition order, numbered from 1. The **hybrid** network keeps layers ``1 .. K-1`` full rank,
factorises every later one with rank ``rank_for(rows, cols, ratio)`` (ratio 0.25, §4.3.1) except
the very last layer (the classifier, "PUFFERFISH does not factorize it", §4.2) and the layers a
network's spec keeps full (ResNet-18's shortcut convolutions, §4.5.4).

- ``factorise(model, names, rank_ratio, svd=True)``: a copy of ``model`` with the layers ``names``
  replaced by low-rank layers. ``svd=True`` is Algorithm 2's switch from vanilla warm-up to low-rank
  training: each replaced layer's factors are ``Ũ Σ^½`` and ``Σ^½ Ṽᵀ`` of its current weight, every
  other parameter and buffer (BatchNorm weights *and* running statistics, biases, the last FC) is
  carried over unchanged. ``svd=False`` gives freshly initialised factors (training from scratch).
- ``svd_initialise(vanilla, hybrid)``: the same initialisation into an already built hybrid.
- ``HYBRIDS``: the per-network K, derived from the chapter's tables (see each ``HybridSpec``).
- Registry entries ``<model>-pufferfish`` build the hybrid network directly (factors freshly
  initialised; call ``svd_initialise`` after vanilla warm-up).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustfl.models.base import MODELS
from robustfl.models.lowrank import (
    LowRankConv2d,
    LowRankLinear,
    LowRankLSTMLayer,
    LSTMLayer,
    rank_for,
)
from robustfl.models.resnet import ResNet18
from robustfl.models.resnet_imagenet import ResNet50, WideResNet50_2
from robustfl.models.transformer import Transformer
from robustfl.models.vgg19 import VGG19BN
from robustfl.models.word_lstm import WordLSTM

FULL_TYPES = (nn.Linear, nn.Conv2d, LSTMLayer)
LOW_RANK_TYPES = (LowRankLinear, LowRankConv2d, LowRankLSTMLayer)


def weight_layers(model: nn.Module) -> list[str]:
    """Names of the model's full-rank weight layers (Linear, Conv2d, LSTMLayer) in definition order."""
    return [name for name, m in model.named_modules() if isinstance(m, FULL_TYPES)]


def layer_rank(module: nn.Module, ratio: float) -> int:
    """The chapter's rank for ``module``: ``ratio`` times the rank of its unrolled weight matrix
    (``[out, in]``; ``[c_out, c_in k k]`` for a convolution; ``[h, d]`` per gate for an LSTM)."""
    if isinstance(module, nn.Linear):
        return rank_for(module.out_features, module.in_features, ratio)
    if isinstance(module, nn.Conv2d):
        c_out, c_in, kh, kw = module.weight.shape
        return rank_for(c_out, c_in * kh * kw, ratio)
    if isinstance(module, LSTMLayer):
        return rank_for(module.hidden_size, module.input_size, ratio)
    raise ValueError(f"cannot factorise a {type(module).__name__}; expected Linear, Conv2d or LSTMLayer")


def low_rank_of(module: nn.Module, rank: int, svd: bool = True) -> nn.Module:
    """The rank-``rank`` replacement of one full layer (Algorithm 2's factors when ``svd``)."""
    if isinstance(module, nn.Linear):
        return LowRankLinear.from_full(module, rank, svd=svd)
    if isinstance(module, nn.Conv2d):
        return LowRankConv2d.from_full(module, rank, svd=svd)
    if isinstance(module, LSTMLayer):
        return LowRankLSTMLayer.from_full(module, rank, svd=svd)
    raise ValueError(f"cannot factorise a {type(module).__name__}; expected Linear, Conv2d or LSTMLayer")


def low_rank_version(module: nn.Module, ratio: float, svd: bool = True) -> nn.Module:
    """``low_rank_of`` at the chapter's rank ``layer_rank(module, ratio)``."""
    return low_rank_of(module, layer_rank(module, ratio), svd=svd)


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def factorise(
    model: nn.Module, names: list[str], rank_ratio: float = 0.25, svd: bool = True, inplace: bool = False
) -> nn.Module:
    """``model`` with the weight layers ``names`` replaced by low-rank layers (see the module doc).

    ``inplace=False`` (default) leaves ``model`` untouched and returns a copy. A name that is not a
    full-rank weight layer of ``model`` raises ``ValueError``.
    """
    rank_for(1, 1, rank_ratio)  # validates the ratio
    available = set(weight_layers(model))
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"names {unknown} are not full-rank weight layers of {type(model).__name__}")
    out = model if inplace else copy.deepcopy(model)
    for name in names:
        _set_module(out, name, low_rank_version(out.get_submodule(name), rank_ratio, svd=svd))
    return out


@dataclass(frozen=True)
class HybridSpec:
    """Which layers of a network PUFFERFISH factorises: weight layers ``first_low_rank`` (K, 1-based)
    onwards, except the last layer and any layer whose name contains one of ``keep_full``."""

    first_low_rank: int
    keep_full: tuple[str, ...] = ()

    def names(self, model: nn.Module) -> list[str]:
        """The weight layers this spec factorises in ``model``."""
        layers = weight_layers(model)
        if not isinstance(self.first_low_rank, int) or self.first_low_rank < 1:
            raise ValueError(f"first_low_rank (K) must be a positive integer, got {self.first_low_rank!r}")
        chosen = layers[self.first_low_rank - 1 : -1]
        return [n for n in chosen if not any(k in n for k in self.keep_full)]


# K for each network, derived from seed 004 ch. 4 (the derivations are in docs/models.md):
# resnet18: K = 4 (§4.5.4: "starts from the 2nd convolution block, i.e. K = 4"): conv1 = 1,
#   layer1.0.conv1/conv2 = 2, 3, layer1.1.conv1 = 4; shortcuts stay full ("we do not handle the
#   downsampling weights"). Gives 3,336,138 (Table 4.4).
# vgg19-bn: K = 10 (§4.5.4): conv10..conv16 and fc17, fc18 low rank, fc19 (classifier) full. Table 4.11
#   lists fc17/fc18 as full, but only with them factorised does the count equal 8,370,634 (Table 4.4).
# resnet50 / wide-resnet50-2: all of conv5_x (= layer4) including its downsampling conv (Tables 4.14,
#   4.15): 1 stem + 10 + 13 + 19 layers (3 convs per block + 1 downsample per stage) precede
#   layer4.0.conv1, so K = 44. Gives 15,202,344 and 40,047,400 (Table 4.5).
# word-lstm: K = 1, both LSTM layers; the tied embedding/decoder is never factorised (§4.3.1).
# transformer: the first encoder and the first decoder layer full, all other layers low rank (§4.5.4).
HYBRIDS: dict[str, HybridSpec] = {
    "resnet18": HybridSpec(4, keep_full=("shortcut",)),
    "vgg19-bn": HybridSpec(10),
    "resnet50": HybridSpec(44),
    "wide-resnet50-2": HybridSpec(44),
    "word-lstm": HybridSpec(1),
    "transformer": HybridSpec(1, keep_full=("encoder.0.", "decoder.0.")),
}


def hybrid(
    model: nn.Module, spec: HybridSpec, rank_ratio: float = 0.25, svd: bool = True, inplace: bool = False
) -> nn.Module:
    """The PUFFERFISH hybrid of ``model`` under ``spec`` (``factorise`` on ``spec.names(model)``)."""
    return factorise(model, spec.names(model), rank_ratio, svd=svd, inplace=inplace)


def svd_initialise(vanilla: nn.Module, hybrid_model: nn.Module) -> nn.Module:
    """Algorithm 2's switch into an existing hybrid: every low-rank layer of ``hybrid_model`` gets the
    SVD factors (``Ũ_r Σ_r^½``, ``Σ_r^½ Ṽ_rᵀ``) of the same-named full layer of ``vanilla``; every other
    parameter and buffer (BatchNorm statistics included) is copied by name. Returns ``hybrid_model``.

    Layers, names or shapes that do not correspond raise ``ValueError``.
    """
    full = dict(vanilla.named_modules())
    covered: set[str] = set()
    with torch.no_grad():
        for name, module in hybrid_model.named_modules():
            if not isinstance(module, LOW_RANK_TYPES):
                continue
            source = full.get(name)
            if not isinstance(source, FULL_TYPES):
                raise ValueError(f"hybrid layer {name!r} has no full-rank counterpart in the vanilla model")
            _load_factors(module, source, name)
            covered.add(name + ".")
        vanilla_state = vanilla.state_dict()
        for key, value in hybrid_model.state_dict().items():
            if any(key.startswith(prefix) for prefix in covered):
                continue  # factors and biases of a low-rank layer: set by _load_factors
            if key not in vanilla_state or vanilla_state[key].shape != value.shape:
                raise ValueError(f"hybrid entry {key!r} has no same-shaped counterpart in the vanilla model")
            value.copy_(vanilla_state[key])
    return hybrid_model


def _load_factors(target: nn.Module, source: nn.Module, name: str) -> None:
    """Copy ``source``'s SVD factors into the existing low-rank ``target`` (same layer kind)."""
    rank = target.rank
    assert isinstance(rank, int)
    factors = low_rank_of(source, rank) if isinstance(source, FULL_TYPES) else None
    if factors is None or type(factors) is not type(target):
        raise ValueError(
            f"layer {name!r}: cannot initialise a {type(target).__name__} from a {type(source).__name__}"
        )
    if {k: v.shape for k, v in factors.state_dict().items()} != {
        k: v.shape for k, v in target.state_dict().items()
    }:
        raise ValueError(f"layer {name!r}: the hybrid's shapes do not match the vanilla layer's")
    target.load_state_dict(factors.state_dict())


def _builder(key: str, vanilla: Callable[..., nn.Module], doc: str) -> Callable[..., nn.Module]:
    spec = HYBRIDS[key]

    def build(
        input_shape: tuple[int, ...],
        num_classes: int,
        rank_ratio: float = 0.25,
        first_low_rank: int = spec.first_low_rank,
        **kwargs: Any,
    ) -> nn.Module:
        model = MODELS.get(key, input_shape=input_shape, num_classes=num_classes, **kwargs)
        chosen = HybridSpec(first_low_rank, spec.keep_full)
        return hybrid(model, chosen, rank_ratio, svd=False, inplace=True)

    build.__name__ = f"{vanilla.__name__}Pufferfish"
    build.__doc__ = doc
    return build


MODELS.register("resnet18-pufferfish")(
    _builder(
        "resnet18", ResNet18, "Hybrid ResNet-18 (K = 4, rank ratio 0.25): 3,336,138 parameters (Table 4.4)."
    )
)
MODELS.register("vgg19-bn-pufferfish", "vgg19-pufferfish")(
    _builder(
        "vgg19-bn", VGG19BN, "Hybrid VGG-19-BN (K = 10, rank ratio 0.25): 8,370,634 parameters (Table 4.4)."
    )
)
MODELS.register("resnet50-pufferfish")(
    _builder(
        "resnet50",
        ResNet50,
        "Hybrid ResNet-50 (conv5_x low rank, K = 44): 15,202,344 parameters (Table 4.5).",
    )
)
MODELS.register("wide-resnet50-2-pufferfish", "wrn50-2-pufferfish")(
    _builder(
        "wide-resnet50-2",
        WideResNet50_2,
        "Hybrid WideResNet-50-2 (conv5_x low rank, K = 44): 40,047,400 parameters (Table 4.5).",
    )
)
MODELS.register("word-lstm-pufferfish")(
    _builder(
        "word-lstm",
        WordLSTM,
        "Low-rank 2-layer tied LSTM (both layers, rank h/4): 67,962,278 parameters (Table 4.2).",
    )
)
MODELS.register("transformer-pufferfish")(
    _builder(
        "transformer",
        Transformer,
        "Hybrid Transformer (first encoder and decoder layer full): 26,696,192 parameters with V = 9,521 (Table 4.3).",
    )
)
