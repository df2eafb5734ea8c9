"""The typed experiment configuration: every number of the SF2F and voice2face recipes, citing docs/original_recipe.md
("recipe §N"). OmegaConf checks types and ``Literal`` choices (sf2f.config.loader); `validate()` what a type cannot say
(ranges, values that must agree), :func:`check_tree` over a whole config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal


class ValueProblem(ValueError):
    """An impossible value, with its dotted key; the loader adds the file (ConfigError)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ValueProblem(key, message)


def _positive(cfg: Any, *keys: str, or_zero: bool = False) -> None:
    for key in keys:
        value = getattr(cfg, key)
        _require(value > 0 or (or_zero and value == 0), key, "must be >= 0" if or_zero else "must be positive")


@dataclass(frozen=True)
class ConvSpec:
    """One `C{kernel}-{channels}-{stride}[-{padding}]` layer; ``padding`` None means "from the padding option"."""

    kernel: int
    channels: int
    stride: int
    padding: int | None = None

    def __str__(self) -> str:
        return f"C{self.kernel}-{self.channels}-{self.stride}" + ("" if self.padding is None else f"-{self.padding}")


def parse_arch(arch: str, key: str = "arch") -> list[ConvSpec]:
    """A discriminator arch string (recipe §2.5), ``"C4-64-2,C1-32-1-0"``, as its layers; ValueProblem under `key`."""
    specs = []
    for layer in arch.split(","):
        parts = layer.strip().split("-")
        numbers = [parts[0][1:], *parts[1:]]
        ok = parts[0].startswith("C") and len(parts) in (3, 4) and all(p.isdigit() for p in numbers)
        _require(ok, key, f"bad layer '{layer}' in arch '{arch}': expected C<kernel>-<channels>-<stride>[-<padding>]")
        specs.append(ConvSpec(*(int(p) for p in numbers)))
    return specs


@dataclass
class AudioConfig:
    """Speech to normalised log-mel (recipe §1.4; the voice2face alternative is §7.2)."""

    sample_rate: int = 16000
    # webrtcvad: aggressiveness 1, 30 ms frames, 300 ms ring buffer, (de)trigger above 0.9 of the buffer (§1.4 step 2)
    vad: bool = True
    vad_aggressiveness: Literal[0, 1, 2, 3] = 1
    vad_frame_ms: Literal[10, 20, 30] = 30
    vad_padding_ms: int = 300
    vad_trigger_ratio: float = 0.9
    # python_speech_features.logfbank defaults as the original calls them (§1.4 step 3)
    n_mels: int = 40
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    window: Literal["rectangular", "hamming"] = "rectangular"
    preemphasis: float = 0.97
    f_min: float = 0.0
    f_max: float = 8000.0
    # `peak`: python_speech_features triangles of height 1 on bins floor((n_fft+1) hz / sr) (§1.4);
    # `area`: Sphinx triangles of height 2 / width on bins round(hz n_fft / sr), as voice2face uses them (§7.2)
    filterbank_norm: Literal["peak", "area"] = "peak"
    # `per_nfft`: |rfft|^2 / n_fft as python_speech_features (§1.4); `none`: |rfft|^2 as voice2face's Sphinx (§7.2)
    power_scale: Literal["per_nfft", "none"] = "per_nfft"
    # zeros count as float64 eps (log -36.04, §1.4); `clip` clamps below log_floor instead (1e-5 in voice2face, §7.2)
    log_floor: float = 2.220446049250313e-16
    log_floor_mode: Literal["replace_zeros", "clip"] = "replace_zeros"
    # float64 matches the original within 1e-4, float32 (default, faster) within 1e-3
    dtype: Literal["float32", "float64"] = "float32"
    # one global scalar for all bins: (x - 10.9915) / 3.1661 (§1.4, VOX_MEL_MEAN / VOX_MEL_STD)
    mel_norm: Literal["global", "dataset", "utterance"] = "global"
    mel_mean: float = 10.9915
    mel_std: float = 3.1661

    def validate(self) -> None:
        _positive(self, "sample_rate", "n_mels", "log_floor", "mel_std")
        _require(self.vad_padding_ms >= self.vad_frame_ms, "vad_padding_ms", "must be at least one VAD frame")
        _require(not self.vad or self.sample_rate in (8000, 16000, 32000, 48000), "sample_rate",
                 "webrtcvad needs 8000, 16000, 32000 or 48000 Hz")
        _require(0.0 < self.vad_trigger_ratio < 1.0, "vad_trigger_ratio", "must lie in (0, 1)")
        _require(0 < self.hop_ms <= self.win_ms, "hop_ms", "must be positive and no longer than win_ms")
        win = round(self.win_ms * self.sample_rate / 1000)
        _require(self.n_fft >= win, "n_fft", f"must be at least the window length ({win} samples)")
        _require(0.0 <= self.preemphasis < 1.0, "preemphasis", "must lie in [0, 1)")
        _require(0.0 <= self.f_min < self.f_max <= self.sample_rate / 2, "f_max", "need 0 <= f_min < f_max <= sr/2")


@dataclass
class SyntheticConfig:
    """Size and seed of the offline synthetic dataset (`sf2f.data.synthetic`); not part of the paper."""

    identities: int = 300
    utterances: int = 8  # per identity, 2-8 s each
    faces: int = 4  # per identity, each as masked_faces and origin_faces
    seed: int = 0
    # share of utterances with distractor stretches (noise, music...: issue 24); 0: clean, as the shipped weights'
    distractors: float = 0.0

    def validate(self) -> None:
        _require(2 <= self.identities <= 18_000, "identities", "must lie in [2, 18000] (the VoxCeleb id ranges)")
        _positive(self, "utterances", "faces")
        _positive(self, "seed", or_zero=True)
        _require(0 <= self.distractors <= 1, "distractors", "is a share of the utterances, in [0, 1]")


@dataclass
class DataConfig:
    """Where the data lives and how training samples are drawn (recipe §1.2-1.7)."""

    # dataset root in the layout of data/README.md; relative paths are taken from the repository root
    root: str = "data/synthetic"
    kind: Literal["synthetic", "voxceleb"] = "synthetic"
    sub_datasets: list[str] = field(default_factory=lambda: ["vox1", "vox2"])
    face_type: Literal["masked", "origin"] = "masked"
    image_size: Literal[64, 128] = 64  # the sizes the decoders produce
    image_norm: Literal["imagenet", "standard"] = "imagenet"
    image_hflip: bool = False
    # one crop length per batch, uniform in [100, 150] frames (both ends included), §1.6
    crop_frames: list[int] = field(default_factory=lambda: [100, 150])
    # fuser samples: up to 20 non-overlapping 125-frame windows, random start in training (§1.6 stage 2)
    segment_frames: int = 125
    segment_stride: int = 125
    max_segments: int = 20
    random_segment_start: bool = True
    # `original`: meta-row index i % 10 == 8 -> test, == 9 -> val, else train (§1.3); `seeded`: a seeded shuffle
    split_rule: Literal["original", "seeded"] = "original"
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    # cap on identities per split (None = all); the profiles scale this
    max_identities: int | None = None
    num_workers: int = 0
    audio: AudioConfig = field(default_factory=AudioConfig)
    # what `root` holds when kind is synthetic (the profiles scale it; quick and demo use separate folders)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def validate(self) -> None:
        _require(len(self.crop_frames) == 2 and 0 < self.crop_frames[0] <= self.crop_frames[1], "crop_frames",
                 "must be [low, high] with 0 < low <= high")
        _positive(self, "segment_frames", "segment_stride", "max_segments")
        fractions = self.split_fractions
        _require(len(fractions) == 3 and min(fractions) >= 0 and abs(sum(fractions) - 1.0) < 1e-6, "split_fractions",
                 "must be [train, val, test], non-negative, summing to 1")
        _require(self.max_identities is None or self.max_identities > 0, "max_identities", "must be positive")
        _positive(self, "num_workers", or_zero=True)
        _require(len(self.sub_datasets) > 0, "sub_datasets", "must name at least one sub-dataset")


@dataclass
class EncoderConfig:
    """Voice encoder V2F1DCNN (recipe §2.1): plain 1D-CNN (voice2face) or 1D-Inception (SF2F)."""

    kind: Literal["cnn", "inception"] = "inception"
    channels: list[int] = field(default_factory=lambda: [256, 384, 576, 864])
    embed_dim: int = 512
    normalize_embedding: bool = True
    # baseline only: + 0.05 N(0, 1), then L2-normalise again (§2.1 head step 3)
    add_noise: bool = False
    noise_std: float = 0.05
    # the original never gates the noise by `self.training` (§6 item 13); True reproduces that
    noise_in_eval: bool = False

    def validate(self) -> None:
        _require(len(self.channels) > 0 and min(self.channels) > 0, "channels", "must be positive")
        _require(self.kind != "inception" or all(c % 4 == 0 for c in self.channels), "channels",
                 "inception widths must divide by 4 (four equal branches)")
        _positive(self, "embed_dim")
        _positive(self, "noise_std", or_zero=True)


@dataclass
class FuserConfig:
    """AttentionFuserV1 over per-segment embeddings (recipe §2.2)."""

    enabled: bool = False
    dim: int = 512
    dim_out: int = 512
    normalize_fusion: bool = True

    def validate(self) -> None:
        _positive(self, "dim", "dim_out")


@dataclass
class DecoderConfig:
    """Face decoders (recipe §2.3): V2F transposed-conv, GLU/upsampling GAN (64), multi-resolution (64 + 128)."""

    kind: Literal["v2f", "gan", "gan_multires"] = "gan"
    # v2f: ConvTranspose widths; gan: fc output channels (512 at 4x4) then halved by every up-block
    channels: list[int] = field(default_factory=lambda: [512, 256, 128, 64, 32])
    # channels of the extra 128x128 up-block of the multi-resolution decoder
    mid_channels: int = 16
    leaky_slope: float = 0.01

    def validate(self) -> None:
        _require(len(self.channels) > 0 and min(self.channels) > 0, "channels", "must be positive")
        _positive(self, "mid_channels")


@dataclass
class DiscriminatorConfig:
    """Discriminators from arch strings `C{k}-{out}-{stride}[-{pad}]` (recipe §2.5); one entry per output scale."""

    image_archs: list[str] = field(default_factory=lambda: ["C4-64-2,C4-128-2,C4-256-2"])
    ac_archs: list[str] = field(default_factory=lambda: ["C4-64-2,C4-128-2,C4-256-2"])
    normalization: Literal["batch", "none"] = "batch"
    activation: str = "leakyrelu-0.1"
    padding: Literal["valid", "same"] = "valid"
    ac_hidden: int = 1024

    def validate(self) -> None:
        for key in ("image_archs", "ac_archs"):
            for arch in getattr(self, key):
                parse_arch(arch, key)
        _require(self.activation in ("relu", "leakyrelu") or self.activation.startswith("leakyrelu-"), "activation",
                 "must be relu, leakyrelu or leakyrelu-<slope>")
        _positive(self, "ac_hidden")


@dataclass
class FaceEmbedderConfig:
    """The face embedder of the perceptual loss (§3.1) and the metrics (§4.2), unscaled by `model.width_mult`: `facenet`
    (InceptionResnetV1, VGGFace2 weights, §2.7; without them a trained one stands in, with a note) or `trained`, a small
    CNN on the training faces (`python -m sf2f train-face-embedder`) for data FaceNet never saw (synthetic default)."""

    kind: Literal["facenet", "trained"] = "facenet"
    # "" = facenet-pytorch's cache, $TORCH_HOME/checkpoints/20180402-114759-vggface2.pt (sf2f.weights)
    facenet_weights: str = ""
    # "" = <prepared data folder>/face_embedder.pt
    trained_path: str = ""
    # the trained embedder: input side (of the resized VGG box), width, training with logits s (cos - m) for the truth
    input_size: int = 64
    width: int = 32
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    cosine_scale: float = 16.0
    cosine_margin: float = 0.2

    def validate(self) -> None:
        _require(self.input_size >= 16, "input_size", "must be at least 16 (four stride-2 stages)")
        _require(self.batch_size >= 2, "batch_size", "must be at least 2")
        _positive(self, "width", "epochs", "lr", "cosine_scale")
        _require(0 <= self.cosine_margin < 1, "cosine_margin", "must lie in [0, 1)")


@dataclass
class ModelConfig:
    """Generator (encoder [+ fuser] + decoder) and discriminators (recipe §2)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    fuser: FuserConfig = field(default_factory=FuserConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    discriminators: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    face_embedder: FaceEmbedderConfig = field(default_factory=FaceEmbedderConfig)
    # multiplies every channel width: the `quick` and `demo` profiles use the same classes at reduced size
    width_mult: float = 1.0

    def validate(self) -> None:
        _require(0 < self.width_mult <= 4, "width_mult", "must lie in (0, 4]")
        _require(not self.fuser.enabled or self.fuser.dim == self.encoder.embed_dim, "fuser.dim",
                 "must equal encoder.embed_dim")


@dataclass
class LossConfig:
    """Loss types and weights (recipe §3.1 and the table of §3.3)."""

    gan_type: Literal["gan", "lsgan", "wgan"] = "gan"
    l1_weight: float = 10.0
    perceptual_weight: float = 100.0
    # FaceNet hidden states [repeat_1, repeat_2, repeat_3, embedding] (§3.1)
    perceptual_layer_weights: list[float] = field(default_factory=lambda: [0.0625, 0.125, 0.25, 1.0])
    d_loss_weight: float = 1.0
    # -1 disables the image discriminator, as in v2f.yaml
    d_img_weight: float = 1.0
    ac_loss_weight: float = 0.05
    # the original's D update is not scaled by d_loss_weight / ac_loss_weight (§6 item 14); True scales it
    scale_discriminator_update: bool = False
    # the real faces' perceptual targets kept (float16) up to this budget; 0 recomputes them every step as the original
    perceptual_cache_mb: int = 2048

    def validate(self) -> None:
        _positive(self, "l1_weight", "perceptual_weight", "d_loss_weight", "ac_loss_weight", "perceptual_cache_mb",
                  or_zero=True)
        _require(len(self.perceptual_layer_weights) == 4, "perceptual_layer_weights", "needs 4 weights")


@dataclass
class OptimConfig:
    """Optimisers, schedule and the two training stages (recipe §3.4)."""

    stage: Literal["stage1", "fuser"] = "stage1"
    lr: float = 5e-4
    # not a paper number (1 there): the course profiles' few hundred iterations (the paper's 145,000) need larger steps
    lr_scale: float = 1.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 12000
    eval_every_epochs: int = 15
    # iterations between sample grids (real | generated); the original's visualize_every (§3.2 step 5)
    visualize_every: int = 10
    checkpoint_every_epochs: int = 1000
    # also write the latest checkpoint every this many iterations (0: only at epoch ends): a killed run loses little
    checkpoint_every_steps: int = 0
    # linear decay to lr * 1e-3 from epoch 10000 on (G and image-D optimisers; the AC-D lr never decays)
    decay_lr_after_epochs: int = 10000
    decay_lr_final_ratio: float = 1e-3
    decay_ac_lr: bool = False
    # at this epoch G goes to eval mode (BatchNorm frozen) and its Adam state is reset
    eval_mode_after_epochs: int = 10000
    # not in the original: at the eval-mode switch, recompute G's BatchNorm statistics over the epoch (update_bn)
    precise_bn_at_switch: bool = False
    disable_l1_after_epochs: int = 10_000_000
    # not in the paper: epochs of L1 alone, the discriminators resting, as ESRGAN's pre-training (Wang et al. 2018)
    pixel_warmup_epochs: int = 0
    # stage 2: `frozen` keeps BatchNorm in eval mode; `as_original` flips it back after the first visualisation (§3.4)
    bn_mode: Literal["frozen", "as_original"] = "frozen"
    # stage-1 checkpoint the fuser stage starts from
    pretrained: str | None = None
    skip_nonfinite: bool = True

    def validate(self) -> None:
        _positive(self, "lr", "lr_scale", "batch_size", "epochs", "eval_every_epochs", "visualize_every",
                  "checkpoint_every_epochs")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", "need two values in [0, 1)")
        _positive(self, "weight_decay", "checkpoint_every_steps", or_zero=True)
        _require(0 <= self.pixel_warmup_epochs < self.epochs, "pixel_warmup_epochs", "must be in [0, epochs)")
        # during the warm-up L1 is the generator's only loss: it must still be on
        _require(self.pixel_warmup_epochs <= self.disable_l1_after_epochs, "pixel_warmup_epochs",
                 "must not outlast the L1 loss (disable_l1_after_epochs)")
        _require(0 < self.decay_lr_final_ratio <= 1, "decay_lr_final_ratio", "must lie in (0, 1]")


@dataclass
class EvalConfig:
    """Evaluation protocol (recipe §4)."""

    # probe mode of §4.2; the stage-1 configs evaluate with the average FaceNet embedding, fuser configs naive
    face_gen_mode: Literal["naive", "average_facenet_embedding", "average_voice_embedding"] = (
        "average_facenet_embedding")
    recall_ks: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 20, 50])
    # extraction_size [100, 200, 300]: three groups of 100 identities (§4.2)
    recall_group_size: int = 100
    recall_groups: int = 3
    recall_method: Literal["cos", "l1"] = "cos"
    # VGG box (left, top, right, bottom) as fractions, §4.3
    vgg_box: list[float] = field(default_factory=lambda: [0.235, 0.195, 0.765, 0.915])
    facenet_input_size: int = 140
    # VGGFace Score (§4.1): 5 splits, Caffe means in RGB order; `rgb` feeds RGB as the original did
    vfs_splits: int = 5
    vfs_channel_order: Literal["rgb", "bgr"] = "rgb"
    vfs_input_size: int = 224
    seed: int = 0
    # trained embedders: score with a second one (another seed), since a generator learns what its loss's embedder
    # reads (demo: R@10 0.53 with it, 0.37 with a second, chance 0.33); FaceNet runs use the loss's, as the paper, §4.2
    independent_embedder: bool = True
    # random pairings of probes and identities behind the table's p-values against chance (sf2f.evaluate.retrieval)
    chance_permutations: int = 10_000

    def validate(self) -> None:
        _require(all(k >= 1 for k in self.recall_ks), "recall_ks", "must be >= 1")
        _positive(self, "chance_permutations", "recall_group_size", "recall_groups", "vfs_splits")
        _require(len(self.vgg_box) == 4, "vgg_box", "needs (left, top, right, bottom)")
        left, top, right, bottom = self.vgg_box
        _require(0 <= left < right <= 1 and 0 <= top < bottom <= 1, "vgg_box", "must be fractions with left<right")


@dataclass
class RunConfig:
    """Where a run writes and how it uses the machine (sf2f.runtime)."""

    name: str = "run"
    seed: int = 0
    device: str = "auto"
    # 0 = leave torch's default thread count
    threads: int = 0
    # deterministic kernels: bit-exact resumes and reruns on a GPU too (sf2f.runtime.set_determinism), maybe slower
    deterministic: bool = False
    output_root: str = "runs"
    amp: Literal["none", "bf16"] = "none"
    # torch.compile the networks with fixed input shapes (sf2f.train.trainer.Trainer._build_iteration)
    compile: bool = False
    log_every: int = 10

    def validate(self) -> None:
        _require(self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:"), "device",
                 "must be auto, cpu, cuda, cuda:N or mps")
        _positive(self, "threads", or_zero=True)
        _positive(self, "log_every")


@dataclass
class ExperimentConfig:
    """One fully resolved experiment: a paper config, scaled by a profile, with any overrides applied."""

    name: str = "experiment"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # filled in by load_config: what this config was resolved from
    profile: str | None = None
    sources: list[str] = field(default_factory=list)

    def validate(self) -> None:
        multires = self.model.decoder.kind == "gan_multires"
        _require(self.data.image_size == (128 if multires else 64), "data.image_size",
                 f"decoder '{self.model.decoder.kind}' makes {128 if multires else 64} px images")
        n_scales, disc = 2 if multires else 1, self.model.discriminators
        if self.loss.d_img_weight > 0:
            _require(len(disc.image_archs) == n_scales, "model.discriminators.image_archs", f"needs {n_scales}")
        _require(len(disc.ac_archs) == n_scales, "model.discriminators.ac_archs", f"needs one per scale ({n_scales})")
        _require(self.optim.stage != "fuser" or self.model.fuser.enabled, "optim.stage",
                 "the fuser stage needs model.fuser.enabled: true")
        _require(not self.optim.pixel_warmup_epochs or self.loss.l1_weight > 0, "optim.pixel_warmup_epochs",
                 "a pixel warm-up needs loss.l1_weight > 0")


def check_tree(cfg: Any, prefix: str = "") -> None:
    """`validate()` every section of a config, innermost first, naming a problem by its full dotted key."""
    for item in dataclasses.fields(cfg):
        child = getattr(cfg, item.name)
        if dataclasses.is_dataclass(child):
            check_tree(child, f"{prefix}{item.name}.")
    try:
        cfg.validate()
    except ValueProblem as problem:
        raise ValueProblem(f"{prefix}{problem.key}", problem.message) from None
