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
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.contingency_tables import mcnemar

from emolib.labels import LabelSet, get_label_set, normalize_label
from emolib.metrics import summarize

PAIR_KEYS = ["model", "backend", "dataset"]


# ----------------------------------------------------------------------------- tests
def mcnemar_test(b: int, c: int) -> tuple[float, float]:
    """(statistic, p) of McNemar's test from the discordant counts ``b`` (first right, second
    wrong) and ``c``: exact binomial when b + c < 25, else chi-square with continuity
    correction (statsmodels). No discordant pair: (0, 1)."""
    if b + c == 0:
        return 0.0, 1.0
    result = mcnemar([[0, b], [c, 0]], exact=b + c < 25, correction=True)
    return float(result.statistic), float(result.pvalue)


def holm(pvalues, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(reject, adjusted p) of Holm's step-down correction: the i-th smallest of m p-values
    times (m - i), running maximum, capped at 1 (equal to statsmodels ``multipletests(...,
    method="holm")``, which the tests check; computed directly because statsmodels runs a
    full garbage collection per call, too slow for the many-seed checks)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    scaled = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    adjusted = np.empty_like(p)
    adjusted[order] = scaled
    return adjusted <= alpha, adjusted


def paired(pred: pd.DataFrame, variant: str, base: str = "base") -> pd.DataFrame:
    """Rows of ``variant`` joined to ``base`` on image_id within (model, backend, dataset):
    columns of both sides suffixed ``_base`` / ``_var``."""
    a = pred[pred["variant"] == base]
    b = pred[pred["variant"] == variant]
    return a.merge(b, on=PAIR_KEYS + ["image_id"], suffixes=("_base", "_var"))


def compare_to_base(pred: pd.DataFrame, base: str = "base", alpha: float = 0.05,
                    variants: list[str] | None = None) -> pd.DataFrame:
    """One row per (model, backend, dataset, variant != base): n paired images, accuracy of
    both, ``delta_acc`` = (c - b) / n, discordant counts b (base right, variant wrong) and c,
    ``odds_ratio`` = (c + .5) / (b + .5), McNemar p, Holm-adjusted p within (model, dataset),
    ``significant`` (adjusted p < alpha)."""
    variants = variants or [v for v in pred["variant"].unique() if v != base]
    rows = []
    for variant in variants:
        joined = paired(pred, variant, base)
        for key, g in joined.groupby(PAIR_KEYS, sort=False):
            right_a = (g["y_pred_base"] == g["y_true_base"]).to_numpy()
            right_b = (g["y_pred_var"] == g["y_true_var"]).to_numpy()
            b, c = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
            stat, p = mcnemar_test(b, c)
            rows.append(dict(zip(PAIR_KEYS, key, strict=True), variant=variant, n=len(g),
                             acc_base=right_a.mean(), acc_variant=right_b.mean(), delta_acc=(c - b) / len(g),
                             b=b, c=c, odds_ratio=(c + 0.5) / (b + 0.5), statistic=stat, p=p))
    return add_holm(pd.DataFrame(rows), alpha)


def add_holm(table: pd.DataFrame, alpha: float, by: tuple[str, ...] = ("model", "dataset")) -> pd.DataFrame:
    """``p_holm`` and ``significant`` columns: Holm over the rows of each ``by`` group."""
    if table.empty:
        return table.assign(p_holm=pd.Series(dtype=float), significant=pd.Series(dtype=bool))
    table = table.copy()
    table["p_holm"], table["significant"] = np.nan, False
    for _, g in table.groupby(list(by), sort=False):
        reject, adjusted = holm(g["p"].to_numpy(), alpha)
        table.loc[g.index, "p_holm"], table.loc[g.index, "significant"] = adjusted, reject
    return table


# ----------------------------------------------------------------------------- scores
def variant_scores(pred: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (model, backend, dataset, variant): n, accuracy, macro and weighted F1 with
    percentile bootstrap CIs (images resampled), unparseable and error counts."""
    return summarize(pred, n_boot=n_boot, seed=seed, by=["model", "backend", "dataset", "variant"])


def prediction_distribution(pred: pd.DataFrame, label_set: LabelSet) -> pd.DataFrame:
    """Share of each predicted label (columns; plus ``no answer``) per variant (rows)."""
    names = list(label_set.names) + ["no answer"]
    idx = np.where(pred["y_pred"] < 0, len(label_set), pred["y_pred"])
    counts = pd.crosstab(pred["variant"].to_numpy(), idx).reindex(columns=range(len(names)), fill_value=0)
    counts.columns = names
    order = list(dict.fromkeys(pred["variant"]))
    return counts.div(counts.sum(axis=1), axis=0).loc[order]


# ----------------------------------------------------------------------------- sentiment
def positive_mask(labels: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """True where a label index has positive sentiment (-1, no answer: False)."""
    positive = np.array([label_set.sentiment(i) == "positive" for i in range(len(label_set))] + [False])
    return positive[np.where(np.asarray(labels) < 0, len(label_set), labels)]


def sentiment_bias(pos_true: np.ndarray, pos_pred: np.ndarray) -> float:
    """Share of positive predictions minus share of positive truth (same rows)."""
    return float(np.mean(pos_pred) - np.mean(pos_true))


def bootstrap_mean_ci(values: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (n,)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def sentiment_row(pos_true: np.ndarray, pos_pred: np.ndarray, n_boot: int, seed: int) -> dict:
    """Bias with its bootstrap CI and McNemar's test of equal positive shares (paired)."""
    diff = pos_pred.astype(float) - pos_true.astype(float)
    b, c = int((pos_true & ~pos_pred).sum()), int((~pos_true & pos_pred).sum())
    lo, hi = bootstrap_mean_ci(diff, n_boot, seed=seed)
    return dict(n=len(diff), positive_true=pos_true.mean(), positive_pred=pos_pred.mean(),
                sentiment_bias=diff.mean(), bias_lo=lo, bias_hi=hi, p=mcnemar_test(b, c)[1])


def sentiment_table(pred: pd.DataFrame, base: str = "base", n_boot: int = 1000, seed: int = 0,
                    alpha: float = 0.05) -> pd.DataFrame:
    """Per (model, backend, dataset, variant): sentiment bias against the truth (with CI and
    p), and ``shift`` = positive share of the variant minus that of ``base`` on the same
    images with its McNemar p (``p_shift``, Holm-adjusted within (model, dataset))."""
    rows = []
    for key, g in pred.groupby(PAIR_KEYS + ["variant"], sort=False):
        ls = get_label_set(g["label_set"].iloc[0])
        row = dict(zip(PAIR_KEYS + ["variant"], key, strict=True))
        row.update(sentiment_row(positive_mask(g["y_true"], ls), positive_mask(g["y_pred"], ls), n_boot, seed))
        if key[-1] != base:
            j = paired(pred[pred[PAIR_KEYS[0]] == key[0]], key[-1], base)
            j = j[(j["backend"] == key[1]) & (j["dataset"] == key[2])]
            pa, pb = positive_mask(j["y_pred_base"], ls), positive_mask(j["y_pred_var"], ls)
            row.update(shift=pb.mean() - pa.mean() if len(j) else np.nan,
                       p_shift=mcnemar_test(int((pa & ~pb).sum()), int((~pa & pb).sum()))[1])
        rows.append(row)
    table = pd.DataFrame(rows)
    if "p_shift" not in table:
        return table
    tested = table["p_shift"].notna()
    holmed = add_holm(table[tested].rename(columns={"p": "p_bias"}).rename(columns={"p_shift": "p"}), alpha)
    table.loc[tested, "p_shift_holm"] = holmed["p_holm"]
    table.loc[tested, "shift_significant"] = holmed["significant"]
    return table


# ----------------------------------------------------------------------------- position
def list_positions(pred: pd.DataFrame, orders: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """Rows of variants in ``orders`` with ``pos_pred`` / ``pos_true``: the list position
    (0-based) of the predicted / true label in that variant's order (-1: not listed / no
    answer) and ``n_listed``."""
    rows = pred[pred["variant"].isin(list(orders))].copy()
    pos_pred, pos_true, n_listed = [], [], []
    for variant, ls_name, yt, yp in zip(rows["variant"], rows["label_set"], rows["y_true"], rows["y_pred"],
                                        strict=True):
        names, order = get_label_set(ls_name).names, orders[variant]
        pos_true.append(order.index(names[yt]) if names[yt] in order else -1)
        pos_pred.append(order.index(names[yp]) if yp >= 0 and names[yp] in order else -1)
        n_listed.append(len(order))
    return rows.assign(pos_pred=pos_pred, pos_true=pos_true, n_listed=n_listed)


def position_bias(pred: pd.DataFrame, orders: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """Per (model, backend, dataset, position): ``n`` rows, ``pred_rate`` (share of rows whose
    answer is the label at that position), ``true_rate`` (share whose truth is), ``bias`` =
    pred_rate - true_rate. Rows: every variant of ``orders`` (a permutation design)."""
    rows = list_positions(pred, orders)
    out = []
    for key, g in rows.groupby(PAIR_KEYS, sort=False):
        for i in range(int(g["n_listed"].max())):
            pr, tr = float((g["pos_pred"] == i).mean()), float((g["pos_true"] == i).mean())
            out.append(dict(zip(PAIR_KEYS, key, strict=True), position=i + 1, n=len(g), pred_rate=pr,
                            true_rate=tr, bias=pr - tr))
    return pd.DataFrame(out)


def first_position_test(pred: pd.DataFrame, orders: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """Per (model, backend, dataset): among answers that name a listed label, the share at
    list position 1 per image, averaged (``first_rate``) against 1 / n_listed, with a
    one-sample t-test over images (valid because images are independent; under no position
    effect each image's expected share is 1 / n_listed when its orders are balanced)."""
    rows = list_positions(pred, orders)
    rows = rows[rows["pos_pred"] >= 0]
    out = []
    for key, g in rows.groupby(PAIR_KEYS, sort=False):
        per_image = g.groupby("image_id")["pos_pred"].apply(lambda s: float((s == 0).mean()))
        chance = 1.0 / float(g["n_listed"].iloc[0])
        diff = per_image.to_numpy() - chance
        out.append(dict(zip(PAIR_KEYS, key, strict=True), n_images=len(per_image), first_rate=per_image.mean(),
                        chance=chance, excess=diff.mean(), p=mean_zero_p(diff)))
    return pd.DataFrame(out)


def mean_zero_p(diff: np.ndarray) -> float:
    """Two-sided p of mean(diff) == 0: one-sample t-test; when every value is the same (t is
    undefined) the sign test of the nonzero values (1.0 if all are zero)."""
    diff = np.asarray(diff, dtype=float)
    if len(diff) < 2 or np.ptp(diff) < 1e-12:
        nonzero = int((np.abs(diff) > 1e-12).sum())
        return 1.0 if nonzero == 0 else float(stats.binomtest(nonzero, nonzero, 0.5).pvalue)
    return float(stats.ttest_1samp(diff, 0.0).pvalue)



# ----------------------------------------------------------------------------- agreement
def kappa_matrix(pred: pd.DataFrame, variants: list[str] | None = None) -> pd.DataFrame:
    """Cohen's kappa (scikit-learn) between the answers of each pair of variants on their
    shared images (one model, backend and dataset; no answer is its own category)."""
    variants = variants or list(dict.fromkeys(pred["variant"]))
    wide = pred.pivot_table(index="image_id", columns="variant", values="y_pred", aggfunc="first")
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


# ----------------------------------------------------------------------------- rankings
def ranking_preference(rankings, y_true: np.ndarray, label_set: LabelSet) -> pd.DataFrame:
    """Per label, from ranked answers (comma-separated lists, best first; unlisted labels
    share the remaining ranks): ``top1_share`` - ``true_share`` (over-prediction), and the
    mean rank on images whose truth is another label against (k + 1) / 2, the mean rank of a
    label ranked at random; a lower ``rank_when_wrong`` means the model ranks the label high even
    when it is not the answer."""
    k = len(label_set)
    ranks = np.full((len(rankings), k), np.nan)
    for row, text in enumerate(rankings):
        listed = [normalize_label(w, label_set) for w in str(text).split(",")] if isinstance(text, str) else []
        listed = [label_set.names.index(w) for w in dict.fromkeys(x for x in listed if x)]
        ranks[row, listed] = np.arange(1, len(listed) + 1)
        rest = np.isnan(ranks[row])
        ranks[row, rest] = np.arange(len(listed) + 1, k + 1).mean() if rest.any() else np.nan
    y_true = np.asarray(y_true)
    top1 = np.nanargmin(np.where(np.isnan(ranks), np.inf, ranks), axis=1)
    rows = []
    for j, name in enumerate(label_set.names):
        wrong = y_true != j
        rows.append(dict(label=name, sentiment=label_set.sentiment(j), true_share=float(np.mean(y_true == j)),
                         top1_share=float(np.mean(top1 == j)), rank_when_wrong=float(np.nanmean(ranks[wrong, j])),
                         rank_chance=(k + 1) / 2))
    table = pd.DataFrame(rows)
    return table.assign(over_prediction=table["top1_share"] - table["true_share"])


# ----------------------------------------------------------------------------- summary
def significance_table(pred: pd.DataFrame, orders4: dict[str, tuple[str, ...]], base: str = "base",
                       alpha: float = 0.05) -> pd.DataFrame:
    """Every test of the sweep in one table, Holm-corrected within each (model, dataset):
    McNemar of correctness (each full-label-set variant vs ``base``), McNemar of positive
    sentiment (each persona vs ``base``), and the first-position test of the all-orders
    design. Columns: model, backend, dataset, test, variant, effect, effect_name, n, p,
    p_holm, significant."""
    full = pred[~pred["variant"].isin(list(orders4))]
    parts = []
    acc = compare_to_base(full, base, alpha)
    if len(acc):
        parts.append(acc.assign(test="accuracy vs base (McNemar)", effect=acc["delta_acc"],
                                effect_name="accuracy difference"))
    personas = full[full["variant"].str.startswith("persona_") | (full["variant"] == base)]
    sent = sentiment_table(personas, base, n_boot=1, alpha=alpha) if len(personas) else pd.DataFrame()
    if "p_shift" in sent:
        sent = sent[sent["p_shift"].notna()]
        parts.append(sent.assign(test="positive share vs base (McNemar)", effect=sent["shift"],
                                 effect_name="positive-share shift", p=sent["p_shift"]))
    pos = first_position_test(pred, orders4) if orders4 else pd.DataFrame()
    if len(pos):
        parts.append(pos.assign(test="first list position vs chance (t-test over images)", variant="order4",
                                effect=pos["excess"], effect_name="first-position excess", n=pos["n_images"]))
    columns = PAIR_KEYS + ["test", "variant", "effect", "effect_name", "n", "p"]
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


def variant_orders(variants: pd.DataFrame, prefix: str) -> dict[str, tuple[str, ...]]:
    """``{variant: label order}`` of the variants (table of ``emolib.prompts.variants_table``)
    whose name starts with ``prefix``."""
    rows = variants[variants["variant"].astype(str).str.startswith(prefix)].drop_duplicates("variant")
    return {v: tuple(str(o).split("|")) for v, o in zip(rows["variant"], rows["label_order"], strict=True)}


def with_notes(table: pd.DataFrame, notes: dict[str, str]) -> pd.DataFrame:
    """``table`` with a ``note`` column per model (e.g. "random weights — measures nothing")."""
    if "model" not in table:
        return table
    return table.assign(note=pd.Series([notes.get(m, "") for m in table["model"]], index=table.index, dtype=object))


def analyse_sweep(pred: pd.DataFrame, variants: pd.DataFrame, generic: frozenset[str], alpha: float = 0.05,
                  n_boot: int = 1000, seed: int = 0, notes: dict[str, str] | None = None) -> SweepAnalysis:
    """All analyses of a sweep's predictions table and its variants table (``variant``,
    ``label_order``); see the functions above. ``notes`` ({model: note}) adds a ``note``
    column to every table, so a random-weight stand-in is flagged wherever it appears."""
    analysis = _analyse(pred, variants, generic, alpha, n_boot, seed)
    for name in ("scores", "curves", "sentiment", "fine_grained", "significance"):
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
    full = pred[~pred["variant"].astype(str).str.startswith("order4_")]
    curves, tests = _position_tables(pred, variants, alpha)
    curve_cols = PAIR_KEYS + ["position", "n", "pred_rate", "true_rate", "bias", "design"]
    fine = [dict(model=m, backend=b, dataset=d, **fine_grained_rate(g["raw_response"], generic))
            for (m, b, d), g in full[full["variant"] == "no_labels"].groupby(PAIR_KEYS, sort=False)]
    groups = list(full.groupby(["model", "dataset"], sort=False))
    return SweepAnalysis(
        scores=variant_scores(full, n_boot, seed) if len(full) else pd.DataFrame(
            columns=["model", "backend", "dataset", "variant", "weighted_f1", "weighted_f1_lo", "weighted_f1_hi"]),
        distributions={k: prediction_distribution(g, get_label_set(g["label_set"].iloc[0])) for k, g in groups},
        curves=pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=curve_cols),
        sentiment=sentiment_table(full, n_boot=n_boot, seed=seed, alpha=alpha) if len(full) else pd.DataFrame(),
        fine_grained=pd.DataFrame(fine, columns=PAIR_KEYS + ["n", "n_answered", "fine_grained_rate", "rate_answered"]),
        kappa={k: kappa_matrix(g) for k, g in groups},
        significance=pd.concat(tests, ignore_index=True) if tests else significance_table(pred, {}, alpha=alpha),
    )


# ----------------------------------------------------------------------------- recorded answers
def recorded_sentiment(recorded_sets, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Sentiment bias of recorded top-1 answers on sets whose file ground truth is sentiment
    (``RecordedSet.frame["sentiment_gt"]``): one row per data set with the bias, its CI and
    McNemar's p of equal positive shares; ``n_no_answer`` counts answers with no label."""
    from emolib.vlm.recorded import recorded_predictions, sentiment_frame

    rows = []
    for rs in recorded_sets:
        frame = sentiment_frame(rs, recorded_predictions(rs))
        pos_true, pos_pred = frame["y_true"].to_numpy() == 1, frame["y_pred"].to_numpy() == 1
        rows.append(dict(dataset=rs.dataset, n_no_answer=int((frame["y_pred"] < 0).sum()),
                         **sentiment_row(pos_true, pos_pred, n_boot, seed)))
    return pd.DataFrame(rows)


def recorded_preferences(recorded_sets) -> pd.DataFrame:
    """``ranking_preference`` of each recorded set (a ``dataset`` column added)."""
    frames = [ranking_preference(rs.frame["raw_response"].tolist(), rs.frame["y_true"].to_numpy(), rs.label_set)
              .assign(dataset=rs.dataset) for rs in recorded_sets]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
