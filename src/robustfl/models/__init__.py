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
from robustfl.models.lowrank import LowRankConv2d, LowRankLinear, LowRankLSTMLayer, LSTMLayer
from robustfl.models.lstm import CharLSTM
from robustfl.models.macs import count_macs
from robustfl.models.mlp import MLP
from robustfl.models.pufferfish import HYBRIDS, HybridSpec, factorise, hybrid, svd_initialise, weight_layers
from robustfl.models.resnet import ResNet18
from robustfl.models.resnet_imagenet import ResNet50, WideResNet50_2
from robustfl.models.transformer import Transformer
from robustfl.models.vgg import VGG9
from robustfl.models.vgg19 import VGG19BN
from robustfl.models.word_lstm import WordLSTM

__all__ = [
    "CRSACNN",
    "HYBRIDS",
    "MLP",
    "MODELS",
    "VGG9",
    "VGG19BN",
    "CaffeLeNet",
    "CharLSTM",
    "HybridSpec",
    "LSTMLayer",
    "LeNet",
    "LowRankConv2d",
    "LowRankLSTMLayer",
    "LowRankLinear",
    "ResNet18",
    "ResNet50",
    "Transformer",
    "WideResNet50_2",
    "WordLSTM",
    "build_model",
    "count_macs",
    "factorise",
    "hybrid",
    "model_summary",
    "num_parameters",
    "prefers_loop",
    "svd_initialise",
    "uses_batchnorm",
    "uses_dropout",
    "weight_layers",
]
