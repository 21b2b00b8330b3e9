"""One metadata schema for every file the project writes (checkpoints and ONNX files alike), written by
`file_metadata` and read back by `input_spec` and `stored_config`:

    mobilenet.config  the model's `ModelConfig`, as JSON (`ModelConfig.to_dict`)
    input_size        the input side in pixels        in_chans  the input channels
    mean, std         per-channel normalization, JSON lists
    labels            the outputs' names, a JSON list (absent when the file names none)
    runtime           absent, or the one runtime whose private operators the file needs (e.g. "onnxruntime")
    ...               anything else the writer adds (dataset, epoch, quantization)

What a file says is checked against what it holds before anything is allocated from it: a file's metadata is input
like any other, and a file claiming a 100,000-pixel input or ten labels for a thousand outputs is refused with a
message naming the file. Checkpoints written before the schema was one spelled `classes` and `image_size`; both are
still read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from mobilenet._io import InputError
from mobilenet.data.catalog import IMAGENET_MEAN, IMAGENET_STD
from mobilenet.resolve import ModelConfig

MAX_INPUT_SIZE = 4096  # pixels a side: 16x the largest published resolution, far above any MobileNet use
CONFIG_KEY = "mobilenet.config"
RUNTIME_KEY = "runtime"


@dataclass(frozen=True)
class InputSpec:
    """How to feed a model file: images of `size` x `size` with `channels` channels, normalized by `mean` and `std`,
    and the names of its outputs (None: the file names none)."""

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...] | None

    @classmethod
    def default(cls, channels: int, size: int) -> InputSpec:
        """ImageNet's normalization for 3 channels, (0.5, 0.5) otherwise; no labels."""
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels,) * 2
        return cls(size, channels, tuple(mean), tuple(std), None)


def file_metadata(config: ModelConfig, spec: InputSpec, **extra: str) -> dict[str, str]:
    """The metadata of a model file, in the one schema above: `config`, how to feed it (`spec`) and `extra` entries."""
    if spec.channels != config.in_chans:
        raise InputError(f"the input spec has {spec.channels} channel(s), the model takes {config.in_chans}")
    if spec.labels is not None and len(spec.labels) != config.num_classes:
        raise InputError(f"{len(spec.labels)} labels for a model of {config.num_classes} outputs")
    header = {
        CONFIG_KEY: json.dumps(config.to_dict()),
        "input_size": str(spec.size),
        "in_chans": str(spec.channels),
        "mean": json.dumps(list(spec.mean)),
        "std": json.dumps(list(spec.std)),
    }
    if spec.labels is not None:
        header["labels"] = json.dumps(list(spec.labels))
    return header | extra


def stored_config(source: str | os.PathLike, metadata: Mapping[str, str]) -> ModelConfig:
    """The `ModelConfig` a file's metadata holds. Raises InputError naming the file when there is none or it is not
    valid (the caller checks it against the file's tensors or graph)."""
    if CONFIG_KEY not in metadata:
        raise InputError(
            f"{source} holds no mobilenet config, so it was not written by mobilenet; for torchvision weights "
            "use mobilenet.convert.from_torchvision (or `mobilenet convert`)"
        )
    try:
        data = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as error:
        raise InputError(f"{source}: its {CONFIG_KEY} metadata is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{source}: its {CONFIG_KEY} metadata is not a JSON object")
    try:
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise InputError(f"{source}: its stored config is not valid ({error})") from None


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
    default_mean, default_std = InputSpec.default(channels, 1).mean, InputSpec.default(channels, 1).std
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
