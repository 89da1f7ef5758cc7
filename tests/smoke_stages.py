"""The upstream stages of a (smoke) profile, built with the real stage functions in the
order the notebooks call them, for the tests of the stages that read their outputs.

Each function writes under the current ``EMOLIB_RESULTS_DIR`` (tests/conftest.py points it at
a temporary folder per session; a test may point it at its own ``tmp_path``). Stages whose
output exists for the same configuration are read back, not recomputed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from emolib import restore
from emolib.config import Profile
from emolib.data import ImageSet, load_evoked, load_faces
from emolib.data import stage as data_stage
from emolib.paths import results_dir
from emolib.train import stage as train_stage
from emolib.vlm.stage import ZeroShotResult, run_zero_shot


def run_data(profile: Profile) -> tuple[ImageSet, ImageSet]:
    """Notebook 01: the audit and the named subsets every later stage selects from."""
    faces, evoked = load_faces(profile), load_evoked(profile)
    audit = data_stage.run_audit(profile, faces)
    data_stage.define_subsets(profile, faces, evoked, audit["leakage"])
    return faces, evoked


def run_restoration(profile: Profile, faces: ImageSet) -> dict[str, ImageSet]:
    """Notebook 02's evaluation part: restore the evaluation subset with every evaluation
    backend available here, record them, and load them back as notebooks 03 and 04 do."""
    subset = restore.restoration_subset(faces, profile)
    status = restore.backend_status(profile, restore.evaluation_backends(profile)).set_index("backend")
    rows = []
    for backend, row in status.iterrows():
        images = restore.restore_imageset(subset, backend, profile, progress=False) if row["available"] else None
        rows.append({"backend": backend, "available": bool(row["available"]), "reason": row["reason"],
                     "variant": images.variant if images is not None else "",
                     "images": len(images) if images is not None else 0})
    restore.record_evaluation_variants(profile, pd.DataFrame(rows))
    restored, _ = restore.load_evaluation_sets(profile, faces)
    return restored


def run_cnn(profile: Profile, faces: ImageSet, restored: dict[str, ImageSet]) -> pd.DataFrame:
    """Notebook 03: train every CNN of the profile and predict its test sets."""
    trained = train_stage.train_all(profile, faces, progress=False)
    return train_stage.predict_all(profile, trained, train_stage.test_sets(profile, faces, restored))


def run_vlm(profile: Profile, force: bool = False) -> ZeroShotResult:
    """Notebooks 01, 02 and 04: the VLM stage on the original and restored evaluation faces."""
    faces, _ = run_data(profile)
    return run_zero_shot(profile, run_restoration(profile, faces), force=force)


def run_upstream(profile: Profile) -> dict[str, ImageSet]:
    """Notebooks 01 to 04: what notebook 07 reads. Returns the image sets by name."""
    faces, evoked = run_data(profile)
    restored = run_restoration(profile, faces)
    run_cnn(profile, faces, restored)
    run_zero_shot(profile, restored)
    return {faces.name: faces, evoked.name: evoked}


def upstream_outputs(profile: Profile, target: Path) -> dict[str, ImageSet]:
    """Notebooks 01 to 04 run in the session's outputs folder (cached there for every test),
    and ``results/<profile>/`` copied to the outputs folder ``target``, without the CNN
    checkpoints (large, and read by nothing once predictions exist): a test that writes there
    (notebook 07's tables, annotations) starts from the same upstream outputs as if those
    notebooks had run in ``target``. Call it before pointing EMOLIB_RESULTS_DIR at ``target``.
    Returns the image sets by name."""
    image_sets = run_upstream(profile)
    shutil.copytree(results_dir(profile.name, ensure=False), Path(target) / "results" / profile.name,
                    ignore=shutil.ignore_patterns("*.pt"))
    return image_sets
