"""Closed-form costs, each with its source, and the analytic cost of a resolved architecture.

Notation as in the V1 paper: D_K kernel side, M input channels, N output channels, D_F output feature-map side.
Costs are multiply-adds (macs); parameters exclude biases unless a function says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from mobilenet.resolve import Architecture, Layer, check_resolution, conv_output_size


def standard_conv_macs(kernel: int, c_in: int, c_out: int, out_side: int) -> int:
    """V1 paper, eq. (1): D_K * D_K * M * N * D_F * D_F."""
    return kernel * kernel * c_in * c_out * out_side * out_side


def standard_conv_params(kernel: int, c_in: int, c_out: int) -> int:
    """V1 paper, section 3.1: D_K * D_K * M * N weights."""
    return kernel * kernel * c_in * c_out


def depthwise_conv_macs(kernel: int, channels: int, out_side: int) -> int:
    """V1 paper, eq. (3): D_K * D_K * M * D_F * D_F."""
    return kernel * kernel * channels * out_side * out_side


def separable_conv_macs(kernel: int, c_in: int, c_out: int, out_side: int) -> int:
    """V1 paper, eq. (4): D_K * D_K * M * D_F * D_F + M * N * D_F * D_F."""
    return depthwise_conv_macs(kernel, c_in, out_side) + c_in * c_out * out_side * out_side


def separable_conv_params(kernel: int, c_in: int, c_out: int) -> int:
    """D_K * D_K * M depthwise weights + M * N pointwise weights."""
    return kernel * kernel * c_in + c_in * c_out


def reduction_factor(kernel: int, c_out: int) -> float:
    """V1 paper, eq. (5) inverted: standard / separable cost = D_K^2 * N / (D_K^2 + N); 8-9x for 3x3 kernels."""
    return kernel * kernel * c_out / (kernel * kernel + c_out)


def width_resolution_scaling(alpha: float, rho: float) -> float:
    """V1 paper, eqs. (6)-(7): cost scales by alpha^2 * rho^2 (exactly, before rounding channels to integers)."""
    return alpha * alpha * rho * rho


def inverted_residual_macs_per_pixel(c_in: int, c_out: int, t: float, kernel: int = 3, stride: int = 1) -> float:
    """V2 paper, section 3.3: t*C_in^2 + t*C_in*(K^2 + C_out)/s^2 per input pixel (expand at the input
    resolution; depthwise and project at the output one). Exact when the input side is divisible by the stride.
    Assumes an expansion layer: a t = 1 block has none, so its cost is the formula minus t*C_in^2."""
    return t * c_in * c_in + t * c_in * (kernel * kernel + c_out) / (stride * stride)


def receptive_field(kernels: list[int], strides: list[int]) -> int:
    """R_L = 1 + sum_l (K_l - 1) * prod_{i<l} s_i, for a chain of convolutions (Araujo et al., Distill 2019)."""
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field += (kernel - 1) * jump
        jump *= stride
    return field


def quantization_step(low: float, high: float, bits: int = 8) -> float:
    """Δ of a uniform quantizer covering [low, high] with 2^bits levels."""
    return (high - low) / (2**bits - 1)


def quantization_mse(step: float) -> float:
    """Mean squared error of uniform quantization with step Δ, for a signal spread over many steps: Δ^2 / 12."""
    return step * step / 12


@dataclass(frozen=True)
class AnalyticCost:
    macs: int
    params_conv_linear: int
    params_bn: int
    by_kind: dict[str, int]  # macs per kind

    @property
    def params(self) -> int:
        return self.params_conv_linear + self.params_bn


def analytic_cost(arch: Architecture, resolution: int) -> AnalyticCost:
    """The cost of `arch` at `resolution`, from its `Layer` rows and the closed forms alone (no torch)."""
    check_resolution(arch, resolution)
    macs: dict[str, int] = {"standard": 0, "depthwise": 0, "pointwise": 0, "squeeze_excite": 0, "linear": 0}
    params = bn = 0
    side = resolution
    for layer in arch.layers:
        out = conv_output_size(side, layer.kernel, layer.stride) if layer.op != "linear" else 1
        layer_macs, layer_params, layer_bn = _layer_cost(layer, side, out)
        for kind, value in layer_macs.items():
            macs[kind] += value
        params += layer_params
        bn += layer_bn
        side = out
    return AnalyticCost(sum(macs.values()), params, bn, macs)


def _layer_cost(layer: Layer, side: int, out: int) -> tuple[dict[str, int], int, int]:
    """(macs per kind, conv/linear params incl. biases, BN params) of one row; `side` in, `out` out."""
    k, c_in, c_out, mid = layer.kernel, layer.in_ch, layer.out_ch, layer.mid_ch
    if layer.op == "linear":
        return {"linear": c_in * c_out}, c_in * c_out + c_out, 0
    if layer.op == "conv":
        kind = "pointwise" if k == 1 else "standard"
        return {kind: standard_conv_macs(k, c_in, c_out, out)}, standard_conv_params(k, c_in, c_out), 2 * c_out
    if layer.op == "separable":
        macs = {
            "depthwise": depthwise_conv_macs(k, c_in, out),
            "pointwise": standard_conv_macs(1, c_in, c_out, out),
        }
        return macs, separable_conv_params(k, c_in, c_out), 2 * (c_in + c_out)
    macs = {"depthwise": depthwise_conv_macs(k, mid, out), "pointwise": standard_conv_macs(1, mid, c_out, out)}
    params, bn = k * k * mid + mid * c_out, 2 * (mid + c_out)
    if layer.has_expand:
        macs["pointwise"] += standard_conv_macs(1, c_in, mid, side)
        params, bn = params + c_in * mid, bn + 2 * mid
    if layer.se_ch:
        macs["squeeze_excite"] = 2 * mid * layer.se_ch  # two 1x1 convs on the pooled 1x1 map
        params += 2 * mid * layer.se_ch + mid + layer.se_ch
    return macs, params, bn
