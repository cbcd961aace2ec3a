"""A discovery records how its strips reached the model (issue 19): the input policy the adapter
used (not only the ``--input-policy`` flag: without it, the family's default) and the coverage, the
smallest fraction of a strip that reached the language model, in ``discovery.json`` and in the
session's discovery params. A tiny random LLaVA-1.5 checkpoint (56 px CLIP) on the demo strips
(384 x 64): ``squash`` (its default) and ``pad`` keep the whole strip; ``native`` keeps the centre
64 px square (1/6)."""

from __future__ import annotations

import json

import pytest
from family_helpers import input_policy, save_checkpoint, strip_image
from test_family_llava import tiny_llava

from gaze_explorer.cli import main
from gaze_explorer.inference.discovery import DiscoveryResult, discover
from gaze_explorer.inference.loading import loaded_from_parts
from gaze_explorer.storage import SessionReader


@pytest.fixture(scope="module")
def llava_checkpoint(tmp_path_factory):
    """The tiny LLaVA-1.5, saved as a checkpoint folder the CLI loads by path."""
    return save_checkpoint(*tiny_llava(), tmp_path_factory.mktemp("tiny_llava"))


@pytest.mark.parametrize(("flag", "policy"), [(None, "squash"), ("pad", "pad")])
def test_discover_records_the_input_policy_and_coverage(llava_checkpoint, tmp_path, flag, policy):
    out, session = tmp_path / "d", tmp_path / "s.h5"
    argv = ["discover", "--model", str(llava_checkpoint), "--device", "cpu", "--dtype", "float32"]
    argv += ["--n-strips", "1", "--out", str(out), "--session", str(session)]
    assert main([*argv, *(["--input-policy", flag] if flag else [])]) == 0
    meta = json.loads((out / "discovery.json").read_text(encoding="utf-8"))
    assert (meta["input_policy"], meta["image_coverage"]) == (policy, 1.0)
    with SessionReader(session) as reader:
        (discovery,) = reader.discoveries()
    assert (discovery.params["input_policy"], discovery.params["image_coverage"]) == (policy, 1.0)


def _discovered(loaded, strips) -> DiscoveryResult:
    return next(e for e in discover(loaded, strips) if isinstance(e, DiscoveryResult))


def test_discovery_reports_the_smallest_coverage_of_the_strips():
    """Under ``native`` the centre crop keeps 1/6 of a 384 x 64 strip, all of a square one: the
    discovery result (app and CLI alike) records the smaller. One panel per strip, so the cropped
    strip still has image tokens in its panel."""
    model, adapter = tiny_llava()
    loaded = loaded_from_parts(model, adapter)
    strips = [
        type("S", (), {"image": strip_image(w, 64), "panel_widths": [w], "name": f"w{w}"})()
        for w in (64, 384)
    ]
    with input_policy(adapter, "native"):
        result = _discovered(loaded, strips)
    assert result.input_policy == "native"
    assert result.image_coverage == pytest.approx(1 / 6, abs=1e-3)
    result = _discovered(loaded, strips)
    assert (result.input_policy, result.image_coverage) == ("squash", 1.0)
