"""Top-1, top-5, per-class accuracy and the confusion matrix of a classifier on a dataset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from mobilenet._io import InputError, atomic_write
from mobilenet.data.transforms import normalize
from mobilenet.train.config import EVAL_BATCH_SIZE

if TYPE_CHECKING:
    from mobilenet.data.datasets import ImageDataset


@dataclass(frozen=True)
class EvalResult:
    top1: float  # percent
    top5: float  # percent
    loss: float  # mean cross-entropy
    per_class: dict[str, float]  # percent
    confusion: list[list[int]]  # confusion[true][predicted]
    samples: int

    def to_dict(self) -> dict[str, object]:
        return {
            "top1": self.top1,
            "top5": self.top5,
            "loss": self.loss,
            "samples": self.samples,
            "per_class": self.per_class,
            "confusion": self.confusion,
        }


@torch.no_grad()
def evaluate(
    predict: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    dataset: ImageDataset,
    batch_size: int = EVAL_BATCH_SIZE,
    image_size: int | None = None,
    indices: torch.Tensor | None = None,
) -> EvalResult:
    """Evaluate `predict` (a module or a function from a normalized float batch to logits) on `dataset`.

    A module is put in eval mode and channels_last memory format (values unchanged; PyTorch's CPU convolutions are
    faster in it, see `mobilenet bench --backend torch` against `torch-fused`), and fed channels_last batches.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    indices = torch.arange(len(dataset)) if indices is None else indices
    if len(indices) == 0:
        raise InputError("nothing to evaluate: the dataset (or the chosen indices) holds no image")
    channels_last = isinstance(predict, torch.nn.Module)
    if channels_last:
        predict.eval().to(memory_format=torch.channels_last)
    classes = dataset.info.classes
    confusion = torch.zeros(len(classes), len(classes), dtype=torch.long)
    top5_hits, loss_sum = 0, 0.0
    for start in range(0, len(indices), batch_size):
        images, labels = dataset.batch(indices[start : start + batch_size], image_size)
        x = normalize(images, dataset.info.mean, dataset.info.std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = predict(x).float().cpu()  # the model may run on a GPU; labels and tallies stay here
        if logits.ndim != 2 or logits.shape[0] != len(labels) or logits.shape[1] != len(classes):
            raise InputError(
                f"the model's output has shape {tuple(logits.shape)}; {dataset.info.name} needs "
                f"({len(labels)}, {len(classes)}): one score per class"
            )
        if not torch.isfinite(logits).all():
            raise InputError("the model computed NaN or infinite logits: its weights (or inputs) are broken")
        loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        k = min(5, logits.shape[1])
        top5_hits += (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).sum().item()
        confusion += torch.bincount(labels * len(classes) + logits.argmax(1), minlength=len(classes) ** 2).view_as(
            confusion
        )
    total = len(indices)
    per_class_total = confusion.sum(1).clamp(min=1)
    return EvalResult(
        top1=100.0 * confusion.diag().sum().item() / total,
        top5=100.0 * top5_hits / total,
        loss=loss_sum / total,
        per_class={cls: 100.0 * (confusion[i, i] / per_class_total[i]).item() for i, cls in enumerate(classes)},
        confusion=confusion.tolist(),
        samples=total,
    )


def plot_confusion(result: EvalResult, classes: tuple[str, ...], path: str, title: str = "") -> None:
    """Save the confusion matrix (rows: true class, columns: predicted) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = torch.tensor(result.confusion, dtype=torch.float)
    rates = matrix / matrix.sum(1, keepdim=True).clamp(min=1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)))
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            value = int(matrix[i, j])
            if value:
                ax.text(
                    j, i, value, ha="center", va="center", fontsize=7, color="white" if rates[i, j] > 0.5 else "black"
                )
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"top-1 {result.top1:.2f}% on {result.samples} images", fontsize=9)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)
