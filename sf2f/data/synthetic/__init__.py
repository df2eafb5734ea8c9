"""The offline synthetic voice-face dataset, the course's default data (issue 3; notebook 01): hidden `traits` shape
the `voices` and `faces`, `writer` lays them out like VoxCeleb + HQ-VoxCeleb, `probe` measures what a voice reveals."""

from sf2f.data.synthetic.writer import ensure_synthetic_dataset, face_dir, generate_dataset, read_traits, speaker_dir

__all__ = ["ensure_synthetic_dataset", "face_dir", "generate_dataset", "read_traits", "speaker_dir"]
