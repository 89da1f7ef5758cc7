"""Annotation sheets for annotators outside Jupyter: export a sample, import filled sheets.

``export_sheet`` writes ``sheet.csv`` (``item_id, position, answer_a, answer_b, choice,
note``; choice and note empty) and ``sheet.html``, a self-contained page (images embedded as
data URIs, no network) with a radio group and a note per item and a button that downloads
the filled sheet as CSV. The model/label blinding is the sample's; the sheet never says
which answer is the model's. ``import_sheet`` maps a filled sheet's choices back to
verdicts and returns annotation rows (``annotations.COLUMNS``).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from emolib.human_eval import annotations
from emolib.human_eval.sampling import answer_texts, image_path, read_sample
from emolib.store import write_text

SHEET_COLUMNS = ("item_id", "position", "answer_a", "answer_b", "choice", "note")
CHOICE_ALIASES = {
    "1": "A",
    "2": "B",
    "3": "both",
    "4": "neither",
    "a": "A",
    "b": "B",
    "both": "both",
    "neither": "neither",
}

_SCRIPT = """
function downloadSheet() {
  const who = document.getElementById('annotator').value.trim() || 'annotator';
  const quote = s => '"' + String(s).replace(/"/g, '""') + '"';
  const lines = ['item_id,position,answer_a,answer_b,choice,note,annotator'];
  document.querySelectorAll('tr.item').forEach(tr => {
    const picked = tr.querySelector('input[type=radio]:checked');
    const note = tr.querySelector('textarea').value;
    lines.push([tr.dataset.item, tr.dataset.position, tr.dataset.a, tr.dataset.b,
                picked ? picked.value : '', note, who].map(quote).join(','));
  });
  const blob = new Blob([lines.join('\\n') + '\\n'], {type: 'text/csv'});
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = 'sheet_' + who.replace(/[^A-Za-z0-9_.-]+/g, '_') + '.csv';
  link.click();
}
"""


def sheet_frame(sample: pd.DataFrame) -> pd.DataFrame:
    """The blank sheet: one row per item in sample order, choice and note empty."""
    a, b = answer_texts(sample)
    return pd.DataFrame(
        {
            "item_id": sample["item_id"],
            "position": range(1, len(sample) + 1),
            "answer_a": a,
            "answer_b": b,
            "choice": "",
            "note": "",
        }
    )


def _row_html(row: pd.Series, image: Path, width: int) -> str:
    data = base64.b64encode(image.read_bytes()).decode()
    esc = lambda v: html.escape(str(v), quote=True)  # noqa: E731
    radios = " ".join(
        f"<label><input type='radio' name='c{esc(row.item_id)}' value='{c}'> {label}</label>"
        for c, label in zip(
            annotations.CHOICES, ("A is right", "B is right", "both plausible", "neither"), strict=True
        )
    )
    return (
        f"<tr class='item' data-item='{esc(row.item_id)}' data-position='{row.position}' "
        f"data-a='{esc(row.answer_a)}' data-b='{esc(row.answer_b)}'>"
        f"<td>{row.position}</td><td><img width='{width}' src='data:image/png;base64,{data}'></td>"
        f"<td><b>A:</b> {esc(row.answer_a)}<br><b>B:</b> {esc(row.answer_b)}</td>"
        f"<td>{radios}<br><textarea rows='2' cols='30' placeholder='note'></textarea></td></tr>"
    )


def sheet_html(sample_dir: str | Path, sheet: pd.DataFrame, width: int = 240) -> str:
    """The self-contained HTML page of a sheet (images inlined)."""
    rows = "\n".join(
        _row_html(r, image_path(sample_dir, r.item_id), width) for r in sheet.itertuples()
    )
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>emolib annotation sheet</title>
<style>body{{font-family:sans-serif}}
td{{border-bottom:1px solid #ccc;padding:6px;vertical-align:top}}</style>
</head><body><h1>Which answer fits the image?</h1>
<p>Each image comes with two answers, A and B, in random order. Pick the one that is right,
"both plausible" or "neither", add a note if useful, then download the filled sheet
and send it back.</p>
<p>Your name: <input id="annotator">
<button onclick="downloadSheet()">Download filled sheet (CSV)</button></p>
<table>{rows}</table><script>{_SCRIPT}</script></body></html>
"""


def export_sheet(
    sample_dir: str | Path, out_dir: str | Path, width: int = 240
) -> tuple[Path, Path]:
    """Write ``sheet.csv`` and ``sheet.html`` for the sample in ``sample_dir``; return both."""
    sheet = sheet_frame(read_sample(sample_dir))
    out = Path(out_dir)
    csv_path = write_text(out / "sheet.csv", sheet.to_csv(index=False))
    html_path = write_text(out / "sheet.html", sheet_html(sample_dir, sheet, width))
    return csv_path, html_path


def import_sheet(
    path: str | Path, sample: pd.DataFrame, annotator: str | None = None
) -> pd.DataFrame:
    """Annotation rows from a filled sheet (CSV with ``item_id, choice`` and optionally
    ``note``, ``annotator``). Choices A/B/both/neither or 1-4, any case; blank = unanswered,
    left out. Unknown item ids or choices raise ValueError naming the rows."""
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("item_id", "choice"):
        if col not in sheet.columns:
            raise ValueError(f"{path}: no {col!r} column; a sheet has {list(SHEET_COLUMNS)}")
    sheet = sheet[sheet["choice"].str.strip() != ""]
    choice = sheet["choice"].str.strip().str.lower().map(CHOICE_ALIASES)
    if choice.isna().any():
        bad = sheet.loc[choice.isna(), "choice"].unique().tolist()
        raise ValueError(f"{path}: unknown choice(s) {bad}; use one of {list(annotations.CHOICES)} or 1-4")
    model_is_a = sample.set_index("item_id")["model_is_a"]
    unknown = sorted(set(sheet["item_id"]) - set(model_is_a.index))
    if unknown:
        raise ValueError(
            f"{path}: item ids not in this sample: {unknown[:5]} ({len(unknown)} in all)"
        )
    who = annotator or (
        sheet["annotator"].iloc[0] if "annotator" in sheet and len(sheet) else Path(path).stem
    )
    flags = model_is_a.loc[sheet["item_id"]].to_numpy(dtype=bool)
    out = pd.DataFrame(
        {
            "item_id": sheet["item_id"].to_numpy(),
            "annotator": who,
            "choice": choice.to_numpy(),
            "verdict": [annotations.verdict_of(c, f) for c, f in zip(choice, flags, strict=True)],
            "note": sheet["note"].to_numpy() if "note" in sheet else "",
            "answered_at": "",
            "wall_s": float("nan"),
            "model_is_a": flags,
        }
    )
    return out[list(annotations.COLUMNS)]


def import_filled_sheets(
    filled_dir: str | Path, sample_dir: str | Path, annotations_dir: str | Path
) -> list[Path]:
    """Import every filled sheet (``*.csv``) of ``filled_dir`` into the annotation file of
    its annotator (``annotator`` column, else the file name); a sheet's answers replace that
    annotator's earlier answers to the same items, others are kept. Returns the files written."""
    files = sorted(Path(filled_dir).glob("*.csv")) if Path(filled_dir).is_dir() else []
    sample = read_sample(sample_dir)
    written = []
    for sheet in files:
        rows = import_sheet(sheet, sample)
        for who, part in rows.groupby("annotator"):
            path = annotations.annotation_path(annotations_dir, str(who))
            old = annotations.read_annotations(path)
            merged = pd.concat(
                [old[~old["item_id"].isin(part["item_id"])], part], ignore_index=True
            )
            written.append(annotations.write_annotations(path, merged))
    return written
