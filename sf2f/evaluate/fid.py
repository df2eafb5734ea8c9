"""Fréchet distance between real and generated faces' features (recipe §4.4), in the face embedder's space and in
pytorch-fid's Inception (pool_3, 2048-d). A few hundred faces leave the covariances rank-deficient, as in the
original: compare FIDs on the same split only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from sf2f.evaluate.embeddings import PixelNetwork
from sf2f.weights import REGISTRY, WeightFile, WeightsError, locate, torch_load


def fid_from_features(real: Tensor | np.ndarray, generated: Tensor | np.ndarray) -> float:
    """FID = |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) between two sets of feature rows (n, d). The trace
    is that of the symmetric S_r^(1/2) S_g S_r^(1/2), real where the original's `sqrtm` leaves imaginary noise; with
    fewer generated rows n than dimensions, S_g = A^T A (A: the centred rows / sqrt(n - 1)) and the n x n A S_r A^T
    has the same non-zero eigenvalues: exact, with no d x d decomposition."""
    real, generated = np.asarray(real, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    if real.ndim != 2 or real.shape[1:] != generated.shape[1:] or min(len(real), len(generated)) < 2:
        raise ValueError(f"FID needs at least two feature rows (n, d) a side, got {real.shape} and {generated.shape}")
    mu_real, sigma_real = real.mean(axis=0), np.atleast_2d(np.cov(real, rowvar=False))
    mu_generated = generated.mean(axis=0)
    if len(generated) < generated.shape[1]:
        a = (generated - mu_generated) / np.sqrt(len(generated) - 1)
        product, trace_generated = a @ sigma_real @ a.T, np.sum(a * a)
    else:
        sigma_generated = np.atleast_2d(np.cov(generated, rowvar=False))
        values, vectors = np.linalg.eigh(sigma_real)
        root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
        product, trace_generated = root @ sigma_generated @ root, np.trace(sigma_generated)
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(product), 0.0, None)).sum()
    diff = mu_real - mu_generated
    return float(diff @ diff + np.trace(sigma_real) + trace_generated - 2.0 * trace_root)


def _fid_inception_network() -> nn.Module:
    """torchvision's Inception v3 (1008 classes, no aux head) with pytorch-fid's TF-faithful blocks, random weights."""
    from pytorch_fid import inception as pf
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    net.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pf.FIDInceptionE_1(1280)
    net.Mixed_7c = pf.FIDInceptionE_2(2048)
    return net


class InceptionFeatures(PixelNetwork):
    """pool_3 features (n, 2048) of generator-space images: bytes to [0, 1], a bilinear resize to 299, then [-1, 1]
    (pytorch-fid's input convention for the TF graph's weights)."""

    def __call__(self, images: Tensor) -> Tensor:
        return self.run(lambda x: 2.0 * F.interpolate(x / 255.0, size=(299, 299), mode="bilinear") - 1.0, images)


def load_fid_inception(path: str | Path | None = None, image_norm: str = "imagenet",
                       entry: WeightFile = REGISTRY["fid_inception"]) -> InceptionFeatures:
    """The FID Inception network with the user's `pt_inception-2015-12-05-6726825d.pth` (default: torch hub's checkpoint
    folder, where pytorch-fid caches it); a WeightsError with the link when it is missing or foreign."""
    file = locate(entry, path)
    net = _fid_inception_network()
    try:
        net.load_state_dict(torch_load(file, WeightsError, "state dict"))
    except (RuntimeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{file}: not the FID Inception weights ({str(exc).splitlines()[0]})") from None
    # torchvision's forward runs the blocks in pytorch-fid's order; without the classifier it ends at pool_3
    net.fc = nn.Identity()
    return InceptionFeatures(net.requires_grad_(False).eval(), image_norm)
