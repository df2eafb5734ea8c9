"""Device-agnostic tensor code, checked on a machine without a GPU.

A constant made on the CPU and mixed with a GPU tensor (a normalisation mean, a mask) only fails on a GPU, which CI
never has. Under PyTorch's FakeTensorMode, tensors can claim `device="cuda"` without one: every op checks its inputs'
devices and computes shapes only, so such a mix raises here exactly as it would on a GPU. Forward passes and losses
are checked this way; backward passes and data-dependent steps (`.item()`, boolean-mask indexing) need real values
and are exercised on a GPU by hand (the closing notes say when and on what).
"""

from __future__ import annotations

import pytest
import torch
from facenet_pytorch import InceptionResnetV1
from torch._subclasses.fake_tensor import FakeTensorMode

from sf2f.config import ExperimentConfig, load_config
from sf2f.embedder_weights import cosine_softmax_loss
from sf2f.faces import normalize_images, to_pixel_range
from sf2f.losses import PerceptualLoss
from sf2f.models import build_discriminators, build_generator
from sf2f.models.discriminators import Discriminators
from sf2f.models.face_embedders import FaceEmbedder, FaceNetEmbedder, SmallFaceEmbedder, embedder_input
from sf2f.models.generator import Generator
from sf2f.train.iteration import TrainingStep

GPU = torch.device("cuda")


def fake_gpu() -> FakeTensorMode:
    """Inside it, tensors and modules may live on 'cuda' without one, and a CPU/GPU mix raises RuntimeError.
    Modules are built before entering it (parameters made inside it cannot be moved by `.to`)."""
    return FakeTensorMode(allow_non_fake_inputs=True)


def test_the_fake_mode_catches_a_device_mix():
    """The premise of this file: mixing a CPU constant into a 'cuda' tensor fails here as it would on a GPU."""
    with fake_gpu(), pytest.raises(RuntimeError, match="devices"):
        torch.ones(2, device=GPU) * torch.tensor([1.0, 2.0])


def test_image_normalisation_stays_on_the_images_device():
    with fake_gpu():
        images = torch.zeros(2, 3, 8, 8, device=GPU)
        assert to_pixel_range(images).device.type == "cuda"
        assert normalize_images(torch.zeros(2, 8, 8, 3, dtype=torch.uint8, device=GPU)).device.type == "cuda"
        assert embedder_input(images, 16).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("name", ["v2f", "sf2f_1st_stage", "sf2f_mid_1st_stage", "sf2f_fuser"])
def test_a_training_iteration_runs_on_the_gpu(name, monkeypatch):
    """A stage's training iteration, its forward passes and every loss term, all on 'cuda' (the fuser with whole
    segment stacks). The backward passes need a real device (so they do nothing here, and the optimisers find no
    gradients to step with), and so does the check for a non-finite loss (off)."""
    cfg = load_config(name, profile="quick", overrides=["optim.skip_nonfinite=false"])
    generator, discriminators = build_generator(cfg), build_discriminators(cfg, 10)
    monkeypatch.setattr(torch.Tensor, "backward", lambda *args, **kwargs: None)
    with fake_gpu():
        _check_stage(cfg, generator.to(GPU), discriminators.to(GPU))


def _check_stage(cfg: ExperimentConfig, generator: Generator, discriminators: Discriminators) -> None:
    def adam(module: torch.nn.Module) -> torch.optim.Adam:
        return torch.optim.Adam(module.parameters())

    step = TrainingStep(cfg, generator, discriminators, adam(generator), [adam(d) for d in discriminators.image],
                        [adam(d) for d in discriminators.ac])
    # the fuser's segment stacks go in without a mask: selecting the masked segments needs real values
    shape = (4, 3, 40, 125) if generator.fuser is not None else (4, 40, 125)
    batch = {
        "mel": torch.randn(shape, device=GPU),
        "image": torch.randn(4, 3, cfg.data.image_size, cfg.data.image_size, device=GPU),
        "label": torch.randint(0, 10, (4,), device=GPU),
    }
    terms = step(batch)
    assert terms is not None and {v.device.type for v in terms.values()} == {"cuda"}
    assert {f"l1_{s}" for s in generator.image_sizes} <= set(terms) and "d_total" in terms


@pytest.mark.parametrize("embedder", [SmallFaceEmbedder(64, 8), FaceNetEmbedder(InceptionResnetV1(pretrained=None))],
                         ids=["trained", "facenet"])
def test_face_embedders_and_their_losses_run_on_the_gpu(embedder):
    with fake_gpu():
        _check_embedder(embedder.eval().to(GPU))


def _check_embedder(embedder: FaceEmbedder) -> None:
    images = torch.randn(3, 3, 64, 64, device=GPU)
    loss = PerceptualLoss(embedder)
    assert loss(images, loss.target_features(images)).device.type == "cuda"
    emb = embedder(embedder_input(images, embedder.input_size))
    labels = torch.zeros(3, dtype=torch.long, device=GPU)
    assert cosine_softmax_loss(emb, torch.randn(5, emb.shape[1], device=GPU), labels, 30.0, 0.2).device.type == "cuda"
