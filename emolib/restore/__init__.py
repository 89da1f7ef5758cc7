"""Face restoration behind one ``Restorer`` interface: GFPGAN, Real-ESRGAN (ncnn) and the
classical baselines, batched, cached per image, timed.

Notebook 02 calls ``restoration_subset(faces, profile)`` (the evaluation subset of
``emolib.catalog``) and ``restore_imageset(subset, backend, profile)`` (an ``ImageSet``
variant such as ``realesrgan-x4-96``); ``backend_status(profile)`` says which backends run
here and why not. Notebooks 03 and 04 read what it restored with ``load_evaluation_sets``.
"""

from collections.abc import Sequence

import numpy as np

from emolib.config import Profile
from emolib.restore.base import Restorer, RestorerUnavailable
from emolib.restore.cache import ImageCache
from emolib.restore.classical import ClassicalRestorer
from emolib.restore.gfpgan import GFPGANRestorer, build_gfpgan_net
from emolib.restore.realesrgan import RealESRGANRestorer
from emolib.restore.stage import (
    backend_available,
    backend_family,
    backend_status,
    cache_for,
    cost_path,
    evaluation_backends,
    load_evaluation_sets,
    make_restorer,
    preview_subset,
    profile_backends,
    record_evaluation_variants,
    restoration_subset,
    restoration_timings,
    restore_imageset,
    variant_name,
)
from emolib.restore.stats import image_stats, laplacian_variance, rms_contrast

__all__ = [
    "ClassicalRestorer", "GFPGANRestorer", "ImageCache", "RealESRGANRestorer", "Restorer",
    "RestorerUnavailable", "backend_available", "backend_family", "backend_status",
    "build_gfpgan_net", "cache_for", "cost_path", "evaluation_backends",
    "image_stats", "laplacian_variance", "make_restorer", "preview_subset", "profile_backends",
    "load_evaluation_sets", "record_evaluation_variants", "restoration_subset", "restoration_timings", "restore_images",
    "restore_imageset", "rms_contrast", "variant_name",
]


def restore_images(images: Sequence[np.ndarray], backend: str, profile: Profile) -> list[np.ndarray]:
    """Restore uint8 images ((h, w) or (h, w, 3)) with ``backend``, uncached: a convenience
    for single calls; ``restore_imageset`` is the cached, timed path."""
    if backend == "none":
        return list(images)
    return make_restorer(backend, profile).restore_images(list(images))
