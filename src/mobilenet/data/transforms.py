"""Transforms on whole batches of tensors (no per-image Python loop): augmentation for small images, normalization,
and the resize / center-crop pipeline for files."""

from __future__ import annotations

import stat
from pathlib import Path

import torch
import torch.nn.functional as F

from mobilenet._io import InputError


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (N, C, H, W) in [0, 255] -> float, standardized per channel."""
    x = images.float().div_(255)
    mean_t = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return x.sub_(mean_t).div_(std_t)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding`, then crop each image back to its size at its own random offset."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
    batch = torch.arange(n)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_erasing(
    x: torch.Tensor,
    generator: torch.Generator,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): with probability p, one rectangle per image set to 0 (the mean after
    normalization). One draw per image; rectangles are clipped to the image."""
    n, _, h, w = x.shape
    target = torch.empty(n).uniform_(*area, generator=generator) * h * w
    log_ratio = (
        torch.empty(n)
        .uniform_(torch.tensor(ratio[0]).log().item(), torch.tensor(ratio[1]).log().item(), generator=generator)
        .exp()
    )
    eh = (target * log_ratio).sqrt().round().clamp(1, h).long()
    ew = (target / log_ratio).sqrt().round().clamp(1, w).long()
    y0 = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    x0 = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    apply = torch.rand(n, generator=generator) < p
    rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < (y0 + eh)[:, None])
    in_cols = (cols >= x0[:, None]) & (cols < (x0 + ew)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None])[:, None]
    return x.masked_fill(mask, 0.0)


def augment_batch(
    x: torch.Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True, erasing: float = 0.5
) -> torch.Tensor:
    """Augment a normalized float batch: random crop with padding, horizontal flip, random erasing."""
    x = random_crop(x, padding, generator)
    if flip:
        x = random_flip(x, generator)
    if erasing > 0:
        x = random_erasing(x, generator, p=erasing)
    return x


def _to_8bit(image, channels: int):
    """`image` of any Pillow mode as 8-bit "RGB" or "L", scaled from its real value range: 16-bit modes ("I;16*",
    and "I" holding values within 0..65535, as Pillow opens 16-bit PNG and TIFF) by 65535, float ("F") by 1 when its
    values lie in [0, 1], any other "I" or "F" image from its own minimum to maximum. (`Image.convert` clips them
    at 255 instead, which turns a 16-bit photograph white.)"""
    import numpy as np
    from PIL import Image

    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535):
            low, high = 0.0, 65535.0
        elif image.mode == "F" and low >= 0 and high <= 1:
            low, high = 0.0, 1.0
        elif not np.isfinite([low, high]).all():
            raise InputError(f"mode {image.mode} image with non-finite values")
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        image = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")
    try:
        return image.convert("RGB" if channels == 3 else "L")
    except ValueError as error:
        raise InputError(f"mode {image.mode} cannot be converted ({error})") from None


def load_image(path: str | Path, size: int, channels: int = 3) -> torch.Tensor:
    """A PNG/JPEG of any size or mode as uint8 (channels, size, size): converted to RGB or grayscale by its real
    value range (`_to_8bit`), shorter side resized to size / 0.875 (or to size when that is the stored size),
    center-cropped.

    Raises ValueError naming the file when it is not a regular file (a FIFO would block the read), not an image, or
    larger than Pillow's decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`): memory stays bounded.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise InputError(f"{path}: not a regular file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image = _to_8bit(image, channels)
        short = min(image.size)
        resize_to = size if short == size else round(size / 0.875)
        scale = resize_to / short
        image = image.resize(
            (max(resize_to, round(image.width * scale)), max(resize_to, round(image.height * scale))),
            Image.BILINEAR,
        )
        left, top = (image.width - size) // 2, (image.height - size) // 2
        image = image.crop((left, top, left + size, top + size))
        data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InputError(f"{path}: refused as a possible decompression bomb ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise InputError(f"{path}: not a readable image ({error})") from error
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise InputError(f"{path}: {error}") from None
    return data.view(size, size, channels).permute(2, 0, 1).contiguous()
