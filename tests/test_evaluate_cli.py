"""`python -m sf2f evaluate`: a trained checkpoint gives the same results table twice, and bad input a clear error.

One short stage-1 run on a small synthetic dataset in a temporary folder (6 test identities, two recall groups of 3).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fixtures_data import prepared_synthetic
from test_evaluate_pipeline import OVERRIDES as SMALL_WORLD

from sf2f.checkpoints import load_checkpoint
from sf2f.cli import main
from sf2f.embedder_weights import EVAL_EMBEDDER_SEED, ensure_face_embedder
from sf2f.evaluate import PROBE_MODES
from sf2f.train.trainer import train_or_load

# the pipeline tests' small synthetic world (6 test identities), trained briefly
OVERRIDES = [
    *SMALL_WORLD,
    "model.face_embedder.width=4",
    "model.face_embedder.epochs=2",
    "optim.epochs=1",
    "optim.eval_every_epochs=1",
    "optim.checkpoint_every_epochs=1",
    "optim.decay_lr_after_epochs=1",
    "optim.eval_mode_after_epochs=1",
    "run.threads=1",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished stage-1 run (one epoch) on a prepared synthetic dataset with its trained face embedder."""
    base = tmp_path_factory.mktemp("evaluate_cli")
    root = base / "synthetic"
    data = base / "prepared"
    cfg, _ = prepared_synthetic(root, "sf2f_1st_stage", OVERRIDES, data)
    ensure_face_embedder(cfg, data, progress=False)
    run = train_or_load(cfg, data, base / "run", progress=False).run_dir
    return {"base": base, "root": root, "data": data, "run": run}


def _evaluate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_checkpoint_evaluates_to_the_same_table_twice(trained, capsys) -> None:
    outs = [trained["base"] / f"eval_{i}" for i in range(2)]
    for out in outs:  # the data come from the run's run.json, the traits from its config's data.root
        code, printed, _ = _evaluate(capsys, "--checkpoint", str(trained["run"]), "--out", str(out))
        assert code == 0
    first, second = (out / "results.csv" for out in outs)
    assert first.read_bytes() == second.read_bytes()
    table = pd.read_csv(first)
    models = table[table["kind"] == "model"]
    assert list(models["mode"]) == list(PROBE_MODES) and set(models["model"]) == {"sf2f_1st_stage"}
    assert {"chance", "upper bound", "lower bound", "paper"} <= set(table["kind"])
    # the synthetic data: the ID-classifier score and the attributes, never a VFS of ours
    assert models[["R@1", "R@2", "split R@5", "Cos", "ID-classifier score mean", "sex acc"]].notna().all().all()
    assert table.loc[table["kind"] != "paper", "VFS mean"].isna().all()
    assert table.loc[table["kind"] == "paper", "VFS mean"].tolist() == [18.59]
    chance = table[table["kind"] == "chance"].iloc[0]
    assert chance["R@1"] == pytest.approx(1 / 3) and chance["split R@1"] == pytest.approx(1 / 6)
    markdown = (outs[0] / "results.md").read_text()
    assert "| sf2f_1st_stage" in printed and "ID-classifier score" in markdown and str(trained["data"]) in markdown
    # scored by a second embedder, not the one the perceptual loss trained the generator against
    loss_file, eval_file = trained["data"] / "face_embedder.pt", trained["data"] / "face_embedder_eval.pt"
    assert load_checkpoint(eval_file)["seed"] == EVAL_EMBEDDER_SEED != load_checkpoint(loss_file)["seed"]
    assert str(eval_file) in markdown and "a second one" in markdown
    shared = table[table["model"] == "shared-trait mean face"].iloc[0]
    assert shared["kind"] == "reference" and shared["sex acc"] >= chance["sex acc"]


def test_a_checkpoint_file_and_one_mode_give_the_same_row(trained, capsys) -> None:
    out = trained["base"] / "eval_file"
    file = trained["run"] / "checkpoints" / "latest.pt"
    code, _, _ = _evaluate(capsys, "--checkpoint", str(file), "--data", str(trained["data"]),
                           "--probe-modes", "naive", "--out", str(out))
    assert code == 0
    table = pd.read_csv(out / "results.csv")
    models = table[table["kind"] == "model"]
    assert list(models["mode"]) == ["naive"]
    whole = pd.read_csv(trained["base"] / "eval_0" / "results.csv")
    naive = whole[(whole["kind"] == "model") & (whole["mode"] == "naive")]
    pd.testing.assert_frame_equal(models.reset_index(drop=True), naive.reset_index(drop=True))


def test_missing_and_foreign_inputs_are_named(trained, capsys, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_run"
    code, _, err = _evaluate(capsys, "--checkpoint", str(missing))
    assert code == 2 and str(missing) in err
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"not a checkpoint")
    code, _, err = _evaluate(capsys, "--checkpoint", str(foreign))
    assert code == 2 and str(foreign) in err
    code, _, err = _evaluate(capsys, "--checkpoint", str(trained["run"]), "--data", str(tmp_path / "nowhere"))
    assert code == 2 and str(tmp_path / "nowhere") in err
    code, _, err = _evaluate(capsys, "--checkpoint", str(trained["run"]), "--probe-modes", "best")
    assert code == 2 and "best" in err


def test_a_checkpoint_that_does_not_fit_the_data_is_refused(trained, capsys, tmp_path: Path) -> None:
    bigger = tmp_path / "prepared_128"
    shutil.copytree(trained["data"], bigger)
    manifest = json.loads((bigger / "manifest.json").read_text())
    manifest["settings"]["image_size"] = 128
    (bigger / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = _evaluate(capsys, "--checkpoint", str(trained["run"]), "--data", str(bigger))
    assert code == 2 and "does not fit" in err and "128 px" in err and str(trained["run"]) in err
