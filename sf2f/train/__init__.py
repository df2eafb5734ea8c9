"""Training: the two-stage SF2F trainer (recipe §3). `iteration` is one training iteration top to bottom (§3.2),
`trainer` the loop around it, `schedule` its learning rates and switches, `validation` the quick val metrics, `logs`
and `visualize` what a run records, `train_or_load` the course's train-or-load (`python -m sf2f train ...`).
"""
