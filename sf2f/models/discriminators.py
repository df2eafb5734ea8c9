"""Discriminators built from arch strings, ``C{kernel}-{channels}-{stride}[-{padding}]`` per conv layer (recipe §2.5,
§7.3 for voice2face's). :func:`build_cnn` follows sg2im's rule, which SF2F inherits: every conv **after the first** is
preceded by the normalisation and the activation; nothing follows the last conv."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from torch import Tensor, nn

from sf2f.config.schema import ConvSpec


def build_cnn(specs: Sequence[ConvSpec], in_channels: int = 3, normalization: str = "batch",
              activation: str = "leakyrelu-0.1", padding: str = "valid") -> tuple[nn.Sequential, int]:
    """The conv stack of an arch and its output channel count (sg2im's `build_cnn`). A layer without its own padding
    gets 0 (`valid`) or k // 2 (`same`, odd kernels only)."""
    layers: list[nn.Module] = []
    width = in_channels
    for i, spec in enumerate(specs):
        if i > 0:
            layers += [nn.BatchNorm2d(width)] if normalization == "batch" else []
            # sg2im's `get_activation`: relu, leakyrelu (torch's default slope 0.01) or leakyrelu-<slope>
            slope = float(activation.split("-", 1)[1]) if "-" in activation else 0.01
            layers.append(nn.ReLU() if activation == "relu" else nn.LeakyReLU(slope))
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

    def __init__(self, specs: Sequence[ConvSpec], **style: str) -> None:
        super().__init__()
        self.cnn, width = build_cnn(specs, 3, **style)
        self.classifier = nn.Conv2d(width, 1, 1)

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(self.cnn(images))


class AcOutput(NamedTuple):
    real_logits: Tensor  # (B, 1) real/fake logit
    id_logits: Tensor  # (B, num_ids) identity logits (train identities)


class AcDiscriminator(nn.Module):
    """The auxiliary-classifier discriminator (§2.5): conv stack, global average pool, a linear layer of width `hidden`
    (no activation after it), then a real/fake head and an identity head over the `num_ids` training identities; the
    training code takes the cross-entropy (the original computes it inside)."""

    def __init__(self, specs: Sequence[ConvSpec], num_ids: int, hidden: int = 1024, **style: str) -> None:
        super().__init__()
        if num_ids < 1:
            raise ValueError(f"the identity head needs at least one identity, got num_ids={num_ids}")
        self.cnn, width = build_cnn(specs, 3, **style)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.hidden = nn.Linear(width, hidden)
        self.real_classifier = nn.Linear(hidden, 1)
        self.id_classifier = nn.Linear(hidden, num_ids)

    def forward(self, images: Tensor) -> AcOutput:
        features = self.hidden(self.pool(self.cnn(images)).flatten(1))
        return AcOutput(self.real_classifier(features), self.id_classifier(features))


class Discriminators(nn.Module):
    """The image and AC discriminators of a config, each list matched by index to the generator's output scales;
    ``image`` is empty when the config disables the image discriminator (v2f: ``d_img_weight: -1``)."""

    def __init__(self, image: Sequence[PatchDiscriminator], ac: Sequence[AcDiscriminator]) -> None:
        super().__init__()
        self.image = nn.ModuleList(image)
        self.ac = nn.ModuleList(ac)
