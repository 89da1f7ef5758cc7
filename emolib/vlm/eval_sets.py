"""The images the VLM stage scores (notebook 04): the evaluation subset of FER-2013 PrivateTest
(original faces and each restored variant of it, the same ids), the evaluation subset of every
available evoked data set, and the training faces of the CLIP linear probe; and whether a stored
stage scored the evoked sets notebook 01 stores now.
"""

from __future__ import annotations

import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.data import DataSets, ImageSet, load_sets, stratified_indices


def eval_sets(profile: Profile, restored: dict[str, ImageSet],
              data: DataSets | None = None) -> tuple[list[ImageSet], ImageSet]:
    """What every model scores: the evaluation subset of FER-2013 PrivateTest (original faces
    and each restored variant of it, ``restored``: backend -> ImageSet from
    ``emolib.restore.load_evaluation_sets``) and the evaluation subset of each available evoked
    set (``evoked_sets``); and the ``vlm.probe_train_size`` training faces (stratified) of the
    CLIP linear probe. ``data``: the profile's ``load_sets`` (loaded here when None)."""
    data = load_sets(profile) if data is None else data
    faces = data.faces
    fer_eval = catalog.select_subset(faces, profile, catalog.fer_eval_name(profile))
    for backend, images in restored.items():
        if list(images.ids) != list(fer_eval.ids):
            raise ValueError(f"restored {backend} faces ({images.subset_name}) are not the ids of "
                             f"{fer_eval.subset_name}: run notebook 02 for this profile again")
    train = faces.split("train")
    size = profile.vlm.probe_train_size
    if size is not None and size < len(train):
        train = train.subset(stratified_indices(train.labels, size, profile.seed))
    return [fer_eval, *restored.values(), *evoked_sets(profile, data)], train


def evoked_sets(profile: Profile, data: DataSets) -> list[ImageSet]:
    """The evaluation subset (``catalog.evoked_eval_name``) of every available evoked set."""
    return [catalog.select_subset(image_set, profile, catalog.evoked_eval_name(profile, name))
            for name, image_set in data.evoked().items()]


def unavailable_notes(data: DataSets) -> list[str]:
    """One note per evoked set that could not be loaded: its path and the reason."""
    rows = data.table[(data.table["role"] == "evoked") & (data.table["status"] != "available")]
    return [f"evoked data set {r.name} is unavailable, not scored (looked for {r.path}): {r.reason}"
            for r in rows.itertuples()]


def stale_evoked(profile: Profile, predictions: pd.DataFrame) -> str:
    """'' when the image models of a stored stage scored the evaluation subsets of exactly the
    evoked sets notebook 01 stored; else what changed."""
    if predictions["backend"].eq("recorded").all():
        return ""  # no image model ran: nothing was scored that could be out of date
    faces = {catalog.fer_eval_name(profile), *catalog.PROTOCOL_SUBSETS}
    scored = set(predictions.loc[predictions["backend"] != "recorded", "subset"]) - faces
    stored = set(catalog.data_subset_names(profile))
    wanted = {catalog.evoked_eval_name(profile, s.name) for s in profile.data.all_sets() if s.role == "evoked"}
    expected = wanted & stored
    if scored == expected:
        return ""
    return (f"the stored stage scored {sorted(scored)}, notebook 01 now stores {sorted(expected)}: "
            "scored again (answers already cached are reused)")
