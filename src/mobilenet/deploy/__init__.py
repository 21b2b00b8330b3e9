"""Deployment: BN folding, verified ONNX export (and, with the deploy issue's remaining work, int8 quantization)."""

from mobilenet.deploy.fuse import fuse
from mobilenet.deploy.onnx import ExportReport, export_onnx, read_metadata

__all__ = ["ExportReport", "export_onnx", "fuse", "read_metadata"]
