"""Static int8 quantization with ONNX Runtime's tools: QDQ format, per-channel int8 weights, activations calibrated
on real training images; then the activations ONNX Runtime has no int8 kernel for (h-swish, h-sigmoid) lowered to
its int8 contrib operators (`mobilenet.deploy.graph`), unless the file must stay standard ONNX (`portable`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mobilenet._io import InputError, atomic_write, check_output
from mobilenet.data.transforms import normalize
from mobilenet.deploy.graph import lower_hard_activations, rewrite_global_average_pools
from mobilenet.deploy.onnx import load_onnx, set_metadata
from mobilenet.deploy.recipe import QuantizeRecipe
from mobilenet.deploy.runtime import OnnxModel
from mobilenet.metadata import RUNTIME_KEY

if TYPE_CHECKING:
    from mobilenet.data.datasets import ImageDataset

# Operators only a quantized graph holds: a file with any of them is not an fp32 model to quantize.
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "QLinearAdd",
        "QLinearMul",
        "QLinearGlobalAveragePool",
        "ConvInteger",
        "MatMulInteger",
    }
)


def quantize_onnx(
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: ImageDataset,
    samples: int = QuantizeRecipe.samples,
    method: str = QuantizeRecipe.method,
    per_channel: bool = QuantizeRecipe.per_channel,
    activations: str = QuantizeRecipe.activations,
    exclude: tuple[str, ...] = QuantizeRecipe.exclude,
    batch_size: int = 32,
    seed: int = 0,
    portable: bool = QuantizeRecipe.portable,
    float_stem: bool = QuantizeRecipe.float_stem,
) -> Path:
    """Quantize the fp32 ONNX file `model_path` to `out_path`, calibrated on `samples` images of `calibration`.

    Args:
        calibration: a dataset (`mobilenet.data.load_dataset(..., "train")`): calibrate on training images, never on
            the test set.
        method: "minmax", "entropy" or "percentile" (ONNX Runtime's calibrators).
        activations: "uint8" (fast on x86 CPUs: the int8 kernels expect u8 x s8) or "int8".
        exclude: node names to keep in float (see the per-layer sensitivity analysis).
        portable: standard ONNX operators only (QDQ around every quantized op): runs in any ONNX runtime, but in ONNX
            Runtime h-swish and h-sigmoid then run in float between DequantizeLinear and QuantizeLinear. By default
            they become ONNX Runtime's QLinearAdd/QLinearMul (com.microsoft), which other runtimes may lack.
        float_stem: keep the convolutions that read the image in float. ONNX Runtime's int8 kernel for a convolution
            with 3 input channels is slower than its fp32 one (0.57-0.84x in `benchmarks/profile_ort.py`, see
            docs/deploy.md); keeping it float costs a few hundred float weights.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    QuantizeRecipe(samples, method, per_channel, activations, tuple(exclude), portable, float_stem)  # checks them
    check_output(out_path)
    source = load_onnx(model_path)
    metadata = {entry.key: entry.value for entry in source.metadata_props}
    quantized = sorted({n.op_type for n in source.graph.node if n.op_type in QUANTIZED_OPS})
    if quantized:
        raise InputError(
            f"{model_path} is already quantized (it holds {', '.join(quantized)}); quantize the fp32 "
            f"file that `mobilenet export` wrote"
        )
    if not any(n.op_type == "Conv" for n in source.graph.node):
        raise InputError(f"{model_path} has no convolution: not a MobileNet exported by `mobilenet export`")
    spec = OnnxModel(model_path).spec  # the metadata, checked against the graph
    size, channels = spec.size, spec.channels
    if channels != calibration.info.channels:
        raise InputError(
            f"{model_path} takes {channels} channel(s); the calibration images have {calibration.info.channels}"
        )
    order = torch.randperm(len(calibration), generator=torch.Generator().manual_seed(seed))[:samples]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.start = 0

        def get_next(self):
            if self.start >= len(order):
                return None
            images, _ = calibration.batch(order[self.start : self.start + batch_size], size)
            self.start += batch_size
            return {"input": normalize(images, calibration.info.mean, calibration.info.std).numpy().astype(np.float32)}

    calibrators = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        if rewrite_global_average_pools(source):  # files exported before export_onnx wrote GlobalAveragePool itself
            model_path = Path(tmp) / "pooled.onnx"
            onnx.save(source, str(model_path))
        # ORT's pre-process optimizer splits HardSwish into HardSigmoid + Mul, which quantizes into a float
        # HardSigmoid island (DequantizeLinear -> HardSigmoid -> QuantizeLinear) plus a QLinearMul: one more pass over
        # every h-swish activation than keeping HardSwish whole (V3-Small at 224 px, 2 threads: 2.51 -> 2.26 ms).
        has_hswish = any(node.op_type == "HardSwish" for node in source.graph.node)
        quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True, skip_optimization=has_hswish)
        graph = onnx.load(str(prepared)).graph
        stem = [n.name for n in graph.node if n.op_type == "Conv" and n.input[0] == graph.input[0].name and n.name]
        excluded = [*exclude, *(stem if float_stem else [])]

        def write(target: str) -> None:
            quantize_static(
                str(prepared),
                target,
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=calibrators[method],
                nodes_to_exclude=excluded or None,
                calibration_cache_path=None,
            )
            proto = onnx.load(target)
            lowered = 0 if portable else lower_hard_activations(proto)
            private = {RUNTIME_KEY: "onnxruntime"} if lowered else {}  # its QLinearAdd/QLinearMul are ORT's own
            set_metadata(
                proto,
                {
                    **metadata,
                    **private,
                    "quantization": f"int8 QDQ, {method} on {samples} images, "
                    f"per_channel={per_channel}, activations={activations}, "
                    f"{lowered} hard activations lowered to ONNX Runtime int8 ops, "
                    f"{'stem in float' if float_stem and stem else 'stem in int8'}",
                },
            )
            onnx.save(proto, target)
            OnnxModel(target)  # the file must load and be the classifier it was: never move a broken file into place

        return atomic_write(out_path, write)


def lower_portable(portable_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """The ONNX Runtime int8 file from a portable one: the same quantization, with h-swish and h-sigmoid lowered to
    ONNX Runtime's int8 operators (what `quantize_onnx` writes without `portable`, with no second calibration)."""
    import onnx

    check_output(out_path)
    proto = load_onnx(portable_path)
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    if "quantization" not in metadata or RUNTIME_KEY in metadata:
        raise InputError(f"{portable_path} is not a portable int8 file written by `mobilenet quantize --portable`")
    lowered = lower_hard_activations(proto)
    note = metadata["quantization"].replace("0 hard activations lowered", f"{lowered} hard activations lowered")
    del proto.metadata_props[:]
    set_metadata(proto, {**metadata, **({RUNTIME_KEY: "onnxruntime"} if lowered else {}), "quantization": note})

    def write(target: str) -> None:
        onnx.save(proto, target)
        OnnxModel(target)  # the file must load and be the classifier it was

    return atomic_write(out_path, write)


def quantize_by(
    model_path: str | os.PathLike, out_path: str | os.PathLike, calibration: ImageDataset, recipe: QuantizeRecipe
) -> Path:
    """`quantize_onnx` with every choice taken from `recipe`."""
    choices = (recipe.samples, recipe.method, recipe.per_channel, recipe.activations, recipe.exclude)
    return quantize_onnx(
        model_path, out_path, calibration, *choices, portable=recipe.portable, float_stem=recipe.float_stem
    )
