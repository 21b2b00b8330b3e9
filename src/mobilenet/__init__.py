"""MobileNet V1, V2, V3-Large and V3-Small: build any member, know its cost, train, deploy and measure it."""

from mobilenet.model import MobileNet, create_model
from mobilenet.resolve import ModelConfig, list_models, make_divisible, resolve

__all__ = ["MobileNet", "ModelConfig", "create_model", "list_models", "make_divisible", "resolve"]
__version__ = "0.1.0"
