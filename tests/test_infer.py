"""A face from speech files (sf2f.infer, `python -m sf2f infer`): real recordings in any format, fusion over files,
and errors that name the file.

The generators are untrained quick-profile ones saved in the checkpoint format `load_generator` reads: what is tested
is the pipeline around the weights, not what they learned.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from fixture_models import untrained_checkpoint
from PIL import Image

from sf2f.audio import load_audio, pad_value
from sf2f.checkpoints import load_generator
from sf2f.cli import build_parser, main
from sf2f.infer import FaceFromVoice, NoUsableSpeechError, generate_face, interpolate_faces, speech_segments
from sf2f.models.optimize import optimize_for_inference

DATA = Path(__file__).parent / "data"
SPEECH_A, SPEECH_B = DATA / "arctic_a0007.wav", DATA / "arctic_a0009.wav"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("checkpoints")
    return {name: untrained_checkpoint(folder, name) for name in ("sf2f_fuser", "sf2f_mid_fuser", "sf2f_1st_stage")}


@pytest.fixture(scope="module")
def fuser(checkpoints: dict[str, Path]):
    return load_generator(checkpoints["sf2f_fuser"])


@pytest.fixture(scope="module")
def singles(fuser) -> tuple[FaceFromVoice, FaceFromVoice]:
    generator, cfg = fuser
    return generate_face(generator, cfg, [SPEECH_A]), generate_face(generator, cfg, [SPEECH_B])


def test_real_speech_gives_a_face_with_attention_over_its_windows(fuser, singles) -> None:
    _, cfg = fuser
    face = singles[0]
    (image,) = face.images
    assert image.shape == (3, cfg.data.image_size, cfg.data.image_size)
    assert face.pixels().shape == (cfg.data.image_size, cfg.data.image_size, 3)
    (source,) = face.speech.files
    # 125-frame windows, one every 125 frames, over the speech the VAD kept (10 ms frames)
    assert source.segments == len(face.speech) == int(source.speech_seconds * 100) // 125 >= 2
    assert face.fusion == "attention"
    assert face.attention.shape == (len(face.speech), len(face.speech))
    torch.testing.assert_close(face.attention.sum(dim=1), torch.ones(len(face.speech)))
    assert face.segment_weights.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert face.embedding.norm().item() == pytest.approx(1.0, abs=1e-5)  # normalize_fusion (§2.2)


def test_two_files_are_fused_into_one_face_that_differs_from_each(fuser, singles) -> None:
    generator, cfg = fuser
    a, b = singles
    both = generate_face(generator, cfg, [SPEECH_A, SPEECH_B])
    assert len(both.speech) == len(a.speech) + len(b.speech)
    assert both.speech.file_index.tolist() == [0] * len(a.speech) + [1] * len(b.speech)
    torch.testing.assert_close(both.segment_embeddings, torch.cat([a.segment_embeddings, b.segment_embeddings]))
    for single in (a, b):
        assert not torch.allclose(both.embedding, single.embedding, atol=1e-4)
        assert (both.images[0] - single.images[0]).abs().mean() > 1e-3


def test_any_rate_and_channel_count_gives_the_same_windows(fuser, singles, tmp_path: Path) -> None:
    generator, cfg = fuser
    mono = load_audio(SPEECH_A).samples.astype(np.float64) / 32768.0
    resampled = torch.from_numpy(mono)
    at_44k = AF.resample(resampled, 16000, 44100).numpy()
    stereo = tmp_path / "a0007_44k_stereo.wav"
    soundfile.write(stereo, np.stack([at_44k, at_44k], axis=1), 44100, subtype="FLOAT")
    flac = tmp_path / "a0007_8k.flac"
    soundfile.write(flac, AF.resample(resampled, 16000, 8000).numpy(), 8000, subtype="PCM_24")
    original = singles[0]
    for copy, channels in ((stereo, 2), (flac, 1)):
        face = generate_face(generator, cfg, [copy])
        notes = " ".join(face.speech.files[0].notes)
        assert "resampled" in notes and ("2 channels averaged" in notes) == (channels == 2)
        assert len(face.speech) == len(original.speech)
        # the same speech, slightly changed by the round trip: the voice embedding barely moves
        assert F.cosine_similarity(face.embedding, original.embedding, dim=0) > 0.95


def test_the_faster_inference_copy_gives_the_same_face(fuser, singles) -> None:
    generator, cfg = fuser
    face = generate_face(optimize_for_inference(generator), cfg, [SPEECH_A])
    torch.testing.assert_close(face.embedding, singles[0].embedding, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(face.images[0], singles[0].images[0], atol=1e-4, rtol=1e-3)


def test_a_128_model_writes_every_scale_and_a_summary(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    generator, cfg = load_generator(checkpoints["sf2f_mid_fuser"])
    face = generate_face(generator, cfg, [SPEECH_A, SPEECH_B])
    written = face.save(tmp_path, info={"checkpoint": "x.pt"})
    assert [p.name for p in written] == ["face_64.png", "face_128.png", "face.json"]
    assert Image.open(tmp_path / "face_128.png").size == (128, 128)
    summary = json.loads((tmp_path / "face.json").read_text())
    assert summary["checkpoint"] == "x.pt" and summary["segments"] == len(face.speech)
    assert [f["path"] for f in summary["files"]] == [str(SPEECH_A), str(SPEECH_B)]
    assert sum(f["segments"] for f in summary["files"]) == summary["segments"]


def test_without_a_fuser_the_window_embeddings_are_averaged(checkpoints: dict[str, Path]) -> None:
    generator, cfg = load_generator(checkpoints["sf2f_1st_stage"])
    face = generate_face(generator, cfg, [SPEECH_A, SPEECH_B])
    assert face.fusion == "mean" and face.attention is None and face.segment_weights is None
    mean = face.segment_embeddings.mean(dim=0)
    assert mean.norm() < 0.999  # windows that disagree: the plain mean is shorter than the unit embeddings
    torch.testing.assert_close(face.embedding, F.normalize(mean, dim=0))
    original = generate_face(generator, cfg, [SPEECH_A, SPEECH_B], renormalize_mean=False)  # §4.2 as the original
    torch.testing.assert_close(original.embedding, mean)


def test_a_file_with_one_to_one_and_a_quarter_seconds_of_speech_gives_one_padded_window(fuser, tmp_path: Path) -> None:
    generator, cfg = fuser
    short = tmp_path / "short.wav"
    samples = load_audio(SPEECH_A).samples
    speech = samples[np.abs(samples.astype(np.int32)).argmax() - 9000 :][:19000]  # about 1.2 s around the loudest part
    soundfile.write(short, speech, 16000, subtype="PCM_16")
    segments = speech_segments([short], cfg.data)
    assert 1.0 <= segments.files[0].speech_seconds < 1.25
    assert len(segments) == 1 and segments.files[0].padded
    assert segments.segments[0, :, -1].eq(pad_value(cfg.data.audio)).all()


def test_interpolation_endpoints_are_the_two_faces(fuser, singles) -> None:
    generator, cfg = fuser
    a, b = singles
    (steps,) = interpolate_faces(generator, a.embedding, b.embedding, [0.0, 0.5, 1.0])
    assert steps.shape == (3, 3, cfg.data.image_size, cfg.data.image_size)
    torch.testing.assert_close(steps[0], a.images[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(steps[2], b.images[0], atol=1e-5, rtol=1e-4)
    assert (a.images[0] - b.images[0]).abs().mean() > 1e-3  # two different faces, so the check means something
    middle = steps[1]
    assert (middle - a.images[0]).abs().mean() > 1e-4 and (middle - b.images[0]).abs().mean() > 1e-4


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    text = folder / "notes.wav"
    text.write_text("this is not audio\n" * 50)
    empty = folder / "empty.wav"
    empty.touch()
    silence = folder / "silence.wav"
    soundfile.write(silence, np.zeros(3 * 16000, dtype=np.int16), 16000, subtype="PCM_16")
    short = folder / "short.wav"
    soundfile.write(short, load_audio(SPEECH_A).samples[16000:24000], 16000, subtype="PCM_16")
    return {
        "not audio": (text, "not a readable audio file"),
        "empty": (empty, "empty file"),
        "silent": (silence, "found no speech"),
        "too short": (short, "too short"),
        "missing": (folder / "nowhere.wav", "cannot be opened"),
    }


def test_each_bad_file_is_named_with_its_reason(fuser, tmp_path: Path) -> None:
    generator, cfg = fuser
    bad = _bad_files(tmp_path)
    for path, reason in bad.values():
        with pytest.raises(NoUsableSpeechError) as error:
            generate_face(generator, cfg, [SPEECH_A, path])
        assert len(error.value.errors) == 1
        assert str(path) in str(error.value) and reason in str(error.value)
    with pytest.raises(NoUsableSpeechError) as error:
        generate_face(generator, cfg, [path for path, _ in bad.values()])
    assert len(error.value.errors) == len(bad)


def test_cli_writes_the_face_and_reports_errors(checkpoints: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = checkpoints["sf2f_fuser"].parent.parent
    out = tmp_path / "out"
    assert main(["infer", "--checkpoint", str(run_dir), "--wav", str(SPEECH_A), str(SPEECH_B), "--out", str(out),
                 "--device", "cpu"]) == 0
    assert Image.open(out / "face_64.png").size == (64, 64)
    assert json.loads((out / "face.json").read_text())["checkpoint"] == str(run_dir)
    assert "fused by attention" in capsys.readouterr().out

    assert main(["infer", "--checkpoint", str(tmp_path / "no.pt"), "--wav", str(SPEECH_A), "--out", str(out)]) == 2
    assert "no.pt: no such checkpoint" in capsys.readouterr().err
    silence = _bad_files(tmp_path)["silent"][0]
    assert main(["infer", "--checkpoint", str(run_dir), "--wav", str(silence), "--out", str(tmp_path / "o2")]) == 2
    assert f"{silence}: silent" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_infer_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["infer", "--help"])
    assert exit_info.value.code == 0
    assert "python -m sf2f infer" in capsys.readouterr().out


def test_demo_figures_show_the_attention_only_for_a_fuser(fuser, singles, checkpoints: dict[str, Path]) -> None:
    from sf2f.interactive import face_figure, morph_figure, widgets_available

    _, cfg = fuser
    real = np.zeros((cfg.data.image_size, cfg.data.image_size, 3), dtype=np.uint8)
    with_fuser = face_figure(singles[0], real)
    # real, generated, attention heat map (+ its colour bar), share per window
    assert [ax.get_title() for ax in with_fuser.axes][:2] == ["real face", "generated (attention fusion)"]
    assert len(with_fuser.axes) == 5
    generator, cfg1 = load_generator(checkpoints["sf2f_1st_stage"])
    assert len(face_figure(generate_face(generator, cfg1, [SPEECH_A])).axes) == 1
    morph = morph_figure(torch.zeros(3, 3, 8, 8), [0.0, 0.5, 1.0], ("a", "b"))
    assert [ax.get_title() for ax in morph.axes] == ["t = 0.00", "t = 0.50", "t = 1.00"]
    assert not widgets_available()  # no Jupyter kernel under pytest: the notebook draws static figures only
    plt.close("all")
