"""YAML files to a checked :class:`ExperimentConfig`: `base:` chains, `--set` overrides, saved configs, and profiles
(`configs/profiles/*.yaml`: partial configs that scale sizes, steps and batch, never the recipe; their `fuser_stage:`
section applies to the fuser stage only, 50 epochs in the paper against stage 1's 12,000). Errors name key and file."""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sf2f.config.schema import ExperimentConfig, ValueProblem, check_tree
from sf2f.errors import SF2FError
from sf2f.paths import CONFIG_DIR, PROFILE_DIR

PAPER_CONFIGS: tuple[str, ...] = ("v2f", "sf2f_1st_stage", "sf2f_fuser", "sf2f_mid_1st_stage", "sf2f_mid_fuser")
PROFILES: tuple[str, ...] = ("quick", "demo", "long", "paper")
FUSER_STAGE_KEY = "fuser_stage"
#: keys the schema no longer has, skipped where earlier runs' saved configs and trained_weights/manifest.json hold
#: them: the fuser's score function ("general", recipe §2.2, was its only value)
RETIRED_KEYS: tuple[str, ...] = ("model.fuser.attention",)

#: (where it comes from, a partial config as plain YAML data), in the order the layers apply
Layer = tuple[str, dict[str, Any]]


class ConfigError(SF2FError, ValueError):
    """A config file holds an unknown key, a value of the wrong type or an impossible value."""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict | None):
        raise ConfigError(f"{path}: a config file must hold a mapping, got {type(data).__name__}")
    return data or {}


def _find(name: str | Path, shipped: Path, what: str, near: Path | None = None) -> Path:
    """The YAML file `name` means: a path (for a `base:`, also a stem next to `near`), else one in `shipped`."""
    here = [Path(name)] if near is None else [near / name, near / f"{name}.yaml"]
    for candidate in [*here, shipped / name, shipped / f"{name}.yaml"]:
        if candidate.is_file():
            return candidate
    names = ", ".join(sorted(p.stem for p in shipped.glob("*.yaml")))
    raise ConfigError(f"{what} is neither a file nor one of the shipped ones in {shipped} (available: {names})")


def _chain(path: Path, shipped: Path, seen: tuple[Path, ...] = ()) -> list[Layer]:
    """A file and its `base:` files, outermost base first, as read."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: circular 'base:' chain through {', '.join(str(p) for p in seen)}")
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return [(str(path), data)]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: key 'base' must be a file name, got {base!r}")
    parent = _find(base, shipped, f"{path}: base '{base}'", near=path.parent)
    return [*_chain(parent, shipped, (*seen, path.resolve())), (str(path), data)]


def profile_layers(profile: str | Path) -> tuple[list[Layer], list[Layer]]:
    """A profile's layers (its `base:` chain, outermost first) and the `fuser_stage:` sections of that chain."""
    general: list[Layer] = []
    fuser: list[Layer] = []
    for source, data in _chain(_find(profile, PROFILE_DIR, f"profile '{profile}'"), PROFILE_DIR):
        section = data.pop(FUSER_STAGE_KEY, None)
        general.append((source, data))
        if section is not None:
            if not isinstance(section, dict):
                raise ConfigError(f"{source}: key '{FUSER_STAGE_KEY}' must hold a mapping, got {section!r}")
            fuser.append((f"{source} ({FUSER_STAGE_KEY})", section))
    return general, fuser


def _leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of YAML data; an empty mapping is a leaf too (`optm: {}` is a misspelling)."""
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@functools.cache
def _schema() -> DictConfig:
    """The schema's defaults as a structured config, built once (slow), copied for each load."""
    return OmegaConf.structured(ExperimentConfig)


def _merge(layers: Sequence[Layer], onto: DictConfig | None = None) -> DictConfig:
    """Set the keys of `layers`, in order, in `onto` (default: a copy of the defaults) one at a time, so that an error
    names the key and the layer's file."""
    merged = copy.deepcopy(_schema()) if onto is None else onto
    for source, data in layers:
        for key, value in _leaves(data):
            if key in RETIRED_KEYS:
                continue
            try:
                OmegaConf.update(merged, key, value)
            except OmegaConfBaseException as exc:
                raise ConfigError(f"{source}: key '{key}': {str(exc).splitlines()[0]}") from None
    return merged


def _instantiate(merged: DictConfig, where: str) -> ExperimentConfig:
    """The dataclass tree of a merged config, its values checked by :func:`~sf2f.config.schema.check_tree`."""
    try:
        cfg = OmegaConf.to_object(merged)
        check_tree(cfg)
    except OmegaConfBaseException as exc:  # a `${...}` interpolation that does not resolve
        raise ConfigError(f"{where}: key '{exc.full_key}': {str(exc).splitlines()[0]}") from None
    except ValueProblem as problem:
        raise ConfigError(f"{where}: key '{problem.key}' {problem.message}") from None
    return cfg


def _override(text: str) -> Layer:
    """`optim.batch_size=8` as the layer {'optim.batch_size': 8}, the value read as YAML."""
    key, equals, value = text.partition("=")
    source = f"override '{text}'"
    if not equals:
        raise ConfigError(f"{source}: expected dotted.key=value")
    try:
        return source, {key.strip(): yaml.safe_load(value)}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: the value is not valid YAML: {exc}") from None


def load_config(config: str | Path, profile: str | Path | None = None,
                overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load a paper config by name (`sf2f_fuser`) or path, scale it by a profile, apply `key=value` overrides."""
    layers = _chain(_find(config, CONFIG_DIR, f"config '{config}'"), CONFIG_DIR)
    merged = _merge(layers)
    scaling = [_override(text) for text in overrides]
    if profile is not None:
        general, fuser = profile_layers(profile)
        if merged.optim.stage == "fuser":  # the paper config's stage: a profile never turns stage 1 into the fuser's
            general += fuser
        elif fuser:
            _merge(fuser)  # checked all the same, so that a misspelling there shows whichever config is loaded
        scaling = general + scaling
    sources = [source for source, _ in layers + scaling]
    cfg = _instantiate(_merge(scaling, merged), " + ".join(sources))
    cfg.profile, cfg.sources = (None if profile is None else Path(profile).stem), sources
    return cfg


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write the fully resolved config, so a run records exactly what it ran with."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False), encoding="utf-8")
    return path


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> ExperimentConfig:
    """A config from its `dataclasses.asdict` mapping (for example the copy inside a checkpoint)."""
    return _instantiate(_merge([(source, dict(data))]), source)


def load_resolved_config(path: str | Path) -> ExperimentConfig:
    """Read back a config written by :func:`save_config` (every key present, no base or profile)."""
    return config_from_dict(_read_yaml(Path(path)), str(path))


def flatten_config(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """`{'optim.lr': 5e-4, ...}`: every leaf of a config tree (a dataclass or YAML data) under its dotted key."""
    return dict(_leaves(dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg, prefix))


def config_diff(a: ExperimentConfig, b: ExperimentConfig) -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose values differ between two configs, with both values (bookkeeping keys left out)."""
    fa, fb = flatten_config(a), flatten_config(b)
    return {k: (fa[k], fb[k]) for k in fa if fa[k] != fb[k] and k not in ("profile", "sources")}


def describe_diff(diff: Mapping[str, tuple[Any, Any]], limit: int = 5) -> str:
    """The first `limit` entries of a :func:`config_diff` for an error message: `key: old -> new; ...`."""
    return "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:limit])
