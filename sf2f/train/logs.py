"""Training logs: every loss and metric to a long-form CSV (step, epoch, split, name, value: new losses can appear
mid-run without rewriting a header) and to TensorBoard when installed; a finished run's record, :class:`TrainResult`."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sf2f.errors import MissingPathError

COLUMNS = ("step", "epoch", "split", "name", "value")


class RunLogger:
    """Appends scalars to `<run>/metrics.csv` and `<run>/tensorboard/`; a no-op with `enabled=False` (other ranks)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True) -> None:
        self.path, self.enabled = Path(run_dir) / "metrics.csv", enabled
        self._writer: Any = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self.path.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
        try:  # optional: torch ships the writer, the `tensorboard` package provides the event format
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self._writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log(self, step: int, epoch: int, values: Mapping[str, float], split: str = "train") -> None:
        if not self.enabled or not values:
            return
        rows = [(step, epoch, split, name, float(value)) for name, value in values.items()]
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
        if self._writer is not None:
            for _, _, _, name, value in rows:
                if math.isfinite(value):
                    self._writer.add_scalar(f"{split}/{name}", value, step)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step`: a run resumed from an earlier checkpoint re-logs those steps."""
        if not self.enabled or not self.path.exists():
            return
        table = read_log(self.path.parent)
        table[table["step"] <= step].to_csv(self.path, index=False)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_log(run_dir: str | Path) -> pd.DataFrame:
    """The long-form log of a run as a DataFrame with columns step, epoch, split, name, value."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        raise MissingPathError(f"{path}: no training log (was the run started with this folder?)")
    return pd.read_csv(path)


@dataclass
class TrainResult:
    """A finished (or loaded) run: where it is, how far it went, and its last validation metrics."""

    run_dir: Path
    steps: int
    skipped_steps: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    replica_hashes: list[str] = field(default_factory=list)
    reused: bool = False

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

    def write(self) -> None:
        record = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "reused"}
        (self.run_dir / "done.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    @staticmethod
    def read(run_dir: str | Path) -> TrainResult:
        record = json.loads((Path(run_dir) / "done.json").read_text(encoding="utf-8"))
        record["run_dir"] = Path(run_dir)
        return TrainResult(**record, reused=True)
