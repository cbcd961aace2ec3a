"""The demo scenes: seeded and grid-aligned (each object's box holds exactly its slot's 2 x 2 LM
tokens, by the region evaluation's own rule), shipped as a COCO instances file that the region
evaluation reads, with category names the category judge finds in the trained answers; and the
scene stage's batches are what the adapter builds, with the answers the scenes call for."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gaze_explorer.core.coco import read_coco, select_objects
from gaze_explorer.core.judges import CategoryJudge
from gaze_explorer.core.regions import box_region
from gaze_explorer.demo import prompts
from gaze_explorer.demo.scenes import (
    CATEGORIES,
    HELDOUT_DIR,
    N_OBJECTS,
    OBJECTS,
    SCENE_COLS,
    coco_instances,
    heldout_scenes,
    load_heldout_scenes,
    make_scene,
)
from gaze_explorer.demo.training.data import IGNORE, BatchBuilder, make_image_processor
from gaze_explorer.demo.training.measure import sentence_spans
from gaze_explorer.demo.training.train import build_config
from gaze_explorer.demo.training.vocab import build_demo_tokenizer
from gaze_explorer.inference.adapters.qwen3_vl import Qwen3VLAdapter


@pytest.fixture(scope="module")
def tokenizer():
    return build_demo_tokenizer()


@pytest.fixture(scope="module")
def adapter(tokenizer):
    return Qwen3VLAdapter.from_parts(build_config(tokenizer), tokenizer, make_image_processor())


@pytest.mark.parametrize(
    ("split", "slot", "n"), [("heldout", 128, 24), ("train", 64, 40), ("train", 128, 20)]
)
def test_each_objects_box_holds_exactly_its_slots_four_tokens(adapter, split, slot, n):
    for i in range(n):
        scene = make_scene(split, 0, i, slot=slot)
        grid = adapter.build_inputs(scene.image, prompts.SCENE_REGION_PROMPT).grid
        assert (grid.rows, grid.cols) == (4, 6)  # the model always sees 192 x 128 (6 x 4 tokens)
        assert N_OBJECTS[0] <= len(scene.objects) <= N_OBJECTS[1]
        assert len({o.colour for o in scene.objects}) == len(scene.objects)  # colours tell objects apart
        slots = [o.row * SCENE_COLS + o.col for o in scene.objects]
        assert slots == sorted(set(slots))  # one object per slot, in reading order
        for o in scene.objects:
            tokens = box_region(grid, o.box).token_indices
            want = [(2 * o.row + dr) * grid.cols + 2 * o.col + dc for dr in (0, 1) for dc in (0, 1)]
            assert sorted(tokens.tolist()) == want, (scene.name, o)
            # the square is drawn where its box says: the box's centre pixel has the object's colour
            x0, y0, x1, y1 = o.box
            pixel = np.array(scene.image.getpixel(((x0 + x1) // 2, (y0 + y1) // 2)))
            assert np.abs(pixel - np.array(OBJECTS[o.colour])).max() <= 12


def test_scenes_are_seeded_and_the_shipped_ones_are_the_generators():
    a, b = make_scene("heldout", 0, 5), make_scene("heldout", 0, 5)
    assert a.objects == b.objects and a.image.tobytes() == b.image.tobytes()
    assert make_scene("train", 0, 5).objects != a.objects  # the training stream is another one
    scenes = heldout_scenes()
    shipped = json.loads((HELDOUT_DIR / "instances.json").read_text(encoding="utf-8"))
    assert shipped == coco_instances(scenes), "regenerate with `python -m gaze_explorer.demo.scenes`"
    for scene in scenes:
        with Image.open(HELDOUT_DIR / f"{scene.name}.png") as f:
            assert f.convert("RGB").tobytes() == scene.image.tobytes(), scene.name
    loaded = load_heldout_scenes()
    assert [s.objects for s in loaded] == [s.objects for s in scenes]


def test_the_coco_file_reads_and_every_box_is_kept_in_two_size_classes():
    dataset = read_coco(HELDOUT_DIR / "instances.json")
    assert sorted(dataset.categories.values()) == sorted(CATEGORIES)
    selection = select_objects(dataset.objects)
    assert len(selection.objects) == len(dataset.objects) == sum(len(s.objects) for s in heldout_scenes())
    assert selection.skipped_small == selection.skipped_crowd == 0
    assert {o.size_class for o in selection.objects} == {"medium", "large"}


def test_the_region_question_is_the_coco_region_evaluations_own():
    from gaze_explorer.core.coco import COCO_REGION_PROMPT

    assert prompts.SCENE_REGION_PROMPT == COCO_REGION_PROMPT


def test_the_category_judge_finds_each_trained_answer_and_only_it():
    judge = CategoryJudge()
    for colour in OBJECTS:
        answer = prompts.object_answer(colour)
        for category in CATEGORIES:
            assert judge.names(answer, category) == (category == f"{colour} square"), (answer, category)
    assert not judge.names("a pink .", "pink square")  # the colour alone is not the object


def test_scene_batches_are_adapter_inputs_with_the_scenes_answers(tokenizer, adapter):
    # big_fraction 0: every scene is drawn at 64-px slots (the size the model sees)
    builder = BatchBuilder(tokenizer, seed=0, mix={"scene_describe": 1.0}, big_fraction=0.0, stream="scenes")
    batch = builder.next_batch(3)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for row in range(3):
        scene = make_scene("train-scenes", 0, row)
        ref = adapter.build_inputs(scene.image, prompts.SCENE_DESCRIBE_PROMPT)
        n = ref.tensors["input_ids"].shape[1]
        assert torch.equal(batch["input_ids"][row, :n], ref.tensors["input_ids"][0])
        labels = batch["labels"][row][batch["labels"][row] != IGNORE].tolist()
        answer = prompts.scene_description([o.colour for o in scene.objects])
        assert labels == [*tokenizer(answer, add_special_tokens=False)["input_ids"], eos]
        assert tokenizer.unk_token_id not in labels
    region = BatchBuilder(
        tokenizer, seed=0, mix={"scene_region": 1.0}, big_fraction=0.0, stream="scenes"
    ).next_batch(1)
    first = make_scene("train-scenes", 0, 0).objects[0]
    got = region["labels"][0][region["labels"][0] != IGNORE].tolist()[:-1]
    assert tokenizer.decode(got) == prompts.object_answer(first.colour)


def test_sentence_spans_split_an_answer_at_its_full_stops():
    pieces = [" a", " pink", " square", " .", " a", " gray", " square", " .", " a", " cyan"]
    assert sentence_spans(pieces) == [(0, 3, "a pink square ."), (4, 7, "a gray square ."), (8, 9, "a cyan")]
    assert sentence_spans([]) == []
