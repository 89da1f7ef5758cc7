"""Cost recording, collection, FLOPs and scaling fits, against known work and hand counts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from emolib import cost_report
from emolib.config import load_profile
from emolib.cost import CostRecorder, EnergyProbe, RaplMeter, find_rapl_meter, read_cost_records
from emolib.cost_models import (
    best_of_repeats,
    build_cnn,
    count_flops,
    count_parameters,
    fit_scaling,
    fit_sizes_to_budget,
    flops_per_image,
    make_image_runner,
    measure_scaling,
    probe_cost,
)
from emolib.cost_report import (
    STUDY_STAGES,
    collect_cost_records,
    current_hashes,
    model_cost_table,
    pareto_front,
    phase_table,
    stage_coverage,
)
from emolib.paths import RESULTS_ENV_VAR, stage_dir
from emolib.store import StageStore


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
    real = build_cnn("resnet18", 7, 1)
    meta = build_cnn("resnet18", 7, 1, device="meta")
    assert flops_per_image(meta, (1, 48, 48)) == flops_per_image(real, (1, 48, 48))
    assert count_parameters(meta) == count_parameters(real)
    assert real.conv1.in_channels == 1 and real.fc.out_features == 7


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


def _simulate_stage(profile, stage: str, *extra_parts, model: str | None = None,
                    wall: float = 0.0, meta: bool = True, folder=None) -> Path:
    store = StageStore(profile, stage, getattr(profile, stage, None), *extra_parts)
    folder = folder or store.dir
    rec = CostRecorder(folder, stage, sample_interval_s=0.5)
    with rec.phase("infer", model=model, items=4):
        time.sleep(wall)
    if meta:
        store.write_meta()
    return folder


def test_collect_records_of_every_stage(tmp_path, monkeypatch):
    """Stages with a store function are judged by its exact hash, the others by meta."""
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke")
    known = current_hashes(profile)
    assert {"data", "cnn", "vlm", "hard"} <= set(known) and len(known["hard"]) == 2
    for stage in (*STUDY_STAGES, "hard"):
        for h in sorted(known.get(stage, [None])):
            folder = stage_dir(profile.name, stage, h) if h else None
            model = profile.restoration.backends[-1] if stage == "restoration" else f"{stage}-model"
            _simulate_stage(profile, stage, model=model, folder=folder,
                            meta=folder is None)
    _simulate_stage(profile, "cnn", "stale", model="resnet50", meta=False)  # another hash
    cnn_dir = stage_dir(profile.name, "cnn", next(iter(known["cnn"])))
    rec = CostRecorder(cnn_dir, "cnn")
    with pytest.raises(RuntimeError):
        with rec.phase("train", model="cnn-model", seed=0):
            raise RuntimeError("interrupted")
    time.sleep(1.1)  # started_at has second resolution
    with rec.phase("train", model="cnn-model", seed=0):  # the rerun: the newest record counts
        with rec.phase("epoch", model="cnn-model", items=8, epoch=0):
            pass

    records = collect_cost_records(profile)
    coverage = stage_coverage(records).set_index("stage")
    assert (coverage.loc[list(STUDY_STAGES), "n_records"] > 0).all()
    rules = records.groupby("stage")["selected_by"].first()
    assert rules["cnn"] == "store function" and rules["prompts"] == "config match"
    assert "resnet50" not in set(records["model"])  # the stale folder
    assert (records["stage"] == "hard").sum() == 2  # both data sets' folders are current
    train = records[records["phase"] == "train"].sort_values("started_at")
    assert train["superseded"].tolist() == [True, False]
    assert train["status"].tolist() == ["failed", "ok"]
    epoch = records[records["phase"] == "epoch"].iloc[0]
    assert epoch["depth"] == 1 and epoch["phase_path"] == "train/epoch"
    everything = collect_cost_records(profile, include_all=True)
    assert (everything["selected_by"] == "stale").sum() == 1

    table = phase_table(records)
    row = table[(table["model"] == "cnn-model") & (table["phase_path"] == "train")].iloc[0]
    assert row["runs"] == 1 and row["failed"] == 0
    assert row["earlier_attempts"] == 1 and row["earlier_failed"] == 1
    assert row["earlier_wall_s"] == pytest.approx(train["wall_s"].iloc[0])
    assert (table["energy"] == "not measured").all() or torch.cuda.is_available()
    costs = model_cost_table(records).set_index("model")
    assert costs.loc["vlm-model", "infer_images"] == 4
    assert costs.loc["vlm-model", "s_per_1000_images"] == pytest.approx(
        1000 * records.loc[records["model"] == "vlm-model", "wall_s"].sum() / 4)


def test_meta_config_decides_without_a_store_function(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(cost_report, "STAGE_STORES", {})
    profile = load_profile("smoke")
    _simulate_stage(profile, "cnn", model="a")
    _simulate_stage(profile, "cnn", "vgg19_bn", model="b")  # a second current folder
    _simulate_stage(load_profile("smoke", **{"cnn.epochs": 99}), "cnn", model="stale")
    records = collect_cost_records(profile)
    assert sorted(records["model"]) == ["a", "b"]
    assert set(records["selected_by"]) == {"config match"}


def test_unjudged_folders_fall_back_to_the_newest(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke")
    _simulate_stage(profile, "prompts", "run-a", model="old", meta=False)
    time.sleep(1.1)
    _simulate_stage(profile, "prompts", "run-b", model="new", meta=False)
    records = collect_cost_records(profile)
    assert records["model"].tolist() == ["new"] and records["selected_by"].tolist() == ["newest"]
    assert json.loads(json.dumps(records["tags"].iloc[0])) == {}


def test_accuracy_meets_cost_by_model_and_backend_names():
    accuracy = pd.DataFrame({
        "model": ["resnet50", "resnet50", "ViT-B-32/openai", "gpt4v", "ViT-B-32/openai"],
        "backend": ["cnn", "cnn", "clip", "recorded", "clip_probe"],
        "variant": ["restoration=none", "restoration=bicubic", "prompt=default", "base", "probe"],
        "n": [100, 100, 100, 50, 100], "accuracy": [0.6, 0.62, 0.4, 0.5, 0.3]})
    primary = cost_report.primary_variants(accuracy)
    assert primary["variant"].tolist() == ["restoration=none", "prompt=default", "base", "probe"]
    clip = "clip:ViT-B-32/openai"
    costs = pd.DataFrame({"model": ["resnet50", clip, f"{clip} probe"],
                          "train_s": [50.0, np.nan, 7.0], "infer_s": [1.0, 2.0, np.nan],
                          "s_per_image": [0.01, 0.02, np.nan]})
    latency = pd.DataFrame({"model": ["gpt4v"], "backend": ["recorded"], "mean_latency_s": [3.0]})
    frame = cost_report.accuracy_vs_cost(primary, costs, latency).set_index("cost_key")
    assert frame.loc["clip:ViT-B-32/openai", "s_per_image"] == 0.02  # matched as clip:<model>
    assert frame.loc["recorded:gpt4v", "s_per_image"] == 3.0
    assert frame.loc["recorded:gpt4v", "cost_source"] == "latency_s of predictions"
    assert frame.loc["resnet50", "total_s"] == pytest.approx(50 + 0.01 * 100)
    probe = frame[frame["backend"] == "clip_probe"].iloc[0]
    assert probe["train_s"] == 7.0 and probe["s_per_image"] == 0.02  # the encoder's time
    assert probe["total_s"] == pytest.approx(7.0 + 0.02 * 100)
    assert frame["pareto_per_image"].tolist() == [True, False, False, False]  # resnet50 wins
    assert frame["pareto_total"].tolist() == [True, True, False, False]  # CLIP needs no training


def test_accuracy_vs_cost_without_any_probe_or_clip_row():
    """The quick profile on a machine without CLIP weights: CNNs and a recorded model only."""
    accuracy = pd.DataFrame({"model": ["vgg19_bn", "gpt4v"], "backend": ["cnn", "recorded"],
                             "variant": ["restoration=none", "base"], "n": [3589, 3571],
                             "accuracy": [0.61, 0.64]})
    costs = pd.DataFrame({"model": ["vgg19_bn"], "train_s": [254.0], "infer_s": [2.0], "s_per_image": [0.001]})
    latency = pd.DataFrame({"model": ["gpt4v"], "backend": ["recorded"], "mean_latency_s": [np.nan]})
    frame = cost_report.accuracy_vs_cost(accuracy, costs, latency).set_index("cost_key")
    assert frame.loc["vgg19_bn", "total_s"] == pytest.approx(254.0 + 0.001 * 3589)
    assert np.isnan(frame.loc["recorded:gpt4v", "s_per_image"])


def test_restoration_cache_records_of_other_settings_do_not_count(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke")
    folder = stage_dir(profile.name, "restoration", "image_cache")
    rec = CostRecorder(folder, "restoration", sample_interval_s=0.5)
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
    records = collect_cost_records(load_profile("smoke"))
    assert records.empty
    assert (stage_coverage(records)["selected_by"] == "no records yet").all()
    assert phase_table(records).empty and model_cost_table(records).empty


def test_tokens_and_latency_are_reported_when_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke")
    rec = CostRecorder(stage_dir(profile.name, "vlm", next(iter(current_hashes(profile)["vlm"]))),
                       "vlm", sample_interval_s=0.5)
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
    latency = cost_report.latency_table(predictions).set_index("model")
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
