"""The predictions tables and image sets that human evaluation reads.

Sources, in order: the CNN and VLM stages' predictions for the current profile (when those
stages have run), the recorded GPT-4V answers on FER+ (real data only), and for the smoke
profile two deterministic nearest-centroid classifiers on the synthetic sets, clearly named
``synthetic-*``: their errors exercise every code path and measure nothing real.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from emolib.config import Profile
from emolib.data import ImageSet, load_evoked, load_faces
from emolib.labels import get_label_set
from emolib.paths import resolve_data_path
from emolib.predictions import NO_PREDICTION, make_predictions, read_predictions

GPT4V_FERPLUS = "recorded/gpt4v/ferplus_predictions.csv"
# (module, function) of the upstream stages that may expose a predictions path.
UPSTREAM = (
    ("emolib.train", "cnn_predictions_path"),
    ("emolib.vlm", "vlm_predictions_path"),
)


def load_image_sets(profile: Profile) -> dict[str, ImageSet]:
    """The face and evoked-emotion sets of a profile, keyed by ``ImageSet.name``."""
    sets = [load_faces(profile), load_evoked(profile)]
    return {s.name: s for s in sets}


def recorded_gpt4v_predictions(faces: ImageSet, csv_path: str | Path) -> pd.DataFrame:
    """GPT-4V's recorded FER+ answers as a predictions table (label set ferplus8).

    ``csv_path``: ``name, gt, gpt4v`` (gpt4v: ranked, comma-separated; its first label is the
    prediction). Rows join FER-2013 images through the ``ferplus_name`` meta column of
    ``faces`` (attach_ferplus); y_true is the recorded ``gt``. A first label outside ferplus8
    is an unparseable answer (y_pred = -1), kept. Names that match no image, or two images,
    are not joined; ``collect_predictions`` reports how many."""
    if faces.meta is None or "ferplus_name" not in faces.meta:
        raise ValueError(f"{faces.name}: no ferplus_name meta column; load it with FER+ attached")
    recorded = pd.read_csv(csv_path)
    frame = faces.to_frame()[["image_id", "split", "ferplus_name"]].dropna(subset=["ferplus_name"])
    frame = frame[~frame["ferplus_name"].duplicated(keep=False)]  # one name, two images: ambiguous
    joined = recorded.merge(frame, left_on="name", right_on="ferplus_name", how="inner")
    ferplus8 = get_label_set("ferplus8")
    first = joined["gpt4v"].fillna("").str.split(",").str[0].str.strip().str.lower()
    y_pred = np.array(
        [ferplus8.names.index(w) if w in ferplus8.names else NO_PREDICTION for w in first]
    )
    return make_predictions(
        image_id=joined["image_id"].to_numpy(),
        split=joined["split"].to_numpy(),
        dataset=[faces.name] * len(joined),
        label_set=["ferplus8"] * len(joined),
        y_true=[ferplus8.names.index(g) for g in joined["gt"]],
        y_pred=y_pred,
        model=["gpt-4-vision-preview"] * len(joined),
        backend=["recorded"] * len(joined),
        variant=["zero-shot;Lian2023"] * len(joined),
        raw_response=joined["gpt4v"].to_numpy(),
        parse_status=np.where(y_pred >= 0, "text_match", "unparseable"),
    )


def _centroid_predict(
    features: np.ndarray, labels: np.ndarray, fit: np.ndarray, k: int
) -> np.ndarray:
    """Nearest class centroid (Euclidean) fitted on rows ``fit``; (n, d) -> (n,) labels."""
    centroids = np.stack([features[fit & (labels == c)].mean(axis=0) for c in range(k)])
    dist = ((features[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    return dist.argmin(axis=1)


def _downsample(images: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(
        [
            np.asarray(
                Image.fromarray(im).resize((size, size), Image.BILINEAR), dtype=np.float32
            ).ravel()
            / 255
            for im in images
        ]
    )


def synthetic_predictions(faces: ImageSet, evoked: ImageSet) -> pd.DataFrame:
    """Deterministic nearest-centroid predictions on the synthetic sets (smoke profile):
    faces from 4x4 and 8x8 pixels (fit on train, scored on private_test), evoked images from
    their mean brightness (fit and scored on all). Model names start with ``synthetic-``."""
    frames = []
    test = faces.splits == "private_test"
    for size in (4, 8):
        y_pred = _centroid_predict(
            _downsample(faces.images(), size),
            faces.labels,
            faces.splits == "train",
            len(faces.label_set),
        )[test]
        frames.append(_table(faces.subset(test), y_pred, f"synthetic-centroid-{size}px"))
    brightness = np.stack([[im.mean() / 255] for im in evoked.images()])
    y_pred = _centroid_predict(
        brightness, evoked.labels, np.ones(len(evoked), bool), len(evoked.label_set)
    )
    frames.append(_table(evoked, y_pred, "synthetic-centroid-brightness"))
    return pd.concat(frames, ignore_index=True)


def _table(images: ImageSet, y_pred: np.ndarray, model: str) -> pd.DataFrame:
    n = len(images)
    return make_predictions(
        image_id=images.ids,
        split=images.splits,
        dataset=[images.name] * n,
        label_set=[images.label_set_name] * n,
        y_true=images.labels,
        y_pred=y_pred,
        model=[model] * n,
        backend=["synthetic"] * n,
        variant=["smoke"] * n,
    )


def upstream_paths(profile: Profile) -> dict[str, list[Path]]:
    """Predictions files the CNN/VLM stages expose for this profile (existing files only)."""
    found: dict[str, list[Path]] = {}
    for module_name, function in UPSTREAM:
        try:
            get_path = getattr(importlib.import_module(module_name), function)
            result = get_path(profile)
        except Exception:  # a stage not built yet or not run: reported by collect_predictions
            continue
        paths = (
            list(result.values())
            if isinstance(result, dict)
            else ([result] if isinstance(result, str | Path) else list(result or []))
        )
        found[function] = [Path(p) for p in paths if p is not None and Path(p).is_file()]
    return found


def collect_predictions(
    profile: Profile, image_sets: dict[str, ImageSet]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All predictions human evaluation studies for this profile, and a status table
    (source, status, rows, note) saying which sources were found and which were not."""
    frames, status = [], []
    for function, paths in upstream_paths(profile).items():
        table = read_predictions(paths) if paths else None
        status.append(
            {
                "source": function,
                "status": "found" if paths else "missing",
                "rows": 0 if table is None else len(table),
                "note": ", ".join(map(str, paths)) or "stage has not run for this config",
            }
        )
        frames += [] if table is None else [table]
    if profile.data.source == "synthetic":
        faces, evoked = (s for s in image_sets.values())
        table = synthetic_predictions(faces, evoked)
        status.append(
            {
                "source": "synthetic nearest-centroid",
                "status": "found",
                "rows": len(table),
                "note": "smoke stand-in models on synthetic images: measures nothing real",
            }
        )
        frames.append(table)
    elif profile.human_eval.recorded_gpt4v:
        frames, status = _add_gpt4v(profile, image_sets, frames, status)
    predictions = pd.concat(frames, ignore_index=True) if frames else read_predictions([])
    if profile.human_eval.models:
        predictions = predictions[predictions["model"].isin(profile.human_eval.models)]
    return predictions.reset_index(drop=True), pd.DataFrame(status)


def _add_gpt4v(profile: Profile, image_sets: dict[str, ImageSet], frames: list, status: list):
    path = resolve_data_path(GPT4V_FERPLUS)
    faces = next(
        (s for s in image_sets.values() if s.meta is not None and "ferplus_name" in s.meta), None
    )
    if not path.is_file() or faces is None:
        reason = f"{path} missing" if not path.is_file() else "no FER+ names on the face set"
        status.append(
            {"source": "recorded gpt4v (FER+)", "status": "missing", "rows": 0, "note": reason}
        )
        return frames, status
    table = recorded_gpt4v_predictions(faces, path)
    status.append(
        {
            "source": "recorded gpt4v (FER+)",
            "status": "found",
            "rows": len(table),
            "note": "Lian et al. 2023, gpt-4-vision-preview, FER+ test (PrivateTest); "
            f"{len(pd.read_csv(path)) - len(table)} recorded answer(s) without a unique image",
        }
    )
    return [*frames, table], status
