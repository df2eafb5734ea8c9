"""A faster, inference-only copy of a trained generator: the same function, fewer operations.

:func:`optimize_for_inference` returns a copy of a :class:`~sf2f.models.generator.Generator` in which

* every BatchNorm that follows a conv or linear layer is folded into that layer's weights and bias (eval-mode
  BatchNorm is an affine map per channel). The 1D-Inception blocks keep their four branches: merging them into one
  kernel-7 conv (the shorter kernels zero-padded into the window) is exact as well, but costs 28/17 of the
  multiply-adds, and on a 2-core CPU it won only at batch 1 and lost about 30% at batches 20 and 64;
* the decoders' convolutions run on channels-last memory (B, H, W, C), which oneDNN handles faster for few channels;
* each decoder up-block (nearest x2 upsampling, then a 3x3 conv) becomes four 2x2 convs on the *small* image, one per
  output phase (even/odd row x even/odd column), interleaved afterwards. Upsampling by repetition makes neighbouring
  taps of the 3x3 kernel read the same pixel, so they can be summed beforehand: 4 instead of 9 multiply-adds per
  output pixel and input channel, and no upsampled tensor in memory ("sub-pixel" convolution, Shi et al. 2016).

Outputs agree with the original formulation to float rounding (the tests check 1e-4 relative); the encoder head
(normalisation, the baseline's noise switch), the fuser and the output type are untouched. The copy is for inference
only: its fused layers refuse to run in training mode.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sf2f.models.face_decoders import FaceGanDecoder, UpBlock, V2FDecoder
from sf2f.models.generator import Generator
from sf2f.models.voice_encoders import ConvBlock1d, InceptionBlock1d, conv_output_length

__all__ = ["FoldedConvBlock1d", "SubPixelUpBlock", "optimize_for_inference"]


def _bn_scale_shift(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as y = scale * x + shift per channel."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class _InferenceOnly(nn.Module):
    def _refuse_training(self) -> None:
        if self.training:
            raise RuntimeError(
                f"{type(self).__name__} is part of an optimize_for_inference() copy and cannot train; "
                "train the original generator and optimise it again"
            )


class FoldedConvBlock1d(_InferenceOnly):
    """A ConvBlock1d (Conv1d, BatchNorm1d, ReLU) as one Conv1d with BatchNorm folded into it, then ReLU."""

    def __init__(self, block: ConvBlock1d) -> None:
        super().__init__()
        conv, bn = block[0], block[1]
        scale, shift = _bn_scale_shift(bn)
        self.register_buffer("weight", (conv.weight * scale[:, None, None]).detach())
        self.register_buffer("bias", shift.detach())
        self.kernel, self.stride, self.padding = block.kernel, conv.stride[0], conv.padding[0]

    def output_length(self, length: int) -> int:
        return conv_output_length(length, self.kernel, self.stride, self.padding)

    def forward(self, x: Tensor) -> Tensor:
        self._refuse_training()
        return F.relu(F.conv1d(x, self.weight, self.bias, stride=self.stride, padding=self.padding))


def _fold_encoder_block(block: nn.Module) -> nn.Module:
    if isinstance(block, InceptionBlock1d):
        block.branches = nn.ModuleList(FoldedConvBlock1d(b) for b in block.branches)
        return block
    return FoldedConvBlock1d(block)


def _phase_kernels(weight: Tensor) -> list[Tensor]:
    """The four 2x2 kernels that make a 3x3 conv after nearest x2 upsampling, phases (0,0), (0,1), (1,0), (1,1).

    An even output row 2i reads upsampled rows 2i-1, 2i, 2i+1 = small rows i-1, i, i: taps (w0, w1 + w2) on rows
    (i-1, i). An odd row 2i+1 reads small rows i, i, i+1: taps (w0 + w1, w2) on rows (i, i+1). Columns alike.
    """

    def merge(w: Tensor, dim: int, phase: int) -> Tensor:
        a, b, c = w.unbind(dim)
        return torch.stack((a, b + c) if phase == 0 else (a + b, c), dim)

    return [merge(merge(weight, 2, row), 3, col) for row in (0, 1) for col in (0, 1)]


class SubPixelUpBlock(_InferenceOnly):
    """An UpBlock (upsample, conv3x3, BatchNorm, GLU) computed as four phase convs on the small image (see module)."""

    def __init__(self, block: UpBlock) -> None:
        super().__init__()
        conv, bn = block[1], block[2]
        scale, shift = _bn_scale_shift(bn)
        folded = conv.weight * scale[:, None, None, None]
        # phases stacked on the output channels; a slice of a channels-last tensor stays channels-last
        kernels = torch.cat(_phase_kernels(folded)).contiguous(memory_format=torch.channels_last)
        self.register_buffer("kernels", kernels.detach())
        self.phase_channels = folded.shape[0]
        self.register_buffer("bias", shift.detach())

    def forward(self, x: Tensor) -> Tensor:
        self._refuse_training()
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


class _FoldedLinear(_InferenceOnly):
    """Linear (no bias) + BatchNorm1d folded into one Linear with bias."""

    def __init__(self, linear: nn.Linear, bn: nn.BatchNorm1d) -> None:
        super().__init__()
        scale, shift = _bn_scale_shift(bn)
        self.register_buffer("weight", (linear.weight * scale[:, None]).detach())
        self.register_buffer("bias", shift.detach())

    def forward(self, x: Tensor) -> Tensor:
        self._refuse_training()
        return F.linear(x, self.weight, self.bias)


class _Contiguous(nn.Module):
    """Hands the images back in the usual (contiguous NCHW) memory layout."""

    def forward(self, x: Tensor) -> Tensor:
        return x.contiguous()


@torch.no_grad()
def optimize_for_inference(generator: Generator) -> Generator:
    """An eval-only copy of ``generator``: BatchNorm folded, up-blocks sub-pixel, decoder convs channels-last."""
    fast = copy.deepcopy(generator).eval()
    encoder = fast.encoder
    encoder.blocks = nn.Sequential(*(_fold_encoder_block(b) for b in encoder.blocks))
    decoder = fast.decoder
    heads: list[nn.Sequential] = []
    if isinstance(decoder, FaceGanDecoder):
        linear, bn, glu = decoder.fc
        decoder.fc = nn.Sequential(_FoldedLinear(linear, bn), glu)
        decoder.up_blocks = nn.Sequential(*(SubPixelUpBlock(b) for b in decoder.up_blocks))
        if decoder.up_mid is not None:
            decoder.up_mid = SubPixelUpBlock(decoder.up_mid)
        # the up-blocks hand over channels-last features; the RGB heads' small convs run fastest on them too
        heads = [h for h in (decoder.to_rgb, decoder.to_rgb_mid) if h is not None]
    elif isinstance(decoder, V2FDecoder):
        heads = [decoder.layers]  # the transposed convs run faster on channels-last memory as well
    for head in heads:
        head.to(memory_format=torch.channels_last).append(_Contiguous())
    fast.requires_grad_(False)
    return fast.eval()
