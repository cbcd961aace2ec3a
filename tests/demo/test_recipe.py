"""The training recipe has one home: the trainer's flags, the shipped checkpoint and the model card
all agree with :class:`Recipe`'s defaults, and the trainer never writes over the shipped model."""

from __future__ import annotations

import json
import re
from dataclasses import fields

import pytest

from gaze_explorer.core.paths import demo_model_dir
from gaze_explorer.demo.training.recipe import Recipe, recipe_table
from gaze_explorer.demo.training.train import main

CARD = demo_model_dir() / "README.md"
# Fields added to the recipe after a shipped run was trained may be missing from its
# training_recipe.json (config.json shows the architecture ones); the shipped run (s2) records all.
ADDED_AFTER_SHIPPED_RUN = {"linear_until", "layers", "heads", "kv_heads", "vision_depth"}


def test_the_model_cards_recipe_table_shows_the_dataclass_defaults():
    card = CARD.read_text(encoding="utf-8")
    block = re.search(r"<!-- recipe table: begin -->\n(.*?)\n<!-- recipe table: end -->", card, re.S)
    assert block is not None, "the model card lost its generated recipe table"
    assert block.group(1) == recipe_table(), (
        "the card's recipe table is stale: paste `python -m gaze_explorer.demo.training.recipe` into it"
    )
    # and the prose quotes the same penalty settings
    r = Recipe()
    assert f"--image-sparsity {r.image_sparsity} --sparsity-norm {r.sparsity_norm}" in card
    assert f"--sparsity-shape {r.sparsity_shape}" in card and f"--read-steadiness {r.read_steadiness}" in card


def test_the_shipped_checkpoint_was_trained_with_the_defaults():
    shipped = json.loads((demo_model_dir() / "training_recipe.json").read_text())
    config = json.loads((demo_model_dir() / "config.json").read_text())
    defaults = Recipe()
    names = {f.name for f in fields(Recipe)}
    assert names - shipped.keys() <= ADDED_AFTER_SHIPPED_RUN
    for name in names & shipped.keys():
        assert shipped[name] == getattr(defaults, name), name
    text, vision = config["text_config"], config["vision_config"]
    assert text["num_hidden_layers"] == defaults.layers
    assert text["num_attention_heads"] == defaults.heads
    assert text["num_key_value_heads"] == defaults.kv_heads
    assert vision["depth"] == defaults.vision_depth
    assert shipped.get("linear_until", 0.0) == defaults.linear_until  # no linear phase before r33


def test_train_requires_out_and_rejects_a_bad_recipe_with_a_message(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--out", "unused", "--heads", "5", "--kv-heads", "2"])
    assert exc.value.code == 2
    assert "multiple of kv_heads" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", "unused", "--sparsity-shape", "cube"])
    assert "invalid choice" in capsys.readouterr().err


def test_the_scene_stage_starts_only_from_a_checkpoint_of_the_same_comics_recipe(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "a"), "--stage1", str(demo_model_dir()), "--scene-steps", "0"])
    assert exc.value.code == 2
    assert "give --scene-steps" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "--out",
                str(tmp_path / "b"),
                "--stage1",
                str(demo_model_dir()),
                "--scene-steps",
                "5",
                "--lr",
                "0.002",
            ]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "another comics recipe" in err and "'lr'" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_recipe_flags_round_trip_and_the_old_mix_flag_still_works():
    import argparse

    from gaze_explorer.demo.training.recipe import add_recipe_args, recipe_from_args

    p = argparse.ArgumentParser()
    add_recipe_args(p)
    assert recipe_from_args(p.parse_args([])) == Recipe()
    got = recipe_from_args(
        p.parse_args(["--mix", '{"kth": 1.0}', "--batch-size", "3", "--linear-until", "0.5"])
    )
    assert got.task_mix == {"kth": 1.0} and got.batch_size == 3 and got.linear_until == 0.5
    assert "(default: 0.03)" in p.format_help()
