"""MobileNet V1, V2, V3-Large and V3-Small: build any member, know its cost, train, deploy and measure it."""

from mobilenet.model import MobileNet, create_model
from mobilenet.resolve import ModelConfig, list_models, make_divisible, resolution
from mobilenet.weights import load, load_weights, save

__all__ = [
    "MobileNet",
    "ModelConfig",
    "create_model",
    "list_models",
    "load",
    "load_weights",
    "make_divisible",
    "resolution",
    "save",
]
__version__ = "0.1.0"
