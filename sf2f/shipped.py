"""The trained weights in `trained_weights/`: how `make weights` builds them, how they are checked and loaded. The
`long` profile's runs (about 19,600 iterations, an evening on a CPU) draw faces that resemble their speakers, so the
course ships their three generators and notebook 06's scoring embedder as float32 state dicts (float16 moved one speaker
in 30 across the sex probe's boundary), with a manifest.json of SHA-256, config, data fingerprint and provenance."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import torch

from sf2f.checkpoints import CheckpointError, load_checkpoint, load_generator, load_state_checked, save_checkpoint
from sf2f.config import DataConfig, ExperimentConfig, config_from_dict, describe_diff, load_config, load_resolved_config
from sf2f.data.course_data import prepared_data
from sf2f.data.prepare import PrepareSettings
from sf2f.data.synthetic.traits import draw_identities, traits_table
from sf2f.data.synthetic.writer import GENERATOR_VERSION
from sf2f.embedder_weights import ensure_face_embedder, load_trained_embedder
from sf2f.errors import SF2FError
from sf2f.models import build_generator
from sf2f.paths import REPO_ROOT
from sf2f.runtime import process_pool, select_device
from sf2f.train.trainer import TrainResult, course_run_dir, recipe_diff, train_or_load
from sf2f.weights import sha256_of

#: SF2F_TRAINED_WEIGHTS points the course (notebooks 06 and 07, `infer`) at another folder, e.g. a rebuilt set
SHIPPED_DIR: Path = Path(os.environ.get("SF2F_TRAINED_WEIGHTS", "") or REPO_ROOT / "trained_weights")
PROFILE = "long"
MODELS = ("v2f", "sf2f_1st_stage", "sf2f_fuser")
SCORER = "face_embedder_eval"
MANIFEST = "manifest.json"
BUILD_COMMAND = "make weights"
FORMAT = 1
#: config keys that say where a run read its inputs, not what it learned: left out when recipes are compared
_NOT_RECIPE = ("optim.pretrained", "data.root", "model.face_embedder.trained_path")


class ShippedWeightsError(SF2FError, RuntimeError):
    """The shipped weights are missing, altered, or were made from other data, another recipe or architecture."""


def _folder(folder: Path | None) -> Path:
    # looked up at call time, so that SF2F_TRAINED_WEIGHTS and tests can point the course elsewhere
    return SHIPPED_DIR if folder is None else Path(folder)


def shipped_config(name: str, device: str = "auto", threads: int = 0) -> ExperimentConfig:
    """The paper config `name` under the `long` profile; the fuser starts from the stage-1 run's checkpoint."""
    overrides = [f"run.device={device}", f"run.threads={threads}"]
    if name == "sf2f_fuser":
        overrides.append(f"optim.pretrained={course_run_dir('sf2f_1st_stage', PROFILE) / 'checkpoints' / 'latest.pt'}")
    return load_config(name, profile=PROFILE, overrides=overrides)


def data_fingerprint(data: DataConfig) -> str:
    """The synthetic data's definition, hashed: the generator's version, size, seed, the people's traits (drawn, not
    read from disk) and the preparation settings. Not the generated files: their last bits may differ between CPUs,
    while all of this comes out the same on every machine (the traits are stored rounded)."""
    if data.kind != "synthetic":
        raise ShippedWeightsError(f"data.kind is '{data.kind}': only the synthetic data is defined by its parameters")
    people = traits_table(draw_identities(data.synthetic.identities, data.synthetic.seed))
    synthetic = dataclasses.asdict(data.synthetic)
    if not synthetic["distractors"]:  # clean data is defined as before the option existed
        del synthetic["distractors"]
    definition = {"generator_version": GENERATOR_VERSION, "synthetic": synthetic,
                  "prepare": PrepareSettings.from_data_config(data).to_dict(),
                  "traits_sha256": hashlib.sha256(people.to_csv(index=False).encode("utf-8")).hexdigest()}
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode("utf-8")).hexdigest()


def _machine(device: str) -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():  # Linux names the CPU model only here
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = f"{names[0]} x {len(names)}" if names else cpu
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") and torch.cuda.is_available() else ""
    return {"cpu": cpu, "gpu": gpu, "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__}


def export_shipped(runs: Mapping[str, Any], scorer: Path, folder: Path | None = None, device: str = "cpu",
                   command: str = BUILD_COMMAND) -> dict[str, Any]:
    """Write the generators of finished runs (`runs`: config name -> TrainResult) and the scoring embedder `scorer`
    into `folder`, and the manifest last (its presence means the folder is complete)."""
    folder = _folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    files: dict[str, Any] = {}
    for name, run in runs.items():
        state = load_checkpoint(run.checkpoint)
        cfg = config_from_dict(state["config"], str(run.checkpoint))
        path = save_checkpoint({k: state[k] for k in ("format", "config", "generator")}, folder / f"{name}.pt")
        weights = [v for k, v in state["generator"].items() if v.is_floating_point() and "running_" not in k]
        files[path.name] = {"kind": "generator", "config_name": name, "sha256": sha256_of(path),
                            "bytes": path.stat().st_size, "parameters": sum(v.numel() for v in weights),
                            "config": state["config"], "data_fingerprint": data_fingerprint(cfg.data),
                            "iterations": run.steps, "seed": cfg.run.seed, "train_seconds": round(run.seconds, 1),
                            "trained_by_this_command": not run.reused,
                            "validation": {k: round(float(v), 4) for k, v in run.metrics.items()}}
    embedder = load_checkpoint(scorer)
    path = save_checkpoint(embedder, folder / f"{SCORER}.pt")  # load_checkpoint mapped it to the CPU
    files[path.name] = {"kind": "face embedder", "sha256": sha256_of(path), "bytes": path.stat().st_size,
                        "settings": embedder["settings"], "seed": embedder["seed"]}
    manifest = {"format": FORMAT, "profile": PROFILE, "command": command,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": _machine(device),
                "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    path = _folder(folder) / MANIFEST
    if not path.is_file():
        raise ShippedWeightsError(f"{path}: no shipped weights here; `{BUILD_COMMAND}` makes them")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ShippedWeightsError(f"{path}: unreadable manifest ({exc}); `{BUILD_COMMAND}` writes it anew") from None
    if manifest.get("format") != FORMAT:
        raise ShippedWeightsError(f"{path}: manifest format {manifest.get('format')!r}, this sf2f reads {FORMAT}")
    return manifest


def verify_shipped(name: str, folder: Path | None = None) -> Path:
    """The path of a shipped file after checking its SHA-256 against the manifest."""
    folder = _folder(folder)
    entry = read_manifest(folder)["files"].get(f"{name}.pt")
    path = folder / f"{name}.pt"
    if entry is None:
        raise ShippedWeightsError(f"{folder / MANIFEST}: lists no {path.name}")
    if not path.is_file():
        raise ShippedWeightsError(f"{path}: missing (the manifest lists it); `{BUILD_COMMAND}` makes it")
    if sha256_of(path) != entry["sha256"]:
        raise ShippedWeightsError(f"{path}: its SHA-256 is not the manifest's: the file was altered or truncated; "
                                  f"restore it from git or run `{BUILD_COMMAND}`")
    return path


def load_shipped_scorer(folder: Path | None = None) -> torch.nn.Module:
    """The face embedder that scores the shipped generators in notebook 06, after the SHA-256 check."""
    return load_trained_embedder(verify_shipped(SCORER, folder))


def stale_reasons(folder: Path | None = None) -> list[str]:
    """Why the shipped generators no longer match this checkout (empty if they do): data, recipe or architecture."""
    reasons = []
    files = read_manifest(folder)["files"]
    for name in MODELS:
        path = verify_shipped(name, folder)  # raises for a file the manifest lacks or that was altered
        entry, cfg = files[path.name], shipped_config(name)
        if entry["data_fingerprint"] != data_fingerprint(cfg.data):
            reasons.append(f"{name}: trained on other synthetic data (generator version, size, seed, traits or "
                           "preparation settings differ)")
        changed = recipe_diff(config_from_dict(entry["config"], MANIFEST), cfg, _NOT_RECIPE)
        if changed:
            reasons.append(f"{name}: trained with another recipe ({describe_diff(changed, 4)})")
        try:
            load_state_checked(build_generator(cfg), load_checkpoint(path)["generator"], "generator", path)
        except CheckpointError as exc:
            reasons.append(f"{name}: the generator's architecture changed ({exc})")
    return reasons


def describe_shipped(name: str, folder: Path | None = None) -> str:
    """One line for a figure or a log: which shipped weights, how long they trained, how they were made."""
    files = read_manifest(folder)["files"]
    iterations = files[f"{name}.pt"]["iterations"]
    if name == "sf2f_fuser":  # the fuser stage is short and starts from the trained stage 1
        return (f"shipped {name}, {iterations:,} fuser-stage iterations on the shipped stage 1 "
                f"({files['sf2f_1st_stage.pt']['iterations']:,}), trained with `{BUILD_COMMAND}`")
    return f"shipped {name}, trained for {iterations:,} iterations with `{BUILD_COMMAND}`"


def _train_one(name: str, device: str, threads: int, progress: bool) -> Any:
    """Train or load one shipped run (a process of its own when several train side by side)."""
    cfg = shipped_config(name, device, threads)
    data = prepared_data(cfg.data, progress=False).root
    return train_or_load(cfg, data, course_run_dir(name, PROFILE), progress=progress)


def build_shipped(folder: Path | None = None, device: str = "auto", jobs: int | None = None, progress: bool = True,
                  command: str = BUILD_COMMAND) -> dict[str, Any]:
    """`make weights`: the data and its face embedders, then the three `long` runs into `runs/course/long/<config>`
    (finished runs are reused; voice2face and SF2F's first stage side by side when `jobs` > 1, one thread each; then
    the fuser stage), then the export into `folder`. `command` is what the manifest records as having made them."""
    chosen = str(select_device(device))
    cfg = shipped_config("sf2f_1st_stage", chosen)
    data = prepared_data(cfg.data, progress=progress).root
    ensure_face_embedder(cfg, data, progress=progress)
    scorer = ensure_face_embedder(cfg, data, progress=progress, role="eval")
    if jobs is None:
        jobs = 2 if chosen == "cpu" and (os.cpu_count() or 1) >= 2 else 1
    first = ("v2f", "sf2f_1st_stage")
    if jobs > 1:
        # each run on one thread: two small networks train faster side by side than one after the other on two
        with process_pool(min(jobs, len(first))) as pool:
            futures = {name: pool.submit(_train_one, name, chosen, 1, False) for name in first}
            runs = {name: future.result() for name, future in futures.items()}
    else:
        runs = {name: _train_one(name, chosen, 0, progress) for name in first}
    runs["sf2f_fuser"] = _train_one("sf2f_fuser", chosen, 0, progress)
    return export_shipped(runs, scorer, folder, chosen, command)


class TrainedModel(NamedTuple):
    """A trained generator the course evaluates and shows, with where it came from in words."""
    generator: torch.nn.Module
    cfg: ExperimentConfig
    label: str


def trained_models(folder: Path | None = None) -> dict[str, TrainedModel]:
    """The three `long` generators notebooks 06 and 07 show, under the course's names (`v2f`, `SF2F w/o fuser`,
    `SF2F`): the learner's own when `make weights` or `make demo PROFILE=long` finished them with today's recipe,
    else the shipped ones (SHA-256 checked)."""
    names = {"v2f": "v2f", "sf2f_1st_stage": "SF2F w/o fuser", "sf2f_fuser": "SF2F"}
    models = {}
    for config, shown in names.items():
        own = course_run_dir(config, PROFILE)
        finished = (own / "done.json").is_file() and (own / "config.yaml").is_file()
        if finished and not recipe_diff(load_resolved_config(own / "config.yaml"), shipped_config(config), _NOT_RECIPE):
            source, label = own, f"your own long run, {TrainResult.read(own).steps:,} iterations ({own})"
        else:
            source, label = verify_shipped(config, folder), describe_shipped(config, folder)
        models[shown] = TrainedModel(*load_generator(source), label)
    return models
