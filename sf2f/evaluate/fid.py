"""Fréchet distance between the feature statistics of real and generated faces (recipe §4.4).

    FID = |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))

computed by default from symmetric eigendecompositions (fast, and real by construction); `method="sqrtm"` computes it
as the original does: scipy's `sqrtm`; when the product's square root is not finite, 1e-6 is added to both diagonals
first; a small imaginary part (numerical noise) is dropped (a warning when it exceeds 1e-3, where pytorch-fid would
stop). With a few hundred faces against 512 or 2048 dimensions the covariances are rank-deficient, as in the
original: compare FIDs only between models evaluated on the same split.

Two feature spaces:

* the face embedder's 512-d embedding F(.) (always available; beyond the paper), and
* pytorch-fid's port of the TF Inception graph the original uses (pool_3, 2048-d), when the user has its weights file
  (`sf2f.weights.REGISTRY["fid_inception"]`); :func:`load_fid_inception` builds the network from pytorch-fid's
  patched blocks and loads that file with `weights_only=True` (nothing is downloaded).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import Tensor, nn

from sf2f.evaluate.embeddings import device_of, eval_mode
from sf2f.faces import denormalize_images
from sf2f.weights import REGISTRY, WeightFile, WeightsError, locate, torch_load_failure

__all__ = ["InceptionFeatures", "feature_statistics", "fid_from_features", "frechet_distance", "load_fid_inception"]


def feature_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, rows are samples) of features (n, d), n >= 2."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"FID needs at least two feature rows (n, d), got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (S1 S2)^(1/2) = sum of sqrt(eigenvalues of S1^(1/2) S2 S1^(1/2)), a symmetric PSD matrix similar to S1 S2."""
    values, vectors = np.linalg.eigh(sigma1)
    root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ sigma2 @ root), 0.0, None)).sum())


def _trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (S1 S2)^(1/2) the original's way: scipy's sqrtm, eps 1e-6 on the diagonals if not finite, real part."""
    with warnings.catch_warnings():
        # singular products are the rule here (fewer faces than dimensions), so scipy's warning says nothing new
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * 1e-6
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.abs(covmean.imag).max()
        if imaginary > 1e-3:
            warnings.warn(f"FID: dropped an imaginary component of {imaginary:.3g} (rank-deficient covariances)")
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    method: Literal["eigh", "sqrtm"] = "eigh",
) -> float:
    """The Fréchet distance between two Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    `eigh` (default) takes the trace term from symmetric eigendecompositions: the same quantity as `sqrtm` (the
    original's scipy route), about 40 times faster at 512 dimensions, and without the imaginary noise that scipy's
    Schur method produces on rank-deficient covariances.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"feature statistics differ in shape: {mu1.shape} / {mu2.shape}, {sigma1.shape} / {sigma2.shape}"
        )
    if method not in ("eigh", "sqrtm"):
        raise ValueError(f"unknown FID method '{method}' (eigh or sqrtm)")
    trace_term = (_trace_sqrt_product_eigh if method == "eigh" else _trace_sqrt_product_sqrtm)(sigma1, sigma2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_term)


def fid_from_features(real: Tensor | np.ndarray, generated: Tensor | np.ndarray) -> float:
    """FID between two sets of feature rows.

    With fewer generated rows n than dimensions d (one face per test identity against 512 or 2048 dimensions), the
    trace term comes from an n x n matrix: S_g = A^T A with A the centred rows over sqrt(n - 1), and the non-zero
    eigenvalues of S_r^(1/2) A^T A S_r^(1/2) are those of A S_r A^T. Exact, and no d x d eigendecomposition.
    """
    mu1, sigma1 = feature_statistics(real)
    x = np.asarray(generated, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] >= x.shape[1]:
        return frechet_distance(mu1, sigma1, *feature_statistics(generated))
    mu2, _ = feature_statistics(x)
    a = (x - mu2) / np.sqrt(x.shape[0] - 1)
    trace_term = float(np.sqrt(np.clip(np.linalg.eigvalsh(a @ sigma1 @ a.T), 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.sum(a * a) - 2.0 * trace_term)


# the order in which torchvision's Inception v3 runs its blocks up to pool_3 (what pytorch-fid's block 3 returns)
_INCEPTION_BLOCKS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool",
)


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


class InceptionFeatures(nn.Module):
    """pool_3 features (n, 2048) of generator-space images: bytes as the original de-normalises them, to [0, 1],
    a bilinear resize to 299, then [-1, 1] (pytorch-fid's input convention for the TF graph's weights)."""

    def __init__(self, net: nn.Module, image_norm: str = "imagenet", batch_size: int = 32) -> None:
        super().__init__()
        self.net = net
        self.image_norm = image_norm
        self.batch_size = batch_size

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        device = device_of(self.net)
        out = []
        with eval_mode(self.net):
            for chunk in images.split(self.batch_size):
                x = denormalize_images(chunk.to(device), self.image_norm).float() / 255.0
                x = 2.0 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1.0
                for name in _INCEPTION_BLOCKS:
                    x = getattr(self.net, name)(x)
                out.append(x.flatten(1).float().cpu())
        return torch.cat(out)


def load_fid_inception(
    path: str | Path | None = None, image_norm: str = "imagenet", entry: WeightFile = REGISTRY["fid_inception"]
) -> InceptionFeatures:
    """The FID Inception network with the user's `pt_inception-2015-12-05-6726825d.pth` (default place: torch hub's
    checkpoint folder, where pytorch-fid caches it). Raises WeightsError with the link when it is missing or foreign."""
    file = locate(entry, path)
    net = _fid_inception_network()
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated, foreign or code-carrying files
        raise WeightsError(f"{file}: not a readable state dict: {torch_load_failure(file, exc)}") from None
    try:
        net.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{file}: not the FID Inception weights ({str(exc).splitlines()[0]})") from None
    for param in net.parameters():
        param.requires_grad_(False)
    return InceptionFeatures(net.eval(), image_norm)
