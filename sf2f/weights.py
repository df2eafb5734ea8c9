"""Pretrained weight files that users fetch themselves, registered with size and SHA-256, looked up at a path or in
torch's hub folder and verified before loading; nothing downloads at run time as the original did (recipe §1.1, §6 items
1 and 3). The synthetic course needs none of them."""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sf2f.errors import SF2FError


class WeightsError(SF2FError, RuntimeError):
    """A registered weight file is missing or is not the file it should be."""


@dataclass(frozen=True)
class WeightFile:
    """A weight file users download themselves. `size` None: unknown here; `sha256`: the digest, a prefix of it (torch
    hub's file names carry one) or None. Without both, the file's loader checks its keys and shapes instead."""

    name: str
    filename: str
    url: str
    size: int | None
    sha256: str | None
    # looked for under $TORCH_HOME (default ~/.cache/torch) when no path is given
    hub_subdir: str
    purpose: str


REGISTRY: dict[str, WeightFile] = {
    "facenet_vggface2": WeightFile(
        name="facenet_vggface2", filename="20180402-114759-vggface2.pt", size=111_898_327, hub_subdir="checkpoints",
        url="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
        sha256="281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b",
        purpose="FaceNet (InceptionResnetV1, VGGFace2) for the perceptual loss and the retrieval metrics (§2.7, §4.2)"),
    # cydonia999's conversion of the Caffe VGGFace2 ResNet-50 (MS-Celeb-1M, fine-tuned on VGGFace2): a numpy pickle
    "vggface2_resnet50_ft": WeightFile(
        name="vggface2_resnet50_ft", filename="resnet50_ft_weight.pkl", size=None, sha256=None,
        url="https://drive.google.com/file/d/1A94PAAnwk6L7hXdBXLFosB_s0SzEhAFU (Google Drive, recipe §1.1)",
        hub_subdir="checkpoints",
        purpose="the VGGFace Score (ResNet-50 resnet50_ft, 8631 VGGFace2 identities, recipe §4.1)"),
    # pytorch-fid's port of the TF Inception graph that the original's FID uses (§4.4)
    "fid_inception": WeightFile(
        name="fid_inception", filename="pt_inception-2015-12-05-6726825d.pth", size=None, sha256="6726825d",
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
        hub_subdir="hub/checkpoints", purpose="FID with the Inception network of the original (recipe §4.4)"),
    # torchvision's AlexNet, the backbone of LPIPS v0.1 (the lpips wheel ships only the linear heads, §4.5)
    "lpips_alexnet": WeightFile(
        name="lpips_alexnet", filename="alexnet-owt-7be5be79.pth", size=None, sha256="7be5be79",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", hub_subdir="hub/checkpoints",
        purpose="the LPIPS diversity of generated faces (AlexNet backbone, recipe §4.5)"),
}


def default_path(entry: WeightFile) -> Path:
    """Where a file is looked for when the user names no path: facenet-pytorch caches under $TORCH_HOME/checkpoints,
    torch.hub under $TORCH_HOME/hub/checkpoints."""
    home = Path(os.environ.get("TORCH_HOME", Path(torch.hub.get_dir()).parent)).expanduser()
    return home / entry.hub_subdir / entry.filename


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def locate(entry: WeightFile | str, path: str | Path | None = None) -> Path:
    """The verified path of a registered weight file, or a WeightsError that says how to get it."""
    entry = REGISTRY[entry] if isinstance(entry, str) else entry
    target = Path(path).expanduser() if path else default_path(entry)
    if not target.is_file():
        size = f" ({entry.size:,} bytes)" if entry.size is not None else ""
        raise WeightsError(f"{target}: the {entry.name} weights are missing. They are needed for {entry.purpose}. "
                           f"Download {entry.url}{size} as {entry.filename} and put it there, or pass its path. The "
                           "synthetic course does not need them.")
    size = target.stat().st_size
    if entry.size is not None and size != entry.size:
        raise WeightsError(f"{target}: {size:,} bytes, but {entry.filename} has {entry.size:,}; re-download it")
    if entry.sha256:
        digest = sha256_of(target)
        if not digest.startswith(entry.sha256):
            raise WeightsError(f"{target}: SHA-256 {digest} does not match {entry.sha256} of {entry.filename}; "
                               "re-download it")
    return target


def torch_load_failure(path: Path, exc: Exception) -> str:
    """One line on why `torch.load(path, weights_only=True)` raised `exc`: torch's own message runs to paragraphs and
    advises `weights_only=False` for a file that carries code, advice not to pass on about a file of unknown origin."""
    if path.stat().st_size == 0:
        return "the file is empty"
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        return "not the zip archive torch.save writes (a truncated file, or another kind of file)"
    if isinstance(exc, pickle.UnpicklingError) and "WeightsUnpickler error:" in str(exc):
        detail = str(exc).split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0].strip()
        return (f"it holds objects other than tensors and plain containers ({detail}); they were not unpickled, so no "
                "code in the file ran")
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def torch_load(path: Path, error: type[SF2FError], what: str) -> Any:
    """`torch.load(path, weights_only=True)` onto the CPU, or `error` naming the file, what it is not, and why."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated, foreign or code-carrying files
        raise error(f"{path}: not a readable {what}: {torch_load_failure(path, exc)}") from None
