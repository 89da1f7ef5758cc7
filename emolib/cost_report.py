"""Collect every stage's cost records of a profile and turn them into the tables of notebook 06.

Which records count (so that a stale or repeated run is never counted twice):

1. Config hash. A stage folder ``results/<profile>/<stage>/<hash>/`` is *current* when its
   hash is the one the stage's own store function gives for this profile (``cnn_store``,
   ``vlm_store``, ... in ``STAGE_STORES``: exact), else when its ``meta.json`` config
   contains the profile's current section for that stage (``profile.cnn`` for ``cnn``);
   *stale* when either says otherwise. Per stage, all current folders are kept (a stage
   may use one folder per data set or model); when no folder of a stage can be judged (no
   store function, no meta yet), the folder with the newest record is kept.
   ``selected_by`` says which rule chose each record. Restoration keeps its records beside
   its shared per-image cache (``restoration/image_cache/``): there only the profile's own
   backends and output size count (``keep_record``).
2. Repeats. Within the kept folders, a phase is identified by (stage, hash, phase, model,
   parent phase, tags); when it was measured more than once, the newest record counts and
   the older ones are marked ``superseded``. Failed records stay visible (``status``).
3. Totals add only top-level phases (``depth == 0``): a nested phase is already inside its
   parent's time.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emolib.config import Profile, load_profile, to_dict
from emolib.cost import COST_FILE, read_cost_records
from emolib.paths import results_dir

STUDY_STAGES = ("data", "restoration", "cnn", "vlm", "prompts", "human_eval")
NOT_MEASURED = "not measured"
# measurements a stage may put on a phase handle (``h.extra["tokens_out"] = ...``)
TOKEN_KEYS = ("tokens_in", "tokens_out")
RECORD_COLUMNS = ("stage", "config_hash", "phase", "model", "items", "wall_s", "cpu_s",
                  "items_per_s", "peak_rss_mb", "peak_gpu_mb", "energy_cpu_j", "energy_gpu_j",
                  "energy_note", "device", "status", "error", "started_at", "phase_id",
                  "parent_id", "tags", "extra", "host")


# ----------------------------------------------------------------------------- collecting
def find_cost_files(profile: str) -> list[Path]:
    """Every ``cost.jsonl`` under ``results/<profile>/<stage>/<hash>/`` (sorted)."""
    base = results_dir(profile, ensure=False)
    return sorted(p for p in base.glob(f"*/*/{COST_FILE}")) if base.is_dir() else []


def read_all_records(profile: str) -> pd.DataFrame:
    """All records of a profile, one row each, with ``stage_dir`` and ``config_hash`` from
    the folder. Columns: RECORD_COLUMNS + stage_dir, depth, phase_path."""
    rows = []
    for path in find_cost_files(profile):
        for rec in read_cost_records(path):
            rows.append({**{k: rec.get(k) for k in RECORD_COLUMNS},
                         "stage_dir": path.parent.parent.name, "config_hash": path.parent.name})
    frame = pd.DataFrame(rows, columns=[*RECORD_COLUMNS, "stage_dir"])
    frame["stage"] = frame["stage"].fillna(frame["stage_dir"])
    frame["tags"] = [t if isinstance(t, dict) else {} for t in frame["tags"]]
    frame["extra"] = [e if isinstance(e, dict) else {} for e in frame["extra"]]
    return _add_nesting(frame)


def _id_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _add_nesting(frame: pd.DataFrame) -> pd.DataFrame:
    ids = [_id_or_none(p) for p in frame["phase_id"]]
    parents = [_id_or_none(p) for p in frame["parent_id"]]
    by_id = dict(zip(ids, zip(frame["phase"], parents, strict=True), strict=True))
    depths, paths = [], []
    for phase, parent in zip(frame["phase"], parents, strict=True):
        names = [phase]
        while parent and parent in by_id and len(names) < 50:
            name, parent = by_id[parent]
            names.insert(0, name)
        depths.append(len(names) - 1 if not parent else len(names))
        paths.append("/".join(names))
    return frame.assign(depth=depths, phase_path=paths)


def is_current(meta: dict[str, Any], section: Any) -> bool | None:
    """Does a stage's meta config contain ``section`` (a config dataclass) anywhere?
    None when there is no meta to judge by."""
    if not meta or "config" not in meta:
        return None
    wanted = to_dict(section)

    def contains(node: Any) -> bool:
        if node == wanted:
            return True
        if isinstance(node, dict):
            return any(contains(v) for v in node.values())
        if isinstance(node, list):
            return any(contains(v) for v in node)
        return False

    return contains(meta["config"])


# stage -> (module, function(profile) -> StageStore or list of them): the exact current hash
STAGE_STORES = {
    "data": ("emolib.data.report", "data_store"),
    "restoration": ("emolib.cost_report", "restoration_folders"),
    "cnn": ("emolib.train.stage", "cnn_store"),
    "hard": ("emolib.cost_report", "hard_stores"),
    "vlm": ("emolib.vlm.study", "vlm_store"),
    "cost": ("emolib.cost_scaling", "scaling_store"),
}


def restoration_folders(profile: Profile) -> list:
    """Notebook 02's folder and its shared per-image cache, which holds the cost records
    (``emolib.restore.stage``): records there are filtered by ``keep_record``."""
    from emolib.restore.stage import cache_root, restoration_store

    return [restoration_store(profile), cache_root(profile).name]


def keep_record(profile: Profile, stage: str, model: str | None, tags: dict) -> bool:
    """Stage-specific filter inside current folders: the shared restoration cache holds
    runs of every backend and output size, of which only the profile's own count."""
    if stage != "restoration":
        return True
    cfg = profile.restoration
    return model in cfg.backends and tags.get("output_size", cfg.output_size) == cfg.output_size


def hard_stores(profile: Profile) -> list:
    """The hard-subset folders of every data set (``emolib.train.hard``)."""
    from emolib.train.hard import DATASETS, hard_store

    return [hard_store(profile, dataset) for dataset in DATASETS]


def current_hashes(profile: Profile) -> dict[str, set[str]]:
    """Per stage, the config hashes its store function gives for ``profile``; a stage whose
    module or function is missing (not written yet) is left out."""
    found = {}
    for stage, (module, name) in STAGE_STORES.items():
        try:
            stores = getattr(importlib.import_module(module), name)(profile)
        except (ImportError, AttributeError):
            continue
        stores = stores if isinstance(stores, list | tuple) else [stores]
        found[stage] = {getattr(store, "hash", store) for store in stores}
    return found


def _folder_status(profile: Profile, stage: str, config_hash: str,
                   known: dict[str, set[str]]) -> tuple[bool | None, str]:
    if stage in known:
        return config_hash in known[stage], "store function"
    section = getattr(profile, stage, None)
    meta_path = results_dir(profile.name, ensure=False) / stage / config_hash / "meta.json"
    if not dataclasses.is_dataclass(section) or not meta_path.is_file():
        return None, "newest"
    return is_current(json.loads(meta_path.read_text()), section), "config match"


def collect_cost_records(profile: Profile | str, include_all: bool = False,
                         exclude_stages: tuple[str, ...] = ("cost",)) -> pd.DataFrame:
    """The cost records of a profile's current configuration (see the module docstring).

    ``profile`` is a Profile (with its overrides) or a profile name (loaded without
    overrides). Columns: RECORD_COLUMNS, stage_dir, depth, phase_path, current
    (True/False/None), selected_by, superseded. ``include_all`` also returns the records of
    stale folders (``selected_by == "stale"``) for inspection; tables should not use them.
    ``exclude_stages``: by default notebook 06's own scaling runs (stage ``cost``), which
    are reported by themselves and would otherwise change the tables between reruns.
    """
    profile = load_profile(profile) if isinstance(profile, str) else profile
    frame = read_all_records(profile.name)
    frame = frame[~frame["stage_dir"].isin(exclude_stages)].reset_index(drop=True)
    known = current_hashes(profile)
    folders = list(zip(frame["stage_dir"], frame["config_hash"], strict=True))
    status = {key: _folder_status(profile, *key, known) for key in set(folders)}
    frame["current"] = [status[k][0] for k in folders]
    frame["selected_by"] = [status[k][1] if status[k][0] else "stale" for k in folders]
    for _stage, group in frame.groupby("stage_dir"):
        unjudged = group[group["current"].isna()]
        if len(unjudged) and not (group["current"] == True).any():  # noqa: E712 - None
            newest = unjudged.sort_values("started_at")["config_hash"].iloc[-1]
            frame.loc[unjudged.index[unjudged["config_hash"] == newest], "selected_by"] = "newest"
    keep = [keep_record(profile, st, m, t) for st, m, t in
            zip(frame["stage_dir"], frame["model"], frame["tags"], strict=True)]
    frame.loc[~np.array(keep, dtype=bool), "selected_by"] = "stale"
    if not include_all:
        frame = frame[frame["selected_by"] != "stale"]
    return _mark_superseded(frame.reset_index(drop=True))


def _mark_superseded(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame.assign(superseded=pd.Series(dtype=bool))
    parent_path = frame["phase_path"].str.rsplit("/", n=1).str[0].where(frame["depth"] > 0, "")
    key = pd.DataFrame({
        "stage": frame["stage"], "hash": frame["config_hash"], "phase": frame["phase"],
        "model": frame["model"].fillna(""), "parent": parent_path,
        "tags": [json.dumps(t, sort_keys=True, default=str) for t in frame["tags"]],
    })
    order = frame["started_at"].fillna("").argsort(kind="stable").to_numpy()
    newest = key.iloc[order].drop_duplicates(keep="last").index
    return frame.assign(superseded=~frame.index.isin(newest))


def stage_coverage(records: pd.DataFrame, stages: tuple[str, ...] = STUDY_STAGES) -> pd.DataFrame:
    """One row per expected stage (plus any other seen): records, failed, hashes, rule."""
    rows = []
    for stage in dict.fromkeys([*stages, *sorted(set(records["stage"]))]):
        group = records[records["stage"] == stage]
        rows.append({
            "stage": stage, "n_records": len(group),
            "n_failed": int((group["status"] == "failed").sum()),
            "n_superseded": int(group["superseded"].sum()) if len(group) else 0,
            "config_hashes": ", ".join(sorted(set(group["config_hash"]))) or "-",
            "selected_by": ", ".join(sorted(set(group["selected_by"]))) or "no records yet",
        })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- tables
def _energy_text(cpu_j: pd.Series, gpu_j: pd.Series) -> pd.Series:
    total = cpu_j.astype(float).fillna(0) + gpu_j.astype(float).fillna(0)
    measured = cpu_j.notna() | gpu_j.notna()
    return total.where(measured)


def phase_table(records: pd.DataFrame) -> pd.DataFrame:
    """The per-phase cost table: one row per (stage, model, phase path) of the counted
    (non-superseded) records, summed over tags. Energy is NaN where it was not measured
    (``energy`` then reads "not measured"). ``earlier_*``: the superseded attempts of the
    same phase (count, how many failed, their wall time): work paid for but not counted."""
    counted = records[~records["superseded"]].copy()
    counted["model"] = counted["model"].fillna("-")
    counted["energy_j"] = _energy_text(counted["energy_cpu_j"], counted["energy_gpu_j"])
    counted["failed"] = counted["status"] == "failed"
    table = counted.groupby(["stage", "model", "phase_path"], sort=False).agg(
        runs=("phase", "size"), failed=("failed", "sum"), items=("items", "sum"),
        wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"), peak_rss_mb=("peak_rss_mb", "max"),
        peak_gpu_mb=("peak_gpu_mb", "max"), energy_j=("energy_j", lambda s: s.sum(min_count=1)),
        device=("device", "first"),
    ).reset_index()
    table["items"] = table["items"].where(table["items"] > 0)
    table["s_per_1000_items"] = 1000 * table["wall_s"] / table["items"]
    table["energy"] = table["energy_j"].map(lambda v: NOT_MEASURED if pd.isna(v) else f"{v:.1f} J")
    earlier = records[records["superseded"]].assign(model=lambda f: f["model"].fillna("-"))
    earlier = earlier.groupby(["stage", "model", "phase_path"]).agg(
        earlier_attempts=("phase", "size"),
        earlier_failed=("status", lambda s: (s == "failed").sum()),
        earlier_wall_s=("wall_s", "sum"))
    table = table.join(earlier, on=["stage", "model", "phase_path"])
    table[["earlier_attempts", "earlier_failed"]] = table[
        ["earlier_attempts", "earlier_failed"]].fillna(0).astype(int)
    table["earlier_wall_s"] = table["earlier_wall_s"].fillna(0.0)
    return table


def model_cost_table(records: pd.DataFrame, infer_phases: tuple[str, ...] = ("infer",),
                     train_phases: tuple[str, ...] = ("train",)) -> pd.DataFrame:
    """Per model that has an inference or training phase: training time, inference time per
    image and per 1,000 images, CPU s per 1,000 images, energy per 1,000 images (NaN = not
    measured). Only ok, counted records; inference summed over variants and data sets."""
    ok = records[(~records["superseded"]) & (records["status"] == "ok")
                 & records["model"].notna()].copy()
    ok = ok[ok["model"].isin(ok.loc[ok["phase"].isin((*infer_phases, *train_phases)), "model"])]
    ok["energy_j"] = _energy_text(ok["energy_cpu_j"], ok["energy_gpu_j"])
    rows = []
    for model, group in ok.groupby("model", sort=False):
        infer = group[group["phase"].isin(infer_phases) & (group["items"].fillna(0) > 0)]
        train = group[group["phase"].isin(train_phases) & (group["depth"] == 0)]
        n = infer["items"].sum()
        rows.append({
            "model": model, "stage": ", ".join(sorted(set(group["stage"]))),
            "train_s": train["wall_s"].sum() if len(train) else np.nan,
            "infer_images": int(n), "infer_s": infer["wall_s"].sum() if n else np.nan,
            "s_per_image": infer["wall_s"].sum() / n if n else np.nan,
            "s_per_1000_images": 1000 * infer["wall_s"].sum() / n if n else np.nan,
            "cpu_s_per_1000_images": 1000 * infer["cpu_s"].sum() / n if n else np.nan,
            "energy_j_per_1000_images": (1000 * infer["energy_j"].sum(min_count=1) / n
                                         if n else np.nan),
            **{f"{k}_per_image": _extra_sum(infer, k) / n if n else np.nan for k in TOKEN_KEYS},
        })
    return pd.DataFrame(rows, columns=["model", "stage", "train_s", "infer_images", "infer_s",
                                       "s_per_image", "s_per_1000_images",
                                       "cpu_s_per_1000_images", "energy_j_per_1000_images",
                                       *(f"{k}_per_image" for k in TOKEN_KEYS)])


def _extra_sum(records: pd.DataFrame, key: str) -> float:
    """Sum of ``extra[key]`` over records; NaN when no record carries it (not recorded)."""
    values = [e[key] for e in records["extra"] if isinstance(e, dict) and key in e]
    return float(sum(values)) if values else np.nan


def latency_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per model and backend (API and recorded models included): images, mean/median
    latency_s from the predictions table where latencies were recorded, mean answer length in
    characters of generative models (``raw_response``; NaN for scoring models)."""
    timed = predictions[predictions["latency_s"].notna()].assign(
        answer_chars=lambda f: f["raw_response"].map(
            lambda r: len(r) if isinstance(r, str) else np.nan))
    return timed.groupby(["model", "backend"], sort=False).agg(
        n=("latency_s", "size"), mean_latency_s=("latency_s", "mean"),
        median_latency_s=("latency_s", "median"),
        mean_answer_chars=("answer_chars", "mean")).reset_index()


def pareto_front(cost: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Boolean mask (n,) of the points no other point beats: lower-or-equal cost and
    higher-or-equal accuracy, strictly better in one. NaN points are never on the front."""
    cost, accuracy = np.asarray(cost, float), np.asarray(accuracy, float)
    valid = ~(np.isnan(cost) | np.isnan(accuracy))
    front = valid.copy()
    for i in np.flatnonzero(valid):
        dominated = (valid & (cost <= cost[i]) & (accuracy >= accuracy[i])
                     & ((cost < cost[i]) | (accuracy > accuracy[i])))
        front[i] = not dominated.any()
    return front


def accuracy_vs_cost(accuracy: pd.DataFrame, costs: pd.DataFrame,
                     latency: pd.DataFrame | None = None) -> pd.DataFrame:
    """Join per-model accuracy (model, backend, variant, accuracy, ...) with
    ``model_cost_table``. A CLIP linear probe costs its encoder's time per image plus its
    own training; a model without inference records (an API or recorded model) takes its
    mean ``latency_s`` from the predictions as s_per_image (``cost_source`` says which).
    Adds total_s = train_s (0 for zero-shot) + s_per_image * images evaluated, and the
    Pareto masks for cost per image and for total time."""
    known = set(costs["model"])
    # VLM stages record "clip:ViT-B-32/openai", its linear probe "clip:ViT-B-32/openai probe"
    candidates = [(m, f"{b}:{m}", f"clip:{m} probe" if b == "clip_probe" else "")
                  for m, b in zip(accuracy["model"], accuracy["backend"], strict=True)]
    keys = [next((k for k in c if k in known), c[1]) for c in candidates]
    costs = costs.rename(columns={"model": "cost_key"}).astype({"cost_key": object})
    frame = accuracy.assign(cost_key=pd.Series(keys, index=accuracy.index, dtype=object)).merge(
        costs, on="cost_key", how="left")
    frame["cost_source"] = np.where(frame["s_per_image"].notna(), "cost records", "")
    # a linear probe classifies CLIP image features: per image it costs the encoder's time
    encoder = costs.set_index("cost_key")["s_per_image"]
    probe = (frame["backend"] == "clip_probe") & ("clip:" + frame["model"]).isin(encoder.index)
    if probe.any():  # pandas refuses even an empty string-typed assignment into a float column
        frame.loc[probe, "s_per_image"] = ("clip:" + frame.loc[probe, "model"]).map(encoder).astype(float)
        frame.loc[probe, "cost_source"] = "CLIP encoder records (the probe runs on its features)"
    if latency is not None and len(latency):
        by = latency.set_index(["model", "backend"])["mean_latency_s"]
        mean = pd.Series([by.get((m, b), np.nan) for m, b in zip(frame["model"], frame["backend"],
                                                                  strict=True)],
                         index=frame.index, dtype=float)
        use = frame["s_per_image"].isna() & mean.notna()
        frame.loc[use, "s_per_image"] = mean[use]
        frame.loc[use, "cost_source"] = "latency_s of predictions"
    frame["total_s"] = frame["train_s"].fillna(0) + frame["s_per_image"] * frame["n"]
    frame["pareto_per_image"] = pareto_front(frame["s_per_image"], frame["accuracy"])
    frame["pareto_total"] = pareto_front(frame["total_s"], frame["accuracy"])
    return frame


# ----------------------------------------------------------------------------- predictions
# where each stage says its predictions table for a profile's current config is
PREDICTION_SOURCES = {
    "cnn": ("emolib.train.stage", "cnn_predictions_path", "notebooks/03_cnn_training.ipynb"),
    "vlm": ("emolib.vlm.study", "vlm_predictions_path", "notebooks/04_vlm_zero_shot.ipynb"),
}


def load_study_predictions(profile: Profile) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CNN and VLM predictions tables of the current config, concatenated, and a status
    table (stage, path, status) saying which are missing and what to run."""
    from emolib.predictions import read_predictions

    found, rows = [], []
    for stage, (module, name, notebook) in PREDICTION_SOURCES.items():
        try:
            path = getattr(importlib.import_module(module), name)(profile)
        except (ImportError, AttributeError) as err:
            rows.append({"stage": stage, "path": "", "status": f"no predictions yet: {err}"})
            continue
        ok = Path(path).is_file()
        rows.append({"stage": stage, "path": str(path),
                     "status": "found" if ok else f"no predictions yet: run {notebook}"})
        if ok:
            found.append(path)
    return read_predictions(found), pd.DataFrame(rows)


def accuracy_by_model(predictions: pd.DataFrame, label_set: str = "fer7",
                      split: str = "private_test") -> pd.DataFrame:
    """Accuracy per (model, backend, variant) on one label set and split (unparseable
    answers count as wrong). Columns: model, backend, variant, n, accuracy."""
    rows = predictions[(predictions["label_set"] == label_set) & (predictions["split"] == split)]
    if rows.empty:
        return pd.DataFrame(columns=["model", "backend", "variant", "n", "accuracy"])
    rows = rows.assign(correct=rows["y_true"] == rows["y_pred"])
    return rows.groupby(["model", "backend", "variant"], sort=False).agg(
        n=("correct", "size"), accuracy=("correct", "mean")).reset_index()


def primary_variants(accuracy: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, backend): the first variant evaluated on the most images (for
    notebooks 03/04 the unrestored faces on the full PrivateTest, default prompt), so the
    Pareto figure shows one point per model."""
    if accuracy.empty:
        return accuracy
    most = accuracy.groupby(["model", "backend"], sort=False)["n"].transform("max")
    return accuracy[accuracy["n"] == most].drop_duplicates(["model", "backend"]).reset_index(
        drop=True)


# ----------------------------------------------------------------------------- figures
def plot_pareto(frame: pd.DataFrame, cost_col: str, front_col: str, ax, xlabel: str) -> None:
    """Accuracy against ``cost_col`` (log x), one point per row labelled by model; the
    Pareto front drawn as a step line. ``frame`` as from ``accuracy_vs_cost``."""
    shown = frame.dropna(subset=[cost_col, "accuracy"])
    if shown.empty:
        ax.text(0.5, 0.5, "no model has both accuracy and cost yet", ha="center",
                transform=ax.transAxes)
        ax.set_xlabel(xlabel)
        return
    for backend, group in shown.groupby("backend"):
        ax.scatter(group[cost_col], group["accuracy"], label=backend, s=40)
    for _, row in shown.iterrows():
        name = row["model"] if row["backend"] == "cnn" else f"{row['backend']}:{row['model']}"
        ax.annotate(name, (row[cost_col], row["accuracy"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    front = shown[shown[front_col]].sort_values(cost_col)
    ax.step(front[cost_col], front["accuracy"], where="post", color="grey", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)


def plot_scaling(measured: pd.DataFrame, fits: pd.DataFrame, ax, time_col: str = "wall_s") -> None:
    """Measured ``time_col`` against images per model (all repeats) with the fitted lines."""
    if measured.empty:
        ax.text(0.5, 0.5, "no model could be timed", ha="center", transform=ax.transAxes)
        return
    fit_of = fits.set_index("model")
    for model, group in measured.groupby("model", sort=False):
        points = ax.scatter(group["n_images"], group[time_col], s=18, label=model)
        if model in fit_of.index and pd.notna(fit_of.loc[model, "per_image_s"]):
            n = np.linspace(0, group["n_images"].max(), 50)
            f = fit_of.loc[model]
            ax.plot(n, f["overhead_s"] + f["per_image_s"] * n, color=points.get_facecolor()[0])
    ax.set_xlabel("images")
    ax.set_ylabel(f"{time_col.replace('_s', '')} time (s)")
    ax.legend(fontsize=8)
