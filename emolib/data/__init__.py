"""Data sets of the study, each loaded into one ``ImageSet``.

``load_faces(profile)`` and ``load_evoked(profile)`` give the sets a profile studies
(synthetic stand-ins for ``smoke``, the real files otherwise); the layout loaders below
serve users who call them directly.
"""

from __future__ import annotations

from emolib.config import Profile
from emolib.data.emotion6 import load_emotion6
from emolib.data.fer2013 import detect_fer_layout, load_fer2013
from emolib.data.ferplus import attach_ferplus, load_ferplus_votes, majority_labels
from emolib.data.folder import load_class_folders, load_manifest
from emolib.data.imageset import SPLITS, DataError, ImageSet, image_hash, read_image
from emolib.data.subsets import stratified_indices, stratified_subsample
from emolib.data.synthetic import make_synthetic_evoked, make_synthetic_faces
from emolib.paths import resolve_data_path

__all__ = [
    "SPLITS", "DataError", "ImageSet", "attach_ferplus", "detect_fer_layout", "image_hash",
    "load_class_folders", "load_emotion6", "load_evoked", "load_faces", "load_fer2013",
    "load_ferplus_votes", "load_manifest", "majority_labels", "make_synthetic_evoked",
    "make_synthetic_faces", "read_image", "stratified_indices", "stratified_subsample",
]


def load_faces(profile: Profile, with_ferplus: bool = True) -> ImageSet:
    """FER-2013 for this profile (synthetic faces for ``source: synthetic``), subsampled per
    ``data.subsample``, with FER+ votes attached when the FER+ files are present."""
    cfg = profile.data
    if cfg.source == "synthetic":
        return make_synthetic_faces(cfg.synthetic_per_class, seed=profile.seed)
    faces = load_fer2013(resolve_data_path(cfg.fer2013), skip_unreadable=cfg.skip_unreadable)
    ferplus_dir = resolve_data_path(cfg.ferplus)
    if with_ferplus and (ferplus_dir / "fer2013new.csv").is_file():
        faces = attach_ferplus(faces, ferplus_dir)
    sizes = {
        "train": cfg.subsample.train,
        "public_test": cfg.subsample.public_test,
        "private_test": cfg.subsample.private_test,
    }
    return stratified_subsample(faces, sizes, seed=profile.seed)


def load_evoked(profile: Profile) -> ImageSet:
    """Emotion6 for this profile (synthetic colour images for ``source: synthetic``)."""
    cfg = profile.data
    if cfg.source == "synthetic":
        return make_synthetic_evoked(max(2, cfg.synthetic_per_class // 2), seed=profile.seed)
    evoked = load_emotion6(resolve_data_path(cfg.emotion6))
    if cfg.emotion6_subsample is not None:
        evoked = evoked.subset(stratified_indices(evoked.labels, cfg.emotion6_subsample, profile.seed))
    return evoked
