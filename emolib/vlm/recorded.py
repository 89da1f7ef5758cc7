"""Replay answers recorded elsewhere through the same parser and metrics.

The GPT-4V files (``<data root>/recorded/gpt4v/``, Lian et al., arXiv 2312.04293) hold
``name, gt, gpt4v`` where ``gpt4v`` is the model's *ranked* list of labels (top 5 for FER+,
all 8 for ArtPhoto/Abstract). Its prediction is the first label of that list (the benchmark's
own top-1 reading); the first item goes through ``parse_answer`` like any answer, and the
whole list is kept in ``raw_response``.

- ``ferplus``: names are FER+ image names (``fer00NNNNN.png``) of the FER+ test split
  (= FER-2013 PrivateTest). They are joined to FER-2013 images through FER+'s
  ``kaggle_to_ferplus.csv``; ``y_true`` is the FER+ plurality label from
  ``emolib.data.attach_ferplus`` (label set ferplus8), which equals the file's ``gt``.
- ``artphoto`` / ``abstract``: no images here; ``y_true`` is the fine-grained Mikels-8 class
  from ``*_labels.csv`` joined by name (label set mikels8). The file's ``gt`` is sentiment
  (positive/negative); ``sentiment_frame`` scores the top-1 label's sentiment against it.

Rows that cannot be joined are counted in ``RecordedSet.unmatched``, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.config import VLMConfig
from emolib.data import ImageSet, attach_ferplus
from emolib.data.ferplus import load_kaggle_link, read_checked_csv
from emolib.labels import LabelSet, get_label_set
from emolib.paths import resolve_data_path
from emolib.predictions import NO_PREDICTION, make_predictions
from emolib.vlm.base import ModelSpec, ModelUnavailable
from emolib.vlm.parse import parse_answer

RECORDED_DIR = "recorded"
DATASETS = ("ferplus", "artphoto", "abstract")
SENTIMENTS = ("negative", "positive")
ANSWER_COLUMNS = ("name", "gt", "gpt4v")  # *_predictions.csv: image name, truth, ranked answer


@dataclass(frozen=True)
class RecordedSet:
    """Recorded answers of one data set joined to their ground truth."""

    dataset: str
    label_set: LabelSet
    frame: pd.DataFrame  # image_id, split, y_true, raw_response (+ gt_file, sentiment_gt)
    unmatched: int = 0
    notes: tuple[str, ...] = field(default=())


def recorded_dir(model: str) -> Path:
    return resolve_data_path(RECORDED_DIR) / model


def read_recorded_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A recorded-answers CSV holding at least ``columns`` (``data.ferplus.read_checked_csv``:
    a DataError naming the file, the missing, expected and found columns otherwise)."""
    return read_checked_csv(path, columns, "Recorded answers are CSVs of name, gt and the model's ranked labels "
                                           "(README: recorded/).")


def first_ranked(answer: str | float | None) -> str | None:
    """The first item of a comma-separated ranked list ('' or NaN -> None)."""
    if not isinstance(answer, str) or not answer.strip():
        return None
    return answer.split(",")[0].strip()


def ferplus_test_faces(ferplus_dir: Path) -> ImageSet:
    """FER-2013 PrivateTest rows as a lazy ImageSet (no pixels decoded) with FER+ attached,
    built from ``kaggle_to_ferplus.csv``: enough to join and label recorded answers."""
    link, _ = load_kaggle_link(ferplus_dir)  # the FER+ folder's copy, else the one shipped with emolib
    link = link[link["kaggle_path"].str.contains("PrivateTest_")].reset_index(drop=True)
    fer7 = get_label_set("fer7")
    return attach_ferplus(ImageSet(
        name="fer2013", label_set_name="fer7",
        ids=link["kaggle_path"].map(lambda p: Path(p).stem).to_numpy(dtype=object),
        splits=np.full(len(link), "private_test", dtype=object),
        labels=np.array([fer7.index(c) for c in link["kaggle_class"]], dtype=np.int64),
        sources=tuple(link["kaggle_path"]), meta=link[["kaggle_path"]].copy()), ferplus_dir)


def load_recorded_ferplus(model: str = "gpt4v", faces: ImageSet | None = None,
                          ferplus_dir: str | Path = "fer2013/ferplus") -> RecordedSet:
    """Recorded FER+ answers joined to FER-2013 PrivateTest (see module docstring)."""
    answers = read_recorded_csv(recorded_dir(model) / "ferplus_predictions.csv", ANSWER_COLUMNS)
    faces = faces if faces is not None else ferplus_test_faces(resolve_data_path(ferplus_dir))
    meta = faces.meta.assign(image_id=faces.ids, split=faces.splits)
    meta = meta[meta["ferplus_name"].notna()]
    meta = meta[~meta["ferplus_name"].duplicated(keep=False)]  # one name, two faces: ambiguous, not joined
    joined = answers.merge(meta[["ferplus_name", "image_id", "split", "ferplus_label"]],
                           left_on="name", right_on="ferplus_name", how="left")
    matched = joined["image_id"].notna() & (joined["ferplus_label"].fillna(-1) >= 0)
    kept = joined[matched]
    frame = pd.DataFrame({
        "image_id": kept["image_id"].to_numpy(dtype=object), "split": kept["split"].to_numpy(dtype=object),
        "y_true": kept["ferplus_label"].to_numpy(dtype=np.int64), "raw_response": kept["gpt4v"].to_numpy(),
        "gt_file": kept["gt"].to_numpy(),
    })
    return RecordedSet("ferplus", get_label_set("ferplus8"), frame, int((~matched).sum()))


def load_recorded_evoked(dataset: str, model: str = "gpt4v") -> RecordedSet:
    """Recorded ArtPhoto/Abstract answers with fine labels (mikels8) joined by name."""
    folder = recorded_dir(model)
    answers = read_recorded_csv(folder / f"{dataset}_predictions.csv", ANSWER_COLUMNS)
    fine = read_recorded_csv(folder / f"{dataset}_labels.csv", ("name", "gt"))[["name", "gt"]]
    fine = fine.rename(columns={"gt": "fine"})
    mikels = get_label_set("mikels8")
    joined = answers.merge(fine.drop_duplicates("name"), on="name", how="left")
    y_true = np.array([mikels.index(w) if isinstance(w, str) else -1 for w in joined["fine"]])
    matched = y_true >= 0
    frame = pd.DataFrame({
        "image_id": joined["name"].to_numpy(dtype=object)[matched],
        "split": np.full(matched.sum(), "test", dtype=object), "y_true": y_true[matched],
        "raw_response": joined["gpt4v"].to_numpy()[matched],
        "sentiment_gt": joined["gt"].to_numpy()[matched],
    })
    return RecordedSet(dataset, mikels, frame, int((~matched).sum()))


# the images each recorded file answered: FER+ names FER-2013 PrivateTest faces
IMAGE_SETS = {"ferplus": "fer2013", "artphoto": "artphoto", "abstract": "abstract"}
RECORDED_PROMPT = "recorded"  # the prompt of the study that recorded the answers


def recorded_subset_name(recorded: RecordedSet, model: str) -> str:
    """The named subset of the images a recorded file answered (``emolib.catalog``):
    ``fer_private_gpt4v`` for FER+, ``artphoto_gpt4v``, ``abstract_gpt4v``."""
    return f"fer_private_{model}" if recorded.dataset == "ferplus" else f"{recorded.dataset}_{model}"


def recorded_predictions(recorded: RecordedSet, model: str = "gpt4v", embedder=None,
                         threshold: float = 0.6) -> pd.DataFrame:
    """The predictions table of recorded answers: top-1 of each ranked list, parsed. The
    ``dataset`` column names the images (FER+ answers: ``fer2013``), ``label_set`` the labels
    (``ferplus8``: truth is the FER+ plurality), ``subset`` the recorded coverage."""
    parsed = [parse_answer(first_ranked(a), recorded.label_set, embedder, threshold)
              for a in recorded.frame["raw_response"]]
    return make_predictions(
        image_id=recorded.frame["image_id"], split=recorded.frame["split"],
        dataset=IMAGE_SETS[recorded.dataset], label_set=recorded.label_set.name,
        y_true=recorded.frame["y_true"], y_pred=[p.label if p.label >= 0 else NO_PREDICTION for p in parsed],
        model=model, backend="recorded", restoration="none", prompt=RECORDED_PROMPT, seed=0,
        subset=recorded_subset_name(recorded, model),
        raw_response=[a if isinstance(a, str) else None for a in recorded.frame["raw_response"]],
        parse_status=[p.status for p in parsed], latency_s=np.nan)


def sentiment_frame(recorded: RecordedSet, predictions: pd.DataFrame) -> pd.DataFrame:
    """Sentiment of the file's ``gt`` vs the sentiment of the predicted label (0 negative,
    1 positive, -1 no answer): columns image_id, y_true, y_pred."""
    labels = recorded.label_set
    y_pred = [SENTIMENTS.index(labels.sentiment(int(p))) if p >= 0 else NO_PREDICTION
              for p in predictions["y_pred"]]
    y_true = [SENTIMENTS.index(s) for s in recorded.frame["sentiment_gt"]]
    return pd.DataFrame({"image_id": predictions["image_id"], "y_true": y_true, "y_pred": y_pred})


class RecordedBackend:
    """Replays ``recorded/<model>/``; ``predict`` is not offered (use ``load_recorded_*``)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.cache = None

    def predict(self, image_set, label_set, prompt, variant):
        raise NotImplementedError("recorded answers are fixed: use load_recorded_ferplus/_evoked")


def load_recorded_backend(spec: ModelSpec, config: VLMConfig, cache=None, device: str = "cpu"):
    """Available when ``recorded/<model>/`` holds at least one known file."""
    folder = recorded_dir(spec.model)
    files = [d for d in DATASETS if (folder / f"{d}_predictions.csv").is_file()]
    if not files:
        raise ModelUnavailable(f"no recorded answers in {folder}")
    return RecordedBackend(spec)
