"""emolib.train: model zoo, augmentation, training loop (learning, resume, refusal), a killed
and resumed training run and its cost, the CNN stage's predictions on the named subsets
against scikit-learn, hard-subset mining."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from emolib import catalog, restore
from emolib.config import ConfigError, load_profile
from emolib.cost import collect
from emolib.data import load_evoked, load_faces, make_synthetic_faces
from emolib.data.stage import define_subsets, run_audit
from emolib.metrics import summarize
from emolib.paths import RESULTS_ENV_VAR
from emolib.predictions import NO_PROMPT, image_columns, make_predictions
from emolib.recorder import COST_FILE, read_cost_records
from emolib.train import evaluate, hard, stage
from emolib.train.augment import augment_batch, prepare_batch, random_erase, to_gray_uint8
from emolib.train.hard import hard_table, hog_features, mine_hard_subset, out_of_fold_proba
from emolib.train.loop import (
    CheckpointMismatch,
    TrainSettings,
    checkpoint_epoch,
    class_weight_vector,
    lr_at,
    penultimate_features,
    predict_logits,
    predict_proba,
    saved_result,
    train_classifier,
)
from emolib.train.models import MODEL_NAMES, build_model, load_imagenet_weights

torch.set_num_threads(2)
# the CNN stage runs on the smoke profile with one small network and three epochs
STAGE_OVERRIDES = {"cnn.models": ["vgg19_bn"], "cnn.epochs": 3}


@pytest.fixture(scope="module")
def faces():
    return make_synthetic_faces(per_class=40, seed=0)


@pytest.fixture(scope="module")
def smoke_stage(tmp_path_factory):
    """(profile, faces): the smoke profile's data stage (notebook 01: audit and named subsets)
    run by its own functions in a results folder of this module's, for the CNN stage to read."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RESULTS_ENV_VAR, str(tmp_path_factory.mktemp("train_outputs")))
        profile = load_profile("smoke", **STAGE_OVERRIDES)
        faces = load_faces(profile)
        define_subsets(profile, faces, load_evoked(profile), run_audit(profile, faces)["leakage"])
        yield profile, faces


def _arrays(faces, split):
    part = faces.split(split)
    return np.asarray(part.pixels), part.labels.astype(np.int64)


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("vgg19_bn", 7, 1, width=0.125)


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("channels,size", [(1, 48), (3, 64)])
def test_every_model_builds_and_backpropagates(name, channels, size):
    width = 0.25 if name != "resnet50" else 1.0
    model = build_model(name, 7, channels, width=width)
    x = torch.randn(2, channels, size, size)
    logits = model(x)
    assert logits.shape == (2, 7)
    logits.sum().backward()
    first = next(p for p in model.parameters() if p.ndim == 4)
    assert first.shape[1] == channels and first.grad is not None and first.grad.abs().sum() > 0


def test_stem_stride_changes_resnet_resolution():
    default, fine = build_model("resnet50", 7, 1), build_model("resnet50", 7, 1, stem_stride=1)
    x = torch.randn(1, 1, 48, 48)
    assert default.layer1(default.maxpool(default.relu(default.bn1(default.conv1(x))))).shape[-1] == 12
    assert fine.layer1(fine.maxpool(fine.relu(fine.bn1(fine.conv1(x))))).shape[-1] == 48


def test_efficientnet_starts_near_uniform_probabilities():
    torch.manual_seed(0)
    logits = build_model("efficientnet_b0", 7, 1).train()(torch.randn(8, 1, 48, 48))
    assert logits.abs().max() < 0.5  # torchvision's head init gives logits of std ~3.5


def test_dropout_and_stochastic_depth_reach_the_built_networks():
    eff = build_model("efficientnet_b0", 7, 1, width=0.25, dropout=0.1, stochastic_depth=0.0)
    assert eff.classifier[0].p == 0.1
    assert [m.p for m in eff.modules() if type(m).__name__ == "StochasticDepth"] == [0.0] * 16
    default = build_model("efficientnet_b0", 7, 1, width=0.25)  # torchvision's: 0.2, rising to 0.2 over 16 blocks
    depths = [m.p for m in default.modules() if type(m).__name__ == "StochasticDepth"]
    assert default.classifier[0].p == 0.2 and depths[0] == 0.0 and depths[-1] == pytest.approx(0.2 * 15 / 16)
    assert build_model("vgg19_bn", 7, 1, width=0.25, dropout=0.5).classifier[0].p == 0.5
    with pytest.raises(ValueError, match="resnet50 has no dropout"):
        build_model("resnet50", 7, 1, dropout=0.1)
    with pytest.raises(ValueError, match="vgg19_bn has no stochastic depth"):
        build_model("vgg19_bn", 7, 1, stochastic_depth=0.1)
    profile = load_profile("smoke", **{"cnn.models": ["vgg19_bn", "efficientnet_b0"],
                                       "cnn.per_model.efficientnet_b0.stochastic_depth": 0.0})
    built, _ = stage.build_for(profile, "efficientnet_b0", 7)
    assert {m.p for m in built.modules() if type(m).__name__ == "StochasticDepth"} == {0.0}
    # regularising one model retrains that model only
    base = load_profile("smoke", **{"cnn.models": ["vgg19_bn", "efficientnet_b0"]})
    assert catalog.cnn_model_key(profile, "vgg19_bn") == catalog.cnn_model_key(base, "vgg19_bn")
    assert catalog.cnn_model_key(profile, "efficientnet_b0") != catalog.cnn_model_key(base, "efficientnet_b0")


def test_progressive_resizing_trains_each_epoch_at_its_size_and_predicts_at_the_input_size(faces):
    x, y = (a[:64] for a in _arrays(faces, "train"))
    seen: list[int] = []
    model = build_model("vgg19_bn", 7, 1, width=0.125)
    model.features[0].register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[-1]))
    s = TrainSettings(epochs=3, batch_size=32, input_size=48, epoch_sizes=(32, 40, 48), patience=99)
    train_classifier(model, x, y, x[:10], y[:10], s, progress=False)
    # two training batches per epoch, then one validation batch at the input size
    assert seen == [32, 32, 48, 40, 40, 48, 48, 48, 48]
    progressive = {"cnn.input_size": 48, "cnn.epochs": 3, "cnn.per_model": {"vgg19_bn": {"epoch_sizes": [32, 40, 48]}}}
    described = stage.describe_model(load_profile("smoke", **progressive), "vgg19_bn")
    assert "32-48 px gray" in described


def test_per_model_overrides_change_only_their_model():
    base = load_profile("smoke")
    tuned = load_profile("smoke", **{"cnn.per_model": {"resnet50": {"epochs": 3, "augment": False}}})
    s = stage.settings_for(tuned, "resnet50", 0)
    assert s.epochs == 3 and not s.augment and s.lr == tuned.cnn.lr
    assert stage.settings_for(tuned, "vgg19_bn", 0) == stage.settings_for(base, "vgg19_bn", 0)
    assert catalog.cnn_model_key(tuned, "resnet50") != catalog.cnn_model_key(base, "resnet50")
    # the other models keep their folder (and weights): tuning one does not retrain them
    assert catalog.cnn_model_store(tuned, "vgg19_bn", 0).dir == catalog.cnn_model_store(base, "vgg19_bn", 0).dir
    assert catalog.cnn_model_store(tuned, "resnet50", 0).dir != catalog.cnn_model_store(base, "resnet50", 0).dir
    with pytest.raises(ConfigError, match="unknown key"):  # refused at load, before any training
        load_profile("smoke", **{"cnn.per_model": {"resnet50": {"epoch": 3}}})


def test_imagenet_weights_fall_back_with_a_reason():
    status = load_imagenet_weights(build_model("efficientnet_b0", 7, 3, width=1.0), "efficientnet_b0")
    assert status.used in {"imagenet", "scratch"} and status.reason
    if status.used == "scratch":
        assert "ImageNet weights efficientnet_b0/IMAGENET1K_V1 are not here" in status.reason
        assert status.reason.endswith("fetch it with `emolib fetch <profile>`")


# ----------------------------------------------------------------------------- augmentation
def test_augmentation_is_seeded_shaped_and_normalised(faces):
    images = torch.as_tensor(np.asarray(faces.pixels[:16]))
    a = augment_batch(images, 40, 1, torch.Generator().manual_seed(3))
    b = augment_batch(images, 40, 1, torch.Generator().manual_seed(3))
    c = augment_batch(images, 40, 1, torch.Generator().manual_seed(4))
    assert a.shape == (16, 1, 40, 40) and torch.equal(a, b) and not torch.equal(a, c)
    plain = prepare_batch(images, 48, 3)
    expected = (images[0].float() / 255 - 0.485) / 0.229
    assert plain.shape == (16, 3, 48, 48) and torch.allclose(plain[0, 0], expected, atol=1e-5)


def test_random_erase_zeroes_a_rectangle_in_the_given_area():
    x = torch.ones(64, 1, 20, 20)
    random_erase(x, torch.Generator().manual_seed(0), p=1.0, area=(0.1, 0.1))
    zeros = (x == 0).sum(dim=(1, 2, 3)).float()
    assert (zeros > 0).all() and (zeros <= 0.1 * 400 * 2.1).all()


def test_to_gray_uint8_uses_luma_weights():
    rgb = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]], dtype=np.uint8)
    assert to_gray_uint8(rgb).tolist() == [[[76, 150, 29]]]


# ----------------------------------------------------------------------------- training loop
def test_lr_schedule_warms_up_then_follows_a_cosine():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0)


def test_class_weights_are_inverse_frequency():
    w = class_weight_vector(np.array([0, 0, 0, 1]), 2)
    assert w[1] / w[0] == pytest.approx(3.0) and w.mean() == pytest.approx(1.0)


@pytest.mark.slow
def test_tiny_run_learns_well_above_chance(faces):
    x, y = _arrays(faces, "train")
    vx, vy = _arrays(faces, "public_test")
    # no augmentation: with it, a few dozen steps on 280 cartoon faces stay near chance
    s = TrainSettings(epochs=8, batch_size=32, lr=1e-3, warmup_epochs=0.5, seed=0, augment=False,
                      patience=99)
    torch.manual_seed(0)
    model = build_model("vgg19_bn", 7, 1, width=0.25)
    result = train_classifier(model, x, y, vx, vy, s, progress=False)
    px, py = _arrays(faces, "private_test")
    acc = (predict_proba(model, px, s).argmax(1) == py).mean()
    assert result.best_val_acc > 0.3 and acc > 0.28, (result.history, acc)  # chance is 1/7


@pytest.mark.slow
def test_resume_gives_the_uninterrupted_result(faces, tmp_path):
    x, y = (a[::2] for a in _arrays(faces, "train"))  # 140 images: resume logic, not learning
    vx, vy = (a[::2] for a in _arrays(faces, "public_test"))
    s = TrainSettings(epochs=3, batch_size=64, lr=3e-3, warmup_epochs=0.5, seed=1, config_key="k1",
                      erase_p=0.5)
    full_model = _tiny(1)
    full = train_classifier(full_model, x, y, vx, vy, s, tmp_path / "a.pt", progress=False)
    first = train_classifier(_tiny(1), x, y, vx, vy, s, tmp_path / "b.pt", stop_after_epoch=1,
                             progress=False)
    assert len(first.history) == 1 and not first.finished
    resumed_model = _tiny(2)  # different init: everything must come from the checkpoint
    resumed = train_classifier(resumed_model, x, y, vx, vy, s, tmp_path / "b.pt", progress=False)
    assert resumed.resumed_from == 1 and resumed.finished
    for a, b in zip(full.history, resumed.history, strict=True):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
    for (k, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values(),
                         strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k
    with pytest.raises(CheckpointMismatch, match="another|written for"):
        train_classifier(_tiny(), x, y, vx, vy, TrainSettings(epochs=3, config_key="k2"),
                         tmp_path / "b.pt", progress=False)


# ----------------------------------------------------------------------------- a killed run
KILLED_AFTER_ONE_EPOCH = """
import json, os, signal, sys
from emolib.config import load_profile
from emolib.data import load_faces
from emolib.train import loop, stage

def first_epoch_then_killed(*args, **kwargs):
    loop.train_classifier(*args, **{**kwargs, "stop_after_epoch": 1})
    os.kill(os.getpid(), signal.SIGKILL)  # as a kernel restart or the OOM killer would

stage.train_classifier = first_epoch_then_killed
profile = load_profile("smoke", **json.loads(sys.argv[1]))
stage.train_cnn(profile, load_faces(profile), "vgg19_bn", 0, progress=False)
"""


@pytest.mark.slow
def test_killed_training_run_resumes_and_counts_both_attempts(smoke_stage):
    """Issue 11: a resumed run counted restored epochs as trained (images/s too high) and lost
    the killed attempt's time. Kill a real process after its first epoch, resume here."""
    profile, faces = smoke_stage
    store = catalog.cnn_model_store(profile, "vgg19_bn", 0)
    n_train = len(stage.training_arrays(faces, profile, 0)["train_x"])
    killed_run = subprocess.run([sys.executable, "-c", KILLED_AFTER_ONE_EPOCH, json.dumps(STAGE_OVERRIDES)],
                                env=os.environ, capture_output=True, text=True, timeout=600)
    assert killed_run.returncode == -9, killed_run.stderr
    assert checkpoint_epoch(store.path("ckpt_vgg19_bn_s0.pt")) == 1
    (killed,) = read_cost_records(store.dir / COST_FILE)  # no record: the marker, read back
    assert killed["status"] == "interrupted" and killed["tags"]["start_epoch"] == 0
    assert killed["items"] == n_train and killed["pid"] != os.getpid()

    trained = stage.train_cnn(profile, faces, "vgg19_bn", 0, progress=False)
    assert trained.result.resumed_from == 1 and trained.result.finished
    assert [row["epoch"] for row in trained.result.history] == [1, 2, 3]
    assert killed["wall_s"] >= trained.result.history[0]["wall_s"]  # its epoch is in its time

    records = collect.collect_cost_records(profile)
    attempts = records[records["phase"] == "train"]
    attempts = attempts.set_index(attempts["tags"].str["start_epoch"])
    assert attempts["status"].to_dict() == {0: "interrupted", 1: "ok"}
    assert attempts["items"].to_dict() == {0: n_train, 1: 2 * n_train}  # each its own epochs
    assert not attempts["superseded"].any()
    row = collect.training_table(records).set_index("model").loc["vgg19_bn"]
    assert (row["attempts"], row["interrupted"], row["images_trained"]) == (2, 1, 3 * n_train)
    assert row["train_s"] == pytest.approx(attempts["wall_s"].sum())
    assert row["images_per_s"] == pytest.approx(3 * n_train / attempts["wall_s"].sum())
    # notebook 06's training time and the consistency check read the same records
    assert collect.model_cost_table(records).set_index("model").loc["vgg19_bn", "train_s"] == pytest.approx(
        row["train_s"])
    assert catalog.training_wall_s(profile, "vgg19_bn", 0) == pytest.approx(row["train_s"])


# ----------------------------------------------------------------------------- predictions
def test_predictions_table_metrics_match_sklearn(smoke_stage):
    profile, faces = smoke_stage
    part = catalog.select_subset(faces, profile, "fer_private")
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(7), len(part)).astype(np.float32)
    proba[np.arange(len(part)), part.labels] += rng.random(len(part)) > 0.5  # ~half right
    proba /= proba.sum(1, keepdims=True)
    rows = make_predictions(**image_columns(part), y_pred=proba.argmax(1), scores=proba.tolist(), model="m",
                            backend="cnn", prompt=NO_PROMPT, seed=0, latency_s=np.full(len(part), 2.0 / len(part)))
    names = ["fer_private", "fer_private_leakage_free_near"]
    table = summarize(catalog.on_subsets(rows, profile, names), n_boot=50).set_index("subset")
    for name in names:
        sel = np.isin(part.ids, catalog.subset_ids(profile, name))
        y_true, y_pred = part.labels[sel], proba[sel].argmax(1)
        row = table.loc[name]
        assert row["n"] == sel.sum() and (row["model"], row["restoration"], row["seed"]) == ("m", "none", 0)
        assert row["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
        assert row["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
        assert row["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
        assert row["accuracy_lo"] <= row["accuracy"] <= row["accuracy_hi"]
    assert table.loc["fer_private", "n"] == 84 and table.loc["fer_private_leakage_free_near", "n"] == 48
    assert rows["latency_s"].iloc[0] == pytest.approx(2.0 / len(part))
    # a score on a subset selects ids: a configuration lacking one of them is an error, not a smaller n
    dropped = catalog.subset_ids(profile, "fer_private_leakage_free_near")[0]
    with pytest.raises(ValueError, match=r"model.*on subset 'fer_private_leakage_free_near': 1 id\(s\) of the subset"):
        catalog.on_subset(rows[rows["image_id"] != dropped], profile, "fer_private_leakage_free_near")


def _assert_same_table(got, want) -> None:
    pd.testing.assert_frame_equal(got.drop(columns="scores"), want.drop(columns="scores"))
    np.testing.assert_allclose(np.stack(got["scores"]), np.stack(want["scores"]))


def test_cnn_stage_scores_original_and_restored_faces_on_the_same_ids(smoke_stage):
    profile, faces = smoke_stage
    trained = [stage.train_cnn(profile, faces, "vgg19_bn", 0, progress=False)]
    evaluation = restore.restoration_subset(faces, profile)
    restored = {"bicubic": restore.restore_imageset(evaluation, "bicubic", profile, progress=False)}
    sets = stage.test_sets(profile, faces, restored)
    assert [(s.variant, s.subset_name, len(s)) for s in sets] == [("none", "fer_private", 84),
                                                                  ("bicubic-64", "fer_eval_42", 42)]
    other = restored["bicubic"].select_ids(evaluation.ids[:10], "ten_faces")
    with pytest.raises(ValueError, match="compare restored and original faces on the same ids"):
        stage.test_sets(profile, faces, {"bicubic": other})

    predictions = stage.predict_all(profile, trained, sets)
    t = trained[0]
    for images in sets:  # every row is the model's own softmax on that image
        rows = predictions[(predictions["restoration"] == images.variant)
                           & (predictions["subset"] == images.subset_name)]
        proba = predict_proba(t.model, to_gray_uint8(np.asarray(images.pixels)), t.settings,
                              flip=profile.cnn.test_time_flip)
        assert rows["image_id"].tolist() == images.ids.tolist() and rows["y_true"].tolist() == images.labels.tolist()
        assert rows["y_pred"].tolist() == proba.argmax(1).tolist()
        np.testing.assert_allclose(np.stack(rows["scores"]), proba, atol=1e-6)
        assert (rows["model"] == "vgg19_bn").all() and (rows["prompt"] == NO_PROMPT).all()
    _assert_same_table(catalog.read_stage_predictions(profile, "cnn"), predictions)
    infer_records = len(read_cost_records(catalog.cnn_store(profile).dir / COST_FILE))
    _assert_same_table(stage.predict_all(profile, trained, sets), predictions)  # read back, not predicted again
    assert len(read_cost_records(catalog.cnn_store(profile).dir / COST_FILE)) == infer_records

    names = ["fer_private", "fer_private_leakage_free_near", "fer_eval_42"]
    summary = summarize(catalog.on_subsets(predictions, profile, names), n_boot=20)
    assert sorted(zip(summary["restoration"], summary["subset"], summary["n"], strict=True)) == [
        ("bicubic-64", "fer_eval_42", 42), ("none", "fer_eval_42", 42), ("none", "fer_private", 84),
        ("none", "fer_private_leakage_free_near", 48)]  # restored faces: only the draw they cover
    paired = evaluate.paired_restoration(summary, "fer_eval_42")
    on_eval = predictions[predictions["image_id"].isin(evaluation.ids)]
    accuracy = on_eval.assign(ok=on_eval["y_true"] == on_eval["y_pred"]).groupby("restoration")["ok"].mean()
    assert paired[["restoration", "n"]].values.tolist() == [["bicubic-64", 42]]
    assert paired["accuracy_original"].iloc[0] == pytest.approx(accuracy["none"])
    assert paired["accuracy_restored"].iloc[0] == pytest.approx(accuracy["bicubic-64"])
    assert paired["difference"].iloc[0] == pytest.approx(accuracy["bicubic-64"] - accuracy["none"])

    original = predictions[(predictions["restoration"] == "none")]
    cm = evaluate.confusion_for(predictions, 7, model="vgg19_bn", restoration="none", subset="fer_private")
    assert cm.shape == (7, 8) and cm[:, 7].sum() == 0
    assert (cm[:, :7] == confusion_matrix(original["y_true"], original["y_pred"], labels=range(7))).all()
    literature = evaluate.literature_comparison(summary).set_index("source")
    assert literature.loc["this run", "accuracy_pct"] == pytest.approx(
        100 * (original["y_true"] == original["y_pred"]).mean())
    assert len(literature) == 1 + len(evaluate.LITERATURE)


def test_cnn_stage_adds_the_soft_vote_of_its_networks_and_rereads_an_older_table(smoke_stage):
    _, faces = smoke_stage
    profile = load_profile("smoke", **{**STAGE_OVERRIDES, "cnn.models": ["vgg19_bn", "efficientnet_b0"]})
    trained = [stage.train_cnn(profile, faces, name, 0, progress=False) for name in profile.cnn.models]
    sets = stage.test_sets(profile, faces, {})
    predictions = stage.predict_all(profile, trained, sets)
    members = predictions[predictions["backend"] == "cnn"]
    vote = predictions[predictions["backend"] == "cnn_ensemble"]
    assert sorted(members["model"].unique()) == ["efficientnet_b0", "vgg19_bn"] and set(vote["model"]) == {"soft_vote"}
    by_model = {m: rows.set_index("image_id") for m, rows in members.groupby("model")}
    vote = vote.set_index("image_id")
    assert sorted(vote.index) == sorted(by_model["vgg19_bn"].index) and len(vote) == 84
    mean = (np.stack(by_model["vgg19_bn"].loc[vote.index, "scores"])
            + np.stack(by_model["efficientnet_b0"].loc[vote.index, "scores"])) / 2
    np.testing.assert_allclose(np.stack(vote["scores"]), mean, rtol=1e-6)
    assert vote["y_pred"].tolist() == mean.argmax(1).tolist()
    # a table written before the ensemble existed (no "ensemble" in its meta) is predicted again, with it
    store = catalog.cnn_store(profile)
    store.write_meta(**{k: v for k, v in store.read_meta().items() if k in ("models", "trained", "sets")})
    catalog.predictions_path(profile, "cnn").write_bytes(b"")  # unreadable: reading it back would fail
    again = stage.predict_all(profile, trained, sets)  # predicted anew: the same rows, new timings
    _assert_same_table(again.drop(columns="latency_s"), predictions.drop(columns="latency_s"))


# ----------------------------------------------------------------------------- hard subsets
def test_hard_means_wrong_or_unsure(faces):
    part = faces.split("private_test").subset(np.arange(4))
    y = part.labels
    proba = np.full((4, 7), 0.0)
    proba[0, y[0]] = 0.9                      # right and sure: easy
    proba[1, y[1]] = 0.7                      # right but unsure: hard
    proba[2, (y[2] + 1) % 7] = 0.95           # wrong: hard
    proba[3, y[3]] = 0.8                      # exactly at the threshold: easy
    table = hard_table(part, proba, 0.8)
    assert table["hard"].tolist() == [False, True, True, False]


def test_out_of_fold_probe_never_sees_its_own_rows():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    features = rng.normal(size=(90, 5)) + labels[:, None] * 3.0  # well separated
    proba = out_of_fold_proba(features, labels, 3, folds=3, seed=0)
    assert proba.shape == (90, 3) and np.allclose(proba.sum(1), 1)
    assert (proba.argmax(1) == labels).mean() > 0.95
    noise = rng.normal(size=(90, 5))  # no signal: out of fold must be near chance, not memorised
    assert (out_of_fold_proba(noise, labels, 3, folds=3).argmax(1) == labels).mean() < 0.6


def test_hog_features_see_edge_orientation():
    vertical = np.zeros((1, 16, 16), dtype=np.uint8)
    vertical[:, :, 8:] = 255  # a vertical edge: horizontal gradient, orientation bin 0
    feats = hog_features(vertical).reshape(2, 2, 9)
    assert feats.shape == (2, 2, 9) and feats[0, 0].argmax() == 0 and feats[0, 0, 0] > 0.99
    horizontal = vertical.transpose(0, 2, 1)  # gradient along y: 90 degrees, bin 4
    assert hog_features(horizontal).reshape(2, 2, 9)[0, 0].argmax() == 4


def test_hard_subsets_are_named_subsets_inside_the_evaluation_draws(smoke_stage):
    profile, faces = smoke_stage
    trained = stage.train_all(profile, faces, progress=False)
    for dataset, name, draw in (("fer2013", "fer_hard", catalog.fer_eval_name(profile)),
                                ("emotion6", "emotion6_hard", catalog.emotion6_eval_name(profile))):
        table = mine_hard_subset(profile, dataset, trained)
        hard_ids = catalog.subset_ids(profile, name)
        within = set(catalog.subset_ids(profile, draw))
        assert set(hard_ids) == set(table.loc[table["hard"] & table["image_id"].isin(within), "image_id"])
        assert len(hard_ids) <= len(within)  # may be empty: smoke's synthetic voters rarely disagree
        stored = set(catalog.subset_table(profile, name)["dataset"])
        assert stored <= {faces.name if dataset == "fer2013" else load_evoked(profile).name}
    faces_table = mine_hard_subset(profile, "fer2013")  # read back: no CNNs needed any more
    assert set(faces_table["split"]) == {"public_test", "private_test"}
    cut = profile.cnn.hard_threshold
    wrong_or_unsure = (faces_table["y_pred"] != faces_table["y_true"]) | (faces_table["p_true"] < cut)
    assert (faces_table["hard"] == wrong_or_unsure).all()
    meta = catalog.hard_store(profile, "fer2013").read_meta()
    assert meta["probe"].startswith("logistic regression on vgg19_bn features")
    evoked = mine_hard_subset(profile, "emotion6")
    assert (evoked["hard"] == (evoked["vote_share"] < profile.cnn.hard_vote_share)).all()
    assert faces_table["hard"].sum() > 0  # a 3-epoch smoke CNN is unsure of every face
    summary = hard.hard_subset_summary(profile, {"fer2013": faces_table, "emotion6": evoked}).set_index("dataset")
    assert summary.loc["emotion6", "rule"] == "fewer than 30% of voters chose the label"
    with pytest.raises(ValueError, match="needs the trained CNNs"):
        hard.best_trained([])


def test_penultimate_features_are_what_the_last_layer_reads():
    torch.manual_seed(0)
    model = build_model("vgg19_bn", 7, 1, width=0.125).eval()
    s = TrainSettings(input_size=32)
    images = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    features = penultimate_features(model, images, s, batch_size=2)
    head = model.classifier[-1]
    logits = torch.from_numpy(features) @ head.weight.detach().T + head.bias.detach()
    expected = predict_logits(model, torch.as_tensor(images), s)
    assert features.shape == (5, head.in_features)
    assert torch.allclose(logits, expected, atol=1e-4)


def test_only_face_data_settings_retrain_a_cnn():
    base = load_profile("smoke")
    evoked = load_profile("smoke", **{"data.emotion6_eval_size": 12, "data.eval_size": 30,
                                      "data.phash_threshold": 2})
    faces = load_profile("smoke", **{"data.synthetic_per_class": 41})
    assert catalog.cnn_model_store(evoked, "vgg19_bn", 0).dir == catalog.cnn_model_store(base, "vgg19_bn", 0).dir
    assert catalog.cnn_model_store(faces, "vgg19_bn", 0).dir != catalog.cnn_model_store(base, "vgg19_bn", 0).dir


def test_resnet50_width_scales_every_stage():
    half = build_model("resnet50", 7, 1, width=0.5)
    full = build_model("resnet50", 7, 1)
    assert half.layer4[-1].conv3.out_channels == 1024 and half.fc.in_features == 1024
    assert full.layer4[-1].conv3.out_channels == 2048
    assert half.conv1.in_channels == 1 and half.conv1.out_channels == 32
    ratio = sum(p.numel() for p in half.parameters()) / sum(p.numel() for p in full.parameters())
    assert 0.2 < ratio < 0.3  # parameters scale with the square of the width
    assert half(torch.randn(2, 1, 48, 48)).shape == (2, 7)


def test_flip_averages_the_probabilities_of_a_face_and_its_mirror_image():
    torch.manual_seed(0)
    model = build_model("vgg19_bn", 7, 1, width=0.25).eval()
    s = TrainSettings(input_size=48, in_channels=1)
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    plain, mirrored = predict_proba(model, faces, s), predict_proba(model, faces[:, :, ::-1].copy(), s)
    np.testing.assert_allclose(predict_proba(model, faces, s, flip=True), (plain + mirrored) / 2, atol=1e-6)
    assert not np.allclose(plain, mirrored)


@pytest.mark.slow
def test_alone_share_of_epochs_finishes_after_the_workers_with_every_thread(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke", **{"cnn.models": ["vgg19_bn", "efficientnet_b0"], "cnn.epochs": 2,
                                       "cnn.parallel": 2, "cnn.per_model.vgg19_bn.alone_share": 0.5})
    trained = stage.train_all(profile, load_faces(profile))
    assert [len(t.result.history) for t in trained] == [2, 2]
    vgg = read_cost_records(catalog.cnn_model_store(profile, "vgg19_bn", 0).dir / COST_FILE)
    eff = read_cost_records(catalog.cnn_model_store(profile, "efficientnet_b0", 0).dir / COST_FILE)
    # VGG: its first epoch in a worker, its last in this process after both workers ended
    assert [(r["phase"], r["items"], r["tags"]["start_epoch"]) for r in vgg] == [("train", 84, 0), ("train", 84, 1)]
    assert vgg[0]["pid"] != os.getpid() and vgg[1]["pid"] == os.getpid()
    assert vgg[1]["started_at"] >= eff[0]["started_at"] and len(eff) == 1


def test_a_call_stopping_at_an_epoch_already_checkpointed_trains_and_records_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke", **{"cnn.models": ["vgg19_bn"], "cnn.epochs": 2})
    faces = load_faces(profile)
    assert stage.train_cnn(profile, faces, "vgg19_bn", 0, progress=False, stop_after_epoch=1) is None
    store = catalog.cnn_model_store(profile, "vgg19_bn", 0)
    assert checkpoint_epoch(store.path("ckpt_vgg19_bn_s0.pt")) == 1 and not stage.is_trained(profile, "vgg19_bn", 0)
    assert stage.train_cnn(profile, faces, "vgg19_bn", 0, progress=False, stop_after_epoch=1) is None
    assert len(read_cost_records(store.dir / COST_FILE)) == 1  # the second call recorded no empty attempt
    finished = stage.train_cnn(profile, faces, "vgg19_bn", 0, progress=False)
    assert finished.result.resumed_from == 1 and len(finished.result.history) == 2


@pytest.mark.slow
def test_models_trained_in_parallel_workers_match_the_serial_run(tmp_path, monkeypatch):
    overrides = {"cnn.models": ["vgg19_bn", "efficientnet_b0"], "cnn.epochs": 1}
    runs = {}
    for parallel in (1, 2):
        monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path / f"parallel_{parallel}"))
        profile = load_profile("smoke", **overrides, **{"cnn.parallel": parallel})
        runs[parallel] = stage.train_all(profile, load_faces(profile))
        assert all(stage.is_trained(profile, t.name, t.seed) for t in runs[parallel])
    for serial, parallel in zip(runs[1], runs[2], strict=True):
        assert (serial.name, serial.seed) == (parallel.name, parallel.seed)
        assert serial.result.best_epoch == parallel.result.best_epoch
        for a, b in zip(serial.result.history, parallel.result.history, strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=5e-3)  # 1 vs 2 threads: rounding only
            assert a["val_acc"] == pytest.approx(b["val_acc"], abs=0.02)
    # each worker recorded its own model's training cost
    profile = load_profile("smoke", **overrides, **{"cnn.parallel": 2})
    for t in runs[2]:
        records = read_cost_records(catalog.cnn_model_store(profile, t.name, 0).dir / COST_FILE)
        assert [(r["phase"], r["model"], r["items"]) for r in records] == [("train", t.name, 252 // 3)]


def test_a_result_stored_before_the_rename_reads_its_epoch_time_as_wall_s() -> None:
    old = {"history": [{"epoch": 1, "val_acc": 0.4, "seconds": 12.5, "images_per_s": 80.0}],
           "best_epoch": 1, "best_val_acc": 0.4, "stopped_early": False, "resumed_from": 0, "finished": True}
    result = saved_result(old)
    assert result.history == [{"epoch": 1, "val_acc": 0.4, "wall_s": 12.5, "images_per_s": 80.0}]
    assert (result.best_epoch, result.finished) == (1, True)
