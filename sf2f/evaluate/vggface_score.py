"""The VGGFace Score (VFS, recipe §4.1): the Inception-Score formula, seeded (§6 item 16), with the VGGFace2 ResNet-50
`resnet50_ft` from the user's Python-2 weight pickle, read through an allow-list of globals ("Restricting Globals" in
the pickle documentation: a plain `pickle.load` runs whatever a file names); the original feeds RGB to the BGR Caffe
model (§5). On synthetic faces an identity classifier stands in for VGGFace: the ID-classifier score."""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import Tensor, nn

from sf2f.data.prepared import PreparedSplit
from sf2f.errors import SF2FError
from sf2f.evaluate.embeddings import PixelNetwork, real_faces
from sf2f.faces import VGG_BOX
from sf2f.models.face_embedders import FaceEmbedder, embed_faces
from sf2f.weights import WeightsError, locate

VGGFACE_CLASSES = 8631
# the Caffe model's mean pixel, per colour (recipe §4.1); its own order is BGR (91.4953, 103.8827, 131.0912)
VGGFACE_MEAN_RGB: tuple[float, float, float] = (131.0912, 103.8827, 91.4953)


class SplitScore(NamedTuple):
    """Mean and standard deviation of the score over the splits."""

    mean: float
    std: float


def inception_score(probs: np.ndarray, splits: int = 5, seed: int = 0) -> SplitScore:
    """`probs` (n, classes) shuffled by `seed` and cut into `splits` parts, each scoring exp(mean KL(p(y|x) || p(y))),
    from 1 (one answer for all) to the part's size; a probability of 0 adds 0 (the original's 0 log 0 gave NaN)."""
    probs = np.asarray(probs, dtype=np.float64)
    n = probs.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"cannot cut {n} images into {splits} splits (need at least one image per split)")
    probs = probs[np.random.default_rng(seed).permutation(n)]
    scores = []
    for i in range(splits):
        part = probs[i * n // splits : (i + 1) * n // splits]
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True))), 0.0)
        scores.append(float(np.exp(terms.sum(axis=1).mean())))
    return SplitScore(float(np.mean(scores)), float(np.std(scores)))


@dataclass
class IdentityClassifier:
    """p(training identity | image) from a logistic regression on face-embedder features: the "ID-classifier score",
    never called VFS, comparable between models on the same data only."""

    embedder: FaceEmbedder
    model: LogisticRegression
    image_norm: str = "imagenet"
    box: tuple[float, ...] = VGG_BOX
    batch_size: int = 64
    label = "ID-classifier score"

    @classmethod
    def fit(cls, embedder: FaceEmbedder, train_split: PreparedSplit, image_norm: str = "imagenet",
            box: tuple[float, ...] = VGG_BOX, batch_size: int = 64) -> IdentityClassifier:
        """Fit on every real face of the training split, labelled by identity (deterministic: lbfgs, no sampling)."""
        faces = real_faces(embedder, train_split, image_norm, box, batch_size)
        model = LogisticRegression(max_iter=2000).fit(faces.embeddings.double().numpy(), faces.labels.numpy())
        return cls(embedder, model, image_norm, tuple(box), batch_size)

    def probabilities(self, images: Tensor) -> np.ndarray:
        """(n, training identities) for generator-space images (n, 3, H, W)."""
        features = embed_faces(self.embedder, images, self.image_norm, self.box, self.batch_size)
        return self.model.predict_proba(features.double().numpy())


def vggface_resnet50(num_classes: int = VGGFACE_CLASSES) -> nn.Module:
    """torchvision's ResNet-50 (the weight pickle's parameter names) with the Caffe model's habits (§4.1): the stride
    of a down-sampling bottleneck on its first 1x1 conv, not the 3x3; a max-pool that rounds up; AvgPool2d(7)."""
    from torchvision.models.resnet import Bottleneck, ResNet  # seconds to import: only when the VFS is computed

    net = ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes)
    net.maxpool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    net.avgpool = nn.AvgPool2d(7, stride=1)
    for stage in (net.layer2, net.layer3, net.layer4):
        stage[0].conv1.stride, stage[0].conv2.stride = stage[0].conv2.stride, (1, 1)
    return net


class UnsafePickleError(SF2FError, pickle.UnpicklingError):
    """The file names a global outside the numpy-and-containers allow-list, or is not a mapping of arrays."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What `_codecs.encode` does in a protocol-2 pickle of bytes, limited to latin-1 (the only use numpy makes)."""
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"_codecs.encode is admitted only as encode(str, 'latin1'), got encoding {encoding!r}")
    return text.encode("latin1")


# (module, name) as a pickle writes them: numpy 1 pickles say numpy.core.*, numpy 2 pickles numpy._core.*
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(f"{self.source}: refuses to load '{module}.{name}': only numpy arrays and plain "
                                    "containers are admitted in a weight pickle (this file may carry code; it was not "
                                    "run)")
        return super().find_class(module, name)


def load_numpy_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """A pickled mapping of names to numeric numpy arrays, read through the allow-list above (latin-1 strings)."""
    path = Path(path)
    with path.open("rb") as handle:
        try:
            data = _NumpyOnlyUnpickler(handle, str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, ImportError, AttributeError) as exc:
            raise UnsafePickleError(f"{path}: not a readable pickle of numpy arrays ({exc})") from None
    if not isinstance(data, dict):
        raise UnsafePickleError(f"{path}: holds a {type(data).__name__}, expected a mapping of names to arrays")
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
            what = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise UnsafePickleError(f"{path}: {key!r} holds {what}, expected a numeric numpy array named by a string")
    return dict(data)


def _checked_state(arrays: dict[str, np.ndarray], model: nn.Module, source: Path) -> dict[str, Tensor]:
    """The pickle's arrays as the model's whole state dict, after checking that every name and shape is the model's."""
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
    # num_batches_tracked never was in the Caffe conversion (and eval-mode BatchNorm does not read it): zero
    return {k: torch.from_numpy(np.ascontiguousarray(arrays[k])).to(v.dtype) if k in expected
            else torch.zeros_like(v, device="cpu") for k, v in model.state_dict().items()}


def load_vggface_resnet50(path: str | Path | None = None) -> nn.Module:
    """The ResNet-50 in eval mode with the user's `resnet50_ft_weight.pkl` (default: `$TORCH_HOME/checkpoints/`)."""
    file = locate("vggface2_resnet50_ft", path)
    arrays = load_numpy_pickle(file)
    fc = arrays.get("fc.weight")
    # on the meta device: every tensor comes from the file, so initialising 41M weights first would be wasted work
    with torch.device("meta"):
        model = vggface_resnet50(fc.shape[0] if fc is not None and fc.ndim == 2 else VGGFACE_CLASSES)
    state = _checked_state(arrays, model, file)
    model.to_empty(device="cpu").load_state_dict(state)
    return model.requires_grad_(False).eval()


def vggface_input(pixels: Tensor, channel_order: str = "rgb", size: int = 224) -> Tensor:
    """[0, 255] RGB images (B, 3, H, W), the full frame, to the network's input (B, 3, size, size), §4.1; `rgb` order
    (`eval.vfs_channel_order`) reproduces the original's numbers."""
    x = pixels.to(torch.float32) - torch.tensor(VGGFACE_MEAN_RGB, device=pixels.device).view(1, 3, 1, 1)
    if channel_order == "bgr":
        x = x.flip(1)
    # nn.UpsamplingBilinear2d in the original: bilinear with align_corners=True
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)


@dataclass
class VGGFaceClassifier(PixelNetwork):
    """Class probabilities of the 8631 VGGFace2 identities for generated images (the VFS's classifier)."""

    channel_order: str = "rgb"
    input_size: int = 224
    label = "VFS"

    def probabilities(self, images: Tensor) -> np.ndarray:
        """Softmax (n, classes) for generator-space images (n, 3, H, W)."""
        logits = self.run(lambda x: vggface_input(x, self.channel_order, self.input_size), images)
        return logits.softmax(dim=1).numpy().astype(np.float64)
