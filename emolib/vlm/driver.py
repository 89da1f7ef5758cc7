"""The model-by-model driver of the stages that ask VLMs (notebook 04's zero-shot stage,
notebook 05's prompt sweep), so that a fix lands once:

read back -> record -> one model resident at a time -> write -> partial or complete.

``ModelDriver`` sets the machine's torch threads for VLMs, opens the stage's cost recorder
and the profile's response cache, and ``load``s a model inside a timed ``preprocess`` phase
into its status row; ``done`` frees it before the next one. ``waiting`` lists the models a
stored stage could not run, ``join_arrived`` puts the rows of those that ran now into the
stored status table, and ``error_notes`` says why a stage with failed calls stays partial.
``model_rows`` picks the rows of models by (backend, model): one name may come through two
backends; ``keep_earlier`` keeps the predictions of a model that went away since the last run.
"""

from __future__ import annotations

import pandas as pd

from emolib.config import Profile
from emolib.machine import free_memory, plan_machine
from emolib.recorder import CostRecorder
from emolib.store import StageStore
from emolib.vlm.backends import model_status
from emolib.vlm.cache import ResponseCache, cache_path
from emolib.vlm.types import AVAILABLE, Backend, ModelSpec

STATUS_COLUMNS = ["backend", "model", "status", "reason", "note"]
EARLIER = "predictions of an earlier run kept"


class ModelDriver:
    """Loads the models of one stage one at a time, each load timed and turned into its status
    row (``rows``); ``close`` when done."""

    def __init__(self, profile: Profile, store: StageStore, stage: str) -> None:
        self.profile = profile
        threads = plan_machine(profile).vlm_threads
        if threads:
            import torch

            torch.set_num_threads(threads)  # vlm.torch_threads as decided for this machine
        self.recorder = CostRecorder(store.dir, stage, profile.cost.sample_interval_s)
        self.cache = ResponseCache(cache_path(profile.name))
        self.device = plan_machine(profile).device
        self.rows: list[dict] = []

    def load(self, spec: ModelSpec) -> tuple[dict, Backend | None]:
        """(status row, the loaded backend answering through the stage's cache, or None when
        ``spec`` is unavailable here); the row is also kept in ``rows``."""
        loaded: dict = {}
        with self.recorder.phase("preprocess", model=str(spec), step="load model") as handle:
            row = model_status(spec, self.profile.vlm, self.device, loaded, weights=self.profile.weights)
            handle.extra["status"] = row["status"]
        self.rows.append(row)
        backend = loaded.pop(str(spec), None)
        if backend is not None:
            backend.cache = self.cache
        return row, backend

    @staticmethod
    def done() -> None:
        """Free the model just used (the caller dropped its references) before the next loads."""
        free_memory()

    def close(self) -> None:
        self.cache.close()


def waiting(status: pd.DataFrame, skip: tuple[str, ...] = ()) -> list[ModelSpec]:
    """The models of a stored status table that were not available (but those of the backends
    in ``skip``): the ones a later run tries again."""
    rows = status[(status["status"] != AVAILABLE) & ~status["backend"].isin(skip)]
    return [ModelSpec(r.backend, r.model) for r in rows.itertuples()]


def model_rows(frame: pd.DataFrame, models: set[tuple[str, str]]) -> pd.Series:
    """(n,) True where a row of ``frame`` (a status or predictions table) is of one of
    ``models``, (backend, model) pairs: a model is named by both, since one name may be asked
    through two backends (``hf`` in process and ``openai`` behind vLLM)."""
    pairs = zip(frame["backend"], frame["model"], strict=True)
    return pd.Series([pair in models for pair in pairs], index=frame.index, dtype=bool)


def join_arrived(stored: pd.DataFrame, rows: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """``stored`` status with the rows of the models tried again put in their places, and the
    models of those that are available now (``backend:model``)."""
    tried = {(r["backend"], r["model"]): r for r in rows}
    status = pd.DataFrame([tried.get((r.backend, r.model), r._asdict()) for r in stored.itertuples(index=False)],
                          columns=STATUS_COLUMNS)
    return status, [f"{b}:{m}" for (b, m), r in tried.items() if r["status"] == AVAILABLE]


def error_notes(predictions: pd.DataFrame, notes: list[str]) -> tuple[list[str], int]:
    """``notes`` and, when calls failed (``parse_status == "error"``: counted as wrong, never
    cached), one more saying the stage stays partial and the next run retries them; the count."""
    n_errors = int((predictions["parse_status"] == "error").sum())
    if n_errors:
        notes = [*notes, f"{n_errors} call(s) failed (error rows, counted as wrong): the stage stays partial "
                 "and the next run retries them"]
    return notes, n_errors


def keep_earlier(previous: pd.DataFrame, predictions: pd.DataFrame,
                 status: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A model (backend, model: one name may come through two backends) that predicted in
    ``previous`` but is unavailable now keeps its earlier predictions; its status row says so
    (``EARLIER``) beside today's reason."""
    had = set(zip(previous["backend"], previous["model"], strict=True))
    gone = status[(status["status"] != AVAILABLE) & model_rows(status, had)]
    if gone.empty:
        return predictions, status
    kept = previous[model_rows(previous, set(zip(gone["backend"], gone["model"], strict=True)))]
    status = status.copy()
    status.loc[gone.index, "note"] = [f"{EARLIER}; {n}" if n else EARLIER for n in gone["note"]]
    return pd.concat([predictions, kept], ignore_index=True), status
