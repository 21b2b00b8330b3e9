"""Deployment: BN folding, verified ONNX export, int8 quantization with ONNX Runtime, prediction on image files.

`mobilenet.deploy.recipe` (the quantization recipe and prediction defaults; no torch) is what the CLI reads; the rest
imports on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mobilenet._lazy import lazy_exports
from mobilenet.deploy.recipe import QuantizeRecipe

_EXPORTS = {
    "fuse": "mobilenet.deploy.folding",
    "ExportReport": "mobilenet.deploy.onnx",
    "export_checkpoint": "mobilenet.deploy.onnx",
    "export_onnx": "mobilenet.deploy.onnx",
    "read_metadata": "mobilenet.deploy.onnx",
    "Classifier": "mobilenet.deploy.predictor",
    "ModelFile": "mobilenet.deploy.predictor",
    "Prediction": "mobilenet.deploy.predictor",
    "evaluate_file": "mobilenet.deploy.predictor",
    "open_model": "mobilenet.deploy.predictor",
    "quantize_onnx": "mobilenet.deploy.quantize",
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

__all__ = sorted(["QuantizeRecipe", *_EXPORTS])  # with the lazy names

if TYPE_CHECKING:
    from mobilenet.deploy.folding import fuse
    from mobilenet.deploy.onnx import ExportReport, export_checkpoint, export_onnx, read_metadata
    from mobilenet.deploy.predictor import Classifier, ModelFile, Prediction, evaluate_file, open_model
    from mobilenet.deploy.quantize import quantize_onnx
