"""The demo model's training recipe: one frozen dataclass for the trainer, its flags and the card.

:class:`Recipe` holds every hyperparameter of a training run with its default (the shipped model's
recipe) and a one-line help. The trainer's flags are built from it (:func:`add_recipe_args`), the
checkpoint's ``training_recipe.json`` is written from it, and the model card's recipe table is
generated from it (``python -m gaze_explorer.demo.training.recipe`` prints the table; a test checks
that the card shows the current defaults and that the shipped checkpoint was trained with them).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, fields
from typing import Any

from gaze_explorer.demo.comics import PANEL_SIZE

# The architecture (see the model card for why each number is what it is). The recipe's ``layers``,
# ``heads``, ``kv_heads`` and ``vision_depth`` override the matching entries.
TEXT = dict(
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=6,
    num_attention_heads=16,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=512,
    rms_norm_eps=1e-6,
)
VISION = dict(
    depth=2,
    hidden_size=64,
    intermediate_size=256,
    num_heads=4,
    patch_size=16,
    spatial_merge_size=2,
    temporal_patch_size=2,
    out_hidden_size=128,
    num_position_embeddings=576,
    deepstack_visual_indexes=[1],
)
MROPE_SECTION = [2, 3, 3]  # (t, h, w) frequency pairs of head_dim 16

# Task weights; "vqa" is answered like "ambiguous" (about panel 1). An optional "follow" task (not in
# the default mix; runs r13/r14 of the model card) teaches the rest of a sentence to stay on the panel
# that its object colour named (data._follow_example).
DEFAULT_TASK_MIX = {"kth": 0.45, "narration": 0.25, "ambiguous": 0.20, "vqa": 0.10}
# The scene stage's mix (demo/scenes.py): the comic tasks go on beside the scene tasks, so that
# learning scenes does not cost the comic figures.
DEFAULT_SCENE_MIX = {
    "kth": 0.30,
    "narration": 0.20,
    "ambiguous": 0.15,
    "vqa": 0.05,
    "scene_region": 0.15,
    "scene_describe": 0.15,
}
# The lasso's per-head norm over positions and the shape of its cost (head_sparsity.head_costs,
# head_sparsity.shaped).
NORMS = ("l2", "max", "kv_max")
SHAPES = ("linear", "sqrt", "saturating")


def _param(default: Any, help: str, **meta: Any) -> Any:
    """A recipe field: its default, its flag's help, and optional ``choices`` / ``aliases``."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class Recipe:
    """The hyperparameters of one training run; the defaults are the shipped model's recipe."""

    steps: int = _param(1000, "optimiser steps (fresh strips every step, no epochs)")
    batch_size: int = _param(24, "strips per step")
    lr: float = _param(1e-3, "peak learning rate (AdamW, one-cycle schedule)")
    seed: int = _param(0, "seeds the initial weights and the training strips")
    threads: int = _param(1, "torch threads (1: reproducible, fast enough)")
    layers: int = _param(TEXT["num_hidden_layers"], "text decoder layers")
    heads: int = _param(TEXT["num_attention_heads"], "text attention (query) heads per layer")
    kv_heads: int = _param(TEXT["num_key_value_heads"], "text key/value heads per layer (GQA)")
    vision_depth: int = _param(VISION["depth"], "vision tower blocks")
    task_mix: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_TASK_MIX),
        metadata={
            "help": 'task weights as JSON, e.g. {"kth": 0.4, "narration": 0.3, ...}',
            "aliases": ("--mix",),
        },
    )
    # The training-only penalties (head_sparsity.py; model card, runs r15-r33). The lasso keeps image
    # reading in few heads: with the max norm a reading head may read at every token at no extra cost;
    # 0.03 (0.06 and 0.1 starved reading, r20).
    image_sparsity: float = _param(
        0.03, "weight of the group-lasso penalty that keeps image reading in few heads"
    )
    sparsity_until: float = _param(
        1.0, "fraction of the steps after which the penalties are off (they fade over the 10% before)"
    )
    sparsity_norm: str = _param("max", "the lasso's per-head norm over positions", choices=NORMS)
    # A head that reads the image reads it at every token, so a steering bias that makes it read at
    # every token keeps it in its training distribution (r19 vs r16).
    read_steadiness: float = _param(
        1.0, "weight of the penalty on the spread over text positions of each head's image mass"
    )
    # 4 free readers starved reading (r22).
    free_readers: int = _param(
        0, "heads that may read the image at no cost (a trimmed lasso; 0: every head pays)"
    )
    # "saturating" counts reading heads, so the lasso prunes readers without pulling the survivors'
    # mass down to ~0.8 as the linear cost does; with it the steered narration follows a switch
    # (Spearman 0.97 against 0.73, runs r29-r30).
    sparsity_shape: str = _param(
        "saturating",
        "how a head's cost grows with its reading (saturating: counts reading heads; sqrt: concave)",
        choices=SHAPES,
    )
    linear_until: float = _param(
        0.0, "fraction of the steps during which the lasso's cost is linear, before --sparsity-shape"
    )
    panel_size: int = _param(PANEL_SIZE, "px per panel of the training strips (32 px per LM token)")
    # The scene stage (model card, runs s1-s3): after the comics stage, the scene words join the
    # vocabulary and training goes on with comics and scenes mixed, with a fresh optimiser and
    # schedule, the same penalties, and its own stream of strips and scenes. A second stage and not a
    # mix from the start: the comics recipe is not robust to its stream (seeds 1 and 2 failed its
    # figures, r31-r32), and the first stage reproduces the comics model bit for bit.
    scene_steps: int = _param(400, "steps of the scene stage after the comics stage (0: no scene stage)")
    scene_lr: float = _param(5e-4, "peak learning rate of the scene stage (one-cycle schedule)")
    scene_mix: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_SCENE_MIX),
        metadata={
            "help": "task weights of the scene stage as JSON (scene_region, scene_describe, comic tasks)"
        },
    )

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "threads", "layers", "heads", "kv_heads", "vision_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        for name in ("sparsity_until", "linear_until"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a fraction of the steps (0 to 1), got {getattr(self, name)}")
        if self.sparsity_norm not in NORMS or self.sparsity_shape not in SHAPES:
            raise ValueError(f"sparsity_norm must be one of {NORMS} and sparsity_shape one of {SHAPES}")
        for name in ("task_mix", "scene_mix"):
            mix = getattr(self, name)
            if not mix or any(w < 0 for w in mix.values()):
                raise ValueError(f"{name} needs at least one task and no negative weight, got {mix}")
        if self.scene_steps < 0:
            raise ValueError(f"scene_steps must be 0 or more, got {self.scene_steps}")

    def text_overrides(self) -> dict[str, Any]:
        """The entries of :data:`TEXT` that the recipe sets."""
        return {
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
        }

    def vision_overrides(self) -> dict[str, Any]:
        """The entries of :data:`VISION` that the recipe sets (deepstack reads the 2nd block, or the
        only one)."""
        return {"depth": self.vision_depth, "deepstack_visual_indexes": [min(1, self.vision_depth - 1)]}


def flag(name: str) -> str:
    """The command-line flag of recipe field ``name``."""
    return "--" + name.replace("_", "-")


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    """One flag per recipe field, with its default and help (``dest`` is the field's name)."""
    defaults = Recipe()
    for f in fields(Recipe):
        default = getattr(defaults, f.name)
        shown = json.dumps(default) if isinstance(default, dict) else str(default)
        kw: dict[str, Any] = {"dest": f.name, "default": default}
        kw["help"] = f"{f.metadata['help']} (default: {shown})".replace("%", "%%")  # argparse formats it
        if isinstance(default, dict):
            kw["type"] = json.loads
        elif "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        else:
            kw["type"] = type(default)
        parser.add_argument(flag(f.name), *f.metadata.get("aliases", ()), **kw)


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The recipe that :func:`add_recipe_args`' flags describe (ValueError for a bad combination)."""
    return Recipe(**{f.name: getattr(args, f.name) for f in fields(Recipe)})


def recipe_table(recipe: Recipe | None = None) -> str:
    """The recipe as the model card's Markdown table (flag, value, what it does)."""
    recipe = recipe or Recipe()
    rows = ["| flag | default | what it sets |", "|---|---|---|"]
    for f in fields(Recipe):
        value = getattr(recipe, f.name)
        text = json.dumps(value) if isinstance(value, dict) else str(value)
        rows.append(f"| `{flag(f.name)}` | `{text}` | {f.metadata['help']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(recipe_table())
