"""Profiles: loading, overrides, validation errors, stable hashes."""

from __future__ import annotations

import pytest
import torch

from emolib.config import ConfigError, Profile, config_hash, load_profile
from emolib.machine import DeviceError, check_device, resolve_device
from emolib.vlm.types import ModelSpec


@pytest.mark.parametrize("name", ["smoke", "quick", "paper"])
def test_every_profile_loads(name):
    # paper asks for a GPU: its settings are read anywhere, the machine is checked on a GPU
    profile = load_profile(name, check_machine=name != "paper")
    assert isinstance(profile, Profile) and profile.name == name


def test_smoke_needs_no_data():
    assert load_profile("smoke").data.source == "synthetic"
    assert load_profile("quick").data.source == "real"


def test_dotted_and_nested_overrides():
    assert load_profile("quick", **{"cnn.epochs": 2}).cnn.epochs == 2
    assert load_profile("quick", data={"subsample": {"train": 100}}).data.subsample.train == 100
    assert load_profile("quick", data={"subsample": {"train": 100}}).data.fer2013 == "fer2013/fer2013.zip"


def test_lists_become_tuples_and_ints_become_floats():
    profile = load_profile("smoke", **{"cnn.lr": 1, "cnn.models": ["resnet50"]})
    assert profile.cnn.lr == 1.0 and isinstance(profile.cnn.lr, float)
    assert profile.cnn.models == ("resnet50",)


def test_unknown_key_is_named_with_allowed_keys(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("cnn:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: cnn: unknown key\(s\) \['epoch'\].*'epochs'"):
        load_profile(path)


def test_wrong_type_is_named(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("cnn:\n  epochs: three\n")
    with pytest.raises(ConfigError, match=r"cnn.epochs: expected int, got str 'three'"):
        load_profile(path)
    with pytest.raises(ConfigError, match=r"expected int, got the boolean"):
        load_profile("quick", **{"cnn.epochs": True})


def test_literal_values_are_checked():
    with pytest.raises(ConfigError, match=r"data.source: 'fake' is not one of \['real', 'synthetic'\]"):
        load_profile("quick", **{"data.source": "fake"})


def test_missing_profile_file_lists_known_profiles():
    with pytest.raises(ConfigError, match=r"does not exist; known profiles: .*'quick'.*'smoke'"):
        load_profile("no_such_profile")


def test_config_hash_is_stable_and_sensitive():
    a, b = load_profile("quick"), load_profile("quick")
    assert config_hash(a.data) == config_hash(b.data)
    assert len(config_hash(a)) == 12
    assert config_hash(a.data) != config_hash(load_profile("quick", **{"data.phash_threshold": 5}).data)
    # a change in one stage leaves another stage's hash alone
    assert config_hash(a.data) == config_hash(load_profile("quick", **{"cnn.epochs": 1}).data)
    assert config_hash({"x": 1, "y": 2}) == config_hash({"y": 2, "x": 1})


def test_per_model_overrides_are_typed_and_checked_at_load():
    tuned = load_profile("smoke", **{"cnn.per_model": {"resnet50": {"epochs": 3, "lr": 1}}})
    assert tuned.cnn.model("resnet50").training_overrides() == {"epochs": 3, "lr": 1.0}
    assert isinstance(tuned.cnn.model("resnet50").lr, float)
    assert tuned.cnn.model("vgg19_bn").training_overrides() == {}
    assert tuned.cnn.width_of("vgg19_bn") == 0.25 and tuned.cnn.width_of("resnet50") == 1.0  # smoke.yaml
    with pytest.raises(ConfigError, match=r"per_model.resnet50: unknown key\(s\) \['epoch'\] .*allowed: .*'epochs'"):
        load_profile("smoke", **{"cnn.per_model": {"resnet50": {"epoch": 3}}})
    with pytest.raises(ConfigError, match=r"cnn.per_model.vgg16: unknown name 'vgg16'; did you mean 'vgg19'"):
        load_profile("smoke", **{"cnn.per_model": {"vgg16": {"epochs": 3}}})
    # a model left out of cnn.models may keep its block (unused), so narrowing models keeps a profile valid
    assert load_profile("quick", **{"cnn.models": ["vgg19_bn"]}).cnn.models == ("vgg19_bn",)


def test_progressive_sizes_regularisation_and_alone_share_are_checked_at_load():
    tuned = load_profile("smoke", **{"cnn.input_size": 48, "cnn.per_model": {
        "resnet50": {"epochs": 3, "epoch_sizes": [32, 40, 48], "alone_share": 0.6},
        "vgg19_bn": {"dropout": 0.1}, "efficientnet_b0": {"stochastic_depth": 0}}})
    assert tuned.cnn.model("resnet50").epoch_sizes == (32, 40, 48)
    assert tuned.cnn.model("efficientnet_b0").stochastic_depth == 0.0
    for sizes, why in (([32, 48], "one input size"), ([32, 48, 40], "the last equal to cnn.input_size \\(48\\)")):
        with pytest.raises(ConfigError, match=r"cnn.per_model.resnet50.epoch_sizes .*" + why):
            load_profile("smoke", **{"cnn.input_size": 48,
                                     "cnn.per_model": {"resnet50": {"epochs": 3, "epoch_sizes": sizes}}})
    assert tuned.cnn.alone_epochs("resnet50") == 2 and tuned.cnn.alone_epochs("vgg19_bn") == 0  # 0.6 x 3
    assert load_profile("quick", **{"cnn.epochs": 2}).cnn.alone_epochs("vgg19_bn") == 1  # follows an override
    for key, value, message in (
            ("resnet50.alone_share", 1.5, r"resnet50.alone_share: 1.5 is out of range; it must be in \(0, 1\]"),
            ("resnet50.epoch_sizes", [4, 48], r"resnet50.epoch_sizes\[0\]: 4 is out of range; it must be at least 8"),
            ("resnet50.dropout", 0.1, r"resnet50.dropout: ResNet-50 has no dropout"),
            ("vgg19_bn.stochastic_depth", 0.1, r"vgg19_bn.stochastic_depth: only efficientnet_b0"),
            ("vgg19_bn.dropout", 1.0, r"vgg19_bn.dropout: 1.0 is out of range; it must be in \[0, 1\)"),
            ("vgg19_bn.width", "wide", r"vgg19_bn.width: expected float, got str 'wide'")):
        with pytest.raises(ConfigError, match=r"cnn.per_model." + message):
            load_profile("smoke", **{f"cnn.per_model.{key}": value})



def test_evaluation_sizes_live_in_the_data_section():
    smoke = load_profile("smoke")
    assert (smoke.data.eval_size, smoke.data.emotion6_eval_size) == (42, 24)
    for moved in ("restoration.eval_size", "vlm.fer_eval_size", "vlm.emotion6_eval_size"):
        with pytest.raises(ConfigError, match=r"unknown key\(s\) \['\w*eval_size'\]"):
            load_profile("smoke", **{moved: 10})


# ----------------------------------------------------------------------------- devices
@pytest.fixture
def cpu_only(monkeypatch):
    """This machine as a CPU-only one (it is, in CI; on a GPU machine the GPU is hidden)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_a_misspelt_device_is_refused_at_load_with_the_fix(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("device: gpu\n")
    fix = r"'gpu' is not a device; use auto, cpu, cuda, cuda:N or mps"
    with pytest.raises(DeviceError, match=r"mine.yaml: device: " + fix):
        load_profile(path)
    with pytest.raises(DeviceError, match=fix):  # a spelling is wrong on every machine
        load_profile(path, check_machine=False)
    with pytest.raises(DeviceError, match="not a device"):
        load_profile("smoke", device="cuda:x")
    assert [check_device(d) for d in ("auto", "cpu", "cuda", "cuda:1", "mps")] == ["auto", "cpu", "cuda",
                                                                                   "cuda:1", "mps"]


def test_cuda_on_a_cpu_only_machine_fails_at_load_naming_auto(cpu_only):
    with pytest.raises(DeviceError, match=r"'cuda' asked for, but this machine has 0 CUDA device\(s\).*"
                                          r"set `device: auto`"):
        load_profile("smoke", device="cuda")
    with pytest.raises(DeviceError, match=r"paper.yaml: device: .*set `device: auto`"):
        load_profile("paper")  # the GPU profile, before any work
    assert load_profile("paper", check_machine=False).device == "cuda"
    assert resolve_device("auto") == "cpu" and load_profile("smoke", device="auto").device == "auto"
    with pytest.raises(DeviceError, match="no Apple GPU; set `device: auto`"):
        resolve_device("mps")


def test_a_cuda_index_beyond_the_machines_gpus_fails():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(DeviceError, match=rf"'cuda:{count}' asked for, but this machine has {count} CUDA"):
        resolve_device(f"cuda:{count}")


def test_plan_lists_every_model_once_in_notebook_order():
    from emolib.machine import assume_gpu, plan_machine, read_machine
    from emolib.run.plan import not_in_process, plan_notes, profile_plan

    profile = load_profile("paper", check_machine=False)
    plan = profile_plan(profile, plan_machine(profile, assume_gpu(read_machine())))
    assert list(plan["step"]) == list(range(1, len(plan) + 1))
    assert list(plan["notebook"]) == sorted(plan["notebook"])  # notebook order
    trained = plan[plan["stage"] == "cnn"]
    assert len(trained) == len(profile.cnn.models) * len(profile.cnn.seeds)
    vlm = plan[plan["stage"] == "vlm"]
    assert len(vlm) == len(profile.vlm.clip_models) + len(profile.vlm.hf_models) + len(profile.vlm.openai_models) + len(
        profile.vlm.recorded)
    assert (vlm.loc[vlm["what"].str.startswith("load hf:"), "device"] == "cuda").all()
    assert vlm.loc[vlm["what"].str.startswith("load hf:"), "gpu_memory"].str.match(r"~\d+-\d+ GB").all()
    # Phi-3.5-Vision's own code does not run on the installed transformers: the plan says so, with the route
    phi = vlm[vlm["what"].str.startswith("hf:microsoft/Phi-3.5-vision-instruct: not run in this process")]
    assert len(phi) == 1 and phi["device"].item() == "none"
    assert any("vllm serve microsoft/Phi-3.5-vision-instruct" in line for line in plan_notes(profile))
    assert not_in_process(profile, ModelSpec("hf", "llava-hf/llava-1.5-7b-hf")) == ""
    assert plan.loc[plan["stage"] == "cnn", "how"].str.match(r"bf16, \d+ thread\(s\)$").all()  # no CPU workers


def test_paper_vllm_example_serves_the_paper_models_through_vllm_endpoints():
    from emolib.config import configs_dir

    profile = load_profile(configs_dir() / "paper-vllm.yaml", check_machine=False)
    paper = load_profile("paper", check_machine=False)
    assert profile.name == "paper-vllm" and profile.device == "cuda" and profile.vlm.hf_models == ()
    served = {e.model: e for e in profile.vlm.endpoints}
    assert set(served) == set(paper.vlm.hf_models)  # the paper's generative models, each behind a server
    assert set(served) <= set(profile.vlm.openai_models)  # endpoint models join the OpenAI-compatible list
    assert len({e.base_url for e in served.values()}) == len(served)  # one vLLM server (port) per model
    assert all(e.base_url.startswith("http://") and e.api_key_env == "VLLM_API_KEY" and e.guided == "none"
               for e in served.values())
    # everything else is the paper profile
    assert (profile.data, profile.cnn, profile.restoration) == (paper.data, paper.cnn, paper.restoration)
    assert profile.vlm.clip_models == paper.vlm.clip_models and profile.vlm.recorded == paper.vlm.recorded
    assert profile.vlm.clip_benchmark_models == paper.vlm.clip_benchmark_models


def test_notebook_parameters_of_the_wrong_type_are_named():
    with pytest.raises(ConfigError, match="overrides must be a mapping of dotted keys.*got str 'cnn.epochs=2'"):
        load_profile("smoke", overrides="cnn.epochs=2")
    with pytest.raises(ConfigError, match="profile must be a profile name or a YAML path, got int 3"):
        load_profile(3)
    assert load_profile("smoke", overrides={"cnn.epochs": 2}, seed=5).cnn.epochs == 2
