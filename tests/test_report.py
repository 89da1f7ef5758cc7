"""emolib.run.report / emolib.run.headlines: the browsable report of a profile, built from a few small
fake outputs (executed notebooks, their HTML, captioned figures, tables) in ``tmp_path``, so no
smoke run is needed. Headline numbers are checked against hand-computed strings; the report is
then opened in headless Debian Chromium (Playwright, never a downloaded browser): every page
loads, every image resolves, every local link and anchor exists, and the index's screenshot
(left in the test's tmp folder) shows a real page. Also the house words and colours the
figures use, and the label-preference plot's orientation (longer stem = more preferred)."""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest

from emolib.paths import RESULTS_ENV_VAR, results_dir, tables_dir
from emolib.plots import figure_caption, save_figure
from emolib.run.headlines import headline_numbers
from emolib.run.report import build_report
from emolib.tables import save_table

PROFILE = "demo"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _figure(title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["anger", "joy", "fear"], [3, 5, 2], color=["#0173b2", "#de8f05", "#029e73"])
    ax.set_title(title)
    return fig


def _png_base64(title: str) -> str:
    buffer = io.BytesIO()
    fig = _figure(title)
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _write_notebook(path: Path, heading: str) -> None:
    image = nbformat.v4.new_output("display_data", data={"image/png": _png_base64(heading), "text/plain": "<Figure>"})
    cells = [nbformat.v4.new_markdown_cell(f"# {heading}\nWhat this notebook does."),
             nbformat.v4.new_code_cell("show_figure(...)", outputs=[image], execution_count=1)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)


def _write_tables() -> None:
    save_table(pd.DataFrame({
        "model": ["vgg19_bn", "resnet50", "vgg19_bn"], "restoration": ["none"] * 3,
        "subset": ["fer_private", "fer_private", "fer_private_leakage_free_exact"], "seed": [0, 0, 0],
        "n": [3589, 3589, 3500], "accuracy": [0.612, 0.437, 0.605], "accuracy_lo": [0.596, 0.421, 0.589],
        "accuracy_hi": [0.628, 0.453, 0.621]}), PROFILE, "tab_03_results")
    save_table(pd.DataFrame({"model": ["vgg19_bn", "resnet50"], "seed": [0, 0],
                             "restoration": ["realesrgan-animevideov3-x4"] * 2, "subset": ["fer_eval_1000"] * 2,
                             "n": [1000, 1000], "accuracy_original": [0.60, 0.44], "accuracy_restored": [0.612, 0.436],
                             "difference": [0.012, -0.004]}), PROFILE, "tab_03_restored_vs_original")
    save_table(pd.DataFrame({"dataset": ["fer2013"], "n": [3589], "n_hard": [1077], "hard_share": [0.3],
                             "probe_oof_accuracy": [0.62]}), PROFILE, "tab_03_hard_subsets")
    save_table(pd.DataFrame({"backend": ["recorded", "cnn", "cnn"], "model": ["gpt4v", "vgg19_bn", "resnet50"],
                             "n": [3571] * 3, "accuracy": [0.642, 0.580, 0.410]}), PROFILE, "tab_04_cnn_vs_gpt4v")
    save_table(pd.DataFrame({"backend": ["cnn", "cnn"], "model": ["vgg19_bn", "resnet50"],
                             "versus": ["recorded:gpt4v"] * 2, "p": [0.0001234, 1e-30]}),
               PROFILE, "tab_04_cnn_vs_gpt4v_mcnemar")
    save_table(pd.DataFrame({"check": ["predictions", "training cost", "training cost"],
                             "subject": ["cnn", "cnn: vgg19_bn", "cnn: resnet50"], "status": ["ok", "ok", "FAILED"],
                             "detail": ["84 valid rows", "ok", "no training-cost record"]}),
               PROFILE, "tab_07_consistency")
    save_table(pd.DataFrame(), PROFILE, "tab_05_gpt4v_label_preference")  # an empty table: a blank CSV


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch) -> Path:
    """A profile's outputs: notebook 01 executed and rendered, notebook 03 executed but never
    rendered, three captioned figures, seven tables (one empty)."""
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path / "out"))
    executed = results_dir(PROFILE) / "notebooks"
    executed.mkdir(parents=True)
    _write_notebook(executed / "01_data.ipynb", "01 The data")
    rendered = executed / "01_data.html"
    rendered.write_text(f'<!DOCTYPE html><html><head><title>01</title></head><body><h1 id="top">01 The data</h1>'
                        f'<img src="data:image/png;base64,{_png_base64("01")}"><a href="#top">top</a></body></html>')
    os.utime(rendered, (rendered.stat().st_atime, (executed / "01_data.ipynb").stat().st_mtime + 1))
    _write_notebook(executed / "03_cnn_training.ipynb", "03 CNN baselines")
    for name, caption in (("fig_01_class_distribution", "Faces per class: disgust is rare \u2014 look at its bar."),
                          ("fig_03_learning_curves", "Validation accuracy levels off after a few epochs."),
                          ("fig_05_gpt4v_label_preference_fer_private_gpt4v", "")):
        fig = _figure(name)
        save_figure(fig, PROFILE, name, caption)
        plt.close(fig)
    _write_tables()
    return tmp_path


def test_house_words_colours_and_the_label_preference_plot():
    from emolib.plots import ROLE_COLORS, colors_for, in_words
    from emolib.prompts.figures import plot_ranking_preference

    assert in_words("weighted_f1") == "weighted F1" and in_words("some_column") == "some column"
    assert in_words("fer_eval_1000") == "1,000-face evaluation draw of PrivateTest"
    assert colors_for(["cnn", "positive"]) == [ROLE_COLORS["cnn"], ROLE_COLORS["positive"]]
    with pytest.raises(KeyError, match="no house colour for \\['tpu'\\]"):
        colors_for(["tpu"])
    # three labels, random ranking 2.0: neutral ranked 0.8 above it when wrong, happiness 0.9 below
    pref = pd.DataFrame({"label": ["neutral", "happiness", "anger"], "sentiment": ["neutral", "positive", "negative"],
                         "rank_when_wrong": [1.2, 2.9, 2.1], "rank_chance": [2.0] * 3, "model": "gpt4v",
                         "subset": "fer_private_gpt4v"})
    fig = plot_ranking_preference(pref)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["happiness", "anger", "neutral"]  # preferred on top
    stems = ax.collections[0].get_segments()  # from the chance line (0) to the preference: longer = stronger
    assert [tuple(np.round(seg[:, 0], 6)) for seg in stems] == [(0.0, -0.9), (0.0, -0.1), (0.0, 0.8)]
    assert ax.get_title().startswith("Labels GPT-4V (recorded answers) ranks high when they are wrong")
    plt.close(fig)


def test_headline_numbers_are_read_from_the_tables(outputs):
    answers = {h.source: h for h in headline_numbers(tables_dir(PROFILE))}
    assert answers["tab_03_results"].answer == (
        "vgg19_bn: 61.2% accuracy (n = 3,589, 95% CI 59.6% to 62.8%); without exact Training copies 60.5% "
        "(n = 3,500); others: resnet50 43.7%")
    assert answers["tab_04_cnn_vs_gpt4v"].answer == (
        "GPT-4V 64.2% vs best CNN vgg19_bn 58.0% (McNemar p = 0.00012) on the same 3,571 faces (FER+ plurality label)")
    assert answers["tab_03_restored_vs_original"].answer == (
        "realesrgan-animevideov3-x4: -0.4 to +1.2 points across 2 CNNs (n = 1,000 paired faces)")
    assert answers["tab_03_hard_subsets"].answer == "FER-2013: 30.0% of 3,589 (probe out-of-fold accuracy 62.0%)"
    assert answers["tab_07_consistency"].answer == "1 of 3 checks not ok: FAILED: training cost (cnn: resnet50)"
    missing = answers["tab_04_cnn_vs_vlm"]
    assert not missing.found
    assert missing.answer == "not run in this profile: notebook 04 did not write tab_04_cnn_vs_vlm"
    assert not answers["tab_05_significance_holm"].found


def test_report_gathers_everything_and_replaces_an_older_one(outputs):
    old = results_dir(PROFILE) / "report"
    old.mkdir()
    (old / "stale.html").write_text("from an older build")
    index = build_report(PROFILE)
    report = index.parent
    assert index == old / "index.html" and not (report / "stale.html").exists()
    assert sorted(p.name for p in (report / "notebooks").iterdir()) == ["01_data.html", "03_cnn_training.html"]
    # 01's HTML was newer than its notebook: copied as it is; 03 had none: rendered here, image inline
    assert (report / "notebooks" / "01_data.html").read_text().startswith("<!DOCTYPE html><html><head><title>01")
    assert "data:image/png;base64" in (report / "notebooks" / "03_cnn_training.html").read_text()
    assert len(list((report / "figures").glob("*.png"))) == 3 and len(list((report / "tables").glob("*.csv"))) == 7
    assert figure_caption(report / "figures" / "fig_01_class_distribution.png").startswith("Faces per class")
    gallery = (report / "gallery.html").read_text()
    assert "disgust is rare \u2014 look at its bar." in gallery and "No caption was saved." in gallery
    assert "0 rows x 0 columns" in (report / "tables.html").read_text()
    assert not [p for p in report.parent.iterdir() if p.name.startswith(".report-")]  # no staging left


def _check_page(page, url: str, report: Path) -> list[str]:
    """Open ``url``; assert it loaded and every image decoded; return its local links."""
    page.goto(url, wait_until="load")
    assert page.evaluate("document.readyState") == "complete" and page.title(), url
    images = page.evaluate("[...document.images].map(i => [i.src.slice(0, 80), i.complete && i.naturalWidth > 0])")
    assert all(ok for _, ok in images), f"{url}: broken images {[src for src, ok in images if not ok]}"
    links = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    own_page = Path(unquote(urlparse(url).path)).parent in (report, report / "tables")
    external = [link for link in links if not link.startswith(("file://", "data:"))]
    assert not (own_page and external), f"{url} links outside the report: {external}"
    return [link for link in links if link.startswith("file://")]


def _check_link(link: str) -> Path:
    """A local link: its file exists and, with a fragment, the file has that id."""
    parsed = urlparse(link)
    target = Path(unquote(parsed.path))
    assert target.is_file(), f"broken link {link}"
    if parsed.fragment:
        assert re.search(rf'id="{re.escape(parsed.fragment)}"', target.read_text()), f"no anchor in {link}"
    return target


@pytest.mark.timeout(60)
@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="apt-get install -y chromium")
def test_report_opens_in_chromium_with_every_image_and_link(outputs, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    report = build_report(PROFILE).parent
    failed: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            # offline: nbconvert's pages ask CDNs for require.js/MathJax; refuse at once, never wait
            context.route(re.compile(r"^https?://"), lambda route: route.abort())
            context.on("requestfailed", lambda r: failed.append(r.url) if r.url.startswith("file://") else None)
            page = context.new_page()
            page.set_default_timeout(15_000)
            todo, seen = [(report / "index.html").as_uri()], set()
            while todo:
                url = todo.pop()
                seen.add(url)
                for link in _check_page(page, url, report):
                    target = _check_link(link)
                    if target.suffix == ".html" and target.as_uri() not in seen | set(todo):
                        todo.append(target.as_uri())
            page.goto((report / "index.html").as_uri(), wait_until="load")
            summary = page.locator("table").first.inner_text()
            page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
        finally:
            browser.close()
    assert not failed, failed
    pages = {Path(urlparse(u).path).relative_to(report).as_posix() for u in seen}
    tables = {f"tables/{p.stem}.html" for p in (report / "tables").glob("*.csv")}
    assert {"index.html", "gallery.html", "tables.html", "notebooks/01_data.html",
            "notebooks/03_cnn_training.html"} | tables <= pages
    assert "vgg19_bn: 61.2% accuracy" in summary and "not run in this profile" in summary
    shot = np.asarray(Image.open(tmp_path / "index.png").convert("RGB"))
    assert shot.shape[0] >= 600 and shot.shape[1] >= 1000
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) >= 50  # text in several colours, antialiased
    assert (shot.min(axis=2) < 128).mean() > 0.005  # dark text covers a visible share of the page


def _overlaps(a, b) -> bool:
    """Two display-space boxes share area (touching edges do not count)."""
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


@pytest.mark.parametrize(("shapes", "titles", "ncols"), [
    ([(48, 48)] * 16, ["train\nfear (exact)", "public_test\nfear (exact)"] * 4
     + ["private_test\nangry (pHash d=2)", "train\nangry (pHash d=2)"] * 4, 8),  # fig_01_duplicate_pairs
    ([(96, 96)] * 14, ["realesrgan-animevideov3-x4 (96 px)\nangry"] + ["disgust"] * 6
     + ["realesrgan-x4 (96 px)\nangry"] + ["disgust"] * 6, 7),  # fig_02_restoration_grid
    ([(60, 120), (140, 120), (120, 60)] * 4, ["anger"] * 6 + ["joy"] * 6, 6),  # portrait and wide Emotion6 images
])
def test_image_grid_titles_never_cover_another_image_or_title(shapes, titles, ncols):
    """The old grid gave a row 1.15 x its width: second-row titles ran into the images above."""
    from emolib.plots import plot_image_grid

    images = [np.full(shape, 128, dtype=np.uint8) for shape in shapes]
    fig = plot_image_grid(images, titles, ncols=ncols, size=1.7, suptitle="duplicates across train and test")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    images_at = [ax.get_window_extent(renderer) for ax in fig.axes]  # after the aspect is applied
    titles_at = [ax.title.get_window_extent(renderer) for ax in fig.axes]
    for i, title in enumerate(titles_at):
        assert not any(_overlaps(title, box) for box in images_at), f"title {i} covers an image"
        assert not any(_overlaps(title, other) for j, other in enumerate(titles_at) if j != i), f"title {i}"
    assert not any(_overlaps(fig._suptitle.get_window_extent(renderer), t) for t in titles_at)
    plt.close(fig)


def test_not_measured_box_says_what_why_and_how():
    from emolib.plots import fetch_how, not_measured, unavailable_why

    status = pd.DataFrame({"model": ["Qwen/Qwen2-VL-2B-Instruct", "llava-hf/llava-1.5-7b-hf", "gpt4v"],
                           "status": ["unavailable", "unavailable", "available"]})
    box = not_measured("position bias", unavailable_why(status.iloc[:2], "generative VLM"), fetch_how("quick"))
    assert box.data == (
        "> **Not measured here: position bias.** None of the 2 generative VLMs asked for is available on this "
        "machine (`Qwen/Qwen2-VL-2B-Instruct`, `llava-hf/llava-1.5-7b-hf`; each one's reason is in the status table "
        "above).\n>\n> **To enable it:** List the model in the profile's `vlm` model lists if it is not there; "
        "`emolib fetch quick` downloads the missing weights (`./run_all.sh quick --fetch` does it before a run), and "
        "a model served elsewhere goes into `vlm.endpoints`. Then rerun this notebook.")
    assert unavailable_why(status).startswith("2 of the 3 models asked for are unavailable on this machine")
    assert unavailable_why(status.iloc[2:]) == "every model asked for (1) is available, but none gave a result here"
    # notebook 04's seed-study claims name models a small profile does not list
    assert unavailable_why(status, models=["ViT-L-14/openai", "llava-hf/llava-1.5-7b-hf"]) == (
        "none of the 2 models asked for is available on this machine (`ViT-L-14/openai` (not in this profile), "
        "`llava-hf/llava-1.5-7b-hf`; each one's reason is in the status table above)")
    assert unavailable_why(status.iloc[:0]) == "this profile lists no model"
    # one repo asked in-process and through an endpoint: two models, each named with its backend
    twice = pd.DataFrame({"backend": ["hf", "openai", "recorded"], "model": ["org/vlm", "org/vlm", "gpt4v"],
                          "status": ["available", "unavailable", "available"]})
    assert unavailable_why(twice) == ("1 of the 3 models asked for are unavailable on this machine "
                                      "(`openai:org/vlm`; each one's reason is in the status table above)")


def test_legends_sit_outside_the_data():
    """fig_01_emotion6_valence_arousal and fig_04_cnn_vs_gpt4v had their legends over points and bars."""
    from emolib.data.figures import plot_valence_arousal
    from emolib.vlm.figures import plot_versus

    rng = np.random.default_rng(0)
    names = ["anger", "disgust", "fear", "joy", "sadness", "surprise"]
    evoked = pd.DataFrame({"label_name": np.repeat(names, 50), "valence": rng.uniform(1, 9, 300),
                           "arousal": rng.uniform(2, 8, 300), "entropy_bits": rng.uniform(0.3, 2.7, 300)})
    scores = pd.DataFrame({"backend": ["cnn", "recorded"], "model": ["vgg19_bn", "gpt4v"], "accuracy": [0.645, 0.64],
                           "accuracy_lo": [0.63, 0.62], "accuracy_hi": [0.66, 0.66], "soft_accuracy": [0.59, 0.6]})
    who = list(zip(scores.backend, scores.model, strict=True))
    per_class = pd.DataFrame([{"class": c, "backend": b, "model": m, "f1": 0.95}
                              for c in ("neutral", "contempt") for b, m in who])
    for fig in (plot_valence_arousal(evoked), plot_versus(scores, per_class)):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends
        for legend in legends:
            assert not any(_overlaps(legend.get_window_extent(renderer), ax.get_window_extent(renderer))
                           for ax in fig.axes)
        plt.close(fig)


def test_gpt4v_headline_names_the_seed_its_own_holm_p_and_the_ensemble_of_that_seed():
    from emolib.run.headlines import gpt4v_vs_cnns

    scores = pd.DataFrame({"backend": ["recorded", "cnn", "cnn", "cnn", "cnn_ensemble", "cnn_ensemble"],
                           "model": ["gpt4v", "vgg19_bn", "vgg19_bn", "resnet50", "soft_vote", "soft_vote"],
                           "seed": [0, 0, 1, 0, 0, 1], "accuracy": [0.642, 0.60, 0.65, 0.50, 0.61, 0.663],
                           "n": [3571] * 6})
    tests = pd.DataFrame({"backend": ["cnn"] * 3 + ["cnn_ensemble"] * 2,
                          "model": ["vgg19_bn", "vgg19_bn", "resnet50", "soft_vote", "soft_vote"],
                          "seed": [0, 1, 0, 0, 1], "p": [0.01, 0.2, 0.001, 0.3, 0.04],
                          "p_holm": [0.02, 0.2, 0.003, 0.3, 0.12]})
    tables = {"tab_04_cnn_vs_gpt4v": scores, "tab_04_cnn_vs_gpt4v_mcnemar": tests}
    assert gpt4v_vs_cnns(tables.get).answer == (
        "GPT-4V 64.2% vs best CNN vgg19_bn (seed 1 of 2) 65.0% (McNemar p (Holm) = 0.2) on the same 3,571 faces "
        "(FER+ plurality label); the CNNs' soft vote 66.3% (McNemar p (Holm) = 0.12)")
    without = {k: v[v["backend"] != "cnn_ensemble"] for k, v in tables.items()}
    assert gpt4v_vs_cnns(without.get).answer.endswith("65.0% (McNemar p (Holm) = 0.2) on the same 3,571 faces "
                                                      "(FER+ plurality label)")
