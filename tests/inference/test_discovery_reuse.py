"""Discovery does the work its N questions share once (the image, the common prompt start), in
every family.

For each supported family (tiny random-initialised models, built offline) the shared forward must
give the same ``[layer, head, N, N]`` matrix as the plain batched forward, while the vision tower
sees the image's pixels once instead of N times and the shared prompt start runs as one row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import make_strip
from family_helpers import strip_image
from test_family_gemma3 import tiny_gemma3
from test_family_glm4v import tiny_glm
from test_family_idefics3 import tiny_idefics3
from test_family_internvl import tiny_internvl
from test_family_llava import tiny_llava, tiny_llava_next
from test_family_mistral3 import tiny_mistral3
from test_family_ovis2 import tiny_ovis2
from test_family_qwen2_vl import tiny_qwen2_vl

from gaze_explorer.inference.attention import ForwardRequest, attention_control
from gaze_explorer.inference.batch_sharing import _base_model, prefix_shared_rows, shared_image_kwargs
from gaze_explorer.inference.discovery import PAPER_PROMPT, panel_prompt, strip_matrix
from gaze_explorer.inference.loading import loaded_from_parts


@dataclass
class _Strip:
    image: object
    panel_widths: list
    name: str = "strip"


def _vision_module(model):
    base = _base_model(model)
    for name in ("visual", "vision_tower", "vision_model"):
        module = getattr(base, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise AssertionError(f"no vision module on {type(base).__name__}")


def _pixels_seen(loaded, strip, reuse: bool) -> tuple[np.ndarray, int, int]:
    """The strip's matrix, how many pixel rows (patches, tiles or images) the vision tower got, and
    how many token rows (batch x sequence) the language model's first layer processed."""
    seen: list[int] = []
    tokens: list[int] = []
    hooks = [
        _vision_module(loaded.model).register_forward_pre_hook(
            lambda _m, args, kwargs: seen.append(int((args[0] if args else kwargs["pixel_values"]).shape[0])),
            with_kwargs=True,
        ),
        _first_decoder_layer(loaded.model).register_forward_pre_hook(
            lambda _m, args, kwargs: tokens.append(
                _batch_tokens(args[0] if args else kwargs["hidden_states"])
            ),
            with_kwargs=True,
        ),
    ]
    try:
        matrix = strip_matrix(loaded, strip, share=reuse)
    finally:
        for hook in hooks:
            hook.remove()
    return matrix, sum(seen), sum(tokens)


def _batch_tokens(hidden: torch.Tensor) -> int:
    return int(hidden.shape[0] * hidden.shape[1])  # [batch, seq, hidden]


def _first_decoder_layer(model):
    for module in model.modules():
        layers = getattr(module, "layers", None)
        attn = getattr(layers[0], "self_attn", None) if isinstance(layers, torch.nn.ModuleList) else None
        if getattr(attn, "layer_idx", None) is not None:
            return layers[0]  # the language model's (vision blocks have no layer_idx)
    raise AssertionError("no decoder layer found")


FAMILIES = {
    "qwen2_vl": lambda: tiny_qwen2_vl(),
    "qwen2_5_vl": lambda: tiny_qwen2_vl("qwen2_5_vl"),
    "llava": lambda: tiny_llava(),
    "llava_next": lambda: tiny_llava_next(tile=56),  # squash (default): 8 columns for 6 panels
    "gemma3": lambda: tiny_gemma3(),
    "idefics3": lambda: tiny_idefics3(),
    "internvl": lambda: tiny_internvl(),
    "glm4v": lambda: tiny_glm("glm4v"),
    "mistral3": lambda: tiny_mistral3(),
    "ovis2": lambda: tiny_ovis2(),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_shared_encoding_equals_plain_forward_in_every_family(family):
    model, adapter = FAMILIES[family]()
    loaded = loaded_from_parts(model, adapter)
    strip = _Strip(strip_image(336, 56), [56] * 6)
    shared, shared_rows, _ = _pixels_seen(loaded, strip, reuse=True)
    plain, plain_rows, _ = _pixels_seen(loaded, strip, reuse=False)
    assert shared.shape == plain.shape == (loaded.n_layers, loaded.n_heads, 6, 6)
    np.testing.assert_allclose(shared, plain, atol=1e-5)
    assert plain_rows == 6 * shared_rows > 0  # the image went through the vision tower once, not 6 times
    # (these tiny word-level tokenizers read "1st" .. "6th" all as <unk>: the rows are identical, so
    # only the image is shared here; the prompt-start sharing is checked below on words they know)
    prompts = [f"what is in the {w} panel ?" for w in ("first", "second", "third")]
    prepared = loaded.prepare(strip.image, prompts)
    with torch.inference_mode():
        kwargs = adapter.prefill_kwargs(model, prepared)
        with attention_control(loaded) as ctl:
            shared_start = prefix_shared_rows(model, kwargs, 3, adapter.image_token_id, ctl)
            ctl.set_request(ForwardRequest(capture_rows="last"))
            model(**kwargs, use_cache=False)
            plain_start = ctl.take_rows()  # [layer, batch, head, 1, key]
    assert shared_start is not None and shared_start.shape == plain_start.shape
    torch.testing.assert_close(shared_start, plain_start, atol=1e-5, rtol=1e-4)


def test_shared_encoding_on_qwen3_vl_passes_deepstack_features(tiny_qwen):
    strip = _Strip(make_strip(seed=3), [64] * 6)
    shared, shared_rows, shared_tokens = _pixels_seen(tiny_qwen, strip, reuse=True)
    plain, plain_rows, plain_tokens = _pixels_seen(tiny_qwen, strip, reuse=False)
    np.testing.assert_allclose(shared, plain, atol=1e-5)
    assert plain_rows == 6 * shared_rows > 0
    assert shared_tokens < plain_tokens / 3
    prepared = tiny_qwen.prepare(strip.image, [panel_prompt(PAPER_PROMPT, k, 6) for k in (1, 2)])
    kwargs = tiny_qwen.adapter.prefill_kwargs(tiny_qwen.model, prepared)
    with torch.inference_mode():
        out = shared_image_kwargs(tiny_qwen.model, kwargs, 2)
    assert out is not None and "pixel_values" not in out
    encoded = out["mm_encoder_outputs"]["image"]
    assert len(encoded.pooler_output) == 2  # one entry per batch row
    assert all(len(layer) == 2 for layer in encoded.deepstack_features)


def test_rows_with_different_images_fall_back_to_the_plain_forward(tiny_qwen):
    prepared = tiny_qwen.prepare(make_strip(seed=4), [panel_prompt(PAPER_PROMPT, k, 6) for k in (1, 2)])
    kwargs = tiny_qwen.adapter.prefill_kwargs(tiny_qwen.model, prepared)
    with torch.inference_mode():
        assert shared_image_kwargs(tiny_qwen.model, kwargs, 2) is not None
        assert shared_image_kwargs(tiny_qwen.model, kwargs, 1) is None  # nothing to share
        changed = dict(kwargs)
        pixels = kwargs["pixel_values"].clone()
        pixels[-1] += 1.0  # the second row's image differs
        changed["pixel_values"] = pixels
        assert shared_image_kwargs(tiny_qwen.model, changed, 2) is None
        uneven = dict(kwargs, pixel_values=kwargs["pixel_values"][:-1])  # rows cannot split evenly
        assert shared_image_kwargs(tiny_qwen.model, uneven, 2) is None


def test_prefix_sharing_declines_padded_rows_and_rows_that_differ_in_the_image(tiny_qwen):
    # "1st" .. "6th" keep the rows the same length; a longer last question pads the others
    prompts = [panel_prompt(PAPER_PROMPT, 1, 6), panel_prompt(PAPER_PROMPT, 2, 6) + " Answer in one word."]
    prepared = tiny_qwen.prepare(make_strip(seed=5), prompts)
    kwargs = tiny_qwen.adapter.prefill_kwargs(tiny_qwen.model, prepared)
    image_id = tiny_qwen.adapter.image_token_id
    with torch.inference_mode(), attention_control(tiny_qwen) as ctl:
        assert prefix_shared_rows(tiny_qwen.model, kwargs, 2, image_id, ctl) is None  # padded
        same = tiny_qwen.prepare(make_strip(seed=5), [prompts[0], panel_prompt(PAPER_PROMPT, 2, 6)])
        same_kwargs = tiny_qwen.adapter.prefill_kwargs(tiny_qwen.model, same)
        rows = prefix_shared_rows(tiny_qwen.model, same_kwargs, 2, image_id, ctl)
        assert rows is not None and rows.shape[:2] == (tiny_qwen.n_layers, 2)
        assert rows.shape[-1] == same.prompt_len  # every key, the shared start's included
        torch.testing.assert_close(rows.sum(-1), torch.ones_like(rows.sum(-1)), atol=1e-5, rtol=0)
        # rows differing inside the image span cannot share the start
        ids = same_kwargs["input_ids"].clone()
        first_image = int(torch.nonzero(ids[0] == image_id)[0])
        ids[1, first_image - 1] = ids[1, first_image - 1] + 1
        assert prefix_shared_rows(tiny_qwen.model, dict(same_kwargs, input_ids=ids), 2, image_id, ctl) is None
