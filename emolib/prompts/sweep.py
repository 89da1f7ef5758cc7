"""The prompt sweep of a profile (notebook 05): every generative VLM x data set x variant.

``run_prompt_sweep(profile)`` asks each available generative model of ``profile.vlm``
(``hf_models``, ``openai_models``; CLIP scores each label on its own, so label order, persona
and answer format cannot change its answer and it is not swept) every variant of
``emolib.prompts`` on a stratified sample (``prompts.sample_size``) of each data set that
``prompts.datasets`` names (``Profile.prompt_sets``: ``evoked`` is Emotion6 and every evoked set
of ``data.sets``, ``faces`` FER-2013, or set names) and, for the 24 orders of 4 labels, on
``prompts.order_sample_size`` images whose truth is one of the 4. The base prompt of a set is
its label set's generative prompt (``vlm.generative_prompts`` for a label set of your own).
All calls go through the ``emolib.vlm`` backends and their SQLite response cache
(``emolib.vlm.cache.cache_path``): an interrupted sweep resumes, a rerun makes no calls.
Output under ``results/<profile>/prompts/<hash>/``: ``predictions.parquet``,
``variants.csv`` (name, family, label order, guided, text), ``status.csv``, ``not_run.csv``
(``NOT_RUN_COLUMNS``: a variant a model could not be asked, with the reason), ``sets.csv``
(``SET_COLUMNS``: one row per data set named, ``swept`` or ``not run`` with the reason, e.g. its
files are not on this machine), ``notes.json``. Failed calls (``parse_status == "error"``) are
kept as wrong answers but leave the stage ``partial``, so the next run asks only them again
(everything else comes from the cache).

The sweep's images are named subsets (``emolib.catalog``) drawn from the evaluation subsets
every stage shares: ``<set>_sweep_<n>`` and ``<set>_sweep_order4_<n>`` (``sweep_prefix``:
``emotion6_...``, ``fer_...``, ``<name>_...``), stored in the stage folder. One model is loaded
at a time and freed before the next. The recorded GPT-4V answers (one prompt only, no
variants) are read from the VLM stage (``recorded_predictions``), so notebooks 04, 05 and 07
agree on them.

The ``constrained_*`` variants ask the base prompt with constrained decoding (``guided``) for
their requests only. Only the OpenAI-compatible backend can (vLLM, SGLang; ``choice`` not on
OpenAI's own API, and not on an endpoint constrained already); every other model gets a "not
run" row with the reason (``not_run_reason``), never its free answer in their place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.data import ImageSet
from emolib.labels import LabelSet, get_label_set
from emolib.predictions import read_predictions, write_predictions
from emolib.prompts.analysis import variant_orders  # noqa: F401  (re-exported for notebooks)
from emolib.prompts.sets import NOT_RUN, SET_COLUMNS, order_set, set_row, sweep_sets
from emolib.prompts.variants import PromptVariant, make_variants, variants_table
from emolib.recorder import CostRecorder
from emolib.store import StageStore, write_json, write_text
from emolib.vlm.driver import STATUS_COLUMNS, ModelDriver, error_notes, join_arrived, waiting
from emolib.vlm.parse import parse_answer
from emolib.vlm.recorded_files import recorded_file_subset
from emolib.vlm.types import ModelSpec

STAGE = "prompts"
NOT_RUN_COLUMNS = ["backend", "model", "dataset", "subset", "prompt", "guided", "reason"]
# why a backend other than the OpenAI-compatible one cannot answer a constrained variant
NO_CONSTRAINT = {
    "hf": "the in-process Hugging Face backend has no constrained decoding; serve the model with vLLM or "
          "SGLang as a vlm.endpoints entry to ask it",
    "clip": "CLIP scores every label by similarity: it gives no free answer to constrain",
    "recorded": "recorded answers cannot be asked again under a constraint"}


@dataclass
class SweepResult:
    """What ``run_prompt_sweep`` produced (also on disk in ``store.dir``); ``backends`` holds
    the loaded backends of this call (empty when read back) so callers can count calls."""

    store: StageStore
    predictions: pd.DataFrame
    variants: pd.DataFrame
    status: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    backends: dict = field(default_factory=dict)
    not_run: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=NOT_RUN_COLUMNS))
    sets: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SET_COLUMNS))


def generative_specs(profile: Profile) -> list[ModelSpec]:
    vlm = profile.vlm
    return [ModelSpec("hf", m) for m in vlm.hf_models] + [ModelSpec("openai", m) for m in vlm.openai_models]


def sweep_variants(profile: Profile, label_set: LabelSet) -> list[PromptVariant]:
    """Every variant of ``prompts.variants`` for ``label_set``, from its generative prompt
    (the profile's ``vlm.generative_prompts`` for a label set of the user's own)."""
    cfg = profile.prompts
    return make_variants(label_set, cfg.variants, cfg.n_permutations, profile.seed, cfg.order_labels,
                         selection=profile.vlm.generative_prompts)


def remap_open_answers(frame: pd.DataFrame, label_set, embedder, threshold: float) -> pd.DataFrame:
    """Re-parse the free answers of the ``no_labels`` variant (``parse_answer``): an answer
    word that is no label goes to the nearest label by sentence embedding when the cosine
    reaches ``threshold`` (the profile's ``vlm.embedding_threshold``, in (0, 1]). Only the
    extracted answer word(s) are embedded; an empty, numeric or word-less answer
    (``{"prediction": ""}``, ``"42"``) stays ``unparseable`` (``y_pred`` -1). Call errors
    (``parse_status == "error"``) are left as they are. Returns a copy of ``frame``."""
    if not 0 < threshold <= 1:
        raise ValueError(f"vlm.embedding_threshold must be in (0, 1] to map free answers; got {threshold!r}")
    frame = frame.copy()
    answered = frame["parse_status"] != "error"
    parsed = [parse_answer(t, label_set, embedder, threshold) for t in frame.loc[answered, "raw_response"]]
    frame.loc[answered, "y_pred"] = [p.label for p in parsed]
    frame.loc[answered, "parse_status"] = [p.status for p in parsed]
    return frame


def not_run_reason(backend, variant: PromptVariant) -> str:
    """Why ``backend`` cannot be asked ``variant`` ('' when it can): a constrained variant needs
    an OpenAI-compatible endpoint that takes its ``guided`` mode (``NO_CONSTRAINT`` otherwise)."""
    if variant.guided == "none":
        return ""
    if backend.spec.backend == "openai":
        return backend.guided_refusal(variant.guided)
    return NO_CONSTRAINT[backend.spec.backend]


def not_run_row(backend, image_set: ImageSet, variant: PromptVariant, reason: str) -> dict:
    """One row of ``not_run.csv`` (``NOT_RUN_COLUMNS``)."""
    return {"backend": backend.spec.backend, "model": backend.spec.model, "dataset": image_set.name,
            "subset": image_set.subset_name, "prompt": variant.name, "guided": variant.guided, "reason": reason}


def ask_variant(backend, image_set: ImageSet, variant: PromptVariant) -> pd.DataFrame:
    """``backend``'s answers to ``variant`` on ``image_set`` (predictions table, prompt = the
    variant's name); a constrained variant sets ``backend.guided`` for this call only. ValueError
    with the reason when the backend cannot (``not_run_reason``): never the free answer instead."""
    reason = not_run_reason(backend, variant)
    if reason:
        raise ValueError(f"{backend.spec} cannot answer {variant.name}: {reason}")
    if variant.guided == "none":
        return backend.predict(image_set, image_set.label_set, variant.text, variant.name)
    free = backend.guided
    backend.guided = variant.guided
    try:
        return backend.predict(image_set, image_set.label_set, variant.text, variant.name)
    finally:
        backend.guided = free


def _sweep_model(backend, profile: Profile, sets: dict[str, ImageSet],
                 recorder: CostRecorder) -> tuple[list[pd.DataFrame], list[dict]]:
    """Every variant of one model on every sweep set (through the backend's cache): the
    predictions frames and the not-run rows of the variants it cannot be asked."""
    frames, not_run = [], []
    for key, image_set in sets.items():
        ls = image_set.label_set
        order4 = order_set(profile, key, image_set)
        for v in sweep_variants(profile, ls):
            target = order4 if v.family == "order4" else image_set
            reason = not_run_reason(backend, v)
            if reason:
                not_run.append(not_run_row(backend, target, v, reason))
                continue
            with recorder.phase("infer", model=str(backend.spec), items=len(target), dataset=target.name,
                                prompt=v.name):
                frame = ask_variant(backend, target, v)
            if v.family == "no_labels":
                with recorder.phase("evaluate", model=str(backend.spec), items=len(frame), step="map open answers"):
                    frame = remap_open_answers(frame, ls, backend.embedder, profile.vlm.embedding_threshold)
            frames.append(frame)
    return frames, not_run


def run_prompt_sweep(profile: Profile, force: bool = False, keep_backends: bool = False) -> SweepResult:
    """Run (or read back) the prompt sweep of ``profile``; see the module docstring.
    ``keep_backends``: keep each loaded backend in ``SweepResult.backends`` (tests count
    their calls); otherwise each model is freed after its sweep. A stored sweep whose models
    were unavailable tries each of them again: one that loads now is swept alone and joined
    to the stored rows (``sweep_arrived``)."""
    store = catalog.prompts_store(profile)
    # a sweep stored before sets.csv existed is run again (its answers come from the cache)
    if store.is_complete() and store.path("sets.csv").is_file() and not force:
        return sweep_arrived(profile, read_sweep(store), keep_backends)
    swept = _sweep_specs(profile, store, generative_specs(profile), keep_backends)
    set_table = swept["set_table"]
    notes = []
    if set_table is None:
        notes.append(NO_GENERATIVE)
        set_table = pd.DataFrame([set_row(spec, NOT_RUN, NO_GENERATIVE) for spec in profile.prompt_sets()],
                                 columns=SET_COLUMNS)
    notes += [f"data set {r.set} not swept: {r.reason}" for r in set_table.itertuples()
              if r.status == NOT_RUN and r.reason.startswith("data set unavailable")]
    predictions = pd.concat(swept["frames"], ignore_index=True) if swept["frames"] else read_predictions([])
    result = write_sweep(profile, store, predictions, pd.DataFrame(swept["rows"], columns=STATUS_COLUMNS),
                         pd.DataFrame(swept["not_run"], columns=NOT_RUN_COLUMNS), set_table, notes)
    result.backends = swept["backends"]
    return result


NO_GENERATIVE = "no generative VLM is available on this machine"


def read_sweep(store: StageStore) -> SweepResult:
    """The sweep as stored in ``store``."""
    return SweepResult(store, read_predictions(store.path(catalog.PREDICTIONS_FILE)),
                       pd.read_csv(store.path("variants.csv"), keep_default_na=False),
                       pd.read_csv(store.path("status.csv"), keep_default_na=False),
                       json.loads(store.path("notes.json").read_text()),
                       not_run=pd.read_csv(store.path("not_run.csv"), keep_default_na=False),
                       sets=pd.read_csv(store.path("sets.csv"), keep_default_na=False))


def _sweep_specs(profile: Profile, store: StageStore, specs: list[ModelSpec], keep_backends: bool) -> dict:
    """Load each of ``specs`` in turn (``emolib.vlm.driver``) and sweep the ones that load: status
    rows, frames, not-run rows, the sweep sets and their table (None when no model loaded), the
    backends."""
    driver = ModelDriver(profile, store, STAGE)
    out = {"rows": driver.rows, "frames": [], "not_run": [], "set_table": None, "backends": {}}
    sets: dict[str, ImageSet] = {}
    for spec in specs:  # one model in memory at a time
        _, backend = driver.load(spec)
        if backend is None:
            continue
        if out["set_table"] is None:
            with driver.recorder.phase("preprocess", step="load sweep sets") as handle:
                sets, out["set_table"] = sweep_sets(profile)
                handle.items = sum(len(s) for s in sets.values())
        model_frames, model_not_run = _sweep_model(backend, profile, sets, driver.recorder)
        out["frames"] += model_frames
        out["not_run"] += model_not_run
        out["backends"][str(spec)] = backend.spec if not keep_backends else backend
        del backend
        driver.done()
    driver.close()
    for key, image_set in sets.items():
        for named in (image_set, order_set(profile, key, image_set)):
            catalog.write_stage_subset(store, named.subset_name, named.name, named.ids)
    return out


def sweep_arrived(profile: Profile, stored: SweepResult, keep_backends: bool = False) -> SweepResult:
    """``stored`` with every generative model that was unavailable tried again: one that
    loads now is swept alone and its rows joined to the stored ones (nothing else is asked
    again); ``stored`` itself when none arrived."""
    specs = waiting(stored.status)
    if not specs:
        return stored
    swept = _sweep_specs(profile, stored.store, specs, keep_backends)
    if not swept["frames"] and swept["set_table"] is None:
        return stored
    status, arrived = join_arrived(stored.status, swept["rows"])
    set_table = swept["set_table"] if swept["set_table"] is not None else stored.sets
    notes = [n for n in stored.notes if n != NO_GENERATIVE] + [
        f"model(s) that became available since the last run, swept alone: {', '.join(arrived)}"]
    predictions = pd.concat([stored.predictions, *swept["frames"]], ignore_index=True)
    not_run = pd.concat([stored.not_run, pd.DataFrame(swept["not_run"], columns=NOT_RUN_COLUMNS)], ignore_index=True)
    result = write_sweep(profile, stored.store, predictions, status, not_run, set_table, notes)
    result.backends = swept["backends"]
    return result


def write_sweep(profile: Profile, store: StageStore, predictions: pd.DataFrame, status: pd.DataFrame,
                not_run: pd.DataFrame, set_table: pd.DataFrame, notes: list[str]) -> SweepResult:
    """Write the sweep's files and meta (``partial`` while error rows remain)."""
    variants = variants_frame(profile, set_table)
    notes, n_errors = error_notes(predictions, notes)  # failed calls are not cached: the next run retries them
    write_predictions(store.path(catalog.PREDICTIONS_FILE), predictions)
    write_text(store.path("variants.csv"), variants.to_csv(index=False))
    write_text(store.path("status.csv"), status.to_csv(index=False))
    write_text(store.path("not_run.csv"), not_run.to_csv(index=False))
    write_text(store.path("sets.csv"), set_table.to_csv(index=False))
    write_json(store.path("notes.json"), notes)
    store.write_meta(status="partial" if n_errors else "complete", n_predictions=len(predictions),
                     n_models=len(status), n_errors=n_errors)
    return SweepResult(store, read_predictions(store.path(catalog.PREDICTIONS_FILE)), variants, status, notes, {},
                       not_run, set_table)


def profile_variants(profile: Profile) -> pd.DataFrame:
    """The variants the sweep asks on each set of ``prompts.datasets`` (``variants_frame``,
    ``dataset`` the profile set name), read from the profile alone: nothing is loaded."""
    planned = [set_row(spec, "planned") for spec in profile.prompt_sets()]
    return variants_frame(profile, pd.DataFrame(planned, columns=SET_COLUMNS))


def variants_frame(profile: Profile, set_table: pd.DataFrame) -> pd.DataFrame:
    """``variants_table`` of every set of ``set_table`` (``SET_COLUMNS``), with ``dataset``
    (the predictions' dataset where swept, else the profile set name) and ``label_set``."""
    frames = [variants_table(sweep_variants(profile, get_label_set(row.label_set)))
              .assign(dataset=row.dataset or row.set, label_set=row.label_set) for row in set_table.itertuples()]
    return pd.concat(frames, ignore_index=True) if frames else variants_table([]).assign(dataset=[], label_set=[])


def recorded_predictions(profile: Profile) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recorded answers as the VLM stage (notebook 04) parsed them: their predictions
    rows (backend ``recorded``) and the sentiment table of the evoked sets. MissingUpstream
    naming notebook 04 when it has not run."""
    predictions = catalog.read_stage_predictions(profile, "vlm")
    sentiment = pd.read_parquet(catalog.vlm_store(profile).path("sentiment.parquet"))
    return predictions[predictions["backend"] == "recorded"].reset_index(drop=True), sentiment


def split_ranked(profile: Profile, recorded: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows whose ``raw_response`` is a ranked list, one row per (model, subset) that is not).
    The shipped GPT-4V answers and ``vlm.recorded_files`` entries with ``answer: first_ranked``
    are rankings; an ``answer: raw`` entry holds free answers, whose "ranking" would be noise."""
    raw = {recorded_file_subset(e.set, e.model) for e in profile.vlm.recorded_files if e.answer == "raw"}
    unranked = recorded["subset"].isin(raw)
    left_out = (recorded[unranked].groupby(["model", "subset"], as_index=False).size()
                .rename(columns={"size": "answers"}).assign(reason="answer: raw (free answers, no ranking)"))
    return recorded[~unranked].reset_index(drop=True), left_out
