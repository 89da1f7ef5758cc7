"""Data sets of the study, each loaded into one ``ImageSet``.

``load_sets(profile)`` loads every set a profile names (``data.sets`` and the defaults
``fer2013`` and ``emotion6``) with a status table; ``load_faces(profile)`` and
``load_evoked(profile)`` give FER-2013 and Emotion6 (synthetic stand-ins for ``smoke``); the
layout loaders below serve users who call them directly.
"""

from __future__ import annotations

from emolib.data.emotion6 import load_emotion6
from emolib.data.fer2013 import detect_fer_layout, load_fer2013
from emolib.data.ferplus import attach_ferplus, load_ferplus_votes, majority_labels
from emolib.data.folder import load_class_folders, load_manifest
from emolib.data.imageset import SPLITS, DataError, ImageSet, image_hash, read_image
from emolib.data.sets import DataSets, load_evoked, load_faces, load_set, load_sets
from emolib.data.subsets import stratified_indices, stratified_subsample
from emolib.data.synthetic import make_synthetic_evoked, make_synthetic_faces

__all__ = [
    "SPLITS", "DataError", "DataSets", "ImageSet", "attach_ferplus", "detect_fer_layout", "image_hash",
    "load_class_folders", "load_emotion6", "load_evoked", "load_faces", "load_fer2013",
    "load_ferplus_votes", "load_manifest", "load_set", "load_sets", "majority_labels", "make_synthetic_evoked",
    "make_synthetic_faces", "read_image", "stratified_indices", "stratified_subsample",
]
