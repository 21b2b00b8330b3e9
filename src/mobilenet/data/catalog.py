"""What the project knows about each dataset without reading it (classes, channels, size, normalization, where its
files live), free of torch so that the CLI can offer the names and defaults without importing it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    classes: tuple[str, ...]
    channels: int
    size: int  # side of the stored images
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool  # is a horizontal flip label-preserving?
    default_dir: str
    env: str  # environment variable naming the data directory


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        FASHION_CLASSES,
        1,
        28,
        (0.2860,),
        (0.3530,),
        True,
        "/usr/share/datasets/fashion-mnist",
        "MOBILENET_FASHION_MNIST_DIR",
    ),
    "mnist": DatasetInfo(
        "mnist",
        tuple(str(d) for d in range(10)),
        1,
        28,
        (0.1307,),
        (0.3081,),
        False,
        "/usr/share/datasets/mnist",
        "MOBILENET_MNIST_DIR",
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        CIFAR10_CLASSES,
        3,
        32,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        True,
        str(Path.home() / ".cache" / "mobilenet" / "cifar10"),
        "MOBILENET_CIFAR10_DIR",
    ),
}

# `load_dataset`'s names: the datasets above, and "folder" (ImageFolder layout: one subfolder per class).
DATASET_NAMES = (*DATASETS, "folder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
