"""The machine's facts and the decisions a profile's ``auto`` settings become: injected facts
for CPUs with and without native bf16, 2 and 8 cores, CPU and CUDA."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from emolib import catalog
from emolib.config import ConfigError, load_profile
from emolib.machine import (
    NATIVE_BF16_ENV_VAR,
    DeviceError,
    Machine,
    _read_machine,
    assume_gpu,
    plan_machine,
    read_machine,
    resolve_device,
)
from emolib.train import stage
from emolib.train.loop import TrainSettings, autocast_for
from emolib.train.throughput import epoch_plan, packed_wall

AVX2 = Machine(cores=2, cpu="AMD EPYC", cpu_capability="AVX2", native_bf16=False, bf16_source="AVX2")
AMX = Machine(cores=2, cpu="Intel Xeon", cpu_capability="AVX512", native_bf16=True, bf16_source="AMX")
H100 = replace(AVX2, cores=16, cuda=("NVIDIA H100",), cuda_bf16=True, cuda_memory_gib=(79.2,))
T4 = replace(AVX2, cores=8, cuda=("Tesla T4",), cuda_bf16=False, cuda_memory_gib=(15.0,))


def quick():
    return load_profile("quick", check_machine=False)


def decision(plan, setting):
    return next(d for d in plan.decisions if d.setting == setting)


def test_auto_precision_is_fp32_on_a_cpu_without_native_bf16_and_bf16_where_it_is_native():
    avx2, amx = plan_machine(quick(), AVX2), plan_machine(quick(), AMX)
    assert avx2.precision == {"efficientnet_b0": "fp32", "resnet50": "fp32", "vgg19_bn": "fp32"}
    assert decision(avx2, "precision resnet50").reason == "auto: fp32, this CPU has no native bf16 (AVX2)"
    # quick keeps EfficientNet-B0 in fp32 everywhere (its depthwise convolutions are slower in bf16)
    assert amx.precision == {"efficientnet_b0": "fp32", "resnet50": "bf16", "vgg19_bn": "bf16"}
    assert decision(amx, "precision vgg19_bn").reason == "auto: bf16 autocast, this CPU computes bf16 natively (AMX)"
    assert avx2.precision_words("vgg19_bn") == "fp32 on this CPU"
    assert amx.precision_words("vgg19_bn") == "bf16 on this CPU"


def test_bf16_asked_for_on_a_cpu_without_it_is_kept_and_flagged():
    profile = load_profile("quick", check_machine=False, **{"cnn.precision": "bf16"})
    plan = plan_machine(profile, AVX2)
    assert plan.precision["vgg19_bn"] == "bf16" and plan.precision["efficientnet_b0"] == "fp32"
    assert "expect it several times slower than fp32" in decision(plan, "precision vgg19_bn").reason


@pytest.mark.parametrize(("cores", "threads", "workers", "per_worker"), [(1, 1, 1, 1), (2, 2, 2, 1), (8, 8, 3, 2)])
def test_threads_and_workers_follow_the_cores(cores, threads, workers, per_worker):
    plan = plan_machine(quick(), replace(AVX2, cores=cores))
    assert (plan.cnn_threads, plan.cnn_workers, plan.worker_threads) == (threads, workers, per_worker)
    assert decision(plan, "threads").reason == f"auto: the {cores} core(s) this process may use"
    # the same facts always give the same decisions: nothing is timed
    assert plan_machine(quick(), replace(AVX2, cores=cores)) == plan


def test_two_seeds_on_eight_cores_train_six_jobs_at_once_and_explicit_settings_win():
    plan = plan_machine(load_profile("quick", check_machine=False, **{"cnn.seeds": [0, 1]}), replace(AVX2, cores=8))
    assert (plan.cnn_workers, plan.worker_threads) == (6, 1)
    fixed = load_profile("quick", check_machine=False, **{"cnn.parallel": 2, "cnn.threads": 4})
    plan = plan_machine(fixed, replace(AVX2, cores=8))
    assert (plan.cnn_threads, plan.cnn_workers, plan.worker_threads) == (4, 2, 2)
    assert decision(plan, "workers").reason == "cnn.parallel: 2 in the profile"
    many = plan_machine(load_profile("quick", check_machine=False, **{"cnn.threads": 4}), AVX2)
    assert decision(many, "threads").reason == "4 in the profile, more than the 2 core(s) this process may use"


def test_a_gpu_trains_in_one_process_with_mixed_precision():
    plan = plan_machine(quick(), H100)
    assert plan.device == "cuda" and plan.cnn_workers == 1 and plan.cnn_threads == 16
    assert set(plan.precision.values()) == {"bf16", "fp32"}  # quick names EfficientNet-B0 fp32
    assert plan.precision["vgg19_bn"] == "bf16"
    assert decision(plan, "workers").reason.startswith("one process drives the GPU (cuda)")
    assert plan.precision_words("vgg19_bn") == "bf16 mixed precision on cuda"
    explicit = plan_machine(load_profile("quick", check_machine=False, **{"cnn.parallel": 2}), H100)
    assert explicit.cnn_workers == 1 and "cnn.parallel: 2 applies to a CPU only" in decision(explicit, "workers").reason
    old_gpu = plan_machine(load_profile("smoke", check_machine=False, device="auto"), T4)
    assert set(old_gpu.precision.values()) == {"fp16"}  # a GPU without bf16: fp16 with a gradient scaler
    with pytest.raises(DeviceError, match="Tesla T4 has no bf16; use auto"):
        plan_machine(load_profile("smoke", check_machine=False, device="auto", **{"cnn.precision": "bf16"}), T4)


def test_a_gpu_profile_plans_on_a_cpu_machine_but_does_not_run_there():
    paper = load_profile("paper", check_machine=False)
    with pytest.raises(DeviceError, match="this machine has 0 CUDA device"):
        plan_machine(paper, AVX2)
    plan = plan_machine(paper, assume_gpu(AVX2))
    assert plan.device == "cuda" and plan.cnn_workers == 1
    assert "planned for a CUDA GPU this machine does not have" in decision(plan, "device").reason
    assert assume_gpu(H100) == H100


def test_other_thread_counts_accept_auto():
    profile = load_profile("quick", check_machine=False, **{
        "restoration.realesrgan_threads": "auto", "vlm.torch_threads": "auto", "cost.scaling_threads": "auto"})
    plan = plan_machine(profile, replace(AVX2, cores=8))
    assert (plan.restoration_threads, plan.vlm_threads, plan.cost_threads) == (1, 8, 8)
    on_vulkan = load_profile("quick", check_machine=False, **{"restoration.realesrgan_threads": "auto",
                                                              "restoration.realesrgan_gpuid": 0})
    assert plan_machine(on_vulkan, AVX2).restoration_threads == 1
    fixed = load_profile("quick", check_machine=False, **{"restoration.realesrgan_threads": 3})
    assert plan_machine(fixed, AVX2).restoration_threads == 3
    assert plan_machine(load_profile("paper", check_machine=False), assume_gpu(AVX2)).vlm_threads is None  # null


@pytest.mark.parametrize(("key", "value", "message"), [
    ("cnn.threads", 0, "cnn.threads: 0 must be at least 1, or auto"),
    ("cnn.parallel", "many", "cnn.parallel: 'many' fits none of"),
    ("cost.scaling_threads", -1, "cost.scaling_threads: -1 must be at least 1"),
    ("vlm.torch_threads", 0, "vlm.torch_threads: 0 must be at least 1"),
    ("restoration.realesrgan_threads", 0, "restoration.realesrgan_threads: 0 must be at least 1"),
    ("cnn.precision", "fp16", "cnn.precision: 'fp16' is not one of"),
    ("cnn.per_model", {"resnet50": {"precision": "half"}}, "cnn.per_model.resnet50.precision: 'half' is not one of"),
    ("cnn.bf16_models", ["vgg19_bn"], "cnn.bf16_models is no longer a setting; use cnn.precision"),
])
def test_bad_hardware_settings_stop_at_load(key, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_profile("quick", check_machine=False, **{key: value})


def test_the_decided_precision_names_the_cnn_store_and_the_description():
    profile = quick()
    for name in ("resnet50", "vgg19_bn"):
        assert catalog.cnn_model_key(profile, name, AVX2) != catalog.cnn_model_key(profile, name, AMX)
    assert catalog.cnn_model_key(profile, "efficientnet_b0", AVX2) == catalog.cnn_model_key(profile, "efficientnet_b0",
                                                                                             AMX)
    assert stage.settings_for(profile, "vgg19_bn", 0, AMX).precision == "bf16"
    assert stage.settings_for(profile, "vgg19_bn", 0, AVX2).precision == "fp32"
    assert stage.settings_for(profile, "vgg19_bn", 0, H100).device == "cuda"
    assert stage.describe_model(profile, "vgg19_bn", AVX2).endswith(", fp32 on this CPU")
    assert stage.describe_model(profile, "resnet50", AMX).endswith(", bf16 on this CPU")


def test_autocast_follows_the_precision():
    x = torch.randn(4, 8)
    layer = torch.nn.Linear(8, 2)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        with autocast_for(TrainSettings(precision=precision)):
            assert layer(x).dtype == dtype


def test_quick_epochs_run_in_the_workers_then_alone_with_every_thread():
    profile, plan = quick(), plan_machine(quick(), AVX2)
    epochs = epoch_plan(profile, plan, "vgg19_bn")
    alone = profile.cnn.alone_epochs("vgg19_bn")
    assert alone > 0 and [e[2] for e in epochs] == ["worker"] * (len(epochs) - alone) + ["alone"] * alone
    assert {e[1] for e in epochs if e[2] == "alone"} == {2} and {e[1] for e in epochs if e[2] == "worker"} == {1}
    sizes = profile.cnn.model("resnet50").epoch_sizes
    assert [e[0] for e in epoch_plan(profile, plan, "resnet50")] == list(sizes or [profile.cnn.input_size] *
                                                                         profile.cnn.epochs_of("resnet50"))
    serial = epoch_plan(profile, plan_machine(quick(), replace(AVX2, cores=1)), "vgg19_bn")
    assert {e[1:] for e in serial} == {(1, "worker")}


def test_jobs_are_packed_onto_the_first_free_worker():
    # issue 13's quick run: EfficientNet-B0 907 s alone on one worker; ResNet-50 603 s then VGG19-BN's
    # worker epochs 205 s on the other; then VGG19-BN's last epochs 186 s with both threads
    assert packed_wall(np.array([907.0, 603.0, 205.0]), np.array([0.0, 0.0, 186.0]), 2) == pytest.approx(1093.0)
    assert packed_wall(np.array([10.0, 20.0, 30.0]), np.zeros(3), 1) == 60.0
    assert packed_wall(np.array([10.0, 20.0, 30.0]), np.zeros(3), 3) == 30.0


def test_this_machine_is_read_from_the_cores_it_may_use_and_torchs_cpu_report(monkeypatch):
    machine = read_machine()
    assert machine.cores == len(os.sched_getaffinity(0))
    assert machine.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert machine.native_bf16 == (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    assert resolve_device("auto", machine=machine) == ("cuda" if torch.cuda.is_available() else "cpu")
    for value, native in (("0", False), ("1", True)):
        monkeypatch.setenv(NATIVE_BF16_ENV_VAR, value)
        _read_machine.cache_clear()
        forced = read_machine()
        assert forced.native_bf16 is native and forced.bf16_source.startswith(f"{NATIVE_BF16_ENV_VAR}={value}")
    monkeypatch.setenv(NATIVE_BF16_ENV_VAR, "yes")
    _read_machine.cache_clear()
    with pytest.raises(DeviceError, match=f"{NATIVE_BF16_ENV_VAR}='yes': use 1"):
        read_machine()
    monkeypatch.delenv(NATIVE_BF16_ENV_VAR)
    _read_machine.cache_clear()


def test_plan_command_plans_a_gpu_profile_on_this_cpu_machine():
    out = subprocess.run([sys.executable, "-m", "emolib.run.cli", "plan", "paper", "--device", "cuda", "--no-probe"],
                         capture_output=True, text=True, check=True).stdout
    assert "device cuda -> cuda" in out
    assert torch.cuda.is_available() or "planned for a CUDA GPU this machine does not have" in out
    assert "gpu_memory" in out and "one process drives the GPU (cuda)" in out


def test_the_plan_estimates_training_from_a_probe_of_each_model():
    from emolib.train.throughput import estimate_training, training_images

    smoke = load_profile("smoke")
    assert training_images(smoke) == 12 * 7 and training_images(quick()) == 28_709
    assert training_images(load_profile("quick", check_machine=False, **{"cnn.train_subset": 500})) == 500
    table = estimate_training(smoke, plan_machine(smoke))
    assert table["model"].tolist() == list(smoke.cnn.models) and (table["images"] == 84).all()  # 1 epoch each
    assert (table["worker_s"] > 0).all() and (table["alone_s"] == 0).all()
    assert table["wall_s"].iloc[0] == pytest.approx(table["worker_s"].sum())  # no workers: one after another
    with pytest.raises(ValueError, match="no estimate: planned for a CUDA GPU"):
        estimate_training(smoke, plan_machine(load_profile("smoke", check_machine=False, device="cuda"),
                                              assume_gpu(AVX2)))
