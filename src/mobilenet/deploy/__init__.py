"""Deployment: BN folding, verified ONNX export, int8 quantization with ONNX Runtime, prediction on image files."""

from mobilenet.deploy.fuse import fuse
from mobilenet.deploy.onnx import ExportReport, export_onnx, read_metadata
from mobilenet.deploy.predictor import Classifier, Prediction

__all__ = ["Classifier", "ExportReport", "Prediction", "export_onnx", "fuse", "read_metadata"]
