"""sf2f.data.prepare: the packed cache, its report of bad input, and resuming a killed preparation."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_data import Person, build_dataset, write_meta, write_person
from PIL import Image

from sf2f import audio
from sf2f.cli import build_parser, main
from sf2f.config import AudioConfig
from sf2f.data.prepare import PrepareSettings, prepare
from sf2f.data.prepared import PreparedData, PrepareError
from sf2f.faces import load_image, resize_face
from sf2f.paths import folder_lock


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of a prepared folder except the per-identity parts."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and "parts" not in p.parts}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return build_dataset(tmp_path_factory.mktemp("cache") / "data", n_per_sub=5, bad=True)


@pytest.fixture(scope="module")
def prepared(tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "out"
    prepare(tiny.root, out, progress=False)
    return out


def test_layout_and_counts(tiny, prepared: Path) -> None:
    data = PreparedData(prepared)
    counts = data.manifest["counts"]
    assert {s: counts[s]["identities"] for s in counts} == {"train": 6, "val": 2, "test": 2}  # rows 0-2 / 9 / 8
    train = data.split("train")
    assert train.mels.shape == (counts["train"]["frames"], 40) and train.mels.dtype == np.float32
    assert train.face_pixels.shape == (counts["train"]["faces"], 64, 64, 3) and train.face_pixels.dtype == np.uint8
    assert isinstance(train.mels, np.memmap)
    assert train.identities["label"].tolist() == list(range(6))
    assert list(zip(train.identities["sub"], train.identities["name"])) == sorted(zip(train.identities["sub"], train.identities["name"]))
    assert "Zoë_Ünal" in set(train.identities["name"]) or "Zoë_Ünal" in set(data.split("val").identities["name"])
    split = json.loads((prepared / "split.json").read_text(encoding="utf-8"))
    assert set(split) == {"vox1", "vox2"}


def test_cached_values_are_the_pipelines(tiny, prepared: Path) -> None:
    train = PreparedData(prepared).split("train")
    row = train.utterances.iloc[3]
    (direct,) = audio.extract_log_mels([tiny.root / row["path"]], AudioConfig())
    # preparation batched this file with others: the same values up to float32 rounding (sf2f/audio/mel.py's docstring)
    np.testing.assert_allclose(train.mel(3), direct.mel.numpy(), rtol=0, atol=audio.LOG_MEL_FLOAT32_TOLERANCE)
    assert train.mel(3).shape == (40, row["frames"])
    face = train.faces.iloc[2]
    expected = np.asarray(resize_face(load_image(tiny.root / face["path"])[0], 64))
    np.testing.assert_array_equal(train.face(int(face["row"])), expected)
    for label in range(len(train)):  # every identity's rows point at its own files
        name = train.identities.loc[label, "name"]
        assert all(f"/{name}/" in p for p in train.faces.iloc[list(train.face_rows(label))]["path"])


def test_report_lists_every_bad_input_with_its_reason(tiny, prepared: Path) -> None:
    report = PreparedData(prepared).report()
    assert list(report.columns) == ["split", "sub", "identity", "kind", "path", "action", "reason"]
    by_path = {(p, a): r for p, a, r in zip(report["path"], report["action"], report["reason"])}
    for path, word in {**tiny.bad_audio, **tiny.bad_images}.items():
        assert word in by_path[(path, "skipped")], path
    for path, word in tiny.converted.items():
        assert any(word in r for (p, a), r in by_path.items() if p == path and a == "converted"), path
    reasons = set(report["reason"])
    assert {"has faces but no speech", "has speech but no masked faces"} <= reasons
    assert "speaker id id09003 is not in full_vox2_meta.csv" in reasons


def test_statistics_table(tiny, prepared: Path) -> None:
    table = PreparedData(prepared).statistics()
    assert len(table) == 10 and set(table["split"]) == {"train", "val", "test"}
    assert (table["voiced_seconds"] <= table["seconds"]).all() and (table["utterances"] >= 1).all()
    first = table.iloc[0]
    train = PreparedData(prepared).split("train")
    assert first["faces"] == len(train.face_rows(0)) and first["frames"] == train.utterances.query("label == 0")["frames"].sum()


def test_stats_are_those_of_the_training_mels(prepared: Path) -> None:
    train = PreparedData(prepared).split("train")
    values = np.asarray(train.mels, dtype=np.float64)
    stats = train.stats()
    assert stats.count == values.size
    assert stats.mean == pytest.approx(values.mean(), rel=1e-9) and stats.std == pytest.approx(values.std(), rel=1e-9)


def test_a_finished_preparation_is_not_redone(tiny, prepared: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in prepared.rglob("*") if p.is_file()}
    result = prepare(tiny.root, prepared, progress=False)
    assert result.up_to_date and result.computed == 0
    assert {p: p.stat().st_mtime_ns for p in prepared.rglob("*") if p.is_file()} == before
    assert "already up to date" in result.summary()


def test_other_settings_are_refused_unless_overwritten(tiny, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare(tiny.root, out, progress=False)
    bigger = PrepareSettings(image_size=128)
    with pytest.raises(PrepareError, match="image_size: 64 -> 128"):
        prepare(tiny.root, out, bigger, progress=False)
    prepare(tiny.root, out, bigger, progress=False, overwrite=True)
    assert PreparedData(out).split("train").face_pixels.shape[1:] == (128, 128, 3)


KILLER = """
import os, signal, sys
from sf2f.data import prepare as module

real, done = module._prepare_identity, []

def dies_after_n(*args):
    real(*args)
    done.append(args)
    if len(done) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: as a killed job or a power cut

module._prepare_identity = dies_after_n
module.prepare(sys.argv[1], sys.argv[2], workers=0, progress=False)
"""


def test_a_killed_run_resumes_to_identical_output(tiny, prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(tiny.root), str(out), "4"], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    parts = sorted((out / "parts").glob("*.npz"))
    assert len(parts) == 4 and not (out / "manifest.json").exists()
    (out / "parts" / "0123456789abcdef0123.npz.tmp").write_bytes(b"PK\x03\x04 half a zip")  # a write cut short
    parts[0].write_bytes(b"not a zip at all")  # a part damaged behind our back is recomputed, not trusted
    result = prepare(tiny.root, out, progress=False)
    assert (result.computed, result.reused) == (10 - 3, 3)
    assert snapshot(out) == snapshot(prepared)
    assert not (out / "parts").exists()


def test_a_run_killed_while_packing_repacks_identically(tiny, prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "packing"
    prepare(tiny.root, out, progress=False, keep_parts=True)
    (out / "manifest.json").unlink()  # as if killed after some packed files were renamed into place
    (out / "train" / "mels.npy").unlink()
    (out / "val" / "faces_64.npy").write_bytes(b"garbage")
    (out / "train" / ".faces_64.npy.4242.part").write_bytes(b"half a split")  # the file being packed at the kill
    result = prepare(tiny.root, out, progress=False)
    assert result.computed == 0 and result.reused == 10
    assert snapshot(out) == snapshot(prepared)


def test_two_processes_preparing_one_folder_take_turns(tiny, prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    code = ("import sys; from sf2f.data.prepare import prepare; "
            "r = prepare(sys.argv[1], sys.argv[2], progress=False); print(r.computed, r.reused)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tiny.root), str(out)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    # one computed all ten identities; the other waited for the lock and then found the cache complete
    assert sorted(o.split()[0] for o, _ in outputs) == ["0", "10"]
    assert snapshot(out) == snapshot(prepared)



def test_without_fcntl_the_folder_lock_runs_its_block_unlocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fcntl", None)  # as on Windows: `import fcntl` raises ImportError
    ran = []
    with folder_lock(tmp_path / "new", ".lock"):
        ran.append(True)
    assert ran and (tmp_path / "new").is_dir() and not (tmp_path / "new" / ".lock").exists()


def test_worker_processes_give_the_same_bytes(tiny, prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "parallel"
    result = prepare(tiny.root, out, workers=2, progress=False)
    assert result.computed == 10
    assert snapshot(out) == snapshot(prepared)


def test_changed_input_recomputes_only_that_identity(tmp_path: Path) -> None:
    data = build_dataset(tmp_path / "data", n_per_sub=2)
    out = tmp_path / "out"
    assert prepare(data.root, out, progress=False, keep_parts=True).computed == 4
    person = data.people[1]
    write_person(data.root, dataclasses.replace(person, utterances=0, faces=3), np.random.default_rng(9))
    result = prepare(data.root, out, progress=False, keep_parts=True)
    assert (result.computed, result.reused, result.up_to_date) == (1, 3, False)
    faces = PreparedData(out).split("train").faces
    assert (faces["path"].str.contains(f"/{person.name}/")).sum() == 3


def test_identity_whose_files_all_fail_is_dropped_with_a_reason(tmp_path: Path) -> None:
    root = tmp_path / "data"
    people = [Person("vox1", "id10001", "Good_One"), Person("vox1", "id10002", "All_Bad", utterances=0)]
    write_meta(root, people)
    rng = np.random.default_rng(0)
    for p in people:
        write_person(root, p, rng)
    bad = root / "raw_wav/vox1/dev/id10002/c/00001.wav"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"")
    result = prepare(root, tmp_path / "out", progress=False)
    assert result.counts["train"]["identities"] == 1
    report = PreparedData(tmp_path / "out").report()
    dropped = report[report["action"] == "dropped"]
    assert dropped["identity"].tolist() == ["All_Bad"] and "no usable speech" in dropped["reason"].item()


def test_seeded_split_when_the_data_has_none(tmp_path: Path) -> None:
    data = build_dataset(tmp_path / "data", n_per_sub=5)
    settings = PrepareSettings(split_rule="seeded", split_fractions=(0.6, 0.2, 0.2), seed=3)
    result = prepare(data.root, tmp_path / "out", settings, progress=False)
    assert [result.counts[s]["identities"] for s in ("train", "val", "test")] == [6, 2, 2]


def test_hq_voxceleb_unpacked_elsewhere_with_origin_faces(tmp_path: Path) -> None:
    data = build_dataset(tmp_path / "data", n_per_sub=2)
    hq = tmp_path / "HQ-VoxCeleb"
    for sub in ("vox1", "vox2"):
        (hq / sub).mkdir(parents=True)
        shutil.move(data.root / sub / "masked_faces", hq / sub / "origin_faces")
    result = prepare(data.root, tmp_path / "out", PrepareSettings(face_type="origin"), progress=False, faces_root=hq)
    assert result.counts["train"] == {**result.counts["train"], "identities": 4, "faces": 8}
    faces = PreparedData(tmp_path / "out").split("train").faces
    assert faces["path"].str.contains("/origin_faces/").all()


def test_raw_photos_are_aligned_with_mtcnn(tmp_path: Path) -> None:
    skdata = pytest.importorskip("skimage.data")
    root = tmp_path / "data"
    person = Person("vox1", "id10001", "Eileen_Collins", faces=0)
    write_meta(root, [person])
    write_person(root, person, np.random.default_rng(0))
    folder = root / "vox1" / "masked_faces" / person.name
    folder.mkdir(parents=True)
    Image.fromarray(skdata.astronaut()).save(folder / "photo.jpg", quality=95)
    Image.new("RGB", (160, 160), (90, 90, 90)).save(folder / "wall.jpg")
    prepare(root, tmp_path / "out", PrepareSettings(align_faces=True, image_size=128), progress=False)
    data = PreparedData(tmp_path / "out")
    assert data.split("train").face_pixels.shape == (1, 128, 128, 3)
    report = data.report()
    assert report.loc[report["path"].str.endswith("wall.jpg"), "reason"].item().startswith("no face found")


def test_cli_prepare(tmp_path: Path, tiny, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["prepare", "--data-root", str(tiny.root), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "train: 6 identities" in printed and "report.csv" in printed
    assert pd.read_csv(out / "report.csv").shape[0] > 0
    assert main(["prepare", "--data-root", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "dataset folder not found" in capsys.readouterr().err


def test_cli_prepare_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["prepare", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "python -m sf2f prepare --data-root" in out and "--image-size" in out and "--workers" in out


def test_reading_something_that_is_not_prepared_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match="not a prepared dataset"):
        PreparedData(tmp_path)
