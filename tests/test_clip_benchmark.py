"""LAION CLIP_benchmark's FER-2013 protocol (issue 26): the ``fer_kaggle_test`` subset, the
protocol's prompts, its rows in the VLM stage, and the table of published numbers beside ours."""

from __future__ import annotations

import zipfile
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score
from smoke_stages import run_data

from emolib import catalog
from emolib.config import ConfigError, load_profile
from emolib.data.stage import define_subsets
from emolib.data.synthetic import make_synthetic_faces
from emolib.labels import get_label_set
from emolib.paths import RESULTS_ENV_VAR
from emolib.predictions import make_predictions, score_matrix
from emolib.recorder import COST_FILE, CostRecorder, read_cost_records
from emolib.vlm.backends import load_backend
from emolib.vlm.cache import ResponseCache
from emolib.vlm.published import (
    NOT_MEASURED,
    PUBLISHED,
    clip_benchmark_table,
    clip_benchmark_texts,
    score_clip_benchmark,
)
from emolib.vlm.scores import head_to_head
from emolib.vlm.stage import run_zero_shot
from emolib.vlm.types import CLIP_BENCHMARK_PROMPT, DEFAULT_PROMPT, RANDOM_FLAG

# LAION CLIP_benchmark, clip_benchmark/datasets/en_zeroshot_classification_templates.json and
# en_classnames.json, "fer2013": verbatim
BENCHMARK_TEMPLATES = ["a photo of a {c} looking face.", "a photo of a face showing the emotion: {c}.",
                       "a photo of a face looking {c}.", "a face that looks {c}.", "they look {c}.",
                       "look at how {c} they are."]
BENCHMARK_CLASSES = ["angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]
RANDOM_CLIP = "ViT-S-32/random"
UNAVAILABLE = "weights not on this machine: run `emolib fetch smoke`"


# ----------------------------------------------------------------------------- the subset
@pytest.mark.data
def test_kaggle_test_subset_is_every_public_and_private_test_face(fer2013_real, data_root, tmp_path, monkeypatch):
    """On the real data ``fer_kaggle_test`` holds the 7,178 faces of the zip's ``test/`` folder,
    which are PublicTest and PrivateTest."""
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("quick", check_machine=False)
    faces = fer2013_real
    leakage = pd.DataFrame({"image_id": faces.ids, "split": faces.splits, "keep_exact": True, "keep_near": True})
    sizes = define_subsets(profile, faces, {}, leakage).set_index("subset")["n"]
    assert sizes[catalog.FER_KAGGLE_TEST] == 7178
    ids = catalog.subset_ids(profile, catalog.FER_KAGGLE_TEST)
    with zipfile.ZipFile(data_root / "fer2013" / "fer2013.zip") as archive:  # the folder CLIP_benchmark reads
        folder = {n.rsplit("/", 1)[1].removesuffix(".jpg") for n in archive.namelist()
                  if n.startswith("test/") and n.endswith(".jpg")}
    assert len(ids) == len(set(ids)) == len(folder) == 7178 and set(ids) == folder
    splits = pd.Series(faces.splits, index=faces.ids)
    assert splits[ids].value_counts().to_dict() == {"public_test": 3589, "private_test": 3589}
    assert set(ids) == set(faces.split("public_test").ids) | set(catalog.subset_ids(profile, "fer_private"))


# ----------------------------------------------------------------------------- the prompts
def test_protocol_prompts_are_clip_benchmarks_six_templates_times_seven_class_names(tmp_path) -> None:
    """The strings the text encoder reads when a backend scores by the protocol are exactly
    CLIP_benchmark's: six templates for each of its seven class names, whatever the profile's
    own prompts are."""
    fer7 = get_label_set("fer7")
    expected = {t.replace("{c}", c) for t in BENCHMARK_TEMPLATES for c in BENCHMARK_CLASSES}
    assert len(expected) == 42 and "they look disgusted." in expected
    assert len(clip_benchmark_texts(fer7)) == 42 and set(clip_benchmark_texts(fer7)) == expected

    profile = load_profile("smoke", **{"vlm.clip_prompts": {"fer7": "single_face"}})  # one template of its own
    backend = load_backend(f"clip:{RANDOM_CLIP}", profile.vlm, cache=ResponseCache(tmp_path / "cache.sqlite"))
    read: list[str] = []
    tokenize = backend.tokenizer
    backend.tokenizer = lambda texts: read.extend(texts) or tokenize(texts)
    faces = replace(make_synthetic_faces(1, seed=0).split("private_test"), subset_name=catalog.FER_KAGGLE_TEST)
    frame = score_clip_benchmark(backend, faces, CostRecorder(tmp_path, "vlm"))
    assert len(read) == 42 and set(read) == expected
    assert set(frame["prompt"]) == {CLIP_BENCHMARK_PROMPT} and frame["image_id"].tolist() == faces.ids.tolist()


# ----------------------------------------------------------------------------- the stage
@pytest.mark.slow
def test_stage_scores_the_kaggle_test_faces_by_the_protocol_and_the_table_shows_no_number(
        tmp_path, monkeypatch) -> None:
    """Smoke's random CLIP (``vlm.clip_benchmark_models``): rows with prompt ``clip_benchmark``
    for exactly the ids of ``fer_kaggle_test`` (PublicTest + PrivateTest), kept apart from the
    study's own rows; a rerun reads them back; the table says random weights, with no number."""
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke", **{"vlm.hf_models": []})
    faces, _ = run_data(profile)
    result = run_zero_shot(profile, {})
    predictions = result.predictions
    rows = predictions[predictions["prompt"] == CLIP_BENCHMARK_PROMPT]
    assert set(zip(rows["backend"], rows["model"], rows["subset"], strict=True)) == {
        ("clip", RANDOM_CLIP, catalog.FER_KAGGLE_TEST)}
    kaggle = set(faces.ids[np.isin(faces.splits, ["public_test", "private_test"])])
    assert len(kaggle) == 2 * 84 and set(catalog.subset_ids(profile, catalog.FER_KAGGLE_TEST)) == kaggle
    assert catalog.id_problem(rows["image_id"], kaggle) == ""
    assert set(predictions.loc[predictions["subset"] == catalog.FER_KAGGLE_TEST, "prompt"]) == {CLIP_BENCHMARK_PROMPT}
    # the same words and templates as the study's own for fer7: on the shared faces, the same scores
    own = predictions[(predictions["prompt"] == DEFAULT_PROMPT) & (predictions["backend"] == "clip")
                      & (predictions["subset"] == catalog.fer_eval_name(profile))
                      & (predictions["restoration"] == "none")].set_index("image_id")
    shared = rows.set_index("image_id").loc[own.index]
    np.testing.assert_allclose(score_matrix(shared), score_matrix(own), atol=1e-6)
    infer = [r for r in read_cost_records(result.store.dir / COST_FILE)
             if r.get("phase") == "infer" and (r.get("tags") or {}).get("prompt") == CLIP_BENCHMARK_PROMPT]
    assert [(r["items"], r["extra"]["cache_hits"]) for r in infer] == [(168, 42)]  # fer_eval_42's answers reused
    # the protocol's rows are never restricted to the study's subsets
    assert CLIP_BENCHMARK_PROMPT not in set(head_to_head(predictions, profile)["prompt"])
    pd.testing.assert_frame_equal(catalog.on_subset(predictions, profile, catalog.FER_KAGGLE_TEST),
                                  rows.reset_index(drop=True), check_dtype=False)

    again = run_zero_shot(profile, {})  # complete: read back, not scored again
    pd.testing.assert_frame_equal(again.predictions, predictions)
    assert not any("changed" in n for n in again.notes)

    table = clip_benchmark_table(predictions, result.status, profile).set_index("model")
    assert list(table.index) == [p["model"] for p in PUBLISHED] + [RANDOM_CLIP]
    assert table.loc[RANDOM_CLIP, "ours_note"] == f"{NOT_MEASURED}: {RANDOM_FLAG}"
    ours = ["ours_acc1", "ours_mean_per_class_recall", "ours_n", "difference", "ours_own_protocol", "own_n"]
    assert table[ours].isna().all().all()  # not one number of ours: nothing here has real weights
    assert set(table.loc[[p["model"] for p in PUBLISHED], "ours_note"]) == {
        f"{NOT_MEASURED}: not in this profile (vlm.clip_models)"}


def test_stage_without_the_subset_stops_before_any_model(tmp_path, monkeypatch) -> None:
    """Subsets stored before ``fer_kaggle_test`` existed: an error naming notebook 01, at once."""
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke", **{"vlm.hf_models": []})
    catalog.write_subsets(profile, {"fer_private": ("synthetic_faces", np.array(["a"]))})
    with pytest.raises(KeyError, match=r"no subset 'fer_kaggle_test' .* run notebooks/01_data.ipynb"):
        run_zero_shot(profile, {})
    assert not catalog.vlm_store(profile).path(catalog.PREDICTIONS_FILE).is_file()


# ----------------------------------------------------------------------------- the table
B32, L14, LAION, B16 = "ViT-B-32/openai", "ViT-L-14/openai", "ViT-L-14/laion2b_s32b_b82k", "ViT-B-16/openai"


def _rows(model: str, y_true: list[int], y_pred: list[int], subset: str, prompt: str) -> pd.DataFrame:
    n = len(y_true)
    return make_predictions(image_id=[f"{subset}_{i}" for i in range(n)], split="private_test", dataset="fer2013",
                            label_set="fer7", y_true=y_true, y_pred=y_pred, model=model, backend="clip",
                            restoration="none", prompt=prompt, seed=0, subset=subset)


def test_table_puts_ours_beside_the_published_numbers_or_says_why_not() -> None:
    profile = load_profile("smoke", **{"vlm.clip_models": [B32, L14, LAION, B16, RANDOM_CLIP],
                                       "vlm.clip_benchmark_models": [B32, L14, B16, RANDOM_CLIP]})
    own_subset = catalog.fer_eval_name(profile)
    y_true = [0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 5, 6, 6, 6]
    y_b32 = [0, 3, 3, 1, 2, 0, 3, 3, 3, 6, 4, 2, 5, 6, 6, 0]  # 10 of 16 right
    y_b16 = [0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]  # 7 of 16 right
    predictions = pd.concat([
        _rows(B32, y_true, y_b32, catalog.FER_KAGGLE_TEST, CLIP_BENCHMARK_PROMPT),
        _rows(B16, y_true, y_b16, catalog.FER_KAGGLE_TEST, CLIP_BENCHMARK_PROMPT),
        _rows(RANDOM_CLIP, y_true, y_true, catalog.FER_KAGGLE_TEST, CLIP_BENCHMARK_PROMPT),  # "perfect": still hidden
        _rows(B32, [0, 1, 2, 3], [0, 1, 5, 5], own_subset, DEFAULT_PROMPT),  # the study's own protocol: 2 of 4
        _rows(LAION, [0, 1, 2, 3, 4], [0, 1, 2, 0, 0], own_subset, DEFAULT_PROMPT),  # 3 of 5
        _rows(RANDOM_CLIP, [0, 1], [0, 1], own_subset, DEFAULT_PROMPT),
    ], ignore_index=True)
    status = pd.DataFrame([
        {"backend": "clip", "model": B32, "status": "available", "reason": "", "note": ""},
        {"backend": "clip", "model": L14, "status": "unavailable", "reason": UNAVAILABLE, "note": ""},
        {"backend": "clip", "model": LAION, "status": "available", "reason": "", "note": ""},
        {"backend": "clip", "model": B16, "status": "available", "reason": "", "note": ""},
        {"backend": "clip", "model": RANDOM_CLIP, "status": "available", "reason": "", "note": RANDOM_FLAG}])
    table = clip_benchmark_table(predictions, status, profile).set_index("model")

    siglip = "transformers:google/siglip-so400m-patch14-384"
    assert list(table.index) == [B32, L14, LAION, siglip, B16, RANDOM_CLIP]
    assert table.loc[[B32, L14, LAION, siglip], "published_acc1"].tolist() == [0.4094, 0.4896, 0.5370, 0.5421]
    assert table.loc[[B32, L14, LAION], "source"].eq("CLIP_benchmark benchmark/benchmark.csv").all()
    assert table.loc[siglip, "source"] == "MTEB FER2013ZeroShot"

    b32 = table.loc[B32]
    assert b32["ours_acc1"] == pytest.approx(10 / 16) and b32["ours_n"] == 16
    assert b32["ours_mean_per_class_recall"] == pytest.approx(balanced_accuracy_score(y_true, y_b32))
    by_hand = np.mean([1 / 3, 1, 1 / 2, 3 / 4, 1 / 2, 1, 2 / 3])  # recall of classes 0..6
    assert b32["ours_mean_per_class_recall"] == pytest.approx(by_hand)
    assert b32["difference"] == pytest.approx(10 / 16 - 0.4094)
    assert b32["ours_own_protocol"] == pytest.approx(0.5) and b32["own_n"] == 4 and b32["own_subset"] == own_subset
    assert b32["ours_note"] == "n=16, not the 7,178 faces of the published figure"

    assert table.loc[L14, "ours_note"] == f"{NOT_MEASURED}: unavailable: {UNAVAILABLE}"
    assert table.loc[LAION, "ours_note"] == f"{NOT_MEASURED}: not in vlm.clip_benchmark_models"
    assert table.loc[LAION, "ours_own_protocol"] == pytest.approx(0.6) and table.loc[LAION, "own_n"] == 5
    assert table.loc[siglip, "ours_note"] == f"{NOT_MEASURED}: not in this profile (vlm.clip_models)"
    for model in (L14, LAION, siglip):
        assert table.loc[model, ["ours_acc1", "ours_mean_per_class_recall", "ours_n", "difference"]].isna().all()

    b16 = table.loc[B16]  # a model of the profile without a published figure: ours, no difference
    assert b16["ours_acc1"] == pytest.approx(7 / 16)
    assert b16["ours_mean_per_class_recall"] == pytest.approx(balanced_accuracy_score(y_true, y_b16))
    assert pd.isna(b16["published_acc1"]) and pd.isna(b16["difference"]) and b16["source"] == ""
    random = table.loc[RANDOM_CLIP]
    assert random["ours_note"] == f"{NOT_MEASURED}: {RANDOM_FLAG}"
    assert random[["ours_acc1", "ours_mean_per_class_recall", "ours_n", "difference", "ours_own_protocol",
                   "own_n"]].isna().all()

    # a listed, available model whose rows are not in the table handed in says so
    rows = clip_benchmark_table(predictions[predictions["model"] != B16], status, profile).set_index("model")
    assert rows.loc[B16, "ours_note"] == (f"{NOT_MEASURED}: no clip_benchmark rows in these predictions: run "
                                          "notebooks/04_vlm_zero_shot.ipynb for this profile again")


# ----------------------------------------------------------------------------- the setting
def test_clip_benchmark_models_must_be_clip_models_of_the_profile() -> None:
    with pytest.raises(ConfigError, match=r"smoke.yaml: vlm.clip_benchmark_models: \['ViT-B-32/openai'\] not in "
                                          r"vlm.clip_models \['ViT-S-32/random'\]; add them there or remove them here"):
        load_profile("smoke", **{"vlm.clip_benchmark_models": [RANDOM_CLIP, B32]})
    with pytest.raises(ConfigError, match=r"vlm.clip_benchmark_models: \['ViT-S-32/random'\] named more than once"):
        load_profile("smoke", **{"vlm.clip_benchmark_models": [RANDOM_CLIP, RANDOM_CLIP]})
    # empty by default and then out of the config hash: profiles without it keep their stage folders
    plain = load_profile("rehearsal", check_machine=False)
    assert plain.vlm.clip_benchmark_models == () and "clip_benchmark_models" not in catalog.vlm_store(plain).config[0]
