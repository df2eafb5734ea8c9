"""The two-stage trainer (recipe §3.2-3.5): the loop around :class:`~sf2f.train.iteration.TrainingStep`, evaluation,
samples, checkpoints, and the notebooks' :func:`train_or_load`. Resumes are exact (on a GPU with `run.deterministic`):
batches are re-drawn from (seed, epoch) and checkpoints carry every optimiser and random state. Under `torchrun` each
process trains on its share of every epoch; rank 0 alone logs, evaluates and writes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from PIL import Image
from torch import Tensor
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from sf2f.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    CheckpointManager,
    capture_rng_state,
    load_checkpoint,
    load_state_checked,
    restore_rng_state,
)
from sf2f.config import ExperimentConfig, config_diff, describe_diff, load_resolved_config, save_config
from sf2f.data.datasets import dataset_for, epoch_batches, generator_inputs, make_loader
from sf2f.data.prepared import PreparedData
from sf2f.embedder_weights import resolve_face_embedder
from sf2f.errors import UsageError
from sf2f.models import build_discriminators, build_generator
from sf2f.models.generator import generating
from sf2f.paths import RUNS_DIR, folder_lock, project_path
from sf2f.runtime import seed_everything, set_determinism, set_threads
from sf2f.train.distributed import (
    average_across_processes,
    average_gradients_before_steps,
    init_distributed,
    replica_hashes,
    wrap_ddp,
)
from sf2f.train.iteration import TrainingStep, adam, adversarial_enabled, eval_mode_now, l1_enabled, learning_rate
from sf2f.train.logs import RunLogger, TrainResult
from sf2f.train.validation import RunValidation, quick_metrics, tracked_metrics
from sf2f.train.visualize import sample_grid

#: config keys that say where and how fast a run goes, not what it computes: a resume may change them
MACHINE_KEYS = ("run.device", "run.threads", "run.log_every", "run.compile", "run.output_root", "run.name")
Callback = Callable[["Trainer", int], None]


def recipe_diff(a: ExperimentConfig, b: ExperimentConfig, ignore: Sequence[str] = ()) -> dict[str, tuple[Any, Any]]:
    """What a resumed or reused run may not change: config_diff less MACHINE_KEYS and `ignore`."""
    return {k: v for k, v in config_diff(a, b).items() if k not in (*MACHINE_KEYS, *ignore)}


@dataclass
class _Counters:
    step: int = 0  # iterations done (skipped ones included)
    epoch: int = 0  # the epoch in progress
    batch_in_epoch: int = 0  # iterations of that epoch already done
    skipped: int = 0  # iterations skipped for a non-finite generator loss
    g_optimizer_reset: bool = False  # the eval-mode switch has re-created G's Adam


class Trainer:
    """Trains one config on a prepared dataset (`python -m sf2f prepare`) into a run folder (None makes
    `<run.output_root>/<run.name>-<timestamp>`); `resume` continues the run there from its latest checkpoint;
    `callbacks` are called as `callback(trainer, step)` after every iteration (live plots, tests that stop a run)."""

    def __init__(self, cfg: ExperimentConfig, data: str | Path, run_dir: str | Path | None = None, *,
                 resume: bool = False, progress: bool = True, callbacks: Sequence[Callback] = (),
                 log: Callable[[str], object] = print) -> None:
        self.cfg, self.data, self.progress, self.callbacks = cfg, Path(data), progress, list(callbacks)
        self.ctx = init_distributed(cfg.run.device)
        self.device = self.ctx.device
        self._log = log if self.ctx.is_main else (lambda _: None)
        self.counters, self.last_metrics = _Counters(), {}
        set_threads(cfg.run.threads)
        set_determinism(cfg.run.deterministic)
        seed_everything(cfg.run.seed)  # the same initial weights on every rank
        self._load_data()
        self._build_networks(resume)
        self.iteration = self._build_iteration()
        self.run_dir = self._choose_run_dir(run_dir)
        self.track = tracked_metrics(cfg.eval.recall_ks, len(self.val_split))
        self.validation = (RunValidation(cfg, self.val_split, self.data, self.embedder, self.device, self._log)
                           if self.ctx.is_main and len(self.val_split) else None)
        self._open_run(resume)

    # ---- set-up steps ---------------------------------------------------------------------------------------------

    def _load_data(self) -> None:
        """The prepared splits, their datasets, and how many whole batches an epoch gives each process."""
        cfg = self.cfg
        prepared = PreparedData(self.data)
        prepared_size = int(prepared.manifest["settings"]["image_size"])
        if prepared_size != cfg.data.image_size:
            raise UsageError(f"{self.data}: faces prepared at {prepared_size} px, but {cfg.name} trains on "
                             f"{cfg.data.image_size} px; prepare the data with --image-size {cfg.data.image_size}")
        self.train_split = prepared.split("train", cfg.data.max_identities)
        self.val_split = prepared.split("val", cfg.data.max_identities)
        self.train_set, self.collate = dataset_for(cfg, self.train_split, train=True)
        world = self.ctx.world_size
        if cfg.optim.batch_size % world:
            raise UsageError(f"optim.batch_size {cfg.optim.batch_size} does not divide among {world} processes")
        self.batch_size = cfg.optim.batch_size // world
        self.steps_per_epoch = (len(self.train_set) // world) // self.batch_size
        if self.steps_per_epoch == 0:
            raise UsageError(f"{self.data}: {len(self.train_set)} training identities give no full batch of "
                             f"{cfg.optim.batch_size} (batches are whole, as in the original): lower optim.batch_size")
        self.total_steps = self.steps_per_epoch * cfg.optim.epochs

    def _build_networks(self, resume: bool) -> None:
        """G, the discriminators (the fuser stage starts from `optim.pretrained`, §3.4), the perceptual embedder."""
        cfg = self.cfg
        self.fuser_stage = cfg.optim.stage == "fuser"
        self.generator = build_generator(cfg).to(self.device)
        self.discriminators = build_discriminators(cfg, len(self.train_split)).to(self.device)
        if cfg.optim.pretrained:
            self._load_pretrained(project_path(cfg.optim.pretrained))
        elif self.fuser_stage and not resume:
            self._log("warning: the fuser stage starts from untrained encoder and decoder (no optim.pretrained)")
        embedder, described = resolve_face_embedder(cfg, self.data, self._log)
        self.embedder = embedder.to(self.device).freeze()
        self._log(f"face embedder: {described}")

    def _build_iteration(self) -> TrainingStep:
        """The iteration with its optimisers, the real faces' perceptual targets cached, the networks compiled and G
        wrapped for DDP; under torchrun every discriminator's optimiser averages the gradients before its step.
        Not compiled: the voice encoder, as each batch draws a new crop length (§1.6) and its strided convolutions
        make the compiler specialise on the length's divisibility, recompiling batch after batch."""
        cfg = self.cfg
        step = TrainingStep.build(cfg, self.generator, self.discriminators, self.embedder)
        if self.ctx.distributed:
            for optimizer in step.d_optimizers:
                average_gradients_before_steps(optimizer)
        if step.perceptual is not None:
            cached = step.perceptual.fill(self.train_split, cfg.data.image_norm, cfg.data.image_hflip, self.device)
            self._log(f"perceptual targets of {cached} real faces cached")
        if cfg.run.compile:
            for module in (self.generator.decoder, *self.discriminators.image, *self.discriminators.ac, self.embedder):
                module.compile()
        step.g_forward = wrap_ddp(self.generator, self.ctx)
        return step

    def _choose_run_dir(self, run_dir: str | Path | None) -> Path:
        if run_dir is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            chosen = [str(project_path(self.cfg.run.output_root) / f"{self.cfg.run.name}-{stamp}")]
            if self.ctx.distributed:  # every rank must write (and resume) the same folder
                dist.broadcast_object_list(chosen, src=0)
            run_dir = chosen[0]
        path = Path(run_dir).absolute()
        if self.ctx.is_main:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def _open_run(self, resume: bool) -> None:
        """The run folder's checkpoints and log: a resume continues them; a new run first records its config."""
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", self.track)
        if resume:
            self._resume()
        elif self.ctx.is_main:
            if (self.run_dir / "checkpoints" / "latest.pt").exists():
                raise UsageError(f"{self.run_dir} already holds a run: resume it (--resume) or pick another folder")
            save_config(self.cfg, self.run_dir / "config.yaml")
            (self.run_dir / "run.json").write_text(json.dumps({"data": str(self.data)}, indent=1) + "\n")
        self.logger = RunLogger(self.run_dir, enabled=self.ctx.is_main)
        if resume:
            self.logger.truncate_after(self.counters.step)

    def _load_pretrained(self, path: Path) -> None:
        """Stage 2 starts from a stage-1 checkpoint: every generator tensor but the fuser's, and the discriminators
        (§3.4 "stage 2 loading"); anything that does not fit is an error naming the file."""
        state = load_checkpoint(path, CHECKPOINT_FORMAT)
        own_fuser = {k: v for k, v in self.generator.state_dict().items() if k.startswith("fuser.")}
        load_state_checked(self.generator, {**own_fuser, **state["generator"]}, "generator", path)
        load_state_checked(self.discriminators, state["discriminators"], "discriminators", path)
        self._log(f"started from {path} (step {state['counters']['step']})")

    def _resume(self) -> None:
        diff = recipe_diff(load_resolved_config(self.run_dir / "config.yaml"), self.cfg)
        if diff:
            raise CheckpointError(f"{self.run_dir}: the run was made with another config ({describe_diff(diff)}). A "
                                  "resume continues the run's own recipe to the weights an uninterrupted run reaches, "
                                  f"so only {', '.join(MACHINE_KEYS)} may change; train other settings as a new run")
        state = self.checkpoints.resume()
        if state is None:  # stopped before its first checkpoint: start again, which gives the same run
            self._log(f"{self.run_dir}: no checkpoint yet, starting from the beginning")
            return
        where = self.checkpoints.latest
        load_state_checked(self.generator, state["generator"], "generator", where)
        load_state_checked(self.discriminators, state["discriminators"], "discriminators", where)
        self.counters = _Counters(**state["counters"])
        self.iteration.g_optimizer.load_state_dict(state["g_optimizer"])
        for optimizer, saved_state in zip(self.iteration.d_optimizers, state["d_optimizers"]):
            optimizer.load_state_dict(saved_state)
        restore_rng_state(state["rng"])
        self.last_metrics = dict(state.get("metrics", {}))
        self._log(f"resumed {self.run_dir} at step {self.counters.step} (epoch {self.counters.epoch})")

    # ---- the loop ---------------------------------------------------------------------------------------------------

    def _batches(self, epoch: int, skip: int) -> Iterator[dict[str, Tensor]]:
        """This rank's batches of an epoch, the first `skip` left out (they were done before an interruption)."""
        cfg, ctx = self.cfg, self.ctx
        self.train_set.epoch = epoch
        batches = epoch_batches(len(self.train_set), self.batch_size, cfg.run.seed, epoch, ctx.rank, ctx.world_size)
        if not batches[skip:]:
            return iter(())
        loader = make_loader(self.train_set, self.collate, batches[skip:], cfg.run.seed * 100_003 + epoch,
                             cfg.data.num_workers, pin_memory=self.device.type == "cuda")
        return iter(loader)

    def _begin_epoch(self, epoch: int) -> None:
        optim = self.cfg.optim
        if eval_mode_now(optim, epoch) and not self.counters.g_optimizer_reset:
            if optim.precise_bn_at_switch and not self.fuser_stage:
                self._precise_generator_bn(epoch)
            # §3.4: at the switch the original re-creates G's Adam, dropping its moments
            params = self.iteration.g_optimizer.param_groups[0]["params"]
            self.iteration.g_optimizer = adam(params, learning_rate(optim, epoch), self.cfg)
            self.counters.g_optimizer_reset = True
        lr, ac_lr = learning_rate(optim, epoch), learning_rate(optim, epoch, decays=optim.decay_ac_lr)
        for optimizer in [self.iteration.g_optimizer, *self.iteration.d_optimizers]:
            for group in optimizer.param_groups:
                group["lr"] = ac_lr if optimizer in self.iteration.ac_d_optimizers else lr

    def _precise_generator_bn(self, epoch: int) -> None:
        """G's BatchNorm statistics recomputed over this epoch's batches (`optim.precise_bn_at_switch`), averaged
        over the processes, on a forked random state so that the run goes on as it would have without this pass."""
        voices = (generator_inputs(batch, self.device)[0] for batch in self._batches(epoch, 0))  # stage 1: no mask
        with torch.random.fork_rng([self.device] if self.device.type == "cuda" else []), self.iteration.autocast():
            update_bn(voices, self.generator)
        stats = (b for name, b in self.generator.named_buffers() if name.endswith(("running_mean", "running_var")))
        average_across_processes(stats)
        self._log(f"epoch {epoch}: the generator's BatchNorm statistics recomputed before the eval-mode switch")

    def step(self, batch: Mapping[str, Tensor], epoch: int) -> dict[str, Tensor] | None:
        """One iteration, G in the mode of this epoch and step: the loss terms, or None when skipped (non-finite)."""
        optim = self.cfg.optim
        # the original's wrapper flips the fuser stage's generator back to train mode at its first visualisation (§3.4)
        delayed = self.fuser_stage and optim.bn_mode == "as_original" and self.counters.step < optim.visualize_every
        self.iteration.g_forward.train(not eval_mode_now(optim, epoch) and not delayed)
        terms = self.iteration(batch, l1_enabled(optim, epoch), adversarial_enabled(optim, epoch))
        if terms is None:
            self.counters.skipped += 1
        return terms

    def fit(self) -> TrainResult:
        """Train to the end of `optim.epochs` (from where a resumed run stopped) and return the result."""
        cfg, counters = self.cfg, self.counters
        start_time = time.perf_counter()
        bar = tqdm(total=self.total_steps, initial=counters.step, desc=f"{cfg.name} ({cfg.optim.stage})",
                   disable=not (self.progress and self.ctx.is_main), dynamic_ncols=True)
        sums: dict[str, Tensor] = {}
        window, window_start = 0, time.perf_counter()
        for epoch in range(counters.epoch, cfg.optim.epochs):
            skip = counters.batch_in_epoch if epoch == counters.epoch else 0
            counters.epoch, counters.batch_in_epoch = epoch, skip
            self._begin_epoch(epoch)
            for batch in self._batches(epoch, skip):
                terms = self.step(batch, epoch)
                counters.step += 1
                counters.batch_in_epoch += 1
                bar.update(1)
                if terms is not None:
                    for name, value in terms.items():
                        sums[name] = sums.get(name, 0.0) + value.float()
                    window += 1
                if counters.step % cfg.run.log_every == 0 or counters.step == self.total_steps:
                    values = {k: float(v) / max(window, 1) for k, v in sums.items()}
                    values |= {"lr": self.iteration.g_optimizer.param_groups[0]["lr"],
                               "skipped_steps": counters.skipped,
                               "seconds_per_step": (time.perf_counter() - window_start) / max(window, 1)}
                    self.logger.log(counters.step, epoch, values, "train")
                    bar.set_postfix({k: f"{values[k]:.3g}" for k in ("g_total", "d_total") if k in values})
                    sums, window, window_start = {}, 0, time.perf_counter()
                if counters.step % cfg.optim.visualize_every == 0:
                    self.save_samples()
                # the epoch's evaluation and checkpoint belong to its last iteration, so a checkpoint holds all the
                # work of its step and a resume never repeats (or re-logs) any of it
                epoch_done = counters.batch_in_epoch == self.steps_per_epoch
                last = epoch_done and epoch + 1 == cfg.optim.epochs
                values = None
                if epoch_done and ((epoch + 1) % cfg.optim.eval_every_epochs == 0 or last):
                    values = self.evaluate()
                every = cfg.optim.checkpoint_every_steps
                periodic = epoch_done and ((epoch + 1) % cfg.optim.checkpoint_every_epochs == 0 or last)
                if values is not None or periodic or (every and counters.step % every == 0):
                    self.save_checkpoint(values)
                for callback in self.callbacks:
                    callback(self, counters.step)
        bar.close()
        result = TrainResult(self.run_dir, counters.step, counters.skipped, time.perf_counter() - start_time,
                             dict(self.last_metrics), replica_hashes(self.ctx, self.generator, self.discriminators))
        if self.ctx.is_main:
            result.write()
        self.logger.close()
        return result

    # ---- evaluation, samples, checkpoints ---------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float] | None:
        """Quick metrics on the validation split, logged; None on ranks other than 0 and without a split."""
        if self.validation is None:
            return None
        with generating(self.generator, self.cfg.eval.seed):
            result = self.validation(self.generator, self.batch_size, self.iteration.autocast)
        values = quick_metrics(result, self.cfg.eval.recall_ks)
        self.logger.log(self.counters.step, self.counters.epoch, values, "val")
        self.last_metrics = values
        return values

    def save_samples(self) -> None:
        """A real | generated grid of the fixed validation samples, `<run>/samples/step_<step>.png` (rank 0)."""
        if self.validation is None:
            return
        samples = self.validation.samples
        voice, mask = generator_inputs(samples, self.device)
        with generating(self.generator, self.cfg.eval.seed), self.iteration.autocast():
            images = self.generator(voice, mask).images
        path = self.run_dir / "samples" / f"step_{self.counters.step:07d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(sample_grid(samples["image"], images, self.cfg.data.image_norm)).save(path)

    def save_checkpoint(self, values: Mapping[str, float] | None = None) -> list[str]:
        """Write `latest.pt` (and `best_<metric>.pt` for each tracked metric that improved; rank 0 only): everything a
        resume needs, as plain data (read back with weights_only=True)."""
        if not self.ctx.is_main:
            return []
        state = {"format": CHECKPOINT_FORMAT, "config": asdict(self.cfg), "num_ids": len(self.train_split),
                 "generator": self.generator.state_dict(), "discriminators": self.discriminators.state_dict(),
                 "g_optimizer": self.iteration.g_optimizer.state_dict(),
                 "d_optimizers": [o.state_dict() for o in self.iteration.d_optimizers],
                 "counters": dict(self.counters.__dict__), "rng": capture_rng_state(),
                 "metrics": dict(self.last_metrics)}
        return self.checkpoints.save(state, {k: v for k, v in (values or {}).items() if k in self.track})


def course_run_dir(config_name: str, profile: str) -> Path:
    """The course's run of a paper config: notebook 05 trains what notebooks 02, 06 and 07 then load."""
    return RUNS_DIR / "course" / profile / config_name


def train_or_load(cfg: ExperimentConfig, data: str | Path, run_dir: str | Path, progress: bool = True,
                  callbacks: Sequence[Callback] = (), **trainer_options: Any) -> TrainResult:
    """The finished run in `run_dir` if it ran this recipe; else resume it, or train it from the start. A folder of
    another recipe is an error, not overwritten. Processes that need the same run take turns (notebooks open at once):
    the second waits, then loads the run the first finished."""
    run_dir = Path(run_dir).absolute()
    with folder_lock(run_dir, ".train.lock", f"waiting for another process training {run_dir}"):
        saved = run_dir / "config.yaml"
        if saved.exists():
            diff = recipe_diff(load_resolved_config(saved), cfg)
            if diff:
                raise UsageError(f"{run_dir} holds a run of another recipe ({describe_diff(diff)}); delete it or "
                                 "choose another folder")
            if (run_dir / "done.json").exists():
                return TrainResult.read(run_dir)
        trainer = Trainer(cfg, data, run_dir, resume=saved.exists(), progress=progress, callbacks=callbacks,
                          **trainer_options)
        return trainer.fit()
