"""The trainer (recipe §3.2-3.5): one iteration's terms, weights and order (and the original's numbers), the fuser
stage, exact resume, validation,
the face embedder, logs and grids, the CLI, and two processes with DDP. Everything runs on a tiny prepared dataset
(8 training and 2 validation identities) with the `quick` networks, a few iterations each.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from fixtures_data import build_dataset
from subprocess_runs import child_env, run_checked
from torch import nn

from benchmarks.original_train import original_training_step
from sf2f.checkpoints import CheckpointError, load_checkpoint, load_generator
from sf2f.cli import main
from sf2f.config import FaceEmbedderConfig, load_config
from sf2f.data.datasets import generator_inputs
from sf2f.data.prepare import prepare
from sf2f.data.prepared import PreparedData
from sf2f.embedder_weights import (
    FaceEmbedderError,
    cosine_softmax_loss,
    embedder_seed,
    ensure_face_embedder,
    load_trained_embedder,
    resolve_face_embedder,
    train_face_embedder,
)
from sf2f.losses import PerceptualLoss
from sf2f.models import build_discriminators, build_generator
from sf2f.models.face_embedders import SmallFaceEmbedder
from sf2f.paths import folder_lock
from sf2f.train.distributed import parameter_hash
from sf2f.train.iteration import PerceptualTargets, TrainingStep
from sf2f.train.logs import read_log
from sf2f.train.trainer import Trainer, train_or_load
from sf2f.train.validation import face_spread, recall_at_k
from sf2f.train.visualize import LiveLossPlot, loss_curves, sample_grid, sample_grid_files

# a few iterations per run: 8 identities, batch 4 -> 2 per epoch; the LR decay and the eval-mode switch both fire
SHORT = [
    "optim.batch_size=4",
    "optim.epochs=4",
    "optim.eval_every_epochs=2",
    "optim.visualize_every=3",
    "optim.checkpoint_every_steps=3",
    "optim.decay_lr_after_epochs=2",
    "optim.eval_mode_after_epochs=3",
    "run.log_every=1",
    "run.threads=1",
]


#: a resume is bit-exact on the CPU; on a GPU only with deterministic kernels (cuDNN's autotuner, on otherwise, may
#: pick other convolution algorithms in the resumed process): what the resume tests check where a GPU is present
EXACT_ON_GPU = ("run.deterministic=true",) if torch.cuda.is_available() else ()


def quick(name: str, *more: str):
    return load_config(name, profile="quick", overrides=[*SHORT, *more])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared tiny dataset with a trained face embedder in its default place."""
    root = tmp_path_factory.mktemp("training")
    build_dataset(root / "raw", n_per_sub=6)
    prepare(root / "raw", root / "prepared", progress=False)
    settings = FaceEmbedderConfig(width=4, epochs=4, batch_size=8)
    train_face_embedder(root / "prepared", root / "prepared" / "face_embedder.pt", settings, progress=False)
    return root / "prepared"


@pytest.fixture(scope="module")
def stage1(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished stage-1 run (the fuser stage starts from it)."""
    run = tmp_path_factory.mktemp("stage1") / "run"
    Trainer(quick("sf2f_1st_stage"), data, run, progress=False).fit()
    return run


def tensors(state, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a nested checkpoint, by path (random states excluded: they are compared by their effects)."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(state, torch.Tensor):
        out[prefix] = state
    elif isinstance(state, dict):
        for k, v in state.items():
            if k != "rng":
                out.update(tensors(v, f"{prefix}.{k}"))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            out.update(tensors(v, f"{prefix}[{i}]"))
    return out


def assert_same_checkpoints(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    ta, tb = tensors(sa), tensors(sb)
    assert ta.keys() == tb.keys() and len(ta) > 100
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, different[:5]
    assert sa["counters"] == sb["counters"] and sa["metrics"] == sb["metrics"] and sa["best"] == sb["best"]


# ---------------------------------------------------------------------------------------------------- loss terms


def quick_iteration(name: str, *overrides: str) -> tuple[TrainingStep, dict[str, torch.Tensor]]:
    """A TrainingStep of a quick-profile config (3 identities, perceptual targets computed in the batch, as the
    original does) and a random batch of 2 for it."""
    cfg = load_config(name, profile="quick", overrides=list(overrides))
    torch.manual_seed(0)
    g, d = build_generator(cfg), build_discriminators(cfg, num_ids=3)
    size = g.image_sizes[-1]
    batch = {"mel": torch.randn(2, cfg.data.audio.n_mels, 125), "image": torch.randn(2, 3, size, size),
             "label": torch.tensor([0, 2]), "face_row": torch.tensor([0, 1]),
             "flipped": torch.zeros(2, dtype=torch.bool)}
    loss = PerceptualLoss(SmallFaceEmbedder(64, 4), cfg.loss.perceptual_layer_weights, cfg.data.image_norm)
    targets = PerceptualTargets(loss, g.image_sizes, budget_bytes=0)

    def adam(module: nn.Module) -> torch.optim.Adam:
        return torch.optim.Adam(module.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))

    return TrainingStep(cfg, g, d, adam(g), [adam(m) for m in d.image], [adam(m) for m in d.ac], targets), batch


def test_the_generator_terms_and_weights_follow_section_3_3() -> None:
    for name, expected in [
        ("sf2f_1st_stage", {"l1_64": 10, "g_gan_img_64": 1, "g_ac_ce_64": 0.05, "g_gan_ac_64": 0.05,
                            "perceptual_64": 100}),
        ("v2f", {"l1_64": 100, "g_ac_ce_64": 1, "g_gan_ac_64": 1}),
        ("sf2f_mid_1st_stage", {f"{k}_{s}": w for s in (64, 128) for k, w in
                                [("l1", 100), ("g_gan_img", 1), ("g_ac_ce", 0.05), ("g_gan_ac", 0.05),
                                 ("perceptual", 100)]}),
    ]:
        step, batch = quick_iteration(name)
        with torch.no_grad():  # in train mode BatchNorm uses the batch's statistics: the faces the step makes
            fake = step.generator(batch["mel"]).images[-1]
        terms = step(batch)
        assert terms is not None
        assert {k for k in terms if not k.startswith("d_") and k != "g_total"} == set(expected), name
        weighted = sum(w * terms[k] for k, w in expected.items())
        assert terms["g_total"].item() == pytest.approx(weighted.item(), rel=1e-5), name
        assert terms[f"l1_{fake.shape[-1]}"].item() == pytest.approx((fake - batch["image"]).abs().mean().item(),
                                                                    rel=1e-5)
        # the L1 switch of §3.4 drops the pixel terms only
        step, batch = quick_iteration(name)
        off = step(batch, l1_on=False)
        assert off is not None and set(off) == {k for k in terms if not k.startswith("l1_")}, name


def test_the_discriminators_are_updated_unweighted_unless_asked() -> None:
    for scaled, weights in [("false", {"d_img_64": 1.0, "d_ac_gan_64": 1.0, "d_ac_ce_real_64": 1.0}),
                            ("true", {"d_img_64": 1.0, "d_ac_gan_64": 0.05, "d_ac_ce_real_64": 0.05})]:
        step, batch = quick_iteration("sf2f_1st_stage", f"loss.scale_discriminator_update={scaled}")
        terms = step(batch)
        assert terms is not None and {k for k in terms if k.startswith("d_") and k != "d_total"} == set(weights)
        weighted = sum(w * terms[k] for k, w in weights.items())
        assert terms["d_total"].item() == pytest.approx(weighted.item(), rel=1e-5)
        assert terms["d_ac_gan_64"].item() != pytest.approx(terms["d_total"].item())  # the weights tell them apart


def test_one_iteration_runs_in_the_order_of_section_3_2() -> None:
    """G forward (through the discriminators on the fakes), G step, then the image discriminators' step, then the AC
    discriminators'; each discriminator sees the detached fakes and the reals in separate calls, fakes first."""
    step, batch = quick_iteration("sf2f_1st_stage")
    events: list[str] = []
    real = batch["image"]
    for who, module in (("image D", step.discriminators.image[0]), ("AC D", step.discriminators.ac[0])):
        module.register_forward_pre_hook(
            lambda m, args, who=who: events.append(f"{who} on {'real' if args[0] is real else 'fake'}"))
    step.generator.register_forward_hook(lambda *_: events.append("G forward"))
    for who, optimizer in (("G step", step.g_optimizer), ("image D step", step.image_d_optimizers[0]),
                           ("AC D step", step.ac_d_optimizers[0])):
        optimizer.register_step_post_hook(lambda *_, who=who: events.append(who))
    step(batch)
    assert events == ["G forward", "image D on fake", "AC D on fake", "G step",
                      "image D on fake", "image D on real", "image D step", "AC D on fake", "AC D on real", "AC D step"]


@pytest.mark.parametrize("name", ["sf2f_1st_stage", "sf2f_mid_1st_stage"])
def test_the_iteration_computes_the_originals_losses_and_updates(name: str) -> None:
    """One TrainingStep against the original's iteration written plainly (benchmarks/original_train.py), from the
    same weights and batch: the same generator loss, and the same weights and BatchNorm statistics after it (up to
    float rounding: the terms are summed in another order)."""
    step, batch = quick_iteration(name)
    g, d = copy.deepcopy(step.generator), copy.deepcopy(step.discriminators)
    embedder = copy.deepcopy(step.perceptual.loss.embedder)

    def adam(module: nn.Module) -> torch.optim.Adam:
        return torch.optim.Adam(module.parameters(), lr=step.cfg.optim.lr, betas=tuple(step.cfg.optim.betas))

    torch.manual_seed(1)
    terms = step(batch)
    torch.manual_seed(1)
    total = original_training_step(batch, g, d, embedder, adam(g), [adam(m) for m in [*d.image, *d.ac]], step.cfg.loss)
    assert terms is not None and terms["g_total"].item() == pytest.approx(total, rel=1e-5)
    for ours, theirs in ((step.generator, g), (step.discriminators, d)):
        mine, other = ours.state_dict(), theirs.state_dict()
        assert mine.keys() == other.keys()
        assert all(torch.allclose(mine[k].float(), other[k].float(), rtol=1e-4, atol=1e-6) for k in mine)
    moved = quick_iteration(name)[0].generator.state_dict()
    assert any(not torch.equal(moved[k], v) for k, v in step.generator.state_dict().items())  # the step did something


def test_cosine_softmax_loss_on_a_hand_computed_case() -> None:
    centres = torch.eye(2, 4)  # two orthogonal identities
    emb = torch.tensor([[3.0, 0, 0, 0]])  # points exactly at identity 0 (its length does not matter)
    s, m = 2.0, 0.2
    expected = -math.log(math.exp(s * (1 - m)) / (math.exp(s * (1 - m)) + math.exp(0.0)))
    assert cosine_softmax_loss(emb, centres, torch.tensor([0]), s, m).item() == pytest.approx(expected, rel=1e-5)
    # pointing at the other identity costs more
    assert cosine_softmax_loss(emb, centres, torch.tensor([1]), s, m).item() > 2


def test_recall_at_k_hand_cases() -> None:
    gallery = torch.eye(3)
    perfect = recall_at_k(gallery.clone(), gallery, torch.tensor([0, 1, 2]), [1, 2])
    assert perfect == {1: 1.0, 2: 1.0}
    # probe 0 is closest to identity 1, then to its own identity 0
    probes = torch.tensor([[0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert recall_at_k(probes, gallery, torch.tensor([0, 1, 2]), [1, 2]) == pytest.approx({1: 2 / 3, 2: 1.0})


def test_perceptual_targets_are_cached_once_within_the_budget(data: Path) -> None:
    split = PreparedData(data).split("train")
    embedder = SmallFaceEmbedder(64, 4).eval()
    calls = []
    embedder.register_forward_hook(lambda *a: calls.append(1))
    loss = PerceptualLoss(embedder)
    targets = PerceptualTargets(loss, [64], budget_bytes=1 << 30)
    n_faces = len(split.faces)
    assert targets.fill(split, "imagenet", hflip=True, device=torch.device("cpu")) == 2 * n_faces
    from sf2f.faces import normalize_images

    rows = [0, 3]
    real = normalize_images(split.face_pixels[rows])
    before = len(calls)
    cached = targets(0, real, [2 * r for r in rows])
    assert len(calls) == before  # served from the cache, no embedder call
    fresh = loss.target_features(real)
    assert all(torch.allclose(c, f, atol=2e-3, rtol=2e-3) for c, f in zip(cached, fresh))  # float16 storage
    mirrored = targets(0, real.flip(-1), [2 * r + 1 for r in rows])
    assert all(torch.allclose(c, f, atol=2e-3, rtol=2e-3) for c, f in zip(mirrored, loss.target_features(real.flip(-1))))
    one_face = sum(t[0].numel() * 2 for t in fresh)
    small = PerceptualTargets(loss, [64], budget_bytes=3 * one_face)
    assert small.fill(split, "imagenet", hflip=False, device=torch.device("cpu")) == 3
    assert PerceptualTargets(loss, [64], 0).fill(split, "imagenet", False, torch.device("cpu")) == 0
    assert targets(0, real, [2 * r for r in rows]) is not None and len(small(0, real, [10**6, 10**6 + 2])) == 4


# ---------------------------------------------------------------------------------------------------- face embedder


def test_face_embedder_training_and_loading(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "emb.pt"
    # long enough to learn for sure: at width 4 and 6 epochs (12 steps) the epoch loss wanders within +-0.3 of its
    # start on some CPUs; at width 8 and 20 epochs it falls from about 5.5 to 2.8 (the tiny set's faces are random
    # colours, so it memorises them), and the accuracy passes 0.8 against a chance of 1 in 8 training identities
    settings = FaceEmbedderConfig(width=8, epochs=20, batch_size=8)
    result = train_face_embedder(data, out, settings, progress=False)["history"]
    assert len(result["loss"]) == len(result["accuracy"]) == 20
    assert max(result["loss"][-3:]) < result["loss"][0] - 1.0 and min(result["accuracy"][-3:]) > 0.5
    assert "face embedder: " in capsys.readouterr().out
    again = train_face_embedder(data, tmp_path / "emb2.pt", settings, progress=False)["history"]
    assert again["loss"] == result["loss"]  # seeded
    before = torch.random.get_rng_state()
    embedder = load_trained_embedder(out, data)
    assert torch.equal(torch.random.get_rng_state(), before)  # loading never moves a run's random stream
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        emb = embedder(x)
    assert emb.shape == (3, 512) and torch.allclose(emb.norm(dim=1), torch.ones(3))
    assert len(embedder.hidden_states(x)) == 4
    other = tmp_path / "other"
    build_dataset(tmp_path / "other_raw", n_per_sub=5, seed=3)
    prepare(tmp_path / "other_raw", other, progress=False)
    with pytest.raises(FaceEmbedderError, match="another prepared dataset"):
        load_trained_embedder(out, other)


def test_resolving_the_face_embedder_names_what_is_missing(data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch_home"))
    trained = load_config("sf2f_1st_stage", profile="quick")
    embedder, described = resolve_face_embedder(trained, data)
    assert isinstance(embedder, SmallFaceEmbedder) and "trained face embedder" in described
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FaceEmbedderError, match="train-face-embedder"):
        resolve_face_embedder(trained, empty)
    facenet = load_config("sf2f_1st_stage")  # the paper config: FaceNet
    lines: list[str] = []
    embedder, described = resolve_face_embedder(facenet, data, log=lines.append)
    assert isinstance(embedder, SmallFaceEmbedder) and "FaceNet weights not found" in lines[0]
    with pytest.raises(FaceEmbedderError, match=r"(?s)vggface2.*No trained face embedder"):
        resolve_face_embedder(facenet, empty)


def test_ensure_face_embedder_trains_once_per_setting(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "e.pt"
    cfg = quick("sf2f_1st_stage", f"model.face_embedder.trained_path={path}", "model.face_embedder.epochs=1")
    assert ensure_face_embedder(cfg, data, progress=False) == path
    stamp = path.stat().st_mtime_ns
    assert ensure_face_embedder(cfg, data, progress=False) == path and path.stat().st_mtime_ns == stamp  # reused
    longer = quick("sf2f_1st_stage", f"model.face_embedder.trained_path={path}", "model.face_embedder.epochs=2")
    ensure_face_embedder(longer, data, progress=False)
    assert load_checkpoint(path)["settings"]["epochs"] == 2  # other settings: trained again
    # the evaluation embedder: the same settings, beside it, from the evaluation protocol's seed
    scorer = ensure_face_embedder(longer, data, progress=False, role="eval")
    assert scorer == tmp_path / "e_eval.pt" and load_checkpoint(scorer)["seed"] == embedder_seed(longer, "eval")
    # both seeds are the same for runs of any seed: a seed-7 run reuses the files, it does not replace them
    seven = quick("sf2f_1st_stage", f"model.face_embedder.trained_path={path}", "model.face_embedder.epochs=2",
                  "run.seed=7")
    assert embedder_seed(seven, "eval") == embedder_seed(longer, "eval")
    assert embedder_seed(seven) == embedder_seed(longer) != embedder_seed(longer, "eval")
    stamps = path.stat().st_mtime_ns, scorer.stat().st_mtime_ns
    assert ensure_face_embedder(seven, data, progress=False) == path
    assert ensure_face_embedder(seven, data, progress=False, role="eval") == scorer
    assert (path.stat().st_mtime_ns, scorer.stat().st_mtime_ns) == stamps


# ---------------------------------------------------------------------------------------------------- training


def test_stage_one_trains_every_network_and_writes_its_run(stage1: Path, data: Path) -> None:
    state = load_checkpoint(stage1 / "checkpoints" / "latest.pt")
    assert state["counters"]["step"] == 8 and state["counters"]["g_optimizer_reset"]
    fresh = build_generator(quick("sf2f_1st_stage"))
    moved = [k for k, v in fresh.state_dict().items() if not torch.equal(v, state["generator"][k])]
    assert len(moved) > 0.9 * len(state["generator"])
    log = read_log(stage1)
    train = log[log.split == "train"]
    for name in ("l1_64", "perceptual_64", "g_gan_img_64", "g_ac_ce_64", "g_gan_ac_64", "d_img_64", "d_ac_gan_64",
                 "d_ac_ce_real_64", "g_total", "d_total", "lr", "skipped_steps"):
        assert (train.name == name).sum() == 8, name
    lr = train[train.name == "lr"].set_index("step")["value"]
    optim = quick("sf2f_1st_stage").optim
    assert lr[2] == pytest.approx(optim.lr * optim.lr_scale) and lr[8] < lr[6] < lr[4]  # linear decay from epoch 2
    val = log[log.split == "val"]
    assert set(val.name) == {"l1", "cosine", "recall_at_1", "spread"} and sorted(set(val.step)) == [4, 8]
    assert [s for s, _ in sample_grid_files(stage1)] == [3, 6]
    assert {p.name for p in (stage1 / "checkpoints").iterdir()} == {
        "latest.pt", "best_l1.pt", "best_cosine.pt", "best_recall_at_1.pt"}
    done = json.loads((stage1 / "done.json").read_text())
    assert done["steps"] == 8 and len(done["replica_hashes"]) == 1
    # validation was scored by a second embedder, not the perceptual loss's (eval.independent_embedder)
    scorer = load_checkpoint(data / "face_embedder_eval.pt")
    loss_seed = load_checkpoint(data / "face_embedder.pt")["seed"]
    assert scorer["seed"] == embedder_seed(quick("sf2f_1st_stage"), "eval") != loss_seed
    assert (stage1 / "config.yaml").exists() and json.loads((stage1 / "run.json").read_text())["data"] == str(data)
    generator, cfg = load_generator(stage1)
    assert cfg.name == "sf2f_1st_stage" and not generator.training
    assert torch.equal(generator.state_dict()["decoder.fc.0.weight"], state["generator"]["decoder.fc.0.weight"])
    # a misspelled checkpoint name lists the ones the run has
    listed = r"best_recal.pt: no such checkpoint \(this run has best_cosine, best_l1, best_recall_at_1, latest\)"
    with pytest.raises(FileNotFoundError, match=listed):
        load_generator(stage1, "best_recal")


def test_one_step_updates_generator_and_discriminators_but_never_the_embedder(data: Path, tmp_path: Path) -> None:
    trainer = Trainer(quick("sf2f_1st_stage"), data, tmp_path / "run", progress=False, log=lambda _: None)
    embedder = [p.clone() for p in trainer.embedder.parameters()]
    g0 = {k: v.clone() for k, v in trainer.generator.named_parameters()}
    d0 = {k: v.clone() for k, v in trainer.discriminators.named_parameters()}
    batch = next(trainer._batches(0, 0))
    terms = trainer.step(batch, 0)
    assert terms is not None and all(torch.isfinite(v) for v in terms.values())
    assert all(not torch.equal(g0[k], p) for k, p in trainer.generator.named_parameters())
    assert all(not torch.equal(d0[k], p) for k, p in trainer.discriminators.named_parameters())
    assert all(torch.equal(a, b) and b.grad is None for a, b in zip(embedder, trainer.embedder.parameters()))
    assert all(p.requires_grad for p in trainer.discriminators.parameters())
    # a non-finite loss skips the whole iteration and is counted
    g1 = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    bad = {**batch, "mel": torch.full_like(batch["mel"], float("nan"))}
    assert trainer.step(bad, 0) is None and trainer.counters.skipped == 1
    assert all(torch.equal(g1[k], v) for k, v in trainer.generator.state_dict().items())


def test_the_pixel_warmup_trains_the_generator_on_l1_alone(data: Path, tmp_path: Path) -> None:
    cfg = quick("sf2f_1st_stage", "optim.pixel_warmup_epochs=1")
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False, log=lambda _: None)
    batch = next(trainer._batches(0, 0))
    g0 = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    d0 = {k: v.clone() for k, v in trainer.discriminators.state_dict().items()}
    terms = trainer.step(batch, 0)
    assert terms is not None and set(terms) == {"l1_64", "g_total"}
    assert terms["g_total"].item() == pytest.approx(cfg.loss.l1_weight * terms["l1_64"].item(), rel=1e-6)
    assert not torch.equal(g0["decoder.fc.0.weight"], trainer.generator.state_dict()["decoder.fc.0.weight"])
    # the discriminators were neither updated nor run (their BatchNorm statistics are untouched too)
    assert all(torch.equal(d0[k], v) for k, v in trainer.discriminators.state_dict().items())
    terms = trainer.step(batch, 1)
    assert terms is not None and {"perceptual_64", "g_gan_img_64", "d_total"} <= set(terms)
    assert all(not torch.equal(d0[k], p) for k, p in trainer.discriminators.named_parameters())



@pytest.mark.parametrize("precise", [True, False])
def test_precise_bn_freezes_the_exact_statistics_at_the_eval_mode_switch(data: Path, tmp_path: Path,
                                                                         precise: bool) -> None:
    """With `optim.precise_bn_at_switch` the generator's frozen statistics are the average over the switch epoch's
    batches for the weights at the switch (they then stay: eval mode never updates them); without it, they are not."""
    cfg = quick("sf2f_1st_stage", f"optim.precise_bn_at_switch={precise}")
    switch = cfg.optim.eval_mode_after_epochs
    at_switch = {}

    def keep(trainer: Trainer, step: int) -> None:
        if step == trainer.steps_per_epoch * switch:  # the last iteration before the switch epoch begins
            at_switch["generator"] = copy.deepcopy(trainer.generator)
            at_switch["rng"] = torch.get_rng_state()

    trainer = Trainer(cfg, data, tmp_path / "run", callbacks=[keep], progress=False, log=lambda _: None)
    trainer.fit()
    expected = at_switch["generator"]
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(at_switch["rng"])  # the encoder's training noise draws as it did in the trainer
        # precise BN by hand: every BatchNorm's statistics the plain mean over the switch epoch's batches
        for layer in expected.modules():
            if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
                layer.reset_running_stats()
                layer.momentum = None
        expected.train()
        with torch.no_grad():
            for batch in trainer._batches(switch, 0):
                expected(*generator_inputs(batch))
    stats = [(name, b) for name, b in expected.named_buffers() if name.endswith(("running_mean", "running_var"))]
    assert stats
    final = dict(trainer.generator.named_buffers())
    assert all(torch.allclose(final[name], b, atol=1e-6) for name, b in stats) == precise


def test_bf16_autocast_trains_on_the_cpu(data: Path, tmp_path: Path) -> None:
    trainer = Trainer(quick("sf2f_1st_stage", "run.amp=bf16"), data, tmp_path / "run",
                      progress=False, log=lambda _: None)
    before = trainer.generator.decoder.state_dict()["fc.0.weight"].clone()
    batch = next(trainer._batches(0, 0))
    terms = trainer.step(batch, 0)
    assert terms is not None and all(torch.isfinite(v) for v in terms.values()) and "perceptual_64" in terms
    assert not torch.equal(before, trainer.generator.decoder.state_dict()["fc.0.weight"])
    assert all(p.dtype == torch.float32 for p in trainer.generator.parameters())  # autocast, not a bf16 model



def test_compile_compiles_the_fixed_shape_networks_and_leaves_the_voice_encoder_eager(
        data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run.compile`: the decoder, the discriminators and the face embedder are compiled in place (checkpoint keys
    unchanged); the voice encoder, whose input length changes every batch, is not. Dynamo's eager backend stands in
    for inductor here: the same tracing and guards, without minutes of code generation on a CPU."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    trainer = Trainer(quick("sf2f_1st_stage", "run.compile=true"), data, tmp_path / "run", progress=False,
                      log=lambda _: None)

    def compiled(module: nn.Module) -> bool:
        return getattr(module, "_compiled_call_impl", None) is not None

    fixed = [trainer.generator.decoder, *trainer.discriminators.image, *trainer.discriminators.ac, trainer.embedder]
    assert all(compiled(m) for m in fixed) and not compiled(trainer.generator.encoder)
    plain = build_generator(trainer.cfg)
    assert trainer.generator.state_dict().keys() == plain.state_dict().keys()
    before = trainer.generator.decoder.state_dict()["fc.0.weight"].clone()
    batches = trainer._batches(0, 0)
    for _ in range(2):  # two crop lengths
        terms = trainer.step(next(batches), 0)
        assert terms is not None and all(torch.isfinite(v) for v in terms.values())
    assert not torch.equal(before, trainer.generator.decoder.state_dict()["fc.0.weight"])


@pytest.mark.parametrize("bn_mode", ["frozen", "as_original"])
def test_fuser_stage_trains_the_fuser_and_the_discriminators_only(stage1: Path, data: Path, tmp_path: Path,
                                                                  bn_mode: str) -> None:
    cfg = quick("sf2f_fuser", f"optim.pretrained={stage1 / 'checkpoints' / 'latest.pt'}", f"optim.bn_mode={bn_mode}")
    Trainer(cfg, data, tmp_path / "run", progress=False, log=lambda _: None).fit()
    before = load_checkpoint(stage1 / "checkpoints" / "latest.pt")
    after = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    g0, g1 = before["generator"], after["generator"]
    frozen = [k for k in g0 if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(g0[k], g1[k]) for k in frozen)  # encoder and decoder weights untouched
    stats = [k for k in g0 if "running" in k]
    unchanged_stats = all(torch.equal(g0[k], g1[k]) for k in stats)
    # frozen: BatchNorm keeps its stage-1 statistics; as_original: it flips to train mode after step 3 (§3.4)
    assert unchanged_stats == (bn_mode == "frozen")
    assert any(k.startswith("fuser.") for k in g1) and not any(k.startswith("fuser.") for k in g0)
    d0, d1 = before["discriminators"], after["discriminators"]
    assert not any(torch.equal(d0[k], d1[k]) for k in d0 if k.endswith("weight"))  # they keep training


def test_pretrained_checkpoint_of_another_config_is_a_clear_error(stage1: Path, data: Path, tmp_path: Path) -> None:
    wrong = quick("sf2f_fuser", f"optim.pretrained={stage1 / 'checkpoints' / 'latest.pt'}", "model.width_mult=0.25")
    with pytest.raises(CheckpointError, match=r"latest.pt: the generator .* shape mismatch"):
        Trainer(wrong, data, tmp_path / "run", progress=False, log=lambda _: None)
    with pytest.raises(ValueError, match="prepare the data with --image-size 128"):
        Trainer(quick("sf2f_mid_1st_stage"), data, tmp_path / "run128", progress=False, log=lambda _: None)


# ---------------------------------------------------------------------------------------------------- exact resume


@pytest.mark.parametrize("name, stop_at, extra", [
    # after the checkpoint of step 6, in the epoch of the eval-mode switch; the discriminators start at step 2
    ("sf2f_1st_stage", 7, ("optim.pixel_warmup_epochs=1", "optim.precise_bn_at_switch=true")),
    ("v2f", 2, ()),  # before any checkpoint; the baseline's noise draws from the global random state
    ("sf2f_fuser", 5, ("optim.bn_mode=as_original",)),
])
def test_a_stopped_run_resumes_to_the_same_weights(stage1: Path, data: Path, tmp_path: Path, name: str,
                                                   stop_at: int, extra: tuple[str, ...]) -> None:
    pretrained = (f"optim.pretrained={stage1 / 'checkpoints' / 'latest.pt'}",) if name == "sf2f_fuser" else ()
    cfg = quick(name, *pretrained, *extra, *EXACT_ON_GPU)
    quiet = {"progress": False, "log": lambda _: None}
    Trainer(cfg, data, tmp_path / "whole", **quiet).fit()

    class Stop(Exception):
        """Raised by a callback: the run ends after this step without a final checkpoint, as a kill would."""

    def stop(trainer: Trainer, step: int) -> None:
        if step == stop_at:
            raise Stop

    with pytest.raises(Stop):
        Trainer(cfg, data, tmp_path / "split", callbacks=[stop], **quiet).fit()
    result = Trainer(cfg, data, tmp_path / "split", resume=True, **quiet).fit()
    assert result.steps == 8
    assert_same_checkpoints(tmp_path / "whole" / "checkpoints" / "latest.pt",
                            tmp_path / "split" / "checkpoints" / "latest.pt")
    whole, split = read_log(tmp_path / "whole"), read_log(tmp_path / "split")
    key = ["step", "split", "name"]
    merged = whole.merge(split, on=key, suffixes=("_a", "_b"))
    assert len(merged) == len(whole) == len(split)  # the resumed run re-logged the redone steps once
    timing = merged.name == "seconds_per_step"
    assert (merged.value_a[~timing] == merged.value_b[~timing]).all()


def test_resume_refuses_another_recipe(stage1: Path, data: Path) -> None:
    with pytest.raises(CheckpointError, match=r"optim.lr.*only run.device, run.threads.* may change"):
        Trainer(quick("sf2f_1st_stage", "optim.lr=0.001"), data, stage1, resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        Trainer(quick("sf2f_1st_stage"), data, stage1, progress=False, log=lambda _: None)


def test_train_or_load_reuses_a_finished_run(stage1: Path, data: Path) -> None:
    again = train_or_load(quick("sf2f_1st_stage", "run.device=cpu"), data, stage1, progress=False)
    assert again.reused and again.steps == 8 and again.checkpoint.exists()
    with pytest.raises(ValueError, match="another recipe"):
        train_or_load(quick("sf2f_1st_stage", "optim.epochs=5"), data, stage1, progress=False)


def test_train_or_load_waits_for_another_process_training_the_same_run(stage1: Path, data: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """While the run folder's lock is held (another notebook training it), train_or_load waits, then loads the
    finished run instead of training it a second time."""
    results = []
    with folder_lock(stage1, ".train.lock"):
        waiter = threading.Thread(target=lambda: results.append(
            train_or_load(quick("sf2f_1st_stage"), data, stage1, progress=False)))
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive() and not results  # blocked while the lock is held
    waiter.join(timeout=60)
    assert results and results[0].reused and results[0].steps == 8
    assert f"waiting for another process training {stage1}" in capsys.readouterr().err



# ---------------------------------------------------------------------------------------------------- validation, logs


def test_face_spread_reads_zero_for_one_face_for_everybody_and_one_for_faces_as_varied_as_the_real_ones() -> None:
    torch.manual_seed(0)
    real = torch.randn(6, 3, 64, 64)
    mean = real.mean(0, keepdim=True)
    assert face_spread(real, real) == pytest.approx(1.0)
    assert face_spread(real.flip(0), real) == pytest.approx(1.0)  # who gets which face does not matter
    assert face_spread(mean.expand_as(real), real) == 0.0
    assert face_spread(mean + 0.5 * (real - mean), real) == pytest.approx(0.5)
    # 64 px faces against 128 px real ones: the real faces are brought to 64 px as the L1 targets are
    big = torch.nn.functional.interpolate(real, scale_factor=2, mode="nearest")
    assert face_spread(real, big) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2"):
        face_spread(real[:1], real[:1])


def test_validation_is_deterministic(stage1: Path, data: Path, tmp_path: Path) -> None:
    cfg = quick("v2f", "model.encoder.noise_in_eval=true")  # even with the original's noise at test time
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False, log=lambda _: None)
    first, second = trainer.evaluate(), trainer.evaluate()
    assert first == second and set(first) == {"l1", "cosine", "recall_at_1", "spread"}
    result = trainer.validation(trainer.generator.eval(), 2)
    assert result.generated[-1].shape == (2, 3, 64, 64) and result.gallery.shape == (2, 512)
    assert torch.equal(result.labels, torch.tensor([0, 1]))


def test_sample_grid_and_plots(stage1: Path) -> None:
    real = torch.zeros(2, 3, 8, 8)
    grid = sample_grid(real, [torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 8, 8)], pad=1)
    assert grid.shape == (2 * 9 + 1, 3 * 9 + 1, 3) and grid.dtype.name == "uint8"
    fig = loss_curves(stage1)
    assert [ax.get_title() for ax in fig.axes] == [
        "L1 (image space)", "perceptual", "generator adversarial + identity", "discriminators", "validation"]
    plot = LiveLossPlot(every=2)
    plot.redraw(read_log(stage1))
    assert plot.figure is not None and len(plot.figure.axes) == 5


# ---------------------------------------------------------------------------------------------------- CLI, DDP


def test_cli_trains_and_resumes(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "cli"
    args = ["train", "sf2f_1st_stage", "--profile", "quick", "--data", str(data), "--run-dir", str(run),
            "--no-progress", *[a for s in SHORT for a in ("--set", s)]]
    assert main(args) == 0
    assert "8 steps (0 skipped)" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0  # a finished run: nothing left to do
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["counters"]["step"] == 8
    assert main(["train", "--no-progress"]) == 2
    assert "name a config" in capsys.readouterr().err
    assert main(["train-face-embedder", "--data", str(data), "--out", str(tmp_path / "e.pt"), "--profile", "quick",
                 "--set", "model.face_embedder.epochs=1", "--no-progress"]) == 0
    assert "face embedder:" in capsys.readouterr().out and (tmp_path / "e.pt").exists()


@pytest.mark.slow
def test_a_killed_process_resumes_exactly(stage1: Path, data: Path, tmp_path: Path) -> None:
    """SIGKILL a `python -m sf2f train` process after its first step checkpoint; `--resume` ends where an
    uninterrupted run ends."""
    more = [*EXACT_ON_GPU, "optim.epochs=6", "optim.checkpoint_every_steps=2"]
    sets = [a for s in [*SHORT, *more] for a in ("--set", s)]
    base = [sys.executable, "-m", "sf2f", "train", "sf2f_1st_stage", "--profile", "quick", "--data", str(data),
            "--no-progress", *sets]
    run_checked([*base, "--run-dir", str(tmp_path / "whole")])
    proc = subprocess.Popen([*base, "--run-dir", str(tmp_path / "killed")], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = tmp_path / "killed" / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + 240
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(latest)["counters"]["step"] < 12 and not (tmp_path / "killed" / "done.json").exists()
    run_checked([sys.executable, "-m", "sf2f", "train", "--resume", str(tmp_path / "killed"), "--no-progress"])
    assert_same_checkpoints(tmp_path / "whole" / "checkpoints" / "latest.pt", latest)


@pytest.mark.slow
def test_two_processes_train_identical_replicas_through_the_cli(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    sets = [a for s in SHORT for a in ("--set", s)]
    run_checked([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "sf2f",
                 "train", "sf2f_1st_stage", "--profile", "quick", "--data", str(data), "--run-dir", str(run),
                 "--no-progress", *sets])
    done = json.loads((run / "done.json").read_text())
    # the global batch of 4 splits into 2 per process: still 2 iterations per epoch over the 8 identities
    assert done["steps"] == 8 and len(done["replica_hashes"]) == 2
    assert done["replica_hashes"][0] == done["replica_hashes"][1]
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    cfg = quick("sf2f_1st_stage")
    g, d = build_generator(cfg), build_discriminators(cfg, state["num_ids"])
    g.load_state_dict(state["generator"])
    d.load_state_dict(state["discriminators"])
    assert parameter_hash(g, d) == done["replica_hashes"][0]  # rank 0 saved what every replica holds
    fresh_g, fresh_d = build_generator(cfg), build_discriminators(cfg, state["num_ids"])
    assert parameter_hash(fresh_g, fresh_d) != done["replica_hashes"][0]
