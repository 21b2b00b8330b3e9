"""`Classifier`: top-k labels for image files of any size or mode, from an ONNX file or a checkpoint, each read
as its own metadata says (labels, input size, channels, normalization: `mobilenet.metadata.input_spec`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from mobilenet._io import InputError
from mobilenet.data.catalog import IMAGE_SUFFIXES
from mobilenet.data.datasets import load_dataset
from mobilenet.data.transforms import load_image, normalize
from mobilenet.deploy.artifacts import load_artifact
from mobilenet.deploy.backends import get_backend, supported
from mobilenet.deploy.recipe import PREDICT_BATCH, TOP_K
from mobilenet.metadata import InputSpec, input_spec
from mobilenet.train.config import EVAL_BATCH_SIZE
from mobilenet.train.evaluation import EvalResult, evaluate
from mobilenet.weights import load_with_metadata


@dataclass(frozen=True)
class Prediction:
    source: str
    top: list[tuple[str, float]]  # (label, probability), most likely first

    def to_dict(self) -> dict[str, object]:
        return {"image": self.source, "top": [{"label": label, "probability": p} for label, p in self.top]}


@dataclass(frozen=True)
class Failure:
    """A file that could not be classified, and why."""

    source: str
    error: str


def _scan(folder: Path, files: list[Path], failures: list[Failure]) -> None:
    """Image files under `folder`, recursively, in name order. `os.scandir` tells regular files from FIFOs, sockets
    and devices by the directory entry's type, without a stat per file as `Path.rglob` plus `stat` needs."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        failures.append(Failure(str(folder), f"cannot be read ({error.strerror})"))
        return
    for entry in entries:
        try:
            if entry.is_dir():
                _scan(Path(entry.path), files, failures)
            elif os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            elif entry.is_file():
                files.append(Path(entry.path))
            else:
                failures.append(Failure(entry.path, "not a regular file; skipped"))
        except OSError as error:
            failures.append(Failure(entry.path, f"cannot be read ({error.strerror})"))


def find_images(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Failure]]:
    """The image files named by `paths`: files as given, folders searched recursively for regular files with an
    image suffix (FIFOs, sockets and devices there are skipped: reading one would block); anything else is a
    `Failure`."""
    files: list[Path] = []
    failures: list[Failure] = []
    for path in map(Path, paths):
        if path.is_dir():
            _scan(path, files, failures)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            failures.append(Failure(str(path), "not a regular file or folder"))
        else:
            failures.append(Failure(str(path), "no such file or directory"))
    return files, failures


@dataclass(frozen=True)
class ModelFile:
    """A model file, loaded to run: `model` maps a normalized float batch to logits (an `OnnxModel` for an .onnx file,
    a `MobileNet` in eval mode for a checkpoint); `spec` says how to feed it (`mobilenet.metadata.InputSpec`)."""

    path: Path
    model: Callable[[torch.Tensor], torch.Tensor]
    spec: InputSpec
    num_classes: int | None  # None: the file does not fix its outputs (a dynamic ONNX output)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.model, torch.nn.Module):
            with torch.no_grad():
                return self.model(x)
        return self.model(x)


def open_model(path: str | os.PathLike, threads: int | None = None, backend: str | None = None) -> ModelFile:
    """Load an .onnx file (fp32 or int8) or a .safetensors checkpoint to run, with its input spec read from its own
    metadata and checked against what it holds. An ONNX file runs in `backend`'s runtime (default `onnx`: ONNX
    Runtime; `openvino`, `openvino-bf16`, `openvino-int8`: OpenVINO), which must be able to run it correctly: a file
    that needs ONNX Runtime's private operators is refused by the others. A checkpoint runs in PyTorch."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    runtime = get_backend(backend).runtime if backend else None
    if path.suffix == ".onnx":
        if runtime == "torch":
            raise InputError(f"{path} is an ONNX file: run it with --backend onnx or an openvino backend")
        reason = supported(backend or "onnx")
        if reason:
            raise InputError(f"backend {backend}: {reason}")
        model = load_artifact(path, backend or "onnx", threads)
        return ModelFile(path, model, model.spec, model.num_classes)
    if runtime not in (None, "torch"):
        raise InputError(f"{path} is a checkpoint: export it (`mobilenet export`) to run it in {backend}")
    if threads:
        torch.set_num_threads(threads)
    network, metadata = load_with_metadata(path)
    config = network.config
    default_size = 32 if config.small_input else 224
    spec = input_spec(path, metadata, config.in_chans, config.num_classes, default_size=default_size)
    return ModelFile(path, network, spec, config.num_classes)


def evaluate_file(
    path: str | os.PathLike,
    dataset: str = "fashion-mnist",
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    image_size: int | None = None,
    threads: int | None = None,
    backend: str | None = None,
) -> tuple[EvalResult, tuple[str, ...]]:
    """Top-1, top-5, per-class accuracy and confusion matrix of a model file on `dataset`'s `split` (fed at the size
    its metadata gives, or `image_size`), and the dataset's class names. Refuses a file whose outputs or input
    channels do not fit the dataset."""
    loaded = open_model(path, threads, backend)
    data = load_dataset(dataset, split, data_dir)
    if loaded.num_classes is not None and loaded.num_classes != len(data.classes):
        raise InputError(f"{path} has {loaded.num_classes} outputs but {dataset} has {len(data.classes)} classes")
    if loaded.spec.channels != data.info.channels:
        raise InputError(f"{path} takes {loaded.spec.channels} channel(s), {dataset} has {data.info.channels}")
    fixed = (
        None if isinstance(loaded.model, torch.nn.Module) else loaded.spec.size
    )  # a checkpoint takes the stored size
    return evaluate(loaded.model, data, batch_size=batch_size, image_size=image_size or fixed), data.classes


class Classifier:
    """`Classifier("model.int8.onnx").predict(["shoe.png", ...], k=3)`."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, backend: str | None = None) -> None:
        self.path = Path(path)
        self._run = open_model(self.path, threads, backend)
        self.spec, self.num_classes = self._run.spec, self._run.num_classes
        self.size, self.channels = self.spec.size, self.spec.channels
        self.mean, self.std = self.spec.mean, self.spec.std
        self.labels: list[str] | None = list(self.spec.labels) if self.spec.labels else None

    def _top(self, batch: torch.Tensor, k: int) -> list[list[tuple[str, float]]]:
        logits = self._run(normalize(batch, self.mean, self.std)).float()
        if not torch.isfinite(logits).all():
            raise InputError(f"{self.path} computed NaN or infinite logits: its weights are broken")
        values, indices = logits.softmax(1).topk(min(k, logits.shape[1]), dim=1)
        return [
            [(self.labels[i] if self.labels else str(i), p) for i, p in zip(row_i, row_p, strict=True)]
            for row_p, row_i in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    def predict(
        self, images: list[str | os.PathLike], k: int = TOP_K, batch_size: int = PREDICT_BATCH
    ) -> list[Prediction]:
        """Top-k predictions per image file. Raises ValueError naming the first file that cannot be classified: use
        `classify` to classify the others anyway."""
        results = []
        for outcome in self.classify(images, k, batch_size):
            if isinstance(outcome, Failure):
                raise InputError(f"{outcome.source}: {outcome.error}")
            results.append(outcome)
        return results

    def classify(
        self, paths: Iterable[str | os.PathLike], k: int = TOP_K, batch_size: int = PREDICT_BATCH
    ) -> Iterator[Prediction | Failure]:
        """A `Prediction` or a `Failure` for every image file named by `paths` (files, and folders searched as
        `find_images` does), in order, a batch of `batch_size` files at a time: a file that cannot be read is a
        `Failure` and does not stop the others."""
        _check_k(k, batch_size)
        files, failures = find_images(paths)
        yield from failures
        for start in range(0, len(files), batch_size):
            loaded: list[tuple[Path, torch.Tensor]] = []
            outcomes: dict[Path, Prediction | Failure] = {}
            for path in files[start : start + batch_size]:
                try:
                    loaded.append((path, load_image(path, self.size, self.channels)))
                except ValueError as error:
                    outcomes[path] = Failure(str(path), str(error).removeprefix(f"{path}: "))
            if loaded:
                tops = self._top(torch.stack([image for _, image in loaded]), k)
                outcomes |= {path: Prediction(str(path), top) for (path, _), top in zip(loaded, tops, strict=True)}
            yield from (outcomes[path] for path in files[start : start + batch_size])

    def predict_files(self, paths: list[str | os.PathLike], k: int = TOP_K) -> tuple[list[Prediction], dict[str, str]]:
        """(predictions, {file: error}) for files and folders (searched for images); a bad file does not stop the
        others."""
        predictions, errors = [], {}
        for outcome in self.classify(paths, k):
            if isinstance(outcome, Prediction):
                predictions.append(outcome)
            else:
                errors[outcome.source] = outcome.error
        return predictions, errors


def _check_k(k: int, batch_size: int) -> None:
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
