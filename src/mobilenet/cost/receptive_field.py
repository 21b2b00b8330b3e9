"""Receptive field of every layer of a resolved architecture, in input pixels.

Squeeze-excite's global pooling makes each V3 output depend on the whole input; the figures here are those of the
convolution path (stem, depthwise and 1x1 convs), which is what spatial detail a feature can resolve.
"""

from __future__ import annotations

from mobilenet.resolve import Architecture


def receptive_field(arch: Architecture) -> list[tuple[str, int, int]]:
    """(layer name, receptive field, jump) for the stem, every block and the head, in order.

    The jump is the distance in input pixels between neighbouring outputs (the product of the strides so far).
    R_L = 1 + sum_l (K_l - 1) * prod_{i<l} s_i over the spatial convs (1x1 convs add nothing).
    """
    rows, field, jump = [], 1, 1
    for layer in (arch.stem, *arch.blocks, *([arch.head] if arch.head else [])):
        field += (layer.kernel - 1) * jump
        jump *= layer.stride
        rows.append((layer.name, field, jump))
    return rows
