"""ONNX export, checked in ONNX Runtime against PyTorch at export time, with everything a consumer needs to run the
model (labels, input size, channels, normalization, the model config) in the file's metadata."""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mobilenet._io import InputError, InputTypeError, atomic_write, check_output
from mobilenet.deploy.folding import fuse
from mobilenet.deploy.graph import inline_identities, rewrite_global_average_pools
from mobilenet.metadata import InputSpec, file_metadata, input_spec
from mobilenet.model import MobileNet
from mobilenet.resolve import check_resolution
from mobilenet.weights import load_with_metadata

if TYPE_CHECKING:
    import onnx

MIN_OPSET = 17  # h-swish and h-sigmoid need >= 14; 17 gives LayerNormalization-era op versions ORT optimizes well
TOLERANCE = 1e-4  # max |onnx - torch| / max |torch|
EXPORTERS = ("dynamo", "torchscript")


@dataclass(frozen=True)
class ExportReport:
    path: Path
    opset: int
    resolution: int
    max_abs_diff: float
    output_scale: float

    @property
    def relative_diff(self) -> float:
        return self.max_abs_diff / max(self.output_scale, 1e-12)


def export_onnx(
    model: MobileNet,
    path: str | os.PathLike,
    resolution: int,
    metadata: dict[str, str] | None = None,
    opset: int = 18,
    check_batch: int = 2,
    seed: int = 0,
    spec: InputSpec | None = None,
    exporter: str = "dynamo",
) -> ExportReport:
    """Export `model` (BN folded, eval mode) with a dynamic batch dimension; verify it in ONNX Runtime.

    `exporter`: "dynamo" (`torch.export`, PyTorch's supported exporter: what `mobilenet export` writes) or
    "torchscript" (the legacy tracer, deprecated by PyTorch but about 15x faster here: 1.3 s against 20 s for
    mobilenet_v2, which is what makes timing dozens of members affordable). Both write the same runtime graph:
    convolutions with BN folded, the same activations, global pools as GlobalAveragePool (tested).

    The file's metadata is the project's one schema (`mobilenet.metadata.file_metadata`): the model's config, how to
    feed it (`spec`: normalization and labels, at `resolution`; by default ImageNet's normalization and no labels)
    and the `metadata` entries given.

    Raises ValueError if ONNX Runtime's output differs from PyTorch's by more than 1e-4 of the output's scale; the
    file is only moved into place once it has passed.
    """
    if not isinstance(model, MobileNet):
        raise InputTypeError(f"export_onnx() takes a mobilenet.MobileNet, got {type(model).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= max_opset():
        raise InputError(
            f"opset must be >= {MIN_OPSET} (h-swish needs 14) and <= {max_opset()} (the newest the "
            f"installed onnx package knows), got {opset!r}"
        )
    if exporter not in EXPORTERS:
        raise InputError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    check_output(path)
    if model.config.features_only:
        raise InputError("export a classifier: the model was built with features_only=True")
    check_resolution(model.arch, resolution)
    fused = fuse(model).cpu().to(memory_format=torch.contiguous_format)  # channels_last weights pin the batch
    example = torch.zeros(1, model.config.in_chans, resolution, resolution)
    spec = InputSpec.default(model.config.in_chans, resolution) if spec is None else replace(spec, size=resolution)
    header = file_metadata(model.config, spec, **(metadata or {}))

    target = Path(path)
    measured: list[tuple[float, float]] = []

    def write(tmp: str) -> None:
        written = _export(fused, example, opset, tmp, header, exporter)
        if written != opset:
            raise ValueError(f"the exporter wrote opset {written}, not the {opset} asked for; {target} was not written")
        diff, scale = _verify(tmp, fused, model.config.in_chans, resolution, check_batch, seed)
        if not math.isfinite(scale):
            raise InputError(
                f"PyTorch's own output holds NaN or infinite values: the model's weights are broken; "
                f"{target} was not written"
            )
        if not diff <= TOLERANCE * max(scale, 1e-12):  # NaN fails too
            raise InputError(
                f"ONNX Runtime's output differs from PyTorch's by {diff:.3g} (output scale {scale:.3g}), more "
                f"than {TOLERANCE:g} of scale; {target} was not written"
            )
        measured.append((diff, scale))

    atomic_write(target, write)
    diff, scale = measured[0]
    return ExportReport(target, opset, resolution, diff, scale)


def export_checkpoint(
    checkpoint: str | os.PathLike, path: str | os.PathLike, resolution: int | None = None, opset: int = 18
) -> ExportReport:
    """Export a checkpoint written by `mobilenet train` or `mobilenet.save` at `resolution` (default: the size it
    was trained at), carrying its labels, normalization and dataset into the ONNX file's metadata."""
    check_output(path)
    model, stored = load_with_metadata(checkpoint)
    config = model.config
    default_size = 32 if config.small_input else 224
    spec = input_spec(checkpoint, stored, config.in_chans, config.num_classes, default_size=default_size)
    extra = {"dataset": stored["dataset"]} if "dataset" in stored else {}
    size = spec.size if resolution is None else resolution
    return export_onnx(model, path, size, metadata=extra, opset=opset, spec=spec)


def max_opset() -> int:
    """The newest ONNX opset the installed onnx package defines (the exporter cannot write a newer one)."""
    import onnx

    return onnx.defs.onnx_opset_version()


def _export(
    model: MobileNet, example: torch.Tensor, opset: int, path: str, header: dict[str, str], exporter: str = "dynamo"
) -> int:
    """Export with `exporter`, then write global pools as GlobalAveragePool (ONNX Runtime has an int8 kernel for it,
    none for ReduceMean) and `header` into the metadata; return the opset the file declares."""
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                model,
                (example,),
                path,
                input_names=["input"],
                output_names=["logits"],
                opset_version=opset,
                dynamo=False,
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
            return _finish(path, header)
        program = torch.onnx.export(
            model,
            (example,),
            input_names=["input"],
            output_names=["logits"],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
            verbose=False,
        )
        program.save(path)
    return _finish(path, header)


def _finish(path: str, header: dict[str, str]) -> int:
    import onnx

    proto = onnx.load(path)
    inline_identities(proto)
    rewrite_global_average_pools(proto)
    set_metadata(proto, header)
    onnx.save(proto, path)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def set_metadata(proto: onnx.ModelProto, header: dict[str, str]) -> None:
    """Add `header` to the metadata of a loaded ONNX model."""
    for key, value in header.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _verify(path: str, model: MobileNet, in_chans: int, resolution: int, batch: int, seed: int) -> tuple[float, float]:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = torch.randn(batch, in_chans, resolution, resolution, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    scale = float(np.abs(expected).max()) if np.isfinite(expected).all() else math.inf
    return float(np.abs(got - expected).max()), scale


class _quiet_exporter:
    """The exporter logs a warning per torchvision op it cannot find; we use none of them."""

    def __enter__(self):
        self.logger = logging.getLogger("torch.onnx")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)
        return False


def load_onnx(path: str | os.PathLike):
    """The ONNX model at `path` (an `onnx.ModelProto`); ValueError naming the file when it is not one."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError or OSError by cause
        raise InputError(f"{path} is not a readable ONNX file ({error})") from error


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata an exported file carries (labels, input_size, in_chans, mean, std, mobilenet.config, ...)."""
    return {entry.key: entry.value for entry in load_onnx(path).metadata_props}
