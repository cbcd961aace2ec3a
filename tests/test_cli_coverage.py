"""Every command that feeds images to a model warns when its input policy drops part of an image
(issue 19): a tiny random LLaVA-1.5 checkpoint (56 px CLIP) under ``--input-policy native`` keeps only
the centre 64 px square of each 384 x 64 demo strip (1/6), and ``discover`` and ``evaluate static``
say so on stderr once for that size (not per strip, not again for the evaluation's own discovery),
before anything runs: the outer panels then hold no image token, and the command's error about them
comes after the warning that explains it. Under ``squash`` the whole strip reaches the model, the
commands finish, and nothing is said."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gaze_explorer.cli import main

INFERENCE_TESTS = Path(__file__).resolve().parent / "inference"
WARNING = (
    "warning: the llava input policy 'native' lets only 17% of the image reach the model (comic1, 384x64 px"
)


def _inference_helpers():
    """The inference tests' tiny LLaVA-1.5 builder and checkpoint writer."""
    sys.path.insert(0, str(INFERENCE_TESTS))
    try:
        from family_helpers import save_checkpoint
        from test_family_llava import tiny_llava
    finally:
        sys.path.remove(str(INFERENCE_TESTS))
    return tiny_llava, save_checkpoint


def _tiny_llava():
    return _inference_helpers()[0]()


@pytest.fixture(scope="module")
def llava_checkpoint(tmp_path_factory):
    """The tiny LLaVA-1.5, saved as a checkpoint folder the CLI loads by path."""
    tiny_llava, save_checkpoint = _inference_helpers()
    return save_checkpoint(*tiny_llava(), tmp_path_factory.mktemp("tiny_llava"))


def _model_args(checkpoint: Path, policy: str) -> list[str]:
    return ["--model", str(checkpoint), "--device", "cpu", "--dtype", "float32", "--input-policy", policy]


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def _assert_explains_the_error(code: int, err: str) -> None:
    """The cropped-away panels fail the command with a clear error, after the warning."""
    assert code == 1
    assert err.index("warning:") < err.index("error: panel 1 is narrower than one image token")


@pytest.mark.parametrize("policy", ["native", "squash"])
def test_discover_warns_once_per_image_size(llava_checkpoint, tmp_path, capsys, policy):
    argv = ["discover", *_model_args(llava_checkpoint, policy), "--n-strips", "2", "--out", str(tmp_path)]
    code = main(argv)
    err = capsys.readouterr().err
    warnings = _warnings(err)
    if policy == "native":  # two strips of one size: one warning, naming the first
        assert len(warnings) == 1 and warnings[0].startswith(WARNING), warnings
        assert "--input-policy squash" in warnings[0]
        _assert_explains_the_error(code, err)
    else:
        assert code == 0 and warnings == [] and (tmp_path / "ranking.json").exists()


@pytest.mark.parametrize("policy", ["native", "squash"])
def test_evaluate_static_warns_once_with_its_discovery(llava_checkpoint, tmp_path, capsys, policy):
    argv = ["evaluate", "static", *_model_args(llava_checkpoint, policy), "--max-strips", "1"]
    argv += ["--n-strips", "1", "--top-k", "1", "--conditions", "gaze,baseline", "--max-new-tokens", "1"]
    argv += ["--json", str(tmp_path / "static.json")]
    code = main(argv)  # no --heads-file: discovery on the fly, on the same strip
    err = capsys.readouterr().err
    assert "discovering gaze heads" in err
    warnings = _warnings(err)
    if policy == "native":  # the evaluation's own check and its discovery's: one warning
        assert len(warnings) == 1 and warnings[0].startswith(WARNING), warnings
        _assert_explains_the_error(code, err)
    else:
        assert code == 0 and warnings == [] and (tmp_path / "static.json").exists()


def test_many_sizes_warn_three_then_sum_up_and_never_twice(capsys):
    """A folder of many image sizes (a COCO set): three named warnings, then one line for the rest;
    sizes already checked on this model are not checked again; a whole image says nothing."""
    import torch

    from gaze_explorer.cli.coverage import warn_partial_coverage
    from gaze_explorer.inference.loading import LoadedModel

    model, adapter = _tiny_llava()
    adapter.set_input_policy("native")
    loaded = LoadedModel(model, adapter, "llava", "tiny-llava", None, torch.device("cpu"), torch.float32)
    sizes = [(f"img{k}.jpg", (56 * (k + 2), 56)) for k in range(5)]  # 2:1 .. 6:1, the crop keeps 1/2 .. 1/6
    lines = warn_partial_coverage(loaded, [*sizes, ("square.jpg", (56, 56)), ("again.jpg", (112, 56))])
    assert capsys.readouterr().err.splitlines() == lines and len(lines) == 4
    assert [line.split("(")[1].split(",")[0] for line in lines[:3]] == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert "50% of the image" in lines[0] and "33% of the image" in lines[1]
    assert lines[3].startswith("warning: 2 more image sizes lose part of the image") and "17%" in lines[3]
    assert warn_partial_coverage(loaded, sizes) == []  # once per size on this model
    adapter.set_input_policy("squash")
    assert warn_partial_coverage(loaded, sizes) == []  # squash: every image whole


def test_report_warns_once_from_its_first_stage(llava_checkpoint, tmp_path, capsys):
    """``report`` runs its stages on one loaded model: the discovery stage warns (once), and its
    error about the cropped-away panels ends the report."""
    argv = ["report", *_model_args(llava_checkpoint, "native"), "--quick", "--out", str(tmp_path)]
    code = main(argv)
    err = capsys.readouterr().err
    warnings = _warnings(err)
    assert len(warnings) == 1 and warnings[0].startswith(WARNING), warnings
    _assert_explains_the_error(code, err)
