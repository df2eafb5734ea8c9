"""LPIPS diversity between faces generated from different segments of one speaker (recipe §4.5).

The original ships LPIPS v0.1 with an AlexNet trunk (`net-lin`) but never calls it, and its pairing protocol is not in
the code. Here: for every identity with at least two evaluation segments, the faces generated from its first and second
segment form a pair; the score is the mean and std of LPIPS over the pairs (images as bytes, mapped to [-1, 1]).
High means the generator's face changes with the speech segment; 0 means one face per speaker whatever is said.

The `lpips` package ships only the linear heads; the AlexNet trunk is torchvision's ImageNet file, which the user
fetches (`sf2f.weights.REGISTRY["lpips_alexnet"]`). :func:`load_lpips` loads it with `weights_only=True` and
downloads nothing; without it the metric is skipped with a message (see :func:`lpips_or_reason`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from sf2f.config import DataConfig
from sf2f.data.prepared import PreparedSplit
from sf2f.evaluate.embeddings import device_of, eval_mode
from sf2f.evaluate.probes import evaluation_segments, seeded
from sf2f.faces import denormalize_images
from sf2f.models.generator import Generator
from sf2f.weights import REGISTRY, WeightFile, WeightsError, locate, torch_load_failure

__all__ = ["LpipsDistance", "load_lpips", "lpips_diversity", "lpips_or_reason", "segment_face_pairs"]


class LpipsDistance(nn.Module):
    """LPIPS v0.1 (AlexNet) between two batches of generator-space images: one distance per pair (n,)."""

    def __init__(self, net: nn.Module, image_norm: str = "imagenet", batch_size: int = 32) -> None:
        super().__init__()
        self.net = net
        self.image_norm = image_norm
        self.batch_size = batch_size

    def _to_unit_range(self, images: Tensor) -> Tensor:
        return denormalize_images(images, self.image_norm).float() / 127.5 - 1.0

    @torch.no_grad()
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        device = device_of(self.net)
        out = []
        with eval_mode(self.net):
            for x, y in zip(a.split(self.batch_size), b.split(self.batch_size)):
                d = self.net(self._to_unit_range(x.to(device)), self._to_unit_range(y.to(device)))
                out.append(d.flatten().float().cpu())
        return torch.cat(out)


def _copy_alexnet_trunk(lpips_net: nn.Module, state: dict[str, Tensor], source: Path) -> None:
    """torchvision's `features.<i>.*` tensors into the lpips trunk, whose slices hold the same layers named `<i>`."""
    trunk = {}
    for slice_name, module in lpips_net.net.named_children():
        for index, _ in module.named_children():
            for kind in ("weight", "bias"):
                key = f"features.{index}.{kind}"
                if key in state:
                    trunk[f"{slice_name}.{index}.{kind}"] = state[key]
    expected = {k for k in lpips_net.net.state_dict()}
    if set(trunk) != expected:
        raise WeightsError(f"{source}: not torchvision's AlexNet (missing {sorted(expected - set(trunk))[:3]})")
    lpips_net.net.load_state_dict(trunk)


def load_lpips(
    path: str | Path | None = None, image_norm: str = "imagenet", entry: WeightFile = REGISTRY["lpips_alexnet"]
) -> LpipsDistance:
    """LPIPS v0.1-alex with the user's AlexNet file (default place: torch hub's checkpoint folder).

    Raises WeightsError with the link when the file is missing or is not AlexNet, ImportError without `lpips`.
    """
    file = locate(entry, path)
    import lpips  # after the weights are found: importing it imports torchvision, seconds for a skipped metric

    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated, foreign or code-carrying files
        raise WeightsError(f"{file}: not a readable state dict: {torch_load_failure(file, exc)}") from None
    # a random trunk first (pnet_rand: nothing is fetched), then the user's weights; the linear heads come with lpips,
    # which still asks torchvision in its pre-0.13 words (pretrained=False) and would warn about it
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
        net = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    _copy_alexnet_trunk(net, state, file)
    for param in net.parameters():
        param.requires_grad_(False)
    return LpipsDistance(net.eval(), image_norm)


def lpips_or_reason(path: str | Path | None = None, image_norm: str = "imagenet") -> LpipsDistance | str:
    """The LPIPS distance, or the reason it is skipped (a message for the results, never an exception)."""
    try:
        return load_lpips(path, image_norm)
    except ImportError:
        return "LPIPS diversity skipped: the lpips package is not installed"
    except WeightsError as error:
        return f"LPIPS diversity skipped: {error}"


@torch.no_grad()
def segment_face_pairs(
    generator: Generator, split: PreparedSplit, data: DataConfig, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Faces generated from the first and from the second evaluation segment of every identity that has two."""
    segments = evaluation_segments(split, data, seed)
    firsts, seconds = [], []
    device = device_of(generator)
    with eval_mode(generator), seeded(device, seed):
        for index in range(len(segments)):
            stack = segments[index]["segments"]
            if len(stack) >= 2:
                faces = generator(stack[:2].to(device)).images[-1].float().cpu()
                firsts.append(faces[0])
                seconds.append(faces[1])
    if not firsts:
        raise ValueError("no identity of the split has two evaluation segments: LPIPS diversity needs pairs")
    return torch.stack(firsts), torch.stack(seconds)


def lpips_diversity(distance: nn.Module, a: Tensor, b: Tensor) -> tuple[float, float]:
    """Mean and std (ddof 0) of the distance over the pairs (a_i, b_i)."""
    values = distance(a, b).double().numpy()
    return float(np.mean(values)), float(np.std(values))
