"""The VLM stage of a profile (notebook 04): every model on every evaluation set, cached
(which sets: ``emolib.vlm.eval_sets``).

``run_zero_shot(profile, restored)`` scores each available model of ``profile.vlm`` on the
evaluation subset of FER-2013 PrivateTest (``catalog.fer_eval_name``: original faces and
each restored variant notebook 02 made, the same ids) and on the evaluation subset of every
available evoked data set of the profile (``catalog.evoked_eval_name``: Emotion6 and each
``evoked`` set of ``data.sets``; an unavailable one is a note, not a failure), adds the CLIP
linear probe, the rows of each model of ``vlm.clip_benchmark_models`` by LAION CLIP_benchmark's
protocol (its FER-2013 prompts on ``catalog.FER_KAGGLE_TEST``, prompt ``clip_benchmark``:
``emolib.vlm.published``) and the recorded answers (GPT-4V: FER+ PrivateTest, ArtPhoto, Abstract; each
``vlm.recorded_files`` entry as a model of its own, ``emolib.vlm.recorded_files``), and
writes to ``catalog.vlm_store(profile)``: ``predictions.parquet`` (the predictions table),
``status.csv`` (one row per model: available/unavailable and why), ``sentiment.parquet``
(recorded evoked sets scored on sentiment), ``notes.json``, ``recorded_files.csv`` (where
every row of each recorded file went) and the subsets the recorded answers cover. A complete
stage is read back, not recomputed, unless the evoked sets it scored are no longer those
notebook 01 stored subsets for (a set whose files appeared or went) or a recorded file
changed; responses are cached per image in SQLite (``cache.cache_path``), so an interrupted
run resumes.

A model is (backend, model) everywhere here (predictions, status, cache, notes, meta): one
repo may be asked in process (``vlm.hf_models``) and at a server that serves it under the same
name (``vlm.endpoints``, as vLLM does); ``emolib.vlm.agreement`` compares the two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.data import DataSets, ImageSet, load_sets
from emolib.predictions import read_predictions, write_predictions
from emolib.recorder import CostRecorder
from emolib.store import StageStore, write_json, write_parquet, write_text
from emolib.vlm import recorded as rec
from emolib.vlm import recorded_files as rec_files
from emolib.vlm.backends import model_specs
from emolib.vlm.driver import (
    STATUS_COLUMNS,
    ModelDriver,
    error_notes,
    join_arrived,
    keep_earlier,
    model_rows,
    waiting,
)
from emolib.vlm.embed import lazy_embedder
from emolib.vlm.eval_sets import eval_sets, stale_evoked, unavailable_notes
from emolib.vlm.probe import fit_linear_probe
from emolib.vlm.published import score_clip_benchmark
from emolib.vlm.types import AVAILABLE, DEFAULT_PROMPT, ModelSpec

STAGE = "vlm"


@dataclass
class ZeroShotResult:
    """What ``run_zero_shot`` produced (also on disk in ``store.dir``)."""

    store: StageStore
    predictions: pd.DataFrame
    status: pd.DataFrame
    sentiment: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _score_model(backend, profile: Profile, sets: list[ImageSet], train: ImageSet,
                 recorder: CostRecorder) -> list[pd.DataFrame]:
    spec, frames = backend.spec, []
    for image_set in sets:
        with recorder.phase("infer", model=str(spec), items=len(image_set), dataset=image_set.name,
                            restoration=image_set.variant, subset=image_set.subset_name) as handle:
            frames.append(backend.predict(image_set, image_set.label_set, None, DEFAULT_PROMPT))
            handle.extra["cache_hits"] = backend.cache.hits
    if spec.backend == "clip":
        with recorder.phase("train", model=f"{spec} probe", items=len(train)):
            frames.append(fit_linear_probe(backend, train, sets[0], profile.vlm.probe_c, profile.seed))
    return frames


def _recorded_frames(model: str, profile: Profile, store: StageStore, recorder: CostRecorder,
                     notes: list[str]) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """The recorded answers of ``model`` (one loader for notebooks 04, 05 and 07): parsed
    predictions, the sentiment view of the evoked sets, and the subsets they cover."""
    frames, sentiment = [], []
    embedder, threshold = lazy_embedder(), profile.vlm.embedding_threshold
    with recorder.phase("evaluate", model=f"recorded:{model}") as handle:
        present = [d for d in rec.DATASETS if (rec.recorded_dir(model) / f"{d}_predictions.csv").is_file()]
        sets = [rec.load_recorded_ferplus(model, ferplus_dir=profile.data.ferplus) if d == "ferplus"
                else rec.load_recorded_evoked(d, model) for d in present]
        if not present:
            notes.append(f"recorded {model}: {rec.recorded_dir(model)} holds no shipped-format file; its answers "
                         "come from vlm.recorded_files")
        for rs in sets:
            pred = rec.recorded_predictions(rs, model, embedder=embedder, threshold=threshold)
            if rs.dataset == "ferplus" and profile.data.subsample.private_test is not None:
                pred = _within_draw(pred, profile, model, notes)
            catalog.write_stage_subset(store, pred["subset"].iloc[0], pred["dataset"].iloc[0], pred["image_id"])
            frames.append(pred)
            notes.append(f"recorded {model} {rs.dataset}: {len(pred)} answers scored, "
                         f"{rs.unmatched} not joinable to a labelled image" + "".join(f"; {n}" for n in rs.notes))
            if "sentiment_gt" in rs.frame:
                sentiment.append(rec.sentiment_frame(rs, pred).assign(dataset=rs.dataset, model=model,
                                                                      subset=pred["subset"].iloc[0]))
        handle.items = sum(len(f) for f in frames)
    return frames, sentiment


def _within_draw(pred: pd.DataFrame, profile: Profile, model: str, notes: list[str]) -> pd.DataFrame:
    """The recorded FER+ answers on the PrivateTest faces of this profile's draw
    (``data.subsample.private_test``): the others are counted in a note, not scored."""
    outside = ~pred["image_id"].isin(set(catalog.subset_ids(profile, "fer_private")))
    if outside.any():
        notes.append(f"recorded {model} ferplus: {int(outside.sum())} answers on PrivateTest faces outside this "
                     f"profile's draw (data.subsample.private_test: {profile.data.subsample.private_test}) not scored")
    return pred[~outside].reset_index(drop=True)


def _recorded_file_frames(profile: Profile, store: StageStore, recorder: CostRecorder,
                          notes: list[str]) -> tuple[list[dict], list[pd.DataFrame]]:
    """Each ``vlm.recorded_files`` entry as a model of its own: status rows, predictions on
    the subset ``<set>_<model>`` it covers, a note of where every row went, and
    ``recorded_files.csv`` (``recorded_files.summary_table``) in the store."""
    rows, files, embedder = [], [], lazy_embedder()
    for entry in profile.vlm.recorded_files:
        with recorder.phase("evaluate", model=f"recorded:{entry.model}", dataset=entry.set) as handle:
            row, loaded = rec_files.score_entry(entry, profile, embedder, profile.vlm.embedding_threshold)
            rows.append(row)
            if loaded is not None:
                catalog.write_stage_subset(store, loaded.subset, loaded.predictions["dataset"].iloc[0] if
                                           len(loaded.predictions) else loaded.set, loaded.predictions["image_id"])
                notes.append(loaded.note())
                files.append(loaded)
                handle.items = len(loaded.rows)
    write_text(store.path("recorded_files.csv"), rec_files.summary_table(files).to_csv(index=False))
    return rows, [f.predictions for f in files]


def run_zero_shot(profile: Profile, restored: dict[str, ImageSet], force: bool = False,
                  data: DataSets | None = None) -> ZeroShotResult:
    """Run (or read back) the VLM stage of ``profile``; see the module docstring. One model
    is loaded at a time and freed before the next. A run with failed calls (error rows) is
    stored as ``partial``: the next run retries them (answers already cached are reused).
    A stored stage whose models were unavailable tries each of them again (``add_arrived``):
    one that loads now (weights fetched, endpoint up, library installed) is scored alone.
    ``data``: the profile's ``load_sets`` when the caller has it (loaded here when needed)."""
    store = catalog.vlm_store(profile)
    notes: list[str] = []
    previous = None
    if store.is_complete() and not force:
        stored = read_predictions(store.path(catalog.PREDICTIONS_FILE))
        changed = stale_evoked(profile, stored)
        edited = rec_files.changed_files(profile.vlm, store.read_meta())  # a recorded file edited since
        if not (changed or edited):
            return add_arrived(profile, restored, read_stored(store), data)
        notes += [f"evoked data sets changed since the last run: {changed}"] if changed else []
        notes += [edited] if edited else []
    if store.path(catalog.PREDICTIONS_FILE).is_file():
        previous = read_stored(store)
    run = ModelRun(profile, restored, store, data)
    for spec in model_specs(profile.vlm):  # one model in memory at a time
        run.score(spec)
    if profile.vlm.recorded_files:  # answers of any model on any set, one file each
        got_rows, got = _recorded_file_frames(profile, store, run.driver.recorder, run.notes)
        run.driver.rows += got_rows
        run.frames += got
    run.driver.close()
    status = pd.DataFrame(run.driver.rows, columns=STATUS_COLUMNS)
    predictions = pd.concat(run.frames, ignore_index=True) if run.frames else read_predictions([])
    if previous is not None:  # a model unavailable now keeps the predictions it made before
        predictions, status = keep_earlier(previous.predictions, predictions, status)
    sentiment_frame = pd.concat(run.sentiment, ignore_index=True) if run.sentiment else pd.DataFrame(
        columns=["image_id", "y_true", "y_pred", "dataset", "model", "subset"])
    return write_stage(profile, store, predictions, status, sentiment_frame, notes + run.notes)




def read_stored(store: StageStore) -> ZeroShotResult:
    """The stage as stored in ``store``."""
    return ZeroShotResult(store, read_predictions(store.path(catalog.PREDICTIONS_FILE)),
                          pd.read_csv(store.path("status.csv"), keep_default_na=False),
                          pd.read_parquet(store.path("sentiment.parquet")),
                          json.loads(store.path("notes.json").read_text()))


class ModelRun:
    """Scores models one at a time (``emolib.vlm.driver``) into ``frames``/``sentiment`` and the
    status rows ``driver.rows``, loading the images only when a model needs them; every load is a
    timed ``preprocess`` phase."""

    def __init__(self, profile: Profile, restored: dict[str, ImageSet], store: StageStore,
                 data: DataSets | None) -> None:
        self.profile, self.restored, self.store, self.data = profile, restored, store, data
        self.driver = ModelDriver(profile, store, STAGE)
        self.frames: list[pd.DataFrame] = []
        self.sentiment: list[pd.DataFrame] = []
        self.notes: list[str] = []
        self.sets: list[ImageSet] = []
        self.train: ImageSet | None = None
        self.kaggle_test: ImageSet | None = None
        if profile.vlm.clip_benchmark_models:  # a missing subset fails now (run notebook 01), not after every model
            catalog.subset_ids(profile, catalog.FER_KAGGLE_TEST)

    def score(self, spec: ModelSpec) -> dict:
        """Load ``spec``; if it loads, score it on every evaluation set; its status row."""
        row, backend = self.driver.load(spec)
        if backend is None:
            return row
        if spec.backend == "recorded":
            got, sent = _recorded_frames(spec.model, self.profile, self.store, self.driver.recorder, self.notes)
            self.frames += got
            self.sentiment += sent
            return row
        if not self.sets:  # images are loaded only if some model needs them
            with self.driver.recorder.phase("preprocess", step="load evaluation sets") as handle:
                self.data = load_sets(self.profile) if self.data is None else self.data
                self.sets, self.train = eval_sets(self.profile, self.restored, self.data)
                handle.items = sum(len(s) for s in self.sets)
            self.notes += unavailable_notes(self.data)
        self.frames += _score_model(backend, self.profile, self.sets, self.train, self.driver.recorder)
        if spec.backend == "clip" and spec.model in self.profile.vlm.clip_benchmark_models:
            self.frames.append(score_clip_benchmark(backend, self.benchmark_faces(), self.driver.recorder))
        del backend
        self.driver.done()
        return row

    def benchmark_faces(self) -> ImageSet:
        """The faces of ``fer_kaggle_test`` (CLIP_benchmark's test set), selected on first use."""
        if self.kaggle_test is None:
            with self.driver.recorder.phase("preprocess", step="select fer_kaggle_test") as handle:
                self.kaggle_test = catalog.select_subset(self.data.faces, self.profile, catalog.FER_KAGGLE_TEST)
                handle.items = len(self.kaggle_test)
        return self.kaggle_test


def add_arrived(profile: Profile, restored: dict[str, ImageSet], stored: ZeroShotResult,
                data: DataSets | None = None) -> ZeroShotResult:
    """``stored`` with every model that was unavailable tried again: one that loads now is
    scored alone and its rows joined to the stored ones (nothing else is recomputed); one that
    still does not keeps its row, with today's reason. ``stored`` itself when none arrived."""
    specs = waiting(stored.status, skip=("recorded",))  # recorded answers do not arrive later
    if not specs:
        return stored
    run = ModelRun(profile, restored, stored.store, data)
    for spec in specs:
        run.score(spec)
    run.driver.close()
    status, arrived = join_arrived(stored.status, run.driver.rows)
    if not arrived:
        return stored
    came = {(r["backend"], r["model"]) for r in run.driver.rows if r["status"] == AVAILABLE}
    earlier = stored.predictions[~model_rows(stored.predictions, came)]  # rows keep_earlier kept, now redone
    predictions = pd.concat([earlier, *run.frames], ignore_index=True)
    notes = [*stored.notes, *run.notes, f"model(s) that became available since the last run, scored alone: "
             f"{', '.join(arrived)}; the others' predictions were kept"]
    return write_stage(profile, stored.store, predictions, status, stored.sentiment, notes)


def write_stage(profile: Profile, store: StageStore, predictions: pd.DataFrame, status: pd.DataFrame,
                sentiment: pd.DataFrame, notes: list[str]) -> ZeroShotResult:
    """Write the stage's files and meta (``partial`` while error rows remain); read it back."""
    notes, n_errors = error_notes(predictions, notes)
    write_predictions(store.path(catalog.PREDICTIONS_FILE), predictions)
    write_text(store.path("status.csv"), status.to_csv(index=False))
    write_parquet(store.path("sentiment.parquet"), sentiment)
    write_json(store.path("notes.json"), notes)
    store.write_meta(status="partial" if n_errors else "complete", n_predictions=len(predictions),
                     n_models=len(status), n_errors=n_errors, recorded_files=rec_files.file_digests(profile.vlm),
                     unavailable=[f"{b}:{m}" for b, m in status.loc[status["status"] != AVAILABLE, ["backend", "model"]]
                                  .itertuples(index=False)])
    return read_stored(store)
