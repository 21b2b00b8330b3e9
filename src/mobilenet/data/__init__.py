"""Datasets for training and evaluation: Fashion-MNIST and MNIST (IDX), CIFAR-10 (binary), image folders."""

from mobilenet.data.datasets import (
    DATASETS,
    ArrayDataset,
    DatasetError,
    FolderDataset,
    load_dataset,
)
from mobilenet.data.transforms import augment_batch, normalize

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DatasetError",
    "FolderDataset",
    "augment_batch",
    "load_dataset",
    "normalize",
]
