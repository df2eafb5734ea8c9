"""Speech to log-mel features, as the original SF2F prepares them (recipe §1.4), plus voice2face's variant (§7.2).

One module a step: :mod:`~sf2f.audio.decode` reads any audio file to 16-bit PCM, mono, 16 kHz, on the int16 scale
(§1.4 step 1); :mod:`~sf2f.audio.vad` runs the original's webrtcvad ring buffer (step 2); :mod:`~sf2f.audio.mel`
computes python_speech_features' ``logfbank`` (step 3) for many utterances at once and normalises it (step 4).
:func:`extract_log_mels` (:mod:`~sf2f.audio.pipeline`) runs steps 1-3 for many files, returning an :class:`AudioError`
naming the file and the reason for each file that gives no features, so one bad file never stops a run.
"""

from sf2f.audio.decode import AudioError, load_audio
from sf2f.audio.mel import (
    LOG_MEL_FLOAT32_TOLERANCE,
    MelStats,
    frame_count,
    log_mel,
    log_mel_batch,
    mel_filterbank,
    normalize_mel,
    pad_value,
)
from sf2f.audio.pipeline import Utterance, extract_log_mels, voice2face_audio_config
from sf2f.audio.vad import voice_activity

__all__ = [
    "LOG_MEL_FLOAT32_TOLERANCE", "AudioError", "MelStats", "Utterance", "extract_log_mels", "frame_count", "load_audio",
    "log_mel", "log_mel_batch", "mel_filterbank", "normalize_mel", "pad_value", "voice2face_audio_config",
    "voice_activity",
]
