"""Reading a file of recorded answers (``emolib.vlm.recorded_files`` documents the format): a
CSV or JSON Lines file with ``image_id`` and ``raw_answer`` (and optionally ``ranked`` and
``y_true``), every cell as text, each row with its position in the file; a missing file or
column is a DataError naming the file and the fix.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.config import RECORDED_FILE_COLUMNS
from emolib.data import DataError
from emolib.data.checks import read_utf8

REQUIRED_COLUMNS = ("image_id", "raw_answer")
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
FORMAT_HELP = "README, 'Your own recorded answers'"


def first_ranked(answer: str | float | None) -> str | None:
    """The first item of a comma-separated ranked list ('' or NaN -> None)."""
    if not isinstance(answer, str) or not answer.strip():
        return None
    return answer.split(",")[0].strip()


def _cell(value) -> str:
    """A JSON value as the text a CSV cell would hold (null -> '', a list -> 'a, b')."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _read_jsonl(path: Path) -> pd.DataFrame:
    records, rows = [], []
    for number, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {number}: not JSON ({err}); each line must be one object such as "
                            '{"image_id": "img_1", "raw_answer": "happy"}') from err
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: a JSON {type(record).__name__}, not an object with "
                            f"image_id and raw_answer")
        records.append({k: _cell(v) for k, v in record.items()})
        rows.append(number)
    return pd.DataFrame.from_records(records).fillna("").assign(row=rows)


def _read_csv(path: Path) -> pd.DataFrame:
    text = read_utf8(path)  # a byte that is not UTF-8: DataError naming its line
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path} is not a readable CSV ({err}); expected columns {list(REQUIRED_COLUMNS)} "
                        f"(+ optional ranked, y_true). {FORMAT_HELP}") from err
    return frame.assign(row=np.arange(1, len(frame) + 1))


def read_answers(path: str | Path, columns: dict[str, str] | None = None, answer: str = "raw") -> pd.DataFrame:
    """The answers of one file as text: ``row, image_id, raw_answer, ranked, y_true`` ('' for an
    empty cell or a column the file lacks); ``frame.attrs["has_truth"]``: the file has a
    ``y_true`` column. ``columns``: format column -> the file's name for it. DataError naming
    the file when it is missing, unreadable or lacks a column (``answer='first_ranked'``
    needs ``ranked``)."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: recorded answers are {sorted(SUFFIXES)} files, not {path.suffix or 'no suffix'!r}. "
                        f"{FORMAT_HELP}")
    if not path.is_file():
        raise DataError(f"{path} not found: put the file there or fix `path` of its vlm.recorded_files entry "
                        "(relative to EMOLIB_DATA_DIR)")
    raw = _read_csv(path) if kind == "csv" else _read_jsonl(path)
    names = {c: (columns or {}).get(c, c) for c in RECORDED_FILE_COLUMNS}
    needed = [*REQUIRED_COLUMNS, *(["ranked"] if answer == "first_ranked" else [])]
    missing = [names[c] for c in needed if names[c] not in raw.columns]
    if missing:
        mapped = {c: names[c] for c in needed if names[c] != c}
        raise DataError(f"{path}: missing column(s) {missing}; expected {needed}"
                        + (f" (mapped by `columns`: {mapped})" if mapped else "")
                        + f", found {[c for c in raw.columns if c != 'row']}. Rename the file's columns or map them "
                        "with `columns` in the vlm.recorded_files entry"
                        + ("; answer: first_ranked reads the ranked column (answer: raw reads raw_answer)"
                           if "ranked" in needed else "") + f". {FORMAT_HELP}")
    frame = pd.DataFrame({"row": raw["row"].to_numpy()})
    for column in RECORDED_FILE_COLUMNS:
        values = raw[names[column]] if names[column] in raw.columns else pd.Series("", index=raw.index)
        frame[column] = values.astype(str).str.strip().to_numpy(dtype=object)
    frame.attrs["has_truth"] = names["y_true"] in raw.columns
    return frame


def answer_texts(answers: pd.DataFrame, answer: str) -> tuple[pd.Series, pd.Series]:
    """(what is parsed, what goes into ``raw_response``) per row; None where empty. ``raw``:
    ``raw_answer`` both; ``first_ranked``: the first label of ``ranked``, and the list."""
    source = answers["ranked"] if answer == "first_ranked" else answers["raw_answer"]
    raw = pd.Series([v or None for v in source], index=answers.index, dtype=object)
    text = pd.Series([first_ranked(v) for v in raw], index=answers.index, dtype=object)
    return (text if answer == "first_ranked" else raw), raw
