"""The VLM stage of the smoke profile end to end (after notebooks 01 and 02's stages, as
``smoke_stages`` runs them), its determinism, and the notebook-04 tables."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from smoke_stages import run_data, run_vlm

from emolib import catalog
from emolib.config import load_profile
from emolib.paths import RESULTS_ENV_VAR
from emolib.predictions import NO_PROMPT, make_predictions, read_predictions
from emolib.vlm.scores import head_to_head, parse_status_table, score_table, seed_claims_table
from emolib.vlm.stage import run_zero_shot
from emolib.vlm.types import CLIP_BENCHMARK_PROMPT, DEFAULT_PROMPT, RANDOM_FLAG


@pytest.mark.slow
def test_smoke_stage_runs_caches_and_flags_random_weights() -> None:
    profile = load_profile("smoke")
    result = run_vlm(profile)
    assert list(result.status["status"]) == ["available", "available"]
    assert set(result.status["note"]) == {RANDOM_FLAG}
    predictions = result.predictions
    assert set(predictions["backend"]) == {"clip", "clip_probe", "hf"}
    path = catalog.predictions_path(profile, "vlm")
    assert path.is_file() and path.parent == result.store.dir
    pd.testing.assert_frame_equal(catalog.read_stage_predictions(profile, "vlm"), read_predictions(path))

    # every configuration scored exactly the ids of its named subset (notebook 01's draws)
    fer_eval, e6_eval = catalog.fer_eval_name(profile), catalog.emotion6_eval_name(profile)
    for _, group in predictions.groupby(["backend", "model", "restoration", "prompt", "subset"]):
        subset = group["subset"].iloc[0]
        assert subset in (fer_eval, e6_eval, catalog.FER_KAGGLE_TEST)
        assert catalog.id_problem(group["image_id"], set(catalog.subset_ids(profile, subset))) == ""
    # restored faces (smoke restores with bicubic, notebook 02) are the same ids as the originals
    restored = predictions[predictions["restoration"] != "none"]
    assert set(restored["restoration"]) == {"bicubic-64"} and set(restored["subset"]) == {fer_eval}
    assert set(predictions.loc[predictions.backend == "clip_probe", "restoration"]) == {"none"}
    # one column per fact: the stage's prompt, the probe has none, seed 0 for the models
    benchmark = predictions["subset"] == catalog.FER_KAGGLE_TEST  # smoke: vlm.clip_benchmark_models
    assert set(predictions.loc[benchmark, "prompt"]) == {CLIP_BENCHMARK_PROMPT}
    assert set(predictions.loc[benchmark, "backend"]) == {"clip"}
    assert set(predictions.loc[~benchmark & (predictions.backend != "clip_probe"), "prompt"]) == {DEFAULT_PROMPT}
    assert set(predictions.loc[predictions.backend == "clip_probe", "prompt"]) == {NO_PROMPT}
    assert set(predictions["dataset"]) == {"synthetic_faces", "synthetic_evoked"}

    scores = score_table(predictions, n_boot=50)
    assert set(scores["note"]) == {RANDOM_FLAG}
    assert (scores["n"] == scores["n"].astype(int)).all()
    assert set(scores["n"]) == {42, 24, 168}  # smoke: data.eval_size, data.emotion6_eval_size, 2 x 84 test faces
    parse = parse_status_table(predictions)
    keys = ["backend", "model", "dataset", "restoration", "prompt", "subset"]
    assert (parse["n"] == parse.drop(columns=[*keys, "n", "share_no_answer"]).sum(axis=1)).all()
    claims = seed_claims_table(scores, result.status)
    assert claims["ours"].str.startswith("unavailable").all()  # smoke has no real CLIP/Phi
    both = head_to_head(predictions, profile)
    assert set(both["label_set"]) == {"fer7"} and set(both["restoration"]) == {"none"}
    assert set(both["subset"]) == {fer_eval} and len(both) == 42 * 3  # clip, probe, hf: no protocol rows
    again = run_zero_shot(profile, {})  # complete: read back, nothing recomputed
    pd.testing.assert_frame_equal(again.predictions, result.predictions)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


@pytest.mark.slow
def test_two_fresh_smoke_runs_give_identical_predictions(tmp_path, monkeypatch) -> None:
    """Same profile and seed, same machine, nothing cached: the same predictions table byte
    for byte (wall time apart). The CLIP stand-in's and the tiny LLaVA's random weights are
    drawn from fixed seeds; the probe's solver is seeded."""
    profile = load_profile("smoke")
    tables, files = [], []
    for run in ("a", "b"):
        monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path / run))
        result = run_vlm(profile, force=True)
        files.append(catalog.predictions_path(profile, "vlm"))
        tables.append(result.predictions.drop(columns="latency_s"))
    assert files[0] != files[1] and all(f.is_file() for f in files)
    # clip, probe, hf on fer (+ bicubic) and emotion6; clip by CLIP_benchmark's protocol on 2 x 84 test faces
    assert len(tables[0]) == 42 * 2 + 42 + 24 + 42 + 42 + 24 + 168
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    assert _parquet_bytes(tables[0]) == _parquet_bytes(tables[1])


def _frame(model: str, backend: str, ids: list[str], y_pred: list[int], subset: str,
           restoration: str = "none", prompt: str = DEFAULT_PROMPT) -> pd.DataFrame:
    n = len(ids)
    return make_predictions(image_id=ids, split="private_test", dataset="fer2013", label_set="fer7",
                            y_true=[0, 1, 2, 3, 4, 5, 6][:n], y_pred=y_pred, model=model, backend=backend,
                            restoration=restoration, prompt=prompt, seed=0, subset=subset)


def test_seed_claims_show_our_number_when_the_model_ran() -> None:
    vlm = _frame("ViT-B-32/openai", "clip", ["a", "b", "c", "d"], [0, 1, 0, 0], "fer_eval_4")
    scores = score_table(vlm, n_boot=20)
    status = pd.DataFrame([{"backend": "clip", "model": "ViT-B-32/openai", "status": "available",
                            "reason": "", "note": ""}])
    claims = seed_claims_table(scores, status).set_index("model")
    assert claims.loc["ViT-B-32/openai", "ours"].startswith("0.5000 [")  # 2 of 4 right
    assert claims.loc["ViT-B-32/openai", "ours"].endswith("(n=4)")
    assert claims.loc["ViT-B-32/openai", "seed_study_accuracy"] == 0.6407
    assert claims.loc["ViT-L-14/openai", "ours"] == "unavailable: not in this profile"


def test_head_to_head_scores_every_model_on_the_shared_evaluation_ids() -> None:
    """CNNs predict all of PrivateTest, VLMs the evaluation draw: head to head keeps the draw's
    ids for both (original faces, FER-7 labels), and a model lacking one of them is an error."""
    profile = load_profile("smoke")
    faces, _ = run_data(profile)
    eval_ids = list(catalog.subset_ids(profile, catalog.fer_eval_name(profile)))
    private = list(catalog.subset_ids(profile, "fer_private"))
    assert set(eval_ids) < set(private)

    def table(model, backend, ids, subset, restoration="none", prompt=DEFAULT_PROMPT):
        n = len(ids)
        labels = faces.select_ids(ids, subset).labels
        return make_predictions(image_id=ids, split="private_test", dataset=faces.name, label_set="fer7",
                                y_true=labels, y_pred=labels, model=model, backend=backend,
                                restoration=restoration, prompt=prompt, seed=0, subset=[subset] * n)

    cnn = table("resnet50", "cnn", private, "fer_private", prompt=NO_PROMPT)
    vlm = table("ViT-S-32/random", "clip", eval_ids, catalog.fer_eval_name(profile))
    restored = table("ViT-S-32/random", "clip", eval_ids, catalog.fer_eval_name(profile), "bicubic-64")
    both = head_to_head(pd.concat([cnn, vlm, restored], ignore_index=True), profile)
    assert set(both["backend"]) == {"clip", "cnn"} and set(both["restoration"]) == {"none"}
    for _, group in both.groupby("backend"):
        assert sorted(group["image_id"]) == sorted(eval_ids)
    assert set(both["subset"]) == {catalog.fer_eval_name(profile)}
    short = table("ViT-S-32/random", "clip", eval_ids[1:], catalog.fer_eval_name(profile))
    with pytest.raises(ValueError, match="1 id\\(s\\) of the subset missing"):
        head_to_head(pd.concat([cnn, short], ignore_index=True), profile)
