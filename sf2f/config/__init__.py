"""Typed experiment configuration, loaded from YAML: `schema.py` holds the dataclasses with every number of the
original recipe ("recipe §N"), `loader.py` reads config files, profiles and `--set` overrides into one checked
:class:`ExperimentConfig`, and saves and reloads the resolved config every run keeps."""

from sf2f.config.loader import (
    PAPER_CONFIGS,
    PROFILES,
    ConfigError,
    config_diff,
    config_from_dict,
    describe_diff,
    flatten_config,
    load_config,
    load_resolved_config,
    save_config,
)
from sf2f.config.schema import (
    AudioConfig,
    DataConfig,
    ExperimentConfig,
    FaceEmbedderConfig,
    LossConfig,
    OptimConfig,
    SyntheticConfig,
)

__all__ = ["PAPER_CONFIGS", "PROFILES", "AudioConfig", "ConfigError", "DataConfig", "ExperimentConfig",
           "FaceEmbedderConfig", "LossConfig", "OptimConfig", "SyntheticConfig", "config_diff", "config_from_dict",
           "describe_diff", "flatten_config", "load_config", "load_resolved_config", "save_config"]
