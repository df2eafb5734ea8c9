"""Training: the two-stage SF2F trainer (recipe §3); `iteration` is one training iteration top to bottom (§3.2),
`trainer` the loop around it (`python -m sf2f train ...`)."""
