"""The consistency check of a profile's outputs across notebooks (``emolib.catalog.check``)."""

from __future__ import annotations

import pandas as pd

from emolib.catalog.stores import (
    NOTEBOOKS,
    PREDICTION_STAGES,
    MissingUpstream,
    cnn_model_store,
    cnn_store,
    predictions_path,
    table_path,
)
from emolib.catalog.subsets import id_problem, subset_ids
from emolib.config import Profile
from emolib.predictions import CONFIG_KEYS, validate_predictions
from emolib.recorder import COST_FILE, read_cost_records


# ----------------------------------------------------------------------------- consistency
class ConsistencyError(AssertionError):
    """The stages of a profile disagree; the message lists every failed check."""


TRAIN_COST_TABLES = {"tab_03_cost": "notebook 03", "tab_06_accuracy_vs_cost": "notebook 06"}
HUMAN_EVAL_SOURCES = "tab_07_sources"


def check(profile: Profile, raise_on_failure: bool = True) -> pd.DataFrame:
    """The consistency check of a profile's outputs (end of notebook 07, and the tests):

    - every predictions table holds, per configuration, exactly the ids of its subset
      (nothing dropped, nothing repeated, nothing extra);
    - restored faces are paired: the original-face configuration of the same model covers
      every id the restored one scored;
    - every CNN trained in notebook 03 has training-cost records, and the training seconds
      in notebook 03's and notebook 06's tables equal the records' (within 1%);
    - every model with predictions on original images appears in notebook 07's sources.

    Returns one row per check (check, subject, status: ok | FAILED | not run, detail) and,
    with ``raise_on_failure``, raises ConsistencyError listing the failures."""
    tables = {stage: pd.read_parquet(predictions_path(profile, stage)) for stage in PREDICTION_STAGES
              if predictions_path(profile, stage).is_file()}
    rows = [{"check": "predictions", "subject": stage, "status": "not run",
             "detail": f"run notebooks/{NOTEBOOKS[stage]}"} for stage in PREDICTION_STAGES if stage not in tables]
    rows += [_check_valid(stage, table) for stage, table in tables.items()]
    for stage, table in tables.items():
        rows += _check_subsets(profile, stage, table) + _check_pairing(stage, table)
    rows += _check_training_costs(profile) + _check_human_eval(profile, tables)
    result = pd.DataFrame(rows, columns=["check", "subject", "status", "detail"])
    failed = result[result["status"] == "FAILED"]
    if raise_on_failure and len(failed):
        lines = [f"- {r.check} / {r.subject}: {r.detail}" for r in failed.itertuples()]
        raise ConsistencyError(f"profile {profile.name!r}: {len(failed)} consistency check(s) failed:\n"
                               + "\n".join(lines))
    return result


def _check_valid(stage: str, table: pd.DataFrame) -> dict:
    """The table's columns, types and values (``predictions.validate_predictions``)."""
    try:
        validate_predictions(table, f"{stage} predictions")
    except ValueError as err:
        return {"check": "predictions", "subject": stage, "status": "FAILED", "detail": str(err)}
    return {"check": "predictions", "subject": stage, "status": "ok", "detail": f"{len(table)} valid rows"}


def _name(key: tuple) -> str:
    return " ".join(f"{k}={v}" for k, v in zip(CONFIG_KEYS, key, strict=True))


def _check_subsets(profile: Profile, stage: str, table: pd.DataFrame) -> list[dict]:
    rows, known = [], {}
    for key, group in table.groupby(list(CONFIG_KEYS), sort=False):
        subset = group["subset"].iloc[0]
        if subset not in known:
            try:
                known[subset] = set(subset_ids(profile, subset))
            except (MissingUpstream, KeyError) as err:
                known[subset] = err
        expected = known[subset]
        problem = f"subset {subset!r} unknown: {expected}" if isinstance(expected, Exception) else \
            id_problem(group["image_id"], expected)
        rows.append({"check": "one row per id of the subset", "subject": f"{stage}: {_name(key)}",
                     "status": "FAILED" if problem else "ok", "detail": problem or f"n={len(group)}"})
    return rows


def _check_pairing(stage: str, table: pd.DataFrame) -> list[dict]:
    rows = []
    same = ["dataset", "label_set", "model", "backend", "prompt", "seed"]
    original = table[table["restoration"] == "none"]
    for key, group in table[table["restoration"] != "none"].groupby([*same, "restoration"], sort=False):
        base = original
        for column, value in zip(same, key[:-1], strict=True):
            base = base[base[column] == value]
        lacking = set(group["image_id"]) - set(base["image_id"])
        detail = (f"{len(lacking)} restored id(s) have no original-face prediction, e.g. {sorted(lacking)[:3]}"
                  if lacking else f"n={len(group)} paired with the original faces")
        rows.append({"check": "restored vs original on the same ids",
                     "subject": f"{stage}: {key[2]} {key[-1]}", "status": "FAILED" if lacking else "ok",
                     "detail": detail})
    return rows


def training_wall_s(profile: Profile, name: str, seed: int) -> float | None:
    """Wall seconds of every counted training attempt of one CNN (``train`` phases, ok or
    interrupted), from its cost records; None when it has none."""
    records = [r for r in read_cost_records(cnn_model_store(profile, name, seed).dir / COST_FILE)
               if r.get("phase") == "train" and r.get("status") in ("ok", "interrupted") and not r.get("parent_id")]
    return sum(r["wall_s"] for r in records) if records else None


def _check_training_costs(profile: Profile) -> list[dict]:
    meta = cnn_store(profile).read_meta()
    if not meta:
        return [{"check": "training cost", "subject": "cnn", "status": "not run",
                 "detail": f"run notebooks/{NOTEBOOKS['cnn']}"}]
    rows = []
    saved = {name: pd.read_csv(table_path(profile, name)).groupby("model")["train_s"].sum()
             for name in TRAIN_COST_TABLES if table_path(profile, name).is_file()}
    for key in meta["trained"]:
        name, seed = key.rsplit("_s", 1)
        wall_s = training_wall_s(profile, name, int(seed))
        problems = [] if wall_s is not None else ["no training-cost record"]
        for table, where in TRAIN_COST_TABLES.items():
            got = saved.get(table, pd.Series(dtype=float)).get(name)
            if table in saved and (got is None or wall_s is None or abs(got - wall_s) > max(0.5, 0.01 * wall_s)):
                problems.append(f"{where} ({table}) says {got} s, the records {wall_s} s")
        rows.append({"check": "training cost", "subject": f"cnn: {key}", "status": "FAILED" if problems else "ok",
                     "detail": "; ".join(problems) or f"{wall_s:.1f} s in every table"})
    return rows


def _check_human_eval(profile: Profile, tables: dict[str, pd.DataFrame]) -> list[dict]:
    path = table_path(profile, HUMAN_EVAL_SOURCES)
    if not path.is_file():
        return [{"check": "human evaluation sources", "subject": "human_eval", "status": "not run",
                 "detail": f"run notebooks/{NOTEBOOKS['human_eval']}"}]
    sources = pd.read_csv(path, keep_default_na=False)
    listed = set(zip(sources["backend"], sources["model"], strict=True))
    wanted = profile.human_eval.models
    rows = []
    for stage in ("cnn", "vlm"):
        table = tables.get(stage)
        if table is None:
            continue
        original = table[table["restoration"] == "none"]
        for backend, model in dict.fromkeys(zip(original["backend"], original["model"], strict=True)):
            if wanted and model not in wanted:
                continue
            ok = (backend, model) in listed
            rows.append({"check": "human evaluation studies every model", "subject": f"{backend}:{model}",
                         "status": "ok" if ok else "FAILED",
                         "detail": "in notebook 07's sources" if ok else f"{stage} predictions exist, but "
                         "notebook 07 did not read them"})
    return rows
