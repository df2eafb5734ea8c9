"""Typed experiment configuration, loaded from YAML.

`schema.py` holds the dataclasses, every number of the original recipe with its section ("recipe §N");
`loader.py` reads config files, their `base:` chains, profiles and `--set` overrides into one checked
:class:`ExperimentConfig`, and saves and reloads the resolved config every run keeps.
"""

from sf2f.config.loader import (
    PAPER_CONFIGS,
    PROFILES,
    RETIRED_KEYS,
    ConfigError,
    config_diff,
    config_from_dict,
    config_to_dict,
    describe_diff,
    flatten_config,
    load_config,
    load_resolved_config,
    profile_layers,
    save_config,
)
from sf2f.config.schema import (
    AudioConfig,
    DataConfig,
    DecoderConfig,
    DiscriminatorConfig,
    EncoderConfig,
    EvalConfig,
    ExperimentConfig,
    FaceEmbedderConfig,
    FuserConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SyntheticConfig,
)

__all__ = [
    "PAPER_CONFIGS",
    "PROFILES",
    "RETIRED_KEYS",
    "AudioConfig",
    "ConfigError",
    "DataConfig",
    "DecoderConfig",
    "DiscriminatorConfig",
    "EncoderConfig",
    "EvalConfig",
    "ExperimentConfig",
    "FaceEmbedderConfig",
    "FuserConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "SyntheticConfig",
    "config_diff",
    "config_from_dict",
    "config_to_dict",
    "describe_diff",
    "flatten_config",
    "load_config",
    "load_resolved_config",
    "profile_layers",
    "save_config",
]
