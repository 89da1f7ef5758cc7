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

Rows that cannot be joined, or whose fine label is no label of the label set, are counted in
``RecordedSet.unmatched``, never dropped silently. Answers of any other model or data set are
named in the profile (``vlm.recorded_files``; format and join rules in
``emolib.vlm.recorded_files``). ``RecordedBackend`` replays both: ``load_backend("recorded:<model>")``
answers ``predict`` for the images of any set its folder or its entries recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.config import ConfigError, VLMConfig
from emolib.data import ImageSet, attach_ferplus
from emolib.data.ferplus import load_kaggle_link, read_checked_csv
from emolib.labels import LabelSet, get_label_set, normalize_label
from emolib.paths import resolve_data_path
from emolib.predictions import NO_PREDICTION, image_columns, make_predictions
from emolib.vlm.answer_files import first_ranked
from emolib.vlm.embed import lazy_embedder
from emolib.vlm.parse import parse_answer
from emolib.vlm.recorded_files import RECORDED_PROMPT, entry_answers, parse_texts, recorded_file_subset
from emolib.vlm.types import DEFAULT_PROMPT, ModelSpec, ModelUnavailable

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


def load_recorded_evoked(dataset: str, model: str = "gpt4v", label_set: str = "mikels8") -> RecordedSet:
    """Recorded ArtPhoto/Abstract answers with fine labels joined by name: the ``gt`` of
    ``<set>_labels.csv``, or of the predictions file itself when there is no labels file (the
    shipped files' ``gt`` is sentiment there: every row is then unmatched, and counted). A
    name without a fine label, or whose label is no label of ``label_set``, is unmatched
    (``RecordedSet.unmatched``, examples in ``notes``), never an error."""
    folder = recorded_dir(model)
    answers = read_recorded_csv(folder / f"{dataset}_predictions.csv", ANSWER_COLUMNS)
    labels_file = folder / f"{dataset}_labels.csv"
    fine = read_recorded_csv(labels_file, ("name", "gt")) if labels_file.is_file() else answers
    fine = fine[["name", "gt"]].rename(columns={"gt": "fine"})
    labels = get_label_set(label_set)
    joined = answers.merge(fine.drop_duplicates("name"), on="name", how="left")
    members = [normalize_label(w, labels) if isinstance(w, str) else None for w in joined["fine"]]
    y_true = np.array([labels.names.index(m) if m is not None else -1 for m in members], dtype=np.int64)
    matched = y_true >= 0
    frame = pd.DataFrame({
        "image_id": joined["name"].to_numpy(dtype=object)[matched],
        "split": np.full(matched.sum(), "test", dtype=object), "y_true": y_true[matched],
        "raw_response": joined["gpt4v"].to_numpy()[matched],
        "sentiment_gt": joined["gt"].to_numpy()[matched],
    })
    notes = [f"fine labels from {labels_file.name if labels_file.is_file() else f'{dataset}_predictions.csv (gt)'}"]
    if (~matched).any():
        lost = joined.loc[~matched, ["name", "fine"]].head(3).itertuples(index=False)
        notes.append(f"{int((~matched).sum())} name(s) without a label of {label_set}, e.g. "
                     + ", ".join(f"{n} ({f if isinstance(f, str) else 'no label'})" for n, f in lost))
    return RecordedSet(dataset, labels, frame, int((~matched).sum()), tuple(notes))


# the images each recorded file answered: FER+ names FER-2013 PrivateTest faces
IMAGE_SETS = {"ferplus": "fer2013", "artphoto": "artphoto", "abstract": "abstract"}


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


# ----------------------------------------------------------------------------- the backend
@dataclass(frozen=True)
class AnswerSource:
    """Recorded answers for the images of one data set (``dataset``: its ``ImageSet.name``):
    ``read()`` gives ``key, text, raw_response`` (text: what is parsed), ``key_of(image_set)``
    each image's key (None: the image cannot be looked up); ``where`` names the file."""

    dataset: str
    where: str
    read: Callable[[], pd.DataFrame]
    key_of: Callable[[ImageSet], np.ndarray]


def _own_ids(image_set: ImageSet) -> np.ndarray:
    return np.asarray(image_set.ids, dtype=object)


def _ferplus_names(image_set: ImageSet) -> np.ndarray:
    """The FER+ name of each FER-2013 image (its meta if FER+ is attached, else FER+'s
    ``kaggle_to_ferplus`` map by id); None for a name two images share (ambiguous)."""
    if image_set.meta is not None and "ferplus_name" in image_set.meta:
        names = image_set.meta["ferplus_name"]
    else:
        link = load_kaggle_link()[0]
        by_id = pd.Series(link["ferplus_png"].to_numpy(), index=link["kaggle_path"].map(lambda p: Path(p).stem))
        names = pd.Series(image_set.ids).map(by_id[~by_id.index.duplicated(keep=False)])
    names = pd.Series(names).reset_index(drop=True)
    return names.where(names.notna() & ~names.duplicated(keep=False), None).to_numpy(dtype=object)


def _folder_answers(model: str, dataset: str) -> pd.DataFrame:
    answers = read_recorded_csv(recorded_dir(model) / f"{dataset}_predictions.csv", ANSWER_COLUMNS)
    answers = answers[answers["name"].notna() & ~answers["name"].duplicated(keep=False)]
    raw = [v if isinstance(v, str) and v.strip() else None for v in answers["gpt4v"]]
    return pd.DataFrame({"key": answers["name"], "text": [first_ranked(v) for v in raw], "raw_response": raw},
                        dtype=object)


def answer_sources(model: str, config: VLMConfig) -> dict[str, AnswerSource]:
    """Every recorded source of ``model`` by the data set it answers: the files of
    ``recorded/<model>/`` that exist (when ``vlm.recorded`` names ``model``), then its
    ``vlm.recorded_files`` entries (ConfigError when two sources answer the same data set)."""
    sources: dict[str, AnswerSource] = {}
    for dataset in DATASETS if model in config.recorded else ():
        path = recorded_dir(model) / f"{dataset}_predictions.csv"
        if path.is_file():
            key_of = _ferplus_names if dataset == "ferplus" else _own_ids
            sources[IMAGE_SETS[dataset]] = AnswerSource(IMAGE_SETS[dataset], str(path),
                                                        cache(lambda d=dataset: _folder_answers(model, d)), key_of)
    for entry in config.recorded_files:
        if entry.model != model:
            continue
        if entry.set in sources:
            raise ConfigError(f"vlm.recorded_files entry {{model: {model}, set: {entry.set}}}: {model}'s answers on "
                              f"{entry.set} are already in {sources[entry.set].where}; remove one of them")
        sources[entry.set] = AnswerSource(entry.set, entry.path, cache(lambda e=entry: entry_answers(e)), _own_ids)
    return sources


def check_recorded_subsets(config: VLMConfig) -> None:
    """ConfigError when a ``recorded_files`` entry would name the same subset as a shipped
    folder's file (``artphoto_gpt4v`` twice, say)."""
    shipped = {f"fer_private_{m}" for m in config.recorded} | {f"{d}_{m}" for m in config.recorded
                                                              for d in DATASETS if d != "ferplus"}
    for entry in config.recorded_files:
        if recorded_file_subset(entry.set, entry.model) in shipped:
            raise ConfigError(f"vlm.recorded_files entry {{model: {entry.model}, set: {entry.set}}}: "
                              f"recorded/{entry.model}/ (vlm.recorded) answers {entry.set} already; remove "
                              f"{entry.model} from vlm.recorded or this entry")


class RecordedBackend:
    """Replays the answers ``model`` gave elsewhere (``answer_sources``): ``predict`` returns,
    for each image of an image set, its recorded answer parsed like any model's answer; an
    image the recording lacks is a row with ``parse_status == "not_recorded"`` (no answer,
    counted as wrong). Truth, split and subset come from the image set, as for every backend."""

    def __init__(self, spec: ModelSpec, sources: dict[str, AnswerSource], config: VLMConfig) -> None:
        self.spec = spec
        self.sources = sources
        self.cache = None  # answers are files, not calls: nothing to cache
        self.embedder = lazy_embedder()
        self.threshold = config.embedding_threshold

    def predict(self, image_set: ImageSet, label_set: LabelSet, prompt: str | tuple[str, ...] | None = None,
                prompt_name: str = DEFAULT_PROMPT) -> pd.DataFrame:
        """Predictions table (``emolib.predictions.COLUMNS``) of the recorded answers for
        ``image_set``'s images, in its order; ``prompt`` column ``recorded``. ValueError when
        the recording cannot answer: no answers for this data set, another prompt, or
        processed (restored) pixels."""
        who = f"recorded:{self.spec.model}"
        if prompt is not None or prompt_name not in (DEFAULT_PROMPT, RECORDED_PROMPT):
            raise ValueError(f"{who} answered its recording's own prompt only; it cannot answer prompt "
                             f"{prompt_name!r}: call predict with prompt=None")
        if image_set.variant != "none":
            raise ValueError(f"{who} answered the original images, not {image_set.variant!r} ones")
        source = self.sources.get(image_set.name)
        if source is None:
            raise ValueError(f"{who} has no answers for data set {image_set.name!r}; it has answers for "
                             f"{sorted(self.sources)} (recorded/{self.spec.model}/ and vlm.recorded_files)")
        answers = source.read().set_index("key")
        keys = pd.Series(source.key_of(image_set), dtype=object)
        known = keys.isin(answers.index).to_numpy()
        texts = [answers.at[k, "text"] if ok else None for k, ok in zip(keys, known, strict=True)]
        y_pred, status = parse_texts(texts, label_set, self.embedder, self.threshold)
        return make_predictions(
            **image_columns(image_set) | {"label_set": label_set.name},
            y_pred=[p if ok else NO_PREDICTION for p, ok in zip(y_pred, known, strict=True)],
            model=self.spec.model, backend="recorded", prompt=RECORDED_PROMPT, seed=0,
            raw_response=[answers.at[k, "raw_response"] if ok else None for k, ok in zip(keys, known, strict=True)],
            parse_status=[s if ok else "not_recorded" for s, ok in zip(status, known, strict=True)],
            latency_s=np.nan)


def load_recorded_backend(spec: ModelSpec, config: VLMConfig, cache=None, device: str = "cpu") -> RecordedBackend:
    """Available when ``recorded/<model>/`` holds a known file (``DATASETS``) and ``vlm.recorded``
    names ``model``, or the profile names a file of ``model`` in ``vlm.recorded_files``."""
    check_recorded_subsets(config)
    sources = answer_sources(spec.model, config)
    if not sources:
        folder = recorded_dir(spec.model)
        others = sorted(p.name for p in folder.glob("*_predictions.csv")) if folder.is_dir() else []
        hint = (f"; it holds {others}: name such files in vlm.recorded_files (README, 'Your own recorded answers')"
                if others else "")
        shipped = (f"{folder} holds none of {[f'{d}_predictions.csv' for d in DATASETS]}"
                   if spec.model in config.recorded else f"vlm.recorded does not name {spec.model}")
        raise ModelUnavailable(f"no recorded answers of {spec.model}: {shipped} and vlm.recorded_files names no "
                               f"file of {spec.model}{hint}")
    return RecordedBackend(spec, sources, config)
