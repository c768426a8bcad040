"""Byzantine attacks: message attacks ``Tensor[h, d] -> Tensor[f, d]`` and data poisoning.

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
    "Gaussian",
    "ImpulseNoise",
    "Inf",
    "InnerProductManipulation",
    "LabelFlip",
    "LargeNumber",
    "Mimic",
    "NaN",
    "OptimalALIE",
    "OptimalIPM",
    "SignFlipping",
    "get",
    "get_data_attack",
    "poison_clients",
]


def get(name: str, **params: Any) -> Attack:
    """Build the message attack registered as ``name`` (case-insensitive) with ``params``."""
    return ATTACKS.get(name, **params)
