"""Speech to log-mel features, as the original SF2F prepares them (recipe §1.4), plus voice2face's variant (§7.2):
:mod:`~sf2f.audio.decode` (to 16-bit mono PCM, step 1), :mod:`~sf2f.audio.vad` (webrtcvad and the original's ring
buffer, step 2), :mod:`~sf2f.audio.mel` (``logfbank`` and its normalisation, steps 3-4; steps 1-3 over many files)."""

from sf2f.audio.decode import AudioError, load_audio
from sf2f.audio.mel import (
    LOG_MEL_FLOAT32_TOLERANCE,
    MelStats,
    Utterance,
    extract_log_mels,
    frame_count,
    log_mel,
    log_mel_batch,
    mel_filterbank,
    normalize_mel,
    pad_value,
    voice2face_audio_config,
)
from sf2f.audio.vad import voice_activity

__all__ = ["LOG_MEL_FLOAT32_TOLERANCE", "AudioError", "MelStats", "Utterance", "extract_log_mels", "frame_count",
           "load_audio", "log_mel", "log_mel_batch", "mel_filterbank", "normalize_mel", "pad_value",
           "voice2face_audio_config", "voice_activity"]
