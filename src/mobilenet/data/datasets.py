"""Dataset readers. Every file is validated (magic numbers, counts, shapes, labels) where it is read, and a bad one
gets a `DatasetError` naming the file and what is wrong. Nothing is unpickled: CIFAR-10 is read from its binary
version, image folders with Pillow.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from mobilenet._io import InputError, umask
from mobilenet.data.catalog import DATASETS, IMAGE_SUFFIXES, IMAGENET_MEAN, IMAGENET_STD, DatasetInfo
from mobilenet.data.transforms import load_image


class DatasetError(InputError):
    """A dataset file is missing, truncated, corrupt or inconsistent."""


# The original hosts and their published MD5 checksums of the gzipped IDX files / the CIFAR-10 binary archive.
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_DOWNLOADS = {
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "cifar10": (
        "https://www.cs.toronto.edu/~kriz/",
        {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
    ),
}
_IDX_COUNTS = {"train": 60_000, "test": 10_000}
_CIFAR_RECORD = 1 + 3 * 32 * 32
_CIFAR_FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}


class ImageDataset(Protocol):
    """What training, evaluation and int8 calibration read from a dataset (`ArrayDataset`, `FolderDataset`, or one of
    your own): its facts (`info`: classes, channels, normalization), its length, and uint8 images (N, C, size, size)
    with int64 labels for a tensor of indices (`size` None: the stored size, where the images have one)."""

    info: DatasetInfo

    def __len__(self) -> int: ...

    def batch(self, indices: torch.Tensor, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class ArrayDataset:
    """A dataset held in memory: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo
    split: str
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    def subset(self, indices: torch.Tensor) -> ArrayDataset:
        return ArrayDataset(self.images[indices], self.labels[indices], self.info, self.split, self.source)

    def batch(self, indices: torch.Tensor, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, C, H, W) and labels of `indices` (`size` is the stored one)."""
        return self.images[indices], self.labels[indices]


def data_dir(name: str, directory: str | os.PathLike | None = None) -> Path:
    """The directory to read `name` from: the argument, else its environment variable, else the default."""
    info = DATASETS[name]
    return Path(directory or os.environ.get(info.env) or info.default_dir)


def load_dataset(
    name: str, split: str = "train", directory: str | os.PathLike | None = None, download: bool = False
) -> ArrayDataset | FolderDataset:
    """Load `name` ("fashion-mnist", "mnist", "cifar10", or "folder" with `directory`) for `split`."""
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    if name == "folder":
        if directory is None:
            raise InputError("dataset 'folder' needs a directory: DIR/train/<class>/... and DIR/test/<class>/...")
        for candidate in (split, "val") if split == "test" else (split,):
            if (Path(directory) / candidate).is_dir():
                return FolderDataset(Path(directory) / candidate)
        raise DatasetError(
            f"{directory} has no {split}/ folder: image folders need DIR/train/<class>/... and "
            f"DIR/test/<class>/... (or DIR/val/...), so that the test figure is not measured on "
            f"training images"
        )
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join([*DATASETS, 'folder'])}")
    root = data_dir(name, directory)
    if download:
        _download(name, root)
    if name == "cifar10":
        return _read_cifar(root, split)
    return _read_idx_pair(name, root, split)


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"{root / stem}[.gz] not found; give the directory with --data-dir or the environment "
        f"variable, install Debian's dataset-fashion-mnist, or download=True where the host is "
        f"reachable"
    )


def read_idx(path: Path, max_bytes: int = 1 << 30) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array, validated against its own header.

    The header is read and checked first, and no more than the bytes it announces (at most `max_bytes`) are ever
    inflated: a hostile gzip cannot make this allocate more than the header says, and the header cannot ask for
    more than `max_bytes`.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(4)
            if len(head) < 4:
                raise DatasetError(f"{path}: {len(head)} bytes, too short for an IDX header")
            zero, dtype, ndim = struct.unpack(">HBB", head)
            if zero != 0 or dtype != 0x08 or ndim not in (1, 3):
                raise DatasetError(f"{path}: bad IDX magic {head.hex()} (want 00000801 labels or 00000803 images)")
            raw = handle.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise DatasetError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", raw)
            size = int(np.prod(dims, dtype=np.int64))
            if size > max_bytes:
                raise DatasetError(
                    f"{path}: its header {dims} announces {size:,} bytes, over the {max_bytes:,} "
                    f"this reader accepts: not an MNIST-style file"
                )
            data = handle.read(size)
            extra = handle.read(1)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path}: cannot be read ({error}); the file may be truncated or not gzip") from error
    if len(data) != size or extra:
        found = f"{len(data)}" if not extra else f"more than {size}"
        raise DatasetError(f"{path}: {found} bytes of data, but its header {dims} needs {size}: truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _read_idx_pair(name: str, root: Path, split: str) -> ArrayDataset:
    info = DATASETS[name]
    image_path, label_path = (_find(root, stem) for stem in _IDX_FILES[split])
    count = _IDX_COUNTS[split]  # no more is ever inflated than the split can hold
    images, labels = read_idx(image_path, count * info.size**2), read_idx(label_path, count)
    if images.ndim != 3 or images.shape[1:] != (info.size, info.size):
        raise DatasetError(f"{image_path}: images of shape {images.shape[1:]}, expected ({info.size}, {info.size})")
    if labels.ndim != 1:
        raise DatasetError(f"{label_path}: a label file must be 1-D, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels")
    if len(images) != _IDX_COUNTS[split]:
        raise DatasetError(f"{image_path}: {len(images)} images, the {name} {split} split has {_IDX_COUNTS[split]}")
    if labels.max() >= len(info.classes):
        raise DatasetError(f"{label_path}: label {labels.max()} out of range 0..{len(info.classes) - 1}")
    return ArrayDataset(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        info,
        split,
        str(image_path.parent),
    )


def _read_cifar(root: Path, split: str) -> ArrayDataset:
    folder = root / "cifar-10-batches-bin" if (root / "cifar-10-batches-bin").is_dir() else root
    chunks = []
    for name in _CIFAR_FILES[split]:
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"{path} not found; CIFAR-10's binary version (cifar-10-binary.tar.gz) unpacks to it")
        data = path.read_bytes()
        if len(data) != 10_000 * _CIFAR_RECORD:
            raise DatasetError(f"{path}: {len(data)} bytes, a CIFAR-10 batch has {10_000 * _CIFAR_RECORD}")
        chunks.append(np.frombuffer(data, dtype=np.uint8).reshape(10_000, _CIFAR_RECORD))
    records = np.concatenate(chunks)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DatasetError(f"{folder}: label {labels.max()} out of range 0..9: not CIFAR-10's binary version")
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    return ArrayDataset(
        torch.from_numpy(images.copy()), torch.from_numpy(labels), DATASETS["cifar10"], split, str(folder)
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(name: str, root: Path, timeout: float = 30.0) -> None:
    """Fetch the original files into `root`, verify their published MD5, unpack CIFAR-10. Skips files present."""
    base, files = _DOWNLOADS[name]
    root.mkdir(parents=True, exist_ok=True)
    for filename, md5 in files.items():
        target = root / filename
        if target.is_file() and _md5(target) == md5:
            continue
        url = base + filename
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{filename}.")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, out)
        except OSError as error:
            os.unlink(tmp)
            raise DatasetError(
                f"could not download {url} ({error}); this machine may not reach the host: put the files in {root} "
                f"by hand or point --data-dir at a copy"
            ) from error
        if _md5(Path(tmp)) != md5:
            os.unlink(tmp)
            raise DatasetError(f"{url}: checksum mismatch (want MD5 {md5}); the download is corrupt, try again")
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600: the file gets what a plain open() would
        os.replace(tmp, target)
    if name == "cifar10" and not (root / "cifar-10-batches-bin").is_dir():
        with tarfile.open(root / "cifar-10-binary.tar.gz") as archive:
            archive.extractall(root, filter="data")


class FolderDataset:
    """Images in one sub-folder per class, read with Pillow on access (ImageNet-style layout)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise DatasetError(f"{root} is not a directory of class folders")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if not classes:
            raise DatasetError(f"{root} has no class sub-folders (expected {root}/<class>/<image>.png ...)")
        self.root = root
        self.samples = [
            (path, index)
            for index, cls in enumerate(classes)
            for path in sorted((root / cls).rglob("*"))
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.samples:
            raise DatasetError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) under the class folders")
        self.info = DatasetInfo(root.name, tuple(classes), 3, 0, IMAGENET_MEAN, IMAGENET_STD, True, str(root), "")
        self.labels = torch.tensor([label for _, label in self.samples])

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int, size: int) -> torch.Tensor:
        """Image `index` as uint8 (3, size, size): shorter side resized to size / 0.875, then a center crop."""
        return load_image(self.samples[index][0], size, channels=3)

    def batch(self, indices: torch.Tensor, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, 3, size, size) and labels of `indices`."""
        if size is None:
            raise InputError(
                f"the images of {self.info.default_dir} have no common size; give the size to read them at"
            )
        return torch.stack([self.load(int(i), size) for i in indices]), self.labels[indices]
