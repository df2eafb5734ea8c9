"""Discriminators built from arch strings (recipe §2.5, and §7.3 for the original voice2face's).

An arch string lists conv layers, ``C{kernel}-{channels}-{stride}[-{padding}]``, comma-separated, e.g.
``"C4-64-2,C4-128-2,C4-256-2"``. :func:`build_cnn` turns it into layers with sg2im's rule, which SF2F inherits: every
conv **after the first** is preceded by the normalisation and the activation; nothing follows the last conv. Padding
comes from the fourth field, else from ``padding`` (``valid`` = 0, ``same`` = k // 2 for odd k).

* :class:`PatchDiscriminator`: the conv stack, then a 1x1 conv to one logit per patch (6x6 for 64 px SF2F).
* :class:`AcDiscriminator`: the auxiliary-classifier discriminator: the conv stack, global average pooling, a linear
  layer (1024, no activation after it), then a real/fake head and an identity head. It returns both logits; the
  training code takes the cross-entropy (the original computes it inside).
* :class:`Discriminators`: the lists matched by index to the generator's output scales (two for the 128 configs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor, nn

__all__ = [
    "AcDiscriminator",
    "AcOutput",
    "ConvSpec",
    "Discriminators",
    "PatchDiscriminator",
    "activation_layer",
    "build_cnn",
    "parse_arch",
]


@dataclass(frozen=True)
class ConvSpec:
    """One `C{kernel}-{channels}-{stride}[-{padding}]` layer; ``padding`` None means "from the padding option"."""

    kernel: int
    channels: int
    stride: int
    padding: int | None = None

    def __str__(self) -> str:
        pad = "" if self.padding is None else f"-{self.padding}"
        return f"C{self.kernel}-{self.channels}-{self.stride}{pad}"


def parse_arch(arch: str) -> list[ConvSpec]:
    """``"C4-64-2,C1-32-1-0"`` -> [ConvSpec(4, 64, 2), ConvSpec(1, 32, 1, 0)]; a malformed layer is a ValueError."""
    specs = []
    for layer in arch.split(","):
        parts = layer.strip().split("-")
        numbers = [parts[0][1:], *parts[1:]]
        if not (parts[0].startswith("C") and len(parts) in (3, 4) and all(p.isdigit() for p in numbers)):
            raise ValueError(f"bad layer '{layer}' in arch '{arch}': expected C<kernel>-<channels>-<stride>[-<padding>]")
        values = [int(p) for p in numbers]
        specs.append(ConvSpec(*values))
    if not specs:
        raise ValueError("an arch string needs at least one layer")
    return specs


def activation_layer(name: str) -> nn.Module:
    """``relu``, ``leakyrelu`` (torch's default slope 0.01) or ``leakyrelu-<slope>`` (sg2im's `get_activation`)."""
    if name == "relu":
        return nn.ReLU()
    if name == "leakyrelu":
        return nn.LeakyReLU()
    if name.startswith("leakyrelu-"):
        return nn.LeakyReLU(float(name.split("-", 1)[1]))
    raise ValueError(f"unknown activation '{name}': use relu, leakyrelu or leakyrelu-<slope>")


def build_cnn(
    specs: Sequence[ConvSpec],
    in_channels: int = 3,
    normalization: str = "batch",
    activation: str = "leakyrelu-0.1",
    padding: str = "valid",
) -> tuple[nn.Sequential, int]:
    """The conv stack of an arch (sg2im's `build_cnn`): norm + activation *before* every conv but the first.

    Returns the stack and its output channel count.
    """
    if normalization not in ("batch", "none"):
        raise ValueError(f"normalization must be 'batch' or 'none', got '{normalization}'")
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got '{padding}'")
    layers: list[nn.Module] = []
    width = in_channels
    for i, spec in enumerate(specs):
        if i > 0:
            if normalization == "batch":
                layers.append(nn.BatchNorm2d(width))
            layers.append(activation_layer(activation))
        pad = spec.padding
        if pad is None:
            if padding == "same" and spec.kernel % 2 == 0:
                raise ValueError(f"padding 'same' needs an odd kernel, got layer {spec}")
            pad = spec.kernel // 2 if padding == "same" else 0
        layers.append(nn.Conv2d(width, spec.channels, spec.kernel, stride=spec.stride, padding=pad))
        width = spec.channels
    return nn.Sequential(*layers), width


class PatchDiscriminator(nn.Module):
    """The image discriminator: the arch's conv stack, then a 1x1 conv to a map of real/fake logits (B, 1, h, w)."""

    def __init__(
        self,
        specs: Sequence[ConvSpec],
        normalization: str = "batch",
        activation: str = "leakyrelu-0.1",
        padding: str = "valid",
    ) -> None:
        super().__init__()
        self.cnn, width = build_cnn(specs, 3, normalization, activation, padding)
        self.classifier = nn.Conv2d(width, 1, 1)

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(self.cnn(images))


class AcOutput(NamedTuple):
    """What an :class:`AcDiscriminator` says about a batch of images."""

    real_logits: Tensor  # (B, 1) real/fake logit
    id_logits: Tensor  # (B, num_ids) identity logits (train identities)


class AcDiscriminator(nn.Module):
    """The auxiliary-classifier discriminator (§2.5): conv stack, global average pool, hidden linear, two heads.

    Args:
        specs: the conv stack (SF2F: the image discriminator's; v2f: ``C1-32-1-0,C4-64-2-1,...,C4-512-1-0``).
        num_ids: number of training identities (the id head adds 1,025 parameters per identity at width 1024).
        hidden: width of the linear layer after pooling (1024, no activation after it); ``None`` puts the heads
            directly on the pooled features, as the original voice2face's d and c (§7.3).
        head_bias: bias in the two heads (voice2face's d and c have none).
    """

    def __init__(
        self,
        specs: Sequence[ConvSpec],
        num_ids: int,
        hidden: int | None = 1024,
        normalization: str = "batch",
        activation: str = "leakyrelu-0.1",
        padding: str = "valid",
        head_bias: bool = True,
    ) -> None:
        super().__init__()
        if num_ids < 1:
            raise ValueError(f"the identity head needs at least one identity, got num_ids={num_ids}")
        self.cnn, width = build_cnn(specs, 3, normalization, activation, padding)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.hidden = nn.Linear(width, hidden) if hidden else nn.Identity()
        width = hidden or width
        self.real_classifier = nn.Linear(width, 1, bias=head_bias)
        self.id_classifier = nn.Linear(width, num_ids, bias=head_bias)

    def forward(self, images: Tensor) -> AcOutput:
        features = self.hidden(self.pool(self.cnn(images)).flatten(1))
        return AcOutput(self.real_classifier(features), self.id_classifier(features))


class Discriminators(nn.Module):
    """The image and AC discriminators of a config, each list matched by index to the generator's output scales.

    ``image`` is empty when the config disables the image discriminator (v2f: ``d_img_weight: -1``).
    """

    def __init__(self, image: Sequence[PatchDiscriminator], ac: Sequence[AcDiscriminator]) -> None:
        super().__init__()
        self.image = nn.ModuleList(image)
        self.ac = nn.ModuleList(ac)
