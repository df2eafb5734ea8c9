"""Training building blocks: losses (§3.1), the LR schedule (§3.4) and checkpoints."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from sf2f.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    CheckpointManager,
    capture_rng_state,
    load_checkpoint,
    load_state_checked,
    restore_rng_state,
    save_checkpoint,
)
from sf2f.config import OptimConfig, load_config
from sf2f.losses import gan_discriminator_loss, gan_generator_loss, multiscale_targets
from sf2f.train.iteration import eval_mode_now, l1_enabled, learning_rate

# ---------------------------------------------------------------------------------------------------------- losses


def test_gan_losses_on_hand_computed_logits() -> None:
    zero = torch.zeros(2, 1, 6, 6)
    # sigmoid(0) = 1/2: BCE = log 2 for either label
    assert gan_generator_loss(zero).item() == pytest.approx(math.log(2))
    assert gan_discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    # lsgan: (1/2 - 1)^2 = 1/4
    assert gan_generator_loss(zero, "lsgan").item() == pytest.approx(0.25)
    assert gan_discriminator_loss(zero, zero, "lsgan").item() == pytest.approx(0.5)
    real, fake = torch.full((4, 1), 3.0), torch.full((4, 1), -1.0)
    assert gan_generator_loss(fake, "wgan").item() == pytest.approx(1.0)
    assert gan_discriminator_loss(real, fake, "wgan").item() == pytest.approx(-4.0)
    # a confident, correct discriminator has a small loss; the fooled generator a large one
    assert gan_discriminator_loss(torch.full((3,), 9.0), torch.full((3,), -9.0)).item() < 1e-3
    assert gan_generator_loss(torch.full((3,), -9.0)).item() > 8.9
    with pytest.raises(ValueError, match="unknown gan_type"):
        gan_generator_loss(zero, "hinge")  # type: ignore[arg-type]


def test_multiscale_targets_use_nearest_downsampling() -> None:
    target = torch.arange(16.0).reshape(1, 1, 4, 4)
    small, full = multiscale_targets(target, [2, 4])
    assert torch.equal(full, target)
    # nearest with scale 1/2 keeps the top-left pixel of every 2x2 block (§2.5)
    assert torch.equal(small, torch.tensor([[[[0.0, 2.0], [8.0, 10.0]]]]))
    with pytest.raises(ValueError, match="cannot make a 3 px target"):
        multiscale_targets(target, [3])


# ------------------------------------------------------------------------------------------------------- schedule


def test_learning_rate_matches_the_original_formula_for_the_paper_run() -> None:
    optim = load_config("sf2f_1st_stage").optim  # 12000 epochs, decay from 10000, lr 5e-4
    assert learning_rate(optim, 0) == learning_rate(optim, 9999) == 5e-4
    f = (10000 - 10000 + 1) / (12000 - 10000 + 1e-5)
    assert learning_rate(optim, 10000) == pytest.approx(5e-4 - f * (5e-4 - 5e-7))
    assert learning_rate(optim, 11999) == pytest.approx(5e-7, rel=1e-3)
    assert learning_rate(optim, 11999, decays=False) == 5e-4  # the AC-D optimiser
    values = [learning_rate(optim, e) for e in range(10000, 12000, 100)]
    assert values == sorted(values, reverse=True)


def test_eval_mode_and_l1_switches() -> None:
    optim = OptimConfig(epochs=20, eval_mode_after_epochs=10, disable_l1_after_epochs=15)
    assert [eval_mode_now(optim, e) for e in (9, 10, 11)] == [False, True, True]
    assert [l1_enabled(optim, e) for e in (14, 15)] == [True, False]


# ---------------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_and_atomic_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "ckpt" / "latest.pt"
    save_checkpoint({"w": torch.ones(3), "epoch": 1}, path)
    save_checkpoint({"w": torch.zeros(3), "epoch": 2}, path)
    state = load_checkpoint(path)
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.zeros(3))
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]  # no temporary files left behind


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_loading_refuses_code_and_names_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import pickle

    class Sneaky:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"x": Sneaky()}))
    with pytest.raises(CheckpointError, match="evil.pt: not a readable sf2f checkpoint: not the zip archive"):
        load_checkpoint(evil)
    # the same object in the archive torch.save writes: refused by name, in one line, without torch's advice to
    # allowlist the callable or to load the file with weights_only=False
    evil_zip = tmp_path / "evil_zip.pt"
    torch.save({"x": Sneaky()}, evil_zip)
    with pytest.raises(CheckpointError, match=r"evil_zip.pt: .*other than tensors .*print.*no code .* ran") as err:
        load_checkpoint(evil_zip)
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value) and "safe_globals" not in str(err.value)
    assert "this must never run" not in capsys.readouterr().out
    truncated = tmp_path / "cut.pt"
    save_checkpoint({"w": torch.ones(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cut.pt: .*truncated"):
        load_checkpoint(truncated)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt: .*the file is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
    foreign = save_checkpoint({"format": "sf2f-face-embedder-v1"}, tmp_path / "embedder.pt")
    with pytest.raises(CheckpointError, match="embedder.pt: not a file `python -m sf2f train` wrote"):
        load_checkpoint(foreign, CHECKPOINT_FORMAT)


def test_state_that_does_not_fit_is_a_clear_error() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    other = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2))
    with pytest.raises(CheckpointError, match=r"run.pt: the generator .* shape mismatch"):
        load_state_checked(model, other.state_dict(), "generator", "run.pt")
    with pytest.raises(CheckpointError, match="2 missing key"):
        load_state_checked(model, {k: v for k, v in model.state_dict().items() if k.startswith("0.")}, "g", "x")
    load_state_checked(model, nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)).state_dict(), "generator", "run.pt")


def test_manager_keeps_latest_and_best_per_metric(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, {"recall10": "max", "l1": "min"})
    assert manager.resume() is None
    assert sorted(manager.save({"step": 1}, {"recall10": 0.2, "l1": 5.0})) == ["l1", "recall10"]
    assert manager.save({"step": 2}, {"recall10": 0.1, "l1": 4.0}) == ["l1"]
    assert manager.save({"step": 3}, {"recall10": float("nan"), "l1": 6.0}) == []
    assert load_checkpoint(manager.best_path("recall10"))["step"] == 1
    assert load_checkpoint(manager.best_path("l1"))["step"] == 2
    assert load_checkpoint(manager.latest)["step"] == 3
    again = CheckpointManager(tmp_path, {"recall10": "max", "l1": "min"})
    assert again.resume()["step"] == 3 and again.best == {"recall10": 0.2, "l1": 4.0}
    with pytest.raises(KeyError, match="untracked"):
        again.save({"step": 4}, {"fid": 1.0})


def test_rng_state_survives_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(4)
    save_checkpoint({"rng": capture_rng_state()}, tmp_path / "rng.pt")

    def draw() -> tuple:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    first = draw()
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert draw() == first


# ------------------------------------------------------------------------------------------------------------ logs


def test_run_logger_writes_a_pandas_readable_long_log(tmp_path: Path) -> None:
    from sf2f.train.logs import RunLogger, read_log

    log = RunLogger(tmp_path)
    log.log(1, 0, {"g_l1": 2.0, "d_img": 1.5})
    log.log(2, 0, {"g_l1": 1.0})
    log.log(2, 0, {"recall@10": 0.3}, split="val")
    log.log(3, 1, {"g_l1": 0.5, "g_new": 7.0})
    log.close()
    table = read_log(tmp_path)
    assert list(table.columns) == ["step", "epoch", "split", "name", "value"]
    wide = table[table.split == "train"].pivot_table(index="step", columns="name", values="value")
    assert wide["g_l1"].tolist() == [2.0, 1.0, 0.5] and wide["g_new"].dropna().tolist() == [7.0]
    RunLogger(tmp_path).truncate_after(2)
    assert read_log(tmp_path)["step"].max() == 2
    RunLogger(tmp_path / "rank1", enabled=False).log(1, 0, {"x": 1.0})
    assert not (tmp_path / "rank1").exists()
    with pytest.raises(FileNotFoundError, match="no training log"):
        read_log(tmp_path / "elsewhere")


# ----------------------------------------------------------------------------------------------- perceptual loss


class _ProbeEmbedder(torch.nn.Module):
    """Hidden states that are simple functions of the input, so the loss can be computed by hand."""

    input_size = 8

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.bn = torch.nn.BatchNorm1d(1)

    def freeze(self):
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def hidden_states(self, x):
        flat = x.flatten(1) * self.scale
        return [flat, 2 * flat, 4 * flat, flat.mean(1, keepdim=True)]


def test_perceptual_loss_weights_layers_and_freezes_the_embedder() -> None:
    from sf2f.losses import PerceptualLoss
    from sf2f.train.iteration import PerceptualTargets

    loss_fn = PerceptualLoss(_ProbeEmbedder())
    loss_fn.train()
    assert not loss_fn.embedder.training and not loss_fn.embedder.scale.requires_grad
    real = torch.zeros(2, 3, 64, 64)
    pred = torch.full((2, 3, 64, 64), 0.1, requires_grad=True)
    target = loss_fn.target_features(real)
    diffs = [(p - t).abs().mean().item() for p, t in zip(loss_fn.features(pred.detach()), target)]
    expected = sum(w * d for w, d in zip((1 / 16, 1 / 8, 1 / 4, 1.0), diffs))
    value = loss_fn(pred, target)
    assert value.item() == pytest.approx(expected) and value.item() > 0
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert loss_fn(real, target).item() == 0.0

    # the real faces' targets, stored (in float16) and served by key; beyond the budget, computed in the batch
    targets = PerceptualTargets(loss_fn, [64], budget_bytes=1 << 20)
    faces = torch.randn(2, 3, 64, 64)
    targets.add(faces, [5, 9])
    features = loss_fn.target_features(faces)
    cached = targets(0, torch.zeros(2, 3, 64, 64), [9, 5])  # stored: the images passed along are not looked at
    assert len(targets) == 2 and torch.allclose(cached[0][0], features[0][1], atol=1e-3, rtol=1e-3)
    assert cached[0].dtype == torch.float32
    tiny = PerceptualTargets(loss_fn, [64], budget_bytes=10)
    tiny.add(faces, [1])
    assert len(tiny) == 0
    other = torch.randn(2, 3, 64, 64)
    assert all(torch.equal(a, b) for a, b in zip(tiny(0, other, [1, 2]), loss_fn.target_features(other)))


def test_update_bn_sets_the_mean_of_the_batch_statistics() -> None:
    """Precise BN as the trainer and the trained embedder compute it (`torch.optim.swa_utils.update_bn`): running
    statistics replaced by the plain mean of the batches' statistics, the momentum and the mode kept."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.3), nn.ReLU())
    for _ in range(3):  # running statistics that are not a fresh start
        net(torch.randn(8, 3))
    net.eval()
    batches = [torch.randn(8, 3) + k for k in range(3)]
    update_bn(batches, net)
    hidden = [net[0](b).detach() for b in batches]
    assert torch.allclose(net[1].running_mean, torch.stack([h.mean(0) for h in hidden]).mean(0), atol=1e-6)
    assert torch.allclose(net[1].running_var, torch.stack([h.var(0) for h in hidden]).mean(0), atol=1e-6)
    assert not net.training and net[1].momentum == 0.3
