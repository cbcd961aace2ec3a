"""``--device-map``, ``--trust-remote-code`` and ``--ignore-eos``: parsed on every command that loads a
model (and by the app), off by default, and really handed to ``load_model`` / the generation loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gaze_explorer.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo_model" / "config.json"
LOADING = [
    ["discover", "--out", "o"],
    ["generate", "--image", "i.png", "--prompt", "p"],
    ["evaluate", "static"],
]
needs_demo = pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")


@pytest.mark.parametrize("argv", LOADING, ids=[a[0] for a in LOADING])
def test_placement_flags_are_off_by_default_and_parsed_on_every_loading_command(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    assert args.device_map is None and args.trust_remote_code is False
    args = parser.parse_args([*argv, "--device-map", "auto", "--trust-remote-code"])
    assert args.device_map == "auto" and args.trust_remote_code is True
    assert parser.parse_args([*argv, "--device-map", "cuda:1"]).device_map == "cuda:1"


def test_the_app_parser_has_the_same_placement_flags():
    from gaze_explorer.cli.app_args import build_app_parser as app_parser

    args = app_parser().parse_args([])
    assert args.device_map is None and args.trust_remote_code is False
    args = app_parser().parse_args(["--device-map", "balanced", "--trust-remote-code"])
    assert args.device_map == "balanced" and args.trust_remote_code is True


@pytest.mark.parametrize("value", ["gpu7", "cuda:x", "everywhere"])
def test_a_bad_device_map_is_an_argument_error(value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["discover", "--out", "o", "--device-map", value])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert f"--device-map: {value!r}: use auto, balanced" in err and "Traceback" not in err


def test_ignore_eos_is_a_generate_flag_only():
    parser = build_parser()
    assert parser.parse_args(["generate", "--image", "i", "--prompt", "p"]).ignore_eos is False
    assert parser.parse_args(["generate", "--image", "i", "--prompt", "p", "--ignore-eos"]).ignore_eos is True
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "static", "--ignore-eos"])


@needs_demo
def test_a_device_map_reaches_load_model(tmp_path, capsys):
    import torch

    from gaze_explorer.core.strips import iter_strip_folders

    strip = next(iter(iter_strip_folders(ROOT / "resources" / "demo_comics", 6, height=96)))
    image = tmp_path / "strip.png"
    strip.image.save(image)
    argv = ["generate", "--model", "demo", "--image", str(image), "--prompt", "What is happening?"]
    argv += ["--max-new-tokens", "2"]
    assert main([*argv, "--device-map", "cpu"]) == 0  # accelerate places the whole model on the CPU
    assert capsys.readouterr().out.strip()
    if torch.cuda.is_available():
        return
    # a CPU-only torch cannot honour a CUDA map: the error comes from loading, as one clear line
    assert main([*argv, "--device-map", "cuda:0"]) == 1
    err = capsys.readouterr().err
    assert "gaze-explorer generate: error: cannot place the model with --device-map cuda:0" in err
    assert "Traceback" not in err


def _custom_code_checkpoint(folder: Path) -> Path:
    """A checkpoint whose config class lives in the folder's own Python file (``auto_map``)."""
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "gazetest_custom",
                "auto_map": {"AutoConfig": "configuration_gazetest.GazeTestConfig"},
            }
        )
    )
    (folder / "configuration_gazetest.py").write_text(
        "from transformers import PretrainedConfig\n\n\n"
        "class GazeTestConfig(PretrainedConfig):\n"
        '    model_type = "gazetest_custom"\n'
    )
    return folder


def test_remote_code_runs_only_with_trust_remote_code(tmp_path, capsys):
    model = _custom_code_checkpoint(tmp_path / "custom")
    argv = ["discover", "--model", str(model), "--n-strips", "1", "--out", str(tmp_path / "o")]
    # off by default: transformers refuses to run the folder's code
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "gaze-explorer discover: error:" in err and "custom code" in err
    # with the flag the config code runs (in a child, so its module cache goes to tmp_path), and
    # loading gets as far as the family check
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-m", "gaze_explorer.cli", *argv, "--trust-remote-code"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 1, out.stderr
    assert "no adapter for model type gazetest_custom" in out.stderr and "Traceback" not in out.stderr
