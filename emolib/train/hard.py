"""Hard subsets (FER-2013-Hard, Emotion6-Hard) that mean something.

FER-2013: out-of-fold probabilities of a probe from k-fold cross-fitting, where the probe is a
logistic regression on the image features of the best trained CNN (the inputs of its last
layer; ``cnn.hard_probe: cnn``; the best by PublicTest accuracy, so PrivateTest chooses
nothing) or, with ``hard_probe: hog``, on HOG features. A face is hard when the probe is wrong
on it or gives its true class p < ``cnn.hard_threshold``. Faces are mined over the test pool
(PublicTest + PrivateTest).

Emotion6: hard when fewer than ``cnn.hard_vote_share`` of its own voters chose its label
(annotator disagreement, from the data set's vote distributions); the HOG + colour probe is
reported beside it. The named subsets ``fer_hard`` and ``emotion6_hard`` (``emolib.catalog``)
are the hard images inside the evaluation draws every model scores, so CNNs and VLMs are
compared on the same hard ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emolib import catalog
from emolib.config import Profile
from emolib.data import ImageSet
from emolib.quiet import progress_bar
from emolib.recorder import CostRecorder
from emolib.store import write_parquet

DATASETS = ("fer2013", "emotion6")
SUBSET_OF = {dataset: name for name, dataset in catalog.HARD_DATASETS.items()}
EVAL_OF = {"fer2013": catalog.fer_eval_name, "emotion6": catalog.emotion6_eval_name}
FACE_SPLITS = ("public_test", "private_test")


def hog_features(gray: np.ndarray, cell: int = 8, bins: int = 9) -> np.ndarray:
    """(n, H, W) uint8 -> (n, (H//cell) * (W//cell) * bins) float32 histograms of oriented
    gradients: unsigned orientation, magnitude-weighted, L2-normalised per cell."""
    x = gray.astype(np.float32)
    gy, gx = np.gradient(x, axis=(1, 2))
    magnitude = np.hypot(gx, gy)
    which = np.minimum((np.mod(np.arctan2(gy, gx), np.pi) / np.pi * bins).astype(np.int64), bins - 1)
    n, h, w = x.shape
    ch, cw = h // cell, w // cell
    onehot = np.zeros((n, ch * cell, cw * cell, bins), dtype=np.float32)
    np.put_along_axis(onehot, which[:, : ch * cell, : cw * cell, None],
                      magnitude[:, : ch * cell, : cw * cell, None], axis=3)
    hist = onehot.reshape(n, ch, cell, cw, cell, bins).sum(axis=(2, 4))
    hist /= np.sqrt((hist**2).sum(axis=-1, keepdims=True)) + 1e-6
    return hist.reshape(n, -1)


def colour_histogram(rgb: np.ndarray, bins: int = 4) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (bins**3,) normalised HSV histogram."""
    hsv = np.asarray(Image.fromarray(rgb).convert("HSV")).reshape(-1, 3) // (256 // bins)
    flat = (hsv[:, 0] * bins + hsv[:, 1]) * bins + hsv[:, 2]
    return np.bincount(flat, minlength=bins**3).astype(np.float32) / len(flat)


def evoked_features(image_set: ImageSet, size: int = 64) -> np.ndarray:
    """(n, d) HOG of a size-px gray copy + HSV histogram of every (lazily read) image."""
    rows = []
    for i in progress_bar(range(len(image_set)), desc="probe features", leave=False):
        img = image_set.image(i)
        rgb = np.stack([img] * 3, -1) if img.ndim == 2 else img
        small = Image.fromarray(rgb).resize((size, size), Image.BILINEAR)
        gray = np.asarray(small.convert("L"))
        rows.append(np.concatenate([hog_features(gray[None])[0], colour_histogram(np.asarray(small))]))
    return np.stack(rows)


def face_features(image_set: ImageSet) -> np.ndarray:
    """(n, d) HOG of the 48 px gray faces."""
    from emolib.train.augment import to_gray_uint8

    return hog_features(to_gray_uint8(np.asarray(image_set.pixels)))


def out_of_fold_proba(features: np.ndarray, labels: np.ndarray, n_classes: int, folds: int = 5,
                      seed: int = 0, C: float = 0.1) -> np.ndarray:
    """(n, n_classes) probabilities, each row from the probe fitted on the other folds."""
    proba = np.zeros((len(labels), n_classes))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit, held in splitter.split(features, labels):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=300))
        probe.fit(features[fit], labels[fit])
        proba[np.ix_(held, probe[-1].classes_)] = probe.predict_proba(features[held])
    return proba


def best_trained(trained: list) -> object:
    """The trained CNN (``train.stage.TrainedModel``) with the best PublicTest accuracy."""
    if not trained:
        raise ValueError("the CNN probe needs the trained CNNs: pass train.stage.train_all's result "
                         "(or set cnn.hard_probe: hog)")
    return max(trained, key=lambda t: t.result.best_val_acc)


def cnn_face_features(image_set: ImageSet, trained: list) -> tuple[np.ndarray, str]:
    """(n, d) image features of the best trained CNN for the 48 px gray faces, and its name."""
    from emolib.train.augment import to_gray_uint8
    from emolib.train.loop import penultimate_features

    best = best_trained(trained)
    return penultimate_features(best.model, to_gray_uint8(np.asarray(image_set.pixels)), best.settings), best.name


def hard_table(image_set: ImageSet, proba: np.ndarray, threshold: float) -> pd.DataFrame:
    """Per image: image_id, split, y_true, probe y_pred, p_true and ``hard`` (wrong or p_true
    below ``threshold``)."""
    y = image_set.labels
    p_true = proba[np.arange(len(y)), y]
    y_pred = proba.argmax(1)
    return pd.DataFrame({"image_id": image_set.ids, "split": image_set.splits, "y_true": y,
                         "y_pred": y_pred, "p_true": p_true,
                         "hard": (y_pred != y) | (p_true < threshold)})


def mine_hard_subset(profile: Profile, dataset: str, trained: list | None = None) -> pd.DataFrame:
    """Mine (or read) the hard table of ``dataset`` (``fer2013`` or ``emotion6``); ``trained``:
    the CNNs of ``train.stage.train_all`` (needed for the CNN probe of the faces)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; hard subsets exist for {DATASETS}")
    store = catalog.hard_store(profile, dataset)
    path = store.path("hard.parquet")
    if path.is_file() and store.is_complete():
        return pd.read_parquet(path)
    from emolib.data import load_evoked, load_faces

    cfg, recorder = profile.cnn, CostRecorder(store.dir, "hard")
    image_set = load_evoked(profile) if dataset == "emotion6" else load_faces(profile).split(*FACE_SPLITS)
    with recorder.phase("preprocess", model="probe_features", items=len(image_set)):
        if dataset == "emotion6":
            features, source = evoked_features(image_set), "HOG + colour histogram"
        elif cfg.hard_probe == "cnn":
            features, source = cnn_face_features(image_set, trained)
            source = f"{source} features"
        else:
            features, source = face_features(image_set), "HOG"
    with recorder.phase("train", model="logreg_probe", items=len(image_set), folds=cfg.hard_folds):
        proba = out_of_fold_proba(features, image_set.labels, len(image_set.label_set), cfg.hard_folds, profile.seed)
    table = hard_table(image_set, proba, cfg.hard_threshold)
    if dataset == "emotion6":
        own = [list(image_set.soft_label_names).index(n) for n in image_set.label_names]
        table["vote_share"] = image_set.soft_labels[np.arange(len(image_set)), own]
        table["hard"] = table["vote_share"] < cfg.hard_vote_share
        rule = f"fewer than {cfg.hard_vote_share:.0%} of voters chose the label"
    else:
        rule = f"probe wrong or p(true) < {cfg.hard_threshold:g}"
    write_parquet(path, table)
    within = set(catalog.subset_ids(profile, EVAL_OF[dataset](profile)))
    hard_ids = table.loc[table["hard"] & table["image_id"].isin(within), "image_id"].to_numpy()
    catalog.write_stage_subset(store, SUBSET_OF[dataset], image_set.name, hard_ids)
    store.write_meta(n=len(table), n_hard=int(table["hard"].sum()), rule=rule,
                     probe=f"logistic regression on {source}, {cfg.hard_folds}-fold out of fold",
                     probe_accuracy=float((table["y_pred"] == table["y_true"]).mean()))
    return table


def hard_subset_summary(profile: Profile, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per dataset: images, hard images, hard share, the rule, the probe and its out-of-fold
    accuracy (from each hard folder's meta)."""
    rows = []
    for name, t in tables.items():
        meta = catalog.hard_store(profile, name).read_meta()
        rows.append({"dataset": name, "n": len(t), "n_hard": int(t["hard"].sum()),
                     "hard_share": float(t["hard"].mean()),
                     "rule": meta["rule"], "probe": meta["probe"],
                     "probe_oof_accuracy": float((t["y_pred"] == t["y_true"]).mean())})
    return pd.DataFrame(rows)
