"""The command line: help for every subcommand, and errors that name the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sf2f.cli import build_parser, main
from sf2f.config import load_resolved_config


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
