"""A faster, inference-only copy of a trained generator (:func:`optimize_for_inference`), the same function to float
rounding: BatchNorm folded into the conv or linear before it, the decoders on channels-last memory, and each up-block
(nearest x2, 3x3 conv) as four 2x2 convs on the small image, one per output phase (sub-pixel convolution, Shi et al.
2016): upsampling by repetition makes neighbouring taps read one pixel, so they are pre-summed (4 MACs, not 9)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from sf2f.models.face_decoders import FaceGanDecoder, UpBlock, V2FDecoder
from sf2f.models.generator import Generator
from sf2f.models.voice_encoders import ConvBlock1d


def _phase_kernels(weight: Tensor) -> list[Tensor]:
    """The four 2x2 kernels that make a 3x3 conv after nearest x2 upsampling, phases (0,0), (0,1), (1,0), (1,1). An even
    output row 2i reads upsampled rows 2i-1, 2i, 2i+1 = small rows i-1, i, i: taps (w0, w1 + w2) on rows (i-1, i). An
    odd row 2i+1 reads small rows i, i, i+1: taps (w0 + w1, w2) on rows (i, i+1). Columns alike."""

    def merge(w: Tensor, dim: int, phase: int) -> Tensor:
        a, b, c = w.unbind(dim)
        return torch.stack((a, b + c) if phase == 0 else (a + b, c), dim)

    return [merge(merge(weight, 2, row), 3, col) for row in (0, 1) for col in (0, 1)]


class SubPixelUpBlock(nn.Module):
    """An UpBlock (upsample, conv3x3, BatchNorm, GLU) computed as four phase convs on the small image (see module)."""

    def __init__(self, block: UpBlock) -> None:
        super().__init__()
        folded = fuse_conv_bn_eval(block[1], block[2])
        # phases stacked on the output channels; a slice of a channels-last tensor stays channels-last
        kernels = torch.cat(_phase_kernels(folded.weight)).contiguous(memory_format=torch.channels_last)
        self.register_buffer("kernels", kernels.detach())
        self.phase_channels = folded.out_channels
        self.register_buffer("bias", folded.bias.detach())

    def forward(self, x: Tensor) -> Tensor:
        batch, _, height, width = x.shape
        # channels-last memory (B, H, W, C) suits oneDNN's convs with few channels; the result is a channels-last view
        padded = F.pad(x, (1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)
        size = self.phase_channels
        out = x.new_empty(batch, height, 2, width, 2, size // 2)
        for index in range(4):
            row, col = divmod(index, 2)
            kernel = self.kernels[index * size : (index + 1) * size]
            phase = F.conv2d(padded, kernel, self.bias)[:, :, row : row + height, col : col + width]
            out[:, :, row, :, col] = F.glu(phase, dim=1).permute(0, 2, 3, 1)
        return out.view(batch, 2 * height, 2 * width, -1).permute(0, 3, 1, 2)


def _refuse_training(module: nn.Module, inputs: object) -> None:
    """A forward pre-hook: folded BatchNorm has no batch statistics left to train with."""
    if module.training:
        raise RuntimeError("an optimize_for_inference() copy cannot train: train the original, then optimise it again")


@torch.no_grad()
def optimize_for_inference(generator: Generator) -> Generator:
    """An eval-only copy of ``generator``: BatchNorm folded, up-blocks sub-pixel, decoder convs channels-last."""
    fast = copy.deepcopy(generator).eval()
    for module in fast.encoder.blocks.modules():
        if isinstance(module, ConvBlock1d):  # the plain blocks and the Inception blocks' branches
            module[0], module[1] = fuse_conv_bn_eval(module[0], module[1]), nn.Identity()
    decoder = fast.decoder
    heads: list[nn.Sequential] = []
    if isinstance(decoder, FaceGanDecoder):
        decoder.fc[0], decoder.fc[1] = fuse_linear_bn_eval(decoder.fc[0], decoder.fc[1]), nn.Identity()
        decoder.up_blocks = nn.Sequential(*(SubPixelUpBlock(b) for b in decoder.up_blocks))
        if decoder.up_mid is not None:
            decoder.up_mid = SubPixelUpBlock(decoder.up_mid)
        # the up-blocks hand over channels-last features; the RGB heads' small convs run fastest on them too
        heads = [h for h in (decoder.to_rgb, decoder.to_rgb_mid) if h is not None]
    elif isinstance(decoder, V2FDecoder):
        heads = [decoder.layers]  # the transposed convs run faster on channels-last memory as well
    for head in heads:
        head.to(memory_format=torch.channels_last)
    # hand the images back in the usual (contiguous NCHW) memory layout
    decoder.register_forward_hook(lambda module, inputs, images: tuple(x.contiguous() for x in images))
    fast.requires_grad_(False)
    fast.register_forward_pre_hook(_refuse_training)
    return fast.eval()
