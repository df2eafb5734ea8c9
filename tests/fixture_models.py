"""Checkpoints of untrained networks in the format `load_generator` reads, for tests of what surrounds the weights
(inference, the command line), not of what the weights learned."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from sf2f.checkpoints import CHECKPOINT_FORMAT, save_checkpoint
from sf2f.config import load_config
from sf2f.models import build_generator


def untrained_checkpoint(folder: Path, config: str) -> Path:
    """A quick-profile generator of `config`, seeded, saved as `folder/<config>/checkpoints/latest.pt`."""
    cfg = load_config(config, profile="quick")
    torch.manual_seed(0)
    generator = build_generator(cfg)
    # freshly initialised, the decoder's images differ by about 1e-6 between voices (its activations shrink layer by
    # layer); running variances below 1 in eval mode amplify them, so faces differ (by about 0.1) as trained ones do
    for module in generator.decoder.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_var.fill_(0.05)
    state = {"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(cfg), "generator": generator.state_dict()}
    return save_checkpoint(state, folder / config / "checkpoints" / "latest.pt")
