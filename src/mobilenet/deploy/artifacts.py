"""The file each backend runs, built from a model, and the runner that loads it (`mobilenet.deploy.backends` names
them). One directory holds one model's artifacts, each written once and shared: the fp32 ONNX file serves ONNX
Runtime fp32 and OpenVINO fp32/bf16, the portable int8 file ONNX Runtime and OpenVINO int8."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mobilenet._io import InputError
from mobilenet.data.catalog import DatasetInfo
from mobilenet.deploy.backends import get_backend
from mobilenet.deploy.onnx import export_checkpoint, export_onnx
from mobilenet.deploy.quantize import lower_portable, quantize_by
from mobilenet.deploy.recipe import QuantizeRecipe
from mobilenet.deploy.runtime import OnnxModel, OpenVinoModel
from mobilenet.model import MobileNet
from mobilenet.weights import save

if TYPE_CHECKING:
    from mobilenet.data.datasets import ImageDataset

FILES = {
    "checkpoint": "model.safetensors",
    "onnx": "model.onnx",
    "onnx-int8": "model.int8.onnx",
    "onnx-int8-portable": "model.int8-portable.onnx",
}


class RandomCalibration:
    """Random images in the model's input shape, standing in for a dataset where only speed or size is measured
    (the int8 file's size and speed do not depend on its scales)."""

    def __init__(self, chans: int, size: int, n: int = 4) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, chans, size, size), dtype=torch.uint8, generator=generator)
        self.info = DatasetInfo("random images", (), chans, size, (0.5,) * chans, (0.25,) * chans, False, "", "")

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices: torch.Tensor, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[indices], torch.zeros(len(indices), dtype=torch.long)


def build_artifact(
    model: MobileNet,
    backend: str,
    resolution: int,
    directory: str | os.PathLike,
    calibration: ImageDataset | None = None,
    recipe: QuantizeRecipe | None = None,
    checkpoint: str | os.PathLike | None = None,
    exporter: str = "dynamo",
) -> Path:
    """The file `backend` runs for `model` at `resolution`, in `directory` (reused when already there). int8 files
    are calibrated on `calibration` (a dataset's training split; default: 4 random images, for speed and size) by
    `recipe` (default: the library's, with as many samples as the calibration set has). With `checkpoint` (the file
    `model` was loaded from), its labels, normalization and dataset travel into the ONNX files' metadata.
    `exporter`: `export_onnx`'s (the fast "torchscript" one where only speed and size are measured)."""
    artifact = get_backend(backend).artifact
    directory = Path(directory)
    path = directory / FILES[artifact]
    if path.is_file():
        return path
    if artifact == "checkpoint":
        return save(model, path)
    fp32 = directory / FILES["onnx"]
    if not fp32.is_file() and checkpoint is not None:
        export_checkpoint(checkpoint, fp32, resolution)
    elif not fp32.is_file():
        export_onnx(model, fp32, resolution, exporter=exporter)
    if artifact == "onnx":
        return fp32
    calibration = calibration or RandomCalibration(model.config.in_chans, resolution)
    recipe = recipe or QuantizeRecipe(samples=min(QuantizeRecipe.samples, len(calibration)))
    portable = directory / FILES["onnx-int8-portable"]
    if not portable.is_file():
        quantize_by(fp32, portable, calibration, replace(recipe, portable=True))
    if artifact == "onnx-int8-portable":
        return portable
    return lower_portable(portable, path)  # the same quantization, h-swish lowered: no second calibration


def load_artifact(path: str | os.PathLike, backend: str, threads: int | None = None) -> OnnxModel | OpenVinoModel:
    """An ONNX file loaded into `backend`'s runtime at its precision: call it on a normalized batch for logits."""
    spec = get_backend(backend)
    if spec.runtime == "onnxruntime":
        return OnnxModel(path, threads)
    if spec.runtime == "openvino":
        return OpenVinoModel(path, threads, precision="bf16" if spec.precision == "bf16" else "f32")
    raise InputError(f"backend {backend!r} runs checkpoints, not ONNX files; use onnx or an openvino backend")
