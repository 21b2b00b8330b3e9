"""Quantization analysis, measured: weight quantization error against the uniform-noise model Δ²/12, and activation
ranges per layer."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mobilenet.cost.formulas import quantization_mse


@dataclass(frozen=True)
class WeightError:
    name: str
    kind: str  # "depthwise", "conv", "linear"
    channels: int
    measured_mse: float  # mean over weights of (q(w) - w)^2, symmetric per-channel int8 as ONNX Runtime does it
    model_mse: float  # mean over channels of Δ_c^2 / 12, Δ_c = max|w_c| / 127

    @property
    def ratio(self) -> float:
        """measured / model: 1 where weights spread over many steps; below 1 where many round to exactly 0."""
        return self.measured_mse / self.model_mse if self.model_mse else float("nan")


def weight_quantization_error(model: nn.Module, bits: int = 8) -> list[WeightError]:
    """Per conv and linear layer of `model` (fuse BN first: those are the weights that get quantized)."""
    levels = 2 ** (bits - 1) - 1  # 127: symmetric signed, as ONNX Runtime quantizes weights
    rows = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        weight = module.weight.detach().float().flatten(1)  # one row per output channel
        step = weight.abs().amax(1).clamp(min=1e-12) / levels
        quantized = torch.round(weight / step[:, None]).clamp(-levels, levels) * step[:, None]
        kind = "linear" if isinstance(module, nn.Linear) else "depthwise" if module.groups > 1 else "conv"
        rows.append(
            WeightError(
                name=name,
                kind=kind,
                channels=weight.shape[0],
                measured_mse=(quantized - weight).pow(2).mean().item(),
                model_mse=sum(quantization_mse(s) for s in step.tolist()) / len(step),
            )
        )
    return rows


@torch.no_grad()
def activation_ranges(model: nn.Module, images: torch.Tensor) -> dict[str, tuple[float, float, float]]:
    """(min, max, 99.99th percentile of |x|) of each activation output (and each linear projection) on `images`:
    ReLU6 bounds ranges to [0, 6]; linear bottlenecks and h-swish are unbounded."""
    ranges: dict[str, tuple[float, float, float]] = {}

    def record(name: str):
        def hook(module, inputs, output):
            flat = output.detach().float().flatten()
            sample = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
            ranges[name] = (flat.min().item(), flat.max().item(), sample.abs().quantile(0.9999).item())

        return hook

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU | nn.ReLU6 | nn.Hardswish) or name.endswith("project"):
            handles.append(module.register_forward_hook(record(name)))
    try:
        model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    return ranges


@dataclass(frozen=True)
class ActivationError:
    name: str  # the tensor's name in the float graph
    op: str  # the float graph's node that writes it
    sqnr_db: float  # the int8 graph's tensor against the float graph's: the error accumulated up to here


def activation_sqnr(
    fp32_path: str | os.PathLike, int8_path: str | os.PathLike, batches: Iterable[torch.Tensor | np.ndarray]
) -> list[ActivationError]:
    """Signal-to-quantization-noise ratio (dB, 20 log10 |x| / |x - x_q|) of every quantized activation of an int8
    QDQ model against the same tensor of its fp32 model, in graph order, on `batches` (arrays fed to the input, e.g.
    normalized training images): the error accumulated up to that tensor, so a layer whose SQNR drops far below its
    input's is where int8 hurts. Uses ONNX Runtime's own quantization debugger
    (`onnxruntime.quantization.qdq_loss_debug`). Its per-tensor "qdq_err" is not reported: where the quantizer folds
    a Clip/Relu into the quantization, it compares the unclipped with the clipped tensor. Pass a file quantized with
    `portable=True`: the debugger finds a tensor through its DequantizeLinear, and lowered activations have none."""
    import tempfile
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    batches = [b.numpy() if isinstance(b, torch.Tensor) else b for b in batches]
    float_graph = onnx.load(str(fp32_path)).graph
    input_name = float_graph.input[0].name
    writers = {output: node.op_type for node in float_graph.node for output in node.output}

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self):
            batch = next(self.items, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory() as tmp:
        augmented = {}
        for tag, path in (("float", fp32_path), ("qdq", int8_path)):
            augmented[tag] = str(Path(tmp) / f"{tag}.onnx")
            modify_model_output_intermediate_tensors(str(path), augmented[tag], save_as_external_data=False)
        float_acts = collect_activations(augmented["float"], Reader())
        qdq_acts = collect_activations(augmented["qdq"], Reader())
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    return [
        ActivationError(name, writers[name], errors[name]["xmodel_err"])
        for name in writers
        if "xmodel_err" in errors.get(name, {})
    ]
