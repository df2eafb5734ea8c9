"""What one training iteration costs (notebook 08 plans a GPU run with it): the parameters of the networks a config
builds, and the tensors autograd saves in each backward pass of a real :class:`~sf2f.train.iteration.TrainingStep` at
two batch sizes, extended linearly (activations scale with the batch); the face embedder has random weights."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sf2f.config import ExperimentConfig
from sf2f.faces import facenet_pytorch
from sf2f.models import build_discriminators, build_generator, count_parameters
from sf2f.models.face_embedders import FaceEmbedder, FaceNetEmbedder, SmallFaceEmbedder
from sf2f.train.iteration import TrainingStep

#: bytes per trainable fp32 parameter during training: the weight, its gradient, Adam's two moments
TRAINABLE_BYTES = 16
#: the iteration's backward passes, in order (recipe §3.2); each frees the tensors saved before it
PASSES = ("generator", "image discriminators", "AC discriminators")


def _face_embedder(cfg: ExperimentConfig) -> FaceEmbedder:
    """The perceptual loss's face embedder with random weights, of the kind and size `cfg` trains with."""
    settings = cfg.model.face_embedder
    if settings.kind == "facenet":
        return FaceNetEmbedder(facenet_pytorch("the FaceNet footprint").InceptionResnetV1(pretrained=None))
    return SmallFaceEmbedder(settings.input_size, settings.width)


def module_parameters(cfg: ExperimentConfig, num_ids: int) -> dict[str, int]:
    """Parameters of every network a run of `cfg` with `num_ids` training identities holds (built on the meta device:
    no memory, no time); the frozen face embedder counts when the perceptual loss uses it."""
    with torch.device("meta"):
        generator, discriminators = build_generator(cfg), build_discriminators(cfg, num_ids)
        embedder = _face_embedder(cfg) if cfg.loss.perceptual_weight > 0 else None
    return {"voice encoder": count_parameters(generator.encoder),
            "fuser": count_parameters(generator.fuser) if generator.fuser is not None else 0,
            "face decoder": count_parameters(generator.decoder),
            "image discriminators": count_parameters(discriminators.image),
            "AC discriminators": count_parameters(discriminators.ac),
            "face embedder (frozen)": count_parameters(embedder) if embedder is not None else 0}


def synthetic_batch(cfg: ExperimentConfig, batch: int, num_ids: int, seed: int = 0) -> dict[str, Tensor]:
    """A collated batch of random tensors with the shapes `cfg` trains on: 125-frame crops for stage 1, stacks of
    `data.max_segments` segments for the fuser stage (every segment real), faces at `data.image_size`."""
    g = torch.Generator().manual_seed(seed)
    n_mels, frames, size = cfg.data.audio.n_mels, cfg.data.segment_frames, cfg.data.image_size
    out = {"image": torch.randn(batch, 3, size, size, generator=g).clamp(-2, 2),
           "label": torch.randint(0, num_ids, (batch,), generator=g), "face_row": torch.arange(batch),
           "flipped": torch.zeros(batch, dtype=torch.bool)}
    if cfg.model.fuser.enabled:
        segments = cfg.data.max_segments
        out["segments"] = torch.randn(batch, segments, n_mels, frames, generator=g)
        out["mask"] = torch.ones(batch, segments, dtype=torch.bool)
    else:
        out["mel"] = torch.randn(batch, n_mels, frames, generator=g)
    return out


@dataclass(frozen=True)
class StepFootprint:
    """The cost of one training iteration of a config, per process: for each backward pass (:data:`PASSES`) autograd
    keeps `saved_fixed + saved_per_sample * batch` bytes besides the parameters; `seconds` is one iteration at batch
    `seconds_batch` (one sample, not a median); on CUDA, `peak_bytes` is the allocator's peak during it."""

    parameters: dict[str, int]
    trainable: int
    frozen: int
    saved_fixed: dict[str, float]
    saved_per_sample: dict[str, float]
    seconds: float
    seconds_batch: int
    peak_bytes: int | None = None

    @property
    def state_bytes(self) -> int:
        """fp32 weights, gradients and Adam moments of what trains, plus the weights of what is frozen."""
        return TRAINABLE_BYTES * self.trainable + 4 * self.frozen

    def activation_bytes(self, batch: int) -> float:
        """The largest pass's saved tensors at this per-process batch (each backward pass frees its own)."""
        return max(self.saved_fixed[p] + self.saved_per_sample[p] * batch for p in PASSES)

    def memory_bytes(self, batch: int) -> float:
        """State plus activations: a lower bound on a device's peak (no CUDA context, slack or input batch)."""
        return self.state_bytes + self.activation_bytes(batch)


def _saved_bytes(step: TrainingStep, batch: dict[str, Tensor], parameters: Sequence[Tensor]) -> dict[str, int]:
    """Run `step` on `batch`, counting the distinct storages autograd saves for backward by pass, the parameters' left
    out. A pass ends when its optimisers step (G's, then the last image discriminator's; voice2face has none)."""
    skip = {p.untyped_storage().data_ptr() for p in parameters}
    storages: list[dict[int, int]] = [{}]  # one per pass begun

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            storages[-1][storage.data_ptr()] = storage.nbytes()
        return tensor

    ends = [step.g_optimizer, *step.image_d_optimizers[-1:]]
    hooks = [optimizer.register_step_post_hook(lambda *_: storages.append({})) for optimizer in ends]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step(batch)
    for hook in hooks:
        hook.remove()
    passes = [p for p in PASSES if p != "image discriminators" or step.image_d_optimizers]
    totals = {p: sum(pass_storages.values()) for p, pass_storages in zip(passes, storages)}
    return {p: totals.get(p, 0) for p in PASSES}


def measure_step(cfg: ExperimentConfig, batches: tuple[int, int] = (2, 3), num_ids: int = 3200,
                 device: str | torch.device = "cpu", seed: int = 0) -> StepFootprint:
    """Run one real training iteration of `cfg` (at its own width) at each of two batch sizes on `device`, counting
    what autograd saves, and time the second. `num_ids`: training identities (about 3,200 on HQ-VoxCeleb, §1.3)."""
    small, large = batches
    if not 2 <= small < large:
        raise ValueError(f"batches must be two sizes with 2 <= first < second (BatchNorm needs 2), got {batches}")
    device = torch.device(device)
    cuda = device.type == "cuda"
    torch.manual_seed(seed)
    generator = build_generator(cfg).to(device).train()
    discriminators = build_discriminators(cfg, num_ids).to(device).train()
    embedder = _face_embedder(cfg).to(device).freeze() if cfg.loss.perceptual_weight > 0 else None
    step = TrainingStep.build(cfg, generator, discriminators, embedder)
    params = [*generator.parameters(), *discriminators.parameters(), *(embedder.parameters() if embedder else [])]
    saved: dict[int, dict[str, int]] = {}
    for b in batches:
        batch = synthetic_batch(cfg, b, num_ids, seed)
        if step.perceptual is not None:  # the trainer fills this cache before training
            step.perceptual.add(batch["image"].to(device), (batch["face_row"] * 2).tolist())
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()  # the second (larger) step is timed: the first one pays the warm-up
        saved[b] = _saved_bytes(step, batch, params)
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    per_sample = {p: (saved[large][p] - saved[small][p]) / (large - small) for p in PASSES}
    fixed = {p: saved[small][p] - per_sample[p] * small for p in PASSES}
    trainable = sum(p.numel() for p in params if p.requires_grad)
    frozen = sum(p.numel() for p in params) - trainable
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    return StepFootprint(module_parameters(cfg, num_ids), trainable, frozen, fixed, per_sample, seconds, large, peak)
