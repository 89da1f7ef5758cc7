"""Cost recording (killed phases included), collection through the catalog, FLOPs and
scaling fits, against known work and hand counts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from emolib import catalog
from emolib.config import load_profile
from emolib.cost.collect import (
    accuracy_by_model,
    accuracy_vs_cost,
    collect_cost_records,
    latency_table,
    model_cost_table,
    pareto_front,
    phase_table,
    stage_coverage,
    training_table,
)
from emolib.cost.counting import build_study_cnn, count_flops, count_parameters, flops_per_image
from emolib.cost.scaling import (
    best_of_repeats,
    fit_scaling,
    fit_sizes_to_budget,
    make_image_runner,
    measure_scaling,
    probe_cost,
)
from emolib.data import load_evoked, load_faces
from emolib.data.stage import define_subsets, run_audit
from emolib.energy import EnergyProbe, RaplMeter, find_rapl_meter
from emolib.paths import RESULTS_ENV_VAR, stage_dir
from emolib.predictions import NO_PROMPT, image_columns, make_predictions
from emolib.recorder import COST_FILE, OPEN_DIR, CostRecorder, read_cost_records


def _burn_cpu(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        sum(i * i for i in range(1000))


# ----------------------------------------------------------------------------- recorder
def test_sleep_costs_wall_not_cpu(tmp_path):
    rec = CostRecorder(tmp_path, "demo")
    with rec.phase("infer", model="m", items=10):
        time.sleep(0.3)
    (r,) = rec.records()
    assert 0.3 <= r["wall_s"] < 1.5
    assert r["cpu_s"] < 0.15
    assert r["items"] == 10 and r["status"] == "ok" and r["error"] is None
    assert r["items_per_s"] == pytest.approx(10 / r["wall_s"])
    assert r["peak_rss_mb"] > 10 and r["stage"] == "demo" and r["model"] == "m"


def test_busy_loop_costs_cpu(tmp_path):
    rec = CostRecorder(tmp_path, "demo")
    with rec.phase("train", items=None) as h:
        _burn_cpu(0.4)
        h.items = 7  # known only at the end
        h.extra["epochs"] = 3
    (r,) = rec.records()
    assert 0.4 <= r["cpu_s"] < 0.8  # the RSS sampler thread adds almost nothing
    assert r["wall_s"] >= r["cpu_s"] - 0.05  # one busy thread cannot use more CPU than wall
    assert r["items"] == 7 and r["extra"] == {"epochs": 3} and r["tags"] == {}


def test_nested_and_failed_phases(tmp_path):
    rec = CostRecorder(tmp_path, "demo")
    with pytest.raises(ValueError, match="boom"):
        with rec.phase("train", model="m", seed=0):
            with rec.phase("epoch", model="m", items=5, epoch=1):
                time.sleep(0.05)
            time.sleep(0.1)
            raise ValueError("boom")
    inner, outer = rec.records()  # the inner phase ends, and is written, first
    assert inner["phase"] == "epoch" and inner["parent_id"] == outer["phase_id"]
    assert outer["parent_id"] is None and outer["tags"] == {"seed": 0}
    assert inner["status"] == "ok" and outer["status"] == "failed"
    assert outer["error"] == "ValueError: boom"
    assert outer["wall_s"] >= 0.15 and outer["wall_s"] >= inner["wall_s"]
    with rec.phase("evaluate"):  # the failed phase no longer counts as open
        pass
    assert rec.records()[-1]["parent_id"] is None


def test_concurrent_appends_keep_every_record(tmp_path):
    def write(k: int) -> None:
        rec = CostRecorder(tmp_path, "demo", sample_interval_s=0.5)
        for i in range(10):
            with rec.phase("infer", model=f"m{k}", items=i + 1):
                pass

    threads = [threading.Thread(target=write, args=(k,)) for k in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    records = read_cost_records(tmp_path / "cost.jsonl")
    assert len(records) == 30
    assert sorted(r["items"] for r in records) == sorted(list(range(1, 11)) * 3)


def test_rapl_counter_with_wraparound(tmp_path):
    domain = tmp_path / "intel-rapl:0"
    (tmp_path / "intel-rapl:0:0").mkdir(parents=True)  # a sub-domain, inside the package
    domain.mkdir()
    (domain / "max_energy_range_uj").write_text("1000000\n")
    (domain / "energy_uj").write_text("900000\n")
    meter, note = find_rapl_meter(tmp_path)
    assert note == "" and meter.domains == [domain]
    start = meter.read_uj()
    (domain / "energy_uj").write_text("400000\n")  # wrapped: 0.1 J + 0.4 J
    assert RaplMeter.joules_between(start, meter.read_uj(), meter.ranges) == pytest.approx(0.5)
    probe = EnergyProbe(tmp_path)
    probe.start()
    (domain / "energy_uj").write_text("650000\n")
    cpu_j, _ = probe.stop()
    assert cpu_j == pytest.approx(0.25)


def test_energy_not_measured_is_said_not_guessed(tmp_path):
    rec = CostRecorder(tmp_path, "demo", rapl_root=tmp_path / "absent")
    with rec.phase("infer"):
        pass
    (r,) = rec.records()
    assert r["energy_cpu_j"] is None and "CPU energy not measured" in r["energy_note"]
    if not torch.cuda.is_available():
        assert r["energy_gpu_j"] is None and "GPU energy not measured" in r["energy_note"]


KILLED_PHASE = """
import sys, time
from emolib.recorder import CostRecorder

recorder = CostRecorder(sys.argv[1], "demo", heartbeat_s=600)  # only the explicit beat below
with recorder.phase("train", model="m", items=0, seed=0) as handle:
    time.sleep(0.3)
    handle.items = 5
    handle.beat()
    print("beat", flush=True)
    time.sleep(600)  # killed here
"""


def test_killed_phase_is_read_back_as_interrupted_up_to_its_last_heartbeat(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", KILLED_PHASE, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline() == "beat\n"
        assert read_cost_records(tmp_path / COST_FILE) == []  # still running: open, not interrupted
        time.sleep(1.0)  # time after the last heartbeat is not known, so not counted
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    (r,) = read_cost_records(tmp_path / COST_FILE)
    assert not (tmp_path / COST_FILE).exists()  # the killed phase never wrote its record
    assert r["status"] == "interrupted" and r["pid"] == child.pid and r["stage"] == "demo"
    assert (r["phase"], r["model"], r["items"], r["tags"]) == ("train", "m", 5, {"seed": 0})
    assert 0.3 <= r["wall_s"] < 1.0
    rec = CostRecorder(tmp_path, "demo")  # the resumed attempt adds its own record beside it
    with rec.phase("train", model="m", items=3, seed=0):
        pass
    assert [(x["status"], x["items"]) for x in rec.records()] == [("ok", 3), ("interrupted", 5)]


def test_heartbeat_keeps_an_open_phase_marker_current(tmp_path):
    rec = CostRecorder(tmp_path, "demo", sample_interval_s=0.5, heartbeat_s=0.1)
    with rec.phase("infer", model="m", items=2) as handle:
        time.sleep(0.5)
        (marker,) = (tmp_path / OPEN_DIR).glob("*.json")
        beat = json.loads(marker.read_text())
        assert beat["status"] == "interrupted" and beat["phase_id"] == marker.stem
        assert 0.2 <= beat["wall_s"] <= 0.5 and beat["items"] == 2
        assert rec.records() == []  # this process is alive: the phase is open, not interrupted
        handle.items = 7
    assert list((tmp_path / OPEN_DIR).glob("*.json")) == []  # a finished phase leaves no marker
    assert [(r["status"], r["items"]) for r in rec.records()] == [("ok", 7)]


# ----------------------------------------------------------------------------- flops
def test_flops_and_params_of_small_conv_net_match_hand_count():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),  # 8x8 out: 2*1*4*9*64 = 4608
        nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(),  # 4x4 out: 2*4*8*9*16 = 9216
        nn.Flatten(), nn.Linear(8 * 4 * 4, 7),  # 2*128*7 = 1792
    )
    assert flops_per_image(net, (1, 8, 8)) == 4608 + 9216 + 1792
    assert count_parameters(net) == {"params": 40 + 296 + 903, "trainable_params": 1239}
    x = torch.zeros(5, 1, 8, 8)
    assert count_flops(lambda: net(x)) == 5 * 15616  # linear in the batch


def test_flops_on_meta_device_match_real_weights():
    from emolib.train.stage import build_for

    profile = load_profile("smoke")
    shape = (1, profile.cnn.input_size, profile.cnn.input_size)
    real = build_study_cnn(profile, "resnet50")
    meta = build_study_cnn(profile, "resnet50", device="meta")
    assert next(meta.parameters()).is_meta and not next(real.parameters()).is_meta
    assert flops_per_image(meta, shape) == flops_per_image(real, shape)
    assert count_parameters(meta) == count_parameters(real)
    assert real.conv1.in_channels == 1 and real.fc.out_features == 7
    for name in profile.cnn.models:  # counted on the architecture notebook 03 trains, not a second zoo
        trained_kind, _ = build_for(profile, name, 7)
        assert count_parameters(build_study_cnn(profile, name, "meta")) == count_parameters(trained_kind)


# ----------------------------------------------------------------------------- scaling
def test_fit_scaling_recovers_line_and_quality():
    frame = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "n_images": [10, 30, 100] * 2,
                          "wall_s": [0.6, 0.8, 1.5, 1.0, 1.9, 5.2]})
    fit = fit_scaling(frame).set_index("model")
    assert fit.loc["a", "per_image_s"] == pytest.approx(0.01)
    assert fit.loc["a", "overhead_s"] == pytest.approx(0.5)
    assert fit.loc["a", "r2"] == pytest.approx(1.0) and fit.loc["a", "sizes"] == "10,30,100"
    slope, intercept = np.polyfit([10, 30, 100], [1.0, 1.9, 5.2], 1)
    assert fit.loc["b", "per_image_s"] == pytest.approx(slope)
    assert fit.loc["b", "overhead_s"] == pytest.approx(intercept)
    assert 0.99 < fit.loc["b", "r2"] < 1.0 and fit.loc["b", "per_image_se"] > 0


def test_measure_scaling_times_a_real_model(tmp_path):
    def build(device: str) -> nn.Module:
        with torch.device(device):
            return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 7))

    run = make_image_runner(build, tmp_path / "ckpt.pt", (1, 16, 16), batch_size=8)
    rec = CostRecorder(tmp_path, "cost")
    frame = measure_scaling("tiny", run, (4, 8, 16), recorder=rec, warmup=8, repeats=2)
    assert list(frame["n_images"]) == [4, 8, 16] * 2 and list(frame["repeat"]) == [0] * 3 + [1] * 3
    assert (frame["wall_s"] > 0).all() and (frame["load_1min"] >= 0).all()
    assert [r["items"] for r in rec.records()] == [4, 8, 16] * 2
    assert [r["tags"]["repeat"] for r in rec.records()] == [0, 0, 0, 1, 1, 1]
    best = best_of_repeats(frame)
    assert list(best["n_images"]) == [4, 8, 16]
    assert best["wall_s"].tolist() == frame.groupby("n_images")["wall_s"].min().tolist()
    assert (tmp_path / "ckpt.pt").is_file()
    small = measure_scaling("tiny", run, (40, 80, 160), warmup=8, budget_s=1e-6)
    assert list(small["n_images"]) == [2, 3, 4] and set(small["requested_sizes"]) == {"40,80,160"}


# ----------------------------------------------------------------------------- collection
def test_pareto_front_by_hand():
    cost = np.array([1.0, 2.0, 3.0, 2.5, np.nan, 1.0])
    acc = np.array([0.5, 0.7, 0.6, 0.8, 0.9, 0.4])
    assert pareto_front(cost, acc).tolist() == [True, True, False, True, False, False]


def _record(folder, stage: str, phase: str = "infer", model: str | None = None, items: int | None = 4,
            **tags) -> None:
    with CostRecorder(folder, stage, sample_interval_s=0.5).phase(phase, model=model, items=items, **tags):
        pass


def test_collect_reads_exactly_the_catalogs_cost_sources(tmp_path, monkeypatch):
    """Every folder ``catalog.cost_sources`` names counts (issue 11: the per-model training
    folders were dropped), and nothing else does."""
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke")
    sources = catalog.cost_sources(profile)
    training = [s for s in sources if s.what.startswith("training ")]
    assert [s.folder for s in training] == [catalog.cnn_model_store(profile, m, 0).dir for m in profile.cnn.models]
    assert sum(s.stage == "hard" for s in sources) == 2
    for source in sources:
        if source not in training:
            model = profile.restoration.backends[-1] if source.stage == "restoration" else f"{source.stage}-model"
            _record(source.folder, source.stage, model=model)
    for name in profile.cnn.models[1:]:
        _record(catalog.cnn_model_store(profile, name, 0).dir, "cnn", "train", name, 84, seed=0, start_epoch=0)
    first = profile.cnn.models[0]
    rec = CostRecorder(catalog.cnn_model_store(profile, first, 0).dir, "cnn")
    with pytest.raises(RuntimeError):
        with rec.phase("train", model=first, items=0, seed=0, start_epoch=0):
            raise RuntimeError("out of memory")
    time.sleep(1.1)  # started_at has second resolution
    with rec.phase("train", model=first, items=84, seed=0, start_epoch=0):  # the rerun counts
        with rec.phase("epoch", model=first, items=84, epoch=0):
            pass
    # folders the catalog does not name for this configuration do not count
    _record(catalog.cnn_store(load_profile("smoke", **{"cnn.epochs": 99})).dir, "cnn", model="other-config")
    _record(stage_dir(profile.name, "prompts", "not-a-hash"), "prompts", model="stray-folder")

    records = collect_cost_records(profile)
    assert not {"other-config", "stray-folder"} & set(records["model"])
    coverage = stage_coverage(profile, records)
    assert len(coverage) == len(sources) and (coverage["status"] == "recorded").all()
    row = coverage.set_index("what").loc[f"training {first} seed 0"]
    assert (row["n_records"], row["n_failed"], row["n_superseded"]) == (3, 1, 1)
    assert (records["stage"] == "hard").sum() == 2  # both data sets' folders
    train = records[(records["phase"] == "train") & (records["model"] == first)].sort_values("started_at")
    assert train["superseded"].tolist() == [True, False]
    assert train["status"].tolist() == ["failed", "ok"]
    epoch = records[records["phase"] == "epoch"].iloc[0]
    assert epoch["depth"] == 1 and epoch["phase_path"] == "train/epoch"

    table = phase_table(records)
    row = table[(table["model"] == first) & (table["phase_path"] == "train")].iloc[0]
    assert row["runs"] == 1 and row["failed"] == 0
    assert row["earlier_attempts"] == 1 and row["earlier_failed"] == 1
    assert row["earlier_wall_s"] == pytest.approx(train["wall_s"].iloc[0])
    assert (table["energy"] == "not measured").all() or torch.cuda.is_available()
    trained = training_table(records).set_index("model")
    assert list(trained.index) == list(profile.cnn.models)  # every trained CNN, not the newest only
    assert (trained["attempts"] == 1).all() and (trained["images_trained"] == 84).all()
    costs = model_cost_table(records).set_index("model")
    for name in profile.cnn.models:  # notebook 06's training time is notebook 03's
        assert costs.loc[name, "train_s"] == pytest.approx(trained.loc[name, "train_s"])
    assert costs.loc[first, "train_s"] == pytest.approx(train["wall_s"].iloc[1])  # the nested epoch not again
    assert costs.loc["vlm-model", "infer_images"] == 4
    assert costs.loc["vlm-model", "s_per_1000_images"] == pytest.approx(
        1000 * records.loc[records["model"] == "vlm-model", "wall_s"].sum() / 4)


def test_accuracy_meets_cost_by_model_and_backend_names():
    accuracy = pd.DataFrame({
        "model": ["resnet50", "ViT-B-32/openai", "gpt4v", "ViT-B-32/openai"],
        "backend": ["cnn", "clip", "recorded", "clip_probe"], "restoration": "none",
        "prompt": [NO_PROMPT, "default", "default", NO_PROMPT], "subset": "fer_eval_100",
        "n": [100, 100, 50, 100], "accuracy": [0.6, 0.4, 0.5, 0.3]})
    clip = "clip:ViT-B-32/openai"
    costs = pd.DataFrame({"model": ["resnet50", clip, f"{clip} probe"],
                          "train_s": [50.0, np.nan, 7.0], "infer_s": [1.0, 2.0, np.nan],
                          "s_per_image": [0.01, 0.02, np.nan]})
    latency = pd.DataFrame({"model": ["gpt4v"], "backend": ["recorded"], "mean_latency_s": [3.0]})
    frame = accuracy_vs_cost(accuracy, costs, latency).set_index("cost_key")
    assert frame.loc["clip:ViT-B-32/openai", "s_per_image"] == 0.02  # matched as clip:<model>
    assert frame.loc["recorded:gpt4v", "s_per_image"] == 3.0
    assert frame.loc["recorded:gpt4v", "cost_source"] == "latency_s of predictions"
    assert frame.loc["resnet50", "total_s"] == pytest.approx(50 + 0.01 * 100)
    probe = frame[frame["backend"] == "clip_probe"].iloc[0]
    assert probe["train_s"] == 7.0 and probe["s_per_image"] == 0.02  # the encoder's time
    assert probe["total_s"] == pytest.approx(7.0 + 0.02 * 100)
    assert frame["pareto_per_image"].tolist() == [True, False, False, False]  # resnet50 wins
    assert frame["pareto_total"].tolist() == [True, True, False, False]  # CLIP needs no training


def test_accuracy_by_model_scores_every_model_on_the_shared_draw(tmp_path, monkeypatch):
    """CNNs predict all of PrivateTest, VLMs the evaluation draw: notebook 06 compares them on
    the draw's ids (original faces, FER-7), with unparseable answers counted as wrong."""
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke")
    faces = load_faces(profile)
    define_subsets(profile, faces, load_evoked(profile), run_audit(profile, faces)["leakage"])
    private = catalog.select_subset(faces, profile, "fer_private")
    draw = catalog.select_subset(faces, profile, catalog.fer_eval_name(profile))
    rng = np.random.default_rng(0)
    cnn_pred = np.where(rng.random(len(private)) < 0.6, private.labels, (private.labels + 1) % 7)
    vlm_pred = np.where(rng.random(len(draw)) < 0.4, draw.labels, -1)
    restored = draw.with_pixels(draw.pixels, "bicubic-64")
    evoked = catalog.select_subset(load_evoked(profile), profile, "emotion6_all")
    predictions = pd.concat([
        make_predictions(**image_columns(private), y_pred=cnn_pred, model="resnet50", backend="cnn",
                         prompt=NO_PROMPT, seed=0),
        make_predictions(**image_columns(restored), y_pred=restored.labels, model="resnet50", backend="cnn",
                         prompt=NO_PROMPT, seed=0),
        make_predictions(**image_columns(draw), y_pred=vlm_pred,
                         parse_status=np.where(vlm_pred < 0, "unparseable", "json"), model="m",
                         backend="hf", prompt="default", seed=0),
        make_predictions(**image_columns(evoked), y_pred=evoked.labels, model="m", backend="hf",
                         prompt="default", seed=0)], ignore_index=True)
    accuracy = accuracy_by_model(predictions, profile).set_index("backend")
    assert sorted(accuracy.index) == ["cnn", "hf"]  # no restored faces, no Emotion6
    assert (accuracy["subset"] == "fer_eval_42").all() and (accuracy["n"] == 42).all()
    on_draw = np.isin(private.ids, draw.ids)
    assert accuracy.loc["cnn", "accuracy"] == pytest.approx((cnn_pred[on_draw] == private.labels[on_draw]).mean())
    assert accuracy.loc["hf", "accuracy"] == pytest.approx((vlm_pred == draw.labels).mean())
    costs = pd.DataFrame({"model": ["resnet50"], "train_s": [60.0], "infer_s": [1.0], "s_per_image": [0.01]})
    frame = accuracy_vs_cost(accuracy.reset_index(), costs).set_index("model")
    assert frame.loc["resnet50", "total_s"] == pytest.approx(60.0 + 0.01 * 42)


def test_accuracy_vs_cost_without_any_probe_or_clip_row():
    """The quick profile on a machine without CLIP weights: CNNs and a recorded model only."""
    accuracy = pd.DataFrame({"model": ["vgg19_bn", "gpt4v"], "backend": ["cnn", "recorded"],
                             "restoration": "none", "n": [3589, 3571],
                             "accuracy": [0.61, 0.64]})
    costs = pd.DataFrame({"model": ["vgg19_bn"], "train_s": [254.0], "infer_s": [2.0], "s_per_image": [0.001]})
    latency = pd.DataFrame({"model": ["gpt4v"], "backend": ["recorded"], "mean_latency_s": [np.nan]})
    frame = accuracy_vs_cost(accuracy, costs, latency).set_index("cost_key")
    assert frame.loc["vgg19_bn", "total_s"] == pytest.approx(254.0 + 0.001 * 3589)
    assert np.isnan(frame.loc["recorded:gpt4v", "s_per_image"])


def test_the_soft_vote_costs_the_training_and_time_per_image_of_all_its_members():
    accuracy = pd.DataFrame({"model": ["vgg19_bn", "resnet50", "soft_vote"],
                             "backend": ["cnn", "cnn", "cnn_ensemble"], "restoration": "none", "n": 1000,
                             "accuracy": [0.64, 0.56, 0.63]})
    costs = pd.DataFrame({"model": ["vgg19_bn", "resnet50"], "train_s": [3000.0, 2000.0], "infer_s": [5.0, 15.0],
                          "s_per_image": [0.005, 0.015]})
    latency = pd.DataFrame({"model": ["soft_vote"], "backend": ["cnn_ensemble"], "mean_latency_s": [0.5]})
    frame = accuracy_vs_cost(accuracy, costs, latency).set_index("model")
    vote = frame.loc["soft_vote"]
    assert (vote["train_s"], vote["s_per_image"]) == pytest.approx((5000.0, 0.02))  # not the latency fallback
    assert vote["total_s"] == pytest.approx(5000.0 + 0.02 * 1000)
    assert vote["cost_source"] == "sum of the 2 CNNs it averages (their cost records)"
    assert not vote["pareto_total"]  # dearer than VGG19-BN and less accurate


def test_restoration_cache_records_of_other_settings_do_not_count(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke")
    rec = CostRecorder(catalog.restoration_cache_dir(profile), "restoration", sample_interval_s=0.5)
    backend = profile.restoration.backends[-1]
    for model, size in [(backend, profile.restoration.output_size), (backend, 999),
                        ("not-a-backend-here", profile.restoration.output_size)]:
        with rec.phase("preprocess", model=model, items=3, output_size=size):
            pass
    records = collect_cost_records(profile)
    assert records["model"].tolist() == [backend]
    assert collect_cost_records(load_profile("smoke")).shape[0] == 1


def test_no_records_at_all_gives_empty_tables(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke")
    records = collect_cost_records(profile)
    assert records.empty
    coverage = stage_coverage(profile, records)
    assert len(coverage) == len(catalog.cost_sources(profile)) and (coverage["n_records"] == 0).all()
    assert (coverage["status"] == "not run: run notebooks/" + coverage["notebook"]).all()
    assert coverage.set_index("stage").loc["vlm", "notebook"] == "04_vlm_zero_shot.ipynb"
    assert phase_table(records).empty and model_cost_table(records).empty and training_table(records).empty


def test_tokens_and_latency_are_reported_when_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke")
    rec = CostRecorder(catalog.vlm_store(profile).dir, "vlm", sample_interval_s=0.5)
    with rec.phase("infer", model="hf:m", items=4) as h:
        h.extra.update(tokens_in=400, tokens_out=20)
    with rec.phase("infer", model="clip:c", items=2):
        pass
    costs = model_cost_table(collect_cost_records(profile)).set_index("model")
    assert costs.loc["hf:m", "tokens_in_per_image"] == 100
    assert costs.loc["hf:m", "tokens_out_per_image"] == 5
    assert np.isnan(costs.loc["clip:c", "tokens_out_per_image"])  # not recorded, not zero
    predictions = pd.DataFrame({"model": ["a", "a", "b"], "backend": ["hf"] * 3,
                                "latency_s": [1.0, 3.0, np.nan],
                                "raw_response": ["happy", "sad!", None]})
    latency = latency_table(predictions).set_index("model")
    assert latency.loc["a", "backend"] == "hf"
    assert latency.loc["a", "mean_latency_s"] == 2.0 and latency.loc["a", "n"] == 2
    assert latency.loc["a", "mean_answer_chars"] == 4.5 and "b" not in latency.index


def test_sizes_shrink_to_the_budget_in_proportion():
    assert fit_sizes_to_budget((100, 300, 1000), 2, 0.001, 10.0) == (100, 300, 1000)
    assert fit_sizes_to_budget((100, 300, 1000), 2, 0.01, None) == (100, 300, 1000)
    assert fit_sizes_to_budget((100, 300, 1000), 2, 0.01, 14.0) == (50, 150, 500)  # 28 s -> 14
    assert fit_sizes_to_budget((100, 300, 1000), 1, 10.0, 1.0) == (2, 3, 4)  # floor, distinct
    # 3 runs x 2 rounds x 1 s overhead = 6 s fixed; 14 s left for 28 s of images
    assert fit_sizes_to_budget((100, 300, 1000), 2, 0.01, 20.0, overhead_s=1.0) == (50, 150, 500)


def test_probe_cost_separates_overhead_from_per_image_time():
    per_image, overhead = probe_cost(lambda n: time.sleep(0.1 + 0.02 * n))
    assert per_image == pytest.approx(0.02, abs=0.01)
    assert overhead == pytest.approx(0.1, abs=0.04)


def test_generative_models_are_not_timed_on_a_cpu_unless_named():
    from emolib.cost.scaling import scaling_targets

    unnamed = scaling_targets(load_profile("smoke", **{"cost.scaling_models": None})).set_index("target")
    row = unnamed.loc["hf:tiny-random-llava"]
    assert row["status"] == "skipped" and "GPU" in row["reason"] and "cost.scaling_models" in row["reason"]
    assert unnamed.loc["cnn:resnet50", "status"] == "available"
    named = scaling_targets(load_profile("smoke", **{"cost.scaling_models": ["hf:tiny-random-llava"]}))
    assert named.set_index("target").loc["hf:tiny-random-llava", "status"] == "available"


def test_every_profile_gives_each_timed_model_a_budget():
    for name in ("smoke", "quick", "paper"):
        assert load_profile(name, check_machine=False).cost.scaling_budget_s is not None, name
