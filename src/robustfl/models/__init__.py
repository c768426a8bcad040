"""Networks used in the seeds, each built from the data's input shape and number of classes.

``build_model("lenet", ds.input_shape, ds.num_classes)``; ``MODELS.names()`` lists them.
"""

from robustfl.models.base import (
    MODELS,
    build_model,
    model_summary,
    num_parameters,
    prefers_loop,
    uses_batchnorm,
    uses_dropout,
)
from robustfl.models.crsa_cnn import CRSACNN
from robustfl.models.lenet import CaffeLeNet, LeNet
from robustfl.models.lstm import CharLSTM
from robustfl.models.mlp import MLP
from robustfl.models.resnet import ResNet18
from robustfl.models.vgg import VGG9

__all__ = [
    "CRSACNN",
    "MLP",
    "MODELS",
    "VGG9",
    "CaffeLeNet",
    "CharLSTM",
    "LeNet",
    "ResNet18",
    "build_model",
    "model_summary",
    "num_parameters",
    "prefers_loop",
    "uses_batchnorm",
    "uses_dropout",
]
