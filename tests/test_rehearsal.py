"""The route from a CPU run to the real study, rehearsed as a researcher takes it (issue 23):
``configs/rehearsal.yaml`` (the paper profile's stages and model families on a small draw of
the real data) run by ``run_all.sh`` with (1) the Hub and the endpoint down: every model an
"unavailable" row with its fetch command, nothing crashes; (2) ``emolib fetch`` from a local Hub
serving tiny random models under the paper's repo names; (3) ``run_all.sh`` again, without
``--force``: the notebooks run again because weights arrived, only the new models are computed
(the recorded answers' rows stay as they were), every model's status row says available and
the report shows them. Step (3) is also run killed in the middle of notebook 04 (once the first
new model has answered) and again: its tables and predictions are those of the uninterrupted run."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fake_servers import FakeHub, FirstLabelServer, free_port
from vlm_tiny import build_tiny_vlm

from emolib import catalog
from emolib.config import load_profile
from emolib.paths import project_root
from emolib.predictions import read_predictions
from emolib.recorder import COST_FILE, read_cost_records

ROOT = project_root()
FAMILIES = {"llava-hf/llava-1.5-7b-hf": "llava", "llava-hf/llava-v1.6-mistral-7b-hf": "llava_next",
            "Qwen/Qwen2-VL-7B-Instruct": "qwen2_vl"}
CLIP_REPO = "timm/vit_base_patch32_clip_224.openai"  # where open_clip's tag ViT-B-32/openai lives
NEW_MODELS = {"ViT-B-32/openai", *FAMILIES, "first-label"}


def clip_files() -> dict[str, bytes]:
    """ViT-B-32 with random weights, in fp16, as the Hub repo of the tag holds it (~0.3 GB)."""
    import open_clip
    import safetensors.torch

    model = open_clip.create_model("ViT-B-32", pretrained=None)
    return {"open_clip_model.safetensors": safetensors.torch.save(
        {k: v.half().contiguous() for k, v in model.state_dict().items()})}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    fake = FakeHub()
    for repo, family in FAMILIES.items():
        folder = build_tiny_vlm(family, tmp_path_factory.mktemp(family))
        fake.add(repo, {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})
    fake.add(CLIP_REPO, clip_files())
    yield fake
    fake.close()


def run_all(profile: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "run_all.sh"), str(profile)], env=env, capture_output=True, text=True,
                          timeout=1200)


# tables of what the models answered (notebooks 04, 05, 07), compared after a kill and a rerun; the
# cost tables of notebook 06 hold timings, which differ from run to run
ANSWER_TABLES = ("tab_04_scores", "tab_04_evoked_scores", "tab_04_parse_status", "tab_04_model_status",
                 "tab_05_variant_scores", "tab_05_prompt_variants", "tab_07_error_counts", "tab_07_errors_alike")


def run_killed_in_notebook_04(profile: Path, env: dict, store_dir: Path, since: pd.Timestamp) -> None:
    """``run_all.sh`` killed (SIGKILL to its process group, kernel included) as soon as a model
    that arrived has finished answering, while the others still wait in notebook 04's stage."""
    run = subprocess.Popen(["bash", str(ROOT / "run_all.sh"), str(profile)], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and run.poll() is None:
        done = [r for r in read_cost_records(store_dir / COST_FILE) if r["phase"] == "infer"
                and r.get("status") != "interrupted" and pd.Timestamp(r["started_at"]) >= since.floor("s")]
        if done:
            break
        time.sleep(0.5)
    assert run.poll() is None, "run_all.sh ended before a new model answered: nothing was killed"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()


def answers(results: Path, loaded, monkeypatch) -> dict[str, pd.DataFrame]:
    """The answer tables and both stages' predictions (without their timings) under ``results``."""
    monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(results))
    tables = {name: pd.read_csv(results / "tables" / "rehearsal" / f"{name}.csv") for name in ANSWER_TABLES}
    for name, store in (("vlm", catalog.vlm_store(loaded)), ("prompts", catalog.prompts_store(loaded))):
        frame = read_predictions(store.path(catalog.PREDICTIONS_FILE)).drop(columns="latency_s")
        keys = ["model", "backend", "restoration", "prompt", "seed", "subset", "image_id"]
        tables[name] = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    return tables


def model_status(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "tables" / "rehearsal" / "tab_04_model_status.csv", keep_default_na=False).set_index(
        "model")


@pytest.mark.slow
def test_run_fetch_run_again_computes_only_the_models_that_arrived(hub, data_root, tmp_path, monkeypatch):
    port = free_port()
    profile = tmp_path / "rehearsal.yaml"
    profile.write_text((ROOT / "configs" / "rehearsal.yaml").read_text().replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    out, dead = tmp_path / "out", f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "EMOLIB_SKIP_SETUP": "1", "EMOLIB_VENV": sys.prefix, "EMOLIB_RESULTS_DIR": str(out),
           "EMOLIB_DATA_DIR": str(data_root), "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch"),
           "EMOLIB_WEIGHTS_MIRROR": dead, "EMOLIB_REHEARSAL_KEY": "local", "EMOLIB_PROGRESS": "0"}
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE"):
        env.pop(key, None)

    # (1) the Hub and the endpoint are down: every model unavailable, with the command that fetches it
    down = run_all(profile, {**env, "HF_ENDPOINT": dead})
    assert down.returncode == 0, down.stdout + down.stderr
    status = model_status(out)
    assert status.loc["gpt4v", "status"] == "available"
    for model in NEW_MODELS:
        assert status.loc[model, "status"] == "unavailable", model
    assert "emolib fetch clip:ViT-B-32/openai" in status.loc["ViT-B-32/openai", "reason"]
    for repo in FAMILIES:
        assert f"emolib fetch hf:{repo}" in status.loc[repo, "reason"]
    monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(out))
    loaded = load_profile(profile, check_machine=False)
    store = catalog.vlm_store(loaded)
    before = read_predictions(store.path(catalog.PREDICTIONS_FILE))
    assert set(before["model"]) == {"gpt4v"}

    # (2) emolib fetch: the Hub's weights arrive (the mirror of ImageNet and GFPGAN stays down)
    fetched = subprocess.run([sys.executable, "-m", "emolib.run.cli", "fetch", str(profile)],
                             env={**env, "HF_ENDPOINT": hub.endpoint}, capture_output=True, text=True, timeout=600)
    got = sorted(m[1] for m in re.finditer(r"^fetched \w+ (\S+): ", fetched.stdout, re.MULTILINE))
    assert got == sorted(["ViT-B-32/openai", *FAMILIES]), fetched.stdout + fetched.stderr
    assert fetched.returncode == 1 and "torchvision resnet50/IMAGENET1K_V2" in fetched.stderr  # named, not fetched

    # (3) again, without --force: weights arrived, so the notebooks run; only the new models compute.
    # The same step on a copy of the results is killed in notebook 04 and run again (3b, below).
    killed = tmp_path / "killed"
    shutil.copytree(out, killed)
    server = FirstLabelServer(port)
    try:
        start = pd.Timestamp.now(tz="UTC")
        up = run_all(profile, {**env, "HF_ENDPOINT": hub.endpoint})
        monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(killed))
        again = {**env, "HF_ENDPOINT": hub.endpoint, "EMOLIB_RESULTS_DIR": str(killed)}
        run_killed_in_notebook_04(profile, again, catalog.vlm_store(loaded).dir, pd.Timestamp.now(tz="UTC"))
        resumed = run_all(profile, again)
    finally:
        server.close()
        monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(out))
    assert up.returncode == 0, up.stdout + up.stderr
    assert "up to date" not in up.stdout.split("[4/7]")[1]
    status = model_status(out)
    assert (status["status"] == "available").all(), status
    after = read_predictions(store.path(catalog.PREDICTIONS_FILE))
    kept = after[after["model"] == "gpt4v"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before)  # the recorded answers' rows, untouched
    new = after[after["model"] != "gpt4v"]
    assert set(new["model"]) == NEW_MODELS
    infer = [r for r in read_cost_records(store.dir / COST_FILE)
             if r["phase"] == "infer" and pd.Timestamp(r["started_at"]) >= start.floor("s")]
    probe = new["backend"] == "clip_probe"  # the CLIP probe is trained (a train phase), not inferred
    assert sum(r["items"] for r in infer) == int((~probe).sum())  # every image scored once, by a new model
    assert {r["model"].split(":", 1)[1] for r in infer} == NEW_MODELS
    sweep = read_predictions(catalog.prompts_store(loaded).path(catalog.PREDICTIONS_FILE))
    assert set(sweep["model"]) == {*FAMILIES, "first-label"}
    assert server.requests > 0
    report = out / "results" / "rehearsal" / "report"
    assert 'href="tables/tab_04_model_status.html"' in (report / "tables.html").read_text()
    shown = (report / "tables" / "tab_04_model_status.html").read_text()
    assert all(model in shown for model in NEW_MODELS) and "unavailable" not in shown

    # (3b) killed in notebook 04 and run again: the same answers, tables and predictions
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    reference, rerun = answers(out, loaded, monkeypatch), answers(killed, loaded, monkeypatch)
    for name, frame in reference.items():
        pd.testing.assert_frame_equal(rerun[name], frame, obj=name)
