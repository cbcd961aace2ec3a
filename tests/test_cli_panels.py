"""``generate`` with unequal panels, a box as the target and an input policy, on the demo model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from gaze_explorer.cli import build_parsers, main
from gaze_explorer.cli.helpers import load_strips
from gaze_explorer.cli.parser import check_args

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (ROOT / "resources" / "demo_model" / "config.json").exists(), reason="the demo model is not bundled"
)


def _parse(argv):
    parsers = build_parsers()
    args = parsers.main.parse_args(argv)
    check_args(parsers, args)
    return args


def test_a_box_is_the_target_and_panel_widths_set_the_panel_count():
    args = _parse(["generate", "--image", "i", "--prompt", "p", "--box", "0,0,9,9", "--heads", "all"])
    assert args.box == (0.0, 0.0, 9.0, 9.0) and args.target is None
    args = _parse(["generate", "--image", "i", "--prompt", "p", "--panel-bounds", "100,300"])
    assert args.panels == 3 and args.panel_bounds == (100.0, 300.0)


@pytest.fixture(scope="module")
def strip_png(tmp_path_factory):
    ns = argparse.Namespace(comics="demo", use_raw=False, n_panels=6, panel_height=None, seed=0)
    path = tmp_path_factory.mktemp("panels") / "strip.png"
    load_strips(ns, 1)[0].image.save(path)
    return path


def _regions(session: Path) -> list[dict]:
    with h5py.File(session, "r") as f:
        meta = json.loads(f.attrs["meta_json"])
        assert f.attrs["input_policy"] == meta["input_policy"]  # also a root attribute
        return json.loads(f["regions"].attrs["regions_json"]), meta


def test_generate_steers_to_a_box_without_a_target_and_records_the_policy(strip_png, tmp_path):
    session = tmp_path / "box.h5"
    code = main(
        [
            "generate",
            "--model",
            "demo",
            "--device",
            "cpu",
            "--image",
            str(strip_png),
            "--prompt",
            "What is happening in this panel of the comic strip?",
            "--box",
            "64,0,128,64",
            "--heads",
            "all",
            "--max-new-tokens",
            "2",
            "--session",
            str(session),
        ]
    )
    assert code == 0
    regions, meta = _regions(session)
    assert [r["kind"] for r in regions] == ["box"]
    assert meta["input_policy"] == "native" and meta["image_coverage"] == 1.0


def test_generate_with_unequal_panel_widths_records_them(strip_png, tmp_path):
    session = tmp_path / "widths.h5"
    width = 384  # the demo strip: six 64 px panels
    code = main(
        [
            "generate",
            "--model",
            "demo",
            "--device",
            "cpu",
            "--image",
            str(strip_png),
            "--prompt",
            "What is happening in this panel of the comic strip?",
            "--panel-widths",
            "1,2,3",
            "--max-new-tokens",
            "1",
            "--session",
            str(session),
        ]
    )
    assert code == 0
    regions, _ = _regions(session)
    assert [r["name"] for r in regions] == ["panel 1", "panel 2", "panel 3"]
    assert np.allclose([r["box"][2] for r in regions], [width / 6, width / 2, width])
    sizes = [len(r["token_indices"]) for r in regions]
    assert sizes[0] < sizes[1] < sizes[2] and sum(sizes) == len(
        {i for r in regions for i in r["token_indices"]}
    )
