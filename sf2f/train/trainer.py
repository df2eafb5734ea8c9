"""The two-stage SF2F / voice2face trainer (recipe §3.2-3.5).

One iteration (§3.2): the generator makes faces; its loss (:func:`~sf2f.train.objectives.generator_terms`) is
checked for finiteness (a non-finite total skips the whole iteration and is counted), back-propagated and stepped;
then every discriminator takes one step on the detached fakes and the reals
(:class:`~sf2f.train.objectives.DiscriminatorObjective`). During the generator's pass the discriminators' weights
are frozen: the original computes their gradients and zeroes them unused, so freezing changes nothing but the time.
They stay in train mode, so their BatchNorm statistics see the fakes as in the original.

Stages (`optim.stage`):

* `stage1`: encoder + decoder + discriminators, Adam (lr 5e-4, betas 0.9/0.999) for G and for every discriminator.
* `fuser`: only the attention fuser trains (its own Adam at 1e-4); encoder and decoder are frozen with their
  BatchNorm in eval mode (`bn_mode: frozen`), or, with `bn_mode: as_original`, the generator runs in eval mode until
  the first visualisation step and in train mode after it, as the original accidentally did (§3.4). The
  discriminators keep training, starting from the stage-1 checkpoint (`optim.pretrained`).

Schedule (§3.4): the learning rate of G and the image discriminators decays linearly from `decay_lr_after_epochs`;
from `eval_mode_after_epochs` the generator runs in eval mode and its Adam state is reset once.

Runs are exact to resume on the CPU, and on a GPU with `run.deterministic: true` (otherwise cuDNN's autotuner may pick
other convolution algorithms in the resumed process: the same recipe, not the same bits): the sampler is re-seeded
from (seed, epoch), the batches already done in the interrupted epoch are skipped, and checkpoints carry every
optimiser and random state; evaluation and sample grids draw from a forked random state, so they never change the
training stream. Several processes (`torchrun --nproc_per_node=N -m sf2f train ...`) each train on their share of
every epoch (DistributedSampler), DistributedDataParallel averages the gradients, and rank 0 alone logs, evaluates
and writes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler
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
from sf2f.config import ExperimentConfig, config_to_dict, flatten_config, load_resolved_config, save_config
from sf2f.data.cache import PreparedData
from sf2f.data.datasets import dataset_for, generator_inputs
from sf2f.errors import MissingPathError, UsageError
from sf2f.losses import PerceptualLoss
from sf2f.models import build_discriminators, build_generator
from sf2f.models.face_embedders import FaceEmbedder
from sf2f.paths import project_path
from sf2f.runtime import seed_everything, set_determinism, set_threads
from sf2f.train.distributed import DistContext, init_distributed, unwrap, wrap_ddp
from sf2f.train.logs import RunLogger, read_log
from sf2f.train.objectives import DiscriminatorObjective, PerceptualTargets
from sf2f.train.precise_bn import average_across_processes, precise_batchnorm
from sf2f.train.schedule import adversarial_enabled, eval_mode_now, l1_enabled, learning_rate
from sf2f.train.step import TrainingStep
from sf2f.train.validation import (
    ValidationMetric,
    ValidationResult,
    gallery_embeddings,
    quick_metrics,
    run_validation,
    tracked_metrics,
    validation_loader,
)
from sf2f.train.visualize import save_sample_grid
from sf2f.trained_embedder import resolve_face_embedder, scoring_embedder

__all__ = [
    "MACHINE_KEYS",
    "StopTraining",
    "TrainResult",
    "Trainer",
    "recipe_diff",
]

#: config keys that say where and how fast a run goes, not what it computes: a resume may change them
MACHINE_KEYS = ("run.device", "run.threads", "run.log_every", "run.compile", "run.output_root", "run.name")
Callback = Callable[["Trainer", int], None]


class StopTraining(Exception):
    """Raised by a callback to end a run after the current step, without a final checkpoint (as a kill would)."""


def recipe_diff(a: ExperimentConfig, b: ExperimentConfig) -> dict[str, tuple[Any, Any]]:
    """The keys whose values differ between two configs, leaving out bookkeeping and :data:`MACHINE_KEYS`."""
    fa, fb = flatten_config(a), flatten_config(b)
    skip = ("profile", "sources", *MACHINE_KEYS)
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if k not in skip and fa.get(k) != fb.get(k)}


@dataclass
class TrainResult:
    """A finished (or loaded) run: where it is, how far it went, and its last validation metrics."""

    run_dir: Path
    steps: int
    skipped_steps: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    replica_hashes: list[str] = field(default_factory=list)
    reused: bool = False

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

    def best(self, metric: str) -> Path:
        return self.run_dir / "checkpoints" / f"best_{metric}.pt"

    def write(self) -> None:
        record = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "reused"}
        (self.run_dir / "done.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    @staticmethod
    def read(run_dir: str | Path) -> TrainResult:
        record = json.loads((Path(run_dir) / "done.json").read_text(encoding="utf-8"))
        record["run_dir"] = Path(run_dir)
        return TrainResult(**record, reused=True)


@dataclass
class _Counters:
    step: int = 0  # iterations done (skipped ones included)
    epoch: int = 0  # the epoch in progress
    batch_in_epoch: int = 0  # iterations of that epoch already done
    skipped: int = 0  # iterations skipped for a non-finite generator loss
    g_optimizer_reset: bool = False  # the eval-mode switch has re-created G's Adam


def _adam(params: Any, lr: float, cfg: ExperimentConfig) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _parameter_hash(*modules: nn.Module) -> str:
    digest = hashlib.sha256()
    for module in modules:
        for name, p in module.named_parameters():
            digest.update(name.encode())
            digest.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Trainer:
    """Trains one config on a prepared dataset into a run folder.

    Args:
        cfg: the resolved experiment config (its `optim.stage` picks stage 1 or the fuser stage).
        data: a prepared dataset folder (`python -m sf2f prepare`).
        run_dir: the run folder; None makes `<run.output_root>/<run.name>-<timestamp>`.
        resume: continue the run in `run_dir` from its latest checkpoint (its config must match `cfg`'s recipe).
        progress: show a progress bar with live losses.
        callbacks: called as `callback(trainer, step)` after every iteration (live plots, tests that stop a run).
        extra_metrics: more validation metrics (issue 7's full evaluation plugs in here), logged with the quick ones.
        track: metric name -> "min" | "max" for best checkpoints (default: the quick metrics).
        dist_ctx: the distributed context (default: from torchrun's environment, or a single process).
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        data: str | Path,
        run_dir: str | Path | None = None,
        *,
        resume: bool = False,
        progress: bool = True,
        callbacks: Sequence[Callback] = (),
        extra_metrics: Sequence[ValidationMetric] = (),
        track: Mapping[str, Literal["min", "max"]] | None = None,
        dist_ctx: DistContext | None = None,
        log: Callable[[str], object] = print,
    ) -> None:
        self.cfg = cfg
        self.ctx = dist_ctx or init_distributed(cfg.run.device)
        self.device = self.ctx.device
        self.data = Path(data)
        self.progress = progress
        self.callbacks = list(callbacks)
        self.extra_metrics = list(extra_metrics)
        self._log = log if self.ctx.is_main else (lambda _: None)
        self.counters = _Counters()
        self.last_metrics: dict[str, float] = {}

        set_threads(cfg.run.threads)
        set_determinism(cfg.run.deterministic)
        seed_everything(cfg.run.seed)  # the same initial weights on every rank

        prepared = PreparedData(self.data)
        prepared_size = int(prepared.manifest["settings"]["image_size"])
        if prepared_size != cfg.data.image_size:
            raise UsageError(
                f"{self.data}: faces prepared at {prepared_size} px, but {cfg.name} trains on {cfg.data.image_size} px; "
                f"prepare the data with --image-size {cfg.data.image_size}"
            )
        self.train_split = prepared.split("train", cfg.data.max_identities)
        self.val_split = prepared.split("val", cfg.data.max_identities)
        self.fuser_stage = cfg.optim.stage == "fuser"
        self.train_set, self.collate = dataset_for(cfg, self.train_split, train=True)
        self.val_set, _ = dataset_for(cfg, self.val_split, train=False)
        world = self.ctx.world_size
        if cfg.optim.batch_size % world:
            raise UsageError(f"optim.batch_size {cfg.optim.batch_size} does not divide among {world} processes")
        self.batch_size = cfg.optim.batch_size // world
        self.steps_per_epoch = (len(self.train_set) // world) // self.batch_size
        if self.steps_per_epoch == 0:
            raise UsageError(
                f"{self.data}: {len(self.train_set)} training identities give no full batch of "
                f"{cfg.optim.batch_size} (batches are whole, as in the original): lower optim.batch_size"
            )
        self.total_steps = self.steps_per_epoch * cfg.optim.epochs

        # networks and optimisers
        self.generator = build_generator(cfg).to(self.device)
        self.discriminators = build_discriminators(cfg, len(self.train_split)).to(self.device)
        if cfg.optim.pretrained:
            self._load_pretrained(project_path(cfg.optim.pretrained))
        elif self.fuser_stage and not resume:
            self._log("warning: the fuser stage starts from untrained encoder and decoder (no optim.pretrained)")
        if self.fuser_stage:
            g_params = self.generator.freeze_all_but_fuser(freeze_batchnorm=cfg.optim.bn_mode == "frozen")
        else:
            g_params = list(self.generator.parameters())
        self._g_params = g_params
        lr0 = learning_rate(cfg.optim, 0)  # every epoch sets its own (§3.4)
        self.d_image_optimizers = [_adam(d.parameters(), lr0, cfg) for d in self.discriminators.image]
        self.d_ac_optimizers = [_adam(d.parameters(), lr0, cfg) for d in self.discriminators.ac]

        embedder, described = resolve_face_embedder(cfg, self.data, self._log)
        self.embedder = embedder.to(self.device).freeze()
        self._log(f"face embedder: {described}")
        perceptual: PerceptualTargets | None = None
        if cfg.loss.perceptual_weight > 0:
            loss = PerceptualLoss(self.embedder, cfg.loss.perceptual_layer_weights, cfg.data.image_norm)
            perceptual = PerceptualTargets(loss, self.generator.image_sizes, cfg.loss.perceptual_cache_mb << 20)
            cached = perceptual.fill(self.train_split, cfg.data.image_norm, cfg.data.image_hflip, self.device)
            self._log(f"perceptual targets of {cached} real faces cached")

        if cfg.run.compile:
            self._compile_fixed_shape_modules()
        g_forward: nn.Module = wrap_ddp(self.generator, self.ctx)
        d_forward: nn.Module = wrap_ddp(DiscriminatorObjective(self.discriminators, cfg.loss), self.ctx)
        self.iteration = TrainingStep(
            cfg, self.generator, self.discriminators, g_forward, d_forward, _adam(g_params, lr0, cfg),
            self.d_image_optimizers + self.d_ac_optimizers, perceptual,
        )

        # evaluation, logs and checkpoints (rank 0)
        self.run_dir = self._choose_run_dir(run_dir)
        main = self.ctx.is_main
        # validation scores with a network the generator is not trained against (eval.independent_embedder)
        self.scorer: FaceEmbedder = self.embedder
        if main:
            scorer, described = scoring_embedder(cfg, self.data, self.embedder)
            self.scorer = scorer.to(self.device).freeze()
            if described:
                self._log(f"validation scored by the {described}")
        self.gallery = gallery_embeddings(self.val_split, self.scorer, cfg.data.image_norm) if main else None
        self.track = dict(track or tracked_metrics(cfg.eval.recall_ks, len(self.val_split)))
        self.samples = self._sample_batch() if main else None
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", self.track)
        if resume:
            self._resume()
        elif self.ctx.is_main:
            if (self.run_dir / "checkpoints" / "latest.pt").exists():
                raise UsageError(f"{self.run_dir} already holds a run: resume it (--resume) or pick another folder")
            save_config(cfg, self.run_dir / "config.yaml")
            (self.run_dir / "run.json").write_text(json.dumps({"data": str(self.data)}, indent=1) + "\n")
        self.logger = RunLogger(self.run_dir, enabled=self.ctx.is_main)
        if resume:
            self.logger.truncate_after(self.counters.step)

    # ---- set-up helpers ---------------------------------------------------------------------------------------------

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

    def _loader(self, batches: list[list[int]], dataset: Any, seed: int) -> DataLoader:
        # an explicit generator: DataLoader would otherwise draw its worker seed from the global RNG
        return DataLoader(
            dataset,
            batch_sampler=batches,
            collate_fn=self.collate,
            num_workers=self.cfg.data.num_workers,
            generator=torch.Generator().manual_seed(seed),
            pin_memory=self.device.type == "cuda",
        )

    def _sample_batch(self) -> dict[str, Tensor] | None:
        """The fixed validation samples of the sample grids (up to 8 identities)."""
        if not len(self.val_set):
            return None
        return next(iter(self._loader([list(range(min(8, len(self.val_set))))], self.val_set, 0)))

    def _load_pretrained(self, path: Path) -> None:
        """Stage 2 starts from a stage-1 checkpoint: every generator tensor but the fuser's, and the discriminators
        (§3.4 "stage 2 loading"); anything that does not fit is an error naming the file."""
        state = self._read_checkpoint(path)
        own_fuser = {k: v for k, v in self.generator.state_dict().items() if k.startswith("fuser.")}
        load_state_checked(self.generator, {**own_fuser, **state["generator"]}, "generator", path)
        load_state_checked(self.discriminators, state["discriminators"], "discriminators", path)
        self._log(f"started from {path} (step {state['counters']['step']})")

    @staticmethod
    def _read_checkpoint(path: Path) -> dict[str, Any]:
        state = load_checkpoint(path)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: not an sf2f training checkpoint (format {state.get('format')!r})")
        return state

    def _resume(self) -> None:
        saved = self.run_dir / "config.yaml"
        if not saved.exists():
            raise MissingPathError(f"{saved}: nothing to resume (no config.yaml in the run folder)")
        diff = recipe_diff(load_resolved_config(saved), self.cfg)
        if diff:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:5])
            raise CheckpointError(
                f"{self.run_dir}: the run was made with another config ({shown}). A resume continues the run's own "
                f"recipe to the weights an uninterrupted run reaches, so only {', '.join(MACHINE_KEYS)} may change; "
                "train other settings as a new run"
            )
        state = self.checkpoints.resume()
        if state is None:  # stopped before its first checkpoint: start again, which gives the same run
            self._log(f"{self.run_dir}: no checkpoint yet, starting from the beginning")
            return
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{self.checkpoints.latest}: not an sf2f training checkpoint")
        where = self.checkpoints.latest
        load_state_checked(self.generator, state["generator"], "generator", where)
        load_state_checked(self.discriminators, state["discriminators"], "discriminators", where)
        self.counters = _Counters(**state["counters"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        for optimizer, saved_state in zip(self.d_image_optimizers + self.d_ac_optimizers, state["d_optimizers"]):
            optimizer.load_state_dict(saved_state)
        restore_rng_state(state["rng"])
        self.last_metrics = dict(state.get("metrics", {}))
        self._log(f"resumed {self.run_dir} at step {self.counters.step} (epoch {self.counters.epoch})")

    # ---- the loop -----------------------------------------------------------------------------------------------------

    @property
    def g_optimizer(self) -> torch.optim.Optimizer:
        return self.iteration.g_optimizer

    def autocast(self) -> AbstractContextManager:
        return self.iteration.autocast()

    def _batches(self, epoch: int, skip: int) -> Iterator[dict[str, Tensor]]:
        """This rank's batches of an epoch: a permutation seeded by (seed, epoch), whole batches, the first `skip`
        left out (they were done before an interruption)."""
        self.train_set.set_epoch(epoch)
        sampler = DistributedSampler(
            self.train_set, self.ctx.world_size, self.ctx.rank, shuffle=True, seed=self.cfg.run.seed, drop_last=True
        )
        sampler.set_epoch(epoch)
        order = list(sampler)
        b = self.batch_size
        batches = [order[i * b : (i + 1) * b] for i in range(self.steps_per_epoch)][skip:]
        return iter(self._loader(batches, self.train_set, self.cfg.run.seed * 100_003 + epoch)) if batches else iter(())

    def _generator_train_mode(self, epoch: int) -> bool:
        optim = self.cfg.optim
        if eval_mode_now(optim, epoch):
            return False
        if self.fuser_stage and optim.bn_mode == "as_original":
            # the original's wrapper flips the generator back to train mode at its first visualisation (§3.4)
            return self.counters.step >= optim.visualize_every
        return True

    def _begin_epoch(self, epoch: int) -> None:
        optim = self.cfg.optim
        if eval_mode_now(optim, epoch) and not self.counters.g_optimizer_reset:
            if optim.precise_bn_at_switch and not self.fuser_stage:
                self._precise_generator_bn(epoch)
            # §3.4: at the switch the original re-creates G's Adam, dropping its moments
            self.iteration.g_optimizer = _adam(self._g_params, learning_rate(optim, epoch), self.cfg)
            self.counters.g_optimizer_reset = True
        _set_lr(self.g_optimizer, learning_rate(optim, epoch))
        for optimizer in self.d_image_optimizers:
            _set_lr(optimizer, learning_rate(optim, epoch))
        for optimizer in self.d_ac_optimizers:
            _set_lr(optimizer, learning_rate(optim, epoch, decays=optim.decay_ac_lr))

    def _compile_fixed_shape_modules(self) -> None:
        """torch.compile, in place, the networks whose input shapes never change: the decoder, every discriminator
        and the face embedder. Not the voice encoder: each batch draws a new crop length (§1.6, 100-150 frames) and
        its strided convolutions make the compiler specialise on the length's divisibility, so it would recompile
        for batch after batch until dynamo's recompile limit and then run uncompiled anyway."""
        for module in (self.generator.decoder, *self.discriminators.image, *self.discriminators.ac, self.embedder):
            module.compile()

    def _forked_rng(self) -> AbstractContextManager:
        """Inside: torch's random state (the CPU's and this run's GPU's) may be drawn from; on exit it is as before."""
        return torch.random.fork_rng(devices=[self.device.index or 0] if self.device.type == "cuda" else [])

    def _precise_generator_bn(self, epoch: int) -> None:
        """G's BatchNorm statistics recomputed over this epoch's training batches (the same ones the epoch then
        trains on), averaged over the processes; the random state is left as it was, so the run goes on as it would
        have without this pass (but for the statistics)."""
        with self._forked_rng(), precise_batchnorm(self.generator) as layers:
            for batch in self._batches(epoch, 0):
                voice, mask = generator_inputs(batch, self.device)
                with self.autocast():
                    self.generator(voice, mask)
        average_across_processes(layers)
        self._log(f"epoch {epoch}: the generator's BatchNorm statistics recomputed before the eval-mode switch")

    def step(self, batch: Mapping[str, Tensor], epoch: int) -> dict[str, Tensor] | None:
        """One iteration (§3.2, :class:`~sf2f.train.step.TrainingStep`) in the generator mode of this epoch and step.
        Returns the detached loss terms, or None when it was skipped (non-finite loss; counted)."""
        self.iteration.g_forward.train(self._generator_train_mode(epoch))
        optim = self.cfg.optim
        terms = self.iteration(batch, l1_enabled(optim, epoch), adversarial_enabled(optim, epoch))
        if terms is None:
            self.counters.skipped += 1
        return terms

    def fit(self) -> TrainResult:
        """Train to the end of `optim.epochs` (from where a resumed run stopped) and return the result."""
        cfg, counters = self.cfg, self.counters
        start_time = time.perf_counter()
        bar = tqdm(
            total=self.total_steps, initial=counters.step, desc=f"{cfg.name} ({cfg.optim.stage})",
            disable=not (self.progress and self.ctx.is_main), dynamic_ncols=True,
        )
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
                    values |= {
                        "lr": self.g_optimizer.param_groups[0]["lr"],
                        "skipped_steps": counters.skipped,
                        "seconds_per_step": (time.perf_counter() - window_start) / max(window, 1),
                    }
                    self._record(values, "train")
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
                if (
                    values is not None
                    or (every and counters.step % every == 0)
                    or (epoch_done and ((epoch + 1) % cfg.optim.checkpoint_every_epochs == 0 or last))
                ):
                    self.save_checkpoint(values)
                for callback in self.callbacks:
                    callback(self, counters.step)
        bar.close()
        result = TrainResult(
            self.run_dir, counters.step, counters.skipped, time.perf_counter() - start_time, dict(self.last_metrics),
            self.replica_hashes(),
        )
        if self.ctx.is_main:
            result.write()
        self.logger.close()
        return result

    # ---- evaluation, samples, checkpoints ---------------------------------------------------------------------------

    def _record(self, values: Mapping[str, float], split: str) -> None:
        self.logger.log(self.counters.step, self.counters.epoch, values, split)

    def history(self) -> pd.DataFrame:
        """The run's log so far (long form: step, epoch, split, name, value), resumed parts included."""
        return read_log(self.run_dir)

    @contextmanager
    def _evaluating(self) -> Iterator[None]:
        """The generator in eval mode on a forked, fixed random state (so that evaluating never shifts the training
        stream, even for the baseline's noise at test time), then back to its previous mode."""
        was_training = self.generator.training
        with self._forked_rng():
            torch.manual_seed(self.cfg.eval.seed)
            self.generator.eval()
            try:
                yield
            finally:
                self.generator.train(was_training)

    def validate(self) -> ValidationResult:
        """The generator's faces for the whole validation split (deterministic)."""
        loader = validation_loader(self.cfg, self.val_split, self.batch_size)
        with self._evaluating():
            return run_validation(self.generator, loader, self.scorer, self.gallery, self.cfg.data.image_norm,
                                  self.autocast)

    def evaluate(self) -> dict[str, float] | None:
        """Quick metrics (and any extra ones) on the validation split, logged; rank 0 only (others get None)."""
        if not self.ctx.is_main or not len(self.val_set):
            return None
        result = self.validate()
        values = quick_metrics(result, self.cfg.eval.recall_ks)
        for metric in self.extra_metrics:
            values.update(metric(result))
        self._record(values, "val")
        self.last_metrics = values
        return values

    def save_samples(self) -> Path | None:
        """A real | generated grid of the fixed validation samples, `<run>/samples/step_<step>.png` (rank 0)."""
        if not self.ctx.is_main or self.samples is None:
            return None
        voice, mask = generator_inputs(self.samples, self.device)
        with self._evaluating(), torch.no_grad(), self.autocast():
            images = self.generator(voice, mask).images
        path = self.run_dir / "samples" / f"step_{self.counters.step:07d}.png"
        return save_sample_grid(path, self.samples["image"], images, self.cfg.data.image_norm)

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything a resume needs, as plain data (read back with weights_only=True)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": config_to_dict(self.cfg),
            "num_ids": len(self.train_split),
            "generator": unwrap(self.generator).state_dict(),
            "discriminators": self.discriminators.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizers": [o.state_dict() for o in self.d_image_optimizers + self.d_ac_optimizers],
            "counters": dict(self.counters.__dict__),
            "rng": capture_rng_state(),
            "metrics": dict(self.last_metrics),
        }

    def save_checkpoint(self, values: Mapping[str, float] | None = None) -> list[str]:
        """Write `latest.pt` (and `best_<metric>.pt` for each tracked metric that improved); rank 0 only."""
        if not self.ctx.is_main:
            return []
        tracked = {k: v for k, v in (values or {}).items() if k in self.track}
        return self.checkpoints.save(self.checkpoint_state(), tracked)

    def replica_hashes(self) -> list[str]:
        """A hash of each process's generator and discriminator weights (one entry per rank): DDP keeps them
        identical, and the run records that it did."""
        own = _parameter_hash(self.generator, self.discriminators)
        if not self.ctx.distributed:
            return [own]
        gathered: list[Any] = [None] * self.ctx.world_size
        dist.all_gather_object(gathered, own)
        return [str(h) for h in gathered]
