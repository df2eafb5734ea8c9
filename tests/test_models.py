"""sf2f.models: parameter counts against the recipe (§2.6, §7.3), shapes, the fuser, noise, freezing, fast inference.

Full-size networks are only instantiated (parameter counts); forward passes run at the quick profile's width.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sf2f.config import PAPER_CONFIGS, ConfigError, ExperimentConfig, load_config
from sf2f.config.schema import parse_arch
from sf2f.models import AttentionFuser, VoiceEncoder, build_discriminators, build_generator, count_parameters
from sf2f.models.build import scale_width
from sf2f.models.discriminators import AcDiscriminator, PatchDiscriminator, build_cnn
from sf2f.models.face_decoders import FaceGanDecoder, V2FDecoder
from sf2f.models.generator import Generator
from sf2f.models.optimize import optimize_for_inference

# recipe §2.6 and docs/original_timings.md: encoder, fuser, decoder, generator, image Ds, AC Ds without the id head
PAPER_COUNTS = {
    "v2f": (3_813_952, 0, 19_531_907, 23_345_859, [], [3_312_705]),
    "sf2f_1st_stage": (4_848_192, 0, 11_566_083, 16_414_275, [659_521], [923_457]),
    "sf2f_fuser": (4_848_192, 786_432, 11_566_083, 17_200_707, [659_521], [923_457]),
    "sf2f_mid_1st_stage": (4_848_192, 0, 11_577_734, 16_425_926, [659_521, 2_757_953], [923_457, 3_283_777]),
    "sf2f_mid_fuser": (4_848_192, 786_432, 11_577_734, 17_212_358, [659_521, 2_757_953], [923_457, 3_283_777]),
}
PER_IDENTITY = 1_025  # the AC identity head: Linear(1024 -> num_ids) with bias


def quick(name: str, *overrides: str) -> ExperimentConfig:
    return load_config(name, profile="quick", overrides=list(overrides))


def settle_batchnorm(model: nn.Module, *inputs: torch.Tensor) -> None:
    """Give every BatchNorm non-trivial running statistics, so eval-mode checks do not test an identity map."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.5
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(*inputs)
    model.eval()


# ---- parameter counts ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_parameter_counts_equal_the_reference_at_width_one(name: str) -> None:
    cfg = load_config(name)
    encoder, fuser, decoder, generator, image, ac = PAPER_COUNTS[name]
    g = build_generator(cfg)
    assert count_parameters(g.encoder) == encoder
    assert (count_parameters(g.fuser) if g.fuser is not None else 0) == fuser
    assert count_parameters(g.decoder) == decoder
    assert count_parameters(g) == generator
    for num_ids in (1, 7):
        d = build_discriminators(cfg, num_ids=num_ids)
        assert [count_parameters(x) for x in d.image] == image
        assert [count_parameters(x) for x in d.ac] == [n + PER_IDENTITY * num_ids for n in ac]


def test_parameter_breakdown_of_the_sf2f_encoder_and_decoder() -> None:
    g = build_generator(load_config("sf2f_1st_stage"))
    assert [count_parameters(b) for b in g.encoder.blocks] == [44_032, 418_560, 941_184, 2_116_800]
    assert count_parameters(g.encoder.final) == 1_327_616
    assert count_parameters(g.decoder.fc) == 8_421_376
    assert count_parameters(g.decoder.up_blocks) == 3_135_360
    assert count_parameters(g.decoder.to_rgb) == 9_347


def test_the_original_voice2face_networks_of_section_7_3() -> None:
    # 64 mel bins and a 64-d embedding; the trunk of D and C
    assert count_parameters(VoiceEncoder(64, embed_dim=64, kind="cnn")) == 2_670_720
    assert count_parameters(V2FDecoder(embed_dim=64)) == 12_191_875
    arch = parse_arch("C1-32-1-0,C4-64-2-1,C4-128-2-1,C4-256-2-1,C4-512-2-1,C4-64-1-0")
    trunk, width = build_cnn(arch, normalization="none", activation="leakyrelu-0.2")
    assert count_parameters(trunk) == 3_310_720 and width == 64
    faces = torch.randn(2, 3, 64, 64)
    assert trunk(faces).shape == (2, 64, 1, 1)


def test_scale_width_rounds_to_multiples_and_keeps_width_one_exact() -> None:
    assert [scale_width(c, 1.0, 4) for c in (256, 384, 576, 864)] == [256, 384, 576, 864]
    assert [scale_width(c, 0.125, 4) for c in (256, 384, 576, 864)] == [32, 48, 72, 108]
    assert scale_width(16, 0.1) == 2 and scale_width(3, 0.01) == 1 and scale_width(8, 0.01, 4) == 4
    for profile, width in (("quick", 0.125), ("demo", 0.25)):
        g = build_generator(load_config("sf2f_fuser", profile=profile))
        assert all(sum(branch[0].out_channels for branch in b.branches) % 4 == 0 for b in g.encoder.blocks)
        assert g.encoder.embed_dim == round(512 * width) == g.fuser.linear_in.in_features
        assert count_parameters(g) < 17_200_707 * width


# ---- shapes --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_output_shapes_of_every_config(name: str) -> None:
    cfg = quick(name)
    g = build_generator(cfg).eval()
    d = build_discriminators(cfg, num_ids=6)
    sizes = (64, 128) if cfg.data.image_size == 128 else (64,)
    assert g.image_sizes == sizes
    dim = g.decoder.fc[0].in_features if isinstance(g.decoder, FaceGanDecoder) else g.decoder.layers[0].in_channels
    with torch.no_grad():
        lengths = {frames: g.encoder(torch.randn(1, 40, frames)).shape for frames in range(100, 151)}
        assert set(lengths.values()) == {(1, g.encoder.embed_dim)}
        for frames in (100, 125, 150, 1000):
            out = g(torch.randn(2, 40, frames))
            assert [tuple(x.shape) for x in out.images] == [(2, 3, s, s) for s in sizes]
            assert out.embedding.shape == (2, dim)
            assert torch.allclose(out.embedding.norm(dim=1), torch.ones(2), atol=1e-5)
            assert (out.attention is None) == (g.fuser is None)
        d.eval()
        for scale, images in enumerate(out.images):
            if d.image:
                assert d.image[scale](images).shape == (2, 1, 6, 6)  # §2.5: 6x6 patch logits at 64 and at 128
            real, ids = d.ac[scale](images)
            assert real.shape == (2, 1) and ids.shape == (2, 6)
    assert len(d.ac) == len(sizes) and len(d.image) == (0 if name == "v2f" else len(sizes))


@pytest.mark.parametrize("kind", ["cnn", "inception"])
def test_encoder_lengths_for_every_crop_length_and_long_utterances(kind: str) -> None:
    encoder = VoiceEncoder(channels=(8, 12, 16, 20), embed_dim=16, kind=kind).eval()
    # §2.1 examples
    assert encoder.output_lengths(125) == [63, 32, 16, 8, 4]
    assert encoder.output_lengths(100) == [50, 25, 13, 7, 4]
    assert encoder.output_lengths(150) == [75, 38, 19, 10, 5]
    with torch.no_grad():
        for frames in [*range(100, 151), 1000, 2999]:
            mel = torch.randn(1, 40, frames)
            assert encoder.sequence(mel).shape == (1, 16, encoder.output_lengths(frames)[-1])
            assert encoder(mel).shape == (1, 16)


def test_inception_block_drops_the_k2_branch_extra_step_on_even_lengths() -> None:
    encoder = VoiceEncoder(channels=(8, 8, 8, 8), embed_dim=8).eval()
    block = encoder.blocks[0]
    for frames in (124, 125):
        mel = torch.randn(1, 40, frames)
        k2 = block.branches[0](mel)
        assert k2.shape[-1] == frames // 2 + 1  # one step longer than the odd kernels when the length is even
        out = block(mel)
        assert out.shape == (1, 8, (frames - 1) // 2 + 1)
        # concatenated k2, k3, k5, k7 in that order; the k2 part is its branch with the last step dropped if extra
        assert torch.equal(out[:, :2], k2[..., : out.shape[-1]])
        assert torch.equal(out[:, 6:], block.branches[3](mel))


def test_too_short_input_is_a_clear_error() -> None:
    encoder = VoiceEncoder(channels=(8, 8, 8, 8), embed_dim=8)
    with pytest.raises(ValueError, match="at least 17 frame"):
        encoder.train()(torch.randn(1, 40, 16))
    assert encoder.train()(torch.randn(1, 40, 17)).shape == (1, 8)
    assert encoder.train()(torch.randn(2, 40, 1)).shape == (2, 8)  # two utterances give BatchNorm two values
    with pytest.raises(ValueError, match="at least 1 frame"):
        encoder.eval()(torch.randn(1, 40, 0))
    with pytest.raises(ValueError, match="expects 40 mel bins"):
        encoder(torch.randn(1, 64, 100))


def test_receptive_fields() -> None:
    # five k3 stride-2 layers: 1 + 2 (1 + 2 + 4 + 8 + 16) = 63 frames; the k7 branches widen it to 123 (about 1.25 s)
    assert VoiceEncoder(kind="cnn").receptive_field() == 63
    assert VoiceEncoder(kind="inception").receptive_field() == 123


# ---- fusion mode and the fuser -------------------------------------------------------------------------------------


def test_fuser_matches_a_hand_computed_example() -> None:
    fuser = AttentionFuser(dim=2, dim_out=2, normalize=False)
    with torch.no_grad():
        fuser.linear_in.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        fuser.linear_out.weight.copy_(torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 2.0]]))  # mix + 2 query
    emb = torch.eye(2)[None]  # two segments, one-hot
    # Q = E W_in^T = diag(2, 1); scores Q E^T = diag(2, 1), unscaled; softmax by rows
    a, b = math.exp(2) / (math.exp(2) + 1), 1 / (1 + math.e)
    mix = [[a, 1 - a], [b, 1 - b]]  # A E = A because E = I
    out = [[mix[0][0] + 4, mix[0][1]], [mix[1][0], mix[1][1] + 2]]  # [mix, Q] W_out^T = mix + 2 Q
    expected = torch.tensor([[(out[0][0] + out[1][0]) / 2, (out[0][1] + out[1][1]) / 2]])
    fused, weights = fuser(emb)
    assert torch.allclose(weights[0], torch.tensor(mix), atol=1e-6)
    assert torch.allclose(fused, expected, atol=1e-6)
    normalised = AttentionFuser(2, 2)
    normalised.load_state_dict(fuser.state_dict())
    assert torch.allclose(normalised(emb)[0], expected / expected.norm(), atol=1e-6)
    assert count_parameters(AttentionFuser()) == 786_432


def test_fuser_mask_ignores_padded_segments() -> None:
    torch.manual_seed(0)
    fuser = AttentionFuser(dim=8, dim_out=6)
    real = torch.nn.functional.normalize(torch.randn(1, 3, 8), dim=-1)
    alone, _ = fuser(real)
    padded = torch.cat([real, torch.randn(1, 2, 8), torch.full((1, 1, 8), float("nan"))], dim=1)
    mask = torch.tensor([[True, True, True, False, False, False]])
    fused, weights = fuser(padded, mask)
    assert torch.allclose(fused, alone, atol=1e-6)
    assert torch.all(weights[0, :3, 3:] == 0)
    # a batch of speakers with different numbers of segments, each as if alone
    other = torch.nn.functional.normalize(torch.randn(1, 6, 8), dim=-1)
    both, _ = fuser(torch.cat([padded.nan_to_num(), other]), torch.cat([mask, torch.ones(1, 6, dtype=torch.bool)]))
    assert torch.allclose(both, torch.cat([alone, fuser(other)[0]]), atol=1e-6)
    with pytest.raises(ValueError, match="at least one real segment"):
        fuser(padded, torch.zeros(1, 6, dtype=torch.bool))


def test_fusion_mode_shapes_and_masks_through_the_generator() -> None:
    g = build_generator(quick("sf2f_mid_fuser"))
    mel = torch.randn(3, 5, 40, 125)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    settle_batchnorm(g, mel, mask)
    with torch.no_grad():
        seg = g.encoder(mel, mask)
        assert seg.shape == (3, 5, 64) and torch.all(seg[~mask] == 0)
        out = g(mel, mask)
        assert [x.shape for x in out.images] == [(3, 3, 64, 64), (3, 3, 128, 128)]
        assert out.attention.shape == (3, 5, 5) and out.embedding.shape == (3, 64)
        # the second speaker's output does not depend on what sits in its padded slots
        noisy = mel.clone()
        noisy[1, 2:] = torch.randn(3, 40, 125) * 10
        again = g(noisy, mask)
        assert torch.allclose(again.embedding, out.embedding, atol=1e-6)
        short = g(mel[1:2, :2])
        assert torch.allclose(short.embedding, out.embedding[1:2], atol=1e-5)
        # (B, F, T) into a fuser generator is one segment per speaker
        assert g(mel[:, 0]).attention.shape == (3, 1, 1)
    with pytest.raises(ValueError, match="need a generator with a fuser"):
        build_generator(quick("sf2f_1st_stage"))(mel)


# ---- noise, freezing -----------------------------------------------------------------------------------------------


def test_baseline_noise_only_in_training_unless_switched_on() -> None:
    g = build_generator(quick("v2f"))
    mel = torch.randn(4, 40, 110)
    settle_batchnorm(g, mel)
    encoder = g.encoder
    assert encoder.add_noise and not encoder.noise_in_eval
    with torch.no_grad():
        assert torch.equal(encoder(mel), encoder(mel))  # eval: deterministic
        clean = encoder(mel)
        encoder.noise_in_eval = True  # the original's always-on noise (§6 item 13)
        noisy = encoder(mel)
        assert not torch.allclose(noisy, clean) and not torch.allclose(noisy, encoder(mel))
        assert torch.allclose(noisy.norm(dim=1), torch.ones(4), atol=1e-5)
        # the noise is 0.05 N(0, 1) on a unit vector of 64 dims: about 0.05 * 8 = 0.4 away, then renormalised
        assert 0.2 < float((noisy - clean).norm(dim=1).mean()) < 0.6
    cfg = quick("v2f", "model.encoder.noise_in_eval=true")
    assert build_generator(cfg).encoder.noise_in_eval
    encoder.noise_in_eval = False
    encoder.train()  # BatchNorm then uses the batch's statistics: the same for both calls, so only noise differs
    with torch.no_grad():
        assert not torch.allclose(encoder(mel), encoder(mel))
    encoder.add_noise = False
    with torch.no_grad():
        assert torch.equal(encoder(mel), encoder(mel))


def test_freeze_all_but_fuser_trains_the_fuser_alone_with_frozen_batchnorm() -> None:
    g = build_generator(quick("sf2f_fuser"))
    mel = torch.randn(2, 4, 40, 125)
    settle_batchnorm(g, mel)
    params = g.freeze_all_but_fuser()
    assert {id(p) for p in params} == {id(p) for p in g.fuser.parameters()}
    trainable = {n for n, p in g.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in g.named_parameters() if n.startswith("fuser.")}
    stats = {k: v.clone() for k, v in g.state_dict().items() if "running" in k or "num_batches" in k}
    assert stats
    g.train()  # a trainer calls train() every epoch; BatchNorm must stay in eval mode
    assert g.training and g.fuser.training and not g.encoder.training and not g.decoder.training
    for _ in range(2):
        out = g(mel)
        sum(x.mean() for x in out.images).backward()
    after = g.state_dict()
    assert all(torch.equal(stats[k], after[k]) for k in stats)
    assert all(p.grad is None for n, p in g.named_parameters() if not n.startswith("fuser."))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.fuser.parameters())
    g.freeze_all_but_fuser(freeze_batchnorm=False).clear()
    g.train()
    assert g.encoder.training  # bn_mode as_original: BatchNorm follows train()
    g(mel)
    assert not all(torch.equal(stats[k], g.state_dict()[k]) for k in stats)
    with pytest.raises(ValueError, match="no fuser"):
        build_generator(quick("sf2f_1st_stage")).freeze_all_but_fuser()


def test_bf16_autocast_runs_fusion_with_masks() -> None:
    g = build_generator(quick("sf2f_mid_fuser")).train()
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = g(torch.randn(2, 3, 40, 125), mask)
    assert all(torch.isfinite(x).all() for x in out.images) and out.embedding.shape == (2, 64)


def test_stage_one_gradients_reach_every_parameter() -> None:
    g = build_generator(quick("sf2f_mid_1st_stage")).train()
    out = g(torch.randn(3, 40, 120))
    sum(x.square().mean() for x in out.images).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


# ---- discriminators ------------------------------------------------------------------------------------------------


def test_build_cnn_puts_norm_and_activation_before_every_conv_but_the_first() -> None:
    cnn, width = build_cnn(parse_arch("C4-64-2,C4-128-2,C4-256-2"))
    kinds = [type(m).__name__ for m in cnn]
    assert kinds == ["Conv2d", "BatchNorm2d", "LeakyReLU", "Conv2d", "BatchNorm2d", "LeakyReLU", "Conv2d"]
    assert width == 256 and cnn[2].negative_slope == 0.1 and cnn[0].padding == (0, 0)
    v2f, _ = build_cnn(parse_arch("C1-32-1-0,C4-64-2-1"), normalization="none", activation="leakyrelu-0.2")
    assert [type(m).__name__ for m in v2f] == ["Conv2d", "LeakyReLU", "Conv2d"] and v2f[2].padding == (1, 1)
    same, _ = build_cnn(parse_arch("C3-8-1"), padding="same")
    assert same[0].padding == (1, 1)
    with pytest.raises(ValueError, match="odd kernel"):
        build_cnn(parse_arch("C4-8-1"), padding="same")
    with pytest.raises(ValueError, match="bad layer 'X4-64-2'"):
        parse_arch("C4-32-2,X4-64-2")


def test_feature_map_sizes_of_section_2_5() -> None:
    faces64, faces128 = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 128, 128)
    patch = PatchDiscriminator(parse_arch("C4-8-2,C4-8-2,C4-8-2"))
    assert patch(faces64).shape == (2, 1, 6, 6)  # 64 -> 31 -> 14 -> 6
    assert PatchDiscriminator(parse_arch("C4-8-2,C4-8-2,C4-8-2,C4-8-2"))(faces128).shape == (2, 1, 6, 6)
    cnn, _ = build_cnn(parse_arch("C1-4-1-0,C4-4-2-1,C4-4-2-1,C4-4-2-1,C4-8-1-0"), normalization="none")
    assert cnn(faces64).shape == (2, 8, 5, 5)  # v2f: 64 -> 32 -> 16 -> 8 -> 5
    with pytest.raises(ValueError, match="at least one identity"):
        AcDiscriminator(parse_arch("C4-8-2"), num_ids=0)


def test_sf2f_discriminators_cannot_see_a_colour_cast_or_contrast_shared_by_the_whole_batch() -> None:
    """SF2F's discriminators normalise their first convolution's output over the batch (§2.5), and the fakes go through
    them in a batch of their own (§3.2): a colour offset or contrast change common to every fake of a batch moves that
    output by a per-channel constant (valid padding: no border), which BatchNorm removes. So only the pixel and
    perceptual losses can correct a batch-wide colour cast (notebook 05); voice2face's unnormalised D is not blind."""
    torch.manual_seed(0)
    cfg = quick("sf2f_1st_stage")
    discriminators = build_discriminators(cfg, num_ids=5).train()
    faces = torch.randn(8, 3, 64, 64)
    cast = faces + torch.tensor([1.5, -0.7, 0.9]).view(1, 3, 1, 1)
    with torch.no_grad():
        patch, ac = discriminators.image[0], discriminators.ac[0]
        assert torch.allclose(patch(cast), patch(faces), atol=1e-5)
        assert torch.allclose(patch(2.0 * faces), patch(faces), atol=1e-5)
        assert torch.allclose(ac(cast).real_logits, ac(faces).real_logits, atol=1e-5)
        # the blindness is the batch statistics': one image's cast, or running statistics, are seen
        one = faces.clone()
        one[0] += 1.5
        assert (patch(one) - patch(faces)).abs().max() > 1e-2
        assert (patch.eval()(cast) - patch(faces)).abs().max() > 1e-2
        v2f_ac = build_discriminators(quick("v2f"), num_ids=5).ac[0]
        assert (v2f_ac(cast).real_logits - v2f_ac(faces).real_logits).abs().max() > 1e-4


# ---- builder and fast inference ------------------------------------------------------------------------------------


def test_builder_rejects_decoder_widths_that_miss_the_image_size() -> None:
    with pytest.raises(ConfigError, match="model.decoder.channels"):
        build_generator(quick("sf2f_1st_stage", "model.decoder.channels=[512,256,128,64]"))


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_optimised_inference_computes_the_same_function(name: str) -> None:
    torch.manual_seed(0)
    g = build_generator(quick(name))
    fusion = g.fuser is not None
    mel = torch.randn(3, 4, 40, 125) if fusion else torch.randn(3, 40, 131)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool) if fusion else None
    settle_batchnorm(g, mel, mask)
    fast = optimize_for_inference(g)
    assert not any(p.requires_grad for p in fast.parameters())
    with torch.inference_mode():
        for frames in (100, 125, 150):
            args = (mel[..., :frames], mask)
            ref, out = g(*args), fast(*args)
            for a, b in zip(ref.images, out.images):
                assert a.shape == b.shape and b.is_contiguous()
                assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
            assert torch.allclose(ref.embedding, out.embedding, atol=1e-5)
    with pytest.raises(RuntimeError, match="cannot train"):
        fast.train()(mel, mask)
    assert g.training is False and isinstance(fast, Generator)
