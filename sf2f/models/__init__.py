"""The SF2F and voice2face networks (recipe §2): voice encoders, the attention fuser, face decoders, discriminators.

One module per concept; `build` makes them from a typed config:

    from sf2f.config import load_config
    from sf2f.models import build_generator, build_discriminators

    cfg = load_config("sf2f_1st_stage", profile="quick")
    out = build_generator(cfg)(mel)          # GeneratorOutput(images=(img_64,), embedding=(B, D), attention=None)
"""

from sf2f.models.build import (
    build_decoder,
    build_discriminators,
    build_encoder,
    build_fuser,
    build_generator,
    count_parameters,
    scale_width,
)
from sf2f.models.discriminators import AcDiscriminator, AcOutput, Discriminators, PatchDiscriminator
from sf2f.models.face_decoders import FaceGanDecoder, V2FDecoder
from sf2f.models.fuser import AttentionFuser
from sf2f.models.generator import Generator, GeneratorOutput
from sf2f.models.voice_encoders import VoiceEncoder

__all__ = [
    "AcDiscriminator",
    "AcOutput",
    "AttentionFuser",
    "Discriminators",
    "FaceGanDecoder",
    "Generator",
    "GeneratorOutput",
    "PatchDiscriminator",
    "V2FDecoder",
    "VoiceEncoder",
    "build_decoder",
    "build_discriminators",
    "build_encoder",
    "build_fuser",
    "build_generator",
    "count_parameters",
    "scale_width",
]
