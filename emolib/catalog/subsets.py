"""The named evaluation subsets: stored once as ids, selected by name, checked on use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emolib.catalog.stores import (
    HARD_DATASETS,
    NOTEBOOKS,
    SUBSETS_FILE,
    data_store,
    hard_store,
    missing,
    prompts_store,
    vlm_store,
)
from emolib.config import Profile
from emolib.predictions import CONFIG_KEYS
from emolib.store import StageStore, write_parquet

# ----------------------------------------------------------------------------- subsets
# CLIP_benchmark's (and MTEB's) FER-2013 test set: the 7,178 faces of the Kaggle test/ folder
FER_KAGGLE_TEST = "fer_kaggle_test"
KAGGLE_TEST_SPLITS = ("public_test", "private_test")
# an outside protocol's test set: its rows are scored on it alone, never restricted to the
# study's own subsets by ``on_subset`` (they are another protocol, not another model)
PROTOCOL_SUBSETS = (FER_KAGGLE_TEST,)


def fer_eval_name(profile: Profile) -> str:
    """``fer_eval_<n>``: the shared stratified PrivateTest draw (``all`` when not cut)."""
    return f"fer_eval_{profile.data.eval_size or 'all'}"


def emotion6_eval_name(profile: Profile) -> str:
    """``emotion6_eval_<n>``: the VLM stage's draw of Emotion6 (``data.emotion6_eval_size``)."""
    return evoked_eval_name(profile, "emotion6")


def evoked_all_name(name: str) -> str:
    """``<name>_all``: every image of the profile's evoked data set ``name``."""
    return f"{name}_all"


def evoked_eval_name(profile: Profile, name: str) -> str:
    """``<name>_eval_<n>``: the stratified draw of the profile's evoked data set ``name`` that
    the VLM stage scores (its ``eval_size``; ``all`` when not cut)."""
    return f"{name}_eval_{profile.data.get_set(name).eval_size or 'all'}"


def write_subsets(profile: Profile, subsets: dict[str, tuple[str, np.ndarray]]) -> Path:
    """Store notebook 01's subsets: ``{name: (dataset, ids)}`` -> ``subsets.parquet``."""
    frame = pd.DataFrame([{"subset": name, "dataset": dataset, "image_id": str(i)}
                          for name, (dataset, ids) in subsets.items() for i in ids],
                         columns=["subset", "dataset", "image_id"])
    duplicated = frame.duplicated(["subset", "image_id"])
    if duplicated.any():
        raise ValueError(f"subsets name an id twice: {frame[duplicated].head().to_dict('records')}")
    return write_parquet(data_store(profile).path(SUBSETS_FILE), frame)


def write_stage_subset(store: StageStore, name: str, dataset: str, ids: np.ndarray) -> Path:
    """A subset a later stage defines (hard subsets, recorded coverage), in its own folder."""
    frame = pd.DataFrame({"subset": name, "dataset": dataset, "image_id": np.asarray(ids, dtype=str)})
    return write_parquet(store.path(f"subset_{name}.parquet"), frame)


def _subset_source(profile: Profile, name: str) -> tuple[str, Path]:
    """(stage, file) that holds subset ``name``: a later stage's own subsets (hard subsets,
    the coverage of recorded answers ``<set>_<model>``, the prompt sweep's samples) live in
    its folder as ``subset_<name>.parquet``; every other subset is notebook 01's."""
    if name in HARD_DATASETS:
        return "hard", hard_store(profile, HARD_DATASETS[name]).path(f"subset_{name}.parquet")
    for stage, store in (("vlm", vlm_store(profile)), ("prompts", prompts_store(profile))):
        if store.path(f"subset_{name}.parquet").is_file():
            return stage, store.path(f"subset_{name}.parquet")
    return "data", data_store(profile).path(SUBSETS_FILE)


def subset_table(profile: Profile, name: str) -> pd.DataFrame:
    """(subset, dataset, image_id) rows of subset ``name``; MissingUpstream if not written."""
    stage, path = _subset_source(profile, name)
    if not path.is_file():
        raise missing(f"subset {name!r}", stage, profile, path)
    frame = pd.read_parquet(path)
    rows = frame[frame["subset"] == name]
    if rows.empty and path.name != f"subset_{name}.parquet":  # a stage's own file may hold an empty subset
        known = sorted(set(frame["subset"]))
        raise KeyError(f"no subset {name!r} in {path}; it holds {known}: run notebooks/{NOTEBOOKS[stage]} "
                       "for this profile again")
    return rows.reset_index(drop=True)


def data_subset_names(profile: Profile) -> list[str]:
    """The names of the subsets notebook 01 stored, in stored order; MissingUpstream if none."""
    path = data_store(profile).path(SUBSETS_FILE)
    if not path.is_file():
        raise missing("the named subsets", "data", profile, path)
    return list(dict.fromkeys(pd.read_parquet(path, columns=["subset"])["subset"]))


def subset_ids(profile: Profile, name: str) -> np.ndarray:
    """(n,) str ids of subset ``name``, in their stored order."""
    return subset_table(profile, name)["image_id"].to_numpy(dtype=object)


def select_subset(image_set, profile: Profile, name: str):
    """The images of ``image_set`` (an ``ImageSet``) in subset ``name``, named after it."""
    return image_set.select_ids(subset_ids(profile, name), name)


def on_subset(predictions: pd.DataFrame, profile: Profile, name: str) -> pd.DataFrame:
    """The rows of ``predictions`` scored on subset ``name``: every configuration
    (``CONFIG_KEYS`` group) whose predicted subset (its ``subset`` column) contains all of
    ``name``'s ids, restricted to them; ``subset`` becomes ``name``. A configuration that
    should cover ``name`` but lacks or repeats an id raises ValueError naming it; one whose
    predicted subset does not contain ``name`` (restored faces and ``fer_private``, say) is
    not scored on it, nor is one predicted on another protocol's subset (``PROTOCOL_SUBSETS``:
    CLIP_benchmark's ``fer_kaggle_test``) unless ``name`` is that subset."""
    wanted = set(subset_ids(profile, name))
    contains = {t: (t == name or t not in PROTOCOL_SUBSETS) and wanted <= set(subset_ids(profile, t))
                for t in predictions["subset"].unique()}
    frames = []
    for key, group in predictions.groupby(list(CONFIG_KEYS), sort=False):
        if not contains[group["subset"].iloc[0]]:
            continue
        rows = group[group["image_id"].isin(wanted)]
        problem = id_problem(rows["image_id"], wanted)
        if problem:
            raise ValueError(f"{dict(zip(CONFIG_KEYS, key, strict=True))} on subset {name!r}: {problem}")
        frames.append(rows)
    if not frames:
        return predictions.iloc[:0].assign(subset=name)
    return pd.concat(frames, ignore_index=True).assign(subset=name)


def on_subsets(predictions: pd.DataFrame, profile: Profile, names: list[str]) -> pd.DataFrame:
    """``on_subset`` for each name, concatenated (a row appears once per subset it is in)."""
    frames = [on_subset(predictions, profile, n) for n in names]
    return pd.concat(frames, ignore_index=True) if frames else predictions.iloc[:0]


def id_problem(got: pd.Series, expected: set) -> str:
    """'' when ``got`` holds every id of ``expected`` once and nothing else; else what is wrong."""
    duplicated = got[got.duplicated()].unique()
    lacking = expected - set(got)
    extra = set(got) - expected
    parts = []
    if len(lacking):
        parts.append(f"{len(lacking)} id(s) of the subset missing, e.g. {sorted(lacking)[:3]}")
    if len(extra):
        parts.append(f"{len(extra)} id(s) outside the subset, e.g. {sorted(extra)[:3]}")
    if len(duplicated):
        parts.append(f"{len(duplicated)} id(s) twice, e.g. {sorted(duplicated)[:3]}")
    return "; ".join(parts)
