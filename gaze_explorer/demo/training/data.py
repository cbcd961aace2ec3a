"""Training batches for the demo model, built exactly like the inference adapter builds inputs.

A prompt is chat-templated with the tokenizer's own template (one ``<|image_pad|>`` marker), the
marker is expanded to one pad per merged image token, and the answer plus ``<|im_end|>`` follows.
Pixels come from ``Qwen2VLImageProcessorPil`` with the demo model's saved preprocessing. Only the
answer tokens carry a loss. Rows are right-padded (causal attention never sees the padding, so the
real tokens' logits and positions equal those of an unpadded row).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from gaze_explorer.demo import prompts
from gaze_explorer.demo.comics import N_PANELS, PANEL_SIZE, make_comic
from gaze_explorer.demo.scenes import make_scene
from gaze_explorer.demo.training.recipe import DEFAULT_TASK_MIX

IGNORE = -100

# Preprocessing saved with the model: CLIP-free 0.5 normalisation, no resize of a strip of six
# ``panel_size`` panels, and a pixel cap (10% above that strip's area) that brings the paper's
# 256-px strips (1536x256) down to the same grid (the processor rounds to 32 px).
PREPROCESSOR_KW = dict(
    patch_size=16,
    temporal_patch_size=2,
    merge_size=2,
    image_mean=[0.5, 0.5, 0.5],
    image_std=[0.5, 0.5, 0.5],
)


def max_pixels(panel_size: int = PANEL_SIZE, n_panels: int = N_PANELS) -> int:
    """The processor's pixel cap for strips of ``n_panels`` panels of ``panel_size`` px."""
    return round(1.1 * n_panels * panel_size * panel_size)


def make_image_processor(panel_size: int = PANEL_SIZE):
    """The demo model's image processor (for strips of ``panel_size``-px panels)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        **PREPROCESSOR_KW, size={"shortest_edge": 4096, "longest_edge": max_pixels(panel_size)}
    )


def format_prompt(tokenizer, prompt: str) -> str:
    """The chat-templated user turn (image first), as the adapter formats it."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@dataclass
class Example:
    """One training example before batching."""

    prompt: str
    answer: str
    task: str
    no_loss: tuple[int, ...] = ()  # answer token positions that carry no loss (word-level tokens)


def pick_task(rng: random.Random, mix: dict[str, float]) -> str:
    """One task drawn from the weighted ``mix``."""
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def sample_example(
    specs_attrs: list[dict], rng: random.Random, mix: dict[str, float], task: str | None = None
) -> Example:
    """Pick a task for one strip (unless ``task`` is given) and return its prompt and target answer."""
    task = task or pick_task(rng, mix)
    if task == "kth":
        k = rng.randrange(len(specs_attrs))
        prompt = prompts.kth_prompt(k, words=rng.random() < 0.5)
        return Example(prompt, prompts.kth_answer(specs_attrs[k]), task)
    if task == "narration":
        return Example(prompts.NARRATION_PROMPT, prompts.narration_answer(specs_attrs), task)
    if task == "follow":
        return _follow_example(specs_attrs, rng)
    prompt = prompts.AMBIGUOUS_PROMPT if task == "ambiguous" else prompts.VQA_PROMPT
    return Example(prompt, prompts.describe_answer(specs_attrs[0]), task)


def _follow_example(specs_attrs: list[dict], rng: random.Random) -> Example:
    """A one-panel answer or a narration in which one sentence names another panel's object colour.

    That colour token carries no loss (the model is not taught to say it), but the words after it
    are that panel's: the background is read from the panel the sentence has named, not from the
    panel the question or the sentence count points at. It is what a gaze-steered answer needs
    after the steered heads have named the target's object colour; in narration the sentences after
    the detour go on in order.
    """
    n = len(specs_attrs)
    if rng.random() < 0.5:
        j = rng.randrange(1, n)
        prompt = prompts.AMBIGUOUS_PROMPT if rng.random() < 0.7 else prompts.VQA_PROMPT
        return Example(prompt, prompts.describe_answer(specs_attrs[j]), "follow", no_loss=(0, 1))
    i = rng.randrange(n)
    j = rng.choice([m for m in range(n) if m != i])
    panels = list(specs_attrs)
    panels[i] = specs_attrs[j]
    start = i * prompts.SENTENCE_TOKENS  # "first"/"then" at start, the object colour at start + 1
    return Example(
        prompts.NARRATION_PROMPT, prompts.narration_answer(panels), "follow", no_loss=tuple(range(start + 2))
    )


def scene_example(colours: list[str], task: str) -> Example:
    """A scene task's prompt and answer (``colours``: the objects in reading order): the region
    question about the first object, or the description of all of them."""
    if task == "scene_region":
        return Example(prompts.SCENE_REGION_PROMPT, prompts.object_answer(colours[0]), task)
    if task == "scene_describe":
        return Example(prompts.SCENE_DESCRIBE_PROMPT, prompts.scene_description(colours), task)
    raise ValueError(f"not a scene task: {task!r}")


class BatchBuilder:
    """Builds seeded training batches of synthetic strips (images, ids, labels)."""

    def __init__(
        self,
        tokenizer,
        seed: int = 0,
        mix: dict[str, float] | None = None,
        big_fraction: float = 0.5,
        panel_size: int = PANEL_SIZE,
        stream: str = "",
    ):
        self.tokenizer = tokenizer
        self.panel_size = panel_size  # px of a panel in the strips the model sees
        self.processor = make_image_processor(panel_size)
        self.seed = seed
        self.mix = dict(mix or DEFAULT_TASK_MIX)
        self.big_fraction = big_fraction  # share of strips composed at the paper's 256 px, then resized
        self.image_token_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        self.eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.pad_id = tokenizer.pad_token_id
        self._prompt_cache: dict[str, list[int]] = {}
        self._answer_cache: dict[str, list[int]] = {}
        self._counter = 0
        # a named stream (the scene stage) draws other images and tasks than the unnamed first stage
        self.split = f"train-{stream}" if stream else "train"
        self._task_key = f"demo-train-task/{stream}/" if stream else "demo-train-task/"

    def prompt_ids(self, prompt: str, n_image_tokens: int) -> list[int]:
        """Token ids of the templated prompt with the image marker expanded (adapter-identical)."""
        if prompt not in self._prompt_cache:
            text = format_prompt(self.tokenizer, prompt)
            self._prompt_cache[prompt] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        out: list[int] = []
        for t in self._prompt_cache[prompt]:
            out.extend([t] * n_image_tokens if t == self.image_token_id else [t])
        return out

    def answer_ids(self, answer: str) -> list[int]:
        if answer not in self._answer_cache:
            self._answer_cache[answer] = [
                *self.tokenizer(answer, add_special_tokens=False)["input_ids"],
                self.eos_id,
            ]
        return self._answer_cache[answer]

    def next_batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        """The next batch of the seeded stream: forward kwargs plus ``labels``."""
        images, examples = [], []
        for _ in range(batch_size):
            i = self._counter
            self._counter += 1
            rng = random.Random(f"{self._task_key}{self.seed}/{i}")
            big = rng.random() < self.big_fraction
            # the task is drawn before the image (from the same stream as before scenes existed, so
            # a comics-only mix gives the same batches as it did then)
            task = pick_task(rng, self.mix)
            if task in prompts.SCENE_TASKS:  # big scenes are drawn at twice the size, then resized
                scene = make_scene(
                    self.split, self.seed, i, slot=2 * self.panel_size if big else self.panel_size
                )
                images.append(scene.image)
                examples.append(scene_example([o.colour for o in scene.objects], task))
                continue
            comic = make_comic(self.split, self.seed, i, panel_size=256 if big else self.panel_size)
            strip = comic.compose(height=256 if big else self.panel_size, gap=6)
            images.append(strip.image)
            examples.append(sample_example([s.attributes for s in comic.specs], rng, self.mix, task))
        return self.collate(images, examples)

    def collate(self, images, examples: list[Example]) -> dict[str, torch.Tensor]:
        """Process images and right-pad ids/labels into one batch."""
        vis = self.processor(images=images, return_tensors="pt")
        grid = vis["image_grid_thw"]  # [batch, 3] (t, h, w) in patches
        n_tokens = [int(g.prod()) // 4 for g in grid]
        rows, labels = [], []
        for ex, n in zip(examples, n_tokens, strict=True):
            p, a = self.prompt_ids(ex.prompt, n), self.answer_ids(ex.answer)
            rows.append(p + a)
            labels.append([IGNORE] * len(p) + [IGNORE if k in ex.no_loss else t for k, t in enumerate(a)])
        length = max(len(r) for r in rows)
        b = len(rows)
        input_ids = torch.full((b, length), self.pad_id, dtype=torch.long)
        label_t = torch.full((b, length), IGNORE, dtype=torch.long)
        mask = torch.zeros((b, length), dtype=torch.long)
        for j, (r, lab) in enumerate(zip(rows, labels, strict=True)):
            input_ids[j, : len(r)] = torch.tensor(r)
            label_t[j, : len(lab)] = torch.tensor(lab)
            mask[j, : len(r)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": mask,
            "pixel_values": vis["pixel_values"],
            "image_grid_thw": grid,
            "mm_token_type_ids": (input_ids == self.image_token_id).to(torch.int32),
            "labels": label_t,
        }
