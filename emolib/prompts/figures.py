"""Figures of the prompt-sensitivity study (notebook 05); each takes a table of
``emolib.prompts.analysis`` and returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from emolib.plots import use_house_style


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
        ax.set_xlabel(f"{metric.replace('_', ' ')} (95% bootstrap CI)")
        ax.set_title(f"{model} on {dataset}{_flag(g)}", fontsize=10)
    return fig


def plot_distribution_heatmap(dist: pd.DataFrame, title: str = "") -> plt.Figure:
    """Share of each predicted label (columns) per variant (rows)."""
    use_house_style()
    fig, ax = plt.subplots(figsize=(1.0 * dist.shape[1] + 2, 0.28 * dist.shape[0] + 1.5))
    sns.heatmap(dist, annot=dist.shape[0] <= 20, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=True, ax=ax,
                annot_kws={"fontsize": 7})
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
        ax.set_title(f"{model}, {dataset}\n{design}{_flag(g)}", fontsize=9)
    axes.flat[0].legend(fontsize=7)
    return fig


def plot_sentiment_bias(table: pd.DataFrame, label: str = "prompt") -> plt.Figure:
    """Sentiment bias (positive share predicted - positive share true) with its CI per row."""
    use_house_style()
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(table) + 1.5))
    y = np.arange(len(table))
    err = np.vstack([table["sentiment_bias"] - table["bias_lo"], table["bias_hi"] - table["sentiment_bias"]])
    ax.errorbar(table["sentiment_bias"], y, xerr=err, fmt="o", capsize=3)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, table[label], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("sentiment bias: positive share predicted - true (95% CI)")
    return fig


def plot_ranking_preference(pref: pd.DataFrame, title: str = "") -> plt.Figure:
    """Mean rank a model gives each label on images where it is not the truth (lower = the
    label is preferred) against the random-ranking mean."""
    use_house_style()
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(pref) + 1.5))
    colors = ["tab:orange" if s == "positive" else "tab:blue" for s in pref["sentiment"]]
    ax.barh(pref["label"], pref["rank_when_wrong"], color=colors)
    ax.axvline(pref["rank_chance"].iloc[0], color="grey", ls="--", lw=1, label="random ranking")
    ax.invert_yaxis()
    ax.set_xlabel("mean rank when the label is wrong (orange: positive)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return fig
