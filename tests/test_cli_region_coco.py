"""``evaluate region --coco-annotations`` end to end on the bundled demo model and the project's tiny
COCO-format fixture (tests/data/coco_tiny). The demo model only knows comic strips, so accuracy is
not checked: the JSON's structure (docs/evaluation_json.md, "Region on COCO annotations") and its
counts are. Also the flag rules and the clear errors for bad paths."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from gaze_explorer.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo_model" / "config.json"
COCO = ROOT / "tests" / "data" / "coco_tiny"
needs_demo = pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")
TOP_LEVEL = [
    "schema_version",
    "protocol",
    "dataset",
    "model",
    "status",
    "n_objects",
    "top_k",
    "counts",
    "conditions",
    "gaze_vs_control",
    "heads",
    "head_choices",
    "settings",
    "generations",
]
COUNTS = [
    "n_images",
    "n_annotations",
    "min_box_area",
    "n_selected",
    "skipped_small",
    "skipped_crowd",
    "selected_by_size",
    "skipped_no_tokens",
    "evaluated_by_size",
]
SETTINGS = [
    "annotations",
    "images",
    "prompt",
    "input_policy",
    "mode",
    "strength",
    "max_new_tokens",
    "bias_on",
    "seed",
    "control_pool",
    "n_resamples",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "judge",
    "conditions",
]


@pytest.fixture(scope="module")
def heads_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("coco_discovery")
    assert main(["discover", "--model", "demo", "--device", "cpu", "--n-strips", "2", "--out", str(out)]) == 0
    return out / "ranking.json"


def _argv(heads_file, *extra):
    return [
        "evaluate",
        "region",
        "--model",
        "demo",
        "--device",
        "cpu",
        "--heads-file",
        str(heads_file),
        "--top-k",
        "4",
        "--coco-annotations",
        str(COCO / "instances.json"),
        "--images",
        str(COCO),
        *extra,
    ]


@needs_demo
def test_region_coco_end_to_end_counts_and_structure(heads_file, tmp_path, capsys):
    out = tmp_path / "coco.json"
    assert main(_argv(heads_file, "--max-new-tokens", "4", "--json", str(out))) == 0
    data = json.loads(out.read_text())
    assert list(data) == TOP_LEVEL and list(data["counts"]) == COUNTS and list(data["settings"]) == SETTINGS
    assert data["protocol"] == "region" and data["dataset"] == "coco" and data["status"] == "finished"
    counts = data["counts"]
    # 9 annotations: 1 box under 750 px^2, 1 crowd, 1 box (800 px^2) holding no token centre -> 6
    assert counts["n_annotations"] == 9 and counts["n_images"] == 3 and counts["min_box_area"] == 750
    assert (counts["skipped_small"], counts["skipped_crowd"], counts["skipped_no_tokens"]) == (1, 1, 1)
    assert counts["n_selected"] == 7 and counts["evaluated_by_size"] == {"small": 1, "medium": 3, "large": 2}
    assert data["n_objects"] == 6 and data["top_k"] == 4
    assert (
        data["settings"]["prompt"]
        == "What is the main object in this part of the image? Answer in a few words."
    )
    assert data["settings"]["judge"] == "category" and data["settings"]["bias_on"] == "prefill+decode"
    gens = data["generations"]
    assert len(gens) == 6 * 4  # every object under gaze, random, all and the baseline
    assert {g["category"] for g in gens} == {"book", "frisbee", "kite", "orange", "stop sign", "cup"}
    # one unsteered answer per image, judged against each of its objects
    base = [g for g in gens if g["condition"] == "baseline"]
    assert len({(g["image"], g["text"]) for g in base}) == 3
    for name in ("gaze", "random", "all", "baseline"):
        c = data["conditions"][name]
        assert c["overall"]["n"] == 6 and [c["by_size"][s]["n"] for s in ("small", "medium", "large")] == [
            1,
            3,
            2,
        ]
        hits = [g["hit"] for g in gens if g["condition"] == name]
        assert c["overall"]["accuracy"] == pytest.approx(sum(hits) / 6, abs=1e-6)
        lo, hi = c["overall"]["ci95"]
        assert 0.0 <= lo <= c["overall"]["accuracy"] <= hi <= 1.0
    for g in gens:
        assert g["hit"] in (0.0, 1.0) and g["judge"]["scores"] in ([0.0], [1.0])
        assert g["hit"] == float(g["judge"]["scores"][0] == 1.0 and not g["degenerate"])
    assert data["gaze_vs_control"]["control"] == "random" and data["gaze_vs_control"]["overall"]["n"] == 6
    assert not {tuple(h) for h in data["heads"]["gaze"]} & {tuple(h) for h in data["heads"]["random"]}
    table = capsys.readouterr().out
    assert "region (COCO) on demo: 6 objects in 3 images" in table and "1 boxes under 750 px^2" in table


@needs_demo
def test_region_coco_bad_inputs_are_clear_errors(heads_file, tmp_path, capsys):
    # an image file missing from --images: exit 1 naming it, before the model loads
    images = tmp_path / "imgs"
    shutil.copytree(COCO, images)
    (images / "000000000002.png").unlink()
    argv = _argv(heads_file)
    argv[argv.index("--images") + 1] = str(images)
    assert main(argv) == 1
    assert "000000000002.png" in capsys.readouterr().err
    # a --min-box-area that leaves nothing
    assert main(_argv(heads_file, "--min-box-area", "1e9")) == 1
    assert "no object to steer to" in capsys.readouterr().err
    # flag rules: exit 2
    for bad in (
        ["evaluate", "region", "--coco-annotations", "x.json"],  # no --images
        ["evaluate", "static", "--coco-annotations", "x.json", "--images", "d"],
        ["evaluate", "region", "--images", "d"],  # --images without --coco-annotations
        [*_argv(heads_file), "--boxes", "b.json"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(bad)
        assert exc.value.code == 2


def test_evaluation_json_doc_lists_the_coco_fields():
    doc = (ROOT / "docs" / "evaluation_json.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Region on COCO annotations") :]
    documented = set(re.findall(r"^\| `([a-z_0-9]+)`", section, flags=re.M))
    assert set(TOP_LEVEL) | set(COUNTS) | set(SETTINGS) <= documented
