"""Every family's image-token map against the ground truth measured on the model (geometry_truth.py).

For each family's tiny random model: on a portrait, a landscape, a square and a strip image, the
adapter's token boxes equal the boxes measured by pixel flips with the vision tower's attention
zeroed; panel regions (equal and 1:2:1 widths) give each token to the panel holding most of its
measured pixels and only to a panel it sees; a drawn box's region holds the tokens whose measured
centre is in the box. The harness itself is tested first: it restores the model, the isolation is
what makes flips local, and it catches a wrong map.

New families: add ``"family": ("test_module", "builder")`` to ``FAMILIES`` (the builder returns
``(model, adapter)``); the images and checks are shared. A non-default input policy of a family is
a row of ``POLICIES``: ``"family:policy"`` builds that family's model and sets the policy.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from geometry_truth import (
    GeometryOracle,
    flipped,
    isolated_vision_tokens,
    noise_image,
    vision_attention_modules,
)

from gaze_explorer.core.errors import RegionError
from gaze_explorer.core.regions import box_region, panel_edges, panel_regions

# family -> (test module, builder of (model, adapter)); one line per family
FAMILIES = {
    "qwen3_vl": ("test_geometry_truth", "tiny_qwen3_vl"),
    "qwen2_vl": ("test_family_qwen2_vl", "tiny_qwen2_vl"),
    "qwen2_5_vl": ("test_family_qwen2_vl", "tiny_qwen2_5_vl"),  # window attention in the tower
    "llava": ("test_family_llava", "tiny_llava"),
    "llava_next": ("test_family_llava", "tiny_llava_next"),  # squash (default); native in POLICIES
    "llava_onevision": ("test_family_llava", "tiny_llava_onevision"),
    "gemma3": ("test_family_gemma3", "tiny_gemma3"),
    "idefics3": ("test_family_idefics3", "tiny_idefics3"),
    "smolvlm": ("test_family_idefics3", "tiny_smolvlm"),
    "qwen3_5": ("test_family_qwen3_5", "tiny_qwen3_5"),
    "qwen3_5_moe": ("test_family_qwen3_5", "tiny_qwen3_5_moe"),  # Qwen3.5-MoE / Qwen3.6
    "qwen3_vl_moe": ("test_family_qwen3_5", "tiny_qwen3_vl_moe"),
    "gemma4": ("test_family_gemma4", "tiny_gemma4"),
    "paligemma": ("test_family_paligemma", "tiny_paligemma"),
    "aya_vision": ("test_family_aya_vision", "tiny_aya_vision"),  # native tiles + global tile
    "internvl": ("test_family_internvl", "tiny_internvl"),  # squash (default); native tiles in its own test
    "glm4v": ("test_family_glm4v", "tiny_glm"),
    "glm4v_moe": ("test_family_glm4v", "tiny_glm4v_moe"),  # GLM-4.5V: 4.1V's tower and processor
    "glm46v": ("test_family_glm4v", "tiny_glm46v"),  # its own class and Glm46VImageProcessorPil
    "mistral3": ("test_family_mistral3", "tiny_mistral3"),
    "pixtral": ("test_family_mistral3", "tiny_pixtral"),  # llava + Pixtral tower, no merge
    "ovis2": ("test_family_ovis2", "tiny_ovis2"),  # squash (default); native tiles in its own test
}
# the non-default input policies (LLaVA-1.5's three have their own tests in test_family_llava.py;
# InternVL's and Ovis2's native tiles in their files)
POLICIES = ["aya_vision:squash", "llava_next:native", "llava_onevision:squash"]

# OneVision shrinks a large feature grid with bilinear interpolation: a shrunk cell is computed
# from the two nearest features on each axis, not an equal share of the area, so its true
# dependency can differ from the claimed equal-share box by up to half a cell
LOOSE_FAMILIES = {"llava_onevision": 0.5}

IMAGES = {"portrait": (120, 300), "landscape": (300, 160), "square": (160, 160), "strip": (480, 80)}


def tiny_qwen3_vl():
    """The tiny Qwen3-VL geometry of resources/qwen3_vl_geometry.json, in memory."""
    from transformers import Qwen3VLForConditionalGeneration

    from gaze_explorer.inference.adapters.qwen3_vl import Qwen3VLAdapter
    from gaze_explorer.inference.random_init import (
        DEFAULT_WORDS,
        qwen3_vl_config,
        randomise_constant_matrices,
    )
    from gaze_explorer.inference.word_tokenizer import build_word_tokenizer

    tok = build_word_tokenizer(list(DEFAULT_WORDS))
    config = qwen3_vl_config("tiny", tok)
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.float32).eval()
    randomise_constant_matrices(model)
    # a small pixel budget (the published one upsamples a 160 px image to 65k pixels): 4..64 tokens
    processor = Qwen3VLAdapter.default_image_processor(config)
    processor.size = {"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 64}
    return model, Qwen3VLAdapter.from_parts(config, tok, processor)


def build(family: str):
    """``(model, adapter)`` of a ``FAMILIES`` key, or of ``"family:policy"`` with that input policy."""
    family, _, policy = family.partition(":")
    module, builder = FAMILIES[family]
    model, adapter = getattr(importlib.import_module(module), builder)()
    if policy:
        adapter.set_input_policy(policy)
        assert adapter.input_policy == policy
    return model, adapter


@pytest.fixture(scope="module")
def qwen2():
    return build("qwen2_vl")


# ----- the harness ----------------------------------------------------------------------------
def test_isolation_is_what_makes_a_flip_local_and_the_model_is_restored(qwen2):
    model, adapter = qwen2
    image = noise_image(112, 112)
    prepared = adapter.build_inputs(image, "describe the image .")
    with torch.no_grad():
        before = model(**adapter.prefill_kwargs(model, prepared)).logits
    oracle = GeometryOracle(model, adapter)
    grid = prepared.grid
    probe = tuple(grid.token_boxes[0])  # the top-left token's box
    local = oracle.tokens_reached_by(image, probe)
    assert local.tolist() == [0]
    # without the isolation, the flip reaches every token through the vision attention
    base = oracle.embeddings(image)
    with isolated_vision_tokens(model) as n_hooks:
        assert n_hooks == len(vision_attention_modules(model)) >= 1
    base_full, new_full = (
        _full_embeddings(model, adapter, image),
        _full_embeddings(model, adapter, flipped(image, [probe])),
    )
    assert np.all(np.abs(base_full - new_full).max(axis=1) > 1e-6)
    assert base[0].shape == (grid.n_tokens, model.config.text_config.hidden_size)
    with torch.no_grad():
        after = model(**adapter.prefill_kwargs(model, prepared)).logits
    assert torch.equal(before, after)  # every hook is gone


def _full_embeddings(model, adapter, image) -> np.ndarray:
    from geometry_truth import language_model

    prepared = adapter.build_inputs(image, "describe the image .")
    seen = []
    hook = language_model(model).register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw["inputs_embeds"][0].double().numpy()), with_kwargs=True
    )
    try:
        with torch.no_grad():
            model(**adapter.prefill_kwargs(model, prepared))
    finally:
        hook.remove()
    return seen[0][prepared.grid.positions]


def test_measurement_catches_a_mirrored_map(qwen2):
    """A map whose columns are mirrored (a plausible bug) fails the comparison; the true one passes."""
    model, adapter = qwen2
    image = noise_image(168, 84)
    oracle = GeometryOracle(model, adapter)
    good = oracle.measure_boxes(image)
    assert good.max_error_px <= good.tolerance_px, good.worst()

    class Mirrored(type(adapter)):
        def process_image(self, image):
            vision = super().process_image(image)
            boxes = vision.token_boxes.reshape(vision.rows, vision.cols, 4)[:, ::-1].reshape(-1, 4)
            vision.token_boxes = np.ascontiguousarray(boxes)
            return vision

    bad = GeometryOracle(model, Mirrored(adapter.config, adapter.tokenizer, adapter.image_processor))
    with pytest.raises(AssertionError):
        comparison = bad.measure_boxes(image)
        assert comparison.max_error_px <= comparison.tolerance_px


def min_embedding_distance(embeddings: np.ndarray) -> float:
    """The smallest distance between two image tokens' embeddings ``[n, d]``, relative to their scale:
    0 when two distinct patches give the same embedding (a degenerate random model)."""
    e = embeddings / max(float(np.abs(embeddings).max()), 1e-12)
    d = np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1)) + np.eye(len(e)) * 1e9
    return float(d.min())


def test_a_zero_initialised_projection_is_caught():
    """Gemma 3's projection as transformers initialises it (zeros): every image token gets the same
    embedding, which the distinctness check sees; the tiny model's randomised one passes."""
    model, adapter = build("gemma3")
    oracle = GeometryOracle(model, adapter)
    image = noise_image(96, 96)
    assert min_embedding_distance(oracle.embeddings(image)[0]) > 1e-3
    weight = model.model.multi_modal_projector.mm_input_projection_weight
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            weight.zero_()
        assert min_embedding_distance(oracle.embeddings(image)[0]) < 1e-9
    finally:
        with torch.no_grad():
            weight.copy_(saved)


# ----- every family -----------------------------------------------------------------------------
@pytest.mark.parametrize("family", [*sorted(FAMILIES), *POLICIES])
def test_family_token_boxes_and_regions_match_the_measured_geometry(family):
    model, adapter = build(family)
    oracle = GeometryOracle(model, adapter)
    for name, (width, height) in IMAGES.items():
        image = noise_image(width, height, seed=len(name))
        comparison = oracle.measure_boxes(image)
        sizes = np.concatenate(
            [
                comparison.claimed[:, 2] - comparison.claimed[:, 0],
                comparison.claimed[:, 3] - comparison.claimed[:, 1],
            ]
        )
        loose = LOOSE_FAMILIES.get(family.partition(":")[0], 0.0)
        tolerance = comparison.tolerance_px + loose * float(sizes.max())
        assert comparison.max_error_px <= tolerance, f"{family} {name}: {comparison.worst()}"
        assert min_embedding_distance(oracle.embeddings(image)[0]) > 1e-6, f"{family} {name}: degenerate"
        prepared = adapter.build_inputs(image, "describe the image .")
        grid = prepared.grid
        # every adapter reports its policy and how much of the image reaches the model (here: all)
        assert prepared.info["vision"]["input_policy"] == adapter.input_policy
        assert prepared.info["vision"]["coverage"] == 1.0, (family, name)
        for widths in ([1, 1, 1], [1, 2, 1]):
            if grid.cols < len(widths):
                continue
            check_panels_against_truth(
                oracle, image, grid, widths, comparison.measured, tolerance, label=f"{family} {name} {widths}"
            )
        check_box_against_truth(oracle, image, grid, comparison.measured, tolerance, label=f"{family} {name}")


def check_panels_against_truth(oracle, image, grid, widths, measured, tolerance, *, label="") -> None:
    """Each panel's tokens see that panel (a flip of the panel changes them), and each token is in the
    panel holding the largest share of its MEASURED box (up to the measurement's tolerance)."""
    regions = panel_regions(grid, len(widths), widths)
    edges = panel_edges(grid.image_width, len(widths), widths)
    reach = oracle.region_reach(
        image, [(edges[k], 0, edges[k + 1], grid.image_height) for k in range(len(widths))]
    )
    for k, region in enumerate(regions):
        blind = np.setdiff1d(region.token_indices, reach[k])
        assert blind.size == 0, f"{label}: panel {k + 1} holds tokens {blind.tolist()} that do not see it"
    owner = np.empty(grid.n_tokens, dtype=np.int64)
    for k, region in enumerate(regions):
        owner[region.token_indices] = k
    share = _panel_shares(measured, edges)  # [token, panel] share of the token's width
    width = measured[:, 2] - measured[:, 0]
    slack = 2.0 * tolerance / np.maximum(width, 1e-9)  # both edges may be off by the tolerance
    best = share.max(axis=1)
    mine = share[np.arange(grid.n_tokens), owner]
    sizes = np.array([r.token_indices.size for r in regions])
    for t in np.flatnonzero(mine + slack < best):
        # a token may go to a thinner share only to keep a panel from being empty
        assert sizes[owner[t]] == np.unique(grid.token_boxes[regions[owner[t]].token_indices, 0]).size and (
            mine[t] > 0
        ), (
            f"{label}: token {t} is in panel {owner[t] + 1} with share {mine[t]:.2f}, but {best[t]:.2f} elsewhere"
        )


def _panel_shares(boxes: np.ndarray, edges) -> np.ndarray:
    x0, x1 = boxes[:, 0:1], boxes[:, 2:3]
    lo, hi = np.asarray(edges[:-1])[None, :], np.asarray(edges[1:])[None, :]
    overlap = np.clip(np.minimum(x1, hi) - np.maximum(x0, lo), 0.0, None)
    return overlap / np.maximum(x1 - x0, 1e-9)


def check_box_against_truth(oracle, image, grid, measured, tolerance, *, label="") -> None:
    """A drawn box's region: its tokens see the box, and they are the tokens whose measured centre
    lies in it (tokens within the tolerance of the box's edge may go either way)."""
    w, h = grid.image_width, grid.image_height
    box = (0.3 * w, 0.25 * h, 0.75 * w, 0.8 * h)
    try:
        region = box_region(grid, box)
    except RegionError:  # a box smaller than one token (a 2-row strip): nothing to check
        return
    reach = oracle.region_reach(image, [box])[0]
    blind = np.setdiff1d(region.token_indices, reach)
    assert blind.size == 0, f"{label}: box tokens {blind.tolist()} do not see the box"
    cx, cy = (measured[:, 0] + measured[:, 2]) / 2, (measured[:, 1] + measured[:, 3]) / 2
    inside = (
        (cx >= box[0] + tolerance)
        & (cx < box[2] - tolerance)
        & (cy >= box[1] + tolerance)
        & (cy < box[3] - tolerance)
    )
    outside = (
        (cx < box[0] - tolerance)
        | (cx >= box[2] + tolerance)
        | (cy < box[1] - tolerance)
        | (cy >= box[3] + tolerance)
    )
    assert set(np.flatnonzero(inside)) <= set(region.token_indices), f"{label}: box misses tokens inside it"
    assert not set(np.flatnonzero(outside)) & set(region.token_indices), (
        f"{label}: box holds tokens outside it"
    )
