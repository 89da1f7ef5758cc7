"""Synthetic stand-ins for the smoke profile: no download, no network, learnable classes.

``make_synthetic_faces`` draws 48x48 grayscale cartoon faces whose brows, eyes and mouth
follow the seven FER-2013 expressions, with random position, size, brightness and noise,
so that a small CNN learns them well above chance but not perfectly.
``make_synthetic_evoked`` draws colour images for the Emotion6 label set with vote
distributions and valence/arousal, so the evoked-emotion code paths run too.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from emolib.data.imageset import SPLITS, ImageSet
from emolib.labels import EMOTION6_DISTRIBUTION, get_label_set

# Per FER-7 class: brow tilt (+ = inner ends down), brow height, eye openness,
# mouth curvature (+ = smile), mouth openness.
_FACE_PARAMS = {
    "angry": (0.9, 0.0, 0.6, -0.3, 0.0),
    "disgust": (0.5, -0.1, 0.4, -0.6, 0.2),
    "fear": (-0.6, 0.6, 1.3, -0.2, 0.5),
    "happy": (0.0, 0.2, 0.8, 0.9, 0.2),
    "sad": (-0.9, 0.2, 0.7, -0.8, 0.0),
    "surprise": (0.0, 1.0, 1.4, 0.0, 1.0),
    "neutral": (0.0, 0.2, 0.8, 0.0, 0.0),
}


def _draw_face(rng: np.random.Generator, params: tuple[float, ...], size: int) -> np.ndarray:
    tilt, brow_h, eye_open, curve, mouth_open = (p + rng.normal(0, 0.15) for p in params)
    s = size / 48
    canvas = Image.new("L", (size, size), int(rng.integers(20, 90)))
    draw = ImageDraw.Draw(canvas)
    cx, cy = size / 2 + rng.normal(0, 1.5 * s), size / 2 + rng.normal(0, 1.5 * s)
    rx, ry = (15 + rng.normal(0, 1)) * s, (19 + rng.normal(0, 1)) * s
    skin = int(rng.integers(140, 220))
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=skin)
    ink = max(0, skin - int(rng.integers(90, 130)))
    for side in (-1, 1):
        ex, ey = cx + side * 6 * s, cy - 4 * s
        eh = max(0.6, 2.0 * eye_open) * s
        draw.ellipse([ex - 2.5 * s, ey - eh, ex + 2.5 * s, ey + eh], fill=ink)
        by = ey - (5 + 2.5 * brow_h) * s
        inner, outer = (ex - side * 3 * s, by + tilt * 2.5 * s), (ex + side * 3.5 * s, by - tilt * 1.5 * s)
        draw.line([inner, outer], fill=ink, width=max(1, round(1.5 * s)))
    my, half = cy + 9 * s, 6 * s
    if mouth_open > 0.5:
        oh = (1.5 + 2.5 * mouth_open) * s
        draw.ellipse([cx - half * 0.6, my - oh, cx + half * 0.6, my + oh], fill=ink)
    else:
        xs = np.linspace(-1, 1, 9)
        ys = my + curve * 3 * s * (1 - xs**2) - curve * 1.5 * s
        draw.line(list(zip(cx + xs * half, ys, strict=True)), fill=ink, width=max(1, round(1.5 * s)))
    pixels = np.asarray(canvas, dtype=np.float32) + rng.normal(0, 12, (size, size))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_synthetic_faces(per_class: int = 40, seed: int = 0, size: int = 48,
                         splits: tuple[str, ...] = SPLITS) -> ImageSet:
    """``per_class`` images of each FER-7 class in each split; labels index ``fer7``."""
    rng = np.random.default_rng(seed)
    fer7 = get_label_set("fer7")
    ids, split_col, labels, pixels = [], [], [], []
    for split in splits:
        for label, name in enumerate(fer7.names):
            for k in range(per_class):
                ids.append(f"synthetic_{split}_{name}_{k:04d}")
                split_col.append(split)
                labels.append(label)
                pixels.append(_draw_face(rng, _FACE_PARAMS[name], size))
    return ImageSet(
        name="synthetic_faces",
        label_set_name="fer7",
        ids=np.array(ids, dtype=object),
        splits=np.array(split_col, dtype=object),
        labels=np.array(labels, dtype=np.int64),
        pixels=np.stack(pixels),
        notes=("synthetic cartoon faces (smoke profile): not a measurement of anything real",),
    )


# Per Emotion6 class: base hue (0-1), saturation, brightness, valence, arousal.
_EVOKED_PARAMS = {
    "anger": (0.00, 0.9, 0.6, 3.0, 6.5),
    "disgust": (0.25, 0.6, 0.4, 2.8, 5.0),
    "fear": (0.70, 0.5, 0.25, 2.5, 6.8),
    "joy": (0.14, 0.9, 0.9, 7.5, 6.0),
    "sadness": (0.60, 0.3, 0.4, 2.5, 3.5),
    "surprise": (0.85, 0.8, 0.8, 6.5, 6.5),
}


def make_synthetic_evoked(per_class: int = 20, seed: int = 0, size: int = 64) -> ImageSet:
    """Colour images for the Emotion6 label set, split ``test``, with vote distributions
    over the seven Emotion6 columns and valence/arousal on the 1-9 scale."""
    rng = np.random.default_rng(seed)
    names = get_label_set("emotion6").names
    ids, labels, pixels, votes, valence, arousal = [], [], [], [], [], []
    for label, name in enumerate(names):
        hue, sat, val, v, a = _EVOKED_PARAMS[name]
        for k in range(per_class):
            hsv = np.empty((size, size, 3), dtype=np.float32)
            yy, xx = np.mgrid[0:size, 0:size] / size
            hsv[..., 0] = (hue + 0.05 * np.sin(6 * xx + rng.normal()) + rng.normal(0, 0.02)) % 1.0
            hsv[..., 1] = np.clip(sat + 0.2 * yy - 0.1 + rng.normal(0, 0.05), 0, 1)
            hsv[..., 2] = np.clip(val + 0.1 * np.cos(5 * yy) + rng.normal(0, 0.05, (size, size)), 0, 1)
            rgb = Image.fromarray((hsv * 255).astype(np.uint8), "HSV").convert("RGB")
            pixels.append(np.asarray(rgb))
            dist = rng.dirichlet(np.ones(len(EMOTION6_DISTRIBUTION)))
            dist = 0.4 * dist + 0.6 * np.eye(len(EMOTION6_DISTRIBUTION))[label]
            votes.append(dist)
            valence.append(np.clip(v + rng.normal(0, 0.8), 1, 9))
            arousal.append(np.clip(a + rng.normal(0, 0.8), 1, 9))
            ids.append(f"synthetic_{name}_{k:04d}")
            labels.append(label)
    return ImageSet(
        name="synthetic_evoked",
        label_set_name="emotion6",
        ids=np.array(ids, dtype=object),
        splits=np.array(["test"] * len(ids), dtype=object),
        labels=np.array(labels, dtype=np.int64),
        pixels=np.stack(pixels),
        soft_labels=np.array(votes, dtype=np.float32),
        soft_label_names=EMOTION6_DISTRIBUTION,
        valence=np.array(valence, dtype=np.float32),
        arousal=np.array(arousal, dtype=np.float32),
        notes=("synthetic colour images (smoke profile): not a measurement of anything real",),
    )
