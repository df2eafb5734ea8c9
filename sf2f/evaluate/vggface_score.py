"""The VGGFace Score (VFS, recipe §4.1): an Inception Score computed with a face-identity classifier.

The classifier is the VGGFace2 ResNet-50 `resnet50_ft` (cydonia999's conversion of the Caffe model: trained on
MS-Celeb-1M, fine-tuned on VGGFace2, 8631 identities). It differs from torchvision's ResNet-50 in two Caffe habits:
the stride of a down-sampling bottleneck sits on its **first 1x1 conv** (the 3x3 has stride 1), and the stem's max-pool
rounds up (`ceil_mode=True`). The head is AvgPool2d(7, stride 1) and fc 2048 -> 8631.

The weights are the user's `resnet50_ft_weight.pkl`, a Python-2 pickle of numpy arrays named like the state dict. It
is read through :func:`sf2f.evaluate.safe_pickle.load_numpy_pickle`, which admits only numpy arrays and plain
containers, never through a plain `pickle.load`. Its size and SHA-256 are not known here, so the registry entry
(`sf2f.weights.REGISTRY["vggface2_resnet50_ft"]`) carries neither: :func:`load_vggface_resnet50` checks every key and
shape instead (an unexpected key is an error, as in the original; so is a missing or mis-shaped one).

Input (§4.1): uint8 RGB images, the de-normalised generator output, full frame (not cropped). The per-channel means
[131.0912, 103.8827, 91.4953] (R, G, B) are subtracted, the image is upsampled bilinearly with align_corners=True to
224x224, and the softmax over 8631 classes goes into the Inception-Score formula (5 splits, seeded shuffle).

`channel_order` (config `eval.vfs_channel_order`): the Caffe model expects BGR. The original subtracts the right mean
from each colour but feeds the channels in RGB order; `rgb` reproduces that (and its numbers, §5), `bgr` flips the
channels as the model expects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sf2f.config import EvalConfig
from sf2f.evaluate.embeddings import device_of, eval_mode
from sf2f.evaluate.safe_pickle import load_numpy_pickle
from sf2f.faces import denormalize_images
from sf2f.weights import REGISTRY, WeightFile, WeightsError, locate

__all__ = [
    "VGGFACE_CLASSES",
    "VGGFACE_MEAN_RGB",
    "VGGFaceClassifier",
    "VGGFaceResNet50",
    "load_vggface_resnet50",
    "vggface_input",
]

VGGFACE_CLASSES = 8631
# the Caffe model's mean pixel, per colour (recipe §4.1); its own order is BGR (91.4953, 103.8827, 131.0912)
VGGFACE_MEAN_RGB: tuple[float, float, float] = (131.0912, 103.8827, 91.4953)


class CaffeBottleneck(nn.Module):
    """1x1 (stride here, the Caffe way) -> 3x3 -> 1x1 x4, BatchNorm after each, ReLU, identity or projected shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + shortcut)


class VGGFaceResNet50(nn.Module):
    """ResNet-50 `resnet50_ft` (§4.1): stem conv 7x7/2, max-pool 3/2 ceil-mode, bottlenecks [3, 4, 6, 3], AvgPool 7,
    fc 2048 -> classes. Its parameter names are those of the weight pickle (torchvision's naming)."""

    def __init__(self, num_classes: int = VGGFACE_CLASSES, layers: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True)
        channels = 64
        for i, blocks in enumerate(layers):
            width = 64 * 2**i
            stride = 1 if i == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(CaffeBottleneck(channels, width, stride if b == 0 else 1))
                channels = width * CaffeBottleneck.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AvgPool2d(7, stride=1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Mean-subtracted 224x224 images (B, 3, 224, 224) -> class logits (B, classes)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _checked_state(arrays: dict[str, np.ndarray], model: nn.Module, source: Path) -> dict[str, Tensor]:
    """The pickle's arrays as a state dict, after checking that every name and shape is the model's."""
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    unexpected = sorted(set(arrays) - set(model.state_dict()))
    if unexpected:
        raise WeightsError(f"{source}: unexpected key(s) {unexpected[:5]} (not a resnet50_ft weight file?)")
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise WeightsError(f"{source}: missing {len(missing)} key(s) {missing[:5]} (a truncated or other file?)")
    for key, value in expected.items():
        if tuple(arrays[key].shape) != tuple(value.shape):
            raise WeightsError(f"{source}: '{key}' has shape {arrays[key].shape}, expected {tuple(value.shape)}")
    return {k: torch.from_numpy(np.ascontiguousarray(arrays[k])).to(expected[k].dtype) for k in expected}


def load_vggface_resnet50(
    path: str | Path | None = None, entry: WeightFile = REGISTRY["vggface2_resnet50_ft"]
) -> VGGFaceResNet50:
    """The ResNet-50 with the user's `resnet50_ft_weight.pkl` (default place: `$TORCH_HOME/checkpoints/`), in eval mode.

    Raises :class:`WeightsError` with the download link when the file is missing, and when its keys or shapes are not
    those of `resnet50_ft`; :class:`~sf2f.evaluate.safe_pickle.UnsafePickleError` when the pickle names anything
    but numpy arrays and plain containers (nothing in it is run).
    """
    file = locate(entry, path)
    arrays = load_numpy_pickle(file)
    fc = arrays.get("fc.weight")
    # built on the meta device and then given empty storage: every tensor comes from the file, so initialising 41M
    # weights first would be wasted work
    with torch.device("meta"):
        model = VGGFaceResNet50(num_classes=fc.shape[0] if fc is not None and fc.ndim == 2 else VGGFACE_CLASSES)
    state = _checked_state(arrays, model, file)
    model = model.to_empty(device="cpu")
    model.load_state_dict(state, strict=False)
    # num_batches_tracked never was in the Caffe conversion (and eval-mode BatchNorm does not read it)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.num_batches_tracked.zero_()
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval()


def vggface_input(
    pixels: Tensor, channel_order: Literal["rgb", "bgr"] = "rgb", size: int = 224
) -> Tensor:
    """uint8 (or [0, 255] float) RGB images (B, 3, H, W) to the network's input (B, 3, size, size) (§4.1)."""
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' (the original's) or 'bgr' (the model's), got {channel_order!r}")
    x = pixels.to(torch.float32) - torch.tensor(VGGFACE_MEAN_RGB, device=pixels.device).view(1, 3, 1, 1)
    if channel_order == "bgr":
        x = x.flip(1)
    # nn.UpsamplingBilinear2d in the original: bilinear with align_corners=True
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)


class VGGFaceClassifier:
    """Class probabilities of the 8631 VGGFace2 identities for generated images (the VFS's classifier)."""

    label = "VFS"

    def __init__(
        self,
        net: VGGFaceResNet50,
        channel_order: Literal["rgb", "bgr"] = "rgb",
        input_size: int = 224,
        image_norm: Literal["imagenet", "standard"] = "imagenet",
        batch_size: int = 32,
    ) -> None:
        self.net = net
        self.channel_order = channel_order
        self.input_size = input_size
        self.image_norm = image_norm
        self.batch_size = batch_size

    @classmethod
    def from_config(
        cls, eval_cfg: EvalConfig, image_norm: str = "imagenet", path: str | Path | None = None
    ) -> VGGFaceClassifier:
        """Load the weights and take channel order and input size from an `EvalConfig`."""
        return cls(load_vggface_resnet50(path), eval_cfg.vfs_channel_order, eval_cfg.vfs_input_size, image_norm)

    @torch.no_grad()
    def probabilities(self, images: Tensor) -> np.ndarray:
        """Softmax (n, classes) for generator-space images (n, 3, H, W), de-normalised to bytes as the original does."""
        device = device_of(self.net)
        out = []
        with eval_mode(self.net):
            for chunk in images.split(self.batch_size):
                pixels = denormalize_images(chunk.to(device), self.image_norm)
                logits = self.net(vggface_input(pixels, self.channel_order, self.input_size))
                out.append(logits.float().softmax(dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float64)
