"""Every stage's cost records of a profile, and the tables of notebook 06.

Which records count: exactly the folders ``emolib.catalog.cost_sources(profile)`` names for
the profile's current configuration (the restoration cache keeps only the profile's own
backends and output size, ``catalog.restoration_record_counts``). A stage that has not run
is a visible "not run" row of ``stage_coverage``. Within those folders a phase measured
more than once under the same name, model and tags counts once (the newest; the older
ones are ``superseded`` and shown as earlier attempts). A resumed training run is not a
repeat: each attempt is tagged with the epoch it started from, and an attempt that was
killed counts up to its last heartbeat (``status == "interrupted"``, ``emolib.recorder``).
Totals add only top-level phases (``depth == 0``): a nested phase is inside its parent.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.predictions import CONFIG_KEYS, ENSEMBLE_BACKEND
from emolib.recorder import COST_FILE, read_cost_records

NOT_MEASURED = "not measured"
# measurements a stage may put on a phase handle (``h.extra["tokens_out"] = ...``)
TOKEN_KEYS = ("tokens_in", "tokens_out")
COUNTED_STATUS = ("ok", "interrupted")  # time that was spent on work that was kept
RECORD_COLUMNS = ("stage", "config_hash", "phase", "model", "items", "wall_s", "cpu_s",
                  "items_per_s", "peak_rss_mb", "peak_gpu_mb", "energy_cpu_j", "energy_gpu_j",
                  "energy_note", "device", "status", "error", "started_at", "phase_id",
                  "parent_id", "tags", "extra", "host")


# ----------------------------------------------------------------------------- collecting
def collect_cost_records(profile: Profile) -> pd.DataFrame:
    """The cost records of the profile's current configuration, one row each. Columns:
    RECORD_COLUMNS, source (what the folder holds), depth, phase_path, superseded."""
    rows = []
    for source in catalog.cost_sources(profile):
        for rec in read_cost_records(source.folder / COST_FILE):
            tags = rec.get("tags") if isinstance(rec.get("tags"), dict) else {}
            if source.stage == "restoration" and not catalog.restoration_record_counts(profile, rec.get("model"), tags):
                continue
            rows.append({**{k: rec.get(k) for k in RECORD_COLUMNS}, "stage": source.stage,
                         "config_hash": source.folder.name, "source": source.what, "tags": tags,
                         "extra": rec.get("extra") if isinstance(rec.get("extra"), dict) else {}})
    frame = pd.DataFrame(rows, columns=[*RECORD_COLUMNS, "source"])
    return _mark_superseded(_add_nesting(frame))


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


def _mark_superseded(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame.assign(superseded=pd.Series(dtype=bool))
    frame = frame.reset_index(drop=True)
    parent_path = frame["phase_path"].str.rsplit("/", n=1).str[0].where(frame["depth"] > 0, "")
    key = pd.DataFrame({
        "stage": frame["stage"], "hash": frame["config_hash"], "phase": frame["phase"],
        "model": frame["model"].fillna(""), "parent": parent_path,
        "tags": [json.dumps(t, sort_keys=True, default=str) for t in frame["tags"]],
    })
    order = frame["started_at"].fillna("").argsort(kind="stable").to_numpy()
    newest = key.iloc[order].drop_duplicates(keep="last").index
    return frame.assign(superseded=~frame.index.isin(newest))


def stage_coverage(profile: Profile, records: pd.DataFrame) -> pd.DataFrame:
    """One row per cost source of the profile (``catalog.cost_sources``): stage, what,
    notebook, records, failed, interrupted, superseded, status (``not run: run <notebook>``
    when the folder has no record)."""
    rows = []
    for source in catalog.cost_sources(profile):
        group = records[(records["stage"] == source.stage) & (records["source"] == source.what)]
        rows.append({"stage": source.stage, "what": source.what, "notebook": source.notebook,
                     "n_records": len(group), "n_failed": int((group["status"] == "failed").sum()),
                     "n_interrupted": int((group["status"] == "interrupted").sum()),
                     "n_superseded": int(group["superseded"].sum()),
                     "status": "recorded" if len(group) else f"not run: run notebooks/{source.notebook}"})
    return pd.DataFrame(rows)


def training_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per trained CNN (stage ``cnn``, phase ``train``): attempts, how many were interrupted,
    wall and CPU seconds over all attempts, images trained (each attempt counts only its own
    epochs) and images per second of training. Notebooks 03 and 06 both read this table."""
    train = records[(records["stage"] == "cnn") & (records["phase"] == "train") & (records["depth"] == 0)
                    & ~records["superseded"] & records["status"].isin(COUNTED_STATUS)]
    rows = []
    for model, group in train.groupby("model", sort=False):
        wall, images = group["wall_s"].sum(), group["items"].fillna(0).sum()
        rows.append({"model": model, "attempts": len(group),
                     "interrupted": int((group["status"] == "interrupted").sum()),
                     "train_s": wall, "train_cpu_s": group["cpu_s"].sum(), "images_trained": int(images),
                     "images_per_s": images / wall if wall else np.nan})
    return pd.DataFrame(rows, columns=["model", "attempts", "interrupted", "train_s", "train_cpu_s",
                                       "images_trained", "images_per_s"])


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
    measured). Counted records only (ok, or interrupted: time spent on work that was kept,
    ``training_table``); inference summed over configurations and data sets."""
    ok = records[(~records["superseded"]) & records["status"].isin(COUNTED_STATUS)
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
    own training; the CNNs' soft vote costs the sum of its members' training and time per
    image (it needs every one of them); a model without inference records (an API or recorded model) takes its
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
    frame = _ensemble_costs(frame)
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


def _ensemble_costs(frame: pd.DataFrame) -> pd.DataFrame:
    """The soft-vote rows (``cnn_ensemble``) with the summed training time and time per image
    of the CNNs it averages (the ``cnn`` rows of ``frame``, one per model)."""
    vote = frame["backend"] == ENSEMBLE_BACKEND
    if not vote.any():
        return frame
    members = frame[frame["backend"] == "cnn"].drop_duplicates("model")
    frame = frame.copy()
    frame.loc[vote, "train_s"] = members["train_s"].sum(min_count=1)
    frame.loc[vote, "s_per_image"] = members["s_per_image"].sum(min_count=1)
    frame.loc[vote, "cost_source"] = f"sum of the {len(members)} CNNs it averages (their cost records)"
    return frame


# ----------------------------------------------------------------------------- accuracy
def accuracy_by_model(predictions: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Accuracy of every model on the evaluation subset every stage scores
    (``catalog.fer_eval_name``: the same FER-2013 PrivateTest ids for CNNs and VLMs), original
    faces, FER-7 labels (unparseable answers count as wrong). Columns: CONFIG_KEYS, n, accuracy."""
    rows = predictions[(predictions["label_set"] == "fer7") & (predictions["restoration"] == "none")]
    if rows.empty:
        return pd.DataFrame(columns=[*CONFIG_KEYS, "n", "accuracy"])
    rows = catalog.on_subset(rows, profile, catalog.fer_eval_name(profile))
    rows = rows.assign(correct=rows["y_true"] == rows["y_pred"])
    return rows.groupby(list(CONFIG_KEYS), sort=False).agg(
        n=("correct", "size"), accuracy=("correct", "mean")).reset_index()
