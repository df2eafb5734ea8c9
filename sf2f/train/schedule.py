"""The learning-rate schedule and the switches that fire at fixed epochs (recipe §3.4; in the paper's 12,000 epochs the
decay and the generator's eval mode both start at 10,000, though the original's help calls the decay disabled)."""

from __future__ import annotations

from sf2f.config import OptimConfig


def learning_rate(optim: OptimConfig, epoch: int, decays: bool = True) -> float:
    """The learning rate for `epoch` (0-based): lr0 = `lr * lr_scale`, from `decay_lr_after_epochs` on decaying
    linearly towards `decay_lr_final_ratio * lr0` as the original computes it; `decays=False` keeps lr0 (the original
    never decays the AC-discriminator optimisers unless `decay_ac_lr`)."""
    lr0 = optim.lr * optim.lr_scale
    start = optim.decay_lr_after_epochs
    if not decays or epoch < start:
        return lr0
    fraction = min(1.0, (epoch - start + 1) / (optim.epochs - start + 1e-5))
    return lr0 - fraction * (lr0 - lr0 * optim.decay_lr_final_ratio)


def eval_mode_now(optim: OptimConfig, epoch: int) -> bool:
    """True from the epoch at which the generator runs with frozen BatchNorm statistics (§3.4 "eval-mode switch")."""
    return epoch >= optim.eval_mode_after_epochs


def l1_enabled(optim: OptimConfig, epoch: int) -> bool:
    """The L1 pixel loss is dropped from `disable_l1_after_epochs` on (never, in every paper config)."""
    return epoch < optim.disable_l1_after_epochs


def adversarial_enabled(optim: OptimConfig, epoch: int) -> bool:
    """The adversarial, AC and perceptual terms and the discriminators' updates run from `pixel_warmup_epochs` on."""
    return epoch >= optim.pixel_warmup_epochs
