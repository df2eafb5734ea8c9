"""The offline synthetic paired voice-face dataset, the course's default data (issue 3; notebook 01).

Hidden traits shape voices and faces (`traits`), a source-filter synthesiser speaks (`voices`), a vector renderer
draws faces (`faces`), `writer` lays everything out exactly like VoxCeleb + HQ-VoxCeleb, so the preparation reads both
the same way, and `probe` measures what a voice reveals about the traits.
"""

from sf2f.data.synthetic.writer import ensure_synthetic_dataset, face_dir, generate_dataset, read_traits, speaker_dir

__all__ = ["ensure_synthetic_dataset", "face_dir", "generate_dataset", "read_traits", "speaker_dir"]
