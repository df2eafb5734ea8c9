"""Face embedders for the perceptual loss (recipe §3.1) and the retrieval metrics (§4.2), a face crop to hidden states
and a 512-d L2-normalised identity embedding: SF2F's FaceNet with VGGFace2 weights (§2.7), or a small CNN trained on the
training identities' faces for data FaceNet has never seen (the synthetic default)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sf2f.faces import VGG_BOX, crop_vgg_box, facenet_pytorch, to_pixel_range
from sf2f.weights import REGISTRY, WeightFile, locate


def embedder_input(images: Tensor, size: int, norm: Literal["imagenet", "standard"] = "imagenet",
                   box: tuple[float, ...] = VGG_BOX) -> Tensor:
    """Generator-space images (B, 3, H, W) to a face embedder's input, differentiably (§3.1 steps 1-3, §4.2): [0, 255]
    pixels, facenet-pytorch's (x - 127.5) / 128, the VGG-box crop, then a bilinear resize (align_corners=True) to
    `size`, which stretches the non-square box as the original does (§6 item 21)."""
    x = crop_vgg_box((to_pixel_range(images, norm) - 127.5) / 128.0, box)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Eval mode for the duration, then each module's own train/eval flag back (evaluation during training)."""
    flags = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, flag in zip(modules, flags):
            m.train(flag)


class FaceEmbedder(nn.Module):
    """The interface: `hidden_states(x)` -> [h1, h2, h3, embedding]; `forward(x)` -> the (B, 512) embedding."""

    input_size: int
    embed_dim: int = 512

    def hidden_states(self, x: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.hidden_states(x)[-1]

    def freeze(self) -> FaceEmbedder:
        """Eval mode and no gradients for its weights (the original left FaceNet trainable and threw the grads away,
        recipe §3.1; freezing changes no result and saves the work)."""
        return self.eval().requires_grad_(False)


@torch.no_grad()
def embed_faces(embedder: FaceEmbedder, images: Tensor, norm: str = "imagenet", box: tuple[float, ...] = VGG_BOX,
                batch_size: int = 256) -> Tensor:
    """F(.) of generator-space faces (n, 3, H, W), in batches on the embedder's device: (n, D) float32 on the CPU."""
    device = next(embedder.parameters()).device
    out = []
    with eval_mode(embedder):
        for chunk in images.split(batch_size):
            x = embedder_input(chunk.to(device, torch.float32), embedder.input_size, norm, tuple(box))
            out.append(embedder(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, embedder.embed_dim)


class FaceNetEmbedder(FaceEmbedder):
    """InceptionResnetV1 (facenet-pytorch) with SF2F's hidden states: repeat_1, repeat_2, repeat_3, embedding."""

    # SF2F's FaceNet copy resizes every input to 140x140 (§2.7); FaceNet itself was trained on 160x160 crops
    input_size = 140

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @classmethod
    def from_vggface2(cls, path: str | Path | None = None,
                      entry: WeightFile = REGISTRY["facenet_vggface2"]) -> FaceNetEmbedder:
        """Load the VGGFace2 weights from `path` (default: facenet-pytorch's cache), verified by size and SHA-256."""
        net = facenet_pytorch("the FaceNet face embedder").InceptionResnetV1(pretrained=None, classify=False)
        state = torch.load(locate(entry, path), map_location="cpu", weights_only=True)
        # the 8631-way identity classifier is not part of the embedding
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
        return cls(net).freeze()

    def hidden_states(self, x: Tensor) -> list[Tensor]:
        states = []
        for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b",
                     "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8"):
            x = getattr(self.net, name)(x)
            if name.startswith("repeat_"):
                states.append(x)
        x = self.net.dropout(self.net.avgpool_1a(x))
        x = self.net.last_bn(self.net.last_linear(x.flatten(1)))
        states.append(F.normalize(x, p=2, dim=1))
        return states


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallFaceEmbedder(FaceEmbedder):
    """A compact CNN face embedder: four stride-2 stages, the last three give the hidden states, then 512-d."""

    def __init__(self, input_size: int = 64, width: int = 32, embed_dim: int = 512) -> None:
        super().__init__()
        self.input_size, self.embed_dim = input_size, embed_dim
        self.stem = _conv_block(3, width)
        self.stages = nn.ModuleList([_conv_block(width * 2**i, width * 2 ** (i + 1)) for i in range(3)])
        self.head = nn.Sequential(nn.Linear(width * 8, embed_dim, bias=False), nn.BatchNorm1d(embed_dim))

    def hidden_states(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        states = []
        for stage in self.stages:
            x = stage(x)
            states.append(x)
        states.append(F.normalize(self.head(x.mean(dim=(2, 3))), p=2, dim=1))
        return states
