"""A profile: its name, seed, device and every stage's settings, read from ``configs/<name>.yaml``
by ``load_profile``, which checks every key (type, range, names) and names the file in any error."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from emolib.config.cnn import CNNConfig
from emolib.config.data import DataConfig, DataSetConfig
from emolib.config.restoration import RestorationConfig
from emolib.config.study import CostConfig, HumanEvalConfig, PromptStudyConfig
from emolib.config.vlm import VLMConfig
from emolib.labels import register_profile_label_sets
from emolib.machine import check_device, resolve_device
from emolib.paths import project_root
from emolib.schema import ConfigError, at_least, build_config, deep_merge, expand_dotted
from emolib.templates import check_generative_prompts, role_generative_prompts

# keys a profile may still carry from an earlier release, and what replaced them
RENAMED_KEYS = {("cnn", "bf16_models"): "cnn.precision (auto | fp32 | bf16; auto: bf16 only where the CPU computes "
                                        "it natively) and cnn.per_model.<model>.precision"}


@dataclass(frozen=True)
class Profile:
    """One run of the study: its name, seed, device and every stage's settings."""

    name: str
    seed: int = field(default=0, metadata=at_least(0))
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (emolib.machine)
    # auto: a model's missing weights are downloaded on first use when online; offline: never
    # (fetch them ahead with `emolib fetch <profile>`); either way a model without them is "unavailable"
    weights: Literal["auto", "offline"] = "auto"
    bootstrap_samples: int = field(default=1000, metadata=at_least(1))
    data: DataConfig = field(default_factory=DataConfig)
    restoration: RestorationConfig = field(default_factory=RestorationConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)
    prompts: PromptStudyConfig = field(default_factory=PromptStudyConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    human_eval: HumanEvalConfig = field(default_factory=HumanEvalConfig)
    # label sets of your own: YAML files (relative to this profile's folder) and/or inline
    # mappings {name: {description, labels}}; registered by load_profile (README "Your own label sets")
    label_sets: tuple[str | dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        self.prompt_sets()  # an unknown or unsweepable prompts.datasets entry fails at load
        check_generative_prompts(self.vlm.generative_prompts)

    def with_role_prompts(self) -> Profile:
        """This profile with ``vlm.generative_prompts`` naming the prompt of every label set of
        your own by the role of its data sets (``emolib.templates.role_generative_prompts``), so
        backends, hashes and the sweep agree; ``load_profile`` returns profiles so completed."""
        chosen = role_generative_prompts(self.vlm.generative_prompts,
                                         [(s.name, s.label_set, s.role) for s in self.data.all_sets()])
        return self if chosen == self.vlm.generative_prompts else replace(
            self, vlm=replace(self.vlm, generative_prompts=chosen))

    def prompt_sets(self) -> tuple[DataSetConfig, ...]:
        """The data sets the prompt sweep asks (``prompts.datasets``), each once, in order:
        ``evoked`` is every set of role evoked (``data.all_sets``), ``faces`` FER-2013, a name
        that set. ConfigError naming the key and the known sets for an unknown name or a faces
        set other than FER-2013 (notebook 01 stores evaluation subsets for FER-2013 and the
        evoked sets only, and the sweep draws from them)."""
        sets, out = self.data.all_sets(), {}
        by_name = {s.name: s for s in sets}
        for entry in self.prompts.datasets:
            if entry in PROMPT_SET_GROUPS:
                chosen = [s for s in sets if s.role == "evoked"] if entry == "evoked" else [by_name["fer2013"]]
            elif entry in by_name:
                chosen = [by_name[entry]]
            else:
                raise ConfigError(f"prompts.datasets: unknown data set {entry!r}; use {list(PROMPT_SET_GROUPS)} "
                                  f"or a set of this profile {sorted(by_name)}")
            for spec in chosen:
                if spec.role != "evoked" and spec.name != "fer2013":
                    raise ConfigError(f"prompts.datasets: {spec.name!r} has role {spec.role!r}; the sweep asks "
                                      "FER-2013 (faces) and the evoked sets, whose evaluation subsets notebook 01 "
                                      "stores")
                out.setdefault(spec.name, spec)
        return tuple(out.values())


PROMPT_SET_GROUPS = ("evoked", "faces")  # prompts.datasets words that name several sets


def configs_dir() -> Path:
    return project_root() / "configs"


def profile_path(name_or_path: str | Path) -> Path:
    """``"quick"`` -> ``configs/quick.yaml``; an existing path is used as it is."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        return candidate
    return configs_dir() / f"{name_or_path}.yaml"


def with_endpoint_models(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` settings with every model of ``vlm.endpoints`` also in ``vlm.openai_models`` (the
    list of OpenAI-compatible models a profile asks for), after those listed there."""
    vlm = raw.get("vlm") or {}
    if not isinstance(vlm, dict) or not isinstance(vlm.get("endpoints", []), list):
        return raw  # build_config names the wrong type
    listed = list(vlm.get("openai_models") or [])
    served = [e.get("model") for e in vlm.get("endpoints", []) if isinstance(e, dict)]
    missing = [m for m in dict.fromkeys(served) if m is not None and m not in listed]
    return {**raw, "vlm": {**vlm, "openai_models": listed + missing}} if missing else raw


def load_profile(name_or_path: str | Path, check_machine: bool = True, overrides: dict[str, Any] | None = None,
                 **more: Any) -> Profile:
    """Read a profile YAML, apply overrides (dotted or nested keys, from ``overrides`` and/or
    keyword arguments), validate, return it. ``check_machine``: also fail (DeviceError) when
    this machine lacks the profile's device, before any work; False only to inspect a profile
    meant for another machine. A notebook passes its ``overrides`` parameter as it is: anything
    but a mapping is a ConfigError that says what to write."""
    if not isinstance(name_or_path, str | Path):
        raise ConfigError(f"profile must be a profile name or a YAML path, got {type(name_or_path).__name__} "
                          f"{name_or_path!r}")
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError(f"overrides must be a mapping of dotted keys, e.g. {{'cnn.epochs': 2}}; got "
                          f"{type(overrides).__name__} {overrides!r}")
    overrides = {**(overrides or {}), **more}
    path = profile_path(name_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in configs_dir().glob("*.yaml"))
        raise ConfigError(f"profile file {path} does not exist; known profiles: {known}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    merged = deep_merge(raw, expand_dotted(overrides))
    for (section, key), now in RENAMED_KEYS.items():
        if key in (merged.get(section) or {}):
            raise ConfigError(f"{path}: {section}.{key} is no longer a setting; use {now}")
    # before the settings are built: data sets and recorded answers may name these label sets
    register_profile_label_sets(merged.get("label_sets", []), path.parent, str(path))
    try:
        profile = build_config(Profile, with_endpoint_models(merged), where=str(path)).with_role_prompts()
    except ConfigError as err:  # a section's own check names the key; the file is added here
        raise (err if str(err).startswith(str(path)) else ConfigError(f"{path}: {err}")) from None
    check_device(profile.device, f"{path}: device")
    if check_machine:
        resolve_device(profile.device, f"{path}: device")
    return profile
