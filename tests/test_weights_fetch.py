"""Weights as a step: the registry of a profile, and ``emolib fetch`` against a local Hugging
Face hub started by the test (HF_ENDPOINT): dry run, a download through connections that are
cut with a TCP reset, resume within a call and across calls, verification, gated repos and
HF_TOKEN, and a backend that loads what was fetched (or fetches it on first use) and predicts."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest
import yaml
from fake_servers import FakeHub
from huggingface_hub import constants

from emolib.config import VLMConfig, load_profile
from emolib.data import make_synthetic_faces
from emolib.paths import project_root
from emolib.predictions import validate_predictions
from emolib.run.cli import main
from emolib.vlm import ModelUnavailable, load_backend
from emolib.vlm.download import FetchError, Hub
from emolib.vlm.fetch import fetch_weight, hf_local_only, open_clip_file
from emolib.vlm.hf import build_tiny_llava
from emolib.vlm.weights import (
    hf_weight,
    is_present,
    profile_weights,
    repo_folder,
)

TOKEN = "hf_test-DO-NOT-WRITE-5c1e"
TINY, BIG, GATED = "emolib-test/tiny-llava", "emolib-test/big", "emolib-test/gated"
OPEN_CLIP = "timm/vit_base_patch32_clip_224.openai"  # where open_clip's tag ViT-B-32/openai lives
BIG_BYTES = 24 * 2**20


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    fake = FakeHub(TOKEN)
    folder = build_tiny_llava(tmp_path_factory.mktemp("tiny_llava_repo"))
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    fake.add(TINY, {**files, "README.md": b"# a tiny random LLaVA\n", "flax_model.msgpack": b"not wanted"})
    fake.add(BIG, {"config.json": b"{}", "model.safetensors": os.urandom(BIG_BYTES)})
    fake.add(GATED, {"config.json": b'{"gated": true}', "model.safetensors": os.urandom(4096)}, gated=True)
    fake.add(OPEN_CLIP, {"open_clip_pytorch_model.bin": b"pickle", "open_clip_model.safetensors": b"safe"})
    yield fake
    fake.close()


@pytest.fixture
def hf_home(tmp_path, monkeypatch, hub):
    """An empty HF_HOME and the fake hub, for this process and for subprocesses."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    hub.cuts.clear()
    hub.served.clear()
    hub.log.clear()
    return home


def fetch_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emolib.run.cli", "fetch", *args], capture_output=True, text=True,
                          timeout=120, env=os.environ.copy())


def test_profiles_list_every_weight_they_need(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    quick = load_profile("quick", check_machine=False)
    weights = profile_weights(quick)
    kinds = Counter(w.kind for w in weights)
    assert kinds == {"open_clip": 3, "hf": 3, "torchvision": 3, "gfpgan": 1, "sbert": 1}
    by_name = {w.name: w for w in weights}
    assert by_name["ViT-B-32/openai"].repo == "timm/vit_base_patch32_clip_224.openai"
    assert by_name["resnet50/IMAGENET1K_V2"].local == tmp_path / "torch/hub/checkpoints/resnet50-11ad3fa6.pth"
    assert by_name["resnet50/IMAGENET1K_V2"].sha256 == "11ad3fa6"
    assert by_name["llava-hf/llava-1.5-7b-hf"].local.name == "models--llava-hf--llava-1.5-7b-hf"
    assert is_present(by_name["all-MiniLM-L6-v2"])  # shipped by a package: always here
    smoke = load_profile("smoke", check_machine=False)
    assert [w.name for w in profile_weights(smoke)] == ["gfpgan-v1.4", "all-MiniLM-L6-v2"]  # VLMs: random
    assert (smoke.weights, quick.weights, load_profile("paper", check_machine=False).weights) == (
        "offline", "auto", "auto")
    scripts = tomllib.loads((project_root() / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"emolib": "emolib.run.cli:main"}


def test_fetch_command_downloads_through_a_cut_and_the_backend_predicts(hf_home, hub, tmp_path, capsys) -> None:
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump({"weights": "offline", "cnn": {"weights": "none"},
                                       "vlm": {"clip_models": [], "hf_models": [TINY], "recorded": []}}))
    dry = fetch_cli(str(profile), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    size = sum(len(d) for n, d in hub.repos[TINY][1].items() if n not in ("README.md", "flax_model.msgpack"))
    row = next(line for line in dry.stdout.splitlines() if TINY in line)
    assert row.split()[:3] == ["hf", TINY, "no"] and f"{size / 1024:.1f} KiB" in row
    assert "dry run: nothing downloaded" in dry.stdout and not (hf_home / "hub").exists()

    weights = hub.repos[TINY][1]["model.safetensors"]
    hub.cuts["model.safetensors"] = [len(weights) // 2]
    done = fetch_cli(str(profile))
    assert done.returncode == 0, done.stderr
    assert f"fetched hf {TINY}" in done.stdout
    ranges = [r for role, method, path, r, _ in hub.log if role == "cdn" and method == "GET"]
    assert len(ranges) == 2 and ranges[0] is None and int(ranges[1][6:-1]) > 0  # resumed, not restarted
    assert hub.served["model.safetensors"] - len(weights) <= len(weights) // 2

    snapshot = repo_folder(TINY) / "snapshots" / hub.repos[TINY][0]
    assert (repo_folder(TINY) / "refs" / "main").read_text() == hub.repos[TINY][0]
    assert (snapshot / "model.safetensors").is_symlink() and (snapshot / "model.safetensors").read_bytes() == weights
    assert not (snapshot / "README.md").exists() and not (snapshot / "flax_model.msgpack").exists()
    assert not list((repo_folder(TINY) / "blobs").glob("*.incomplete"))

    files_asked = lambda: [e for e in hub.log if "/resolve/" in e[2] or "/api/models/" in e[2]]  # noqa: E731
    requests = len(files_asked())
    backend = load_backend(f"hf:{TINY}", VLMConfig(batch_size=4, max_new_tokens=4))
    faces = make_synthetic_faces(per_class=1, seed=2).split("private_test")
    frame = validate_predictions(backend.predict(faces, faces.label_set, None, "base"))
    assert len(frame) == 7 and set(frame["parse_status"]) <= {"json", "text_match", "embedding_match", "unparseable"}
    assert len(files_asked()) == requests  # loaded from the cache: no file asked for
    assert main(["fetch", str(profile)]) == 0
    assert capsys.readouterr().out.strip().endswith("all weights to fetch are here")


def test_backend_fetches_on_first_use_and_offline_names_the_command(hf_home, hub) -> None:
    with pytest.raises(ModelUnavailable, match=re.escape(f"`emolib fetch hf:{TINY}`")) as err:
        hf_local_only(TINY, mode="offline")
    assert "not in the local Hugging Face cache (weights: offline)" in str(err.value)
    assert not hub.log
    backend = load_backend(f"hf:{TINY}", VLMConfig(batch_size=7, max_new_tokens=4))
    faces = make_synthetic_faces(per_class=1, seed=3).split("private_test")
    assert len(validate_predictions(backend.predict(faces, faces.label_set, None, "base"))) == 7
    assert is_present(hf_weight(TINY))
    assert hub.served["model.safetensors"] == len(hub.repos[TINY][1]["model.safetensors"])  # fetched once
    # an open_clip tag: the one file open_clip would load, safetensors before the pickle
    assert Path(open_clip_file("ViT-B-32", "openai")).read_bytes() == b"safe"
    assert "open_clip_pytorch_model.bin" not in hub.served


def test_resume_costs_only_the_bytes_in_flight(hf_home, hub) -> None:
    """The figures of the design note: bytes sent by the server beyond the file size."""
    weight, data = hf_weight(BIG), hub.repos[BIG][1]["model.safetensors"]
    with Hub(retries=2, backoff_s=0.01, progress=False) as client:
        # three resets inside one call: resumed in the same call
        hub.cuts["model.safetensors"] = [BIG_BYTES // 4] * 3
        t0 = time.perf_counter()
        fetch_weight(weight, client)
        within = hub.served["model.safetensors"] - BIG_BYTES, time.perf_counter() - t0
        blob = repo_folder(BIG) / "blobs" / hashlib.sha256(data).hexdigest()
        assert blob.read_bytes() == data and within[0] <= 3 * 2**20, within

        # a reset, then one without a new byte and no retries left: the call fails naming the
        # file (as a killed process would stop); the next call resumes from the partial file
        blob.unlink()
        hub.served.clear()
        hub.cuts["model.safetensors"] = [int(BIG_BYTES * 0.4), 0]
        with pytest.raises(FetchError, match="model.safetensors: no progress"), Hub(0, progress=False) as flaky:
            fetch_weight(weight, flaky)
        kept = blob.with_name(blob.name + ".incomplete").stat().st_size
        fetch_weight(weight, client)
        across = hub.served["model.safetensors"] - BIG_BYTES
        assert 0 < kept <= BIG_BYTES * 0.4 and across == int(BIG_BYTES * 0.4) - kept
        assert blob.read_bytes() == data

        # an orphan of a killed huggingface_hub download is adopted; a corrupt one is caught
        for orphan, expect_served in ((data[: BIG_BYTES // 3], BIG_BYTES - BIG_BYTES // 3),
                                      (b"\0" * (BIG_BYTES // 3), 2 * BIG_BYTES - BIG_BYTES // 3)):
            blob.unlink()
            hub.served.clear()
            blob.with_name(blob.name + ".1a2b3c4d.incomplete").write_bytes(orphan)
            fetch_weight(weight, client)
            assert blob.read_bytes() == data and hub.served["model.safetensors"] == expect_served
            assert not list(blob.parent.glob("*.incomplete"))
    print(f"\nresume, {BIG_BYTES / 2**20:.0f} MiB file: 3 resets in one call -> {within[0]} bytes re-sent "
          f"({within[1]:.2f} s); reset + new call -> {across} bytes re-sent ({kept} kept)")


def test_gated_repo_needs_the_token_which_is_never_written(hf_home, hub, monkeypatch, tmp_path, capsys) -> None:
    assert main(["fetch", f"hf:{GATED}"]) == 1
    failed = capsys.readouterr()
    assert "gated or private" in failed.err and "set HF_TOKEN" in failed.err and GATED in failed.err

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["fetch", f"hf:{GATED}"]) == 0
    done = capsys.readouterr()
    assert is_present(hf_weight(GATED))
    sent = {role: {auth for r, _, _, _, auth in hub.log if r == role} for role in ("hub", "cdn")}
    assert f"Bearer {TOKEN}" in sent["hub"] and sent["cdn"] == {None}  # not sent to another host
    assert TOKEN not in failed.out + failed.err + done.out + done.err
    written = [p for p in tmp_path.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert written == []
