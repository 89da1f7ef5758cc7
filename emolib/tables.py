"""Tables to CSV + Markdown (+ LaTeX): ``tables/<profile>/tab_NN_<what>.{csv,md,tex}``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emolib.paths import tables_dir
from emolib.store import write_text


def save_table(frame: pd.DataFrame, profile_name: str, name: str, index: bool = False,
               float_format: str = "{:.4f}", latex: bool = True) -> Path:
    """Write ``frame`` as CSV (full precision), Markdown and LaTeX; return the CSV path."""
    base = tables_dir(profile_name) / name.removesuffix(".csv")
    write_text(base.with_suffix(".csv"), frame.to_csv(index=index))
    shown = frame.copy()
    for col in shown.select_dtypes("float").columns:
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else float_format.format(v))
    write_text(base.with_suffix(".md"), shown.to_markdown(index=index) + "\n")
    if latex:
        write_text(base.with_suffix(".tex"), shown.to_latex(index=index, escape=True))
    return base.with_suffix(".csv")


def read_table(profile_name: str, name: str) -> pd.DataFrame:
    return pd.read_csv(tables_dir(profile_name, ensure=False) / f"{name.removesuffix('.csv')}.csv")
