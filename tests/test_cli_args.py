"""Every command's argument errors: a clear message and exit code 2, before anything heavy loads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gaze_explorer.cli import COMMANDS, build_parsers, main


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
        "--target panel, a --schedule or a --box",
    ),
    (
        ["generate", "--image", "i", "--prompt", "p", "--box", "0,0,9,9", "--heads", "all", "--target", "2"],
        "the box is the only target",
    ),
    (
        ["generate", "--image", "i", "--prompt", "p", "--panels", "3", "--panel-widths", "1,2,1,3"],
        "give 4 panels",
    ),
    (["generate", "--image", "i", "--prompt", "p", "--panel-widths", "1"], "two or more positive"),
    (["generate", "--image", "i", "--prompt", "p", "--panel-widths", "1,0,2"], "two or more positive"),
    (["generate", "--image", "i", "--prompt", "p", "--panel-bounds", "300,100"], "positive and increasing"),
    (
        ["generate", "--image", "i", "--prompt", "p", "--box", "0,0,9,9", "--panel-widths", "1,2"],
        "one region",
    ),
    (["generate", "--image", "i", "--prompt", "p", "--input-policy", "crop"], "invalid choice"),
    (["generate", "--image", "i", "--prompt", "p", "--panels", "6", "--target", "2"], "need --heads"),
    (["generate", "--image", "i", "--prompt", "p", "--heads", "all", "--target", "2"], "--panels N or --box"),
    (
        ["generate", "--image", "i", "--prompt", "p", "--panels", "3", "--heads", "all", "--target", "4"],
        "--target: panel 4 does not exist: the image has 3 panel(s)",
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
    (["export", "--session", "s.h5", "--spans", "0-3", "--step", "2"], "--spans"),
    (
        ["export", "--session", "s.h5", "--out", "o", "--figure", "matrix", "--layer", "2"],
        "--layer and --head",
    ),
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


# -- docs truth: docs/cli.md and README's command list against the parsers ---------------------------
ROOT = Path(__file__).resolve().parents[1]
SHARED = "Options every model-loading command takes"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _flags(parser) -> set[str]:
    """The long options of a parser, read from its usage line (every option appears there)."""
    return set(FLAG.findall(parser.format_usage())) - {"--help"}


def _sections(text: str, level: str) -> dict[str, str]:
    """Markdown sections of one heading level: first word of the heading -> body."""
    parts = re.split(rf"^{level} (.+)$", text, flags=re.MULTILINE)
    return {head.split()[0]: body for head, body in zip(parts[1::2], parts[2::2], strict=True)}


def _documented_flags(body: str) -> set[str]:
    return set(re.findall(r"`(--[a-z][a-z0-9-]*)", body))


def test_commands_are_the_documented_ones():
    commands = build_parsers().commands
    assert set(commands) == set(COMMANDS)
    docs = _sections((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"), "##")
    assert set(docs) - {SHARED.split()[0]} == set(COMMANDS), "docs/cli.md has one section per command"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command_line = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    assert set(_sections(command_line, "###")) == set(COMMANDS), "README's command list"


@pytest.mark.parametrize("command", ["discover", "generate", "evaluate", "export"])
def test_docs_describe_exactly_the_flags_of_each_command(command):
    docs = _sections((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"), "##")
    model_flags, strip_flags = (_documented_flags(p) for p in docs["Options"].strip().split("\n\n"))
    have = _flags(build_parsers().commands[command])
    shared = (model_flags if "--model" in have else set()) | (strip_flags if "--comics" in have else set())
    own = _documented_flags(docs[command])
    missing = have - own - shared
    assert not missing, f"docs/cli.md does not describe {command} {sorted(missing)}"
    unknown = own - have
    assert not unknown, f"docs/cli.md names {sorted(unknown)} under {command}, which has no such flag"


def test_the_shared_flags_in_the_docs_are_on_every_command_they_name():
    from gaze_explorer.cli.app_args import build_app_parser as app_parser

    docs = _sections((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"), "##")
    model_flags, strip_flags = (_documented_flags(p) for p in docs["Options"].strip().split("\n\n"))
    commands = build_parsers().commands
    # "discover, generate and evaluate (and the app) load a model with ..."
    for name, parser in [
        *((c, commands[c]) for c in ("discover", "generate", "evaluate")),
        ("app", app_parser()),
    ]:
        assert model_flags <= _flags(parser), f"{name} lacks {sorted(model_flags - _flags(parser))}"
    # "discover and evaluate read strips with ..."
    for name in ("discover", "evaluate"):
        assert strip_flags <= _flags(commands[name]), (
            f"{name} lacks {sorted(strip_flags - _flags(commands[name]))}"
        )


def test_the_documented_demo_panel_height_is_the_demo_comics_panel_size():
    from gaze_explorer.demo.comics import PANEL_SIZE

    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    documented = re.search(r"`--panel-height` \(strip height in px: (\d+), demo (\d+)\)", docs)
    assert documented is not None
    assert int(documented.group(2)) == PANEL_SIZE
    assert f"demo {PANEL_SIZE}" in build_parsers().commands["discover"].format_help()


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
        capture_output=True,
        text=True,
        timeout=60,
    )
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


def test_the_mode_choices_are_the_steering_modes():
    """cli.args keeps its own copy (importing core.steering would load numpy); it must not drift."""
    from gaze_explorer.cli.args import MODES
    from gaze_explorer.core.steering import SteeringMode

    assert tuple(m.value for m in SteeringMode) == MODES
