"""Settings of the data sets (notebook 01): FER-2013, Emotion6 and the sets of ``data.sets``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

from emolib.labels import get_label_set
from emolib.registry import DATA_LOADERS
from emolib.schema import ConfigError, at_least, within


@dataclass(frozen=True)
class SubsampleConfig:
    """Images per split after stratified subsampling; ``null`` keeps the whole split."""

    train: int | None = field(default=None, metadata=at_least(1))
    public_test: int | None = field(default=None, metadata=at_least(1))
    private_test: int | None = field(default=None, metadata=at_least(1))


DATA_ROLES = ("faces", "evoked")
# loaders of one particular data set: its label set and role are fixed
FIXED_LOADERS = {"fer2013": ("fer7", "faces"), "emotion6": ("emotion6", "evoked")}
MANIFEST_COLUMNS = ("path", "label", "split", "image_id")  # columns a manifest's ``columns`` may rename
IMAGE_ID_FORMS = ("path", "stem", "file")  # class_folders ids: <class>/<stem>, <stem>, <stem>.<suffix>


@dataclass(frozen=True)
class DataSetConfig:
    """One named data set of ``data.sets``.

    ``loader``: ``fer2013`` | ``emotion6`` | ``class_folders`` (``path/<class>/*.jpg`` or
    ``path/<split>/<class>/*.jpg``) | ``manifest`` (a CSV listing ``path``, ``label``, optional
    ``split`` and ``image_id``; ``columns`` renames them, e.g. ``{label: emotion}``).
    ``path`` is relative to the data root (``EMOLIB_DATA_DIR``) unless absolute. ``label_set``
    names an ``emolib.labels`` label set and ``role`` says what the study does with the set
    (``evoked``: every VLM scores it; ``faces``: listed in notebook 01); both are fixed for the
    fer2013 and emotion6 loaders. ``image_id`` (class_folders): ids as ``path``
    (``<class>/<stem>``), ``stem`` or ``file`` (``<stem>.<suffix>``, the form recorded answers
    may use). ``subsample``: images kept (stratified, profile seed); ``eval_size``: the VLM
    stage's stratified draw ``<name>_eval_<n>``; null = all.
    """

    name: str
    loader: str
    path: str
    label_set: str | None = None
    role: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    image_id: str = "path"
    subsample: int | None = field(default=None, metadata=at_least(1))
    eval_size: int | None = field(default=None, metadata=at_least(1))


@dataclass(frozen=True)
class DataConfig:
    """Where the data sets are and how they are cut down. Paths are relative to the data root.

    ``fer2013`` and ``emotion6`` are the study's default sets (named ``fer2013`` and
    ``emotion6``); ``sets`` adds more (``DataSetConfig``), or replaces a default by naming it.
    ``all_sets()`` lists every set of the profile, defaults first. ``source: synthetic``
    replaces FER-2013 and Emotion6 with stand-ins; other sets are read from their paths.
    """

    source: Literal["real", "synthetic"] = "real"
    fer2013: str = "fer2013/fer2013.zip"
    ferplus: str = "fer2013/ferplus"
    emotion6: str = "emotion6/Emotion6.zip"
    synthetic_per_class: int = field(default=40, metadata=at_least(1))  # per class and split, smoke profile only
    subsample: SubsampleConfig = field(default_factory=SubsampleConfig)
    # images of Emotion6 kept (stratified); null = all
    emotion6_subsample: int | None = field(default=None, metadata=at_least(1))
    # The evaluation draws every stage shares (emolib.catalog): `eval_size` PrivateTest faces
    # (stratified, profile seed; null = all) that restoration, CNN and VLM stages all score,
    # and `emotion6_eval_size` Emotion6 images for the VLM stage (null = all).
    eval_size: int | None = field(default=None, metadata=at_least(1))
    emotion6_eval_size: int | None = field(default=None, metadata=at_least(1))
    # Hamming distance (of 64 bits) that counts as a near duplicate
    phash_threshold: int = field(default=4, metadata=within(0, 64))
    near_duplicates: bool = True
    skip_unreadable: bool = False  # True: unreadable images are listed in the audit, not fatal
    # more named data sets (ArtPhoto, Abstract, EmoSet, FI, your own); left out of the config
    # hash while empty, so profiles without it keep their stage folders
    sets: tuple[DataSetConfig, ...] = field(default=(), metadata={"omit_default": True})

    def __post_init__(self) -> None:
        names = [s.name for s in self.sets]
        for i, entry in enumerate(self.sets):
            check_data_set(entry, f"data.sets[{i}] ({entry.name!r})")
            if entry.name in names[:i]:
                raise ConfigError(f"data.sets[{i}] ({entry.name!r}): the name {entry.name!r} is already used by "
                                  f"data.sets[{names.index(entry.name)}]; give every set its own name")
        self.all_sets()  # a named emotion6 that contradicts data.emotion6_* fails here

    def all_sets(self) -> tuple[DataSetConfig, ...]:
        """Every data set of the profile: ``fer2013`` and ``emotion6`` (from ``data.fer2013``,
        ``data.emotion6`` and ``data.emotion6_*``, or the ``sets`` entry of that name), then
        the other ``sets`` in profile order; label sets and roles of fixed loaders filled in."""
        named = {s.name: s for s in self.sets}
        defaults = (DataSetConfig("fer2013", "fer2013", self.fer2013),
                    DataSetConfig("emotion6", "emotion6", self.emotion6, subsample=self.emotion6_subsample,
                                  eval_size=self.emotion6_eval_size))
        out = [_merge_default(named.pop(d.name), d) if d.name in named else d for d in defaults]
        out += named.values()
        return tuple(_with_fixed(s) for s in out)

    def get_set(self, name: str) -> DataSetConfig:
        """The set called ``name`` (``all_sets``); KeyError naming the known ones."""
        for entry in self.all_sets():
            if entry.name == name:
                return entry
        raise KeyError(f"no data set {name!r} in this profile; its sets: {[s.name for s in self.all_sets()]}")


def check_data_set(entry: DataSetConfig, where: str) -> None:
    """ConfigError naming ``where`` and the fix when ``entry`` cannot be loaded as written."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", entry.name) or entry.name == "fer":
        raise ConfigError(f"{where}: name it with lower-case letters, digits and '_' (it names the subsets "
                          "<name>_all and <name>_eval_<n>; 'fer' is taken by FER-2013's subsets)")
    if entry.loader not in DATA_LOADERS:
        raise ConfigError(f"{where}: unknown loader {entry.loader!r}; use one of {list(DATA_LOADERS)}")
    if entry.name in FIXED_LOADERS and entry.loader != entry.name:
        raise ConfigError(f"{where}: the set named {entry.name!r} is the study's own and needs loader "
                          f"{entry.name!r}; give your set another name")
    if not entry.path:
        raise ConfigError(f"{where}: path is empty; give the file or folder (relative to EMOLIB_DATA_DIR)")
    if entry.loader in FIXED_LOADERS:
        label_set, role = FIXED_LOADERS[entry.loader]
        if entry.label_set not in (None, label_set) or entry.role not in (None, role):
            raise ConfigError(f"{where}: loader {entry.loader!r} always gives label set {label_set!r} and role "
                              f"{role!r}; drop label_set and role or use loader class_folders/manifest")
    for key, value in (("label_set", entry.label_set), ("role", entry.role)):
        if value is None and entry.loader not in FIXED_LOADERS:
            raise ConfigError(f"{where}: loader {entry.loader!r} needs {key}: say which "
                              + ("label set its classes belong to" if key == "label_set" else
                                 f"role it plays, one of {list(DATA_ROLES)}"))
    if entry.role is not None and entry.role not in DATA_ROLES:
        raise ConfigError(f"{where}: unknown role {entry.role!r}; use one of {list(DATA_ROLES)}")
    if entry.label_set is not None:
        try:
            get_label_set(entry.label_set)
        except KeyError as err:
            raise ConfigError(f"{where}: {err.args[0]}") from None  # the message names the known sets and the fix
    if entry.columns and entry.loader != "manifest":
        raise ConfigError(f"{where}: columns is an option of loader 'manifest' only; remove it")
    unknown = sorted(set(entry.columns) - set(MANIFEST_COLUMNS))
    if unknown:
        raise ConfigError(f"{where}: columns renames {list(MANIFEST_COLUMNS)}, not {unknown}; write e.g. "
                          "{label: emotion} for a CSV whose label column is 'emotion'")
    if entry.image_id not in IMAGE_ID_FORMS or (entry.image_id != "path" and entry.loader != "class_folders"):
        raise ConfigError(f"{where}: image_id {entry.image_id!r}: class_folders sets take one of "
                          f"{list(IMAGE_ID_FORMS)}; other loaders name their ids themselves (manifest: its "
                          "image_id column)")
    if entry.loader == "fer2013" and (entry.subsample is not None or entry.eval_size is not None):
        raise ConfigError(f"{where}: FER-2013 is cut by data.subsample and data.eval_size; remove subsample "
                          "and eval_size here")
    for key in ("subsample", "eval_size"):
        if getattr(entry, key) is not None and getattr(entry, key) < 1:
            raise ConfigError(f"{where}: {key} must be at least 1, or null for all images")


def _merge_default(entry: DataSetConfig, default: DataSetConfig) -> DataSetConfig:
    """A ``sets`` entry named like a default set, with the sizes of the ``data.*`` keys; the
    two may not disagree."""
    sizes = {}
    for key in ("subsample", "eval_size"):
        own, legacy = getattr(entry, key), getattr(default, key)
        if own is not None and legacy is not None and own != legacy:
            raise ConfigError(f"data.sets ({entry.name!r}): {key} {own} contradicts data.{entry.name}_{key} "
                              f"{legacy}; set it in one place")
        sizes[key] = own if own is not None else legacy
    return replace(entry, **sizes)


def _with_fixed(entry: DataSetConfig) -> DataSetConfig:
    if entry.loader not in FIXED_LOADERS:
        return entry
    label_set, role = FIXED_LOADERS[entry.loader]
    return replace(entry, label_set=label_set, role=role)
