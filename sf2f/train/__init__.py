"""Training: the two-stage SF2F trainer, its learning-rate schedule and logs (recipe §3).

    from sf2f.config import load_config
    from sf2f.train.train_or_load import train_or_load

    cfg = load_config("sf2f_1st_stage", profile="demo")
    result = train_or_load(cfg, "data/prepared/synthetic-masked-64", "runs/s1")   # or: python -m sf2f train ...

`iteration` is one training iteration top to bottom (recipe §3.2), `trainer` the loop around it, `validation` the
quick val metrics, `visualize` grids and curves, `train_or_load` the course's train-or-load. The network the
perceptual loss and the metrics look through is `sf2f.embedder_weights`'s; checkpoints are `sf2f.checkpoints`.
"""
