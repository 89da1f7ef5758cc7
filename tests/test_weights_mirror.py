"""One downloader for every weight: torchvision's ImageNet weights and GFPGAN come through
emolib's resumable, verified download, from a mirror (``EMOLIB_WEIGHTS_MIRROR``, a local file
server started here), honour ``weights: offline``, and name the CNN stage they feed; sizes of
every weight of the paper profile are known offline."""

from __future__ import annotations

import functools
import hashlib
import io
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from torchvision.models import ResNet50_Weights

from emolib import catalog
from emolib.config import load_profile
from emolib.restore.stage import backend_status
from emolib.run.cli import main
from emolib.train import stage
from emolib.train.models import load_imagenet_weights
from emolib.vlm.fetch import MIRROR_ENV_VAR, mirrored


class Mirror:
    """A folder served over HTTP on 127.0.0.1 as ``<url>/<host>/<path>``; ``log``: (method, path)."""

    def __init__(self, root: Path) -> None:
        self.log: list[tuple[str, str]] = []
        log = self.log

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                log.append((self.command, self.path))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    server = Mirror(tmp_path / "mirror")
    monkeypatch.setenv(MIRROR_ENV_VAR, server.url)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    yield server
    server.close()


def test_a_mirror_serves_https_host_and_path(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV_VAR, raising=False)
    url = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
    assert mirrored(url) == url
    monkeypatch.setenv(MIRROR_ENV_VAR, "http://127.0.0.1:9/weights/")
    assert mirrored(url) == "http://127.0.0.1:9/weights/download.pytorch.org/models/resnet50-11ad3fa6.pth"


def test_imagenet_weights_come_through_the_mirror_and_retrain_the_cnn(tmp_path, mirror, monkeypatch):
    profile = load_profile("smoke", **{"cnn.weights": "imagenet", "weights": "auto"})
    net = stage.build_network(profile, "resnet50", 7)
    state = {k: torch.randn_like(v) for k, v in net.state_dict().items() if k.startswith("layer1.0.conv")}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    name = f"resnet50-{hashlib.sha256(data).hexdigest()[:8]}.pth"  # torchvision's names carry a hash prefix
    (tmp_path / "mirror" / "download.pytorch.org" / "models").mkdir(parents=True)
    (tmp_path / "mirror" / "download.pytorch.org" / "models" / name).write_bytes(data)
    monkeypatch.setattr(ResNet50_Weights.DEFAULT.value, "url", f"https://download.pytorch.org/models/{name}")
    before = catalog.cnn_model_key(profile, "resnet50")
    assert before["imagenet_weights_here"] is False

    offline = load_imagenet_weights(stage.build_network(profile, "resnet50", 7), "resnet50", "offline")
    assert offline.used == "scratch" and "(weights: offline); fetch it with `emolib fetch <profile>`" in offline.reason
    assert mirror.log == []  # offline: nothing asked

    model = stage.build_network(profile, "resnet50", 7)
    status = load_imagenet_weights(model, "resnet50", "auto")
    assert status.used == "imagenet" and status.reason.startswith(f"{len(state)}/")
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value)
    assert ("GET", f"/download.pytorch.org/models/{name}") in mirror.log
    assert (tmp_path / "torch" / "hub" / "checkpoints" / name).read_bytes() == data
    after = catalog.cnn_model_key(profile, "resnet50")
    assert after["imagenet_weights_here"] is True and after != before  # arrived weights: another network
    assert catalog.cnn_model_key(profile, "vgg19_bn")["imagenet_weights_here"] is False


def test_a_mirror_file_that_fails_its_hash_is_not_used(tmp_path, mirror, monkeypatch):
    name = "resnet50-00000000.pth"
    (tmp_path / "mirror" / "download.pytorch.org" / "models").mkdir(parents=True)
    (tmp_path / "mirror" / "download.pytorch.org" / "models" / name).write_bytes(b"not the weights")
    monkeypatch.setattr(ResNet50_Weights.DEFAULT.value, "url", f"https://download.pytorch.org/models/{name}")
    profile = load_profile("smoke", **{"cnn.weights": "imagenet", "weights": "auto"})
    status = load_imagenet_weights(stage.build_network(profile, "resnet50", 7), "resnet50", "auto")
    assert status.used == "scratch" and "fails its size/hash check" in status.reason
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / name).exists()


def test_gfpgan_weights_come_through_the_mirror_and_honour_offline(tmp_path, mirror):
    (tmp_path / "mirror" / "github.com" / "TencentARC" / "GFPGAN" / "releases" / "download" / "v1.3.0").mkdir(
        parents=True)
    (tmp_path / "mirror" / "github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth").write_bytes(
        b"\0" * 4096)
    where = tmp_path / "gfpgan"
    settings = {"restoration.gfpgan_weights_dir": str(where), "restoration.backends": ["none", "gfpgan-v1.4"]}
    offline = backend_status(load_profile("smoke", **settings)).set_index("backend").loc["gfpgan-v1.4"]
    assert not offline["available"] and "weights: offline" in offline["reason"] and mirror.log == []
    online = backend_status(load_profile("smoke", weights="auto", **settings)).set_index("backend").loc["gfpgan-v1.4"]
    assert online["available"] and online["reason"] == f"weights at {where / 'GFPGANv1.4.pth'}"
    assert (where / "GFPGANv1.4.pth").stat().st_size == 4096


def test_fetch_dry_run_offline_knows_every_size_of_the_paper_profile(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv(MIRROR_ENV_VAR, "http://127.0.0.1:9")  # nothing listens: every server is unreachable
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("emolib.vlm.download.constants.ENDPOINT", "http://127.0.0.1:9")
    assert main(["fetch", "--dry-run", "paper"]) == 0
    out = capsys.readouterr().out
    disk = next(line for line in out.splitlines() if line.startswith("disk: "))
    assert "unknown size" not in out and "(approximate sizes where no server answered)" in disk
    total = float(disk.split("~")[1].split(" GiB")[0])
    assert 40 < total < 60  # ~48 GB without Phi-3.5-Vision, which this machine cannot run in-process
    assert "not fetched: microsoft/Phi-3.5-vision-instruct" in out and "vllm serve" in out
    assert main(["fetch", "--dry-run", "--all", "paper"]) == 0
    assert "not fetched" not in capsys.readouterr().out
