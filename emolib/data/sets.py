"""The data sets a profile names (``data.sets`` plus the defaults ``fer2013`` and ``emotion6``),
loaded in one call, with a status row for each.

``load_sets(profile)`` returns a ``DataSets``: the ``ImageSet`` of every available set (by its
profile name) and ``table``, one row per set: name, dataset (``ImageSet.name``, the
predictions' ``dataset``), role, loader, label_set, path (what it looked for), status
(``available`` / ``unavailable``), reason, images, skipped (unreadable images left out under
``data.skip_unreadable``: without a subsample, images + skipped = the images the source lists),
classes (with at least one image), notes (the loader's: where it read from, the pixel cache or
decode check, each skipped image). A set whose files are missing or
unusable is an ``unavailable`` row with the loader's message; the run goes on. ``load_faces``
and ``load_evoked`` give FER-2013 and Emotion6 as the face and evoked stages always used them
(DataError when unavailable). Loaders dispatch through ``LOADERS``, one small function each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd

from emolib.config import DataSetConfig, Profile
from emolib.data.checks import unreadable_images
from emolib.data.emotion6 import load_emotion6
from emolib.data.fer2013 import load_fer2013
from emolib.data.ferplus import attach_ferplus
from emolib.data.folder import load_class_folders, load_manifest
from emolib.data.imageset import DataError, ImageSet
from emolib.data.subsets import stratified_indices, stratified_subsample
from emolib.data.synthetic import make_synthetic_evoked, make_synthetic_faces
from emolib.paths import resolve_data_path

AVAILABLE, UNAVAILABLE = "available", "unavailable"
TABLE_COLUMNS = ("name", "dataset", "role", "loader", "label_set", "path", "status", "reason", "images", "skipped",
                 "classes", "notes")
SYNTHETIC_PATH = "synthetic stand-in (data.source: synthetic)"


def _fer2013(spec: DataSetConfig, profile: Profile) -> ImageSet:
    return load_fer2013(resolve_data_path(spec.path), skip_unreadable=profile.data.skip_unreadable)


def _emotion6(spec: DataSetConfig, profile: Profile) -> ImageSet:
    return load_emotion6(resolve_data_path(spec.path), skip_unreadable=profile.data.skip_unreadable)


def _class_folders(spec: DataSetConfig, profile: Profile) -> ImageSet:
    return load_class_folders(resolve_data_path(spec.path), spec.label_set, spec.name, spec.image_id,
                              skip_unreadable=profile.data.skip_unreadable)


def _manifest(spec: DataSetConfig, profile: Profile) -> ImageSet:
    return load_manifest(resolve_data_path(spec.path), spec.label_set, spec.name, spec.columns,
                         skip_unreadable=profile.data.skip_unreadable)


LOADERS: dict[str, Callable[[DataSetConfig, Profile], ImageSet]] = {
    "fer2013": _fer2013, "emotion6": _emotion6, "class_folders": _class_folders, "manifest": _manifest}


def is_synthetic(profile: Profile, spec: DataSetConfig) -> bool:
    """True when ``spec`` is one of the default sets that ``data.source: synthetic`` replaces."""
    return profile.data.source == "synthetic" and spec.name in ("fer2013", "emotion6")


def load_faces(profile: Profile, with_ferplus: bool = True) -> ImageSet:
    """FER-2013 for this profile (synthetic faces for ``source: synthetic``), subsampled per
    ``data.subsample``, with FER+ votes attached when the FER+ files are present."""
    cfg, spec = profile.data, profile.data.get_set("fer2013")
    if is_synthetic(profile, spec):
        return make_synthetic_faces(cfg.synthetic_per_class, seed=profile.seed)
    faces = _fer2013(spec, profile)
    ferplus_dir = resolve_data_path(cfg.ferplus)
    if with_ferplus and (ferplus_dir / "fer2013new.csv").is_file():
        faces = attach_ferplus(faces, ferplus_dir)
    sizes = {"train": cfg.subsample.train, "public_test": cfg.subsample.public_test,
             "private_test": cfg.subsample.private_test}
    return stratified_subsample(faces, sizes, seed=profile.seed)


def load_evoked(profile: Profile) -> ImageSet:
    """Emotion6 for this profile (synthetic colour images for ``source: synthetic``)."""
    return load_set(profile, "emotion6")


def load_set(profile: Profile, name: str) -> ImageSet:
    """The profile's data set ``name`` (``data.all_sets``), subsampled per its ``subsample``;
    DataError naming the path and the fix when its files are missing or unusable."""
    spec = profile.data.get_set(name)
    if spec.name == "fer2013":
        return load_faces(profile)
    if is_synthetic(profile, spec):
        return make_synthetic_evoked(max(2, profile.data.synthetic_per_class // 2), seed=profile.seed)
    image_set = replace(LOADERS[spec.loader](spec, profile), name=spec.name)
    if spec.subsample is not None:
        image_set = image_set.subset(stratified_indices(image_set.labels, spec.subsample, profile.seed))
    return image_set


@dataclass(frozen=True)
class DataSets:
    """What ``load_sets`` found: ``image_sets`` (profile set name -> ImageSet, available sets
    in profile order), ``specs`` (every set's resolved ``DataSetConfig``) and ``table``."""

    image_sets: dict[str, ImageSet]
    specs: tuple[DataSetConfig, ...]
    table: pd.DataFrame

    @property
    def faces(self) -> ImageSet:
        """FER-2013, the set of the face stages; DataError with the reason if unavailable."""
        return self.get("fer2013")

    def get(self, name: str) -> ImageSet:
        """The ImageSet of set ``name``; DataError with its status row's reason if unavailable."""
        if name not in self.image_sets:
            rows = self.table.set_index("name")
            if name not in rows.index:
                raise KeyError(f"no data set {name!r} in this profile; its sets: {list(rows.index)}")
            raise DataError(f"data set {name!r} is unavailable: {rows.loc[name, 'reason']}")
        return self.image_sets[name]

    def evoked(self) -> dict[str, ImageSet]:
        """The available sets of role ``evoked``, by profile set name (what the VLM stage scores)."""
        return {s.name: self.image_sets[s.name] for s in self.specs
                if s.role == "evoked" and s.name in self.image_sets}

    def by_dataset(self) -> dict[str, ImageSet]:
        """The available sets keyed by ``ImageSet.name`` (the predictions' ``dataset`` column)."""
        return {s.name: s for s in self.image_sets.values()}


def load_sets(profile: Profile) -> DataSets:
    """Load every data set of ``profile``; a set that cannot be loaded is an ``unavailable``
    row (the path it looked for and the loader's reason), never an error."""
    image_sets, rows = {}, []
    for spec in profile.data.all_sets():
        row = {"name": spec.name, "dataset": "", "role": spec.role, "loader": spec.loader,
               "label_set": spec.label_set, "status": UNAVAILABLE, "reason": "", "images": 0, "skipped": 0,
               "classes": 0, "notes": "",
               "path": SYNTHETIC_PATH if is_synthetic(profile, spec) else str(resolve_data_path(spec.path))}
        try:
            image_set = load_set(profile, spec.name)
        except DataError as err:
            row["reason"] = str(err)
        else:
            image_sets[spec.name] = image_set
            row.update(dataset=image_set.name, status=AVAILABLE, images=len(image_set),
                       skipped=len(unreadable_images(image_set)),
                       classes=len(set(image_set.labels[image_set.labels >= 0].tolist())),
                       notes="; ".join(image_set.notes))
        rows.append(row)
    return DataSets(image_sets, profile.data.all_sets(), pd.DataFrame(rows, columns=list(TABLE_COLUMNS)))
