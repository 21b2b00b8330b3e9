"""Dataset readers validate what they read; batch transforms do what they say."""

import gzip
import struct

import numpy as np
import pytest
import torch

import mobilenet.data.datasets as datasets
from mobilenet._io import InputError
from mobilenet.data import DatasetError, augment_batch, load_dataset, normalize
from mobilenet.data.transforms import load_image, random_crop, random_erasing, random_flip


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion-mnist", "train")


def test_fashion_mnist_from_debian(fashion):
    test = load_dataset("fashion-mnist", "test")
    assert fashion.images.shape == (60_000, 1, 28, 28)
    assert test.images.shape == (10_000, 1, 28, 28)
    assert fashion.images.dtype == torch.uint8
    assert torch.bincount(fashion.labels).tolist() == [6000] * 10  # the published class balance
    assert fashion.classes[9] == "Ankle boot"


def write_idx(path, array, magic_dims=None, gz=True):
    dims = array.shape if magic_dims is None else magic_dims
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def make_idx_dir(tmp_path, n=60_000, labels_max=9, gz=True, truncate=False):
    suffix = ".gz" if gz else ""
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % (labels_max + 1)
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz=gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz=gz)
    if truncate:
        path = tmp_path / f"train-images-idx3-ubyte{suffix}"
        raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
        (gzip.open if gz else open)(path, "wb").write(raw[: len(raw) // 2])
    return tmp_path


@pytest.mark.parametrize("gz", [True, False])
def test_idx_gzipped_or_not(tmp_path, gz):
    data = load_dataset("fashion-mnist", "train", make_idx_dir(tmp_path, gz=gz))
    assert data.images.shape == (60_000, 1, 28, 28)


def test_directory_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILENET_FASHION_MNIST_DIR", str(make_idx_dir(tmp_path)))
    assert load_dataset("fashion-mnist", "train").source == str(tmp_path)


def test_truncated_idx_names_the_file(tmp_path):
    make_idx_dir(tmp_path, truncate=True)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: .*truncated"):
        load_dataset("fashion-mnist", "train", tmp_path)


def test_bad_magic(tmp_path):
    make_idx_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x0c\x01" + b"\x00" * 8))
    with pytest.raises(DatasetError, match="bad IDX magic"):
        load_dataset("fashion-mnist", "train", tmp_path)


def test_wrong_count(tmp_path):
    make_idx_dir(tmp_path, n=100)
    with pytest.raises(DatasetError, match="100 images, the fashion-mnist train split has 60000"):
        load_dataset("fashion-mnist", "train", tmp_path)


def test_label_out_of_range(tmp_path):
    make_idx_dir(tmp_path, labels_max=11)
    with pytest.raises(DatasetError, match="label 11 out of range"):
        load_dataset("fashion-mnist", "train", tmp_path)


def test_not_gzip(tmp_path):
    make_idx_dir(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip")
    with pytest.raises(DatasetError, match="cannot be read"):
        load_dataset("fashion-mnist", "train", tmp_path)


def test_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "train", tmp_path)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_cifar10_binary(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_CIFAR_FILES", {"train": ("data_batch_1.bin",), "test": ("test_batch.bin",)})
    records = np.zeros((10_000, 3073), dtype=np.uint8)
    records[:, 0] = np.arange(10_000) % 10
    records[:, 1] = 200  # first red pixel
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "data_batch_1.bin").write_bytes(records.tobytes())
    data = load_dataset("cifar10", "train", tmp_path)
    assert data.images.shape == (10_000, 3, 32, 32)
    assert data.images[0, 0, 0, 0] == 200
    assert data.labels[:3].tolist() == [0, 1, 2]
    (folder / "test_batch.bin").write_bytes(records.tobytes()[:-5])
    with pytest.raises(DatasetError, match=r"test_batch\.bin: .* bytes"):
        load_dataset("cifar10", "test", tmp_path)


def test_download_failure_is_clear(tmp_path, monkeypatch):
    def unreachable(url, timeout):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", unreachable)
    with pytest.raises(DatasetError, match=r"could not download .*fashion-mnist.*put the files in"):
        load_dataset("fashion-mnist", "train", tmp_path, download=True)
    assert not list(tmp_path.iterdir())  # no partial file left


def test_download_checksum_mismatch(tmp_path, monkeypatch):
    import io

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda url, timeout: Response(b"tampered"))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset("mnist", "train", tmp_path, download=True)
    assert not list(tmp_path.iterdir())


def test_image_folder(tmp_path):
    from PIL import Image

    for cls, color, mode in (("cat", (255, 0, 0), "RGB"), ("dog", 128, "L")):
        (tmp_path / "train" / cls).mkdir(parents=True)
        Image.new(mode, (50, 30), color).save(tmp_path / "train" / cls / "a.png")
        Image.new("RGBA", (20, 40), (0, 0, 255, 128)).save(tmp_path / "train" / cls / "b.png")
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="no test/ folder"):
        load_dataset("folder", "test", tmp_path)
    (tmp_path / "val" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "cat" / "c.png")
    assert len(load_dataset("folder", "test", tmp_path)) == 1  # val/ stands in for test/
    data = load_dataset("folder", "train", tmp_path)
    assert data.classes == ("cat", "dog")
    assert len(data) == 4
    images, labels = data.batch(torch.arange(4), 16)
    assert images.shape == (4, 3, 16, 16)
    assert labels.tolist() == [0, 0, 1, 1]
    assert images[0, 0].float().mean() == 255  # red stays red after resize and crop
    with pytest.raises(InputError, match="no common size; give the size"):
        data.batch(torch.arange(1))  # ImageDataset's size=None means the stored size, which a folder has not


def test_corrupt_image_names_the_file(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"broken\.png: not a readable image"):
        load_image(path, 16)


def test_normalize(fashion):
    x = normalize(fashion.images[:5000], fashion.info.mean, fashion.info.std)
    assert x.mean().item() == pytest.approx(0.0, abs=0.02)
    assert x.std().item() == pytest.approx(1.0, abs=0.02)


def test_random_crop_is_a_window_of_the_padded_image():
    x = torch.randn(16, 2, 6, 6)
    out = random_crop(x, 2, torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(16):
        windows = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 6])
        ]
        assert windows, f"image {i} is not a crop of its padded self"
        offsets.add(windows[0])
    assert len(offsets) > 4  # the offsets vary per image


def test_flip_and_erasing():
    x = torch.randn(64, 1, 28, 28)
    flipped = random_flip(x, torch.Generator().manual_seed(0), p=1.0)
    assert torch.equal(flipped, x.flip(3))
    erased = random_erasing(x, torch.Generator().manual_seed(0), p=1.0)
    fraction = (erased == 0).float().mean((1, 2, 3))
    assert (fraction >= 0.01).all()
    assert (fraction <= 0.5).all()
    assert torch.equal(random_erasing(x, torch.Generator().manual_seed(0), p=0.0), x)


def test_augmentation_is_deterministic_per_generator(fashion):
    x = normalize(fashion.images[:32], fashion.info.mean, fashion.info.std)
    a = augment_batch(x, torch.Generator().manual_seed(7))
    b = augment_batch(x, torch.Generator().manual_seed(7))
    c = augment_batch(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape


def test_hostile_idx_gzip_is_refused_by_its_header_before_inflating(tmp_path):
    """A header announcing more than the split can hold is refused after 8 bytes; a stream longer than its header
    is refused after one byte more than the header announced: never inflated whole (3.4 GB in the report)."""
    import tracemalloc

    huge = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(huge, "wb") as handle:
        handle.write(struct.pack(">HBB3I", 0, 0x08, 3, 4_000_000_000, 28, 28))
        handle.write(bytes(1 << 20))
    with pytest.raises(DatasetError, match="announces"):
        datasets.read_idx(huge, max_bytes=60_000 * 28 * 28)
    long = tmp_path / "long.gz"
    with gzip.open(long, "wb") as handle:
        handle.write(struct.pack(">HBB3I", 0, 0x08, 3, 10, 28, 28))
        for _ in range(64):  # 64 MB of zeros behind a 7,840-byte header: ~64 KB compressed
            handle.write(bytes(1 << 20))
    tracemalloc.start()
    with pytest.raises(DatasetError, match="more than 7840 bytes"):
        datasets.read_idx(long)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 << 20  # what the header announced and some buffers, not the 64 MB stream


def _gray_image(mode, value, high):
    """A 4x8 image of `mode` whose left half is 0 and right half `value` (of a range ending at `high`)."""
    from PIL import Image

    array = np.zeros((4, 8), dtype=np.float32 if mode == "F" else np.int32 if mode == "I" else np.uint16)
    array[:, 4:] = value
    if mode == "F":
        return Image.fromarray(array, "F")
    if mode == "I":
        return Image.fromarray(array.astype(np.int32), "I")
    return Image.fromarray(array.astype(np.uint16)).convert(mode) if mode != "I;16" else Image.fromarray(array)


@pytest.mark.parametrize(
    ("mode", "value", "high", "suffix"),
    [
        ("I;16", 32768, 65535, ".png"),  # a 16-bit PNG: was read as white
        ("I;16", 65535, 65535, ".tif"),
        ("I", 32768, 65535, ".tif"),  # how Pillow opens 16-bit TIFFs and older 16-bit PNGs
        ("F", 0.5, 1.0, ".tif"),  # float images in [0, 1]
    ],
)
def test_high_bit_depth_images_are_read_by_their_real_range(tmp_path, mode, value, high, suffix):
    path = tmp_path / f"image{suffix}"
    _gray_image(mode, value, high).save(path)
    expected = round(255 * value / high)
    for channels in (1, 3):
        image = load_image(path, 4, channels=channels)
        assert image.shape == (channels, 4, 4)
        assert int(image[0, 0, 0]) == 0
        assert abs(int(image[0, 0, 3]) - expected) <= 1


def test_float_image_outside_0_1_is_scaled_from_its_own_range(tmp_path):
    from PIL import Image

    array = np.linspace(-3.0, 5.0, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(array, "F").save(tmp_path / "depth.tif")
    image = load_image(tmp_path / "depth.tif", 8, channels=1)
    assert int(image.min()) == 0
    assert int(image.max()) == 255


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LA", "PA", "I", "F", "I;16"])
def test_every_pillow_mode_is_read(tmp_path, mode):
    from PIL import Image

    path = tmp_path / "image.tif"
    Image.new(mode, (10, 6)).save(path)
    assert load_image(path, 6, channels=3).shape == (3, 6, 6)
    assert load_image(path, 6, channels=1).shape == (1, 6, 6)


def test_an_unconvertible_mode_names_the_file(tmp_path):
    from PIL import Image

    path = tmp_path / "lab.tif"
    Image.new("LAB", (4, 4)).save(path)
    with pytest.raises(ValueError, match=r"lab\.tif: mode LAB cannot be converted"):
        load_image(path, 4, channels=1)  # Pillow has LAB -> RGB, not LAB -> L


def test_a_decompression_bomb_is_refused_without_decoding(tmp_path, monkeypatch):
    from PIL import Image

    Image.new("L", (64, 64)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels: over the limit (2x: an error, 1x: a warning)
    with pytest.raises(ValueError, match=r"bomb\.png: refused as a possible decompression bomb"):
        load_image(tmp_path / "bomb.png", 16)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # over the limit but under twice it: Pillow only warns
    with pytest.raises(ValueError, match="decompression bomb"):
        load_image(tmp_path / "bomb.png", 16)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"pipe\.png: not a regular file"):
        load_image(fifo, 16)
