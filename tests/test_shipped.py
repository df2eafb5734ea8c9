"""The shipped weights (sf2f.shipped): export, manifest, SHA-256 checks, loading, and the guard that says when data,
recipe or architecture moved away from what the weights were trained on.

Most tests export untrained generators of the `long` configs (what is tested is the packaging, not what the weights
learned); the last ones check the real `trained_weights/` folder of the repository."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fixtures_data import build_dataset

from sf2f.checkpoints import CHECKPOINT_FORMAT, load_generator, save_checkpoint
from sf2f.config import FaceEmbedderConfig
from sf2f.data.prepare import prepare
from sf2f.embedder_weights import train_face_embedder
from sf2f.models import build_generator
from sf2f.shipped import (
    MODELS,
    SCORER,
    ShippedWeightsError,
    data_fingerprint,
    export_shipped,
    load_shipped_scorer,
    read_manifest,
    shipped_config,
    stale_reasons,
    verify_shipped,
)


def _fake_run(folder: Path, name: str) -> SimpleNamespace:
    cfg = shipped_config(name, device="cpu")
    torch.manual_seed(0)
    generator = build_generator(cfg)
    path = save_checkpoint({"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(cfg),
                            "generator": generator.state_dict()}, folder / name / "checkpoints" / "latest.pt")
    return SimpleNamespace(checkpoint=path, steps=7, seconds=1.5, reused=False, metrics={"recall_at_10": 0.5})


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shipped")
    build_dataset(root / "raw", n_per_sub=5)
    prepare(root / "raw", root / "prepared", progress=False)
    scorer = root / "scorer.pt"
    train_face_embedder(root / "prepared", scorer, FaceEmbedderConfig(width=4, epochs=1, batch_size=8), progress=False)
    runs = {name: _fake_run(root / "runs", name) for name in MODELS}
    export_shipped(runs, scorer, root / "weights", device="cpu")
    return root / "weights"


def test_export_writes_the_weights_and_a_complete_manifest(shipped: Path) -> None:
    manifest = read_manifest(shipped)
    assert manifest["command"] == "make weights" and manifest["profile"] == "long" and manifest["date"]
    assert {"cpu", "torch", "python"} <= set(manifest["machine"])
    assert set(manifest["files"]) == {f"{name}.pt" for name in (*MODELS, SCORER)}
    for name in MODELS:
        entry = manifest["files"][f"{name}.pt"]
        assert entry["iterations"] == 7 and entry["seed"] == 0 and entry["config"]["name"] == name
        assert entry["data_fingerprint"] == data_fingerprint(shipped_config(name).data)
        state = torch.load(verify_shipped(name, shipped), weights_only=True)["generator"]
        floats = [v for v in state.values() if v.is_floating_point()]
        assert floats and all(v.dtype == torch.float32 for v in floats)
        assert entry["parameters"] == sum(p.numel() for p in build_generator(shipped_config(name)).parameters())


def test_loaded_generators_compute_as_the_originals(shipped: Path) -> None:
    generator, cfg = load_generator(verify_shipped("sf2f_1st_stage", shipped))
    torch.manual_seed(0)
    original = build_generator(shipped_config("sf2f_1st_stage")).eval()
    assert all(p.dtype == torch.float32 for p in generator.parameters())
    mel = torch.randn(2, cfg.data.audio.n_mels, 125)
    with torch.no_grad():
        ours, theirs = generator(mel).images[-1], original(mel).images[-1]
    torch.testing.assert_close(ours, theirs)
    assert load_shipped_scorer(shipped)(torch.zeros(1, 3, 64, 64)).shape[0] == 1


def test_a_fresh_export_matches_the_checkout(shipped: Path) -> None:
    assert stale_reasons(shipped) == []


def test_an_altered_file_is_refused(shipped: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    folder.mkdir()
    for file in shipped.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    data = bytearray((folder / "sf2f_fuser.pt").read_bytes())
    data[-100] ^= 1
    (folder / "sf2f_fuser.pt").write_bytes(bytes(data))
    with pytest.raises(ShippedWeightsError, match="SHA-256"):
        load_generator(verify_shipped("sf2f_fuser", folder))
    (folder / "v2f.pt").unlink()
    with pytest.raises(ShippedWeightsError, match="missing"):
        verify_shipped("v2f", folder)
    with pytest.raises(ShippedWeightsError, match="make weights"):
        read_manifest(tmp_path / "nothing")


def test_other_data_recipe_or_architecture_make_the_weights_stale(shipped: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    folder.mkdir()
    for file in shipped.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    manifest = read_manifest(folder)
    files = manifest["files"]
    files["v2f.pt"]["data_fingerprint"] = "0" * 64
    files["sf2f_1st_stage.pt"]["config"]["optim"]["lr"] = 1e-2
    (folder / "manifest.json").write_text(json.dumps(manifest))
    # a generator whose decoder lost a layer: re-saved and re-hashed, so only the architecture check can catch it
    state = torch.load(folder / "sf2f_fuser.pt", weights_only=True)
    dropped = next(k for k in state["generator"] if k.startswith("decoder."))
    del state["generator"][dropped]
    save_checkpoint(state, folder / "sf2f_fuser.pt")
    from sf2f.weights import sha256_of

    files["sf2f_fuser.pt"]["sha256"] = sha256_of(folder / "sf2f_fuser.pt")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    reasons = stale_reasons(folder)
    assert any(r.startswith("v2f: trained on other synthetic data") for r in reasons)
    assert any(r.startswith("sf2f_1st_stage: trained with another recipe (optim.lr") for r in reasons)
    assert any(r.startswith("sf2f_fuser: the generator's architecture changed") and dropped in r for r in reasons)


def test_the_data_fingerprint_is_what_defines_the_data() -> None:
    data = shipped_config("sf2f_1st_stage").data
    assert data_fingerprint(data) == data_fingerprint(dataclasses.replace(data))
    other_seed = dataclasses.replace(data, synthetic=dataclasses.replace(data.synthetic, seed=1))
    smaller = dataclasses.replace(data, synthetic=dataclasses.replace(data.synthetic, identities=200))
    bigger_faces = dataclasses.replace(data, image_size=128)
    prints = {data_fingerprint(d) for d in (data, other_seed, smaller, bigger_faces)}
    assert len(prints) == 4


def test_weights_check_and_infer_use_the_folder_and_say_what_is_wrong(shipped: Path, tmp_path: Path, monkeypatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from fixtures_data import SPEECH_FILES

    from sf2f import shipped as shipped_module
    from sf2f.cli import main

    assert main(["weights", "check", "--folder", str(shipped)]) == 0
    out = capsys.readouterr().out
    assert "up to date" in out and out.count("SHA-256 verified") == len(MODELS) + 1
    # infer without --checkpoint takes the shipped SF2F, and says so
    monkeypatch.setattr(shipped_module, "SHIPPED_DIR", shipped)
    assert main(["infer", "--wav", str(SPEECH_FILES[0]), "--out", str(tmp_path / "face"), "--device", "cpu"]) == 0
    assert "using the shipped sf2f_fuser" in capsys.readouterr().out and (tmp_path / "face" / "face_64.png").is_file()
    monkeypatch.setattr(shipped_module, "SHIPPED_DIR", tmp_path / "none")
    assert main(["infer", "--wav", str(SPEECH_FILES[0]), "--out", str(tmp_path / "face2")]) == 2
    assert "make weights" in capsys.readouterr().err


# ---- the real folder: trained_weights/ of this repository


def test_the_shipped_weights_are_the_manifests_and_small() -> None:
    manifest = read_manifest()
    for name in (*MODELS, SCORER):
        verify_shipped(name)  # raises with the file and what to do when a file was altered
    total = sum(entry["bytes"] for entry in manifest["files"].values())
    assert total <= 20 * 2**20, f"trained_weights/ holds {total / 2**20:.1f} MiB, more than the 20 MiB allowed"
    assert all(manifest["files"][f"{name}.pt"]["iterations"] > 10_000 for name in ("v2f", "sf2f_1st_stage"))


def test_the_shipped_weights_match_this_checkout() -> None:
    reasons = stale_reasons()
    assert not reasons, ("the shipped weights were trained on other data or another recipe: run `make weights`\n"
                         + "\n".join(reasons))
