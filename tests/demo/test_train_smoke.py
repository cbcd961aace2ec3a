"""The training entry point runs both stages, the loss goes down, and it writes a loadable
checkpoint with the scene words in its vocabulary."""

from __future__ import annotations

import json

import numpy as np

from gaze_explorer.demo import prompts
from gaze_explorer.demo.comics import PANEL_SIZE, generate_strips
from gaze_explorer.demo.scenes import make_scene
from gaze_explorer.demo.training.train import main
from gaze_explorer.demo.training.vocab import build_demo_tokenizer
from gaze_explorer.inference.loading import load_model


def test_training_smoke_writes_a_loadable_model(tmp_path):
    out = tmp_path / "model"
    log = tmp_path / "train.log"
    rc = main(
        [
            "--out",
            str(out),
            "--steps",
            "12",
            "--batch-size",
            "4",
            "--lr",
            "3e-3",
            "--threads",
            "2",
            "--layers",
            "2",
            "--log-every",
            "3",
            "--log-file",
            str(log),
            "--linear-until",
            "0.5",
            "--scene-steps",
            "3",
        ]
    )
    assert rc == 0
    lines = [line.split() for line in log.read_text().splitlines()]
    losses = [float(w[4]) for w in lines if w[0] == "comics"]  # "comics step N loss X ..."
    assert len(losses) == 4
    assert losses[-1] < 0.7 * losses[0]  # starts near ln(vocab) ~ 4.3
    assert [w[:3] for w in lines if w[0] == "scenes"] == [["scenes", "step", "3"]]
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "training_recipe.json",
    ):
        assert (out / name).is_file(), name
    recipe = json.loads((out / "training_recipe.json").read_text())
    assert (
        recipe["steps"] == 12 and recipe["linear_until"] == 0.5 and recipe["sparsity_shape"] == "saturating"
    )
    assert recipe["scene_steps"] == 3 and "comics_final_loss" in recipe
    loaded = load_model(out, device="cpu")
    assert loaded.family == "qwen3_vl"
    assert (loaded.n_layers, loaded.n_heads, loaded.n_kv_heads, loaded.head_dim) == (2, 16, 2, 16)
    (strip,) = generate_strips(1, seed=0)
    prepared = loaded.prepare(strip.image, prompts.kth_prompt(0))
    side = PANEL_SIZE // 32  # LM tokens per panel side (patch 16, merge 2)
    assert prepared.grid.rows == side and prepared.grid.cols == 6 * side
    logits = loaded.model(**loaded.adapter.prefill_kwargs(loaded.model, prepared)).logits
    assert np.isfinite(logits.detach().numpy()).all()
    # the scene stage grew the vocabulary: the scene prompt has no unknown word, and a scene is 4 x 6
    tokenizer = loaded.adapter.tokenizer
    assert (
        logits.shape[-1] == len(tokenizer) == len(build_demo_tokenizer()) > len(build_demo_tokenizer(False))
    )
    assert tokenizer.unk_token_id not in tokenizer(prompts.SCENE_DESCRIBE_PROMPT)["input_ids"]
    scene = loaded.prepare(make_scene("heldout", 0, 0).image, prompts.SCENE_REGION_PROMPT)
    assert (scene.grid.rows, scene.grid.cols) == (4, 6)
