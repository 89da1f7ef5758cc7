"""Figures of notebook 07 that need more than one seaborn call."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from emolib.human_eval.alike import SHARE_COLUMNS
from emolib.plots import ROLE_COLORS, SEQUENTIAL_CMAP


def plot_errors_alike(table: pd.DataFrame, overlap: pd.DataFrame, patterns: pd.DataFrame,
                      max_patterns: int = 12) -> plt.Figure:
    """Several models' errors on the same images: the share of each model's errors per error
    category (left), the Jaccard index of every two models' wrong-image sets (middle), and an
    UpSet plot of the images wrong by exactly each set of models (right: bars above, the set
    as dots below; the ``max_patterns`` largest sets). ``table`` from
    ``alike.errors_side_by_side`` (or ``category_shares``), ``overlap`` from
    ``alike.error_overlap``, ``patterns`` from ``alike.error_patterns``."""
    models = list(table["who"])
    fig = plt.figure(figsize=(16, 5))
    grid = fig.add_gridspec(2, 3, width_ratios=[1.2, 0.9, 1.5], height_ratios=[2.2, 1], wspace=0.45, hspace=0.08)
    shares_ax, jaccard_ax = fig.add_subplot(grid[:, 0]), fig.add_subplot(grid[:, 1])
    bars_ax = fig.add_subplot(grid[0, 2])
    dots_ax = fig.add_subplot(grid[1, 2], sharex=bars_ax)

    shares = table.set_index("who")[list(SHARE_COLUMNS.values())].set_axis(list(SHARE_COLUMNS), axis=1)
    shares.T.plot.bar(ax=shares_ax, width=0.8, rot=0)
    shares_ax.set(ylabel="share of the model's errors", ylim=(0, 1), title="Error categories")
    shares_ax.legend(fontsize=8, title="")

    jaccard = pd.DataFrame(np.eye(len(models)), index=models, columns=models)
    for pair in overlap.itertuples():
        jaccard.loc[pair.a, pair.b] = jaccard.loc[pair.b, pair.a] = pair.jaccard
    sns.heatmap(jaccard, mask=np.eye(len(models), dtype=bool), annot=True, fmt=".2f", vmin=0, vmax=1,
                cmap=SEQUENTIAL_CMAP, cbar=False, square=True, ax=jaccard_ax)
    jaccard_ax.set(title="Jaccard of the wrong-image sets", xlabel="", ylabel="")
    jaccard_ax.grid(False)
    jaccard_ax.tick_params(axis="x", rotation=45)
    plt.setp(jaccard_ax.get_xticklabels(), ha="right")

    wrong = patterns[patterns["models_wrong"] > 0]
    shown = wrong.head(max_patterns)
    x = np.arange(len(shown))
    bars = bars_ax.bar(x, shown["images"], color=ROLE_COLORS["chance"])
    bars_ax.bar_label(bars, fontsize=7)
    bars_ax.set(ylabel="images", title=f"Images wrong by exactly these models ({len(shown)} of {len(wrong)} sets)")
    bars_ax.tick_params(axis="x", bottom=False, labelbottom=False)
    member = shown[models].to_numpy(dtype=bool)  # (patterns, models)
    for j in range(len(shown)):
        rows = np.flatnonzero(member[j])
        dots_ax.plot([j, j], [rows.min(), rows.max()], color="black", lw=1.5)
    xs, ys = np.meshgrid(x, np.arange(len(models)), indexing="ij")
    dots_ax.scatter(xs.ravel(), ys.ravel(), s=30, c=np.where(member.ravel(), "black", "#d9d9d9"), zorder=3)
    dots_ax.set(yticks=range(len(models)), yticklabels=models, ylim=(len(models) - 0.5, -0.5), xticks=[])
    dots_ax.grid(False)
    return fig
