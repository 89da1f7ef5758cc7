"""Bad profile values stop at load, naming the profile file, the key, the value and what is
allowed: one table of cases, each a setting written into a copy of ``configs/quick.yaml``.
The data loaders' bad inputs are in ``test_bad_inputs_data.py``."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from emolib.config import ConfigError, configs_dir, load_profile
from emolib.schema import deep_merge, expand_dotted

# (dotted key, bad value, fragments the message must hold besides the file and the key)
CASES = [
    ("cnn.batch_size", -8, ["-8", "at least 1"]),
    ("cnn.models", ["resnet51"], ["'resnet51'", "did you mean 'resnet50'", "efficientnet_b0"]),
    ("data.eval_size", -5, ["-5", "at least 1"]),
    ("cnn.lr", -0.1, ["-0.1", "in (0, 10]"]),
    ("bootstrap_samples", -1, ["-1", "at least 1"]),
    ("cnn.epochs", 0, ["0 is out of range", "at least 1"]),
    ("vlm.batch_size", 0, ["0 is out of range", "at least 1"]),
    ("data.phash_threshold", 99, ["99", "in [0, 64]"]),
    ("restoration.selected", "bicubicc", ["'bicubicc'", "did you mean 'bicubic'", "realesrgan-x4"]),
    ("restoration.backends", ["none", "gfpgan-v2"], ["'gfpgan-v2'", "gfpgan-v1.4"]),
    ("restoration.eval_backends", ["lanczos_unsharp"], ["did you mean 'lanczos-unsharp'"]),
    ("vlm.embedding_threshold", 1.5, ["1.5", "in (0, 1]"]),
    ("cnn.per_model.resnet50.batch_size", 0, ["0 is out of range", "at least 1"]),
    ("cnn.per_model.resnet50.lr", "fast", ["cnn.per_model.resnet50.lr", "expected float, got str 'fast'"]),
    ("cnn.per_model.vgg19_bn.optimizer", "adam", ["'adam' is not one of ['adamw', 'sgd']"]),
    ("cnn.per_model.vgg19_bn.precision", "fp8", ["'fp8' is not one of"]),
    ("cnn.per_model.vgg16", {"width": 0.5}, ["unknown name 'vgg16'", "did you mean 'vgg19'"]),
    ("cnn.per_model.vgg19_bn.width", 0.0, ["cnn.per_model.vgg19_bn.width", "0.0 is out of range", "in (0, 4]"]),
    ("cnn.per_model.resnet50.stem_stride", 8, ["8 is out of range", "in [1, 4]"]),
    ("cnn.label_smoothing", 1.0, ["1.0 is out of range", "in [0, 1)"]),
    ("cnn.seeds", [0, -2], ["cnn.seeds[1]", "-2", "at least 0"]),
    ("cnn.input_size", 4, ["4 is out of range", "at least 8"]),
    ("prompts.variants", ["bse"], ["'bse'", "did you mean 'base'"]),
    ("prompts.alpha", 0.0, ["0.0 is out of range", "in (0, 1)"]),
    ("prompts.order_labels", 9, ["9 is out of range", "in [2, 6]"]),
    ("cost.scaling_sizes", [100, -1], ["cost.scaling_sizes[1]", "at least 1"]),
    ("human_eval.plausibility_thresholds", [0.1, 3], ["human_eval.plausibility_thresholds[1]", "in [0, 1]"]),
    ("vlm.max_retries", -1, ["-1", "at least 0"]),
    ("data.subsample.train", 0, ["data.subsample.train", "at least 1"]),
    ("restoration.realesrgan_threads", 0, ["at least 1, or auto"]),
    ("data.sets", [{"name": "art", "loader": "folders", "path": "x"}], ["unknown loader 'folders'", "class_folders"]),
    ("data.sets", [{"name": "art", "loader": "class_folders", "path": "x", "label_set": "emotion9",
                    "role": "evoked"}], ["'emotion9'"]),
    ("cnn.precision", "bf17", ["'bf17' is not one of"]),
]


def write_profile(folder, key: str, value) -> str:
    """A copy of quick.yaml with ``key`` set to ``value``, as a user would edit it."""
    raw = yaml.safe_load((configs_dir() / "quick.yaml").read_text())
    path = folder / "mine.yaml"
    path.write_text(yaml.safe_dump(deep_merge(raw, expand_dotted({key: value}))))
    return str(path)


@pytest.mark.parametrize(("key", "value", "fragments"), CASES, ids=[f"{k}={v}" for k, v, _ in CASES])
def test_bad_value_names_file_key_value_and_what_is_allowed(tmp_path, key, value, fragments):
    path = write_profile(tmp_path, key, value)
    with pytest.raises(ConfigError) as caught:
        load_profile(path, check_machine=False)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert key in message
    for fragment in fragments:
        assert fragment in message, message


def test_the_good_profiles_load():
    for name in ("smoke", "quick", "paper", "paper-vllm", "rehearsal"):
        assert load_profile(name, check_machine=False).name == name


def test_emolib_plan_stops_before_any_work(tmp_path):
    """The plan (and run_all.sh's preflight, which calls load_profile the same way) refuses the
    profile with the same message and exit status 2, before it probes or plans anything."""
    path = write_profile(tmp_path, "cnn.batch_size", -8)
    run = subprocess.run([sys.executable, "-m", "emolib.run.cli", "plan", path, "--no-probe"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2
    assert f"{path}: cnn.batch_size: -8 is out of range; it must be at least 1" in run.stderr + run.stdout
    assert "Traceback" not in run.stderr


def test_the_registry_is_what_the_stages_dispatch_on():
    """A name the profile check accepts is one a stage can run, and the other way round."""
    from emolib import registry
    from emolib.data.sets import LOADERS
    from emolib.restore.stage import backend_family
    from emolib.train.models import MODEL_NAMES, build_model

    assert set(LOADERS) == set(registry.DATA_LOADERS)
    assert MODEL_NAMES == registry.CNN_MODELS
    assert build_model("resnet50", 7).fc.out_features == 7
    families = [backend_family(b) for b in registry.RESTORATION_BACKENDS]
    assert families == ["none"] + ["classical"] * 3 + ["realesrgan"] * 5 + ["gfpgan"] * 2
    with pytest.raises(ValueError, match="unknown restoration backend 'bicubicc'"):
        backend_family("bicubicc")
