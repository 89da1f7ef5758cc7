"""The VLM stage of the smoke profile end to end, and the notebook-04 tables."""

from __future__ import annotations

import pandas as pd
import pytest

from emolib.config import load_profile
from emolib.predictions import read_predictions
from emolib.vlm.base import RANDOM_FLAG
from emolib.vlm.report import head_to_head, parse_status_table, score_table, seed_claims_table
from emolib.vlm.study import load_vlm_predictions, run_zero_shot, vlm_predictions_path


@pytest.mark.slow
def test_smoke_stage_runs_caches_and_flags_random_weights() -> None:
    profile = load_profile("smoke", **{"vlm.probe_train_size": 42})
    result = run_zero_shot(profile)
    assert list(result.status["status"]) == ["available", "available"]
    assert set(result.status["note"]) == {RANDOM_FLAG}
    predictions = result.predictions
    assert set(predictions["backend"]) == {"clip", "clip_probe", "hf"}
    assert vlm_predictions_path(profile).is_file()
    pd.testing.assert_frame_equal(load_vlm_predictions(profile), read_predictions(vlm_predictions_path(profile)))
    scores = score_table(predictions, n_boot=50)
    assert set(scores["note"]) == {RANDOM_FLAG}
    assert (scores["n"] == scores["n"].astype(int)).all()
    parse = parse_status_table(predictions)
    assert (parse["n"] == parse.drop(columns=["backend", "model", "dataset", "variant", "n",
                                              "share_no_answer"]).sum(axis=1)).all()
    claims = seed_claims_table(scores, result.status)
    assert claims["ours"].str.startswith("unavailable").all()  # smoke has no real CLIP/Phi
    both = head_to_head(predictions, None)
    assert set(both["label_set"]) == {"fer7"}
    again = run_zero_shot(profile)  # complete: read back, nothing recomputed
    pd.testing.assert_frame_equal(again.predictions, result.predictions)


def _frame(model: str, backend: str, ids: list[str], y_pred: list[int], variant: str) -> pd.DataFrame:
    from emolib.predictions import make_predictions

    n = len(ids)
    return make_predictions(image_id=ids, split=["private_test"] * n, dataset=["fer2013"] * n,
                            label_set=["fer7"] * n, y_true=[0, 1, 2, 3][:n], y_pred=y_pred,
                            model=[model] * n, backend=[backend] * n, variant=[variant] * n)


def test_seed_claims_show_our_number_when_the_model_ran() -> None:
    vlm = _frame("ViT-B-32/openai", "clip", ["a", "b", "c", "d"], [0, 1, 0, 0], "prompt=default;restoration=none")
    scores = score_table(vlm, n_boot=20)
    status = pd.DataFrame([{"backend": "clip", "model": "ViT-B-32/openai", "status": "available",
                            "reason": "", "note": ""}])
    claims = seed_claims_table(scores, status).set_index("model")
    assert claims.loc["ViT-B-32/openai", "ours"].startswith("0.5000 [")  # 2 of 4 right
    assert claims.loc["ViT-B-32/openai", "seed_study_accuracy"] == 0.6407
    assert claims.loc["ViT-L-14/openai", "ours"] == "unavailable: not in this profile"


def test_head_to_head_keeps_only_images_both_scored() -> None:
    vlm = _frame("ViT-B-32/openai", "clip", ["a", "b", "c"], [0, 1, 0], "prompt=default;restoration=none")
    cnn = _frame("resnet50", "cnn", ["b", "c", "d"], [1, 2, 3], "restoration=none;seed=0")
    both = head_to_head(vlm, cnn)
    assert set(both["image_id"]) == {"b", "c"} and set(both["backend"]) == {"clip", "cnn"}
