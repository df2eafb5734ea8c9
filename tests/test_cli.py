"""The command line: help for every subcommand, and errors that name the problem."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sf2f.cli import build_parser, main
from sf2f.config import ConfigError, load_resolved_config

REPO = Path(__file__).parents[1]


def test_module_help_lists_subcommands() -> None:
    out = subprocess.run([sys.executable, "-m", "sf2f", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("config", "course", "info", "train", "train-face-embedder"):
        assert command in out


@pytest.mark.parametrize("command", ["config", "course", "info", "train", "train-face-embedder"])
def test_every_subcommand_has_help_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and "python -m sf2f" in out


@pytest.mark.parametrize(
    "command, argv",
    [("prepare", ["prepare", "--root", "x"]), ("data synthetic", ["data", "synthetic", "--out", "d", "--people", "3"])],
)
def test_unknown_option_is_reported_with_the_commands_usage(
    command: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"usage: python -m sf2f {command} [-h]" in err and f"unrecognized arguments: {argv[-2]}" in err


def test_train_looks_for_its_data_where_prepare_puts_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sf2f.config import load_config
    from sf2f.data.course_data import prepared_dir

    root = tmp_path / "my_voices"
    overrides = ["--set", f"data.root={root}"]
    assert main(["train", "v2f", "--profile", "quick", *overrides, "--run-dir", str(tmp_path / "r")]) == 2
    # the folder `python -m sf2f prepare --data-root <root>` writes by default (<root>-<face type>-<size>), in the error
    expected = prepared_dir(load_config("v2f", profile="quick", overrides=[f"data.root={root}"]).data)
    assert expected.name == "my_voices-masked-64"
    assert f"{expected}: not a prepared dataset" in capsys.readouterr().err


def test_config_command_writes_resolved_config(tmp_path: Path) -> None:
    out = tmp_path / "cfg.yaml"
    assert main(["config", "sf2f_fuser", "--profile", "quick", "--set", "run.seed=3", "--out", str(out)]) == 0
    cfg = load_resolved_config(out)
    assert cfg.run.seed == 3 and cfg.profile == "quick" and cfg.model.fuser.enabled


def test_config_errors_exit_2_with_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "v2f", "--set", "optim.bach_size=3"]) == 2
    assert "optim.bach_size" in capsys.readouterr().err


def test_course_with_unknown_notebook_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["course", "--profile", "quick", "--only", "99"]) == 2
    assert "no notebook matches ['99']" in capsys.readouterr().err


def test_a_config_error_is_one_line_and_debug_shows_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "v2f", "--set", "optim.bach_size=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    with pytest.raises(ConfigError, match="optim.bach_size"):
        main(["--debug", "config", "v2f", "--set", "optim.bach_size=3"])


def test_an_unexpected_error_keeps_its_traceback(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    # a shape error deep in a network is a bug, not bad input: the user sees where it happened and how to report it
    import sf2f.runtime

    def broken(**_: object) -> None:
        torch.ones(2, 3) @ torch.ones(2, 3)

    monkeypatch.setattr(sf2f.runtime, "setup_runtime", broken)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "mat1 and mat2 shapes cannot be multiplied" in err
    assert "failed unexpectedly" in err and "report it" in err


def test_out_of_memory_keeps_its_traceback_and_says_what_to_try(monkeypatch, capsys) -> None:
    import sf2f.runtime

    def exhausted(**_: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(sf2f.runtime, "setup_runtime", exhausted)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "Tried to allocate" in err and "optim.batch_size" in err


def test_user_paths_are_taken_from_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    """`prepare` and `infer` started in another folder read and write there, with the relative paths as typed."""
    from fixture_models import untrained_checkpoint
    from fixtures_data import SPEECH_FILES, build_dataset

    work = tmp_path / "elsewhere"
    build_dataset(work / "voices", n_per_sub=3)
    untrained_checkpoint(work / "runs", "sf2f_fuser")
    shutil.copy(SPEECH_FILES[0], work / "me.wav")
    monkeypatch.chdir(work)
    assert main(["prepare", "--data-root", "voices", "--out", "prepared/voices", "--workers", "0",
                 "--no-progress"]) == 0
    assert (work / "prepared" / "voices" / "manifest.json").is_file()
    assert main(["infer", "--checkpoint", "runs/sf2f_fuser", "--wav", "me.wav", "--out", "faces/me",
                 "--device", "cpu"]) == 0
    assert (work / "faces" / "me" / "face_64.png").is_file()
    assert not (REPO / "faces").exists() and not (REPO / "prepared").exists()
    # a path that is not there is named as the user's working folder sees it, in one line
    assert main(["infer", "--checkpoint", "runs/sf2f_fuser", "--wav", "you.wav", "--out", "faces/you"]) == 2
    assert not (work / "faces" / "you").exists()


def test_config_paths_and_defaults_stay_in_the_repository(tmp_path: Path, monkeypatch) -> None:
    from sf2f.config import load_config
    from sf2f.data.course_data import prepared_dir
    from sf2f.paths import project_path, user_path

    monkeypatch.chdir(tmp_path)
    assert user_path("a/b") == tmp_path / "a" / "b" and user_path("/x/y") == Path("/x/y")
    assert project_path("runs") == REPO / "runs" and project_path("/x/y") == Path("/x/y")
    cfg = load_config("sf2f_1st_stage", profile="quick")
    assert prepared_dir(cfg.data) == REPO / "data" / "prepared" / f"synthetic_quick-masked-{cfg.data.image_size}"
