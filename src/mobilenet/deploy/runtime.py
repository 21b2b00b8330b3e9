"""Running exported models: in ONNX Runtime (`OnnxModel`) or OpenVINO (`OpenVinoModel`), each with the file's own
metadata, checked against its graph."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from mobilenet._io import InputError
from mobilenet.deploy.onnx import load_onnx, read_metadata
from mobilenet.metadata import CONFIG_KEY, RUNTIME_KEY, input_spec, stored_config


def _dim(value: object) -> int | None:
    """A static dimension of an ONNX Runtime shape, or None for a symbolic one."""
    return value if isinstance(value, int) and value > 0 else None


def _model_file(path: str | os.PathLike, threads: int | None) -> tuple[Path, dict[str, str]]:
    """The path of an ONNX file to run with `threads`, and its metadata; errors name what is wrong."""
    if threads is not None and threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    return path, read_metadata(path)


class OnnxModel:
    """An ONNX file in ONNX Runtime: call it on a normalized float batch (N, C, H, W) to get logits.

    Raises InputError, naming the file, when it is not an image classifier (one float input of shape (N, C, H, W),
    one output of shape (N, classes)) or when its metadata does not fit its graph.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path, self.metadata = _model_file(path, threads)
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


def private_operators(path: str | os.PathLike, metadata: dict[str, str]) -> list[str]:
    """The operators of the ONNX file `path` that only one runtime has (com.microsoft's QLinearAdd, ...), from its
    metadata's `runtime` entry and its graph (which also catches files written before that entry existed)."""
    proto = load_onnx(path)
    found = sorted({f"{node.domain}.{node.op_type}" for node in proto.graph.node if node.domain not in ("", "ai.onnx")})
    if not found and metadata.get(RUNTIME_KEY, "") not in ("", "openvino"):
        found = [f"{metadata[RUNTIME_KEY]} operators (its metadata)"]
    return found


class OpenVinoModel:
    """An ONNX file compiled by OpenVINO for this CPU: call it on a normalized float batch (N, C, H, W) for logits.

    `precision`: OpenVINO's inference precision for float operations ("f32", or "bf16" where the CPU has it; None:
    OpenVINO's default for the CPU). It compiles for each batch size it is called with (OpenVINO measured 12-37%
    slower on the exported dynamic batch than on the shape in use). Raises InputError, naming the file, for a file
    that needs another runtime's private operators: OpenVINO would load it and return wrong answers.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, precision: str | None = "f32") -> None:
        import openvino

        self.path, self.metadata = _model_file(path, threads)
        private = private_operators(self.path, self.metadata)
        if private:
            raise InputError(
                f"{self.path} needs ONNX Runtime's private operators ({', '.join(private)}), which OpenVINO runs "
                f"differently (its QLinearAdd wraps where ONNX Runtime's saturates: wrong answers, no error); run it "
                f"with --backend onnx-int8, or quantize with --portable for OpenVINO"
            )
        self.core = openvino.Core()
        try:
            self.model = self.core.read_model(str(self.path))
        except Exception as error:  # OpenVINO raises its own exception classes
            raise InputError(f"{self.path}: OpenVINO cannot read it ({str(error).splitlines()[0]})") from None
        inputs, outputs = self.model.inputs, self.model.outputs
        if len(inputs) != 1 or inputs[0].partial_shape.rank.get_length() != 4 or len(outputs) < 1:
            raise InputError(f"{self.path} is not an image classifier: one (N, C, H, W) input and a logits output")
        dims = [d.get_length() if d.is_static else None for d in inputs[0].partial_shape]
        _, channels, height, width = dims
        if channels is None or height != width:
            raise InputError(f"{self.path}: input of {inputs[0].partial_shape}: square images, fixed channels only")
        out = outputs[0].partial_shape
        classes = out[1].get_length() if out.rank.get_length() == 2 and out[1].is_static else None
        self.spec = input_spec(self.path, self.metadata, channels, classes, height)
        self.input_size, self.in_chans = self.spec.size, self.spec.channels
        self.labels = list(self.spec.labels) if self.spec.labels else None
        self.num_classes = classes or (len(self.labels) if self.labels else None)
        self.config = stored_config(self.path, self.metadata) if CONFIG_KEY in self.metadata else None
        self.properties: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self.properties["INFERENCE_NUM_THREADS"] = threads
        if precision:
            self.properties["INFERENCE_PRECISION_HINT"] = precision
        self._requests: dict[int, object] = {}

    def request(self, batch: int):
        """The infer request of the model compiled for `batch` images (compiled on first use)."""
        if batch not in self._requests:
            model = self.model.clone()
            model.reshape([batch, self.in_chans, self.input_size, self.input_size])
            compiled = self.core.compile_model(model, "CPU", self.properties)
            self._requests[batch] = compiled.create_infer_request()
        return self._requests[batch]

    def tensor(self, array: np.ndarray):
        """`array` as an OpenVINO tensor sharing its memory (to feed a request without a copy per call)."""
        import openvino

        return openvino.Tensor(np.ascontiguousarray(array, np.float32))

    def run(self, array: np.ndarray) -> np.ndarray:
        request = self.request(array.shape[0])
        return request.infer([np.ascontiguousarray(array, np.float32)])[0]

    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        array = x.numpy() if isinstance(x, torch.Tensor) else x
        return torch.from_numpy(np.array(self.run(array)))
