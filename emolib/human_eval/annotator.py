"""An ipywidgets annotator for JupyterLab: one error at a time, every answer saved at once.

It shows the image and two answers, A and B: the model's and the data set's label in a
per-item random order (``model_is_a`` of the sample), so the annotator cannot tell which is
which. Choices: A is right, B is right, both plausible, neither; plus a free note. Every
answer rewrites the annotator's CSV atomically before the next item is shown; a new
``Annotator`` on the same file starts at the first unanswered item. Keyboard: click into the
shortcut field, then ``1``-``4`` answer, ``b`` goes back, ``n`` skips.

The widget API is what the tests drive: ``buttons[choice].click()``, ``note.value``,
``shortcuts.value = "1"``, ``position``, ``current_item``.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import ipywidgets as widgets
import pandas as pd

from emolib.human_eval.annotations import (
    CHOICES,
    COLUMNS,
    annotation_path,
    read_annotations,
    verdict_of,
    write_annotations,
)
from emolib.human_eval.sampling import answer_texts, image_path, read_sample

KEYS = {"1": "A", "2": "B", "3": "both", "4": "neither"}
BUTTON_TEXT = {
    "A": "A is right [1]",
    "B": "B is right [2]",
    "both": "Both plausible [3]",
    "neither": "Neither [4]",
}


class Annotator:
    """Annotate the items of a sample folder as ``annotator``; answers go to
    ``<annotations_dir>/<annotator>.csv``. Display ``annotator.widget``."""

    def __init__(
        self,
        sample_dir: str | Path,
        annotator: str,
        annotations_dir: str | Path,
        image_width: int = 240,
    ) -> None:
        self.sample_dir = Path(sample_dir)
        self.annotator = annotator
        self.sample = read_sample(sample_dir)
        self.answer_a, self.answer_b = answer_texts(self.sample)
        self.path = annotation_path(annotations_dir, annotator)
        saved = read_annotations(self.path)
        self.answers: dict[str, dict] = {r["item_id"]: r for r in saved.to_dict("records")}
        self._shown_at = time.monotonic()
        self._build(image_width)
        self.position = self.first_unanswered()
        self.show(self.position)

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return len(self.sample)

    @property
    def n_answered(self) -> int:
        return sum(i in self.answers for i in self.sample["item_id"])

    @property
    def current_item(self) -> str | None:
        return None if self.position >= len(self) else self.sample["item_id"].iloc[self.position]

    def first_unanswered(self, start: int = 0) -> int:
        """Position of the first item without an answer at or after ``start`` (wrapping);
        ``len(self)`` when every item is answered."""
        ids = list(self.sample["item_id"])
        for pos in [*range(start, len(ids)), *range(0, start)]:
            if ids[pos] not in self.answers:
                return pos
        return len(ids)

    # ------------------------------------------------------------------ actions
    def answer(self, choice: str) -> None:
        """Record ``choice`` (A/B/both/neither) and the note for the current item, save the
        file atomically, then move to the next unanswered item. If the save fails, the item
        stays on screen with a NOT SAVED message and the file keeps its previous content."""
        if self.current_item is None:
            return
        row = self.sample.iloc[self.position]
        previous = self.answers.get(row["item_id"])
        self.answers[row["item_id"]] = {
            "item_id": row["item_id"],
            "annotator": self.annotator,
            "choice": choice,
            "verdict": verdict_of(choice, bool(row["model_is_a"])),
            "note": self.note.value.strip(),
            "answered_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "wall_s": round(time.monotonic() - self._shown_at, 2),
            "model_is_a": bool(row["model_is_a"]),
        }
        try:
            self.save()
        except OSError as err:  # not saved: keep the item on screen, say so, lose nothing
            if previous is None:
                del self.answers[row["item_id"]]
            else:
                self.answers[row["item_id"]] = previous
            self.status.value = f"<b style='color:#b00'>NOT SAVED ({html.escape(str(err))})</b>"
            return
        self.show(self.first_unanswered(self.position + 1))

    def save(self) -> Path:
        """Rewrite the annotation file (sample order) with every answer given so far."""
        order = {item: k for k, item in enumerate(self.sample["item_id"])}
        rows = sorted(self.answers.values(), key=lambda r: order.get(r["item_id"], len(order)))
        return write_annotations(self.path, pd.DataFrame(rows, columns=list(COLUMNS)))

    def show(self, position: int) -> None:
        """Display item ``position`` (``len(self)``: the all-done page)."""
        self.position = max(0, min(position, len(self)))
        self._shown_at = time.monotonic()
        done = self.position >= len(self)
        for button in self.buttons.values():
            button.disabled = done
        self.progress.value = self.n_answered
        self.progress_text.value = (
            f"{self.n_answered} / {len(self)} answered &middot; {self.path.name}"
        )
        if done:
            self.image.value, self.note.value = b"", ""
            self.answers_html.value = "<b>Every item is answered.</b> Use Back to revise one."
            self.status.value = ""
            return
        item = self.current_item
        self.image.value = image_path(self.sample_dir, item).read_bytes()
        a, b = (html.escape(str(x[self.position])) for x in (self.answer_a, self.answer_b))
        self.answers_html.value = (
            f"<div style='font-size:1.3em'>Item {self.position + 1} of {len(self)}<br>"
            f"<b>A:</b> <span class='emolib-answer-a'>{a}</span> &nbsp; "
            f"<b>B:</b> <span class='emolib-answer-b'>{b}</span></div>"
        )
        previous = self.answers.get(item)
        self.note.value = "" if previous is None else str(previous["note"])
        self.status.value = (
            "" if previous is None else f"answered: {html.escape(previous['choice'])}"
        )

    # ------------------------------------------------------------------ widgets
    def _build(self, image_width: int) -> None:
        self.image = widgets.Image(format="png", width=image_width)
        self.answers_html = widgets.HTML()
        self.buttons = {c: widgets.Button(description=BUTTON_TEXT[c]) for c in CHOICES}
        for choice, button in self.buttons.items():
            button.add_class(f"emolib-choice-{choice}")
            button.on_click(lambda _b, c=choice: self.answer(c))
        self.back = widgets.Button(description="Back [b]", icon="arrow-left")
        self.skip = widgets.Button(description="Skip [n]", icon="arrow-right")
        self.back.on_click(lambda _b: self.show(self.position - 1))
        self.skip.on_click(lambda _b: self.show(self.position + 1))
        self.note = widgets.Textarea(
            placeholder="note (optional), saved with the answer",
            layout=widgets.Layout(width="420px", height="48px"),
        )
        self.shortcuts = widgets.Text(
            placeholder="click here, then 1-4 answer, b back, n skip",
            continuous_update=True,
            layout=widgets.Layout(width="420px"),
        )
        self.shortcuts.add_class("emolib-shortcuts")
        self.shortcuts.observe(self._on_key, names="value")
        self.progress = widgets.IntProgress(min=0, max=max(1, len(self)))
        self.progress_text, self.status = widgets.HTML(), widgets.HTML()
        self.status.add_class("emolib-status")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.progress, self.progress_text]),
                widgets.HBox([self.image, widgets.VBox([self.answers_html, self.status])]),
                widgets.HBox(list(self.buttons.values())),
                self.note,
                widgets.HBox([self.back, self.skip, self.shortcuts]),
            ]
        )
        self.widget.add_class("emolib-annotator")

    def _on_key(self, change: dict) -> None:
        key = (change["new"] or "")[-1:].lower()
        if not key:
            return
        self.shortcuts.value = ""
        if key in KEYS:
            self.answer(KEYS[key])
        elif key == "b":
            self.show(self.position - 1)
        elif key == "n":
            self.show(self.position + 1)
