"""The face embedder a run uses. FaceNet (recipe §2.7, §3.1, §4.2) knows nothing of the synthetic faces (and users may
lack its VGGFace2 weights), so :func:`train_face_embedder` (`python -m sf2f train-face-embedder`) trains a
:class:`~sf2f.models.face_embedders.SmallFaceEmbedder` to tell the training identities apart, as FaceNet was trained."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from sf2f.checkpoints import load_checkpoint, save_checkpoint
from sf2f.config import ExperimentConfig, FaceEmbedderConfig
from sf2f.data.prepared import PreparedData, PreparedSplit
from sf2f.errors import SF2FError
from sf2f.faces import normalize_images
from sf2f.models.face_embedders import FaceEmbedder, FaceNetEmbedder, SmallFaceEmbedder, embed_faces, embedder_input
from sf2f.runtime import select_device
from sf2f.weights import WeightsError

EMBEDDER_FORMAT = "sf2f-face-embedder-v1"
#: the perceptual loss's trained embedder stands in for a pretrained FaceNet, one fixed network whatever a run's seed
#: (§3.1): one seed for it on every run, so runs of several seeds share one file instead of retraining it in turn
LOSS_EMBEDDER_SEED = 0
#: added to `eval.seed` to seed the evaluation embedder: far from the loss's one
EVAL_EMBEDDER_SEED = 10_000
#: which of a run's two trained embedders: the perceptual loss's (and training-time validation's) or the evaluation's
EmbedderRole = Literal["loss", "eval"]


class FaceEmbedderError(SF2FError, RuntimeError):
    """No usable face embedder: weights missing, or a trained embedder file that does not fit the data."""


def cosine_softmax_loss(embeddings: Tensor, weight: Tensor, labels: Tensor, scale: float, margin: float) -> Tensor:
    """Cross-entropy over s * cos(embedding, class centre), the margin m taken off the true class (CosFace): identities
    told apart by angle alone, the measure the cosine metrics and the recall use later."""
    cos = F.normalize(embeddings, dim=1) @ F.normalize(weight, dim=1).T
    cos = cos - margin * F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    return F.cross_entropy(scale * cos, labels)


def _faces(split: PreparedSplit, rows: Sequence[int], norm: str) -> Tensor:
    return normalize_images(np.asarray(split.face_pixels[np.asarray(rows)]), norm)


def _augment(images: Tensor, generator: torch.Generator, shift: int = 3) -> Tensor:
    """Random mirror and a random shift of up to `shift` pixels (edge-padded): a face seen slightly differently."""
    flip = torch.rand(len(images), generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    size = images.shape[-1]
    padded = F.pad(images, (shift,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * shift + 1, (len(images), 2), generator=generator)
    return torch.stack([p[:, y : y + size, x : x + size] for p, (y, x) in zip(padded, offsets.tolist())])


def _val_top1(embedder: FaceEmbedder, split: PreparedSplit, norm: str) -> tuple[float, float]:
    """Each val face's nearest other val face: how often it is the same identity (and that rate by chance)."""
    rows, owners = [], []
    for label in range(len(split)):
        face_rows = list(split.face_rows(label))
        if len(face_rows) >= 2:
            rows += face_rows
            owners += [label] * len(face_rows)
    if len(set(owners)) < 2:
        return float("nan"), float("nan")
    emb = F.normalize(embed_faces(embedder, _faces(split, rows, norm), norm), dim=1)
    sim = emb @ emb.T
    sim.fill_diagonal_(-math.inf)
    owners_t = torch.tensor(owners)
    top1 = float((owners_t[sim.argmax(dim=1)] == owners_t).float().mean())
    chance = float(sum(n * (n - 1) for n in np.bincount(owners)) / (len(owners) * (len(owners) - 1)))
    return top1, chance


@torch.no_grad()
def _recalibrate_batchnorm(embedder: FaceEmbedder, split: PreparedSplit, rows: np.ndarray, norm: str,
                           device: torch.device, batch: int = 256) -> None:
    """BatchNorm's statistics recomputed on the unaugmented training faces, the embedder left in eval mode: the running
    averages lag behind the weights after a short training, which shifts every embedding the same way and makes all
    faces look alike to the cosine ("precise BN", Wu & Johnson, *Rethinking "Batch" in BatchNorm*, 2021)."""
    parts = [rows[start : start + batch] for start in range(0, len(rows), batch)]
    inputs = (embedder_input(_faces(split, part, norm).to(device), embedder.input_size, norm)
              for part in parts if len(part) > 1)
    update_bn(inputs, embedder)
    embedder.eval()


def train_face_embedder(data: str | Path, out: str | Path, settings: FaceEmbedderConfig | None = None,
                        image_norm: str = "imagenet", seed: int = 0, device: str | torch.device = "cpu",
                        progress: bool = True) -> dict[str, Any]:
    """Train a :class:`SmallFaceEmbedder` on the training faces of a prepared folder and save it to `out`: identity
    classification (:func:`cosine_softmax_loss`), Adam with a cosine learning-rate decay, random mirror and shift.
    Seeded: the same inputs give the same file. Prints a summary; returns what it saved (`history`: per-epoch loss and
    accuracy, and a held-out check)."""
    settings = settings or FaceEmbedderConfig()
    start_time = time.perf_counter()
    prepared = PreparedData(data)
    train = prepared.split("train")
    rows = np.arange(len(train.faces))
    labels = torch.tensor(train.faces["label"].to_numpy(), dtype=torch.long)
    if len(train) < 2 or len(rows) < 2:
        raise FaceEmbedderError(f"{data}: the training split needs at least 2 identities and 2 faces to learn from")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        embedder = SmallFaceEmbedder(settings.input_size, settings.width).to(device)
        centres = nn.Parameter(torch.randn(len(train), embedder.embed_dim, device=device))
    optimizer = torch.optim.Adam([*embedder.parameters(), centres], lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    generator = torch.Generator().manual_seed(seed)
    batch = min(settings.batch_size, len(rows))
    history: dict[str, Any] = {"loss": [], "accuracy": []}
    bar = tqdm(range(settings.epochs), desc="face embedder", disable=not progress, leave=False)
    for _ in bar:
        embedder.train()
        order = torch.randperm(len(rows), generator=generator)
        total, correct, seen = 0.0, 0, 0
        for begin in range(0, len(order) - batch + 1, batch):  # whole batches: BatchNorm needs more than one face
            idx = order[begin : begin + batch].sort().values
            images = _augment(_faces(train, rows[idx.numpy()], image_norm), generator).to(device)
            target = labels[idx].to(device)
            emb = embedder(embedder_input(images, embedder.input_size, image_norm))
            loss = cosine_softmax_loss(emb, centres, target, settings.cosine_scale, settings.cosine_margin)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                predicted = (F.normalize(emb, dim=1) @ F.normalize(centres, dim=1).T).argmax(dim=1)
            total += loss.item() * len(idx)
            correct += int((predicted == target).sum())
            seen += len(idx)
        schedule.step()
        history["loss"].append(total / seen)
        history["accuracy"].append(correct / seen)
        bar.set_postfix(loss=f"{total / seen:.3f}", acc=f"{correct / seen:.2f}")
    _recalibrate_batchnorm(embedder, train, rows, image_norm, device)
    val = prepared.split("val")
    # leave-one-out nearest-neighbour identity match among the val split's faces (identities never trained on)
    top1, chance = _val_top1(embedder, val, image_norm) if len(val) else (math.nan, math.nan)
    state = {"format": EMBEDDER_FORMAT, "settings": dataclasses.asdict(settings), "image_norm": image_norm,
             "seed": seed, "data_fingerprint": prepared.manifest.get("fingerprint", ""), "identities": len(train),
             "state": {k: v.cpu() for k, v in embedder.state_dict().items()},
             "history": {**history, "val_top1": top1, "val_chance": chance}}
    save_checkpoint(state, out)
    print(f"face embedder: {len(train)} training identities, {len(rows)} faces, {settings.epochs} epochs in "
          f"{time.perf_counter() - start_time:.0f} s; train accuracy {history['accuracy'][-1]:.2f}; val nearest-face "
          f"identity match {top1:.2f} (chance {chance:.2f}) -> {out}")
    return state


def load_trained_embedder(path: str | Path, data: str | Path | None = None) -> SmallFaceEmbedder:
    """A trained embedder file (eval mode). With `data`, refuse a file trained on another prepared dataset."""
    path = Path(path)
    state = load_checkpoint(path, EMBEDDER_FORMAT, "train-face-embedder")
    if data is not None:
        expected = PreparedData(data).manifest.get("fingerprint", "")
        if state["data_fingerprint"] != expected:
            raise FaceEmbedderError(f"{path}: this face embedder was trained on another prepared dataset than {data}; "
                                    f"train one for it with `python -m sf2f train-face-embedder --data {data}`")
    settings = state["settings"]
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten: it must not shift the caller's stream
        embedder = SmallFaceEmbedder(settings["input_size"], settings["width"])
    embedder.load_state_dict(state["state"])
    return embedder.eval()


def default_embedder_path(cfg: ExperimentConfig, data: str | Path, role: EmbedderRole = "loss") -> Path:
    """`model.face_embedder.trained_path`, or `<prepared data>/face_embedder.pt` when it is empty; the evaluation
    embedder (`role="eval"`) lives beside it as `<name>_eval.pt`."""
    path = cfg.model.face_embedder.trained_path
    path = Path(path).expanduser() if path else Path(data) / "face_embedder.pt"
    return path.with_name(f"{path.stem}_eval{path.suffix}") if role == "eval" else path


def embedder_seed(cfg: ExperimentConfig, role: EmbedderRole = "loss") -> int:
    """The training seed of a trained embedder, the same for runs of any seed: a constant for the loss's embedder (as
    FaceNet's weights are one file), one of the evaluation protocol for the evaluation one."""
    return LOSS_EMBEDDER_SEED if role == "loss" else EVAL_EMBEDDER_SEED + cfg.eval.seed


def resolve_face_embedder(cfg: ExperimentConfig, data: str | Path,
                          log: Callable[[str], object] = print) -> tuple[FaceEmbedder, str]:
    """The face embedder of a run and a line that says which: for `facenet`, FaceNet when its weights verify, else the
    trained embedder if there is one (logged, as it changes the loss); for `trained`, the trained embedder file."""
    settings = cfg.model.face_embedder
    trained = default_embedder_path(cfg, data)
    if settings.kind == "facenet":
        try:
            embedder = FaceNetEmbedder.from_vggface2(settings.facenet_weights or None)
            return embedder, "FaceNet (InceptionResnetV1, VGGFace2 weights)"
        except WeightsError as exc:
            if not trained.is_file():
                raise FaceEmbedderError(f"{exc}\nNo trained face embedder at {trained} either: train one on this data "
                                        f"with `python -m sf2f train-face-embedder --data {data}`, or set "
                                        "model.face_embedder.kind=trained.") from None
            log(f"FaceNet weights not found ({exc}); using the trained face embedder {trained} instead")
    elif not trained.is_file():
        raise FaceEmbedderError(f"{trained}: no trained face embedder (model.face_embedder.kind is 'trained'). Train "
                                f"one with `python -m sf2f train-face-embedder --data {data}` (or set "
                                "model.face_embedder.trained_path).")
    return load_trained_embedder(trained, data), f"trained face embedder {trained}"


def scoring_embedder(cfg: ExperimentConfig, data: str | Path,
                     loss_embedder: FaceEmbedder) -> tuple[FaceEmbedder, str | None]:
    """The embedder that scores generated faces, and a line saying so when it is not `loss_embedder`: with
    `eval.independent_embedder` and a trained loss embedder, the data's second one (trained on first use), because a
    generator scored by the network its perceptual loss trained it against games it; else the loss's, as the paper."""
    if not (cfg.eval.independent_embedder and isinstance(loss_embedder, SmallFaceEmbedder)):
        return loss_embedder, None
    path = ensure_face_embedder(cfg, data, progress=False, role="eval")
    described = (f"trained face embedder {path} (seed {embedder_seed(cfg, 'eval')}), a second one: not the network "
                 "the perceptual loss trained the generators against")
    return load_trained_embedder(path, data), described


def ensure_face_embedder(cfg: ExperimentConfig, data: str | Path, progress: bool = True,
                         role: EmbedderRole = "loss") -> Path:
    """The path of the config's trained embedder, trained only when no file with its settings, seed and data exists
    yet. `role="eval"`: the second embedder that scores generated faces (the same settings, another seed)."""
    path = default_embedder_path(cfg, data, role)
    seed = embedder_seed(cfg, role)
    if path.is_file():
        try:
            state = load_checkpoint(path, EMBEDDER_FORMAT, "train-face-embedder")
        except RuntimeError:  # an unreadable or foreign file (CheckpointError) is replaced
            state = {}
        wanted = {"settings": dataclasses.asdict(cfg.model.face_embedder), "image_norm": cfg.data.image_norm,
                  "seed": seed, "data_fingerprint": PreparedData(data).manifest.get("fingerprint", "")}
        if all(state.get(k) == v for k, v in wanted.items()):
            return path
    settings, device = cfg.model.face_embedder, select_device(cfg.run.device)
    train_face_embedder(data, path, settings, cfg.data.image_norm, seed, device, progress)
    return path
