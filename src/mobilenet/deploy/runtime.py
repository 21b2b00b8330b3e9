"""Running exported models: an ONNX Runtime session with the file's own metadata, checked against its graph."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from mobilenet._io import InputError
from mobilenet.deploy.onnx import read_metadata
from mobilenet.metadata import CONFIG_KEY, input_spec, stored_config


def _dim(value: object) -> int | None:
    """A static dimension of an ONNX Runtime shape, or None for a symbolic one."""
    return value if isinstance(value, int) and value > 0 else None


class OnnxModel:
    """An ONNX file in ONNX Runtime: call it on a normalized float batch (N, C, H, W) to get logits.

    Raises InputError, naming the file, when it is not an image classifier (one float input of shape (N, C, H, W),
    one output of shape (N, classes)) or when its metadata does not fit its graph.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        if threads is not None and threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such model file: {self.path}")
        self.metadata = read_metadata(self.path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own Fail/InvalidGraph/NotImplemented classes
            raise InputError(f"{self.path}: ONNX Runtime cannot load it ({str(error).splitlines()[0]})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) < 1 or len(outputs[0].shape) != 2:
            shapes = [i.shape for i in inputs], [o.shape for o in outputs]
            raise InputError(
                f"{self.path} is not an image classifier: inputs {shapes[0]}, outputs {shapes[1]} "
                f"(expected one (N, C, H, W) input and an (N, classes) output)"
            )
        _, channels, height, width = (_dim(d) for d in inputs[0].shape)
        if height != width:
            raise InputError(f"{self.path}: input of {inputs[0].shape}: square images only")
        if channels is None:
            raise InputError(f"{self.path}: input of {inputs[0].shape}: its channel count is not fixed")
        self.input_name = inputs[0].name
        self.spec = input_spec(self.path, self.metadata, channels, _dim(outputs[0].shape[1]), height)
        self.input_size, self.in_chans = self.spec.size, self.spec.channels
        self.labels = list(self.spec.labels) if self.spec.labels else None
        self.num_classes = _dim(outputs[0].shape[1]) or (len(self.labels) if self.labels else None)
        # the network the file was exported from (None for a file another tool wrote), checked against the graph
        self.config = stored_config(self.path, self.metadata) if CONFIG_KEY in self.metadata else None
        graph = (channels, self.num_classes or (self.config and self.config.num_classes))
        if self.config is not None and (self.config.in_chans, self.config.num_classes) != graph:
            raise InputError(
                f"{self.path}: its stored config has {self.config.in_chans} input channel(s) and "
                f"{self.config.num_classes} outputs, but its graph {channels} and {self.num_classes}"
            )

    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        array = x.numpy() if isinstance(x, torch.Tensor) else x
        return torch.from_numpy(self.session.run(None, {self.input_name: np.ascontiguousarray(array, np.float32)})[0])
