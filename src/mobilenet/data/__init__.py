"""Datasets for training and evaluation: Fashion-MNIST and MNIST (IDX), CIFAR-10 (binary), image folders.

`mobilenet.data.catalog` (names, classes, sizes; no torch) is what the CLI reads; the readers import on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mobilenet._lazy import lazy_exports
from mobilenet.data.catalog import DATASET_NAMES, DATASETS, IMAGE_SUFFIXES, DatasetInfo

_EXPORTS = {
    "ArrayDataset": "mobilenet.data.datasets",
    "DatasetError": "mobilenet.data.datasets",
    "FolderDataset": "mobilenet.data.datasets",
    "ImageDataset": "mobilenet.data.datasets",
    "load_dataset": "mobilenet.data.datasets",
    "augment_batch": "mobilenet.data.transforms",
    "normalize": "mobilenet.data.transforms",
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

__all__ = sorted(["DATASETS", "DATASET_NAMES", "IMAGE_SUFFIXES", "DatasetInfo", *_EXPORTS])  # with the lazy names

if TYPE_CHECKING:
    from mobilenet.data.datasets import ArrayDataset, DatasetError, FolderDataset, ImageDataset, load_dataset
    from mobilenet.data.transforms import augment_batch, normalize
