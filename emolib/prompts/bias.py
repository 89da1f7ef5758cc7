"""The biases a prompt can move (notebook 05): sentiment bias against the truth and its shift
between variants, the position of the predicted label in the listed order, and a model's
preference for labels in its full rankings (the recorded GPT-4V answers)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib.labels import LabelSet, get_label_set, normalize_label
from emolib.stats import add_holm, bootstrap_mean_ci, mcnemar_test, mean_zero_p

PAIR_KEYS = ["model", "backend", "dataset"]


def paired(pred: pd.DataFrame, variant: str, base: str = "base") -> pd.DataFrame:
    """Rows of ``variant`` joined to ``base`` on image_id within (model, backend, dataset):
    columns of both sides suffixed ``_base`` / ``_var``."""
    a = pred[pred["prompt"] == base]
    b = pred[pred["prompt"] == variant]
    return a.merge(b, on=PAIR_KEYS + ["image_id"], suffixes=("_base", "_var"))



# ----------------------------------------------------------------------------- sentiment
def positive_mask(labels: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """True where a label index has positive sentiment (-1, no answer: False)."""
    positive = np.array([label_set.sentiment(i) == "positive" for i in range(len(label_set))] + [False])
    return positive[np.where(np.asarray(labels) < 0, len(label_set), labels)]


def sentiment_bias(pos_true: np.ndarray, pos_pred: np.ndarray) -> float:
    """Share of positive predictions minus share of positive truth (same rows)."""
    return float(np.mean(pos_pred) - np.mean(pos_true))


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
    for key, g in pred.groupby(PAIR_KEYS + ["prompt"], sort=False):
        ls = get_label_set(g["label_set"].iloc[0])
        row = dict(zip(PAIR_KEYS + ["prompt"], key, strict=True))
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
    rows = pred[pred["prompt"].isin(list(orders))].copy()
    pos_pred, pos_true, n_listed = [], [], []
    for variant, ls_name, yt, yp in zip(rows["prompt"], rows["label_set"], rows["y_true"], rows["y_pred"],
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


# ----------------------------------------------------------------------------- recorded answers
def recorded_sentiment(sentiment: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Sentiment bias of recorded top-1 answers on the sets whose ground truth is sentiment
    (the VLM stage's ``sentiment.parquet``: image_id, y_true, y_pred as 0 negative / 1
    positive / -1 no answer, dataset, model, subset): one row per (model, subset) with the
    bias, its CI and McNemar's p of equal positive shares; ``n_no_answer`` counts answers
    with no label."""
    rows = []
    for (model, subset), frame in sentiment.groupby(["model", "subset"], sort=False):
        pos_true, pos_pred = frame["y_true"].to_numpy() == 1, frame["y_pred"].to_numpy() == 1
        rows.append(dict(model=model, subset=subset, dataset=frame["dataset"].iloc[0],
                         n_no_answer=int((frame["y_pred"] < 0).sum()),
                         **sentiment_row(pos_true, pos_pred, n_boot, seed)))
    return pd.DataFrame(rows)


def recorded_preferences(predictions: pd.DataFrame) -> pd.DataFrame:
    """``ranking_preference`` of each recorded (model, subset), from the ranked answers in
    ``raw_response`` of the VLM stage's recorded rows (``model`` and ``subset`` columns added)."""
    frames = [ranking_preference(g["raw_response"].tolist(), g["y_true"].to_numpy(),
                                 get_label_set(g["label_set"].iloc[0])).assign(model=model, subset=subset)
              for (model, subset), g in predictions.groupby(["model", "subset"], sort=False)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
