"""Speech to log-mel features, as the original SF2F prepares them (recipe §1.4), plus voice2face's variant (§7.2).

The pipeline for one utterance, one module a step:

1. :mod:`~sf2f.audio.decode`, :func:`load_audio`: any wav/flac/ogg (soundfile) or m4a (ffmpeg) file to **16-bit PCM,
   mono, 16 kHz**, the only input the original accepts. Its samples stay on the int16 scale, never scaled to [-1, 1]
   (§1.4 step 1).
2. :mod:`~sf2f.audio.vad`, :func:`voice_activity`: the original's VAD, webrtcvad's decision on every 30 ms frame run
   through the ring-buffer state machine (§1.4 step 2); :meth:`VadResult.apply` keeps the voiced frames.
3. :mod:`~sf2f.audio.mel`, :func:`log_mel`: python_speech_features 0.6 ``logfbank`` (§1.4 step 3) in torch,
   computed on the frames of many utterances at once (:func:`log_mel_batch`); float64 reproduces the original to
   about 1e-12, the default float32 within 1e-3.
4. :func:`normalize_mel` (in :mod:`~sf2f.audio.mel`): the original's global scalar (10.9915, 3.1661), statistics
   measured on the training split, or per-utterance mean/variance per bin (voice2face).

:func:`extract_log_mels` (:mod:`~sf2f.audio.pipeline`) runs steps 1-3 for many files and returns an
:class:`AudioError` (with the file and the reason) for every file that cannot give features, instead of raising, so
one bad file never stops a run over thousands.
"""

from sf2f.audio.decode import AudioError, Waveform, load_audio
from sf2f.audio.mel import (
    LOG_MEL_FLOAT32_TOLERANCE,
    MelStats,
    frame_count,
    hz_to_mel,
    log_mel,
    log_mel_batch,
    mel_filterbank,
    mel_to_hz,
    normalize_mel,
    pad_value,
)
from sf2f.audio.pipeline import Utterance, extract_log_mels, voice2face_audio_config
from sf2f.audio.vad import VadResult, voice_activity

__all__ = [
    "LOG_MEL_FLOAT32_TOLERANCE", "AudioError", "MelStats", "Utterance", "VadResult", "Waveform", "extract_log_mels",
    "frame_count", "hz_to_mel", "load_audio", "log_mel", "log_mel_batch", "mel_filterbank", "mel_to_hz",
    "normalize_mel", "pad_value", "voice2face_audio_config", "voice_activity",
]
