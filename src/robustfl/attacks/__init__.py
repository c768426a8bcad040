"""Byzantine attacks: message attacks ``Tensor[h, d] -> Tensor[f, d]``, data poisoning, edge-case backdoors.

``get("alie")`` builds a message attack by name; ``ATTACKS.names()`` lists them.
"""

from typing import Any

from robustfl.attacks.base import ATTACKS, Attack
from robustfl.attacks.corruption import (
    AdditiveGaussian,
    BitFlip,
    Constant,
    Gaussian,
    Inf,
    LargeNumber,
    NaN,
    SignFlipping,
)
from robustfl.attacks.data import (
    DATA_ATTACKS,
    AdditiveFeatureNoise,
    BackdoorLabels,
    DataAttack,
    ImpulseNoise,
    LabelFlip,
    get_data_attack,
    poison_clients,
)
from robustfl.attacks.edge_case import EdgeCaseMix, EdgeCaseSet, build_edge_case_set, poisoned_mix
from robustfl.attacks.metrics import accuracy, accuracy_parity_ratio, backdoor_accuracy
from robustfl.attacks.model_poisoning import (
    ModelReplacement,
    PGDProjection,
    model_replacement,
    project_l2_ball,
)
from robustfl.attacks.optimal import OptimalALIE, OptimalIPM
from robustfl.attacks.time_coupled import ALittleIsEnough, InnerProductManipulation, Mimic

__all__ = [
    "ATTACKS",
    "DATA_ATTACKS",
    "ALittleIsEnough",
    "AdditiveFeatureNoise",
    "AdditiveGaussian",
    "Attack",
    "BackdoorLabels",
    "BitFlip",
    "Constant",
    "DataAttack",
    "EdgeCaseMix",
    "EdgeCaseSet",
    "Gaussian",
    "ImpulseNoise",
    "Inf",
    "InnerProductManipulation",
    "LabelFlip",
    "LargeNumber",
    "Mimic",
    "ModelReplacement",
    "NaN",
    "OptimalALIE",
    "OptimalIPM",
    "PGDProjection",
    "SignFlipping",
    "accuracy",
    "accuracy_parity_ratio",
    "backdoor_accuracy",
    "build_edge_case_set",
    "get",
    "get_data_attack",
    "model_replacement",
    "poison_clients",
    "poisoned_mix",
    "project_l2_ball",
]

# Attacks beyond the peers (branch defences): Min-Max / Min-Sum, Fang et al., the adaptive scale attack
from robustfl.attacks.adaptive import AdaptiveScale
from robustfl.attacks.fang import FangKrum, FangTrimmedMean
from robustfl.attacks.min_max import MinMax, MinSum

__all__ += ["AdaptiveScale", "FangKrum", "FangTrimmedMean", "MinMax", "MinSum"]


def get(name: str, **params: Any) -> Attack:
    """Build the message attack registered as ``name`` (case-insensitive) with ``params``."""
    return ATTACKS.get(name, **params)
