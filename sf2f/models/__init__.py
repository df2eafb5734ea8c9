"""The SF2F and voice2face networks (recipe §2), one module per concept; `build` makes them from a typed config
(`build_generator(load_config(...))(mel)`)."""

from sf2f.models.build import build_decoder, build_discriminators, build_encoder, build_generator, count_parameters
from sf2f.models.fuser import AttentionFuser
from sf2f.models.voice_encoders import VoiceEncoder

__all__ = ["AttentionFuser", "VoiceEncoder", "build_decoder", "build_discriminators", "build_encoder",
           "build_generator", "count_parameters"]
