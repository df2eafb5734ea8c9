"""LPIPS v0.1 (AlexNet) diversity between the faces of one speaker's first and second evaluation segments (recipe
§4.5; the original ships LPIPS but never calls it): 0 means one face per speaker whatever is said."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

from sf2f.config import DataConfig
from sf2f.data.prepared import PreparedSplit
from sf2f.evaluate.embeddings import PixelNetwork
from sf2f.evaluate.probes import evaluation_segments
from sf2f.models.generator import Generator, generating
from sf2f.weights import REGISTRY, WeightFile, WeightsError, locate, torch_load


class LpipsDistance(PixelNetwork):
    """LPIPS v0.1 (AlexNet) between two batches of generator-space images: one distance per pair (n,)."""

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        return self.run(lambda x: x / 127.5 - 1.0, a, b).flatten()


def load_lpips(path: str | Path | None = None, image_norm: str = "imagenet",
               entry: WeightFile = REGISTRY["lpips_alexnet"]) -> LpipsDistance:
    """LPIPS v0.1-alex with the user's AlexNet file (default: torch hub's checkpoint folder), or a WeightsError."""
    file = locate(entry, path)
    import lpips  # after the weights are found: importing it imports torchvision, seconds for a skipped metric

    state = torch_load(file, WeightsError, "state dict")
    # a random trunk first (pnet_rand: nothing is fetched), then the user's weights; the linear heads come with lpips,
    # which still asks torchvision in its pre-0.13 words (pretrained=False) and would warn about it
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
        net = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    # torchvision's `features.<i>.*` tensors go into the lpips trunk, which names the same layers `slice<k>.<i>`
    names = {key: "features." + key.split(".", 1)[1] for key in net.net.state_dict()}
    missing = sorted(name for name in names.values() if name not in state)
    if missing:
        raise WeightsError(f"{file}: not torchvision's AlexNet (missing {missing[:3]})")
    net.net.load_state_dict({key: state[name] for key, name in names.items()})
    return LpipsDistance(net.requires_grad_(False).eval(), image_norm)


def segment_face_pairs(generator: Generator, split: PreparedSplit, data: DataConfig,
                       seed: int = 0) -> tuple[Tensor, Tensor]:
    """Faces generated from the first and from the second evaluation segment of every identity that has two."""
    segments = evaluation_segments(split, data, seed)
    device = next(generator.parameters()).device
    with generating(generator, seed):
        stacks = (segments[i]["segments"] for i in range(len(segments)))
        pairs = [generator(s[:2].to(device)).images[-1].float().cpu() for s in stacks if len(s) >= 2]
    if not pairs:
        raise ValueError("no identity of the split has two evaluation segments: LPIPS diversity needs pairs")
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
