"""Compatibility shims for third-party packages that lag behind torchvision.

``basicsr`` 1.4.2 (needed by ``gfpgan`` 1.3.8) does
``from torchvision.transforms.functional_tensor import rgb_to_grayscale``. torchvision 0.17
renamed that private module to ``torchvision.transforms._functional_tensor`` and later
releases removed the old name, so ``import gfpgan`` fails with
``ModuleNotFoundError: No module named 'torchvision.transforms.functional_tensor'``.

``install_torchvision_shim()`` registers the new module under the old name in
``sys.modules`` (the functions are the same; nothing is copied or patched) before basicsr
is imported. It is what ``emolib.restore`` calls before ``import gfpgan``; users who import
gfpgan themselves can call it first. It changes nothing when the old name still exists.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

OLD_NAME = "torchvision.transforms.functional_tensor"
NEW_NAME = "torchvision.transforms._functional_tensor"


def install_torchvision_shim() -> ModuleType:
    """Make ``torchvision.transforms.functional_tensor`` importable; return that module."""
    if OLD_NAME in sys.modules:
        return sys.modules[OLD_NAME]
    try:
        return importlib.import_module(OLD_NAME)  # an old torchvision still has it
    except ModuleNotFoundError:
        pass
    module = importlib.import_module(NEW_NAME)
    sys.modules[OLD_NAME] = module
    return module


def import_gfpgan() -> ModuleType:
    """``import gfpgan`` with the shim in place; ImportError (with the install line) if absent."""
    try:
        install_torchvision_shim()
        return importlib.import_module("gfpgan")
    except ImportError as err:
        raise ImportError(
            f"gfpgan cannot be imported ({err}); install it with "
            "`pip install gfpgan==1.3.8` (pulls basicsr 1.4.2 and facexlib) or "
            "`pip install -e .[restore]`"
        ) from err
