"""Does the backend change the answer? One model asked through two backends, image by image.

A profile can name the same generative model twice: in process through transformers
(``vlm.hf_models``, backend ``hf``) and behind an OpenAI-compatible server such as vLLM
(``vlm.endpoints``, backend ``openai``; vLLM serves a repo under its repo id, so the two
entries carry the same model name). ``agreement_table(predictions)`` finds every model of a
predictions table (``emolib.predictions``) answered through two or more backends and, for each
pair of its backends (``backend_a`` first, in the order the backends first appear in the
table) and each configuration both answered (``PAIR_KEYS``: dataset, label set, subset,
restoration, prompt, seed), gives one row:

- ``n``: images; both backends must be on exactly the same ids, each once (ValueError naming
  the model, backend, configuration and problem otherwise);
- ``share_identical``: share of images with the same ``y_pred`` from both; two no-answers
  (``y_pred == -1``: unparseable, error) count as identical, since neither gave a label;
- ``kappa``: Cohen's kappa between the two ``y_pred`` columns, no-answer a category of its
  own: (p_o - p_e) / (1 - p_e), p_o the share identical, p_e the agreement expected from the
  two columns' marginal shares; NaN where undefined (p_e = 1: both gave one and the same
  answer to every image);
- ``accuracy_a``, ``accuracy_b``: share right (no answer counts as wrong);
- ``b``, ``c``, ``p``: McNemar's test on correctness over the same images, ``b`` = a right
  and b wrong, ``c`` = the reverse, ``p`` from ``emolib.stats.mcnemar_test`` (exact binomial
  when b + c < 25; 1 when there is no discordant image);
- ``share_<status>_a``, ``share_<status>_b``: share of each parse status of
  ``emolib.predictions.PARSE_STATUSES`` among each backend's answers (0 where it does not occur).

A faithful backend gives share 1, kappa 1 (or NaN), b = c = 0 and p = 1. A configuration only
one backend answered has no row: it is not a pair (a CLIP model and its linear probe share a
name but never a prompt, ``default`` against ``-``, so they never pair).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from emolib.catalog import id_problem
from emolib.predictions import PARSE_STATUSES
from emolib.stats import mcnemar_test

PAIR_KEYS = ("dataset", "label_set", "subset", "restoration", "prompt", "seed")  # one configuration
FIGURES = ("n", "share_identical", "kappa", "accuracy_a", "accuracy_b", "b", "c", "p")
MIX = tuple(f"share_{status}_{side}" for side in "ab" for status in PARSE_STATUSES)
COLUMNS = ("model", "backend_a", "backend_b", *PAIR_KEYS, *FIGURES, *MIX)
NEEDED = ("image_id", "y_true", "y_pred", "model", "backend", "parse_status", *PAIR_KEYS)


def backends_of(predictions: pd.DataFrame) -> dict[str, list[str]]:
    """model -> its backends, in order of first appearance, for every model of ``predictions``
    answered through two or more backends ({} when none is)."""
    seen = predictions.groupby("model", sort=False)["backend"].unique()
    return {str(model): list(backends) for model, backends in seen.items() if len(backends) > 1}


def agreement_figures(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """``FIGURES`` of two answer columns (n,) of label indices (-1: no answer) on the same
    images, ``y_true`` (n,) their labels; see the module docstring."""
    y_true, pred_a, pred_b = (np.asarray(x, dtype=np.int64) for x in (y_true, pred_a, pred_b))
    right_a, right_b = pred_a == y_true, pred_b == y_true
    b, c = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    categories = sorted(set(pred_a) | set(pred_b))  # -1 (no answer) is a category of its own
    # one category in all: p_e = 1, kappa is 0/0 (sklearn would warn about a 1x1 confusion matrix)
    kappa = np.nan if len(categories) == 1 else cohen_kappa_score(pred_a, pred_b, labels=categories)
    return {"n": len(y_true), "share_identical": float((pred_a == pred_b).mean()), "kappa": float(kappa),
            "accuracy_a": float(right_a.mean()), "accuracy_b": float(right_b.mean()),
            "b": b, "c": c, "p": mcnemar_test(b, c)[1]}


def parse_mix(parse_status: pd.Series, side: str) -> dict[str, float]:
    """``share_<status>_<side>`` of every status of ``PARSE_STATUSES`` among ``parse_status`` (n,)."""
    return {f"share_{status}_{side}": float((parse_status == status).mean()) for status in PARSE_STATUSES}


def paired_rows(rows_a: pd.DataFrame, rows_b: pd.DataFrame, where: str) -> pd.DataFrame:
    """``rows_b`` in the order of ``rows_a``'s image ids; ValueError (prefixed by ``where``)
    unless both hold exactly the same ids, each once."""
    ids_a, ids_b = rows_a["image_id"], rows_b["image_id"]
    twice_in_a = id_problem(ids_a, set(ids_a))
    if twice_in_a:
        raise ValueError(f"{where}: backend {rows_a['backend'].iloc[0]} answered {twice_in_a}")
    problem = id_problem(ids_b, set(ids_a))
    if problem:
        raise ValueError(f"{where}: backend {rows_b['backend'].iloc[0]} is not on the ids of backend "
                         f"{rows_a['backend'].iloc[0]}: {problem}")
    return rows_b.set_index("image_id").loc[ids_a.to_numpy()].reset_index()


def pair_rows(predictions: pd.DataFrame, model: str, backend_a: str, backend_b: str) -> list[dict]:
    """One row (``COLUMNS``) per configuration (``PAIR_KEYS``) that ``model`` answered through
    both ``backend_a`` and ``backend_b``."""
    own = predictions[predictions["model"] == model]
    keys = list(PAIR_KEYS)
    groups_b = dict(list(own[own["backend"] == backend_b].groupby(keys, sort=False)))
    rows = []
    for key, rows_a in own[own["backend"] == backend_a].groupby(keys, sort=False):
        if key not in groups_b:
            continue  # answered through one backend only: not a pair (module docstring)
        config = dict(zip(keys, key, strict=True))
        rows_b = paired_rows(rows_a, groups_b[key], f"model {model} on {config}")
        figures = agreement_figures(rows_a["y_true"].to_numpy(), rows_a["y_pred"].to_numpy(),
                                    rows_b["y_pred"].to_numpy())
        rows.append({"model": model, "backend_a": backend_a, "backend_b": backend_b, **config, **figures,
                     **parse_mix(rows_a["parse_status"], "a"), **parse_mix(rows_b["parse_status"], "b")})
    return rows


def agreement_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row (``COLUMNS``) per model answered through two or more backends, pair of its
    backends and configuration both answered (see the module docstring); no rows, the same
    columns, when no model has two backends. ValueError when a column is missing or a pair is
    not on the same ids."""
    missing = [c for c in NEEDED if c not in predictions.columns]
    if missing:
        raise ValueError(f"agreement_table: the predictions table lacks column(s) {missing} (emolib.predictions)")
    rows = [row for model, backends in backends_of(predictions).items()
            for backend_a, backend_b in combinations(backends, 2)
            for row in pair_rows(predictions, model, backend_a, backend_b)]
    return pd.DataFrame(rows, columns=list(COLUMNS))
