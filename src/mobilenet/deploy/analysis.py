"""Quantization analysis, measured: weight quantization error against the uniform-noise model Δ²/12, and activation
ranges per layer."""

from __future__ import annotations

from dataclasses import dataclass

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
