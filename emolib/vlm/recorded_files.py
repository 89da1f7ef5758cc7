"""Recorded answers of any model on any data set: one file per (model, set), named in the profile.

**Format** (read by ``emolib.vlm.answer_files``). A CSV (``.csv``) or JSON Lines
(``.jsonl``/``.ndjson``, one object per line) with

- ``image_id`` (required): the image's id in its data set, as its loader names it;
- ``raw_answer`` (required): the model's answer as it gave it (free text, JSON, a label word);
- ``ranked`` (optional): the model's labels ranked best first, comma-separated ("happy,
  surprise, neutral"; in JSONL a list too);
- ``y_true`` (optional): the true label, a word of the label set (synonyms accepted).

Other columns are ignored; an empty cell (or JSON null) is no value. The profile entry's
``columns`` maps a format column to the file's own name for it (``{image_id: name, y_true:
gt, ranked: gpt4v}``), so a benchmark's own file needs no rewriting. ``row`` below is the
answer's position in the file: the n-th data row of a CSV, line n of a JSONL file.

**Profile entry** (``vlm.recorded_files``, ``emolib.config.RecordedFileConfig``)::

    vlm:
      recorded_files:
        - {model: gpt4v, set: rafdb, path: recorded/rafdb.csv, label_set: fer7, answer: first_ranked}

``answer``: ``raw`` (default) reads ``raw_answer`` with ``parse_answer`` like any model's
answer; ``first_ranked`` reads the first item of ``ranked`` (a benchmark's top-1 reading). The
predictions' ``raw_response`` holds what was read from (``raw_answer``, or the ranked list).

**Truth.** When the profile loads the data set ``set`` (``profile_images``), each row is
joined to its image by ``image_id`` and takes the image's label and split (a file ``y_true``
that disagrees is counted as ``truth_differs``); otherwise the truth is the file's ``y_true``
(split ``test``). Every row ends in exactly one ``status`` (``ROW_STATUSES``):

- ``scored``: in the predictions table; an answer that names no label of the label set (or
  is empty) is ``unparseable``: a wrong answer, counted, never dropped;
- ``not_joined``: the profile loads ``set`` but has no image with this id;
- ``truth_missing``: no truth for the row (empty ``y_true``, or an image without a label);
- ``truth_not_a_label``: ``y_true`` names no label of the label set;
- ``duplicate_id``: the id is on more than one row (which answer counts is unknowable);
- ``no_image_id``: the row has no ``image_id``.

``RecordedFile.rows`` keeps every row with its status; ``summary_table`` counts them per
file and ``RecordedFile.note`` says them in a line (the VLM stage's notes). The stage scores
each entry as a model of its own (subset ``<set>_<model>``); ``RecordedBackend.predict``
(``emolib.vlm.recorded``) serves the same answers for any image set of ``set``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.config import Profile, RecordedFileConfig, VLMConfig
from emolib.data import DataError, ImageSet, load_set
from emolib.labels import LabelSet, get_label_set, normalize_label
from emolib.paths import resolve_data_path
from emolib.predictions import NO_PREDICTION, make_predictions
from emolib.vlm.answer_files import answer_texts, read_answers
from emolib.vlm.parse import parse_answer
from emolib.vlm.types import AVAILABLE, UNAVAILABLE

RECORDED_PROMPT = "recorded"  # the prompt of the study that recorded the answers
ROW_STATUSES = ("scored", "not_joined", "truth_missing", "truth_not_a_label", "duplicate_id", "no_image_id")


def parse_texts(texts, label_set: LabelSet, embedder=None, threshold: float = 0.6) -> tuple[list[int], list[str]]:
    """``parse_answer`` of each text (None: no answer): y_pred (-1 none) and parse_status."""
    parsed = [parse_answer(t, label_set, embedder, threshold) for t in texts]
    return [p.label if p.label >= 0 else NO_PREDICTION for p in parsed], [p.status for p in parsed]


# ----------------------------------------------------------------------------- joining
def _label_index(word: str, label_set: LabelSet) -> int:
    """Index of a truth word in ``label_set``; -1 when it names no label."""
    member = normalize_label(word, label_set) if word else None
    return label_set.names.index(member) if member is not None else -1


def join_truth(answers: pd.DataFrame, label_set: LabelSet, images: ImageSet | None) -> pd.DataFrame:
    """``answers`` (``read_answers``) with ``status`` (``ROW_STATUSES``), ``y_true`` (index, -1
    none), ``split`` and ``truth_differs`` (the file's y_true is not the image's label)."""
    ids = answers["image_id"]
    file_truth = np.array([_label_index(w, label_set) for w in answers["y_true"]], dtype=np.int64)
    empty_truth = (answers["y_true"] == "").to_numpy()
    if images is None:
        y_true, split = file_truth, np.full(len(answers), "test", dtype=object)
        joined = np.ones(len(answers), dtype=bool)
        truth_missing, not_a_label = empty_truth, ~empty_truth & (file_truth < 0)
        differs = np.zeros(len(answers), dtype=bool)
    else:
        position = pd.Series(np.arange(len(images)), index=images.ids)
        position = position[~position.index.duplicated(keep=False)]  # an id two images share joins neither
        found = ids.map(position)
        joined = found.notna().to_numpy()
        at = found.fillna(0).to_numpy(dtype=np.int64)
        y_true = np.where(joined, images.labels[at], -1)
        split = np.where(joined, images.splits[at], None)
        truth_missing, not_a_label = joined & (y_true < 0), np.zeros(len(answers), dtype=bool)
        differs = joined & ~empty_truth & (file_truth != y_true)
    status = np.full(len(answers), "scored", dtype=object)
    for name, mask in (("truth_not_a_label", not_a_label), ("truth_missing", truth_missing),
                       ("not_joined", ~joined), ("duplicate_id", ids.duplicated(keep=False).to_numpy()),
                       ("no_image_id", (ids == "").to_numpy())):  # later rules win
        status[mask] = name
    return answers.assign(status=status, y_true=np.where(status == "scored", y_true, -1), split=split,
                          truth_differs=differs & (status == "scored"))


# ----------------------------------------------------------------------------- one file
@dataclass(frozen=True)
class RecordedFile:
    """One file of recorded answers, joined and parsed. ``rows``: every row of the file
    (``row, image_id, status, y_true, y_pred, parse_status, truth_differs``; y_pred and
    parse_status only where scored); ``predictions``: the predictions table of the scored rows."""

    model: str
    set: str
    path: Path
    label_set: LabelSet
    truth: str  # where y_true comes from: "images" (joined by image_id) or "file" (its y_true)
    rows: pd.DataFrame
    predictions: pd.DataFrame

    @property
    def subset(self) -> str:
        return recorded_file_subset(self.set, self.model)

    def counts(self) -> dict[str, int | str]:
        """One summary row: model, set, file, truth, rows, a count per status, unparseable
        (scored rows whose answer names no label) and truth_differs."""
        status = self.rows["status"].value_counts()
        return {"model": self.model, "set": self.set, "file": self.path.name, "label_set": self.label_set.name,
                "truth": self.truth, "rows": len(self.rows), **{s: int(status.get(s, 0)) for s in ROW_STATUSES},
                "unparseable": int((self.predictions["parse_status"] == "unparseable").sum()),
                "truth_differs": int(self.rows["truth_differs"].sum())}

    def note(self) -> str:
        """The counts in a line, with example ids of every row that was not scored."""
        c = self.counts()
        parts = [f"recorded {self.model} {self.set} ({self.path.name}, truth from the {self.truth}): "
                 f"{c['rows']} rows, {c['scored']} scored ({c['unparseable']} of them no label of "
                 f"{self.label_set.name}: wrong)"]
        for status in ROW_STATUSES[1:]:
            if c[status]:
                rows = self.rows[self.rows["status"] == status].head(3)
                examples = [f"row {r} {i!r}" for r, i in zip(rows["row"], rows["image_id"], strict=True)]
                parts.append(f"{c[status]} {status.replace('_', ' ')} (e.g. {', '.join(examples)})")
        if c["truth_differs"]:
            parts.append(f"{c['truth_differs']} with a file y_true other than the image's label (the image's counts)")
        return "; ".join(parts)


def recorded_file_subset(dataset: str, model: str) -> str:
    """The named subset of the images a recorded file answered: ``<set>_<model>``."""
    return f"{dataset}_{model}"


def load_recorded_file(path: str | Path, model: str, dataset: str, label_set: LabelSet, answer: str = "raw",
                       columns: dict[str, str] | None = None, images: ImageSet | None = None,
                       embedder=None, threshold: float = 0.6) -> RecordedFile:
    """Read, join and parse one file (module docstring). ``images``: the data set's images
    (truth by ``image_id``), None to take the file's ``y_true``; DataError when neither
    gives a truth, or when the images are labelled in another label set."""
    path = Path(path)
    answers = read_answers(path, columns, answer)
    if images is None and not answers.attrs["has_truth"]:
        raise DataError(f"{path}: no y_true column, and no images of {dataset!r} to take the truth from; add a "
                        f"y_true column (a label of {label_set.name} per row) or load the set in the profile "
                        "(data.sets)")
    if images is not None and images.label_set_name != label_set.name:
        raise DataError(f"{path}: the images of {dataset!r} are labelled in {images.label_set_name}, the answers "
                        f"are read in {label_set.name}; set label_set: {images.label_set_name} in its entry")
    rows = join_truth(answers, label_set, images)
    scored = rows[rows["status"] == "scored"]
    texts, raw = answer_texts(scored, answer)
    y_pred, status = parse_texts(texts, label_set, embedder, threshold)
    rows = rows.assign(y_pred=pd.Series(y_pred, index=scored.index, dtype="Int64"),
                       parse_status=pd.Series(status, index=scored.index, dtype=object))
    predictions = make_predictions(
        image_id=scored["image_id"].to_numpy(dtype=object), split=scored["split"].to_numpy(dtype=object),
        dataset=images.name if images is not None else dataset, label_set=label_set.name,
        y_true=scored["y_true"].to_numpy(dtype=np.int64), y_pred=y_pred, model=model, backend="recorded",
        restoration="none", prompt=RECORDED_PROMPT, seed=0, subset=recorded_file_subset(dataset, model),
        raw_response=raw.to_numpy(dtype=object), parse_status=status, latency_s=np.nan)
    columns_out = ["row", "image_id", "status", "y_true", "y_pred", "parse_status", "truth_differs"]
    return RecordedFile(model, dataset, path, label_set, "images" if images is not None else "file",
                        rows[columns_out].reset_index(drop=True), predictions)


def summary_table(files: list[RecordedFile]) -> pd.DataFrame:
    """One row per recorded file (``RecordedFile.counts``): where every row went."""
    columns = ["model", "set", "file", "label_set", "truth", "rows", *ROW_STATUSES, "unparseable", "truth_differs"]
    return pd.DataFrame([f.counts() for f in files], columns=columns)


# ----------------------------------------------------------------------------- the profile
def profile_images(profile: Profile, name: str) -> ImageSet | None:
    """The images of data set ``name`` when ``profile`` names it (``data.sets``, or the
    defaults ``fer2013`` and ``emotion6``: synthetic stand-ins under ``source: synthetic``),
    else None. DataError (``emolib.data.load_set``) when it names the set but cannot load it."""
    return load_set(profile, name) if name in {s.name for s in profile.data.all_sets()} else None


def entry_status(entry: RecordedFileConfig) -> dict[str, str]:
    """The status-table row of one entry: available when its file exists."""
    path = resolve_data_path(entry.path)
    row = {"backend": "recorded", "model": entry.model, "status": AVAILABLE, "reason": "",
           "note": f"answers on {entry.set} from {entry.path}"}
    if not path.is_file():
        row.update(status=UNAVAILABLE, reason=f"{path} not found: put the file there or fix its path in "
                                              "vlm.recorded_files (relative to EMOLIB_DATA_DIR)")
    return row


def load_entry(entry: RecordedFileConfig, images: ImageSet | None, embedder=None,
               threshold: float = 0.6) -> RecordedFile:
    """One ``vlm.recorded_files`` entry read, joined to ``images`` (``profile_images`` of its
    set; None: truth from the file) and parsed."""
    return load_recorded_file(resolve_data_path(entry.path), entry.model, entry.set, get_label_set(entry.label_set),
                              entry.answer, entry.columns, images, embedder, threshold)


def score_entry(entry: RecordedFileConfig, profile: Profile, embedder=None,
                threshold: float = 0.6) -> tuple[dict[str, str], RecordedFile | None]:
    """One ``vlm.recorded_files`` entry of ``profile``: its status row (``entry_status``;
    unavailable too when the profile names its set but cannot load the images, with the
    reason) and the loaded ``RecordedFile`` (None when unavailable). A file that is there but
    malformed is a DataError naming it."""
    row = entry_status(entry)
    if row["status"] != AVAILABLE:
        return row, None
    try:
        images = profile_images(profile, entry.set)
    except DataError as err:
        row.update(status=UNAVAILABLE, reason=f"the images of {entry.set} cannot be loaded to join to: {err}")
        return row, None
    return row, load_entry(entry, images, embedder, threshold)


def entry_answers(entry: RecordedFileConfig) -> pd.DataFrame:
    """The answers of an entry by image: ``key`` (image_id), ``text`` (what is parsed) and
    ``raw_response``, for ids on exactly one row (a repeated or empty id answers no image)."""
    answers = read_answers(resolve_data_path(entry.path), entry.columns, entry.answer)
    answers = answers[(answers["image_id"] != "") & ~answers["image_id"].duplicated(keep=False)]
    text, raw = answer_texts(answers, entry.answer)
    return pd.DataFrame({"key": answers["image_id"], "text": text, "raw_response": raw})


def file_digests(config: VLMConfig) -> dict[str, str]:
    """sha256 (16 hex) of each entry's file by ``<model>:<set>`` ('missing' when absent): what
    the VLM stage stores in its meta, so that an edited file is scored again."""
    out = {}
    for entry in config.recorded_files:
        path = resolve_data_path(entry.path)
        out[f"{entry.model}:{entry.set}"] = (hashlib.sha256(path.read_bytes()).hexdigest()[:16]
                                             if path.is_file() else "missing")
    return out


def changed_files(config: VLMConfig, meta: dict) -> str:
    """'' when the recorded files are those a stored stage scored (its ``meta``); else which
    changed, said for the stage's notes."""
    stored, now = meta.get("recorded_files", {}), file_digests(config)
    changed = sorted(k for k in stored.keys() | now.keys() if stored.get(k) != now.get(k))
    return f"recorded files {changed} changed since the stored run: scored again" if changed else ""
