"""What a deliberately simple model (so that what it finds is in the data) recovers from a voice or a face (notebook
01): cross-validated linear probes of each trait from the mean voiced log-mel spectrum or 16x16 pixels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sf2f.data.synthetic.traits import FACE_ONLY_TRAITS, SHARED_TRAITS, VOICE_ONLY_TRAITS
from sf2f.data.synthetic.writer import face_dir, read_traits, speaker_dir

__all__ = ["TRAIT_GROUPS", "face_features", "identity_features", "median_pitch", "probe_traits", "voice_features"]

TRAIT_GROUPS: dict[str, str] = {**dict.fromkeys(SHARED_TRAITS, "shared"),
                                **dict.fromkeys(FACE_ONLY_TRAITS, "face only"),
                                **dict.fromkeys(VOICE_ONLY_TRAITS, "voice only")}
_PAUSE_DB = 35.0
_FOLDS = 5


def voice_features(wav_paths: Sequence[str | Path]) -> np.ndarray:
    """Mean 40-band log-mel over each file's voiced frames (pauses: 35 dB below the loudest): (files, 40)."""
    import soundfile
    import torch
    import torchaudio

    from sf2f.data.prepare import single_thread
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40)
    rows = []
    # one small transform per file: extra threads only add overhead (30x slower on 2 busy cores)
    with single_thread(), torch.no_grad():
        for path in wav_paths:
            samples, rate = soundfile.read(path, dtype="float32")
            if rate != 16000 or samples.ndim != 1:
                raise ValueError(f"{path}: the probe expects 16 kHz mono audio, got {rate} Hz, shape {samples.shape}")
            logmel = torch.log(mel(torch.from_numpy(samples)) + 1e-8)  # (n_mels, frames)
            energy = torch.logsumexp(logmel, dim=0)
            voiced = energy > energy.max() - _PAUSE_DB * np.log(10.0) / 10.0
            rows.append(logmel[:, voiced].mean(dim=1).numpy())
    return np.stack(rows)


def median_pitch(samples: np.ndarray, sample_rate: int = 16000, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """A listener's check by numbers: the median autocorrelation pitch (Hz) over the louder half of 40 ms frames."""
    size = int(0.04 * sample_rate)
    x = np.asarray(samples, dtype=float)
    chunks = x[: x.size // size * size].reshape(-1, size)
    chunks = chunks[np.argsort(np.sum(chunks**2, axis=1))[len(chunks) // 2:]]
    chunks = chunks - chunks.mean(axis=1, keepdims=True)
    autocorrelation = np.fft.irfft(np.abs(np.fft.rfft(chunks, 2 * size, axis=1)) ** 2, axis=1)[:, :size]
    lo, hi = int(sample_rate / fmax), int(sample_rate / fmin)
    return float(np.median(sample_rate / (lo + np.argmax(autocorrelation[:, lo:hi], axis=1))))


def face_features(image_paths: Sequence[str | Path]) -> np.ndarray:
    """The RGB pixels of each image at 16 x 16, in [0, 1]: (images, 3 * 16 * 16)."""
    from PIL import Image
    rows = []
    for path in image_paths:
        with Image.open(path) as img:
            rows.append(np.asarray(img.convert("RGB").resize((16, 16), Image.BILINEAR), dtype=np.float32).ravel())
    return np.stack(rows) / 255.0


def identity_features(root: str | Path, modality: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The traits table and each identity's mean features over its `voice` (wav) or `face` (masked image) files."""
    traits = read_traits(root)
    rows = []
    for _, person in traits.iterrows():
        if modality == "voice":
            rows.append(voice_features(sorted(speaker_dir(Path(root), person).rglob("*.wav"))).mean(axis=0))
        elif modality == "face":
            rows.append(face_features(sorted(face_dir(Path(root), person, "masked").glob("*.jpg"))).mean(axis=0))
        else:
            raise ValueError(f"modality must be 'voice' or 'face', got '{modality}'")
    return traits, np.stack(rows)


def probe_traits(features: np.ndarray, traits: pd.DataFrame) -> pd.DataFrame:
    """Cross-validated linear probes, one per trait: score, chance level and margin. Categorical traits are scored by
    accuracy against the majority-class rate, continuous ones by R^2 against 0 (always predicting the mean)."""
    from threadpoolctl import threadpool_limits

    # one scale for all columns (log-mel bins or pixels alike), so that one regularisation strength suits both
    centred = features - features.mean(axis=0)
    features = centred / (centred.std() + 1e-12)
    with threadpool_limits(1):  # small problems: BLAS threads only fight over busy cores (10x slower on 2 shared)
        rows = [_probe_one(features, traits[name]) for name in TRAIT_GROUPS]
    return pd.DataFrame(rows).set_index("trait")


def _probe_one(features: np.ndarray, target: pd.Series) -> dict[str, object]:
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    if pd.api.types.is_bool_dtype(target) or not pd.api.types.is_numeric_dtype(target):
        y = target.astype(str).to_numpy()
        counts = pd.Series(y).value_counts()
        splitter = (StratifiedKFold(min(_FOLDS, int(counts.min())), shuffle=True, random_state=0)
                    if counts.min() >= 2 else KFold(_FOLDS, shuffle=True, random_state=0))
        model = LogisticRegression(C=0.1, max_iter=2000)
        predicted = cross_val_predict(model, features, y, cv=splitter)
        score, chance, metric = accuracy_score(y, predicted), float(counts.max() / len(y)), "accuracy"
    else:
        y = target.to_numpy(dtype=float)
        model = RidgeCV(alphas=np.logspace(-2, 6, 17))
        predicted = cross_val_predict(model, features, y, cv=KFold(_FOLDS, shuffle=True, random_state=0))
        score, chance, metric = r2_score(y, predicted), 0.0, "R^2"
    return {"trait": target.name, "group": TRAIT_GROUPS[str(target.name)], "metric": metric, "score": float(score),
            "chance": chance, "above_chance": float(score - chance)}
