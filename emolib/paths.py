"""Where things live: project root, data root, and per-profile output folders.

Nothing here creates a folder on import; functions that return an output folder create it
when asked (``ensure=True``).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV_VAR = "EMOLIB_DATA_DIR"
RESULTS_ENV_VAR = "EMOLIB_RESULTS_DIR"


def project_root() -> Path:
    """The checkout that holds ``emolib/``, ``configs/`` and ``notebooks/``."""
    return PROJECT_ROOT


def data_root() -> Path:
    """``$EMOLIB_DATA_DIR`` if set, else ``<project>/data``. Relative paths are project-relative."""
    raw = os.environ.get(DATA_ENV_VAR)
    root = Path(raw).expanduser() if raw else PROJECT_ROOT / "data"
    return root if root.is_absolute() else (PROJECT_ROOT / root).resolve()


def resolve_data_path(relative: str | os.PathLike) -> Path:
    """A data-set path from a profile: absolute paths stay, relative ones sit under data_root()."""
    path = Path(relative).expanduser()
    return path if path.is_absolute() else data_root() / path


def _output_base() -> Path:
    raw = os.environ.get(RESULTS_ENV_VAR)
    return Path(raw).expanduser().resolve() if raw else PROJECT_ROOT


def _profile_dir(kind: str, profile_name: str, ensure: bool) -> Path:
    path = _output_base() / kind / profile_name
    if ensure:
        path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(profile_name: str, ensure: bool = True) -> Path:
    """``results/<profile_name>/``: caches, stage outputs, executed notebooks."""
    return _profile_dir("results", profile_name, ensure)


def figures_dir(profile_name: str, ensure: bool = True) -> Path:
    """``figures/<profile_name>/``: ``fig_NN_<what>.png`` written by notebook NN."""
    return _profile_dir("figures", profile_name, ensure)


def tables_dir(profile_name: str, ensure: bool = True) -> Path:
    """``tables/<profile_name>/``: ``tab_NN_<what>.{csv,md}`` written by notebook NN."""
    return _profile_dir("tables", profile_name, ensure)


def stage_dir(profile_name: str, stage: str, config_hash: str, ensure: bool = True) -> Path:
    """``results/<profile_name>/<stage>/<config_hash>/``: one stage's outputs for one config."""
    path = results_dir(profile_name, ensure=False) / stage / config_hash
    if ensure:
        path.mkdir(parents=True, exist_ok=True)
    return path


# torchvision's ImageNet weights of the study's CNNs (the enum whose DEFAULT is used)
IMAGENET_WEIGHTS = {"vgg19": "VGG19_Weights", "vgg19_bn": "VGG19_BN_Weights", "resnet50": "ResNet50_Weights",
                    "efficientnet_b0": "EfficientNet_B0_Weights"}


def imagenet_weights_file(cnn: str) -> Path:
    """Where torchvision keeps ``cnn``'s ImageNet weights (``$TORCH_HOME``'s ``hub/checkpoints``):
    present or not, it decides which network the CNN stage trains (``catalog.cnn_model_key``)."""
    import torch
    from torchvision import models

    url = getattr(models, IMAGENET_WEIGHTS[cnn]).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
