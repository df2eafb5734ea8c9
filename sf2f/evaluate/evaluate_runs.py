"""Evaluating trained runs: the evaluator a config and a prepared dataset call for, and checkpoints to a results table.

:func:`split_evaluator` assembles a :class:`~sf2f.evaluate.evaluator.SplitEvaluator` with every part the data allows:

* the face embedder of the config (:func:`~sf2f.embedder_weights.resolve_face_embedder`: FaceNet when its
  weights verify, as the paper scores; else, with `eval.independent_embedder`, a *second* embedder trained on the
  data from another seed, because a generator scored by the network its perceptual loss was trained against games
  it);
* the image classifier of the score: on the synthetic data an identity classifier of the training identities (the
  "ID-classifier score", never called VFS, issue 7 item 4); on real data the VGGFace ResNet-50 when its weights are
  there (the VFS of §4.1), else a note;
* attribute probes when the dataset has the synthetic people's traits;
* the FID Inception network and LPIPS when their weights are there, else a note each.

:func:`evaluate_checkpoints` is `python -m sf2f evaluate`: it loads each run folder or checkpoint file, checks that
it fits the data, evaluates every model with one evaluator (so the real faces are embedded once and every model
meets the same probes' crops and segments), adds the chance / ground-truth / mean-face rows (on synthetic data also
the shared-trait mean face) and the paper's numbers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch

from sf2f.checkpoints import CheckpointError, load_generator
from sf2f.config import ExperimentConfig, load_config
from sf2f.data.course_data import prepared_data
from sf2f.data.prepared import PreparedData
from sf2f.embedder_weights import resolve_face_embedder, scoring_embedder
from sf2f.errors import MissingPathError, UsageError
from sf2f.evaluate.attributes import AttributeProbe
from sf2f.evaluate.diversity import lpips_or_reason
from sf2f.evaluate.evaluator import SplitEvaluator
from sf2f.evaluate.fid import load_fid_inception
from sf2f.evaluate.identity_score import IdentityClassifier
from sf2f.evaluate.probes import PROBE_MODES
from sf2f.evaluate.report import results_table
from sf2f.evaluate.vggface_score import VGGFaceClassifier
from sf2f.models.face_embedders import FaceEmbedder
from sf2f.models.generator import Generator
from sf2f.paths import project_path, user_path
from sf2f.weights import WeightsError

__all__ = ["LoadedModel", "check_fits", "evaluate_checkpoints", "evaluation_data", "load_models", "split_evaluator"]


@dataclasses.dataclass
class LoadedModel:
    """A trained generator, its config, where it came from and the name it gets in the table."""

    name: str
    generator: Generator
    cfg: ExperimentConfig
    source: Path


def load_models(sources: Sequence[str | Path], checkpoint: str = "latest") -> list[LoadedModel]:
    """Generators from run folders or checkpoint files, named by config (by config and path when two share one)."""
    if not sources:
        raise UsageError("name at least one checkpoint (a run folder or a .pt file) to evaluate")
    loaded = []
    for source in sources:
        path = user_path(source)
        if not path.exists():
            raise MissingPathError(f"{path}: no such run folder or checkpoint file")
        generator, cfg = load_generator(path, checkpoint)
        loaded.append(LoadedModel(cfg.name, generator, cfg, path))
    names = [m.name for m in loaded]
    for model in loaded:
        if names.count(model.name) > 1:
            model.name = f"{model.cfg.name} ({model.source})"
    return loaded


def evaluation_data(cfg: ExperimentConfig, data: str | Path | None = None, run: Path | None = None) -> tuple[Path, Path]:
    """(prepared folder, dataset root) to evaluate on.

    `data` is a prepared folder or a dataset root (prepared on first use). Without it: the prepared folder the run
    trained on (its run.json), else the config's own data. The dataset root is where the synthetic traits are.
    """
    dataset_root = project_path(cfg.data.root)
    if data:
        path = user_path(data)
        if not path.is_dir():
            raise MissingPathError(f"{path}: no such data folder (a prepared folder or a dataset root)")
        if (path / "manifest.json").is_file():
            return path, dataset_root
        return prepared_data(cfg.data, path, progress=False).root, path
    record = run / "run.json" if run is not None and run.is_dir() else None
    if record is not None and record.is_file():
        trained_on = Path(json.loads(record.read_text(encoding="utf-8"))["data"])
        if (trained_on / "manifest.json").is_file():
            return trained_on, dataset_root
    return prepared_data(cfg.data, progress=False).root, dataset_root


def check_fits(model: LoadedModel, data: PreparedData) -> None:
    """Refuse a checkpoint trained on other faces or other voice features than the prepared data hold."""
    settings = data.manifest["settings"]
    problems = []
    if int(settings["image_size"]) != model.cfg.data.image_size:
        problems.append(f"faces of {model.cfg.data.image_size} px, the data has {settings['image_size']} px")
    if int(settings["audio"]["n_mels"]) != model.cfg.data.audio.n_mels:
        problems.append(f"{model.cfg.data.audio.n_mels} mel bands, the data has {settings['audio']['n_mels']}")
    if problems:
        raise CheckpointError(f"{model.source}: does not fit {data.root}: it was trained on {'; '.join(problems)}")


def _traits(dataset_root: Path) -> pd.DataFrame | None:
    if not (dataset_root / "traits.csv").is_file():
        return None
    from sf2f.data.synthetic import read_traits

    return read_traits(dataset_root)


def split_evaluator(
    cfg: ExperimentConfig,
    data: str | Path,
    split: str = "test",
    dataset_root: str | Path | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    log: Callable[[str], object] = print,
    scorer: tuple[FaceEmbedder, str] | None = None,
) -> SplitEvaluator:
    """Every metric of `split` of a prepared folder that the data and the weights at hand allow (module docstring).

    `cfg` gives the protocol (`cfg.eval`), the face embedder and the data settings of the probes. `scorer` (an
    embedder and a line naming it) replaces the embedder the config would choose: the shipped weights are scored by
    the embedder shipped with them, so that their numbers are the same on every machine. The parts that are skipped
    and why are in the evaluator's `notes`, first of them which face embedder looks at the faces.
    """
    prepared = PreparedData(data)
    if scorer is None:
        embedder, which = resolve_face_embedder(cfg, data, log)
        embedder, second = scoring_embedder(cfg, data, embedder)
        which = second or which
    else:
        embedder, which = scorer
    embedder = embedder.to(device).eval()
    train = prepared.split("train", cfg.data.max_identities)
    norm, box = cfg.data.image_norm, tuple(cfg.eval.vgg_box)
    traits = _traits(Path(dataset_root)) if dataset_root is not None else None
    notes = [f"face embedder: {which}"]
    parts: dict[str, object] = {"batch_size": batch_size}
    if traits is not None:
        parts["image_classifier"] = IdentityClassifier.fit(embedder, train, norm, box, batch_size)
        parts["attribute_probe"] = AttributeProbe.fit(train, traits, image_norm=norm, box=box, batch_size=batch_size)
        parts["traits"] = traits
        notes.append("ID-classifier score: an identity classifier of the training identities stands in for VGGFace "
                     "(synthetic faces); not comparable with a VFS")
    else:
        try:
            parts["image_classifier"] = VGGFaceClassifier.from_config(cfg.eval, norm)
        except WeightsError as error:
            notes.append(f"VFS skipped: {error}")
    try:
        parts["inception"] = load_fid_inception(image_norm=norm)
    except WeightsError as error:
        notes.append(f"FID (Inception) skipped: {error}")
    parts["lpips"] = lpips_or_reason(image_norm=norm)
    evaluator = SplitEvaluator(prepared.split(split, cfg.data.max_identities), cfg, embedder, **parts)
    evaluator.notes[:0] = notes
    return evaluator


def evaluate_checkpoints(
    sources: Sequence[str | Path],
    data: str | Path | None = None,
    split: str = "test",
    modes: Sequence[str] = PROBE_MODES,
    profile: str | None = None,
    device: str | torch.device = "cpu",
    log: Callable[[str], object] = print,
) -> pd.DataFrame:
    """The results table of trained checkpoints on a split (`table.attrs["notes"]`: skipped metrics and caveats).

    The protocol (`eval`: recall groups and K, seed) is the first checkpoint's, or that of its config under
    `profile`; the face embedder and the data settings are the first checkpoint's.
    """
    unknown = sorted(set(modes) - set(PROBE_MODES))
    if unknown:
        raise UsageError(f"unknown probe mode(s) {unknown} (known: {', '.join(PROBE_MODES)})")
    models = load_models(sources)
    first = models[0]
    cfg = first.cfg
    if profile:
        cfg = dataclasses.replace(cfg, eval=load_config(cfg.name, profile=profile).eval)
    prepared_dir, dataset_root = evaluation_data(cfg, data, first.source)
    prepared = PreparedData(prepared_dir)
    for model in models:
        check_fits(model, prepared)
    evaluator = split_evaluator(cfg, prepared_dir, split, dataset_root, device, log=log)
    rows = []
    for model in models:
        rows += evaluator.evaluate(model.generator.to(device), model.name, modes, config=model.cfg.name)
    rows += evaluator.reference_rows(prepared.split("train", cfg.data.max_identities))
    table = results_table(rows)
    table.attrs["notes"] = [f"data: {prepared_dir} ({split} split)", *evaluator.notes]
    return table
