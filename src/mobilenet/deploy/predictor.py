"""`Classifier`: top-k labels for image files of any size or mode, from an ONNX file or a checkpoint, each read
as its own metadata says (labels, input size, channels, normalization)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from mobilenet.data.datasets import IMAGE_SUFFIXES, IMAGENET_MEAN, IMAGENET_STD
from mobilenet.data.transforms import load_image, normalize


@dataclass(frozen=True)
class Prediction:
    source: str
    top: list[tuple[str, float]]  # (label, probability), most likely first

    def to_dict(self) -> dict[str, object]:
        return {"image": self.source, "top": [{"label": label, "probability": p} for label, p in self.top]}


class Classifier:
    """`Classifier("model.int8.onnx").predict(["shoe.png", ...], k=3)`."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such model file: {self.path}")
        if self.path.suffix == ".onnx":
            from mobilenet.deploy.runtime import OnnxModel

            model = OnnxModel(self.path, threads)
            metadata = model.metadata
            self.size, self.channels = model.input_size, model.in_chans
            self._run = model
        else:
            from mobilenet.weights import load_with_metadata

            network, metadata = load_with_metadata(self.path)
            self.size = int(metadata.get("image_size", 32 if network.config.small_input else 224))
            self.channels = network.config.in_chans

            def run(x: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return network(x)

            self._run = run
        default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if self.channels == 3 else ((0.5,), (0.5,))
        self.mean = tuple(json.loads(metadata["mean"])) if "mean" in metadata else default_mean
        self.std = tuple(json.loads(metadata["std"])) if "std" in metadata else default_std
        labels = metadata.get("labels") or metadata.get("classes")
        self.labels: list[str] | None = json.loads(labels) if labels else None

    def predict(self, images: list[str | os.PathLike], k: int = 5, batch_size: int = 64) -> list[Prediction]:
        """Top-k predictions per image file. Raises ValueError naming the file for one that is not an image: use
        `predict_files` to classify the others anyway."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        results = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            batch = torch.stack([load_image(path, self.size, self.channels) for path in chunk])
            probabilities = self._run(normalize(batch, self.mean, self.std)).float().softmax(1)
            values, indices = probabilities.topk(min(k, probabilities.shape[1]), dim=1)
            for path, row_p, row_i in zip(chunk, values.tolist(), indices.tolist(), strict=True):
                top = [(self.labels[i] if self.labels else str(i), p) for i, p in zip(row_i, row_p, strict=True)]
                results.append(Prediction(str(path), top))
        return results

    def predict_files(self, paths: list[str | os.PathLike], k: int = 5) -> tuple[list[Prediction], dict[str, str]]:
        """(predictions, {file: error}) for files and folders (searched for images); a bad file does not stop the
        others."""
        files: list[Path] = []
        errors: dict[str, str] = {}
        for path in map(Path, paths):
            if path.is_dir():
                files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            elif path.is_file():
                files.append(path)
            else:
                errors[str(path)] = "no such file or directory"
        predictions = []
        for path in files:
            try:
                predictions += self.predict([path], k)
            except ValueError as error:
                errors[str(path)] = str(error)
        return predictions, errors
