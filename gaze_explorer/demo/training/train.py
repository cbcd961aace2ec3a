"""Train the demo model from scratch: ``python -m gaze_explorer.demo.training.train --out DIR``.

A tiny Qwen3-VL (real transformers classes, so the adapter and attention code paths are those of
real checkpoints) learns to describe synthetic comic panels: the k-th panel question, narration
in order, and the ambiguous "this panel" question (answered about panel 1). Seeded, CPU, 1 thread,
AdamW with a one-cycle schedule, loss on answer tokens only, plus small training-only penalties
that keep image reading in few heads that read at every token
(:mod:`gaze_explorer.demo.training.head_sparsity`). The hyperparameters are a
:class:`~gaze_explorer.demo.training.recipe.Recipe` (its defaults are the shipped model's recipe).

The output directory (``--out`` is required, so that a run never overwrites the shipped model: a
measured run is copied over ``resources/demo_model`` by hand) holds ``config.json``,
``model.safetensors`` (fp32), ``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``,
``preprocessor_config.json`` and ``training_recipe.json``; it loads with ``load_model(path)``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from gaze_explorer.demo.comics import PANEL_SIZE
from gaze_explorer.demo.training import head_sparsity
from gaze_explorer.demo.training.data import BatchBuilder, make_image_processor
from gaze_explorer.demo.training.recipe import (
    MROPE_SECTION,
    TEXT,
    VISION,
    Recipe,
    add_recipe_args,
    recipe_from_args,
)
from gaze_explorer.demo.training.vocab import build_demo_tokenizer


def build_config(tokenizer, text: dict | None = None, vision: dict | None = None):
    """The demo model's ``Qwen3VLConfig`` (token ids taken from the tokenizer)."""
    from transformers import Qwen3VLConfig

    ids = {
        t: tokenizer.convert_tokens_to_ids(t)
        for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    }
    text_cfg = dict(TEXT, **(text or {}))
    text_cfg.update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        tie_word_embeddings=True,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": MROPE_SECTION,
            "mrope_interleaved": True,
        },
    )
    return Qwen3VLConfig(
        text_config=text_cfg,
        vision_config=dict(VISION, **(vision or {})),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def build_model(config):
    """A freshly initialised model (seed the global RNG first)."""
    from transformers import Qwen3VLForConditionalGeneration

    return Qwen3VLForConditionalGeneration._from_config(config, attn_implementation="sdpa")


def save(model, tokenizer, out: Path, recipe: dict, panel_size: int = PANEL_SIZE) -> None:
    """Write the loadable checkpoint (fp32 safetensors, config, tokenizer, preprocessing)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    make_image_processor(panel_size).save_pretrained(out)
    (out / "training_recipe.json").write_text(json.dumps(recipe, indent=1) + "\n")


def _run_stage(
    model,
    builder: BatchBuilder,
    r: Recipe,
    steps: int,
    lr: float,
    *,
    name: str,
    log_every: int,
    progress: bool,
    log_file: Path | None,
    fade: bool,
) -> list[float]:
    """One training stage: ``steps`` steps of AdamW with a one-cycle schedule peaking at ``lr`` on
    ``builder``'s batches, with the recipe's penalties (faded out per ``sparsity_until`` when
    ``fade``); returns the per-step task losses."""
    from tqdm.auto import tqdm

    penalised = bool(r.image_sparsity or r.read_steadiness)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=steps, pct_start=min(0.5, max(0.1, 3 / steps))
    )
    losses: list[float] = []
    penalties: list[float] = []  # the image-reading penalty (unweighted), when it is on
    spreads: list[float] = []  # the spread of image reading over positions (unweighted)
    t0 = time.time()
    bar = tqdm(range(steps), desc=f"training demo model ({name})", disable=not progress, file=sys.stderr)
    for step in bar:
        batch = builder.next_batch(r.batch_size)
        if penalised:
            queries = head_sparsity.text_queries(
                batch["input_ids"], batch["attention_mask"], builder.image_token_id
            )
            # the lasso's cost may be linear for the first ``linear_until`` of the steps (it prunes
            # readers), then ``sparsity_shape`` (which lets the survivors read at full mass)
            shape = "linear" if fade and step < r.linear_until * steps else r.sparsity_shape
            penalty_fn = head_sparsity.ImagePenalty(
                batch["mm_token_type_ids"], queries, r.sparsity_norm, r.free_readers, shape
            )
            with head_sparsity.collecting(penalty_fn) as pen:
                task_loss = model(**batch).loss
            penalty, spread = pen.total(), pen.spread()
            penalties.append(float(penalty.detach()))
            spreads.append(float(spread.detach()))
            # the penalty's pull never fades while the task's does as its loss nears 0; too strong
            # a weight starves reading (run r15), so it can be switched off (linearly) before the end
            ramp = 1.0
            if fade and r.sparsity_until < 1.0:
                ramp = min(1.0, max(0.0, (steps * r.sparsity_until - step) / max(1.0, steps * 0.1)))
            loss = task_loss + r.image_sparsity * ramp * penalty + r.read_steadiness * ramp * spread
        else:
            loss = task_loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(task_loss.detach()))  # without the penalty
        if (step + 1) % log_every == 0 or step == steps - 1:
            recent = sum(losses[-log_every:]) / len(losses[-log_every:])
            bar.set_postfix(loss=f"{recent:.4f}")
            if log_file is not None:
                with open(log_file, "a") as f:
                    pen_text = (
                        f" image_penalty {sum(penalties[-log_every:]) / log_every:.4f}"
                        f" spread {sum(spreads[-log_every:]) / log_every:.4f}"
                        if penalties
                        else ""
                    )
                    f.write(
                        f"{name} step {step + 1} loss {recent:.5f}{pen_text} elapsed {time.time() - t0:.0f}s\n"
                    )
        if not math.isfinite(losses[-1]):
            raise RuntimeError(f"training diverged at {name} step {step}: loss {losses[-1]}")
    return losses


# The recipe fields that the comics stage depends on (a --stage1 checkpoint must have been trained
# with the same values); the scene stage's own fields are not among them.
SCENE_STAGE_FIELDS = ("scene_steps", "scene_lr", "scene_mix")


def load_stage1(path: Path, r: Recipe):
    """The comics-stage checkpoint at ``path`` (e.g. the shipped comics model), checked against the
    recipe: every comics-stage field its ``training_recipe.json`` records must equal ``r``'s."""
    from transformers import Qwen3VLForConditionalGeneration

    recorded = json.loads((Path(path) / "training_recipe.json").read_text())
    wanted = {k: v for k, v in asdict(r).items() if k not in SCENE_STAGE_FIELDS}
    wrong = {k: (recorded[k], v) for k, v in wanted.items() if k in recorded and recorded[k] != v}
    if wrong:
        raise ValueError(f"--stage1 {path} was trained with another comics recipe: {wrong}")
    model = Qwen3VLForConditionalGeneration.from_pretrained(path, attn_implementation="sdpa")
    return model, recorded


def grow_vocabulary(model, n_tokens: int, seed: int) -> None:
    """Give the (tied) embeddings rows for the scene words: the mean of the trained rows plus a
    little seeded noise (so that the new words start apart and near the trained ones)."""
    emb = model.get_input_embeddings().weight
    old = emb.shape[0]
    model.resize_token_embeddings(n_tokens, mean_resizing=False)
    emb = model.get_input_embeddings().weight
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        base = emb[:old].mean(0)
        scale = emb[:old].std(0)
        noise = torch.randn(n_tokens - old, emb.shape[1], generator=g)
        emb[old:] = base + 0.5 * scale * noise


def train(
    out: Path,
    recipe: Recipe | None = None,
    *,
    log_every: int = 50,
    progress: bool = True,
    log_file: Path | None = None,
    stage1: Path | None = None,
) -> list[float]:
    """Train with ``recipe`` (default: the shipped model's) and save to ``out``; returns the per-step
    task losses. The comics stage runs first (with the comics-only vocabulary, so it is the comics
    model of runs r30a/r31a bit for bit), then, with ``scene_steps``, the scene stage. ``stage1``: a
    checkpoint of the comics stage to start the scene stage from instead of training it again."""
    r = recipe or Recipe()
    torch.set_num_threads(r.threads)
    random.seed(r.seed)
    torch.manual_seed(r.seed)
    t0 = time.time()
    kw = dict(log_every=log_every, progress=progress, log_file=log_file)
    tokenizer = build_demo_tokenizer(scenes=False)
    if stage1 is not None:
        if not r.scene_steps:
            raise ValueError("--stage1 starts the scene stage: give --scene-steps")
        model, first = load_stage1(stage1, r)
        losses: list[float] = []
        recorded = {"stage1": str(stage1), "stage1_final_loss": first.get("final_loss")}
    else:
        config = build_config(tokenizer, r.text_overrides(), r.vision_overrides())
        model = build_model(config)
        recorded = {}
    model.train()
    penalised = bool(r.image_sparsity or r.read_steadiness)
    if penalised:
        head_sparsity.register()
        model.set_attn_implementation({"text_config": head_sparsity.ATTN_NAME})
    if stage1 is None:
        builder = BatchBuilder(tokenizer, seed=r.seed, mix=r.task_mix, panel_size=r.panel_size)
        losses = _run_stage(model, builder, r, r.steps, r.lr, name="comics", fade=True, **kw)
        recorded["comics_final_loss"] = sum(losses[-log_every:]) / len(losses[-log_every:])
    if r.scene_steps:
        tokenizer = build_demo_tokenizer(scenes=True)
        grow_vocabulary(model, len(tokenizer), r.seed)
        builder = BatchBuilder(
            tokenizer, seed=r.seed, mix=r.scene_mix, panel_size=r.panel_size, stream="scenes"
        )
        losses = _run_stage(model, builder, r, r.scene_steps, r.scene_lr, name="scenes", fade=False, **kw)
    recorded = {
        **asdict(r),
        "task_mix": dict(r.task_mix),
        **recorded,
        "wall_time_s": round(time.time() - t0, 1),
        "final_loss": sum(losses[-log_every:]) / len(losses[-log_every:]),
    }
    model.eval()
    if penalised:  # the checkpoint is a plain Qwen3-VL: the penalty existed only while training
        model.set_attn_implementation({"text_config": "sdpa"})
    save(model, tokenizer, Path(out), recorded, r.panel_size)
    return losses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output directory (never the shipped model's: copy a measured run over resources/demo_model)",
    )
    add_recipe_args(p)
    p.add_argument(
        "--stage1",
        type=Path,
        default=None,
        help="a checkpoint of the comics stage (e.g. the comics model) to run only the scene stage from",
    )
    p.add_argument("--log-file", type=Path, default=None)
    p.add_argument("--log-every", type=int, default=50)
    args = p.parse_args(argv)
    try:
        recipe = recipe_from_args(args)
    except ValueError as e:
        p.error(str(e))
    try:
        train(args.out, recipe, log_file=args.log_file, log_every=args.log_every, stage1=args.stage1)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
