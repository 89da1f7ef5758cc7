"""What human evaluation reads (the CNN and VLM stages' predictions, through the catalog),
sampling, annotation files, the ipywidgets annotator (simulated clicks) and sheets."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from smoke_stages import run_upstream

from emolib import catalog
from emolib.config import load_profile
from emolib.human_eval import annotations, sampling, sheets, stage
from emolib.human_eval.annotator import Annotator
from emolib.paths import RESULTS_ENV_VAR
from emolib.predictions import make_predictions


@pytest.fixture(scope="module")
def smoke_sources() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Notebook 07's inputs on smoke, after notebooks 01-04 ran (under the test outputs):
    the predictions, the sources table and the image sets."""
    profile = load_profile("smoke")
    image_sets = run_upstream(profile)
    predictions, sources = stage.collect_predictions(profile, image_sets)
    return predictions, sources, image_sets


@pytest.fixture(scope="module")
def smoke_sample(smoke_sources) -> tuple[Path, pd.DataFrame]:
    """The smoke profile's sample of the stand-in models' errors, drawn as notebook 07 does."""
    predictions, _, image_sets = smoke_sources
    predictions = stage.with_images(predictions, image_sets)
    sample_dir = sampling.save_sample(load_profile("smoke"), predictions, image_sets)
    return sample_dir, predictions


def _predictions(n_per_model: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Random fer7 predictions for several models, most of them wrong."""
    rng = np.random.default_rng(seed)
    frames = []
    for model, n in n_per_model.items():
        frames.append(
            make_predictions(
                image_id=[f"img{i}" for i in range(n)],
                split="test",
                dataset="d",
                label_set="fer7",
                y_true=rng.integers(0, 7, n),
                y_pred=rng.integers(0, 7, n),
                model=model,
                backend="x",
                restoration="none",
                prompt="default",
                seed=0,
                subset="d_all",
            )
        )
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- sources
def test_sources_are_the_cnn_and_vlm_stages_on_original_faces(smoke_sources) -> None:
    """Notebook 07 studies every model that notebooks 03 and 04 ran: the three CNNs and their soft
    vote, the CLIP stand-in and its probe, and the generative stand-in, each on its own subset,
    every row; CLIP_benchmark's protocol rows (the CLIP model asked again on the Kaggle test
    faces, for the published comparison) are not a model of their own."""
    predictions, sources, _ = smoke_sources
    profile = load_profile("smoke")
    found = sources[sources["status"] == "found"]
    assert (found["status"] == sources["status"]).all()  # nothing missing, nothing unsampleable
    assert set(zip(found["backend"], found["model"], strict=True)) == {
        ("cnn", "resnet50"), ("cnn", "efficientnet_b0"), ("cnn", "vgg19_bn"), ("cnn_ensemble", "soft_vote"),
        ("clip", "ViT-S-32/random"), ("clip_probe", "ViT-S-32/random"), ("hf", "tiny-random-llava")}
    upstream = pd.concat([catalog.read_stage_predictions(profile, s) for s in ("cnn", "vlm")], ignore_index=True)
    assert (upstream["prompt"] == "clip_benchmark").any() and not (predictions["prompt"] == "clip_benchmark").any()
    original = upstream[(upstream["restoration"] == "none") & (upstream["prompt"] != "clip_benchmark")]
    expected = original.groupby(["backend", "model", "dataset", "subset"]).size()
    assert found.set_index(["backend", "model", "dataset", "subset"])["rows"].sort_index().to_dict() == \
        expected.sort_index().to_dict()
    assert len(predictions) == len(original) and set(predictions["restoration"]) == {"none"}
    assert set(found.loc[found["backend"].isin(["cnn", "cnn_ensemble"]), "subset"]) == {"fer_private"}
    assert set(found.loc[found["backend"] == "cnn_ensemble", "stage"]) == {"cnn"}
    assert set(found.loc[found["backend"] == "hf", "subset"]) == {
        catalog.fer_eval_name(profile), catalog.emotion6_eval_name(profile)}


def test_a_stage_not_run_is_a_visible_row(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))  # nothing has run here
    predictions, sources = stage.collect_predictions(load_profile("smoke"), {})
    assert predictions.empty
    assert sources["stage"].tolist() == ["cnn", "vlm"]
    assert sources["status"].tolist() == ["not run: run notebooks/03_cnn_training.ipynb",
                                          "not run: run notebooks/04_vlm_zero_shot.ipynb"]


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
    sizes = pool.groupby(sampling.STRATUM).size()
    sample = sampling.sample_errors(preds, 60, seed=3)
    counts = sample.groupby(sampling.STRATUM).size()
    assert counts.sum() == 60
    assert counts.to_dict() == sampling.allocate(sizes, 60).to_dict()
    assert (
        sample["weight"] * 0
        + sample["stratum_size"]
        / sample.groupby(sampling.STRATUM)["item_id"].transform("size")
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
    assert (sample["y_pred"] != sample["y_true"]).all() and sample["item_id"].is_unique
    # equal allocation: every (backend, model, category) stratum with errors gets an item
    strata = sampling.error_pool(predictions).groupby(sampling.STRATUM).size()
    assert len(strata) <= 30 and set(sample.groupby(sampling.STRATUM).size().index) == set(strata.index)
    assert {"cnn", "clip", "clip_probe", "hf"} <= set(sample["backend"])
    for item in sample["item_id"]:
        assert sampling.image_path(sample_dir, item).read_bytes()[:4] == b"\x89PNG"
    unmatched = sampling.read_unmatched(sample_dir)  # every smoke image is loaded: none left out
    assert unmatched.empty and list(unmatched.columns) == sampling.UNMATCHED_COLUMNS
    again = sampling.save_sample(
        load_profile("smoke"), predictions, stage.load_image_sets(load_profile("smoke"))
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


def test_an_older_file_with_its_answer_time_named_seconds_reads_as_wall_s(tmp_path: Path) -> None:
    old = tmp_path / "bob.csv"
    old.write_text("item_id,annotator,choice,verdict,note,answered_at,seconds,model_is_a\n"
                   "fer-7,bob,A,model,,2026-11-30T10:00:00+00:00,4.25,True\n")
    saved = annotations.read_annotations(old)
    assert list(saved.columns) == list(annotations.COLUMNS)
    assert saved["wall_s"].tolist() == [4.25] and saved["verdict"].tolist() == ["model"]
    old.write_text("item_id,annotator,choice,verdict,note,answered_at,model_is_a\nfer-7,bob,A,model,,x,True\n")
    with pytest.raises(ValueError, match=r"bob\.csv: missing column\(s\) \['wall_s'\]"):
        annotations.read_annotations(old)


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
    assert "http" not in page
    for model in sampling.read_sample(sample_dir)["model"].unique():  # blind: no model is named
        assert model not in page and model not in csv_path.read_text()


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
