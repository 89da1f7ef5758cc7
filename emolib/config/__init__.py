"""Typed, frozen configuration: one dataclass per stage, one YAML file per profile.

One module per stage's settings (``data``, ``restoration``, ``cnn``, ``vlm``, ``study`` for the
prompt sweep, costs and human evaluation) and the profile loader (``profile``).
``load_profile("quick")`` reads ``configs/quick.yaml``; ``load_profile("quick", **{"cnn.epochs": 2})``
or ``load_profile("quick", cnn={"epochs": 2})`` overrides single values. Every key is checked
at load: an unknown key, a wrong type, a number out of its range (each setting's ``metadata``),
a name not in its registry (``emolib.registry``) or a missing profile file raises
``ConfigError`` naming the file, the key and what is allowed. ``config_hash`` gives a stable
short hash of any config section, used to name stage output folders.
"""

from emolib.config.checks import check_threads
from emolib.config.cnn import CNNConfig, ModelSettings
from emolib.config.data import DATA_ROLES, DataConfig, DataSetConfig, SubsampleConfig
from emolib.config.profile import (
    PROMPT_SET_GROUPS,
    Profile,
    configs_dir,
    load_profile,
    profile_path,
    with_endpoint_models,
)
from emolib.config.restoration import RestorationConfig
from emolib.config.study import CostConfig, HumanEvalConfig, PromptStudyConfig
from emolib.config.vlm import (
    RECORDED_ANSWER_MODES,
    RECORDED_FILE_COLUMNS,
    EndpointConfig,
    RecordedFileConfig,
    VLMConfig,
)
from emolib.registry import DATA_LOADERS
from emolib.schema import ConfigError, build_config, config_hash, to_dict

__all__ = ["CNNConfig", "ConfigError", "CostConfig", "DATA_LOADERS", "DATA_ROLES", "DataConfig", "DataSetConfig",
           "EndpointConfig", "HumanEvalConfig", "ModelSettings", "PROMPT_SET_GROUPS", "Profile", "PromptStudyConfig",
           "RECORDED_ANSWER_MODES", "RECORDED_FILE_COLUMNS", "RecordedFileConfig", "RestorationConfig",
           "SubsampleConfig", "VLMConfig", "build_config", "check_threads", "config_hash", "configs_dir",
           "load_profile", "profile_path", "to_dict", "with_endpoint_models"]
