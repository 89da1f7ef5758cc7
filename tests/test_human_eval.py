"""Sampling, annotation files, the ipywidgets annotator (simulated clicks) and sheets."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emolib.config import load_profile
from emolib.human_eval import annotations, inputs, sampling, sheets
from emolib.human_eval.annotator import Annotator
from emolib.predictions import make_predictions


@pytest.fixture(scope="module")
def smoke_sample() -> tuple[Path, pd.DataFrame]:
    """The smoke profile's sample of synthetic errors (written under the test outputs)."""
    profile = load_profile("smoke")
    image_sets = inputs.load_image_sets(profile)
    predictions, _ = inputs.collect_predictions(profile, image_sets)
    sample_dir = sampling.save_sample(profile, predictions, image_sets)
    return sample_dir, predictions


def _predictions(n_per_model: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Random fer7 predictions for several models, most of them wrong."""
    rng = np.random.default_rng(seed)
    frames = []
    for model, n in n_per_model.items():
        frames.append(
            make_predictions(
                image_id=[f"img{i}" for i in range(n)],
                split=["test"] * n,
                dataset=["d"] * n,
                label_set=["fer7"] * n,
                y_true=rng.integers(0, 7, n),
                y_pred=rng.integers(0, 7, n),
                model=[model] * n,
                backend=["x"] * n,
                variant=["v"] * n,
            )
        )
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- sampling
def test_allocate_equal_fills_small_strata_first() -> None:
    sizes = pd.Series({"a": 2, "b": 50, "c": 7})
    assert sampling.allocate(sizes, 20, "equal").to_dict() == {"a": 2, "b": 11, "c": 7}
    assert sampling.allocate(sizes, 500, "equal").to_dict() == sizes.to_dict()
    prop = sampling.allocate(sizes, 20, "proportional")
    assert prop.sum() == 20 and prop.to_dict() == {"a": 1, "b": 17, "c": 2}


def test_sample_is_stratified_and_reproducible() -> None:
    preds = _predictions({"m1": 300, "m2": 60})
    pool = sampling.error_pool(preds)
    sizes = pool.groupby(["model", "error_category"]).size()
    sample = sampling.sample_errors(preds, 60, seed=3)
    counts = sample.groupby(["model", "error_category"]).size()
    assert counts.sum() == 60
    assert counts.to_dict() == sampling.allocate(sizes, 60).to_dict()
    assert (
        sample["weight"] * 0
        + sample["stratum_size"]
        / sample.groupby(["model", "error_category"])["item_id"].transform("size")
        == sample["weight"]
    ).all()
    assert (sample["y_true"] != sample["y_pred"]).all() and sample["item_id"].is_unique
    again = sampling.sample_errors(preds, 60, seed=3)
    pd.testing.assert_frame_equal(sample, again)
    other = sampling.sample_errors(preds, 60, seed=4)
    assert set(other["item_id"]) != set(sample["item_id"])
    assert 0.25 < sample["model_is_a"].mean() < 0.75  # blinding is a per-item coin


def test_adding_a_model_keeps_the_other_models_items() -> None:
    base = sampling.sample_errors(_predictions({"m1": 200}), 500, seed=1)
    more = sampling.sample_errors(_predictions({"m1": 200, "m2": 100}), 500, seed=1)
    assert set(base["item_id"]) == set(more.loc[more["model"] == "m1", "item_id"])


def test_saved_sample_has_one_image_per_item(smoke_sample) -> None:
    sample_dir, predictions = smoke_sample
    sample = sampling.read_sample(sample_dir)
    assert len(sample) == 30  # smoke: human_eval.n_samples
    assert sample["model"].str.startswith("synthetic-").all()
    for item in sample["item_id"]:
        assert sampling.image_path(sample_dir, item).read_bytes()[:4] == b"\x89PNG"
    again = sampling.save_sample(
        load_profile("smoke"), predictions, inputs.load_image_sets(load_profile("smoke"))
    )
    assert again == sample_dir  # reused, same hash


# ----------------------------------------------------------------------------- annotator
def test_clicks_are_saved_at_once_and_mapped_back(smoke_sample, tmp_path: Path) -> None:
    sample_dir, _ = smoke_sample
    ann = Annotator(sample_dir, "alice", tmp_path)
    sample = ann.sample
    assert ann.position == 0 and ann.n_answered == 0
    ann.buttons["A"].click()
    saved = annotations.read_annotations(tmp_path / "alice.csv")
    assert saved["item_id"].tolist() == [sample["item_id"][0]]  # on disk before the next item
    ann.note.value = "looks ambiguous"
    ann.buttons["B"].click()
    ann.shortcuts.value = "3"  # keyboard: both plausible
    saved = annotations.read_annotations(tmp_path / "alice.csv")
    assert saved["choice"].tolist() == ["A", "B", "both"]
    a0, a1 = bool(sample["model_is_a"][0]), bool(sample["model_is_a"][1])
    assert saved["verdict"].tolist() == [
        "model" if a0 else "label",
        "label" if a1 else "model",
        "both",
    ]
    assert saved["note"].tolist() == ["", "looks ambiguous", ""]
    assert ann.shortcuts.value == "" and ann.position == 3
    assert ann.progress.value == 3


def test_shown_answers_are_the_blinded_model_and_label(smoke_sample, tmp_path: Path) -> None:
    sample_dir, _ = smoke_sample
    ann = Annotator(sample_dir, "bob", tmp_path)
    row = ann.sample.iloc[0]
    text = re.sub(r"<[^>]+>", "", ann.answers_html.value)
    first, second = (
        (row["pred_name"], row["true_name"])
        if row["model_is_a"]
        else (row["true_name"], row["pred_name"])
    )
    assert f"A: {first}" in text.replace("\xa0", " ") and f"B: {second}" in text
    assert "model" not in ann.answers_html.value.lower()


def test_new_annotator_resumes_at_first_unanswered(smoke_sample, tmp_path: Path) -> None:
    sample_dir, _ = smoke_sample
    first = Annotator(sample_dir, "carol", tmp_path)
    first.buttons["neither"].click()
    first.skip.click()  # item 1 left open
    first.buttons["A"].click()  # item 2
    assert first.position == 3
    del first  # the kernel dies between items: nothing else is written
    second = Annotator(sample_dir, "carol", tmp_path)
    assert second.n_answered == 2 and second.position == 1
    second.shortcuts.value = "2"
    assert second.position == 3  # then on past the answered item 2
    second.shortcuts.value = "b"
    assert second.position == 2 and "answered: A" in second.status.value


def test_crash_inside_a_save_keeps_the_previous_file(
    smoke_sample, tmp_path: Path, monkeypatch
) -> None:
    sample_dir, _ = smoke_sample
    ann = Annotator(sample_dir, "dave", tmp_path)
    ann.buttons["A"].click()
    before = (tmp_path / "dave.csv").read_bytes()

    def broken_to_csv(self, path, *args, **kwargs):
        Path(path).write_text("item_id,annot")  # half a file, then the process dies
        raise OSError("disk gone")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    ann.buttons["B"].click()
    monkeypatch.undo()
    assert (tmp_path / "dave.csv").read_bytes() == before
    assert ann.position == 1 and ann.n_answered == 1 and "NOT SAVED" in ann.status.value
    assert not list(tmp_path.glob(".*.tmp"))
    assert Annotator(sample_dir, "dave", tmp_path).position == 1


def test_all_answered_disables_choices(smoke_sample, tmp_path: Path) -> None:
    sample_dir, _ = smoke_sample
    ann = Annotator(sample_dir, "erin", tmp_path)
    for _ in range(len(ann)):
        ann.buttons["both"].click()
    assert ann.position == len(ann) and ann.buttons["A"].disabled
    assert len(annotations.read_annotations(tmp_path / "erin.csv")) == len(ann)
    assert Annotator(sample_dir, "erin", tmp_path).current_item is None


# ----------------------------------------------------------------------------- sheets
def test_sheet_is_self_contained_and_blind(smoke_sample, tmp_path: Path) -> None:
    sample_dir, _ = smoke_sample
    csv_path, html_path = sheets.export_sheet(sample_dir, tmp_path)
    sheet = pd.read_csv(csv_path, keep_default_na=False)
    page = html_path.read_text()
    assert list(sheet.columns) == list(sheets.SHEET_COLUMNS) and len(sheet) == 30
    assert page.count("data:image/png;base64,") == 30
    assert "http" not in page and "synthetic-centroid" not in page
    assert "synthetic-centroid" not in csv_path.read_text()


def test_filled_sheet_imports_as_verdicts(smoke_sample, tmp_path: Path) -> None:
    sample_dir, _ = smoke_sample
    sample = sampling.read_sample(sample_dir)
    csv_path, _ = sheets.export_sheet(sample_dir, tmp_path / "sheet")
    sheet = pd.read_csv(csv_path, keep_default_na=False)
    sheet.loc[:3, "choice"] = ["A", "2", "Both", "neither"]
    sheet.loc[1, "note"] = "hm"
    sheet["annotator"] = "frank"
    (tmp_path / "filled").mkdir()
    sheet.to_csv(tmp_path / "filled" / "sheet_frank.csv", index=False)
    written = sheets.import_filled_sheets(tmp_path / "filled", sample_dir, tmp_path / "ann")
    got = annotations.read_annotations(written[0])
    assert written[0].name == "frank.csv" and len(got) == 4
    flags = sample["model_is_a"].to_numpy()[:4]
    assert got["verdict"].tolist() == [
        "model" if flags[0] else "label",
        "label" if flags[1] else "model",
        "both",
        "neither",
    ]
    assert got["note"].tolist()[1] == "hm"
    sheet.loc[0, "choice"] = "maybe"
    sheet.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="maybe"):
        sheets.import_sheet(tmp_path / "bad.csv", sample)
