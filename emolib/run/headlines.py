"""The study's headline numbers, each read from a table the notebooks saved.

``headline_numbers(tables_dir)`` answers the questions of ``HEADLINES`` (best CNN on
PrivateTest, best VLM against the CNNs, GPT-4V against the CNNs on FER+, the effect of
restoration, the hard share, prompt sensitivity, the consistency check) from
``tables/<profile>/tab_NN_*.csv``. A table that is not there is an answer saying so, with
the notebook that writes it; no number is ever filled in. ``emolib.run.report`` shows them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from emolib.plots import in_words
from emolib.predictions import CNN_BACKENDS, ENSEMBLE_BACKEND


@dataclass(frozen=True)
class Headline:
    """One headline number: the question, the answer read from ``source`` (a table name)."""

    question: str
    answer: str
    source: str
    found: bool = True


Read = Callable[[str], "pd.DataFrame | None"]  # a saved table by name; None when no notebook wrote it
Answer = Callable[[pd.DataFrame, Read], str]  # the answer read from the headline's own table


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def headline(question: str, source: str) -> Callable[[Answer], Callable[[Read], Headline]]:
    """Turn ``answer(table, read) -> str`` (``table``: the saved ``source`` table) into a headline
    ``(read) -> Headline`` that answers ``question``, or says which notebook did not write it."""
    def wrap(answer: Answer) -> Callable[[Read], Headline]:
        @functools.wraps(answer)
        def read_and_answer(read: Read) -> Headline:
            table = read(source)
            if table is None:
                return Headline(question, f"not run in this profile: notebook {source[4:6]} did not write {source}",
                                source, found=False)
            return Headline(question, answer(table, read), source)
        return read_and_answer
    return wrap


@headline("Best CNN on FER-2013 PrivateTest", "tab_03_results")
def best_cnn(table: pd.DataFrame, read: Read) -> str:
    """Best CNN on all of PrivateTest (mean over seeds), and the same model without the faces
    that have an exact copy in Training."""
    rows = table[(table["subset"] == "fer_private") & (table["restoration"] == "none")]
    if rows.empty:
        return "no CNN was scored on fer_private"
    means = rows.groupby("model")["accuracy"].mean().sort_values(ascending=False)
    best = rows[rows["model"] == means.index[0]]
    answer = f"{means.index[0]}: {_pct(means.iloc[0])} accuracy (n = {int(best['n'].iloc[0]):,}"
    answer += f", mean of {len(best)} seeds)" if len(best) > 1 else \
        f", 95% CI {_pct(best['accuracy_lo'].iloc[0])} to {_pct(best['accuracy_hi'].iloc[0])})"
    clean = table[(table["model"] == means.index[0]) & (table["restoration"] == "none")
                  & (table["subset"] == "fer_private_leakage_free_exact")]
    if len(clean):
        answer += f"; without exact Training copies {_pct(clean['accuracy'].mean())} (n = {int(clean['n'].iloc[0]):,})"
    others = ", ".join(f"{m} {_pct(a)}" for m, a in means.iloc[1:].items())
    return answer + (f"; others: {others}" if others else "")


@headline("Best VLM against the best CNN, same faces", "tab_04_cnn_vs_vlm")
def best_vlm(table: pd.DataFrame, read: Read) -> str:
    """Best zero-shot VLM against the best CNN on the shared evaluation draw (original faces)."""
    rows = table[table["restoration"] == "none"]
    vlms, cnns = rows[~rows["backend"].isin(CNN_BACKENDS)], rows[rows["backend"] == "cnn"]
    if vlms.empty:
        return "no VLM was available in this profile (see tab_04_model_status)"
    vlm = vlms.loc[vlms["accuracy"].idxmax()]
    answer = f"{vlm['backend']}:{vlm['model']} {_pct(vlm['accuracy'])} on {vlm['subset']} (n = {int(vlm['n']):,})"
    if len(cnns):
        cnn = cnns.loc[cnns["accuracy"].idxmax()]
        answer += f" vs CNN {cnn['model']} {_pct(cnn['accuracy'])}"
    note = vlm.get("note", "")
    return answer + (f" ({note})" if isinstance(note, str) and note else "")


@headline("GPT-4V against the CNNs on FER+ (same faces)", "tab_04_cnn_vs_gpt4v")
def gpt4v_vs_cnns(table: pd.DataFrame, read: Read) -> str:
    """GPT-4V's recorded answers against the best CNN and the CNNs' soft-vote ensemble on the
    same FER+ faces, with McNemar's p."""
    gpt, cnns = table[table["backend"] == "recorded"], table[table["backend"] == "cnn"]
    if gpt.empty or cnns.empty:
        return "the table lacks GPT-4V or CNN rows"
    cnn = cnns.loc[cnns["accuracy"].idxmax()]
    seeds = cnns.loc[cnns["model"] == cnn["model"], "seed"] if "seed" in cnns else pd.Series([], dtype=int)
    who = f"{cnn['model']} (seed {int(cnn['seed'])} of {len(seeds)})" if len(seeds) > 1 else cnn["model"]
    tests = read("tab_04_cnn_vs_gpt4v_mcnemar")
    answer = (f"GPT-4V {_pct(gpt['accuracy'].iloc[0])} vs best CNN {who} {_pct(cnn['accuracy'])}"
              f"{_mcnemar(tests, cnn)} on the same {int(cnn['n']):,} faces (FER+ plurality label)")
    ensembles = table[table["backend"] == ENSEMBLE_BACKEND]
    if "seed" in table:
        ensembles = ensembles[ensembles["seed"] == cnn["seed"]]
    if len(ensembles):
        vote = ensembles.iloc[0]
        answer += f"; the CNNs' soft vote {_pct(vote['accuracy'])}{_mcnemar(tests, vote)}"
    return answer


def _mcnemar(tests: pd.DataFrame | None, row: pd.Series) -> str:
    """`` (McNemar p (Holm) = ...)`` of ``row``'s (backend, model, seed) against GPT-4V, or ""."""
    if tests is None:
        return ""
    same = (tests["backend"] == row["backend"]) & (tests["model"] == row["model"])
    if "seed" in tests and "seed" in row:
        same &= tests["seed"] == row["seed"]
    found = tests[same]
    p_column = "p_holm" if "p_holm" in tests else "p"
    label = "McNemar p (Holm)" if p_column == "p_holm" else "McNemar p"
    return f" ({label} = {found[p_column].iloc[0]:.2g})" if len(found) else ""


@headline("Effect of face restoration on CNN accuracy", "tab_03_restored_vs_original")
def restoration_effect(table: pd.DataFrame, read: Read) -> str:
    """Accuracy change of the CNNs on restored faces against the same original faces."""
    if table.empty:
        return "no restored faces were scored"
    parts = [f"{name}: {100 * g['difference'].min():+.1f} to {100 * g['difference'].max():+.1f} points "
             f"across {g['model'].nunique()} CNNs (n = {int(g['n'].iloc[0]):,} paired faces)"
             for name, g in table.groupby("restoration", sort=False)]
    return "; ".join(parts)


@headline("Hard subsets: share of images", "tab_03_hard_subsets")
def hard_share(table: pd.DataFrame, read: Read) -> str:
    """Share of images in each hard subset, with the out-of-fold accuracy of the probe."""
    parts = [f"{in_words(r.dataset)}: {_pct(r.hard_share)} of {int(r.n):,} (probe out-of-fold accuracy "
             f"{_pct(r.probe_oof_accuracy)})" for r in table.itertuples()]
    return "; ".join(parts) or "no hard subset was mined"


@headline("Prompt variants that change the answers (after Holm)", "tab_05_significance_holm")
def prompt_sensitivity(table: pd.DataFrame, read: Read) -> str:
    """How many prompt-variant tests stay significant after Holm's correction."""
    notes = sorted({n for n in table.get("note", pd.Series(dtype=str)).dropna() if n})
    answer = f"{int(table['significant'].sum())} of {len(table)} tests significant after Holm"
    return answer + (f" ({'; '.join(notes)})" if notes else "")


@headline("Consistency check of every stage's outputs", "tab_07_consistency")
def consistency(table: pd.DataFrame, read: Read) -> str:
    """The consistency check of the whole profile (notebook 07): ok, or what failed."""
    bad = table[table["status"] != "ok"]
    if bad.empty:
        return f"passed: all {len(table)} checks ok"
    listed = "; ".join(f"{r.status}: {r.check} ({r.subject})" for r in bad.head(5).itertuples())
    return f"{len(bad)} of {len(table)} checks not ok: {listed}"


HEADLINES: tuple[Callable[[Read], Headline], ...] = (
    best_cnn, best_vlm, gpt4v_vs_cnns, restoration_effect, hard_share, prompt_sensitivity, consistency)


def read_saved_table(path: Path) -> pd.DataFrame:
    """A CSV of ``emolib.tables.save_table``; an empty frame was saved as a blank line."""
    return pd.read_csv(path) if path.read_text().strip() else pd.DataFrame()


def headline_numbers(tables: Path) -> list[Headline]:
    """Every ``HEADLINES`` entry, read from the CSV tables in ``tables``."""
    return [ask(lambda name: read_saved_table(tables / f"{name}.csv")
                if (tables / f"{name}.csv").is_file() else None) for ask in HEADLINES]
