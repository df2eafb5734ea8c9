"""Training: the two-stage SF2F trainer, its learning-rate schedule, checkpoints and logs (reference §3)."""
