"""Checkpoints: atomic writes, safe loading, latest plus best-by-metric, the RNG state for exact resumes, and a trained
generator back from a run. Unlike the original's (recipe §3.5, §6 item 17), a checkpoint holds plain data only (no
validation samples) and is read with `torch.load(weights_only=True)`, so loading a downloaded file cannot run code."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from sf2f.config import ExperimentConfig, config_from_dict
from sf2f.errors import MissingPathError, SF2FError
from sf2f.models import build_generator
from sf2f.models.generator import Generator
from sf2f.paths import atomic_path
from sf2f.weights import torch_load

#: what a training checkpoint says it is (the trainer writes it, :func:`load_generator` checks it)
CHECKPOINT_FORMAT = "sf2f-train-v1"


class CheckpointError(SF2FError, RuntimeError):
    """A checkpoint file is unreadable or does not fit the model it is loaded into."""


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write `state` to `path` atomically and durably: a process killed mid-write leaves the previous checkpoint."""
    path = Path(path)
    with atomic_path(path, durable=True) as tmp:
        torch.save(dict(state), tmp)
    return path


def load_checkpoint(path: str | Path, expected_format: str = "", writer: str = "train") -> dict[str, Any]:
    """Read a checkpoint onto the CPU with `weights_only=True` (tensors and plain containers only); with
    `expected_format`, one whose `format` is another (not written by `python -m sf2f <writer>`) is an error."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"{path}: no such checkpoint")
    state = torch_load(path, CheckpointError, "sf2f checkpoint")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of states, found {type(state).__name__}")
    if expected_format and state.get("format") != expected_format:
        raise CheckpointError(f"{path}: not a file `python -m sf2f {writer}` wrote (format {state.get('format')!r})")
    return state


def load_state_checked(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, source: str | Path) -> None:
    """Load a state dict strictly, with an error that lists what does not fit (missing, unexpected, wrong shape)."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    problems = {"missing key(s)": missing, "unexpected key(s)": unexpected, "shape mismatch(es)": shapes}
    parts = [f"{len(keys)} {name}, e.g. {keys[:3]}" for name, keys in problems.items() if keys]
    if parts:
        raise CheckpointError(f"{source}: the {what} in this checkpoint does not fit the config ({'; '.join(parts)}); "
                              "was it trained with another config or profile?")
    module.load_state_dict(state)


def capture_rng_state() -> dict[str, Any]:
    """Every global random state a training step reads, as plain data that `weights_only` loading accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, cached),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put back what `capture_rng_state` saved (CUDA states only when this machine has as many GPUs)."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class CheckpointManager:
    """`latest.pt` after every save, and `best_<metric>.pt` whenever a tracked metric improves (`metrics`: name to
    "max" or "min"). The best values travel inside each checkpoint, so a resumed run compares against the true best."""

    def __init__(self, folder: str | Path, metrics: Mapping[str, Literal["max", "min"]]) -> None:
        self.folder, self.metrics = Path(folder), dict(metrics)
        self.best: dict[str, float] = {}

    @property
    def latest(self) -> Path:
        return self.folder / "latest.pt"

    def best_path(self, metric: str) -> Path:
        return self.folder / f"best_{metric}.pt"

    def _improves(self, metric: str, value: float) -> bool:
        best = self.best.get(metric)
        return best is None or (value > best if self.metrics[metric] == "max" else value < best)

    def save(self, state: Mapping[str, Any], values: Mapping[str, float] | None = None) -> list[str]:
        """Save `state` as latest; also as best for each improved metric. Returns the improved metric names."""
        values = values or {}
        unknown = set(values) - set(self.metrics)
        if unknown:
            raise KeyError(f"untracked metric(s) {sorted(unknown)}; tracked: {sorted(self.metrics)}")
        improved = [m for m, v in values.items() if np.isfinite(v) and self._improves(m, v)]
        self.best.update({m: float(values[m]) for m in improved})
        full = {**state, "best": dict(self.best)}
        save_checkpoint(full, self.latest)
        for metric in improved:
            save_checkpoint(full, self.best_path(metric))
        return improved

    def resume(self) -> dict[str, Any] | None:
        """The latest checkpoint's state (its best values restored), or None when there is none yet. On the CPU: the RNG
        states must stay CPU byte tensors (torch.set_rng_state rejects a GPU copy)."""
        if not self.latest.exists():
            return None
        state = load_checkpoint(self.latest)
        self.best = {k: float(v) for k, v in state.get("best", {}).items()}
        return state


def load_generator(source: str | Path, checkpoint: str = "latest") -> tuple[Generator, ExperimentConfig]:
    """A trained generator (eval mode, on the CPU) and its config, from a checkpoint file or a run folder's
    `checkpoint` (`latest` or `best_<metric>`, for example `best_recall_at_5`)."""
    path = Path(source)
    if path.is_dir():
        folder = path / "checkpoints"
        path = folder / f"{checkpoint}.pt"
        if not path.is_file():
            names = sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []
            have = f"this run has {', '.join(names)}" if names else "this run has no checkpoint yet"
            raise MissingPathError(f"{path}: no such checkpoint ({have})")
    state = load_checkpoint(path, CHECKPOINT_FORMAT)
    cfg = config_from_dict(state["config"], str(path))
    generator = build_generator(cfg)
    load_state_checked(generator, state["generator"], "generator", path)
    return generator.eval(), cfg
