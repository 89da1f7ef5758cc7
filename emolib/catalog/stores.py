"""Where every stage of a profile writes: store folders, predictions tables, cost sources."""


from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from emolib.config import Profile, config_hash, to_dict
from emolib.machine import Machine, plan_machine
from emolib.paths import imagenet_weights_file, stage_dir, tables_dir
from emolib.predictions import CONFIG_KEYS, read_predictions
from emolib.store import StageStore

NOTEBOOKS = {
    "data": "01_data.ipynb", "restoration": "02_restoration.ipynb", "cnn": "03_cnn_training.ipynb",
    "hard": "03_cnn_training.ipynb", "vlm": "04_vlm_zero_shot.ipynb",
    "prompts": "05_prompt_sensitivity.ipynb", "cost": "06_cost_analysis.ipynb",
    "human_eval": "07_human_eval.ipynb",
}
SUBSETS_FILE = "subsets.parquet"
PREDICTIONS_FILE = "predictions.parquet"
HARD_DATASETS = {"fer_hard": "fer2013", "emotion6_hard": "emotion6"}


class MissingUpstream(FileNotFoundError):
    """An output a stage needs has not been written: the message names the notebook to run."""


def missing(what: str, stage: str, profile: Profile, path: Path | None = None) -> MissingUpstream:
    where = f" ({path})" if path is not None else ""
    return MissingUpstream(f"{what} of profile {profile.name!r} not found{where}: run "
                           f"notebooks/{NOTEBOOKS[stage]} for this profile first")


# ----------------------------------------------------------------------------- stage folders
def data_store(profile: Profile) -> StageStore:
    """Notebook 01: the audit and the named subsets it defines."""
    return StageStore(profile, "data", profile.data, profile.seed)


def restoration_store(profile: Profile) -> StageStore:
    """Notebook 02: which variants of the evaluation subset it restored."""
    return StageStore(profile, "restoration", profile.restoration, data_store(profile).hash)


def restoration_cache_dir(profile: Profile) -> Path:
    """The per-image restoration cache shared by every config of the profile; it holds the
    cost records of the images it paid for (filtered by ``restoration_record_counts``)."""
    return stage_dir(profile.name, "restoration", "image_cache")


def cnn_model_key(profile: Profile, name: str, machine: Machine | None = None) -> dict:
    """What decides one CNN's training (its own settings, not the other models'), so that
    changing one model's width, precision or overrides does not retrain the others."""
    cfg, own = profile.cnn, profile.cnn.model(name)
    shared = {k: v for k, v in to_dict(cfg).items()
              if k not in ("models", "precision", "seeds", "hard_threshold", "hard_folds", "hard_probe",
                           "hard_vote_share", "per_model", "threads", "test_time_flip", "parallel")}
    regularization = {key: getattr(own, key) for key in ("dropout", "stochastic_depth")
                      if getattr(own, key) is not None}  # absent when unset: existing keys unchanged
    training = own.training_overrides()
    # the precision decided on this machine (auto: bf16 where the CPU computes it natively), not
    # the word asked for: an AVX2 and an AMX machine train different networks into different folders
    precision = plan_machine(profile, machine).precision[name]
    # ImageNet weights that arrive later make another network: trained anew, in its own folder
    init = {"imagenet_weights_here": imagenet_weights_file(name).is_file()} if cfg.weights == "imagenet" else {}
    return {"model": name, "width": cfg.width_of(name), "stem_stride": own.stem_stride,
            **regularization, "bf16": precision == "bf16", **({"precision": precision} if precision == "fp16" else {}),
            **init, **shared, **training, "data": face_data_key(profile)}


FACE_DATA_KEYS = ("source", "fer2013", "synthetic_per_class", "subsample", "skip_unreadable")


def face_data_key(profile: Profile) -> dict:
    """The data settings a CNN's training reads (the faces it trains and selects on): naming
    another evoked set, or changing the evaluation draws, does not retrain the CNNs."""
    data = to_dict(profile.data)
    faces = [entry for entry in data.get("sets", []) if entry["role"] == "faces"]
    return {k: data[k] for k in FACE_DATA_KEYS} | ({"face_sets": faces} if faces else {})


def cnn_model_store(profile: Profile, name: str, seed: int) -> StageStore:
    """Notebook 03, one model and seed: checkpoint, best weights, training result, its cost."""
    return StageStore(profile, "cnn_models", cnn_model_key(profile, name), seed)


def cnn_store(profile: Profile) -> StageStore:
    """Notebook 03: the predictions of every trained CNN on the evaluation subsets."""
    return StageStore(profile, "cnn", profile.cnn, data_store(profile).hash, profile.restoration)


def hard_store(profile: Profile, dataset: str) -> StageStore:
    """Notebook 03: the hard subset of ``dataset`` (``fer2013`` or ``emotion6``)."""
    # the probe reads the trained CNNs: every CNN setting decides the hard subsets
    return StageStore(profile, "hard", dataset, profile.cnn, data_store(profile).hash, profile.seed)


def vlm_key(profile: Profile) -> dict:
    """The VLM settings the stages after notebook 04 depend on: all but
    ``vlm.clip_benchmark_models`` (CLIP_benchmark's protocol rows are notebook 04's alone), so
    naming models there does not redo the prompt sweep or the scaling runs. Equal to
    ``profile.vlm`` in every hash while that setting is empty."""
    return {k: v for k, v in to_dict(profile.vlm).items() if k != "clip_benchmark_models"}


def vlm_store(profile: Profile) -> StageStore:
    """Notebook 04: zero-shot predictions, model status, recorded answers."""
    return StageStore(profile, "vlm", profile.vlm, data_store(profile).hash, restoration_store(profile).hash,
                      profile.seed)


def templates_hash() -> str:
    """sha256 (16 hex) of the VLM and prompt-variant templates as data (a comment or a layout
    change of the YAML is no new run; a changed prompt is)."""
    package = resources.files("emolib")
    data = [yaml.safe_load((package / part).read_text()) for part in ("templates.yaml", "prompts/variants.yaml")]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def prompts_store(profile: Profile) -> StageStore:
    """Notebook 05: the prompt-sensitivity sweep."""
    return StageStore(profile, "prompts", profile.prompts, vlm_key(profile), data_store(profile).hash,
                      {"seed": profile.seed, "templates": templates_hash()})


def cost_store(profile: Profile) -> StageStore:
    """Notebook 06: its own scaling runs."""
    return StageStore(profile, "cost", profile.cost, profile.cnn, vlm_key(profile))


def human_eval_store(profile: Profile, predictions: pd.DataFrame) -> StageStore:
    """Notebook 07: one sample of errors, named after the sampling settings and the predictions
    it was drawn from (a digest of their ids, models, configuration and answers)."""
    columns = ["image_id", *CONFIG_KEYS, "y_true", "y_pred"]
    digest = hashlib.sha1(pd.util.hash_pandas_object(predictions[columns], index=False)
                          .to_numpy().tobytes()).hexdigest()[:16]
    return StageStore(profile, "human_eval", profile.human_eval, profile.seed, digest)


# ----------------------------------------------------------------------------- predictions
PREDICTION_STAGES = ("cnn", "vlm", "prompts")


def predictions_path(profile: Profile, stage: str) -> Path:
    """Where the predictions table of ``stage`` (cnn | vlm | prompts) is for this profile."""
    stores = {"cnn": cnn_store, "vlm": vlm_store, "prompts": prompts_store}
    if stage not in stores:
        raise ValueError(f"no predictions table for stage {stage!r}; stages with one: {PREDICTION_STAGES}")
    return stores[stage](profile).path(PREDICTIONS_FILE)


def read_stage_predictions(profile: Profile, stage: str) -> pd.DataFrame:
    """The predictions table of ``stage``; MissingUpstream naming its notebook if not run."""
    path = predictions_path(profile, stage)
    if not path.is_file():
        raise missing(f"the {stage} predictions", stage, profile, path)
    return read_predictions(path)


def study_predictions(profile: Profile, stages: tuple[str, ...] = ("cnn", "vlm")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every stage's predictions concatenated, and a status table (stage, notebook, status,
    rows, models): a stage that has not run is a visible ``not run`` row."""
    frames, rows = [], []
    for stage in stages:
        path = predictions_path(profile, stage)
        table = read_predictions(path) if path.is_file() else None
        rows.append({"stage": stage, "notebook": NOTEBOOKS[stage],
                     "status": "found" if table is not None else f"not run: run notebooks/{NOTEBOOKS[stage]}",
                     "rows": 0 if table is None else len(table),
                     "models": "" if table is None else ", ".join(dict.fromkeys(table["model"]))})
        frames += [] if table is None else [table]
    return (pd.concat(frames, ignore_index=True) if frames else read_predictions([])), pd.DataFrame(rows)


# ----------------------------------------------------------------------------- cost records
@dataclass(frozen=True)
class CostSource:
    """A folder whose ``cost.jsonl`` counts for the profile's current configuration."""

    stage: str
    folder: Path
    notebook: str
    what: str


def cost_sources(profile: Profile) -> list[CostSource]:
    """Every folder whose cost records count for this profile, stage by stage (notebook 06's
    own scaling runs are reported separately). The restoration cache holds every backend and
    output size ever run: ``restoration_record_counts`` keeps the profile's own."""
    sources = [CostSource("data", data_store(profile).dir, NOTEBOOKS["data"], "audit"),
               CostSource("restoration", restoration_cache_dir(profile), NOTEBOOKS["restoration"],
                          "restored images")]
    sources += [CostSource("cnn", cnn_model_store(profile, name, seed).dir, NOTEBOOKS["cnn"],
                           f"training {name} seed {seed}")
                for seed in profile.cnn.seeds for name in profile.cnn.models]
    sources.append(CostSource("cnn", cnn_store(profile).dir, NOTEBOOKS["cnn"], "CNN inference"))
    sources += [CostSource("hard", hard_store(profile, d).dir, NOTEBOOKS["hard"], f"hard subset {d}")
                for d in HARD_DATASETS.values()]
    sources += [CostSource("vlm", vlm_store(profile).dir, NOTEBOOKS["vlm"], "zero-shot"),
                CostSource("prompts", prompts_store(profile).dir, NOTEBOOKS["prompts"], "prompt sweep")]
    return sources


def restoration_record_counts(profile: Profile, model: str | None, tags: dict) -> bool:
    """A record of the shared restoration cache counts when it is one of the profile's
    backends at the profile's output size."""
    cfg = profile.restoration
    return model in cfg.backends and tags.get("output_size", cfg.output_size) == cfg.output_size


def stage_hashes(profile: Profile) -> dict[str, str]:
    """The config hash of each stage folder of this profile (shown in meta and tables)."""
    return {"data": data_store(profile).hash, "restoration": restoration_store(profile).hash,
            "cnn": cnn_store(profile).hash, "vlm": vlm_store(profile).hash,
            "prompts": prompts_store(profile).hash, "cost": cost_store(profile).hash,
            "profile": config_hash(profile)}


def table_path(profile: Profile, name: str) -> Path:
    """``tables/<profile>/<name>.csv``: what a notebook saved with ``tables.save_table``."""
    return tables_dir(profile.name, ensure=False) / f"{name}.csv"
