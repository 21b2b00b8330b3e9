"""`Classifier`: top-k labels for image files of any size or mode, from an ONNX file or a checkpoint, each read
as its own metadata says (labels, input size, channels, normalization: `mobilenet.metadata.input_spec`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from mobilenet.data.datasets import IMAGE_SUFFIXES
from mobilenet.data.transforms import load_image, normalize
from mobilenet.metadata import input_spec


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


class Classifier:
    """`Classifier("model.int8.onnx").predict(["shoe.png", ...], k=3)`."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such model file: {self.path}")
        if self.path.suffix == ".onnx":
            from mobilenet.deploy.runtime import OnnxModel

            model = OnnxModel(self.path, threads)
            self.spec = model.spec
            self.num_classes = model.num_classes
            self._run = model
        else:
            from mobilenet.weights import load_with_metadata

            network, metadata = load_with_metadata(self.path)
            config = network.config
            self.spec = input_spec(
                self.path, metadata, config.in_chans, config.num_classes, default_size=32 if config.small_input else 224
            )
            self.num_classes = config.num_classes

            def run(x: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return network(x)

            self._run = run
        self.size, self.channels = self.spec.size, self.spec.channels
        self.mean, self.std = self.spec.mean, self.spec.std
        self.labels: list[str] | None = list(self.spec.labels) if self.spec.labels else None

    def _top(self, batch: torch.Tensor, k: int) -> list[list[tuple[str, float]]]:
        logits = self._run(normalize(batch, self.mean, self.std)).float()
        if not torch.isfinite(logits).all():
            raise ValueError(f"{self.path} computed NaN or infinite logits: its weights are broken")
        values, indices = logits.softmax(1).topk(min(k, logits.shape[1]), dim=1)
        return [
            [(self.labels[i] if self.labels else str(i), p) for i, p in zip(row_i, row_p, strict=True)]
            for row_p, row_i in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    def predict(self, images: list[str | os.PathLike], k: int = 5, batch_size: int = 64) -> list[Prediction]:
        """Top-k predictions per image file. Raises ValueError naming the first file that cannot be classified: use
        `classify` to classify the others anyway."""
        results = []
        for outcome in self.classify(images, k, batch_size):
            if isinstance(outcome, Failure):
                raise ValueError(f"{outcome.source}: {outcome.error}")
            results.append(outcome)
        return results

    def classify(
        self, paths: Iterable[str | os.PathLike], k: int = 5, batch_size: int = 64
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

    def predict_files(self, paths: list[str | os.PathLike], k: int = 5) -> tuple[list[Prediction], dict[str, str]]:
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
        raise ValueError(f"k must be >= 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
