"""Trained checkpoints to the results table (`python -m sf2f evaluate`), with every metric the data and the weights
at hand allow (synthetic data: the ID-classifier score and the attribute probes; real data: the VFS)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sf2f.checkpoints import CheckpointError, load_generator
from sf2f.config import ExperimentConfig, load_config
from sf2f.data.course_data import prepared_data
from sf2f.data.prepared import PreparedData
from sf2f.embedder_weights import resolve_face_embedder, scoring_embedder
from sf2f.errors import MissingPathError
from sf2f.evaluate.attributes import AttributeProbe
from sf2f.evaluate.diversity import load_lpips
from sf2f.evaluate.evaluator import SplitEvaluator
from sf2f.evaluate.fid import load_fid_inception
from sf2f.evaluate.probes import PROBE_MODES
from sf2f.evaluate.report import results_table
from sf2f.evaluate.vggface_score import IdentityClassifier, VGGFaceClassifier, load_vggface_resnet50
from sf2f.models.face_embedders import FaceEmbedder
from sf2f.models.generator import Generator
from sf2f.paths import project_path, user_path
from sf2f.weights import WeightsError


def load_models(sources: Sequence[str | Path]) -> list[tuple[str, Generator, ExperimentConfig, Path]]:
    """(name in the table, generator, config, path) of run folders or checkpoint files, named by config (by config
    and path when two share one)."""
    loaded = [(*load_generator(path), path) for path in map(user_path, sources)]
    names = [cfg.name for _, cfg, _ in loaded]
    return [(f"{cfg.name} ({path})" if names.count(cfg.name) > 1 else cfg.name, generator, cfg, path)
            for generator, cfg, path in loaded]


def evaluation_data(cfg: ExperimentConfig, data: str | Path | None, run: Path) -> tuple[Path, Path]:
    """(prepared folder, dataset root) to evaluate on: `data`, a prepared folder or a dataset root (prepared on first
    use); without it the prepared folder the run trained on, else the config's."""
    dataset_root = project_path(cfg.data.root)
    if data:
        path = user_path(data)
        if not path.is_dir():
            raise MissingPathError(f"{path}: no such data folder (a prepared folder or a dataset root)")
        if (path / "manifest.json").is_file():
            return path, dataset_root
        return prepared_data(cfg.data, path, progress=False).root, path
    record = run / "run.json"
    if run.is_dir() and record.is_file():
        trained_on = Path(json.loads(record.read_text(encoding="utf-8"))["data"])
        if (trained_on / "manifest.json").is_file():
            return trained_on, dataset_root
    return prepared_data(cfg.data, progress=False).root, dataset_root


def check_fits(cfg: ExperimentConfig, source: Path, data: PreparedData) -> None:
    """Refuse a checkpoint trained on other faces or other voice features than the prepared data hold."""
    settings = data.manifest["settings"]
    problems = []
    if int(settings["image_size"]) != cfg.data.image_size:
        problems.append(f"faces of {cfg.data.image_size} px, the data has {settings['image_size']} px")
    if int(settings["audio"]["n_mels"]) != cfg.data.audio.n_mels:
        problems.append(f"{cfg.data.audio.n_mels} mel bands, the data has {settings['audio']['n_mels']}")
    if problems:
        raise CheckpointError(f"{source}: does not fit {data.root}: it was trained on {'; '.join(problems)}")


def split_evaluator(cfg: ExperimentConfig, data: str | Path, split: str = "test",
                    dataset_root: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 32,
                    scorer: tuple[FaceEmbedder, str] | None = None) -> SplitEvaluator:
    """Every metric of `split` that the data and weights allow (`notes`: the embedder, what is skipped); `scorer`
    (an embedder, a line naming it) replaces the config's: shipped weights are scored by the one shipped with them."""
    prepared = PreparedData(data)
    if scorer is None:
        embedder, which = resolve_face_embedder(cfg, data)
        embedder, second = scoring_embedder(cfg, data, embedder)
        which = second or which
    else:
        embedder, which = scorer
    embedder = embedder.to(device).eval()
    train = prepared.split("train", cfg.data.max_identities)
    norm, box = cfg.data.image_norm, tuple(cfg.eval.vgg_box)
    notes = [f"face embedder: {which}"]

    def optional(metric: str, load: Callable[[], Any]) -> Any:
        try:
            return load()
        except (ImportError, WeightsError) as error:  # no weights (or no lpips package): the metric is left out
            notes.append(f"{metric} skipped: {error}")
            return None

    attribute_probe = None
    if dataset_root is not None and (Path(dataset_root) / "traits.csv").is_file():
        from sf2f.data.synthetic import read_traits

        image_classifier = IdentityClassifier.fit(embedder, train, norm, box, batch_size)
        attribute_probe = AttributeProbe.fit(train, read_traits(Path(dataset_root)), image_norm=norm,
                                             batch_size=batch_size)
        notes.append("ID-classifier score: an identity classifier of the training identities stands in for VGGFace "
                     "(synthetic faces); not comparable with a VFS")
    else:
        ev = cfg.eval
        image_classifier = optional("VFS", lambda: VGGFaceClassifier(
            load_vggface_resnet50(), norm, channel_order=ev.vfs_channel_order, input_size=ev.vfs_input_size))
    inception = optional("FID (Inception)", lambda: load_fid_inception(image_norm=norm))
    lpips = optional("LPIPS diversity", lambda: load_lpips(image_norm=norm))
    evaluator = SplitEvaluator(prepared.split(split, cfg.data.max_identities), cfg, embedder, batch_size=batch_size,
                               image_classifier=image_classifier, attribute_probe=attribute_probe, inception=inception,
                               lpips=lpips)
    evaluator.notes[:0] = notes
    return evaluator


def evaluate_checkpoints(sources: Sequence[str | Path], data: str | Path | None = None, split: str = "test",
                         modes: Sequence[str] = PROBE_MODES, profile: str | None = None,
                         device: str | torch.device = "cpu") -> pd.DataFrame:
    """The results table of trained checkpoints on a split (`table.attrs["notes"]`: skipped metrics and caveats). The
    face embedder, the data settings and the protocol (`eval`, or its config's under `profile`) are the first's."""
    models = load_models(sources)
    _, _, cfg, first = models[0]
    if profile:
        cfg = dataclasses.replace(cfg, eval=load_config(cfg.name, profile=profile).eval)
    prepared_dir, dataset_root = evaluation_data(cfg, data, first)
    prepared = PreparedData(prepared_dir)
    for _, _, model_cfg, source in models:
        check_fits(model_cfg, source, prepared)
    evaluator = split_evaluator(cfg, prepared_dir, split, dataset_root, device)
    rows = []
    for name, generator, model_cfg, _ in models:
        rows += evaluator.evaluate(generator.to(device), name, modes, config=model_cfg.name)
    rows += evaluator.reference_rows(prepared.split("train", cfg.data.max_identities))
    table = results_table(rows)
    table.attrs["notes"] = [f"data: {prepared_dir} ({split} split)", *evaluator.notes]
    return table
