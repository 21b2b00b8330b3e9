"""MobileNet V1, V2, V3-Large and V3-Small: build any member, know its cost, train, deploy and measure it.

The public API is this package's root (`mobilenet.create_model`, `mobilenet.profile`, `mobilenet.from_torchvision`,
...) and its subpackages (`mobilenet.cost`, `mobilenet.convert`, `mobilenet.deploy`, ...). Both are imported on first
use (PEP 562), so that `import mobilenet` and `mobilenet --help` do not pay for torch until a name needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "MobileNet": "mobilenet.model",
    "build": "mobilenet.model",
    "create_model": "mobilenet.model",
    "ModelConfig": "mobilenet.resolve",
    "list_models": "mobilenet.resolve",
    "make_config": "mobilenet.resolve",
    "make_divisible": "mobilenet.resolve",
    "resolution": "mobilenet.resolve",
    "load": "mobilenet.weights",
    "load_weights": "mobilenet.weights",
    "save": "mobilenet.weights",
    "CostReport": "mobilenet.cost.count",
    "count_module": "mobilenet.cost.count",
    "profile": "mobilenet.cost.count",
    "from_torchvision": "mobilenet.convert",
    "Classifier": "mobilenet.deploy.predictor",
    "export_onnx": "mobilenet.deploy.onnx",
}
_SUBMODULES = (
    "bench",
    "convert",
    "cost",
    "data",
    "deploy",
    "metadata",
    "published",
    "report",
    "specs",
    "train",
    "weights",
)

__all__ = [  # the names of _EXPORTS, written out for tools that read __all__ statically
    "Classifier",
    "CostReport",
    "MobileNet",
    "ModelConfig",
    "build",
    "count_module",
    "create_model",
    "export_onnx",
    "from_torchvision",
    "list_models",
    "load",
    "load_weights",
    "make_config",
    "make_divisible",
    "profile",
    "resolution",
    "save",
]

if TYPE_CHECKING:  # what the names are, for readers and type checkers; at run time they come from __getattr__
    from mobilenet.convert import from_torchvision
    from mobilenet.cost.count import CostReport, count_module, profile
    from mobilenet.deploy.onnx import export_onnx
    from mobilenet.deploy.predictor import Classifier
    from mobilenet.model import MobileNet, build, create_model
    from mobilenet.resolve import ModelConfig, list_models, make_config, make_divisible, resolution
    from mobilenet.weights import load, load_weights, save


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"mobilenet.{name}")
    else:
        raise AttributeError(f"module 'mobilenet' has no attribute {name!r}")
    globals()[name] = value  # once: later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
