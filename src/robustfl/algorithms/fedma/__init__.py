"""FedMA: federated matched averaging (Wang, Yurochkin, Sun, Papailiopoulos, Khazaeni, ICLR 2020).

Pure maths over weight tensors (``costs``, ``matching``, ``layers``, ``averaging``) and the layer-wise
procedure of Algorithm 3 with its "with communication" rounds (``procedure``); see docs/fedma.md.
"""

from robustfl.algorithms.fedma.averaging import (
    adopt,
    average_classifier,
    class_weights,
    match_layer,
    matched_average,
    reconstruct,
)
from robustfl.algorithms.fedma.builders import ModelFactory, width_factory
from robustfl.algorithms.fedma.costs import (
    CHAPTER_LSTM_COST,
    CHAPTER_VGG9_COST,
    BBPMAPCost,
    MatchingCost,
    SquaredEuclideanCost,
)
from robustfl.algorithms.fedma.growth import GrowthRow, growth_table
from robustfl.algorithms.fedma.layers import Layer, layer_chain, permute, widths
from robustfl.algorithms.fedma.matching import Matching, match_neurons
from robustfl.algorithms.fedma.procedure import FedMAResult, RoundRecord, fedma
from robustfl.algorithms.fedma.training import SGDTrainer, Trainer, TrainRequest, accuracy

__all__ = [
    "CHAPTER_LSTM_COST",
    "CHAPTER_VGG9_COST",
    "BBPMAPCost",
    "FedMAResult",
    "GrowthRow",
    "Layer",
    "Matching",
    "MatchingCost",
    "ModelFactory",
    "RoundRecord",
    "SGDTrainer",
    "SquaredEuclideanCost",
    "TrainRequest",
    "Trainer",
    "accuracy",
    "adopt",
    "average_classifier",
    "class_weights",
    "fedma",
    "growth_table",
    "layer_chain",
    "match_layer",
    "match_neurons",
    "matched_average",
    "permute",
    "reconstruct",
    "width_factory",
    "widths",
]
