"""Configs: the paper numbers (recipe §1.4-3.4), profiles that scale without forking, and clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from sf2f.audio import pad_value
from sf2f.config import (
    PAPER_CONFIGS,
    PROFILES,
    ConfigError,
    ExperimentConfig,
    config_diff,
    config_from_dict,
    flatten_config,
    load_config,
    load_resolved_config,
    save_config,
)
from sf2f.config.loader import RETIRED_KEYS, profile_layers


@pytest.mark.parametrize("name", PAPER_CONFIGS)
@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_every_paper_config_loads_under_every_profile(name: str, profile: str | None) -> None:
    cfg = load_config(name, profile=profile)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.name == name
    assert cfg.profile == profile


def test_paper_numbers_match_the_reference() -> None:
    v2f, s1, fuser = load_config("v2f"), load_config("sf2f_1st_stage"), load_config("sf2f_fuser")
    mid, mid_fuser = load_config("sf2f_mid_1st_stage"), load_config("sf2f_mid_fuser")
    audio = s1.data.audio
    # §1.4: VAD and logfbank
    assert (audio.vad_aggressiveness, audio.vad_frame_ms, audio.vad_padding_ms, audio.vad_trigger_ratio) == (1, 30, 300, 0.9)
    assert (audio.n_mels, audio.win_ms, audio.hop_ms, audio.n_fft, audio.preemphasis) == (40, 25.0, 10.0, 512, 0.97)
    assert (audio.window, audio.f_min, audio.f_max) == ("rectangular", 0.0, 8000.0)
    assert (audio.mel_mean, audio.mel_std) == (10.9915, 3.1661)
    assert round(pad_value(audio), 4) == -3.4716
    # §1.6: crops and segments
    assert s1.data.crop_frames == [100, 150]
    assert (s1.data.segment_frames, s1.data.segment_stride, s1.data.max_segments) == (125, 125, 20)
    # §2.1: encoders
    assert v2f.model.encoder.kind == "cnn" and v2f.model.encoder.add_noise
    assert s1.model.encoder.kind == "inception" and not s1.model.encoder.add_noise
    assert s1.model.encoder.channels == [256, 384, 576, 864] and s1.model.encoder.embed_dim == 512
    # §2.3 decoders, §2.5 discriminators
    assert (v2f.model.decoder.kind, s1.model.decoder.kind, mid.model.decoder.kind) == ("v2f", "gan", "gan_multires")
    assert v2f.model.discriminators.ac_archs == ["C1-32-1-0,C4-64-2-1,C4-128-2-1,C4-256-2-1,C4-512-1-0"]
    assert mid.model.discriminators.image_archs[1] == "C4-64-2,C4-128-2,C4-256-2,C4-512-2"
    # §3.3 loss weights
    assert (v2f.loss.l1_weight, v2f.loss.perceptual_weight, v2f.loss.ac_loss_weight, v2f.loss.d_img_weight) == (100, 0, 1, -1)
    assert (s1.loss.l1_weight, s1.loss.perceptual_weight, s1.loss.ac_loss_weight) == (10, 100, 0.05)
    assert (mid.loss.l1_weight, mid.data.image_size) == (100, 128)
    assert s1.loss.perceptual_layer_weights == [1 / 16, 1 / 8, 1 / 4, 1.0]
    # §3.4 schedule
    assert (s1.optim.lr, s1.optim.betas, s1.optim.batch_size, s1.optim.epochs) == (5e-4, [0.9, 0.999], 256, 12000)
    assert (s1.optim.decay_lr_after_epochs, s1.optim.eval_mode_after_epochs, s1.optim.decay_ac_lr) == (10000, 10000, False)
    for f in (fuser, mid_fuser):
        assert f.model.fuser.enabled and f.optim.stage == "fuser"
        assert (f.optim.lr, f.optim.epochs, f.optim.eval_mode_after_epochs) == (1e-4, 50, 100)
        assert f.eval.face_gen_mode == "naive"
    # §4
    assert s1.eval.vgg_box == [0.235, 0.195, 0.765, 0.915] and s1.eval.vfs_splits == 5
    assert s1.eval.recall_ks == [1, 2, 5, 10, 20, 50] and s1.eval.recall_group_size == 100


def test_fuser_config_extends_stage_one_only_where_the_fuser_stage_differs() -> None:
    changed = set(config_diff(load_config("sf2f_1st_stage"), load_config("sf2f_fuser")))
    assert "model.fuser.enabled" in changed and "optim.lr" in changed
    assert not any(k.startswith(("loss.", "data.", "model.encoder", "model.decoder")) for k in changed), changed


@pytest.mark.parametrize("name", PAPER_CONFIGS)
@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_change_only_the_keys_they_name(name: str, profile: str) -> None:
    general, fuser = profile_layers(profile)
    named = {key for _, layer in [*general, *fuser] for key in flatten_config(layer)}
    changed = set(config_diff(load_config(name), load_config(name, profile=profile)))
    assert changed <= named, changed - named


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_long_profile_lengthens_stage_one_and_keeps_the_demo_fuser_stage(name: str) -> None:
    demo, long = load_config(name, profile="demo"), load_config(name, profile="long")
    changed = set(config_diff(demo, long))
    # the same data, networks and losses as demo: only the schedule moves
    assert all(key.startswith("optim.") for key in changed), changed
    if demo.optim.stage == "fuser":  # the paper's fuser stage is short: demo's 60 epochs, from the profile's section
        assert not changed and long.sources[-1].endswith("long.yaml (fuser_stage)")
    else:
        assert long.optim.epochs > 40 * demo.optim.epochs and long.optim.lr_scale == 1.0
        assert long.optim.decay_lr_after_epochs < long.optim.eval_mode_after_epochs < long.optim.epochs
        assert not any("fuser_stage" in source for source in long.sources)


def test_fuser_stage_section_is_checked_and_belongs_to_profiles_only(tmp_path: Path) -> None:
    bad = _write(tmp_path, "fuser_stage:\n  optim:\n    epoch: 3\n", "bad.yaml")
    with pytest.raises(ConfigError, match=r"bad.yaml \(fuser_stage\): key 'optim.epoch': .*Did you mean.*'epochs'"):
        load_config("sf2f_fuser", profile=bad)
    scalar = _write(tmp_path, "fuser_stage: 3\n", "scalar.yaml")
    with pytest.raises(ConfigError, match="scalar.yaml: key 'fuser_stage' must hold a mapping"):
        load_config("sf2f_fuser", profile=scalar)
    # a paper config is one recipe: a stage section there is an unknown key
    with pytest.raises(ConfigError, match="key 'fuser_stage': Key 'fuser_stage' not in 'ExperimentConfig'"):
        load_config(_write(tmp_path, "base: " + str(Path(load_config("v2f").sources[0])) + "\nfuser_stage: {}\n"))


def test_a_fuser_stage_section_is_checked_for_stage_one_configs_too(tmp_path: Path) -> None:
    bad = _write(tmp_path, "fuser_stage:\n  optim:\n    epoch: 3\n", "bad.yaml")
    with pytest.raises(ConfigError, match=r"bad.yaml \(fuser_stage\): key 'optim.epoch'"):
        load_config("sf2f_1st_stage", profile=bad)


def test_profile_base_chain_and_fuser_section_apply_in_order(tmp_path: Path) -> None:
    _write(tmp_path, "optim:\n  epochs: 7\n  batch_size: 4\nfuser_stage:\n  optim:\n    epochs: 2\n", "parent.yaml")
    child = _write(tmp_path, "base: parent.yaml\noptim:\n  epochs: 9\nfuser_stage:\n  optim:\n    epochs: 3\n",
                   "child.yaml")
    stage1, fuser = load_config("sf2f_1st_stage", profile=child), load_config("sf2f_fuser", profile=child)
    assert (stage1.optim.epochs, stage1.optim.batch_size) == (9, 4)
    assert (fuser.optim.epochs, fuser.optim.batch_size) == (3, 4)  # the child's section wins over the parent's
    assert load_config("sf2f_fuser", profile=child, overrides=["optim.epochs=5"]).optim.epochs == 5


def test_quick_profile_scales_sizes_and_steps() -> None:
    paper, quick = load_config("sf2f_1st_stage", "paper"), load_config("sf2f_1st_stage", "quick")
    assert quick.model.width_mult < paper.model.width_mult
    assert quick.optim.batch_size < paper.optim.batch_size and quick.optim.epochs < paper.optim.epochs
    assert quick.loss == paper.loss


def _write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_misspelled_key_names_key_file_and_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, "optim:\n  bach_size: 8\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"{path}: key 'optim.bach_size'" in message and "Did you mean: 'batch_size'?" in message


def test_an_unknown_section_or_key_is_named_with_its_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  fuser:\n    heads: 4\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: key 'model.fuser.heads': Key 'heads' not in 'FuserConfig'$"):
        load_config(path)
    empty = _write(tmp_path, "optm: {}\n", "empty.yaml")  # even with nothing in it
    with pytest.raises(ConfigError, match="empty.yaml: key 'optm': .*Did you mean.*'optim'"):
        load_config(empty)


def test_values_convert_to_their_fields_type(tmp_path: Path) -> None:
    # YAML's 3 is an int, the field a float; a quoted 'false' is the bool it spells (the original's untyped flags
    # took the string "False" as true, recipe §6 item 6)
    cfg = load_config(_write(tmp_path, "loss:\n  l1_weight: 3\nmodel:\n  encoder:\n    add_noise: 'false'\n"))
    assert type(cfg.loss.l1_weight) is float and cfg.loss.l1_weight == 3.0
    assert cfg.model.encoder.add_noise is False
    betas = load_config("v2f", overrides=["optim.betas=[0, 0.5]"]).optim.betas
    assert betas == [0.0, 0.5] and all(type(b) is float for b in betas)


def test_misspelled_key_in_a_base_file_names_that_file(tmp_path: Path) -> None:
    base = _write(tmp_path, "loss:\n  l1_wieght: 3\n", "base.yaml")
    child = _write(tmp_path, "base: base.yaml\nname: child\n", "child.yaml")
    with pytest.raises(ConfigError, match="base.yaml: key 'loss.l1_wieght': .*Did you mean.*'l1_weight'"):
        load_config(child)
    assert base.exists()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("optim:\n  batch_size: eight\n", "optim.batch_size"),
        ("model:\n  encoder:\n    add_noise: perhaps\n", "model.encoder.add_noise"),
        ("optim:\n  batch_size: true\n", "optim.batch_size"),  # a bool is never taken for a number
        ("model:\n  encoder:\n    kind: lstm\n", "model.encoder.kind"),
        ("data:\n  crop_frames: 100\n", "data.crop_frames"),
        ("optim: 3\n", "optim"),
    ],
)
def test_wrong_types_are_errors_naming_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert key in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("optim:\n  batch_size: 0\n", "optim.batch_size"),
        ("data:\n  crop_frames: [150, 100]\n", "data.crop_frames"),
        ("data:\n  image_size: 96\n", "data.image_size"),
        ("model:\n  decoder:\n    kind: gan_multires\n", "data.image_size"),
        ("data:\n  audio:\n    vad_frame_ms: 25\n", "data.audio.vad_frame_ms"),
        ("model:\n  discriminators:\n    ac_archs: ['C4-64']\n", "model.discriminators.ac_archs"),
        ("optim:\n  stage: fuser\n", "optim.stage"),
        ("optim:\n  epochs: 10\n  pixel_warmup_epochs: 10\n", "optim.pixel_warmup_epochs"),
        ("optim:\n  pixel_warmup_epochs: 5\n  disable_l1_after_epochs: 4\n", "optim.pixel_warmup_epochs"),
        ("loss:\n  l1_weight: 0\noptim:\n  pixel_warmup_epochs: 1\n", "optim.pixel_warmup_epochs"),
    ],
)
def test_impossible_values_are_errors_naming_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"key '{key}'" in str(err.value) and str(path) in str(err.value)


def test_overrides_are_checked_like_files() -> None:
    cfg = load_config("v2f", overrides=["optim.batch_size=4", "model.encoder.noise_in_eval=true"])
    assert cfg.optim.batch_size == 4 and cfg.model.encoder.noise_in_eval
    assert cfg.sources[-2:] == ["override 'optim.batch_size=4'", "override 'model.encoder.noise_in_eval=true'"]
    with pytest.raises(ConfigError, match="override 'optim.lrr=1': key 'optim.lrr': .*Did you mean: 'lr'"):
        load_config("v2f", overrides=["optim.lrr=1"])
    with pytest.raises(ConfigError, match="override 'optim.epochs=many': key 'optim.epochs'"):
        load_config("v2f", overrides=["optim.epochs=many"])
    with pytest.raises(ConfigError, match="override 'optim.epochs=0'.*key 'optim.epochs' must be positive"):
        load_config("v2f", overrides=["optim.epochs=0"])
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config("v2f", overrides=["optim.lr"])


def test_unknown_names_list_what_exists() -> None:
    with pytest.raises(ConfigError, match="available: .*sf2f_fuser"):
        load_config("sf2f_fusr")
    with pytest.raises(ConfigError, match="available: .*quick"):
        load_config("v2f", profile="quik")


def test_a_yaml_file_anywhere_can_start_from_a_shipped_config_or_profile(tmp_path: Path) -> None:
    mine = _write(tmp_path, "base: sf2f_fuser\nname: mine\nloss:\n  l1_weight: 3.0\n", "mine.yaml")
    cfg = load_config(mine)
    assert cfg.name == "mine" and cfg.loss.l1_weight == 3.0
    assert cfg.model.fuser.enabled and cfg.loss.perceptual_weight == load_config("sf2f_fuser").loss.perceptual_weight
    # a file name works too, and a file of that name next to the YAML wins over the shipped one
    assert load_config(_write(tmp_path, "base: v2f.yaml\n", "other.yaml")).name == "v2f"
    _write(tmp_path, "base: sf2f_1st_stage\nname: local_v2f\n", "v2f.yaml")
    assert load_config(tmp_path / "other.yaml").name == "local_v2f"
    profile = _write(tmp_path, "base: demo\noptim:\n  epochs: 7\n", "my_profile.yaml")
    scaled = load_config("v2f", profile=profile)
    assert scaled.optim.epochs == 7 and scaled.model.width_mult == load_config("v2f", profile="demo").model.width_mult
    with pytest.raises(ConfigError, match=r"nope.yaml: base 'nosuch' is neither .* \(available: sf2f_1st_stage, .*v2f\)"):
        load_config(_write(tmp_path, "base: nosuch\n", "nope.yaml"))


def test_circular_base_chain_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "base: b.yaml\n", "a.yaml")
    _write(tmp_path, "base: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.yaml")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "optim: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{path}: not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="list.yaml: a config file must hold a mapping, got list"):
        load_config(_write(tmp_path, "- optim\n", "list.yaml"))
    with pytest.raises(ConfigError, match="number.yaml: key 'base' must be a file name, got 3"):
        load_config(_write(tmp_path, "base: 3\n", "number.yaml"))
    with pytest.raises(ConfigError, match="override 'optim.betas=\\[0.9': the value is not valid YAML"):
        load_config("v2f", overrides=["optim.betas=[0.9"])


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_saved_config_round_trips(tmp_path: Path, name: str) -> None:
    cfg = load_config(name, profile="demo", overrides=["run.seed=7"])
    path = save_config(cfg, tmp_path / "resolved" / "config.yaml")
    again = load_resolved_config(path)
    assert again == cfg and again.run.seed == 7


def test_retired_keys_of_saved_configs_are_dropped_and_other_unknown_keys_are_errors(tmp_path: Path) -> None:
    """Runs, checkpoints and trained_weights/manifest.json saved before a key retired keep loading."""
    cfg = load_config("sf2f_fuser", profile="quick")
    saved = dataclasses.asdict(cfg)
    saved["model"]["fuser"]["attention"] = "general"  # as every run saved it until the key retired
    assert "model.fuser.attention" in RETIRED_KEYS
    assert config_from_dict(saved) == cfg and saved["model"]["fuser"]["attention"] == "general"  # input left as it was
    path = _write(tmp_path, yaml.safe_dump(saved), "config.yaml")
    assert load_resolved_config(path) == cfg
    assert load_config(path).model == cfg.model  # `train --resume` loads a run's config.yaml this way
    saved["model"]["fuser"]["heads"] = 4
    with pytest.raises(ConfigError, match="checkpoint.pt: key 'model.fuser.heads': Key 'heads' not in"):
        config_from_dict(saved, "checkpoint.pt")
