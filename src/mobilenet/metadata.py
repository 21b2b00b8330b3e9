"""What a model file says about its input and output (labels, input size, channels, normalization), read by one
function from a checkpoint's or an ONNX file's metadata, and checked against what the file holds before anything is
allocated from it: a file's metadata is input like any other, and a file claiming a 100,000-pixel input or ten
labels for a thousand outputs is refused with a message naming the file.

Both spellings the project has written are read: `labels` (ONNX files) and `classes` (checkpoints); `input_size`
(ONNX files) and `image_size` (checkpoints).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from mobilenet._io import InputError
from mobilenet.data.datasets import IMAGENET_MEAN, IMAGENET_STD

MAX_INPUT_SIZE = 4096  # pixels a side: 16x the largest published resolution, far above any MobileNet use


@dataclass(frozen=True)
class InputSpec:
    """How to feed a model file: images of `size` x `size` with `channels` channels, normalized by `mean` and `std`,
    and the names of its outputs (None: the file names none)."""

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...] | None


def _numbers(source: str, key: str, text: str, channels: int) -> tuple[float, ...]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise InputError(f"{source}: metadata {key!r} must be a JSON list of numbers, got {text[:80]!r}")
    if len(values) != channels:
        raise InputError(f"{source}: metadata {key!r} has {len(values)} value(s) for a {channels}-channel input")
    if not all(math.isfinite(v) for v in values) or (key == "std" and not all(v > 0 for v in values)):
        raise InputError(f"{source}: metadata {key!r} = {values} is not usable (finite values, std > 0)")
    return tuple(float(v) for v in values)


def input_spec(
    source: str | os.PathLike,
    metadata: Mapping[str, str],
    channels: int,
    num_classes: int | None,
    size: int | None = None,
    default_size: int = 224,
) -> InputSpec:
    """The `InputSpec` of a model file from its metadata, checked against what the file holds.

    Args:
        source: the file, for messages.
        channels: the input channels the network has.
        num_classes: the outputs the network has (None where the file does not say, e.g. a dynamic ONNX output).
        size: the input side the file's graph fixes, if it fixes one; the metadata must agree with it.
        default_size: the side to use when neither the metadata nor the graph gives one.

    Raises:
        InputError: naming the file and the metadata entry that does not fit.
    """
    source = str(source)
    stated = metadata.get("input_size", metadata.get("image_size"))
    if stated is not None:
        try:
            stated_size = int(stated)
        except ValueError:
            raise InputError(f"{source}: metadata input size {stated!r} is not an integer") from None
        if not 1 <= stated_size <= MAX_INPUT_SIZE:
            raise InputError(f"{source}: metadata input size {stated_size} is outside 1..{MAX_INPUT_SIZE}")
        if size is not None and stated_size != size:
            raise InputError(f"{source}: metadata says {stated_size} px, but the graph's input is {size} px")
        size = stated_size
    if "in_chans" in metadata and metadata["in_chans"] != str(channels):
        raise InputError(f"{source}: metadata in_chans={metadata['in_chans']!r}, but the network takes {channels}")
    default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels,) * 2
    mean = _numbers(source, "mean", metadata["mean"], channels) if "mean" in metadata else default_mean
    std = _numbers(source, "std", metadata["std"], channels) if "std" in metadata else default_std
    labels = None
    text = metadata.get("labels", metadata.get("classes"))
    if text:
        try:
            labels = json.loads(text)
        except json.JSONDecodeError:
            labels = None
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise InputError(f"{source}: metadata labels must be a JSON list of strings, got {text[:80]!r}")
        if num_classes is not None and len(labels) != num_classes:
            raise InputError(f"{source}: metadata names {len(labels)} labels for {num_classes} outputs")
        labels = tuple(labels)
    return InputSpec(size or default_size, channels, tuple(mean), tuple(std), labels)
