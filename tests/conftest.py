"""Shared fixtures: outputs go to a temporary folder; the real data come from EMOLIB_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emolib.paths import DATA_ENV_VAR, RESULTS_ENV_VAR


@pytest.fixture(autouse=True, scope="session")
def _isolated_outputs(tmp_path_factory: pytest.TempPathFactory):
    """results/, figures/ and tables/ of every test go to a temp folder, not the checkout."""
    old = os.environ.get(RESULTS_ENV_VAR)
    os.environ[RESULTS_ENV_VAR] = str(tmp_path_factory.mktemp("outputs"))
    yield
    if old is None:
        os.environ.pop(RESULTS_ENV_VAR, None)
    else:
        os.environ[RESULTS_ENV_VAR] = old


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data sets (``../shared/data`` in CI). Skips only when EMOLIB_DATA_DIR is unset;
    set but incomplete is a failure, so CI cannot pass without the data."""
    raw = os.environ.get(DATA_ENV_VAR)
    if not raw:
        pytest.skip(f"{DATA_ENV_VAR} is not set: real-data tests need it (CI sets ../shared/data)")
    root = Path(raw).resolve()
    for rel in ("fer2013/fer2013.zip", "fer2013/ferplus/fer2013new.csv", "emotion6/Emotion6.zip"):
        assert (root / rel).is_file(), f"{DATA_ENV_VAR}={root} lacks {rel}"
    return root


@pytest.fixture(scope="session")
def fer2013_real(data_root: Path):
    """All 35,887 FER-2013 images from the Kaggle zip, loaded once per session."""
    from emolib.data import load_fer2013

    return load_fer2013(data_root / "fer2013" / "fer2013.zip")
