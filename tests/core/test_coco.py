"""COCO-style region steering, torch-free parts: the reader (size classes, the 750 px^2 filter,
crowds, box -> tokens), the category + synonym judge, and the summary by size class. The reader runs
on the project's tiny COCO-format fixture (tests/data/coco_tiny, made by its make_fixture.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gaze_explorer.core.coco import (
    MIN_BOX_AREA,
    format_region_table,
    parse_coco,
    read_coco,
    region_report,
    select_objects,
    size_class,
)
from gaze_explorer.core.errors import DatasetError, RegionError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.judges import COCO_SYNONYMS, CategoryJudge, PanelTruth, read_synonyms
from gaze_explorer.core.regions import ImageTokenGrid, box_region

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "coco_tiny" / "instances.json"


def test_size_classes_follow_coco_by_annotation_area():
    assert [size_class(a) for a in (0, 1023.9, 1024, 9215.9, 9216, 1e6)] == [
        "small",
        "small",
        "medium",
        "medium",
        "large",
        "large",
    ]
    ds = read_coco(FIXTURE)
    by_cat = {o.category: o for o in ds.objects}
    # the kite's box is 30x30 = 900 px^2 (kept by the box filter) but its segment's area is 450: small
    assert by_cat["kite"].box_area == 900 and by_cat["kite"].size_class == "small"
    # the frisbee's box is 48x48 = 2304 (medium either way); the book's 112x112 (large)
    assert by_cat["frisbee"].size_class == "medium" and by_cat["book"].size_class == "large"
    assert by_cat["cup"].box == (96.0, 32.0, 160.0, 96.0)  # [x, y, w, h] -> (x0, y0, x1, y1)


def test_reader_filters_small_boxes_and_crowds_and_caps_images():
    ds = read_coco(FIXTURE)
    assert len(ds.images) == 3 and len(ds.objects) == 9 and ds.categories[1] == "person"
    sel = select_objects(ds.objects)
    names = [o.category for o in sel.objects]
    assert "sports ball" not in names  # 20x20 = 400 px^2 < 750
    assert "person" not in names  # iscrowd = 1
    assert sel.skipped_small == 1 and sel.skipped_crowd == 1 and len(sel.objects) == 7
    assert sel.counts()["selected_by_size"] == {"small": 2, "medium": 3, "large": 2}
    # the threshold is the box's area, inclusive at 750
    assert len(select_objects(ds.objects, min_box_area=401).objects) == 7
    assert len(select_objects(ds.objects, min_box_area=400).objects) == 8
    assert select_objects(ds.objects, min_box_area=901).skipped_small == 3  # + kite (900) and cake (800)
    assert MIN_BOX_AREA == 750
    two = select_objects(ds.objects, max_images=2)
    assert {o.image_id for o in two.objects} == {1, 2} and len(two.objects) == 5


def test_box_to_tokens_uses_the_cell_centre_rule():
    """The demo model's grid of a 192x128 image: 4 x 6 tokens of 32 px (centres at 16, 48, ...)."""
    ds = read_coco(FIXTURE)
    by_cat = {o.category: o for o in ds.objects}
    grid = ImageTokenGrid.uniform(192, 128, 4, 6, first_position=10)
    cup = box_region(grid, by_cat["cup"].box)  # x 96..160, y 32..96: centres x 112, 144; y 48, 80
    assert sorted(cup.token_indices.tolist()) == [1 * 6 + 3, 1 * 6 + 4, 2 * 6 + 3, 2 * 6 + 4]
    kite = box_region(grid, by_cat["kite"].box)  # x 136..166, y 88..118: the centre (144, 112)
    assert kite.token_indices.tolist() == [3 * 6 + 4]
    with pytest.raises(RegionError, match="no image-token centre"):
        box_region(grid, by_cat["cake"].box)  # y 60..80 holds no centre row (48, 80 excluded)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"images": []}, "not a COCO instances file"),
        ({"images": [{"id": 1}], "annotations": [], "categories": []}, "lacks file_name"),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 9, "height": 9}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 5]}],
                "categories": [{"id": 1, "name": "cat"}],
            },
            "w, h > 0",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 9, "height": 9}],
                "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5]}],
                "categories": [{"id": 1, "name": "cat"}],
            },
            "names image 2",
        ),
    ],
)
def test_reader_rejects_malformed_files_clearly(data, message):
    with pytest.raises(DatasetError, match=message):
        parse_coco(data)


def test_reader_missing_file_and_default_area(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_coco(tmp_path / "nope.json")
    f = tmp_path / "i.json"
    f.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 90, "height": 90}],
                "annotations": [{"id": 5, "image_id": 1, "category_id": 3, "bbox": [0, 0, 40, 30]}],
                "categories": [{"id": 3, "name": "dog"}],
            }
        )
    )
    (obj,) = read_coco(f).objects
    assert obj.area == 1200 and obj.size_class == "medium" and obj.category == "dog"


def test_category_judge_names_categories_with_synonyms_and_plurals():
    judge = CategoryJudge()
    assert len(COCO_SYNONYMS) == 80
    assert judge.names("Two dogs on a sofa.", "dog") and judge.names("Two dogs on a sofa.", "couch")
    assert judge.names("A small puppy", "dog")
    assert judge.names("a red traffic light", "traffic light") and not judge.names(
        "the light", "traffic light"
    )
    assert judge.names("a blow dryer", "hair drier")
    assert not judge.names("a cat", "dog")
    assert not judge.names("dog dog dog dog dog", "dog")  # a repetition loop is degenerate: a miss
    verdict = judge.judge("a kitten", PanelTruth(attributes=[{"category": "dog"}, {"category": "cat"}]))
    assert verdict.choice == 1 and verdict.scores == (0.0, 1.0) and verdict.credit(1) == 1.0


def test_synonyms_file_extends_the_table(tmp_path):
    f = tmp_path / "syn.json"
    f.write_text(json.dumps({"Frisbee": ["saucer"]}))
    judge = CategoryJudge(read_synonyms(f))
    assert judge.names("a flying saucer", "frisbee") and judge.names("a disc", "frisbee")
    assert not CategoryJudge().names("a flying saucer", "frisbee")
    f.write_text(json.dumps({"frisbee": "saucer"}))
    with pytest.raises(DatasetError, match="must be"):
        read_synonyms(f)


def _gen(aid, size, condition, hit, degenerate=False):
    return {
        "annotation_id": aid,
        "size_class": size,
        "condition": condition,
        "hit": hit,
        "degenerate": degenerate,
    }


def test_region_report_by_size_class_and_paired_difference():
    sizes = {1: "small", 2: "small", 3: "medium", 4: "large", 5: "large", 6: "large"}
    gaze_hits = {1: 1, 2: 0, 3: 1, 4: 1, 5: 1, 6: 0}
    random_hits = {1: 0, 2: 0, 3: 0, 4: 1, 5: 0, 6: 0}
    gens = [_gen(a, sizes[a], "gaze", h) for a, h in gaze_hits.items()]
    gens += [_gen(a, sizes[a], "random", h, degenerate=a == 6) for a, h in random_hits.items()]
    heads = {"gaze": HeadSet("g", ((0, 1), (1, 2))), "random": HeadSet("r", ((2, 3), (3, 0)))}
    rep = region_report(
        model="m", generations=gens, counts={"n_images": 2}, heads=heads, settings={}, n_resamples=500
    )
    g, r = rep["conditions"]["gaze"], rep["conditions"]["random"]
    assert g["overall"]["accuracy"] == pytest.approx(4 / 6) and g["overall"]["n"] == 6
    assert g["by_size"]["small"]["accuracy"] == 0.5 and g["by_size"]["large"]["accuracy"] == pytest.approx(
        2 / 3
    )
    assert r["by_size"]["large"]["degenerate_rate"] == pytest.approx(1 / 3)
    for c in (g, r):
        for s in (c["overall"], *c["by_size"].values()):
            lo, hi = s["ci95"]
            assert 0.0 <= lo <= s["accuracy"] <= hi <= 1.0
    diff = rep["gaze_vs_control"]
    assert diff["control"] == "random" and diff["overall"]["difference"] == pytest.approx(3 / 6)
    assert diff["by_size"]["medium"] == {"difference": 1.0, "ci95": [1.0, 1.0], "n": 1}
    assert rep["n_objects"] == 6 and rep["top_k"] == 2 and rep["heads"]["gaze"] == [[0, 1], [1, 2]]
    json.dumps(rep, allow_nan=False)  # an empty size class must not put NaN in the JSON
    table = format_region_table(rep)
    assert "66.7" in table and "gaze - random: +50.0 points" in table
    assert "small 61.7/18.6" in table  # the paper's Tab. 1 beside ours
    # a size class without objects reports None, not NaN
    none = region_report(model="m", generations=gens[:1], counts={}, heads=heads, settings={}, n_resamples=10)
    assert none["conditions"]["gaze"]["by_size"]["large"] == {
        "accuracy": None,
        "ci95": [None, None],
        "degenerate_rate": None,
        "n": 0,
    }
    assert none["gaze_vs_control"] is None and np.isclose(
        none["conditions"]["gaze"]["overall"]["accuracy"], 1.0
    )
