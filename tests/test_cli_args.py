"""Every command's argument errors: a clear message and exit code 2, before anything heavy loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gaze_explorer.cli import COMMANDS, main


def _exit(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr()


@pytest.mark.parametrize("command", ["discover", "generate", "evaluate", "export"])
def test_every_command_has_help(command, capsys):
    code, out = _exit([command, "--help"], capsys)
    assert code == 0
    assert f"gaze-explorer {command}" in out.out and "--" in out.out


BAD = [
    (["discover"], "--out"),
    (["discover", "--out", "x", "--n-strips", "0"], "at least 1"),
    (["discover", "--out", "x", "--n-panels", "six"], "not a whole number"),
    (["discover", "--out", "x", "--device", "gpu"], "cuda"),
    (["discover", "--out", "x", "--use-raw"], "--use-raw needs --comics DIR"),
    (["generate", "--prompt", "p"], "--image"),
    (["generate", "--image", "i.png"], "--prompt"),
    (["generate", "--image", "i", "--prompt", "p", "--panels", "3", "--box", "0,0,1,1"], "not allowed with"),
    (["generate", "--image", "i", "--prompt", "p", "--box", "0,0,1"], "four numbers"),
    (["generate", "--image", "i", "--prompt", "p", "--box", "5,0,1,1"], "x1 > x0"),
    (["generate", "--image", "i", "--prompt", "p", "--heads", "top:x"], "whole number"),
    (["generate", "--image", "i", "--prompt", "p", "--heads", "top:0"], "at least 1"),
    (
        ["generate", "--image", "i", "--prompt", "p", "--panels", "6", "--heads", "all"],
        "--target panel or a --schedule",
    ),
    (["generate", "--image", "i", "--prompt", "p", "--panels", "6", "--target", "2"], "need --heads"),
    (["generate", "--image", "i", "--prompt", "p", "--heads", "all", "--target", "2"], "--panels N or --box"),
    (
        ["generate", "--image", "i", "--prompt", "p", "--panels", "3", "--heads", "all", "--target", "4"],
        "only 3 panels",
    ),
    (
        ["generate", "--image", "i", "--prompt", "p", "--panels", "3", "--heads", "all", "--schedule", "1,5"],
        "panel 5",
    ),
    (
        ["generate", "--image", "i", "--prompt", "p", "--panels", "3", "--heads", "all", "--schedule", "1,x"],
        "commas",
    ),
    (
        ["generate", "--image", "i", "--prompt", "p", "--panels", "3", "--heads", "all", "--schedule", "0,1"],
        "from 1",
    ),
    (["generate", "--image", "i", "--prompt", "p", "--switch-every", "5"], "--switch-every needs --schedule"),
    (
        [
            "generate",
            "--image",
            "i",
            "--prompt",
            "p",
            "--panels",
            "6",
            "--heads",
            "all",
            "--target",
            "1",
            "--schedule",
            "1,2",
        ],
        "not allowed with",
    ),
    (["generate", "--image", "i", "--prompt", "p", "--mode", "boost"], "invalid choice"),
    (["generate", "--image", "i", "--prompt", "p", "--strength", "-3"], "must be > 0"),
    (["generate", "--image", "i", "--prompt", "p", "--strength", "inf"], "finite"),
    (["generate", "--image", "i", "--prompt", "p", "--max-new-tokens", "0"], "at least 1"),
    (["evaluate"], "protocol"),
    (["evaluate", "vqa"], "invalid choice"),
    (["evaluate", "static", "--shard", "3/2"], "1 <= i <= n"),
    (["evaluate", "static", "--shard", "half"], "i/n"),
    (["evaluate", "static", "--max-strips", "-1"], "at least 1"),
    (["evaluate", "static", "--conditions", "gaze,best"], "choose among"),
    (["evaluate", "static", "--switch-every", "5"], "only applies to evaluate dynamic"),
    (["evaluate", "static", "--boxes", "b.json"], "only applies to evaluate region"),
    (["evaluate", "dynamic", "--n-panels", "1"], "at least 2 panels"),
    (["evaluate", "static", "--judge", "gpt"], "invalid choice"),
    (["evaluate", "static", "--top-k", "0"], "at least 1"),
    (["export"], "--session"),
    (["export", "--session", "s.h5"], "--out"),
    (["export", "--session", "s.h5", "--out", "o", "--figure", "matrix"], "--layer and --head"),
    (["export", "--session", "s.h5", "--out", "o", "--format", "gif"], "invalid choice"),
    (["export", "--session", "s.h5", "--out", "o", "--step", "-2"], "0 or more"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD])
def test_argument_errors_exit_2_with_a_clear_message(argv, message, capsys):
    code, out = _exit(argv, capsys)
    assert code == 2
    assert message in out.err, out.err
    assert f"gaze-explorer {argv[0]}" in out.err  # the usage line names the command
    assert "Traceback" not in out.err


def test_unknown_option_is_an_argument_error(capsys):
    code, out = _exit(["evaluate", "static", "--frobnicate"], capsys)
    assert code == 2 and "--frobnicate" in out.err


def test_commands_are_the_documented_ones():
    assert set(COMMANDS) == {"discover", "generate", "evaluate", "export", "bench"}


def test_importing_the_cli_loads_nothing_heavy():
    code = (
        "import sys, gaze_explorer.cli\n"
        "heavy = [m for m in ('torch', 'transformers', 'h5py', 'PySide6', 'pyqtgraph') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_argument_errors_from_a_real_process():
    out = subprocess.run(
        [sys.executable, "-m", "gaze_explorer.cli", "evaluate", "static", "--shard", "0/4"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "--shard" in out.stderr and "1 <= i <= n" in out.stderr


def test_user_errors_exit_1_with_the_message_and_no_traceback(tmp_path, capsys):
    assert main(["generate", "--image", str(tmp_path / "missing.png"), "--prompt", "hi"]) == 1
    err = capsys.readouterr().err
    assert "gaze-explorer generate: error:" in err and "does not exist" in err and "Traceback" not in err
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert main(["generate", "--image", str(empty), "--prompt", "hi"]) == 1
    assert "0 bytes" in capsys.readouterr().err
    assert main(["evaluate", "static", "--comics", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["discover", "--comics", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "no strip folders" in capsys.readouterr().err
