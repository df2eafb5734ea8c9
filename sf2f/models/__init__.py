"""The SF2F and voice2face networks (recipe §2): voice encoders, the attention fuser, face decoders, discriminators,
one module per concept; `build` makes them from a typed config (`build_generator(load_config(...))(mel)`).
"""

from sf2f.models.build import (
    build_decoder,
    build_discriminators,
    build_encoder,
    build_generator,
    count_parameters,
    scale_width,
)
from sf2f.models.discriminators import AcDiscriminator, Discriminators, PatchDiscriminator
from sf2f.models.face_decoders import FaceGanDecoder, V2FDecoder
from sf2f.models.fuser import AttentionFuser
from sf2f.models.generator import Generator
from sf2f.models.voice_encoders import VoiceEncoder

__all__ = [
    "AcDiscriminator", "AttentionFuser", "Discriminators", "FaceGanDecoder", "Generator", "PatchDiscriminator",
    "V2FDecoder", "VoiceEncoder", "build_decoder", "build_discriminators", "build_encoder", "build_generator",
    "count_parameters", "scale_width",
]
