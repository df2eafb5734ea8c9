"""The command line: `python -m sf2f <command> ...`. Each capability adds a subcommand with its own --help."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import yaml

from sf2f.config import PAPER_CONFIGS, PROFILES, SyntheticConfig, load_config, save_config
from sf2f.errors import MissingPathError, SF2FError, UsageError
from sf2f.paths import RUNS_DIR, project_path, user_path

#: what `ArgumentParser.add_subparsers()` returns (argparse names its type only privately)
Subparsers = Any


def _command(sub: Subparsers, name: str, help: str, description: str, examples: Sequence[str],
             handler: Callable[[argparse.Namespace], int | None] | None = None,
             progress: bool = False) -> argparse.ArgumentParser:
    """A subcommand's parser. It stores itself in the parsed arguments, so that `main` reports an unknown option with
    this command's usage (argparse would show the top-level usage, which lists no option of the command)."""
    parser = sub.add_parser(name, help=help, description=description,
                            epilog="\n".join(["examples:", *(f"  {e}" for e in examples)]),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(command_parser=parser, **({"handler": handler} if handler else {}))
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _recipe_options(parser: argparse.ArgumentParser, example: str = "optim.lr=1e-4") -> None:
    parser.add_argument("--profile", default=None, help=f"{', '.join(PROFILES)} or a profile YAML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=f"override, e.g. {example}")


def _cmd_config(args: argparse.Namespace) -> int | None:
    cfg = load_config(args.config, profile=args.profile, overrides=args.set)
    if args.out:
        print(f"wrote {save_config(cfg, args.out)}")
    else:
        print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False), end="")


def _cmd_course(args: argparse.Namespace) -> int | None:
    from sf2f.course import run_course

    summary = run_course(profile=args.profile, data_root=args.data_root, device=args.device, run_dir=args.run_dir,
                         figures_dir=args.figures_dir, only=args.only, progress=not args.no_progress)
    print(summary.to_markdown())
    print(f"executed notebooks, summary and results.md are in {summary.run_dir}")
    failure = summary.failure()
    if failure is not None:
        print(f"course stopped: {failure.error}\nsee the executed notebook {failure.output}", file=sys.stderr)
        return 1


def _cmd_data_synthetic(args: argparse.Namespace) -> int | None:
    from sf2f.data.synthetic import generate_dataset

    report = generate_dataset(args.out, identities=args.identities, utterances=args.utterances, faces=args.faces,
                              seed=args.seed, distractors=args.distractors, workers=args.workers,
                              progress=not args.no_progress)
    print(report.describe())


def _cmd_info(args: argparse.Namespace) -> int | None:
    from sf2f.runtime import setup_runtime

    print(setup_runtime(seed=0, device=args.device).describe())


def _add_config(sub: Subparsers) -> None:
    p = _command(sub, "config", "print or save a fully resolved config",
                 f"Resolve a paper config ({', '.join(PAPER_CONFIGS)}) or a YAML file, scaled by a profile, with "
                 "key=value overrides.", ["python -m sf2f config v2f --profile quick --set optim.batch_size=4"],
                 _cmd_config)
    p.add_argument("config", help="a paper config name (for example sf2f_1st_stage) or a YAML file")
    _recipe_options(p)
    p.add_argument("--out", default=None, help="write the resolved YAML here instead of printing it")


def _add_course(sub: Subparsers) -> None:
    p = _command(sub, "course", "run the numbered notebooks in order with papermill",
                 "Execute notebooks/NN_*.ipynb in order into runs/<timestamp>/, stop at the first failure, and write "
                 "summary.md, summary.json and results.md.",
                 ["python -m sf2f course --profile demo --figures-dir figures   # what `make demo` runs"],
                 _cmd_course, progress=True)
    p.add_argument("--profile", default="demo", choices=PROFILES)
    p.add_argument("--data-root", default="", help="dataset root (default: data/synthetic)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--run-dir", default=None, help="output folder (default: runs/<timestamp>)")
    p.add_argument("--figures-dir", default="", help="also save the notebooks' figures here (make demo: figures)")
    p.add_argument("--only", nargs="*", default=[], metavar="NN", help="run only these notebooks (by number)")


def _add_data(sub: Subparsers) -> None:
    p = _command(sub, "data", "create datasets (the synthetic default)",
                 "Dataset commands. `data synthetic` writes the offline paired voice-face dataset.",
                 ["python -m sf2f data synthetic --out data/synthetic"])
    group = p.add_subparsers(dest="data_command", metavar="<data command>", required=True)
    defaults = SyntheticConfig()
    s = _command(group, "synthetic", "generate (or finish, or reuse) the synthetic paired voice-face dataset",
                 "Write a synthetic VoxCeleb + HQ-VoxCeleb look-alike into --out, deterministic for a seed. A complete "
                 "dataset with the same parameters is reused, a half-written one finished, another one an error.",
                 ["python -m sf2f data synthetic --out data/synthetic   # the demo profile's, about a minute",
                  "python -m sf2f data synthetic --out data/synthetic_quick --identities 80 --utterances 5 --faces 3"
                  "   # the quick profile's"], _cmd_data_synthetic, progress=True)
    s.add_argument("--out", required=True, help="dataset folder (created; relative paths from the current folder)")
    s.add_argument("--identities", type=int, default=defaults.identities, help="number of people (default %(default)s)")
    s.add_argument("--utterances", type=int, default=defaults.utterances, help="wavs per person (default %(default)s)")
    s.add_argument("--faces", type=int, default=defaults.faces, help="face images per person (default %(default)s)")
    s.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default %(default)s)")
    s.add_argument("--distractors", type=float, default=defaults.distractors,
                   help="share of utterances with noise, music, laughter, telephone or a second voice in a stretch "
                        "(default %(default)s: clean speech; notebook 04 uses 0.8)")
    s.add_argument("--workers", type=int, default=None, help="parallel processes (default: one per core when useful)")


def _add_info(sub: Subparsers) -> None:
    p = _command(sub, "info", "what sf2f runs on: device, threads, versions",
                 "The device sf2f would use, its threads, and the versions of torch and Python.",
                 ["python -m sf2f info --device auto"], _cmd_info)
    p.add_argument("--device", default="auto")


def _cmd_prepare(args: argparse.Namespace) -> int | None:
    from sf2f.audio import voice2face_audio_config
    from sf2f.config import AudioConfig, DataConfig
    from sf2f.data.course_data import prepared_dir
    from sf2f.data.prepare import PrepareSettings, prepare

    audio = voice2face_audio_config() if args.features == "voice2face" else AudioConfig()
    settings = PrepareSettings(audio=dataclasses.replace(audio, dtype=args.dtype), image_size=args.image_size,
                               face_type=args.face_type, align_faces=args.align_faces,
                               sub_datasets=tuple(args.sub_datasets), split_rule=args.split_rule, seed=args.seed)
    root = user_path(args.data_root) if args.data_root else project_path(DataConfig().root)
    # by default where notebooks and the trainer look (sf2f.data.course_data)
    default_out = prepared_dir(DataConfig(face_type=args.face_type, image_size=args.image_size), root)
    out = user_path(args.out) if args.out else default_out
    faces_root = user_path(args.faces_root) if args.faces_root else None
    result = prepare(root, out, settings, workers=args.workers, progress=not args.no_progress,
                     overwrite=args.overwrite, keep_parts=args.keep_parts, faces_root=faces_root)
    print(result.summary())


def _add_prepare(sub: Subparsers) -> None:
    p = _command(sub, "prepare", "speech and faces to the packed training cache (log-mels, face crops, split, report)",
                 "Read a dataset in the layout of data/README.md, run the original's VAD, log-mels and face resize, "
                 "and pack every split into memory-mapped files. Resumable; skipped files are in <out>/report.csv.",
                 ["python -m sf2f prepare --data-root data/VoxCeleb --out /scratch/vox-128 --image-size 128"],
                 _cmd_prepare, progress=True)
    p.add_argument("--data-root", default="", help="dataset folder (default: the repository's data/synthetic)")
    p.add_argument("--faces-root", default="", help="folder of the face tree <sub>/<type>_faces/<name>/ if not in "
                   "--data-root (HQ-VoxCeleb as unpacked)")
    p.add_argument("--out", default="", help="output folder (default: data/prepared/<data-root name>-<face type>-<px>)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes (default: all cores; 0 or 1: this one)")
    p.add_argument("--image-size", type=int, default=64, choices=(64, 128), help="face size in pixels")
    p.add_argument("--face-type", default="masked", choices=("masked", "origin"), help="HQ-VoxCeleb face folders")
    p.add_argument("--align-faces", action="store_true", help="raw photos: detect and align faces with MTCNN")
    p.add_argument("--sub-datasets", nargs="+", default=["vox1", "vox2"], metavar="SUB", help="vox1 and/or vox2")
    p.add_argument("--split-rule", default="original", choices=("original", "seeded"),
                   help="when the data has no split.json: every 10th meta row (original) or a seeded shuffle")
    p.add_argument("--seed", type=int, default=0, help="seed of the seeded split rule")
    p.add_argument("--features", default="sf2f", choices=("sf2f", "voice2face"),
                   help="sf2f: 40 logfbank as the original (§1.4); voice2face: 64 Sphinx log-mels (§7.2)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="float64 reproduces the original's values to about 1e-12 (twice the disk)")
    p.add_argument("--overwrite", action="store_true", help="replace a preparation made with other settings")
    p.add_argument("--keep-parts", action="store_true", help="keep per-identity parts (faster re-runs with more data)")


def _cmd_train(args: argparse.Namespace) -> int | None:
    from sf2f.data.course_data import prepared_dir
    from sf2f.train.distributed import shutdown
    from sf2f.train.trainer import Trainer

    if args.resume:
        run_dir = user_path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise MissingPathError(f"{saved}: not a run folder to resume (no config.yaml)")
        cfg = load_config(args.config or saved, profile=args.profile, overrides=args.set)
        recorded = run_dir / "run.json"
        data = args.data or (json.loads(recorded.read_text())["data"] if recorded.is_file() else "")
    else:
        if not args.config:
            raise UsageError("name a config to train (for example sf2f_1st_stage), or --resume RUN_DIR")
        pretrained = [f"optim.pretrained={user_path(args.pretrained)}"] if args.pretrained else []
        cfg = load_config(args.config, profile=args.profile, overrides=[*args.set, *pretrained])
        run_dir, data = (user_path(args.run_dir) if args.run_dir else None), args.data
    trainer = Trainer(cfg, user_path(data) if data else prepared_dir(cfg.data), run_dir, resume=bool(args.resume),
                      progress=not args.no_progress)
    result = trainer.fit()
    if trainer.ctx.is_main:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items())
        print(f"{result.steps} steps ({result.skipped_steps} skipped) in {result.seconds:.0f} s; {metrics}")
        print(f"run folder: {result.run_dir}")
    shutdown(trainer.ctx)


def _add_train(sub: Subparsers) -> None:
    p = _command(sub, "train", "train a config (stage 1 or the fuser stage) on a prepared dataset",
                 "Train a paper config (recipe §3) on a prepared dataset into a run folder (config, metrics.csv, "
                 "sample grids, latest and best checkpoints). A killed run continues exactly with --resume. Several "
                 "processes: `torchrun --nproc_per_node=N -m sf2f train ...`.",
                 ["python -m sf2f train sf2f_fuser --profile demo --pretrained runs/s1/checkpoints/latest.pt"],
                 _cmd_train, progress=True)
    p.add_argument("config", nargs="?", default=None, help="a paper config name or YAML file (optional with --resume)")
    _recipe_options(p)
    p.add_argument("--data", default="", help="prepared dataset folder (default: where `prepare` puts data.root's: "
                   "data/prepared/<data.root name>-<face type>-<size>)")
    p.add_argument("--run-dir", default="", help="run folder (default: <run.output_root>/<run.name>-<timestamp>)")
    p.add_argument("--resume", default="", metavar="RUN_DIR", help="continue this run from its latest checkpoint")
    p.add_argument("--pretrained", default="", metavar="CKPT", help="start from this checkpoint (the fuser stage)")


def _cmd_train_face_embedder(args: argparse.Namespace) -> int | None:
    from sf2f.embedder_weights import default_embedder_path, embedder_seed, train_face_embedder
    from sf2f.runtime import select_device

    cfg = load_config(args.config, profile=args.profile, overrides=args.set)
    data = user_path(args.data)
    out = user_path(args.out) if args.out else default_embedder_path(cfg, data)
    train_face_embedder(data, out, cfg.model.face_embedder, cfg.data.image_norm, embedder_seed(cfg),
                        select_device(cfg.run.device), progress=not args.no_progress)


def _add_train_face_embedder(sub: Subparsers) -> None:
    p = _command(sub, "train-face-embedder", "train a face embedder on the training identities (without FaceNet)",
                 "Train a small CNN (model.face_embedder) to tell the training identities apart by their faces, for "
                 "the perceptual loss and the validation metrics, into <data>/face_embedder.pt by default.",
                 ["python -m sf2f train-face-embedder --data data/prepared/synthetic-masked-64 --profile demo"],
                 _cmd_train_face_embedder, progress=True)
    p.add_argument("--data", required=True, help="prepared dataset folder (python -m sf2f prepare)")
    p.add_argument("--out", default="", help="output file (default: model.face_embedder.trained_path or "
                   "<data>/face_embedder.pt)")
    p.add_argument("--config", default="sf2f_1st_stage", help="config whose model.face_embedder settings to use")
    _recipe_options(p, "model.face_embedder.width=32")


def _cmd_evaluate(args: argparse.Namespace) -> int | None:
    from sf2f.evaluate.evaluate_runs import evaluate_checkpoints
    from sf2f.evaluate.probes import PROBE_MODES
    from sf2f.evaluate.report import write_results
    from sf2f.runtime import select_device

    table = evaluate_checkpoints(args.checkpoint, args.data or None, args.split, args.probe_modes or PROBE_MODES,
                                 profile=args.profile, device=select_device(args.device))
    out = user_path(args.out) if args.out else RUNS_DIR / f"evaluation-{datetime.now():%Y%m%d-%H%M%S}"
    csv_path, md_path = write_results(table, out, notes=table.attrs["notes"])
    print(md_path.read_text(encoding="utf-8"), end="")
    print(f"wrote {csv_path} and {md_path}")


def _add_evaluate(sub: Subparsers) -> None:
    p = _command(sub, "evaluate",
                 "evaluate trained checkpoints: retrieval, similarity, scores, attributes (results.csv / results.md)",
                 "Evaluate trained generators on a split with the metrics of recipe §4 and those the paper lacked: a "
                 "row per model and probe mode, then chance, the bounds and the paper's numbers. Deterministic.",
                 ["python -m sf2f evaluate --checkpoint runs/course/demo/v2f --checkpoint runs/s1 --split val"],
                 _cmd_evaluate)
    p.add_argument("--checkpoint", action="append", required=True, metavar="RUN_OR_CKPT",
                   help="a run folder (its checkpoints/latest.pt) or a .pt file; repeat for several models")
    p.add_argument("--profile", help="evaluation protocol (recall groups, K, seed) of a profile (default: the run's)")
    p.add_argument("--data", default="", help="prepared folder or dataset root (default: the first run's data)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to evaluate")
    p.add_argument("--out", default="", help="output folder (default: runs/evaluation-<timestamp>)")
    p.add_argument("--probe-modes", nargs="+", default=[], metavar="MODE",
                   help="naive, average_facenet_embedding and/or average_voice_embedding (default: all three)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default: cpu)")


def _cmd_infer(args: argparse.Namespace) -> int | None:
    from sf2f.audio import MelStats
    from sf2f.checkpoints import load_generator
    from sf2f.infer import generate_face
    from sf2f.runtime import select_device

    if args.checkpoint:
        checkpoint = user_path(args.checkpoint)
    else:
        from sf2f.shipped import describe_shipped, verify_shipped

        checkpoint = verify_shipped("sf2f_fuser")  # hashed once here; the file is a generator checkpoint
        print(f"no --checkpoint: using the {describe_shipped('sf2f_fuser')} ({checkpoint})")
    generator, cfg = load_generator(checkpoint, args.which)
    stats = MelStats(**json.loads(user_path(args.mel_stats).read_text())) if args.mel_stats else None
    face = generate_face(generator.to(select_device(args.device)), cfg, [user_path(w) for w in args.wav], stats)
    written = face.save(user_path(args.out), info={"checkpoint": str(checkpoint), "which": args.which})
    print(f"{len(face.speech)} segment(s) of {len(face.speech.files)} file(s), fused by {face.fusion}:")
    for path in written:
        print(f"  {path}")


def _add_infer(sub: Subparsers) -> None:
    p = _command(sub, "infer", "a face from speech files with a trained generator",
                 "Generate a face from recordings (wav, flac, ogg, m4a; 1 s of speech or more) cut into 1.25 s "
                 "windows, fused by a fuser model's attention or averaged. Writes face_<size>.png and face.json.",
                 ["python -m sf2f infer --checkpoint runs/s2 --wav a.flac b.wav --out faces/ab"], _cmd_infer)
    p.add_argument("--checkpoint", default="", help="a run folder or a checkpoint file (.pt); default: the shipped "
                   "SF2F (trained_weights/sf2f_fuser.pt)")
    p.add_argument("--which", default="latest", help="checkpoint of a run folder: latest or best_<metric>")
    p.add_argument("--wav", nargs="+", required=True, metavar="AUDIO", help="one or more speech recordings")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 or mps")
    p.add_argument("--mel-stats", default="", metavar="JSON",
                   help="stats.json of the prepared training data (only for audio.mel_norm: dataset)")


def _cmd_weights(args: argparse.Namespace) -> int | None:
    from sf2f.shipped import MODELS, SCORER, build_shipped, read_manifest, stale_reasons, verify_shipped

    folder = user_path(args.folder) if args.folder else None
    if args.weights_command == "build":
        options = [*(["--device", args.device] if args.device != "auto" else []),
                   *(["--jobs", str(args.jobs)] if args.jobs is not None else [])]
        build_shipped(folder, device=args.device, jobs=args.jobs, progress=not args.no_progress,
                      command=" ".join(["python -m sf2f weights build", *options]))
    manifest = read_manifest(folder)
    for name in (*MODELS, SCORER):
        path = verify_shipped(name, folder)
        entry = manifest["files"][path.name]
        trained = f"{entry['iterations']:,} iterations" if "iterations" in entry else entry["kind"]
        print(f"  {path.name:<24} {entry['bytes'] / 2**20:5.1f} MiB  SHA-256 verified  {trained}")
    print(f"made by `{manifest['command']}` on {manifest['date']} ({manifest['machine']['cpu']}"
          f"{', ' + manifest['machine']['gpu'] if manifest['machine']['gpu'] else ''})")
    reasons = stale_reasons(folder)
    if reasons:
        print(*(f"stale: {reason}" for reason in reasons), "the shipped weights were trained on other data or another "
              "recipe: run `make weights`", sep="\n", file=sys.stderr)
        return 1
    print("up to date: the synthetic data, the long recipe and the generators' architecture match the manifest")


def _add_weights(sub: Subparsers) -> None:
    p = _command(sub, "weights", "the trained weights shipped with the course: rebuild (make weights) or check them",
                 "trained_weights/ holds the long profile's three generators, their scoring embedder and a manifest. "
                 "`build` trains (or reuses) runs/course/long/<config> and exports them; `check` verifies them.",
                 ["python -m sf2f weights build   # `make weights`: an evening on 2 CPU cores, minutes on a GPU"])
    group = p.add_subparsers(dest="weights_command", metavar="<weights command>", required=True)
    for name, text, example in (
        ("build", "train (or reuse) the three long runs and export them", "python -m sf2f weights build --jobs 1"),
        ("check", "verify the files against the manifest and this checkout", "python -m sf2f weights check"),
    ):
        s = _command(group, name, text, text, [example], _cmd_weights, progress=name == "build")
        s.add_argument("--folder", default="", help="the weights folder (default: the repository's trained_weights/)")
        if name == "build":
            s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
            s.add_argument("--jobs", type=int, default=None,
                           help="runs trained side by side, one thread each (default: 2 on a CPU with 2+ cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sf2f",
        description="sf2f: voice-to-face generation (SF2F, ACM MM 2022, and the voice2face baseline), as a course.",
        epilog="Run `python -m sf2f <command> --help` for a command's options and examples. Errors in what you gave (a "
               "path, a config key, a file) are one line; add --debug before the command for their traceback.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error, also of input errors")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for add in (_add_config, _add_course, _add_data, _add_prepare, _add_train, _add_train_face_embedder,
                _add_evaluate, _add_infer, _add_info, _add_weights):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.handler(args) or 0
    except SF2FError as exc:
        # the project's own errors name the input and what to do: one line, unless the user asks for the traceback
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # anything else is unexpected (a shape mismatch, a bug) and keeps its traceback, which a bug report needs
        traceback.print_exc()
        torch = sys.modules.get("torch")  # imported by whatever ran out of memory, if anything did
        if torch is not None and isinstance(exc, torch.OutOfMemoryError):
            print("error: out of memory: lower the batch size (--set optim.batch_size=N) or use another device",
                  file=sys.stderr)
        else:
            print(f"error: python -m sf2f {args.command} failed unexpectedly (traceback above); if your input "
                  "looks right, please report it with the traceback", file=sys.stderr)
        return 1
