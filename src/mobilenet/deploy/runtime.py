"""Running exported models: an ONNX Runtime session with the file's own metadata, and a latency probe."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from mobilenet.deploy.onnx import read_metadata


class OnnxModel:
    """An ONNX file in ONNX Runtime: call it on a normalized float batch (N, C, H, W) to get logits."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.metadata = read_metadata(self.path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = int(self.metadata.get("input_size", 224))
        self.in_chans = int(self.metadata.get("in_chans", 3))
        self.labels = json.loads(self.metadata["labels"]) if "labels" in self.metadata else None
        self.mean = tuple(json.loads(self.metadata["mean"])) if "mean" in self.metadata else None
        self.std = tuple(json.loads(self.metadata["std"])) if "std" in self.metadata else None

    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        array = x.numpy() if isinstance(x, torch.Tensor) else x
        return torch.from_numpy(self.session.run(None, {self.input_name: np.ascontiguousarray(array, np.float32)})[0])
