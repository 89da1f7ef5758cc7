"""The browsable report of one profile: ``results/<profile>/report/``.

``build_report("quick")`` gathers what the notebooks wrote and writes plain, self-contained
HTML with relative links (the folder can be zipped and opened anywhere, offline):

- ``index.html``: the study's headline numbers (``emolib.run.headlines``: each read from a saved
  table under ``tables/<profile>/``; a table that is not there is a visible "not run" row),
  and a link to every executed notebook;
- ``notebooks/NN_*.html``: the executed notebooks (``results/<profile>/notebooks/``), the HTML
  that ``run_all.sh`` rendered, or rendered here with nbconvert when it is missing or older;
- ``gallery.html``: every figure of ``figures/<profile>/`` with the caption stored in it;
- ``tables.html`` and ``tables/tab_*.html`` (+ the CSV): every table.

Run it with ``python -m emolib.run.report PROFILE`` (``run_all.sh`` does, after the notebooks).
"""

from __future__ import annotations

import html
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from emolib.paths import figures_dir, results_dir, tables_dir
from emolib.plots import figure_caption
from emolib.run.headlines import Headline, headline_numbers, read_saved_table

MAX_TABLE_ROWS = 500  # rows shown on a table's page; the CSV beside it has them all
STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #222; max-width: 1150px; margin: 0 auto; padding: 0 1.2em 3em; }
nav { padding: .8em 0; border-bottom: 1px solid #ddd; margin-bottom: 1em; }
nav a { margin-right: 1.2em; }
a { color: #0173b2; }
table { border-collapse: collapse; margin: .6em 0 1.4em; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .3em .7em; text-align: left; vertical-align: top; }
th { background: #f3f6f9; }
td.missing { color: #a05a00; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1.4em; }
figure { margin: 0; border: 1px solid #e3e3e3; padding: .6em; background: #fff; }
figure img { width: 100%; height: auto; }
figcaption { font-size: 13px; color: #444; }
.note { color: #666; font-size: 13px; }
.wide { overflow-x: auto; }
"""


@dataclass(frozen=True)
class Entry:
    """A notebook page, figure or table of the report: its notebook number, name, the path
    relative to the report folder, and a line of text (title, caption or shape)."""

    number: str
    name: str
    href: str
    text: str


# ----------------------------------------------------------------------------- gathering
def notebook_title(path: Path) -> str:
    """The first heading of an executed notebook, without its '#'."""
    cells = json.loads(path.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            source = "".join(cell["source"]).strip()
            return source.splitlines()[0].lstrip("# ").strip() if source else path.stem
    return path.stem


def render_notebook(ipynb: Path, target: Path) -> Path:
    """``target``: the notebook's HTML beside it when that is at least as new, else nbconvert's."""
    rendered = ipynb.with_suffix(".html")
    if rendered.is_file() and rendered.stat().st_mtime >= ipynb.stat().st_mtime:
        shutil.copyfile(rendered, target)
        return target
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(ipynb, as_version=4))
    target.write_text(body, encoding="utf-8")
    return target


def gather_notebooks(profile_name: str, out: Path) -> list[Entry]:
    """Every executed notebook of the profile, rendered into ``out/notebooks/``."""
    source = results_dir(profile_name, ensure=False) / "notebooks"
    (out / "notebooks").mkdir(parents=True)
    entries = []
    for ipynb in sorted(source.glob("[0-9][0-9]_*.ipynb")):
        render_notebook(ipynb, out / "notebooks" / f"{ipynb.stem}.html")
        entries.append(Entry(ipynb.name[:2], ipynb.stem, f"notebooks/{ipynb.stem}.html", notebook_title(ipynb)))
    return entries


def copy_outputs(source: Path, pattern: str, target: Path) -> list[Path]:
    """The files of ``source`` matching ``pattern``, in name order, copied into ``target`` (new)."""
    target.mkdir(parents=True)
    files = sorted(source.glob(pattern))
    for path in files:
        shutil.copyfile(path, target / path.name)
    return files


def gather_figures(profile_name: str, out: Path) -> list[Entry]:
    """Every ``fig_NN_*.png`` of the profile, copied into ``out/figures/``, with its caption."""
    pngs = copy_outputs(figures_dir(profile_name, ensure=False), "fig_[0-9][0-9]_*.png", out / "figures")
    return [Entry(png.name[4:6], png.stem, f"figures/{png.name}", figure_caption(png)) for png in pngs]


def gather_tables(profile_name: str, out: Path) -> list[Entry]:
    """Every ``tab_NN_*.csv`` of the profile: copied, and rendered as ``out/tables/<name>.html``."""
    entries = []
    for csv in copy_outputs(tables_dir(profile_name, ensure=False), "tab_[0-9][0-9]_*.csv", out / "tables"):
        frame = read_saved_table(csv)
        (out / "tables" / f"{csv.stem}.html").write_text(table_page(csv.stem, frame), encoding="utf-8")
        entries.append(Entry(csv.name[4:6], csv.stem, f"tables/{csv.stem}.html",
                             f"{len(frame):,} rows x {frame.shape[1]} columns"))
    return entries


# ----------------------------------------------------------------------------- pages
def page(title: str, body: str, up: str = "") -> str:
    """A whole HTML page; ``up`` is the way back to the report folder ("../" from tables/)."""
    nav = " ".join(f'<a href="{up}{href}">{label}</a>' for href, label in
                   (("index.html", "Summary"), ("gallery.html", "Figures"), ("tables.html", "Tables")))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="{up}style.css"></head>\n<body><nav>{nav}</nav>\n'
            f"<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def table_page(name: str, frame: pd.DataFrame) -> str:
    """One table as a page: its first ``MAX_TABLE_ROWS`` rows and a link to the full CSV."""
    shown = frame.head(MAX_TABLE_ROWS).to_html(index=False, border=0, na_rep="",
                                               float_format=lambda v: f"{v:.4g}")
    cut = f"first {MAX_TABLE_ROWS:,} of {len(frame):,} rows; " if len(frame) > MAX_TABLE_ROWS else ""
    note = f'<p class="note">{cut}all rows at full precision: <a href="{name}.csv">{name}.csv</a></p>'
    return page(name, f'{note}<div class="wide">{shown}</div>', up="../")


def _by_notebook(entries: list[Entry], titles: dict[str, str]) -> list[tuple[str, str, list[Entry]]]:
    numbers = sorted({e.number for e in entries})
    return [(n, titles.get(n, f"Notebook {n}"), [e for e in entries if e.number == n]) for n in numbers]


def _section_link(page_name: str, number: str, n: int, word: str) -> str:
    """'3 figures' linking to notebook ``number``'s section of ``page_name``; '0 tables' plain."""
    text = f"{n} {word}{'' if n == 1 else 's'}"
    return f'<a href="{page_name}#nb-{number}">{text}</a>' if n else text


def _source_link(name: str) -> str:
    return f'<a href="tables/{name}.html">{name}</a>'


def index_page(profile_name: str, headlines: list[Headline], notebooks: list[Entry], figures: list[Entry],
               tables: list[Entry]) -> str:
    """The summary: headline numbers with their sources, and the list of notebooks."""
    known = {t.name for t in tables}
    rows = "".join(
        f"<tr><td>{html.escape(h.question)}</td><td{'' if h.found else ' class=missing'}>{html.escape(h.answer)}"
        f"</td><td>{_source_link(h.source) if h.source in known else h.source}</td></tr>"
        for h in headlines)
    items = "".join(
        f'<li><a href="{n.href}">{html.escape(n.text)}</a> <span class="note">('
        f'{_section_link("gallery.html", n.number, sum(f.number == n.number for f in figures), "figure")}, '
        f'{_section_link("tables.html", n.number, sum(t.number == n.number for t in tables), "table")})'
        f"</span></li>" for n in notebooks)
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (f'<p class="note">Built {built} from {len(notebooks)} executed notebooks, {len(figures)} figures and '
            f"{len(tables)} tables of profile <b>{html.escape(profile_name)}</b>. Every number below is read "
            "from the table named beside it.</p>\n<h2>Headline numbers</h2>\n"
            f"<table><tr><th>question</th><th>answer</th><th>read from</th></tr>{rows}</table>\n"
            f"<h2>Notebooks</h2>\n<ul>{items or '<li>no executed notebook yet</li>'}</ul>\n"
            f'<p><a href="gallery.html">All {len(figures)} figures with their captions</a> · '
            f'<a href="tables.html">all {len(tables)} tables</a></p>')
    return page(f"emolib study report: profile {profile_name}", body)


def gallery_page(figures: list[Entry], titles: dict[str, str]) -> str:
    """Every figure, grouped by notebook, each with its caption."""
    sections = "".join(
        f'<section id="nb-{number}"><h2>{html.escape(title)}</h2><div class="gallery">'
        + "".join(f'<figure id="{f.name}"><a href="{f.href}"><img src="{f.href}" alt="{html.escape(f.name)}"></a>'
                  f"<figcaption><b>{f.name}</b>. {html.escape(f.text) or 'No caption was saved.'}</figcaption>"
                  "</figure>" for f in group)
        + "</div></section>\n" for number, title, group in _by_notebook(figures, titles))
    return page("Figures", sections or "<p>No figure was written in this profile.</p>")


def tables_page(tables: list[Entry], titles: dict[str, str]) -> str:
    """Every table, grouped by notebook, with its shape and a link to its CSV."""
    sections = "".join(
        f'<section id="nb-{number}"><h2>{html.escape(title)}</h2><ul>'
        + "".join(f'<li><a href="{t.href}">{t.name}</a> <span class="note">{t.text} · '
                  f'<a href="tables/{t.name}.csv">CSV</a></span></li>' for t in group)
        + "</ul></section>\n" for number, title, group in _by_notebook(tables, titles))
    return page("Tables", sections or "<p>No table was written in this profile.</p>")


def build_report(profile_name: str) -> Path:
    """Build ``results/<profile_name>/report/`` (replacing an older one only once the new one
    is complete) and return the path of its ``index.html``."""
    final = results_dir(profile_name) / "report"
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=final.parent))
    try:
        notebooks = gather_notebooks(profile_name, staging)
        figures, tables = gather_figures(profile_name, staging), gather_tables(profile_name, staging)
        titles = {n.number: n.text for n in notebooks}
        headlines = headline_numbers(tables_dir(profile_name, ensure=False))
        pages = {"index.html": index_page(profile_name, headlines, notebooks, figures, tables),
                 "gallery.html": gallery_page(figures, titles), "tables.html": tables_page(tables, titles),
                 "style.css": STYLE.lstrip()}
        for name, text in pages.items():
            (staging / name).write_text(text, encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging)
        raise
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    return final / "index.html"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m emolib.run.report PROFILE_NAME")
    print(f"report: {build_report(sys.argv[1])}")
