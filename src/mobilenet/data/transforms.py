"""Transforms on whole batches of tensors (no per-image Python loop): augmentation for small images, normalization,
and the resize / center-crop pipeline for files."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F


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
    log_ratio = torch.empty(n).uniform_(torch.tensor(ratio[0]).log().item(), torch.tensor(ratio[1]).log().item(),
                                        generator=generator).exp()  # fmt: skip
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


def load_image(path: str | Path, size: int, channels: int = 3) -> torch.Tensor:
    """A PNG/JPEG of any size or mode as uint8 (channels, size, size): converted to RGB or grayscale, shorter side
    resized to size / 0.875 (or to size when that is the stored size), center-cropped."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L")
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
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from error
    return data.view(size, size, channels).permute(2, 0, 1).contiguous()
