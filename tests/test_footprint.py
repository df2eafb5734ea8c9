"""The cost of a training iteration (sf2f.train.footprint): parameter counts, saved-tensor memory, state bytes."""

from __future__ import annotations

import pytest

from sf2f.config import load_config
from sf2f.models import build_generator, count_parameters
from sf2f.train.footprint import TRAINABLE_BYTES, measure_step, module_parameters, synthetic_batch

PER_IDENTITY = 1_025  # the AC identity head: Linear(1024 -> num_ids) with bias (recipe §2.6)


def test_module_parameters_at_paper_width_equal_the_reference() -> None:
    # recipe §2.6: SF2F-64 with the fuser; the AC head grows by 1,025 per identity
    counts = module_parameters(load_config("sf2f_fuser"), num_ids=10)
    assert counts["voice encoder"] == 4_848_192
    assert counts["fuser"] == 786_432
    assert counts["face decoder"] == 11_566_083
    assert counts["image discriminators"] == 659_521
    assert counts["AC discriminators"] == 923_457 + PER_IDENTITY * 10
    assert counts["face embedder (frozen)"] > 20_000_000  # FaceNet
    # v2f has no perceptual loss, so no FaceNet, and no image discriminator
    v2f = module_parameters(load_config("v2f"), num_ids=1)
    assert v2f["face embedder (frozen)"] == 0 and v2f["image discriminators"] == 0


def test_synthetic_batch_has_the_shapes_each_stage_trains_on() -> None:
    stage1 = synthetic_batch(load_config("sf2f_1st_stage", profile="quick"), 3, num_ids=5)
    assert tuple(stage1["mel"].shape) == (3, 40, 125) and "segments" not in stage1
    fuser_cfg = load_config("sf2f_mid_fuser", profile="quick")
    fuser = synthetic_batch(fuser_cfg, 2, num_ids=5)
    assert tuple(fuser["segments"].shape) == (2, fuser_cfg.data.max_segments, 40, 125)
    assert fuser["mask"].all() and tuple(fuser["image"].shape) == (2, 3, 128, 128)
    assert int(stage1["label"].max()) < 5


def test_saved_memory_grows_linearly_with_the_batch_and_state_counts_what_trains() -> None:
    cfg = load_config("sf2f_fuser", profile="quick")
    a = measure_step(cfg, batches=(2, 3), num_ids=16)
    b = measure_step(cfg, batches=(2, 4), num_ids=16)
    for p in ("generator", "image discriminators", "AC discriminators"):  # three backward passes (§3.2)
        assert a.saved_per_sample[p] > 0
        assert b.saved_per_sample[p] == pytest.approx(a.saved_per_sample[p], rel=0.02)
    assert a.activation_bytes(8) > a.activation_bytes(4) > 0
    # the fuser stage trains only the fuser (and the discriminators); encoder, decoder and face embedder are frozen
    generator = build_generator(cfg)
    assert a.trainable == a.parameters["fuser"] + a.parameters["image discriminators"] + a.parameters["AC discriminators"]
    assert a.frozen == count_parameters(generator) - a.parameters["fuser"] + a.parameters["face embedder (frozen)"]
    assert a.state_bytes == TRAINABLE_BYTES * a.trainable + 4 * a.frozen
    assert a.memory_bytes(8) == a.state_bytes + a.activation_bytes(8)
    assert a.seconds > 0 and a.seconds_batch == 3 and a.peak_bytes is None  # a measured peak on CUDA only


def test_two_batch_sizes_are_required() -> None:
    with pytest.raises(ValueError, match="two sizes"):
        measure_step(load_config("sf2f_1st_stage", profile="quick"), batches=(3, 3))
