"""The app's own flags (``gaze-explorer`` with no command, ``python main.py``) are checked with the
CLI's argument types: a bad value exits with code 2 and the same one-line message as the CLI gives,
before any window opens or the model loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gaze_explorer.cli import main

ROOT = Path(__file__).resolve().parents[1]

BAD = [
    (["--device", "gpu"], "argument --device: 'gpu': use auto, cpu, cuda, cuda:N or mps"),
    (["--device", "cuda:x"], "argument --device: 'cuda:x': use auto, cpu, cuda, cuda:N or mps"),
    (["--dtype", "float8"], "argument --dtype: invalid choice: 'float8'"),
    (["--device-map", "everywhere"], "argument --device-map: 'everywhere': use auto, balanced"),
    (["--panels", "-1"], "argument --panels: must be 0 or more, got -1"),
    (["--panels", "six"], "argument --panels: 'six' is not a whole number"),
    (["--step", "-3"], "argument --step: must be 0 or more, got -3"),
    (["--step", "1.5"], "argument --step: '1.5' is not a whole number"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_app_flag_exits_2_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv, app_only=True)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.startswith("usage: gaze-explorer") and message in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("flag", ["--device", "--dtype", "--device-map"])
def test_the_app_and_the_commands_reject_a_model_flag_alike(flag, capsys):
    """The same value gets the same message from the app and from a model-loading command."""
    errors = []
    for argv in ([flag, "nowhere"], ["discover", "--out", "o", flag, "nowhere"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        errors.append(capsys.readouterr().err.strip().splitlines()[-1].split(": error: ", 1)[1])
    assert errors[0] == errors[1]


def test_good_app_flags_parse_to_their_values():
    from gaze_explorer.cli.app_args import build_app_parser

    args = build_app_parser().parse_args(
        ["--device", "cuda:1", "--dtype", "bfloat16", "--panels", "0", "--step", "0"]
    )
    assert (args.device, args.dtype, args.panels, args.step) == ("cuda:1", "bfloat16", 0, 0)
    args = build_app_parser().parse_args([])
    assert (args.device, args.dtype, args.panels, args.step) == ("auto", "auto", None, None)


def test_a_bad_app_flag_from_a_real_process():
    out = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--panels", "-2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 2, out.stderr
    assert "argument --panels: must be 0 or more, got -2" in out.stderr and "Traceback" not in out.stderr


def test_help_and_a_bad_app_flag_exit_before_qt_is_imported():
    """The CLI parses the app's flags: ``--help`` and a bad value end the process before Qt (or the
    app's module) is imported."""
    probe = (
        "import sys\n"
        "from gaze_explorer.cli import main\n"
        "for argv in (['--help'], ['--dtype', 'float8']):\n"
        "    try:\n"
        "        main(argv, app_only=True)\n"
        "    except SystemExit as exc:\n"
        "        print(exc.code, 'PySide6' in sys.modules, 'gaze_explorer.qt.app' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.stdout.splitlines()[-2:] == ["0 False False", "2 False False"], out.stdout + out.stderr
