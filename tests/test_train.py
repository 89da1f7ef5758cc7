"""emolib.train: model zoo, augmentation, training loop (learning, resume, refusal),
predictions/metrics against scikit-learn, hard-subset mining."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from emolib.data import make_synthetic_faces
from emolib.metrics import summarize
from emolib.train.augment import augment_batch, prepare_batch, random_erase, to_gray_uint8
from emolib.train.evaluate import cnn_prediction_rows, parse_variant, variant_name, with_leakage_free_rows
from emolib.train.hard import hard_table, hog_features, out_of_fold_proba
from emolib.train.loop import (
    CheckpointMismatch,
    TrainSettings,
    class_weight_vector,
    lr_at,
    predict_proba,
    train_classifier,
)
from emolib.train.models import MODEL_NAMES, build_model, load_imagenet_weights

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def faces():
    return make_synthetic_faces(per_class=40, seed=0)


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


def test_per_model_overrides_change_only_their_model():
    from emolib.config import load_profile
    from emolib.train.stage import model_key, settings_for

    base = load_profile("smoke")
    tuned = load_profile("smoke", **{"cnn.per_model": {"resnet50": {"epochs": 3, "augment": False}}})
    s = settings_for(tuned, "resnet50", 0)
    assert s.epochs == 3 and not s.augment and s.lr == tuned.cnn.lr
    assert settings_for(tuned, "vgg19_bn", 0) == settings_for(base, "vgg19_bn", 0)
    assert model_key(tuned, "resnet50") != model_key(base, "resnet50")
    with pytest.raises(ValueError, match="unknown key"):
        settings_for(load_profile("smoke", **{"cnn.per_model": {"resnet50": {"epoch": 3}}}), "resnet50", 0)


def test_imagenet_weights_fall_back_with_a_reason():
    status = load_imagenet_weights(build_model("efficientnet_b0", 7, 3, width=1.0), "efficientnet_b0")
    assert status.used in {"imagenet", "scratch"} and status.reason
    if status.used == "scratch":
        assert "unavailable" in status.reason


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


# ----------------------------------------------------------------------------- predictions
def test_predictions_table_metrics_match_sklearn(faces):
    part = faces.split("private_test")
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(7), len(part)).astype(np.float32)
    proba[np.arange(len(part)), part.labels] += rng.random(len(part)) > 0.5  # ~half right
    proba /= proba.sum(1, keepdims=True)
    rows = cnn_prediction_rows(part, proba, "m", variant_name("none", "standard", 0), 2.0)
    keep = set(part.ids[::2].tolist())
    rows = with_leakage_free_rows(rows, keep)
    table = summarize(rows, n_boot=50).set_index("variant")
    for split, ids in (("standard", set(part.ids)), ("leakage_free", keep)):
        sel = np.isin(part.ids, list(ids))
        y_true, y_pred = part.labels[sel], proba[sel].argmax(1)
        row = table.loc[variant_name("none", split, 0)]
        assert row["n"] == sel.sum()
        assert row["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
        assert row["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
        assert row["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
        assert row["accuracy_lo"] <= row["accuracy"] <= row["accuracy_hi"]
    assert rows["latency_s"].iloc[0] == pytest.approx(2.0 / len(part))
    assert parse_variant(rows["variant"].iloc[-1]) == {"restoration": "none", "split": "leakage_free",
                                                      "seed": "0"}


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
