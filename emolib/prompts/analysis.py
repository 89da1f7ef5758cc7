"""Analysis of the prompt sweep (notebook 05): scores, paired tests, biases, agreement.

Every function reads the predictions table (``emolib.predictions.COLUMNS``); rows are paired
across variants by ``image_id`` within (model, backend, dataset). ``y_pred == -1`` (no usable
answer) is wrong, is not a positive-sentiment answer, and is at no list position.

- ``variant_scores``: weighted F1 (and accuracy, macro F1) per variant with bootstrap CIs
  (``emolib.metrics.summarize``).
- ``compare_to_base``: McNemar's test of correctness, each variant against ``base`` on the same
  images, with the paired accuracy difference and the discordant-pair odds ratio as effect
  sizes; Holm-corrected within each (model, dataset).
- ``sentiment_bias`` / ``sentiment_table``: share of positive predictions minus share of positive
  truth (bootstrap CI), and the paired shift of a variant against ``base`` (McNemar on
  "answer is positive").
- ``position_bias`` / ``first_position_test``: how often the label at list position i is
  predicted against how often it is the truth, across permutations.
- ``kappa_matrix``: Cohen's kappa between the answers of every pair of variants.
- ``fine_grained_rate``: share of free answers that name a specific emotion.
- ``ranking_preference``: label preference from recorded full rankings (GPT-4V).
- ``compare_constrained`` / ``constrained_status`` (``emolib.prompts.constrained``): free
  (``base``) against constrained answers (``constrained_*``) of the same model on the same
  images, and the line notebook 05 shows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from emolib.labels import LabelSet, get_label_set
from emolib.metrics import summarize
from emolib.predictions import model_names
from emolib.prompts.bias import (  # noqa: F401  (part of this module's interface)
    PAIR_KEYS,
    first_position_test,
    list_positions,
    paired,
    position_bias,
    positive_mask,
    ranking_preference,
    recorded_preferences,
    recorded_sentiment,
    sentiment_bias,
    sentiment_row,
    sentiment_table,
)
from emolib.prompts.constrained import (  # noqa: F401  (part of this module's interface)
    CONSTRAINED_COLUMNS,
    compare_constrained,
    constrained_status,
)
from emolib.stats import add_holm, mcnemar_test


# ----------------------------------------------------------------------------- tests
def compare_to_base(pred: pd.DataFrame, base: str = "base", alpha: float = 0.05,
                    variants: list[str] | None = None) -> pd.DataFrame:
    """One row per (model, backend, dataset, variant != base): n paired images, accuracy of
    both, ``delta_acc`` = (c - b) / n, discordant counts b (base right, variant wrong) and c,
    ``odds_ratio`` = (c + .5) / (b + .5), McNemar p, Holm-adjusted p within (model, dataset),
    ``significant`` (adjusted p < alpha)."""
    variants = variants or [v for v in pred["prompt"].unique() if v != base]
    rows = []
    for variant in variants:
        joined = paired(pred, variant, base)
        for key, g in joined.groupby(PAIR_KEYS, sort=False):
            right_a = (g["y_pred_base"] == g["y_true_base"]).to_numpy()
            right_b = (g["y_pred_var"] == g["y_true_var"]).to_numpy()
            b, c = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
            stat, p = mcnemar_test(b, c)
            rows.append(dict(zip(PAIR_KEYS, key, strict=True), prompt=variant, n=len(g),
                             acc_base=right_a.mean(), acc_variant=right_b.mean(), delta_acc=(c - b) / len(g),
                             b=b, c=c, odds_ratio=(c + 0.5) / (b + 0.5), statistic=stat, p=p))
    return add_holm(pd.DataFrame(rows), alpha)


# ----------------------------------------------------------------------------- scores
def variant_scores(pred: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (model, backend, dataset, variant): n, accuracy, macro and weighted F1 with
    percentile bootstrap CIs (images resampled), unparseable and error counts."""
    return summarize(pred, n_boot=n_boot, seed=seed, by=["model", "backend", "dataset", "prompt"])


def prediction_distribution(pred: pd.DataFrame, label_set: LabelSet) -> pd.DataFrame:
    """Share of each predicted label (columns; plus ``no answer``) per variant (rows)."""
    names = list(label_set.names) + ["no answer"]
    idx = np.where(pred["y_pred"] < 0, len(label_set), pred["y_pred"])
    counts = pd.crosstab(pred["prompt"].to_numpy(), idx).reindex(columns=range(len(names)), fill_value=0)
    counts.columns = names
    order = list(dict.fromkeys(pred["prompt"]))
    return counts.div(counts.sum(axis=1), axis=0).loc[order]


# ----------------------------------------------------------------------------- agreement
def kappa_matrix(pred: pd.DataFrame, variants: list[str] | None = None) -> pd.DataFrame:
    """Cohen's kappa (scikit-learn) between the answers of each pair of variants on their
    shared images (one model, backend and dataset; no answer is its own category)."""
    variants = variants or list(dict.fromkeys(pred["prompt"]))
    wide = pred.pivot_table(index="image_id", columns="prompt", values="y_pred", aggfunc="first")
    out = pd.DataFrame(np.nan, index=variants, columns=variants)
    for a in variants:
        for b in variants:
            if a not in wide or b not in wide:
                continue
            both = wide[[a, b]].dropna().to_numpy()
            if len(both) and len(np.unique(both)) > 1:
                out.loc[a, b] = cohen_kappa_score(both[:, 0], both[:, 1])
            elif len(both):  # one label everywhere on both sides: kappa undefined, agreement total
                out.loc[a, b] = 1.0
    return out


# ----------------------------------------------------------------------------- open answers
def open_answer_word(text: str | None) -> str | None:
    """The word(s) of a free answer: the JSON ``prediction`` value, else the first line."""
    if not isinstance(text, str) or not text.strip():
        return None
    match = re.search(r"\{.*?\}", text, re.S)
    if match:
        try:
            obj = json.loads(match.group(0))
            value = next((v for k, v in obj.items() if str(k).lower() in ("prediction", "emotion")), None)
            if isinstance(value, str) and value.strip():
                return value.strip().lower()
        except (json.JSONDecodeError, AttributeError):
            pass
    first = text.strip().splitlines()[0]
    return " ".join(re.findall(r"[a-zA-Z'-]+", first)[:3]).lower() or None


def fine_grained_rate(answers, generic: frozenset[str]) -> dict[str, float]:
    """Of free answers: ``n``, ``n_answered`` (a word was given), ``fine_grained_rate`` =
    share of all answers naming a specific emotion (a word not in ``generic``), and
    ``rate_answered`` = the same share among answered ones."""
    words = [open_answer_word(a) for a in answers]
    answered = [w for w in words if w]
    fine = sum(1 for w in answered if w not in generic and w.strip(".!") not in generic)
    n = len(words)
    return {"n": n, "n_answered": len(answered), "fine_grained_rate": fine / n if n else np.nan,
            "rate_answered": fine / len(answered) if answered else np.nan}


# ----------------------------------------------------------------------------- summary
def significance_table(pred: pd.DataFrame, orders4: dict[str, tuple[str, ...]], base: str = "base",
                       alpha: float = 0.05) -> pd.DataFrame:
    """Every test of the sweep in one table, Holm-corrected within each (model, dataset):
    McNemar of correctness (each full-label-set variant vs ``base``), McNemar of positive
    sentiment (each persona vs ``base``), and the first-position test of the all-orders
    design. Columns: model, backend, dataset, test, variant, effect, effect_name, n, p,
    p_holm, significant."""
    full = pred[~pred["prompt"].isin(list(orders4))]
    parts = []
    acc = compare_to_base(full, base, alpha)
    if len(acc):
        parts.append(acc.assign(test="accuracy vs base (McNemar)", effect=acc["delta_acc"],
                                effect_name="accuracy difference"))
    personas = full[full["prompt"].str.startswith("persona_") | (full["prompt"] == base)]
    sent = sentiment_table(personas, base, n_boot=1, alpha=alpha) if len(personas) else pd.DataFrame()
    if "p_shift" in sent:
        sent = sent[sent["p_shift"].notna()]
        parts.append(sent.assign(test="positive share vs base (McNemar)", effect=sent["shift"],
                                 effect_name="positive-share shift", p=sent["p_shift"]))
    pos = first_position_test(pred, orders4) if orders4 else pd.DataFrame()
    if len(pos):
        parts.append(pos.assign(test="first list position vs chance (t-test over images)", prompt="order4",
                                effect=pos["excess"], effect_name="first-position excess", n=pos["n_images"]))
    columns = PAIR_KEYS + ["test", "prompt", "effect", "effect_name", "n", "p"]
    if not parts:
        return add_holm(pd.DataFrame(columns=columns).astype({"p": float}), alpha)
    table = pd.concat([p[columns] for p in parts], ignore_index=True)
    return add_holm(table, alpha)


# ----------------------------------------------------------------------------- whole sweep
@dataclass
class SweepAnalysis:
    """Every table notebook 05 shows for one sweep (empty tables when it has no predictions)."""

    scores: pd.DataFrame  # variant_scores
    distributions: dict[tuple[str, str], pd.DataFrame]  # (model, dataset) -> prediction_distribution
    curves: pd.DataFrame  # position_bias + design column
    sentiment: pd.DataFrame  # sentiment_table
    fine_grained: pd.DataFrame  # one row per (model, dataset) of no_labels
    kappa: dict[tuple[str, str], pd.DataFrame]  # (model, dataset) -> kappa_matrix
    significance: pd.DataFrame  # significance_table
    constrained: pd.DataFrame  # compare_constrained (empty without constrained variants)


def variant_orders(variants: pd.DataFrame, prefix: str) -> dict[str, tuple[str, ...]]:
    """``{variant: label order}`` of the variants (table of ``emolib.prompts.variants_table``)
    whose name starts with ``prefix``."""
    rows = variants[variants["prompt"].astype(str).str.startswith(prefix)].drop_duplicates("prompt")
    return {v: tuple(str(o).split("|")) for v, o in zip(rows["prompt"], rows["label_order"], strict=True)}


def with_notes(table: pd.DataFrame, notes: dict[str, str]) -> pd.DataFrame:
    """``table`` with a ``note`` column per model (e.g. "random weights — measures nothing")."""
    if "model" not in table:
        return table
    return table.assign(note=pd.Series([notes.get(m, "") for m in table["model"]], index=table.index, dtype=object))


def analyse_sweep(pred: pd.DataFrame, variants: pd.DataFrame, generic: frozenset[str], alpha: float = 0.05,
                  n_boot: int = 1000, seed: int = 0, notes: dict[str, str] | None = None) -> SweepAnalysis:
    """All analyses of a sweep's predictions table and its variants table (``prompt``,
    ``label_order``); see the functions above. ``notes`` ({model: note}) adds a ``note``
    column to every table, so a random-weight stand-in is flagged wherever it appears."""
    analysis = _analyse(pred, variants, generic, alpha, n_boot, seed)
    for name in ("scores", "curves", "sentiment", "fine_grained", "significance", "constrained"):
        setattr(analysis, name, with_notes(getattr(analysis, name), notes or {}))
    return analysis


def _variants_of(variants: pd.DataFrame, label_set: str) -> pd.DataFrame:
    """The variant rows of one label set (orders differ between label sets)."""
    return variants[variants["label_set"] == label_set] if "label_set" in variants else variants


def _position_tables(pred: pd.DataFrame, variants: pd.DataFrame, alpha: float) -> tuple[list, list]:
    """Position curves and significance tables, computed per label set."""
    curves, tests = [], []
    for ls_name, g in pred.groupby("label_set", sort=False):
        v = _variants_of(variants, ls_name)
        orders4, perms = variant_orders(v, "order4_"), variant_orders(v, "permuted_")
        curves += [position_bias(g, o).assign(design=d) for o, d in
                   ((perms, "random permutations (all labels)"), (orders4, "all 24 orders of 4 labels")) if o]
        tests.append(significance_table(g, orders4, alpha=alpha))
    return [c for c in curves if len(c)], tests


def _analyse(pred: pd.DataFrame, variants: pd.DataFrame, generic: frozenset[str], alpha: float,
             n_boot: int, seed: int) -> SweepAnalysis:
    full = pred[~pred["prompt"].astype(str).str.startswith("order4_")]
    curves, tests = _position_tables(pred, variants, alpha)
    curve_cols = PAIR_KEYS + ["position", "n", "pred_rate", "true_rate", "bias", "design"]
    fine = [dict(model=m, backend=b, dataset=d, **fine_grained_rate(g["raw_response"], generic))
            for (m, b, d), g in full[full["prompt"] == "no_labels"].groupby(PAIR_KEYS, sort=False)]
    # one name asked through two backends (hf and an endpoint): each its own distribution and kappa
    groups = list(full.groupby([model_names(full), full["dataset"]], sort=False))
    return SweepAnalysis(
        scores=variant_scores(full, n_boot, seed) if len(full) else pd.DataFrame(
            columns=["model", "backend", "dataset", "prompt", "weighted_f1", "weighted_f1_lo", "weighted_f1_hi"]),
        distributions={k: prediction_distribution(g, get_label_set(g["label_set"].iloc[0])) for k, g in groups},
        curves=pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=curve_cols),
        sentiment=sentiment_table(full, n_boot=n_boot, seed=seed, alpha=alpha) if len(full) else pd.DataFrame(),
        fine_grained=pd.DataFrame(fine, columns=PAIR_KEYS + ["n", "n_answered", "fine_grained_rate", "rate_answered"]),
        kappa={k: kappa_matrix(g) for k, g in groups},
        significance=pd.concat(tests, ignore_index=True) if tests else significance_table(pred, {}, alpha=alpha),
        constrained=compare_constrained(full),
    )


