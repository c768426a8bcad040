"""Networks used in the seeds, each built from the data's input shape and number of classes.

``build_model("lenet", ds.input_shape, ds.num_classes)``; ``MODELS.names()`` lists them.
"""

from robustfl.models.base import MODELS, build_model, model_summary, num_parameters, uses_batchnorm
from robustfl.models.lenet import LeNet
from robustfl.models.mlp import MLP

__all__ = ["MLP", "MODELS", "LeNet", "build_model", "model_summary", "num_parameters", "uses_batchnorm"]
