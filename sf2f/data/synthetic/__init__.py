"""The offline synthetic paired voice-face dataset: the course's default data (issue 3).

Hidden traits shape voices and faces (`traits`), a source-filter synthesiser speaks (`voices`), a vector renderer
draws faces (`faces`), and `writer` lays everything out exactly like VoxCeleb + HQ-VoxCeleb, so the preparation
pipeline reads both the same way. `probe` measures what a voice reveals about the traits.

    >>> from sf2f.data.synthetic import ensure_synthetic_dataset
    >>> root = ensure_synthetic_dataset("data/synthetic")   # generated once (about a minute), reused afterwards
"""

from sf2f.data.synthetic.traits import FACE_ONLY_TRAITS, SHARED_TRAITS, VOICE_ONLY_TRAITS, Identity, draw_identities
from sf2f.data.synthetic.writer import (
    MARKER,
    GenerationReport,
    SyntheticDatasetError,
    dataset_status,
    ensure_synthetic_dataset,
    face_dir,
    generate_dataset,
    read_traits,
    speaker_dir,
)

__all__ = [
    "FACE_ONLY_TRAITS",
    "MARKER",
    "SHARED_TRAITS",
    "VOICE_ONLY_TRAITS",
    "GenerationReport",
    "Identity",
    "SyntheticDatasetError",
    "dataset_status",
    "draw_identities",
    "ensure_synthetic_dataset",
    "face_dir",
    "generate_dataset",
    "read_traits",
    "speaker_dir",
]
