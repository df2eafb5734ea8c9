"""Face decoders, a voice embedding (B, D) to one image batch per output scale, smallest first, in the losses'
normalised space (no output activation; recipe §2.3, §1.5): voice2face's transposed convs (:class:`V2FDecoder`, §7.3)
and SF2F's up-blocks of nearest x2 upsampling, conv, BatchNorm, GLU (:class:`FaceGanDecoder`; notebook 03 says why)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class UpBlock(nn.Sequential):
    """Nearest x2 upsampling, Conv2d(in -> 2 out, k3, no bias), BatchNorm2d, GLU to ``out`` channels (§2.3)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(in_channels, 2 * out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(2 * out_channels), nn.GLU(dim=1))


def rgb_head(channels: int, leaky_slope: float) -> nn.Sequential:
    """The `gnet` head: Conv2d(k3, bias), LeakyReLU, Conv2d(k1) to 3 channels, no output activation (§2.3)."""
    layers = nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(leaky_slope), nn.Conv2d(channels, 3, 1)
    return nn.Sequential(*layers)


class FaceGanDecoder(nn.Module):
    """SF2F's decoder: a linear layer to 4x4, up-blocks, an RGB head (`FaceGanDecoder`). `channels`: the width at 4x4,
    then after each up-block; `leaky_slope`: the RGB heads' (the YAML's activation keys are ignored, §2.3);
    `mid_channels`: an extra up-block to twice the resolution with its own head (`FaceGanDecoder_v2`, 64 + 128 px)."""

    def __init__(self, embed_dim: int = 512, channels: Sequence[int] = (512, 256, 128, 64, 32),
                 leaky_slope: float = 0.01, mid_channels: int | None = None) -> None:
        super().__init__()
        self.base_channels = channels[0]
        # Linear(D -> 2 * C * 16) + BatchNorm1d + GLU gives C x 4 x 4
        self.fc = nn.Sequential(nn.Linear(embed_dim, 32 * channels[0], bias=False), nn.BatchNorm1d(32 * channels[0]),
                                nn.GLU(dim=1))
        self.up_blocks = nn.Sequential(*(UpBlock(a, b) for a, b in zip(channels[:-1], channels[1:])))
        self.to_rgb = rgb_head(channels[-1], leaky_slope)
        self.up_mid = UpBlock(channels[-1], mid_channels) if mid_channels else None
        self.to_rgb_mid = rgb_head(mid_channels, leaky_slope) if mid_channels else None

    @property
    def image_sizes(self) -> tuple[int, ...]:
        low = 4 * 2 ** len(self.up_blocks)
        return (low, 2 * low) if self.up_mid is not None else (low,)

    def forward(self, emb: Tensor) -> tuple[Tensor, ...]:
        features = self.up_blocks(self.fc(emb.flatten(1)).view(emb.shape[0], self.base_channels, 4, 4))
        low = self.to_rgb(features)
        return (low,) if self.up_mid is None else (low, self.to_rgb_mid(self.up_mid(features)))


class V2FDecoder(nn.Module):
    """The voice2face generator: ConvTranspose2d from 1x1 to 4x4 (k4), then stride-2 k4 ones, ReLU after each, and a
    final ConvTranspose2d(k1) to RGB (§2.3). Paper widths: 1024, 512, 256, 128, 64 (19,531,907 parameters)."""

    def __init__(self, embed_dim: int = 512, channels: Sequence[int] = (1024, 512, 256, 128, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ConvTranspose2d(embed_dim, channels[0], 4, stride=1, padding=0), nn.ReLU(True)]
        for a, b in zip(channels[:-1], channels[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU(True)]
        layers.append(nn.ConvTranspose2d(channels[-1], 3, 1))
        self.layers = nn.Sequential(*layers)
        self.image_sizes = (4 * 2 ** (len(channels) - 1),)

    def forward(self, emb: Tensor) -> tuple[Tensor, ...]:
        return (self.layers(emb.reshape(emb.shape[0], -1, 1, 1)),)
