"""Figures of the prompt-sensitivity study (notebook 05); each takes a table of
``emolib.prompts.analysis`` and returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from emolib.plots import HOUSE_PALETTE, ROLE_COLORS, SEQUENTIAL_CMAP, colors_for, in_words, use_house_style


def _flag(g: pd.DataFrame) -> str:
    """' (note)' when the rows carry a note such as "random weights — measures nothing"."""
    note = g["note"].iloc[0] if "note" in g and len(g) else ""
    return f"\n({note})" if note else ""


def plot_variant_scores(scores: pd.DataFrame, metric: str = "weighted_f1") -> plt.Figure:
    """Point and bootstrap CI of ``metric`` per variant, one panel per (model, dataset)."""
    use_house_style()
    groups = list(scores.groupby(["model", "dataset"], sort=False))
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5.5 * max(1, len(groups)), 0.28 * scores["prompt"]
                             .nunique() + 1.5), squeeze=False)
    for ax, ((model, dataset), g) in zip(axes.flat, groups, strict=False):
        y = np.arange(len(g))
        err = np.vstack([g[metric] - g[f"{metric}_lo"], g[f"{metric}_hi"] - g[metric]])
        ax.errorbar(g[metric], y, xerr=err, fmt="o", ms=4, capsize=2)
        ax.set_yticks(y, g["prompt"], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"{in_words(metric)} (95% bootstrap CI)")
        ax.set_title(f"{model} on {in_words(dataset)}{_flag(g)}", fontsize=10)
    fig.suptitle(f"How {in_words(metric)} moves with the prompt", fontweight="bold")
    return fig


def plot_distribution_heatmap(dist: pd.DataFrame, title: str = "") -> plt.Figure:
    """Share of each predicted label (columns) per variant (rows)."""
    use_house_style()
    fig, ax = plt.subplots(figsize=(1.0 * dist.shape[1] + 2, 0.28 * dist.shape[0] + 1.5))
    sns.heatmap(dist, annot=dist.shape[0] <= 20, fmt=".2f", cmap=SEQUENTIAL_CMAP, vmin=0, vmax=1, cbar=True, ax=ax,
                annot_kws={"fontsize": 7}, cbar_kws={"label": "share of answers"})
    ax.set_xlabel("predicted label")
    ax.set_ylabel("prompt variant")
    ax.set_title(title, fontsize=10)
    return fig


def plot_position_curves(curves: pd.DataFrame) -> plt.Figure:
    """Predicted rate against true rate per list position, one panel per (model, dataset,
    design); ``curves`` has a ``design`` column."""
    use_house_style()
    groups = list(curves.groupby(["model", "dataset", "design"], sort=False))
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.2 * max(1, len(groups)), 3.4), squeeze=False)
    for ax, ((model, dataset, design), g) in zip(axes.flat, groups, strict=False):
        ax.plot(g["position"], g["pred_rate"], "o-", label="label at position is predicted")
        ax.plot(g["position"], g["true_rate"], "s--", label="label at position is the truth")
        ax.set_xlabel("position in the label list")
        ax.set_ylabel("share of answers")
        ax.set_xticks(g["position"])
        ax.set_title(f"{model}, {in_words(dataset)}\n{in_words(design)}{_flag(g)}", fontsize=9)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Is the label listed first answered more often than it is true?", fontweight="bold")
    fig.tight_layout()
    return fig


def plot_sentiment_bias(table: pd.DataFrame, label: str = "prompt") -> plt.Figure:
    """Sentiment bias (positive share predicted - positive share true) with its CI per row."""
    use_house_style()
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(table) + 1.5))
    y = np.arange(len(table))
    err = np.vstack([table["sentiment_bias"] - table["bias_lo"], table["bias_hi"] - table["sentiment_bias"]])
    ax.errorbar(table["sentiment_bias"], y, xerr=err, fmt="o", capsize=3)
    ax.axvline(0, color=ROLE_COLORS["chance"], lw=1, ls="--")
    ax.set_yticks(y, table[label], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of positive answers minus share of positive truths (95% CI)")
    ax.set_title("Do the answers lean positive (right of 0) or negative (left)?", fontsize=10)
    return fig


def plot_ranking_preference(pref: pd.DataFrame, title: str = "") -> plt.Figure:
    """Which labels a model ranks high on images where they are *not* the answer: per label,
    ``rank_chance - rank_when_wrong`` (how many ranks above a random ranking), as a dot on a
    stem from the chance line. Right of the line = preferred although wrong, and the longer
    the stem the stronger; left = avoided. Most preferred label on top, colour = sentiment.
    ``pref``: rows of ``emolib.prompts.bias.ranking_preference`` (one model and subset)."""
    use_house_style()
    table = pref.assign(preference=pref["rank_chance"] - pref["rank_when_wrong"]).sort_values("preference")
    fig, ax = plt.subplots(figsize=(6.5, 0.38 * len(table) + 1.9))
    y = np.arange(len(table))
    colors = colors_for(table["sentiment"])
    ax.hlines(y, 0, table["preference"], colors=colors, lw=3)
    ax.scatter(table["preference"], y, c=colors, s=50, zorder=3)
    ax.axvline(0, color=ROLE_COLORS["chance"], ls="--", lw=1)
    ax.set_yticks(y, table["label"])
    reach = max(0.5, float(np.nanmax(np.abs(table["preference"]))) * 1.2) if len(table) else 0.5
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-0.7, len(table) - 0.3)
    ax.text(0.99, 1.01, "preferred when wrong \u2192", transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
    ax.text(0.01, 1.01, "\u2190 avoided", transform=ax.transAxes, ha="left", va="bottom", fontsize=8)
    ax.set_xlabel(f"ranks above a random ranking (chance: mean rank {table['rank_chance'].iloc[0]:.1f})"
                  if len(table) else "ranks above a random ranking")
    handles = [plt.Line2D([], [], marker="o", ls="", color=ROLE_COLORS[s], label=s)
               for s in ("positive", "negative", "neutral") if s in set(table["sentiment"])]
    if handles:
        ax.legend(handles=handles, title="sentiment", fontsize=7, title_fontsize=7, loc="lower right")
    ax.set_title(title or _preference_title(pref), fontsize=10, pad=16)
    return fig


def _preference_title(pref: pd.DataFrame) -> str:
    """'Labels GPT-4V (recorded answers) ranks high when they are wrong' + the subset, in words."""
    who = in_words(str(pref["model"].iloc[0])) if "model" in pref and len(pref) else "the model"
    where = f"\n{in_words(str(pref['subset'].iloc[0]))}" if "subset" in pref and len(pref) else ""
    return f"Labels {who} ranks high when they are wrong{where}"


def plot_free_vs_constrained(table: pd.DataFrame) -> plt.Figure:
    """Free against constrained answers, one row per (model, dataset, constrained variant) of
    ``emolib.prompts.analysis.compare_constrained``: left, accuracy and weighted F1 of the free
    (circle) and constrained (square) answers joined by a line; right, the share of answers that
    changed, of free answers naming no label, and of those the constraint turned into a label
    (each bar labelled; "none" where no free answer lacked a label)."""
    use_house_style()
    rows = table.reset_index(drop=True)
    names = [f"{r.model}{_flag(rows.iloc[[i]])}\n{r.prompt}, {in_words(str(r.dataset))}"
             for i, r in enumerate(rows.itertuples())]
    y = np.arange(len(rows))
    height = 0.8 * len(rows) + 2.6
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, height), sharey=True)
    for offset, metric, color in ((-0.12, "accuracy", HOUSE_PALETTE[0]), (0.12, "weighted_f1", HOUSE_PALETTE[1])):
        left.hlines(y + offset, rows[f"{metric}_free"], rows[f"{metric}_constrained"], color=color, lw=1.5)
        left.scatter(rows[f"{metric}_free"], y + offset, marker="o", color=color, label=f"{in_words(metric)}, free")
        left.scatter(rows[f"{metric}_constrained"], y + offset, marker="s", color=color,
                     label=f"{in_words(metric)}, constrained")
    left.set_yticks(y, names, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("score on the same images")
    shares = {"changed": "answer changed", "free_off_label": "free answer named no label",
              "rescued": "... of those, now a label"}
    for i, (column, words) in enumerate(shares.items()):
        values = rows[column].to_numpy(float)
        at = y + (i - 1) * 0.25
        right.barh(at, np.nan_to_num(values), height=0.25, color=HOUSE_PALETTE[2 + i], label=words)
        for yy, v in zip(at, values, strict=True):
            right.text(0.01 if np.isnan(v) else v + 0.01, yy, "none" if np.isnan(v) else f"{v:.0%}", va="center",
                       fontsize=7)
    right.set_xlim(0, 1.12)
    right.set_xlabel("share of paired images")
    fig.suptitle("What constrained decoding changes in the answers", fontweight="bold")
    handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, fontsize=7, ncol=4, loc="lower center", frameon=False)
    fig.tight_layout(rect=(0, 0.55 / height, 1, 1))  # room for the legend below, in inches
    return fig
