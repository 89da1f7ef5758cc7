"""Batch preprocessing and augmentation on uint8 tensors held in memory.

The whole training set stays one uint8 tensor (n, H, W); a batch is turned into floats only
when it is used. ``augment_batch`` draws, per image, a random flip, a small rotation and a
shift (one ``affine_grid``/``grid_sample`` call that also resizes to the model's input size),
then random erasing. Everything is vectorised over the batch and driven by an explicit
``torch.Generator``, so a batch's augmentation depends only on the seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

GRAY_MEAN, GRAY_STD = 0.5, 0.25  # FER-2013 pixel statistics, rounded
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_gray_uint8(pixels: np.ndarray) -> np.ndarray:
    """(n, H, W) or (n, H, W, 3) uint8 -> (n, H, W) uint8 gray (ITU-R 601 luma)."""
    if pixels.ndim == 3:
        return pixels
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(pixels.astype(np.float32) @ weights), 0, 255).astype(np.uint8)


def normalize_batch(x: torch.Tensor, in_channels: int) -> torch.Tensor:
    """(b, 1, s, s) float in [0, 1] -> normalised (b, in_channels, s, s), channels_last."""
    if in_channels == 1:
        out = (x - GRAY_MEAN) / GRAY_STD
    else:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        out = (x.expand(-1, 3, -1, -1) - mean) / std
    return out.contiguous(memory_format=torch.channels_last)


def prepare_batch(images: torch.Tensor, size: int, in_channels: int) -> torch.Tensor:
    """Evaluation preprocessing: uint8 (b, H, W) -> resized (antialiased), normalised floats."""
    x = images.unsqueeze(1).float().div_(255)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return normalize_batch(x, in_channels)


def random_affine(b: int, generator: torch.Generator, max_degrees: float = 10.0,
                  max_shift: float = 0.1, flip: bool = True) -> torch.Tensor:
    """(b, 2, 3) affine matrices: rotation in +-max_degrees, shift in +-max_shift of the
    half-width, horizontal flip with probability 0.5."""
    u = torch.rand(b, 4, generator=generator)
    angle = (u[:, 0] * 2 - 1) * math.radians(max_degrees)
    sign = torch.where(u[:, 1] < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    cos, sin = torch.cos(angle), torch.sin(angle)
    shift = (u[:, 2:] * 2 - 1) * max_shift * 2  # grid units: the full width is 2
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos * sign, -sin, shift[:, 0]
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin * sign, cos, shift[:, 1]
    return theta


def random_erase(x: torch.Tensor, generator: torch.Generator, p: float = 0.5,
                 area: tuple[float, float] = (0.02, 0.15)) -> torch.Tensor:
    """Zero one random rectangle (area fraction in ``area``, aspect 0.5-2) per image with
    probability ``p``; x (b, c, s, s), modified in place and returned."""
    b, _, h, w = x.shape
    u = torch.rand(b, 5, generator=generator)
    frac = area[0] + u[:, 0] * (area[1] - area[0])
    aspect = torch.exp((u[:, 1] * 2 - 1) * math.log(2))
    eh = (torch.sqrt(frac * aspect) * h).clamp(1, h).long()
    ew = (torch.sqrt(frac / aspect) * w).clamp(1, w).long()
    top = (u[:, 2] * (h - eh + 1)).long()
    left = (u[:, 3] * (w - ew + 1)).long()
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1)))
    inside &= (u[:, 4] < p).view(-1, 1, 1)
    return x.masked_fill_(inside.unsqueeze(1), 0.0)


def augment_batch(images: torch.Tensor, size: int, in_channels: int, generator: torch.Generator,
                  erase_p: float = 0.5) -> torch.Tensor:
    """Training preprocessing: uint8 (b, H, W) -> augmented, normalised (b, c, size, size)."""
    x = images.unsqueeze(1).float().div_(255)
    theta = random_affine(len(x), generator)
    grid = F.affine_grid(theta, [len(x), 1, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = normalize_batch(x, in_channels)
    return random_erase(x, generator, p=erase_p)
