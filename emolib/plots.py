"""One house style for every figure, and the plots more than one notebook draws.

Figures are saved as ``figures/<profile>/fig_NN_<what>.png``, their caption inside the PNG
(text chunk ``Description``; ``figure_caption`` reads it back for the report). The Agg
backend is chosen only when no display backend was set (notebooks keep their inline backend).

One palette everywhere: ``HOUSE_PALETTE`` (colour-blind safe) is the colour cycle,
``ROLE_COLORS`` gives the fixed colour of a recurring role (a backend, a sentiment, the
chance line), ``SEQUENTIAL_CMAP`` colours every heatmap. ``in_words`` turns the column and
subset names of the tables into words for titles and axes.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

_INTERACTIVE = ("module://", "nbagg", "widget")
if "MPLBACKEND" not in os.environ and not matplotlib.get_backend().lower().startswith(_INTERACTIVE):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from emolib.paths import figures_dir  # noqa: E402
from emolib.predictions import model_names  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd
    from IPython.display import Markdown

# seaborn's "colorblind" palette, spelt out so every module draws with the same hex values
HOUSE_PALETTE = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4",
                 "#949494", "#ece133", "#56b4e9")
ROLE_COLORS = {
    # who answered
    "cnn": "#0173b2", "cnn_ensemble": "#56b4e9", "clip": "#de8f05", "clip_probe": "#ca9161", "hf": "#029e73",
    "openai": "#cc78bc", "recorded": "#d55e00",
    # sentiment of a label
    "positive": "#029e73", "negative": "#d55e00", "neutral": "#949494",
    # faces before and after restoration
    "original": "#949494", "restored": "#0173b2",
    # reference lines: chance, random ranking, zero effect
    "chance": "#949494",
}
SEQUENTIAL_CMAP = "Blues"
CAPTION_KEY = "Description"  # PNG text chunk that holds a figure's caption

WORDS = {
    "accuracy": "accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1",
    "soft_accuracy": "soft accuracy (share of FER+ annotators agreeing)",
    "fer_private": "FER-2013 PrivateTest", "fer_private_gpt4v": "PrivateTest faces GPT-4V answered",
    "fer_private_leakage_free_exact": "PrivateTest without exact copies in Training",
    "fer_private_leakage_free_near": "PrivateTest without near copies in Training",
    "fer_hard": "FER-2013 hard subset", "emotion6_hard": "Emotion6 hard subset", "emotion6_all": "all of Emotion6",
    "artphoto_gpt4v": "ArtPhoto images GPT-4V answered", "abstract_gpt4v": "Abstract images GPT-4V answered",
    "gpt4v": "GPT-4V (recorded answers)", "fer2013": "FER-2013", "ferplus": "FER+", "emotion6": "Emotion6",
    "synthetic_faces": "synthetic faces", "synthetic_evoked": "synthetic evoked-emotion images",
    "cnn": "CNN", "cnn_ensemble": "CNN ensemble", "soft_vote": "soft vote of the CNNs",
    "clip": "CLIP zero-shot", "clip_probe": "CLIP linear probe", "hf": "generative VLM",
    "openai": "OpenAI-compatible server", "recorded": "recorded answers",
}


def in_words(name: str) -> str:
    """A table's column, subset, data-set or backend name in words for a title or an axis:
    ``"weighted_f1"`` -> ``"weighted F1"``, ``"fer_eval_1000"`` -> ``"1,000-face evaluation draw
    of PrivateTest"``; an unknown name has its underscores turned into spaces."""
    if name in WORDS:
        return WORDS[name]
    for prefix, words in (("fer_eval_", "-face evaluation draw of PrivateTest"),
                          ("emotion6_eval_", "-image evaluation draw of Emotion6")):
        if name.startswith(prefix) and name.removeprefix(prefix).isdigit():
            return f"{int(name.removeprefix(prefix)):,}{words}"
    return name.replace("_", " ")


def colors_for(roles) -> list[str]:
    """``ROLE_COLORS`` of each role (backend, sentiment, ...); an unknown role is a KeyError
    naming the known ones."""
    unknown = sorted({r for r in roles if r not in ROLE_COLORS})
    if unknown:
        raise KeyError(f"no house colour for {unknown}; known roles: {sorted(ROLE_COLORS)}")
    return [ROLE_COLORS[r] for r in roles]


def use_house_style() -> None:
    """Seaborn whitegrid, the house palette and colour map, readable sizes, 150 dpi."""
    sns.set_theme(style="whitegrid", palette=list(HOUSE_PALETTE), context="notebook")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "image.cmap": SEQUENTIAL_CMAP})


def save_figure(fig: plt.Figure, profile_name: str, name: str, caption: str = "") -> Path:
    """Write ``fig`` to ``figures/<profile_name>/<name>.png`` with ``caption`` in its PNG text
    (``figure_caption`` reads it) and return the path."""
    path = figures_dir(profile_name) / (name if name.endswith(".png") else f"{name}.png")
    fig.savefig(path, metadata={CAPTION_KEY: caption} if caption else None)
    return path


def figure_caption(path: Path) -> str:
    """The caption ``save_figure`` stored in a PNG; "" when it has none."""
    from PIL import Image

    with Image.open(path) as image:
        return image.text.get(CAPTION_KEY, "")


def show_figure(fig: plt.Figure, profile_name: str, name: str, caption: str) -> None:
    """Save ``fig`` with its caption (``save_figure``; the report's gallery shows it), show it
    inline with ``caption`` (what to look for) in a notebook, and close it so it is not drawn twice."""
    from IPython.display import Markdown, display

    save_figure(fig, profile_name, name, caption)
    display(fig)
    plt.close(fig)
    display(Markdown(f"*{caption}*"))


def not_measured(what: str, why: str, how_to_enable: str) -> Markdown:
    """One short box, in place of an empty table or a "not run" placeholder, for a result this
    machine did not measure: ``what`` (e.g. "energy per phase"), ``why`` (a sentence computed
    from a status table or probe) and ``how_to_enable`` (a command or profile key). Returns an
    IPython ``Markdown`` object (a blockquote) to display."""
    from IPython.display import Markdown

    return Markdown(f"> **Not measured here: {what}.** {_as_sentence(why)}\n>\n"
                    f"> **To enable it:** {_as_sentence(how_to_enable)}")


def show_not_measured(what: str, why: str, how_to_enable: str) -> None:
    """Display ``not_measured(what, why, how_to_enable)`` in a notebook."""
    from IPython.display import display

    display(not_measured(what, why, how_to_enable))


def _as_sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def unavailable_why(status: pd.DataFrame, kind: str = "model", models: list[str] | None = None) -> str:
    """Why a stage gave no result, from its status table (columns ``model``, ``status``, and
    ``backend`` where a model may be asked through two: then it is ``backend:model``):
    "none of the 3 generative VLMs asked for is available on this machine (...)". ``models``:
    the models that were wanted (default: every row of ``status``); one without a row in
    ``status`` is named as not in this profile."""
    names = model_names(status) if "backend" in status else status["model"]
    models = list(names) if models is None else list(models)
    if not models:
        return f"this profile lists no {kind}"
    available = set(names[status["status"] == "available"])
    listed = set(names)
    missing = [m for m in models if m not in available]
    plural = f"{kind}s" if len(models) != 1 else kind
    if not missing:
        return f"every {kind} asked for ({len(models)}) is available, but none gave a result here"
    head = (f"none of the {len(models)} {plural} asked for is available on this machine" if len(missing) == len(models)
            else f"{len(missing)} of the {len(models)} {plural} asked for are unavailable on this machine")
    names = [f"`{m}`" + ("" if m in listed else " (not in this profile)") for m in missing]
    where = "; each one's reason is in the status table above" if set(missing) & listed else ""
    return f"{head} ({', '.join(names)}{where})"


def fetch_how(profile_name: str) -> str:
    """How to get a profile's missing models onto this machine."""
    return (f"list the model in the profile's `vlm` model lists if it is not there; `emolib fetch {profile_name}` "
            f"downloads the missing weights (`./run_all.sh {profile_name} --fetch` does it before a run), and a model "
            "served elsewhere goes into `vlm.endpoints`. Then rerun this notebook")


def plot_confusion(cm: np.ndarray, class_names: list[str] | tuple[str, ...], ax: plt.Axes | None = None,
                   normalize: bool = True, title: str = "", pred_names: list[str] | None = None,
                   xlabel: str = "predicted", ylabel: str = "true") -> plt.Axes:
    """Heatmap of a confusion matrix (rows true, columns predicted); rows sum to 1 if normalised."""
    ax = ax or plt.subplots(figsize=(5.5, 4.5))[1]
    cm = np.asarray(cm, dtype=float)
    if normalize:
        cm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    columns = pred_names or list(class_names)[: cm.shape[1]] + ["none"] * (cm.shape[1] - len(class_names))
    sns.heatmap(cm, annot=True, fmt=".2f" if normalize else ".0f", cmap=SEQUENTIAL_CMAP, cbar=False,
                xticklabels=columns,
                yticklabels=list(class_names), ax=ax, vmin=0, vmax=1 if normalize else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return ax


TITLE_SIZE = 8  # points, the titles of image grids
TITLE_LINE_IN = TITLE_SIZE * 1.3 / 72  # inches one title line takes, with its leading


def wrap_title(title: str, width_in: float) -> str:
    """``title`` with each line wrapped at spaces to fit ``width_in`` inches of title text."""
    chars = max(8, int(width_in * 72 / (TITLE_SIZE * 0.58)))  # bold DejaVu: ~0.58 em per character
    return "\n".join(textwrap.fill(line, chars, break_long_words=False, break_on_hyphens=False) or line
                     for line in title.split("\n"))


def plot_image_grid(images: list[np.ndarray], titles: list[str] | None = None, ncols: int = 8,
                    size: float = 1.3, suptitle: str = "") -> plt.Figure:
    """Images (gray or RGB uint8) in a grid of ``ncols`` columns, each in a ``size`` x ``size``
    inch box, with optional titles (wrapped to the column width). Each row is laid out in
    inches: a band as tall as its longest title, then the image box, so no title can run
    into the row above whatever the images' aspect ratios."""
    nrows = max(1, int(np.ceil(len(images) / ncols)))
    titles = [wrap_title(t, size) for t in titles] if titles else []
    lines = [max((t.count("\n") + 1 for t in titles[r * ncols:(r + 1) * ncols]), default=0) for r in range(nrows)]
    gap, top = 0.12, (0.5 if suptitle else 0.0)  # inches between boxes; band of the suptitle
    bands = [n * TITLE_LINE_IN + (0.06 if n else 0.0) for n in lines]
    width = ncols * size + (ncols - 1) * gap
    height = top + sum(bands) + nrows * size + (nrows - 1) * gap
    fig = plt.figure(figsize=(width, height))
    y = height - top
    for r in range(nrows):
        y -= bands[r] + size
        for c, img in enumerate(images[r * ncols:(r + 1) * ncols]):
            ax = fig.add_axes(((c * (size + gap)) / width, y / height, size / width, size / height))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
            ax.axis("off")
            ax.set_anchor("N")  # a wide image sits at the top of its box, under its title
            if titles:
                ax.set_title(titles[r * ncols + c], fontsize=TITLE_SIZE, pad=3)
        y -= gap
    if suptitle:
        fig.suptitle(suptitle, y=1 - 0.12 / height, va="top")
    return fig
