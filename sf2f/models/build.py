"""Build the networks of an experiment from its typed config, every channel width multiplied by ``model.width_mult`` and
rounded (Inception block widths to a multiple of 4, one per branch): 1.0 gives the paper's networks exactly; the
``quick`` (1/8) and ``demo`` (1/4) profiles get the same classes, narrower, at the paper's depth."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from sf2f.config import ConfigError, ExperimentConfig
from sf2f.config.schema import ConvSpec, parse_arch
from sf2f.models.discriminators import AcDiscriminator, Discriminators, PatchDiscriminator
from sf2f.models.face_decoders import FaceGanDecoder, V2FDecoder
from sf2f.models.fuser import AttentionFuser
from sf2f.models.generator import Generator
from sf2f.models.voice_encoders import INCEPTION_KERNELS, VoiceEncoder


def scale_width(channels: int, width_mult: float, multiple: int = 1) -> int:
    """``channels * width_mult`` rounded to the nearest multiple of ``multiple`` (at least one multiple)."""
    return max(multiple, round(channels * width_mult / multiple) * multiple)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (BatchNorm weight and bias included, running-statistics buffers not), as §2.6 counts."""
    return sum(p.numel() for p in module.parameters())


def build_encoder(cfg: ExperimentConfig) -> VoiceEncoder:
    enc, w = cfg.model.encoder, cfg.model.width_mult
    multiple = len(INCEPTION_KERNELS) if enc.kind == "inception" else 1
    return VoiceEncoder(cfg.data.audio.n_mels, [scale_width(c, w, multiple) for c in enc.channels],
                        scale_width(enc.embed_dim, w), enc.kind, enc.normalize_embedding, enc.add_noise, enc.noise_std,
                        enc.noise_in_eval)


def build_decoder(cfg: ExperimentConfig, embed_dim: int) -> FaceGanDecoder | V2FDecoder:
    dec, w = cfg.model.decoder, cfg.model.width_mult
    channels = [scale_width(c, w) for c in dec.channels]
    if dec.kind == "v2f":
        decoder: FaceGanDecoder | V2FDecoder = V2FDecoder(embed_dim, channels)
    else:
        mid = scale_width(dec.mid_channels, w) if dec.kind == "gan_multires" else None
        decoder = FaceGanDecoder(embed_dim, channels, dec.leaky_slope, mid)
    if decoder.image_sizes[-1] != cfg.data.image_size:
        raise ConfigError(f"model.decoder.channels {dec.channels} give {decoder.image_sizes[-1]} px images, but "
                          f"data.image_size is {cfg.data.image_size} (the 4x4 start doubles once per entry after the "
                          "first: 5 entries give 64 px)")
    return decoder


def build_generator(cfg: ExperimentConfig) -> Generator:
    """Encoder (+ fuser) + decoder of ``cfg.model`` at ``cfg.model.width_mult``, for ``cfg.data.audio.n_mels`` mels."""
    settings, w = cfg.model.fuser, cfg.model.width_mult
    fuser = None
    if settings.enabled:  # first: the networks draw their initial weights in this order, and runs replay the seed
        dims = scale_width(settings.dim, w), scale_width(settings.dim_out, w)
        fuser = AttentionFuser(*dims, settings.normalize_fusion)
    encoder = build_encoder(cfg)
    embed_dim = fuser.linear_out.out_features if fuser is not None else encoder.embed_dim
    return Generator(encoder, build_decoder(cfg, embed_dim), fuser)


def _scaled_specs(arch: str, width_mult: float) -> list[ConvSpec]:
    return [replace(s, channels=scale_width(s.channels, width_mult)) for s in parse_arch(arch)]


def build_discriminators(cfg: ExperimentConfig, num_ids: int) -> Discriminators:
    """The image (patch) and AC discriminators, one of each per output scale; the image ones only when
    ``loss.d_img_weight > 0`` (v2f disables them with -1, §2.5). ``num_ids``: the training identities."""
    disc, w = cfg.model.discriminators, cfg.model.width_mult
    style = dict(normalization=disc.normalization, activation=disc.activation, padding=disc.padding)
    image = [PatchDiscriminator(_scaled_specs(a, w), **style) for a in disc.image_archs if cfg.loss.d_img_weight > 0]
    hidden = scale_width(disc.ac_hidden, w)
    ac = [AcDiscriminator(_scaled_specs(arch, w), num_ids, hidden, **style) for arch in disc.ac_archs]
    return Discriminators(image, ac)
