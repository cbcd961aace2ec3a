"""The synthetic comic generator: seeded, two attributes per panel, the authors' folder layout."""

from __future__ import annotations

import json
import random

import numpy as np

from gaze_explorer.core.strips import load_strip_folder
from gaze_explorer.demo.comics import (
    BACKGROUNDS,
    HELDOUT_COUNT,
    HELDOUT_DIR,
    OBJECTS,
    PANEL_SIZE,
    generate_strips,
    heldout_comics,
    load_heldout_strips,
    make_comic,
    sample_panel_specs,
    write_strip_folders,
)


def test_generation_is_seeded_and_splits_differ():
    a = generate_strips(3, seed=5, split="x")
    b = generate_strips(3, seed=5, split="x")
    c = generate_strips(3, seed=5, split="y")
    assert [s.attributes for s in a] == [s.attributes for s in b]
    assert all(np.array_equal(np.asarray(s.image), np.asarray(t.image)) for s, t in zip(a, b, strict=True))
    assert [s.attributes for s in a] != [s.attributes for s in c]


def test_panels_have_two_attributes_and_no_duplicate_pairs():
    rng = random.Random(0)
    for _ in range(200):
        specs = sample_panel_specs(rng)
        pairs = [(s.object, s.background) for s in specs]
        assert len(set(pairs)) == 6
        assert all(o in OBJECTS and b in BACKGROUNDS for o, b in pairs)
    # the two attribute vocabularies are disjoint, so a judge knows which attribute a word names
    assert not set(OBJECTS) & set(BACKGROUNDS)


def test_panel_pixels_show_both_attributes():
    comic = make_comic("t", 0, 0, panel_size=96)
    for panel, spec in zip(comic.panels, comic.specs, strict=True):
        px = np.asarray(panel).astype(int)
        corner, centre = px[2, 2], px[48, 48]
        assert np.abs(corner - np.array(BACKGROUNDS[spec.background])).max() <= 12
        assert np.abs(centre - np.array(OBJECTS[spec.object])).max() <= 12
        # the unjudged size word matches the square: count object-coloured pixels
        is_object = np.abs(px - np.array(OBJECTS[spec.object])).max(-1) <= 12
        share = is_object.mean()
        assert (share < 0.30) if spec.size_word == "small" else (share > 0.40)


def test_every_lm_token_of_a_panel_shows_both_colours():
    # 2x2 LM tokens (32 px) per panel: each holds one corner of the centred square
    for index in range(4):
        comic = make_comic("t", 0, index, panel_size=PANEL_SIZE)
        for panel, spec in zip(comic.panels, comic.specs, strict=True):
            px = np.asarray(panel).astype(int)
            is_object = np.abs(px - np.array(OBJECTS[spec.object])).max(-1) <= 12
            cells = range(0, PANEL_SIZE, 32)
            shares = [is_object[i : i + 32, j : j + 32].mean() for i in cells for j in cells]
            assert min(shares) > 0.12, shares
            assert max(shares) < 0.75, shares  # and background in every token


def test_strip_geometry_is_six_square_panels():
    (strip,) = generate_strips(1, seed=1)
    assert strip.image.size == (6 * PANEL_SIZE, PANEL_SIZE)
    assert strip.panel_widths == [PANEL_SIZE] * 6
    assert len(strip.captions) == 6


def test_folder_layout_round_trips(tmp_path):
    comics = [make_comic("t", 0, i) for i in range(2)]
    folders = write_strip_folders(tmp_path, comics)
    assert [f.name for f in folders] == ["comic1", "comic2"]
    assert sorted(p.name for p in folders[0].iterdir()) == [
        "attributes.json",
        "captions.json",
        *(f"p{k}.png" for k in range(1, 7)),
    ]
    strip = load_strip_folder(folders[1], 6, height=96)
    assert strip.attributes == [s.attributes for s in comics[1].specs]
    assert strip.captions == json.loads((folders[1] / "captions.json").read_text())


def test_shipped_heldout_set_matches_the_generator():
    strips = load_heldout_strips()
    assert len(strips) == HELDOUT_COUNT
    comics = heldout_comics()
    assert [s.attributes for s in strips] == [[p.attributes for p in c.specs] for c in comics]
    assert (HELDOUT_DIR / "comic1" / "p6.png").is_file()
    # held-out strips never appear in the training stream (checked on the first 2,000 train strips)
    held = {tuple((a["object"], a["background"]) for a in s.attributes) for s in strips}
    train = {tuple((p.object, p.background) for p in make_comic("train", 0, i).specs) for i in range(2000)}
    assert not held & train
