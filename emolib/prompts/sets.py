"""The images the prompt sweep asks (notebook 05): for each data set of ``prompts.datasets``, a
stratified sample of its evaluation subset (``<prefix>_sweep_<n>``) and the images of the
all-orders design (``<prefix>_sweep_order<k>_<n>``), and the sets table (``SET_COLUMNS``) that
says which sets were drawn and why not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib import catalog
from emolib.config import DataSetConfig, Profile
from emolib.data import DataError, ImageSet, load_set, stratified_indices
from emolib.prompts.variants import choose_order_labels

SET_COLUMNS = ["set", "dataset", "label_set", "role", "status", "reason", "subset", "n", "order_subset", "order_n"]
SWEPT, NOT_RUN = "swept", "not run"


def sample_set(image_set: ImageSet, size: int | None, seed: int, name: str) -> ImageSet:
    """A stratified sample of ``size`` images (all if ``size`` is None or larger), named."""
    if size is not None and size < len(image_set):
        image_set = image_set.subset(stratified_indices(image_set.labels, size, seed))
    return image_set.select_ids(image_set.ids, name)


def order_sample(image_set: ImageSet, labels: tuple[str, ...], size: int | None, seed: int, name: str) -> ImageSet:
    """Images whose truth is one of ``labels``, stratified down to ``size``, named."""
    keep = np.flatnonzero(np.isin(image_set.label_names, labels))
    return sample_set(image_set.subset(keep), size, seed, name)


def sweep_prefix(name: str) -> str:
    """The subset-name prefix of sweep set ``name`` (a profile set name): FER-2013's subsets are
    ``fer_*`` (as notebook 01's), every other set's its own name (``emotion6_sweep_<n>``)."""
    return "fer" if name == "fer2013" else name


def sample_name(profile: Profile, name: str) -> str:
    """``<prefix>_sweep_<n>``: the sweep's sample of set ``name`` (``prompts.sample_size``)."""
    return f"{sweep_prefix(name)}_sweep_{profile.prompts.sample_size or 'all'}"


def order_name(profile: Profile, name: str) -> str:
    """``<prefix>_sweep_order<k>_<n>``: the images of the all-orders design of set ``name``."""
    cfg = profile.prompts
    return f"{sweep_prefix(name)}_sweep_order{cfg.order_labels}_{cfg.order_sample_size or 'all'}"


def eval_pool(profile: Profile, spec: DataSetConfig, image_set: ImageSet) -> ImageSet:
    """The evaluation subset of notebook 01 the sweep draws set ``spec`` from."""
    name = catalog.fer_eval_name(profile) if spec.name == "fer2013" else catalog.evoked_eval_name(profile, spec.name)
    return catalog.select_subset(image_set, profile, name)


def set_row(spec: DataSetConfig, status: str, reason: str = "", dataset: str = "") -> dict:
    """One row of ``sets.csv`` (``SET_COLUMNS``), sizes 0 until the set is drawn."""
    return {"set": spec.name, "dataset": dataset, "label_set": spec.label_set, "role": spec.role, "status": status,
            "reason": reason, "subset": "", "n": 0, "order_subset": "", "order_n": 0}


def sweep_sets(profile: Profile) -> tuple[dict[str, ImageSet], pd.DataFrame]:
    """The sets of ``prompts.datasets`` (``Profile.prompt_sets``), keyed by profile set name:
    a stratified sample of ``prompts.sample_size`` images of the set's evaluation subset,
    named ``<prefix>_sweep_<n>`` (``sample_name``); and the sets table (``SET_COLUMNS``): a set
    whose files cannot be loaded here is a ``not run`` row with the loader's reason."""
    sets, rows = {}, []
    for spec in profile.prompt_sets():
        try:
            image_set = load_set(profile, spec.name)
        except DataError as err:
            rows.append(set_row(spec, NOT_RUN, f"data set unavailable: {err}"))
            continue
        sample = sample_set(eval_pool(profile, spec, image_set), profile.prompts.sample_size, profile.seed,
                            sample_name(profile, spec.name))
        order4 = order_set(profile, spec.name, sample)
        sets[spec.name] = sample
        rows.append(set_row(spec, SWEPT, dataset=sample.name) | {
            "subset": sample.subset_name, "n": len(sample), "order_subset": order4.subset_name, "order_n": len(order4)})
    return sets, pd.DataFrame(rows, columns=SET_COLUMNS)


def order_set(profile: Profile, name: str, image_set: ImageSet) -> ImageSet:
    """The images of the all-orders design of set ``name``: truth among the
    ``prompts.order_labels`` chosen labels, ``prompts.order_sample_size`` of them, named
    ``<prefix>_sweep_order4_<n>`` (``order_name``)."""
    cfg = profile.prompts
    labels = choose_order_labels(image_set.label_set, cfg.order_labels, profile.seed)
    return order_sample(image_set, labels, cfg.order_sample_size, profile.seed, order_name(profile, name))
