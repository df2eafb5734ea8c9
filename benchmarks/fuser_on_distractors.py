"""Does the attention fuser beat a mean when some of a speaker's segments are bad? (issue 24, README "The fuser's
claim, measured")

`python -m benchmarks.fuser_on_distractors --work /tmp/fuser_dx --seeds 3` does, in order:

1. writes the `long` recipe's 300 training identities again with distractor stretches in a share of the utterances
   (`--share`, notebook 01 section 1.3.1), and 300 identities none of the weights heard (the next seed), likewise;
   prepares both with the training data's settings;
2. trains the fuser stage of the `long` recipe (420 iterations) on the first, from the `long` stage-1 checkpoint, once
   per seed; with `--mean-init` the fuser starts as the unit-length mean (W_in = 0: equal attention; W_out = [I, 0]);
3. runs the segments curve (1 to 20 segments, 3 draws) of each trained fuser and of the fuser in `trained_weights/`
   (trained on clean speech) on the unseen speakers, all their splits pooled, scored by the shipped evaluation
   embedder; prints, per segment count, attention against the original's plain mean and against the unit-length
   mean, and the two means against each other, with the paired sign-flip test over speakers.

The stage-1 checkpoint (with its discriminators) comes from `make weights`, which trains it into
runs/course/long/sf2f_1st_stage; the shipped files hold the generators only. About 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from sf2f.checkpoints import load_generator
from sf2f.config import load_config
from sf2f.data.prepare import PrepareSettings, prepare
from sf2f.data.prepared import PreparedData
from sf2f.data.synthetic import ensure_synthetic_dataset
from sf2f.data.synthetic.distractors import MEASURED_SHARE
from sf2f.embedder_weights import ensure_face_embedder
from sf2f.evaluate.evaluator import SplitEvaluator
from sf2f.evaluate.retrieval import paired_test, per_identity
from sf2f.evaluate.segments_curve import SEGMENT_COUNTS, segments_curve
from sf2f.shipped import PROFILE, load_shipped_scorer, verify_shipped
from sf2f.train.trainer import Trainer, course_run_dir

PERMUTATIONS = 10_000


def _population(cfg, root: Path, out: Path, seed: int, share: float) -> Path:
    """A synthetic population with distractors, prepared as the training data is; the prepared folder."""
    spec = dataclasses.replace(cfg.data.synthetic, seed=seed, distractors=share)
    prepare(ensure_synthetic_dataset(root, spec, progress=False), out, PrepareSettings.from_data_config(cfg.data),
            progress=False)
    return out


def _train_fuser(cfg, data: Path, run_dir: Path, mean_init: bool) -> Path:
    trainer = Trainer(cfg, data, run_dir, progress=False)
    if mean_init:
        fuser = trainer.generator.fuser
        with torch.no_grad():
            fuser.linear_in.weight.zero_()
            fuser.linear_out.weight.zero_()
            fuser.linear_out.weight[:, : fuser.linear_in.in_features].copy_(torch.eye(fuser.linear_in.in_features))
    trainer.fit()
    return run_dir / "checkpoints" / "latest.pt"


def _pooled_probes(generator, evaluators: list[SplitEvaluator]) -> dict[tuple[str, int], torch.Tensor]:
    """Each (strategy, count)'s probes (draws, speakers, D), the splits concatenated in speaker order."""
    curves = [segments_curve(e, generator, "", SEGMENT_COUNTS, draws=3) for e in evaluators]
    pooled = {}
    for key in curves[0].probes:
        parts = [c.probes[key] for c in curves]
        draws = max(p.shape[0] for p in parts)  # a split where no speaker has more segments has a single draw
        pooled[key] = torch.cat([p.expand(draws, -1, -1) for p in parts], dim=1)
    return pooled


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the data and the runs (about 3 GB)")
    parser.add_argument("--seeds", type=int, default=3, help="fuser-stage runs, seeds 1..N (default 3)")
    parser.add_argument("--share", type=float, default=MEASURED_SHARE, help="utterances with distractors")
    parser.add_argument("--mean-init", action="store_true", help="start each fuser as the unit-length mean")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    stage1 = course_run_dir("sf2f_1st_stage", PROFILE) / "checkpoints" / "latest.pt"
    if not stage1.is_file():
        parser.error(f"{stage1}: no long stage-1 checkpoint; `make weights` trains it")
    machine = [f"run.threads={args.threads}", f"optim.pretrained={stage1}"]
    cfg = load_config("sf2f_fuser", profile=PROFILE, overrides=machine)
    train = _population(cfg, args.work / "train", args.work / "train_prepared", cfg.data.synthetic.seed, args.share)
    unseen = _population(cfg, args.work / "unseen", args.work / "unseen_prepared", cfg.data.synthetic.seed + 1,
                         args.share)
    ensure_face_embedder(cfg, train, progress=False)
    print(f"data ready, {time.perf_counter() - start:.0f} s", flush=True)
    fusers = {"shipped (clean speech)": verify_shipped("sf2f_fuser")}
    for seed in range(1, args.seeds + 1):
        run_cfg = load_config("sf2f_fuser", profile=PROFILE, overrides=[*machine, f"run.seed={seed}"])
        name = f"{'mean-init ' if args.mean_init else ''}seed {seed}"
        fusers[name] = _train_fuser(run_cfg, train, args.work / f"fuser{'_mean' if args.mean_init else ''}_s{seed}",
                                    args.mean_init)
        print(f"trained {name}, {time.perf_counter() - start:.0f} s", flush=True)

    scorer = load_shipped_scorer().eval()
    splits = [PreparedData(unseen).split(s) for s in ("train", "val", "test")]
    # the curve's per-split rows test against chance too; only the pooled paired tests below are read here
    cfg = load_config("sf2f_fuser", profile=PROFILE, overrides=[*machine, "eval.chance_permutations=100"])
    evaluators = [SplitEvaluator(s, cfg, scorer) for s in splits]  # the real faces embedded once for every fuser
    gallery = torch.cat([e.gallery for e in evaluators])
    rows = []
    for name, checkpoint in fusers.items():
        probes = _pooled_probes(load_generator(checkpoint)[0], evaluators)
        for n in SEGMENT_COUNTS:
            scores = {s: per_identity(probes[s, n], gallery, cfg.eval.recall_method)
                      for s in ("mean", "unit mean", "attention")}
            row = {"fuser": name, "segments": n}
            for statistic, sign in (("rank", -1), ("cos", 1)):  # a lower rank is better
                row |= {f"{statistic} {s}": float(v[statistic].double().mean()) for s, v in scores.items()}
                for better, baseline in (("attention", "mean"), ("attention", "unit mean"), ("unit mean", "mean")):
                    test = paired_test(sign * scores[better][statistic].double(),
                                       sign * scores[baseline][statistic].double(), PERMUTATIONS, cfg.eval.seed)
                    row[f"{statistic} p {better} vs {baseline}"] = test["p"]
            rows.append(row)
        print(f"evaluated {name}, {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.work / "fuser_on_distractors.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.round(4).to_string(index=False))
    print(f"{len(gallery)} unseen speakers (chance: mean rank {(len(gallery) - 1) / 2:.1f}); distractors in "
          f"{args.share:.0%} of utterances; {PERMUTATIONS} sign flips; {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
