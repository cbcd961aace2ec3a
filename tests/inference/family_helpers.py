"""Shared pieces of the per-family adapter tests: a tiny offline word-level tokenizer with a
family's special tokens, a 6-panel test strip, and the checks every family runs (grid covers the
image, panels partition the image tokens, logits under the registered function match SDPA).

Nothing here is downloaded: tokenizers are built from a word list, models from tiny configs.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from gaze_explorer.core.regions import ImageTokenGrid, panel_regions

WORDS = [
    "describe",
    "the",
    "panel",
    "panels",
    "image",
    "what",
    "is",
    "in",
    "a",
    "an",
    "of",
    "and",
    "to",
    "cat",
    "dog",
    "red",
    "blue",
    "green",
    "sun",
    "moon",
    "tree",
    "house",
    "car",
    "bird",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "user",
    "assistant",
    "model",
    "system",
    "story",
    "comic",
    "strip",
    "User",
    "Assistant",
    ".",
    ",",
    ":",
    "?",
    "!",
]


def word_tokenizer(
    special_tokens: list[str],
    *,
    pad: str,
    eos: str,
    chat_template: str,
    bos: str | None = None,
    extra_words: list[str] | None = None,
    **named: str,
) -> PreTrainedTokenizerFast:
    """A WordLevel tokenizer over a small English vocabulary plus a family's special tokens.

    Specials are added tokens (matched before word splitting), so chat-template markers and image
    placeholders each become exactly one id, as in the real tokenizers; a newline is a token.
    ``named`` sets extra special-token attributes (e.g. ``image_token="<image>"``).
    """
    specials = list(dict.fromkeys([pad, eos, *([bos] if bos else []), *special_tokens, *named.values()]))
    words = ["<unk>", *specials, "\n", *WORDS, *(extra_words or [])]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"),
            pre_tokenizers.Split(Regex(r"[ \t\r\f\v]+"), behavior="removed"),
            pre_tokenizers.Punctuation(behavior="isolated"),
        ]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=pad,
        eos_token=eos,
        bos_token=bos,
        unk_token="<unk>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
        extra_special_tokens=dict(named),
    )
    fast.chat_template = chat_template
    return fast


# two prompts of different lengths: the first row of a batch of both is left padded
PROMPTS = ["describe the panel .", "what is in the sixth panel ?"]


def padded_batch(adapter, width: int, height: int):
    """The adapter's inputs for both ``PROMPTS`` on one ``width`` x ``height`` strip (left padded)."""
    return adapter.build_inputs(strip_image(width, height), PROMPTS)


def tiny_text_config(tok, **overrides) -> dict:
    """The tiny language model most families use: 2 layers, 4 query heads, 2 KV heads, hidden 32,
    MLP 64, 1024 positions; vocabulary, padding and end ids from ``tok``; ``overrides`` win."""
    base = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    base.update(num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    base.update(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return base | overrides


def tiny_vision_config(**overrides) -> dict:
    """The tiny vision tower most families use: 1 layer, 2 heads, hidden 32, MLP 64; ``overrides`` win."""
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2) | overrides


def small_qwen_processor(adapter_cls):
    """Qwen-style merged-patch preprocessing (14 px patches, 2x2 merge) with a small pixel budget that
    keeps the tiny model fast: a 336 x 56 strip stays 12 x 2 merged tokens."""
    return adapter_cls.image_processor_class()(
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
        size={"shortest_edge": 28 * 28, "longest_edge": 28 * 28 * 64},
    )


@contextmanager
def input_policy(adapter, policy: str):
    """``adapter`` under input ``policy`` inside the block; its previous policy after it."""
    previous = adapter.input_policy
    adapter.set_input_policy(policy)
    try:
        yield adapter
    finally:
        adapter.set_input_policy(previous)


def strip_image(width: int, height: int, n_panels: int = 6, seed: int = 0) -> Image.Image:
    """A synthetic comic strip: ``n_panels`` side-by-side panels of distinct colours."""
    rng = np.random.default_rng(seed)
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    edges = np.linspace(0, width, n_panels + 1).round().astype(int)
    for k in range(n_panels):
        arr[:, edges[k] : edges[k + 1]] = rng.integers(30, 226, size=3)
        arr[:, edges[k] : edges[k] + 2] = 255  # gutter
    arr += rng.integers(0, 20, size=arr.shape, dtype=np.uint8)
    return Image.fromarray(arr)


def assert_grid_covers_image(grid: ImageTokenGrid, width: int, height: int, *, margin: float = 0.0) -> None:
    """Token boxes lie inside the image, do not overlap, and tile its whole area.

    ``margin`` > 0 allows the tiled rectangle to stop short of each image edge by less than
    ``margin`` cells (LLaVA-NeXT's feature-space unpadding can drop a partly-filled edge column).
    """
    assert (grid.image_width, grid.image_height) == (width, height)
    b = grid.token_boxes
    if margin > 0:
        x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
        cell_w, cell_h = (x1 - x0) / grid.cols, (y1 - y0) / grid.rows
        assert x0 < margin * cell_w and width - x1 < margin * cell_w
        assert y0 < margin * cell_h and height - y1 < margin * cell_h
        covered = (x1 - x0) * (y1 - y0)
    else:
        covered = float(width * height)
    assert np.all(b[:, 0] >= -1e-6) and np.all(b[:, 1] >= -1e-6)
    assert np.all(b[:, 2] <= width + 1e-6) and np.all(b[:, 3] <= height + 1e-6)
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1]), "every grid token must cover some pixels"
    area = float(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).sum())
    assert abs(area - covered) <= 1e-6 * width * height, f"boxes cover {area} px of {covered}"
    # row-major: x grows along a row, y grows down the rows
    cx = grid.centres[:, 0].reshape(grid.rows, grid.cols)
    cy = grid.centres[:, 1].reshape(grid.rows, grid.cols)
    assert np.all(np.diff(cx, axis=1) > 0) and np.all(np.diff(cy, axis=0) > 0)


def assert_panels_partition(grid: ImageTokenGrid, n_panels: int = 6) -> None:
    """The panels' token sets are disjoint, non-empty and together hold every image token."""
    regions = panel_regions(grid, n_panels)
    seen = np.concatenate([r.token_indices for r in regions])
    assert all(r.token_indices.size > 0 for r in regions)
    assert np.array_equal(np.sort(seen), np.arange(grid.n_tokens))
    # each panel's box is left of the next one's
    assert all(regions[k].box[2] <= regions[k + 1].box[0] + 1e-6 for k in range(n_panels - 1))


def assert_positions_hold_image_tokens(
    grid: ImageTokenGrid, input_ids: torch.Tensor, image_token_id: int
) -> None:
    """Every grid position carries the image placeholder id, and no position repeats."""
    ids = input_ids.reshape(-1)
    assert np.unique(grid.positions).size == grid.n_tokens
    assert torch.all(ids[torch.as_tensor(grid.positions)] == image_token_id)


def check_parity_and_steering(
    model, adapter, prepared, *, target: int = 2, head: tuple[int, int] = (1, 1)
) -> None:
    """Both checks below, in order."""
    check_parity(model, adapter, prepared)
    check_decode_steering(model, adapter, prepared, target=target, head=head)


def check_parity(model, adapter, prepared) -> None:
    """Prefill logits under ``attention_control`` (no steering, no capture) equal stock SDPA logits
    (max abs diff <= 1e-5 in fp32) on every real position; the vision tower keeps its attention."""
    from gaze_explorer.inference.attention import ForwardRequest, attention_control

    stock = adapter.stock_attention(model.config)  # SDPA, or eager for a soft-capped LM
    assert model.config.get_text_config()._attn_implementation == stock
    vision_impl = _vision_impl(model)
    with torch.no_grad():
        reference = model(**adapter.prefill_kwargs(model, prepared)).logits.float()  # [batch, T, vocab]
        with attention_control(model, text_config_key=adapter.text_config_key) as control:
            assert _vision_impl(model) == vision_impl  # only the language model is switched
            assert model.config.get_text_config()._attn_implementation == "gaze_explorer"
            control.set_request(ForwardRequest())
            logits = model(**adapter.prefill_kwargs(model, prepared)).logits.float()
            assert control.calls >= len(adapter.attention_layers)
    assert model.config.get_text_config()._attn_implementation == stock
    valid = prepared.tensors["attention_mask"].bool()  # [batch, T]
    diff = (logits - reference).abs()[valid].max().item()
    assert diff <= 1e-5, f"logits differ from SDPA by {diff:g}"


def check_decode_steering(
    model, adapter, prepared, *, target: int = 2, head: tuple[int, int] = (1, 1)
) -> None:
    """Prefill (last row captured), then one decode step with ``head`` steered (boost_suppress,
    strength 1e4) to panel ``target``: every captured row sums to 1 over the real keys (0 on left
    padding), and the steered head puts >= 0.99 of its image attention on the target panel."""
    from transformers import DynamicCache

    from gaze_explorer.core.heads import HeadSet
    from gaze_explorer.inference.attention import ForwardRequest, attention_control

    with (
        torch.no_grad(),
        attention_control(
            model, plan_heads=HeadSet("steered", (head,)), text_config_key=adapter.text_config_key
        ) as control,
    ):
        cache = DynamicCache(config=model.config.get_text_config())
        control.set_request(ForwardRequest(capture_rows="last"))
        out = model(**adapter.prefill_kwargs(model, prepared), cache=cache, use_cache=True)
        prefill_rows = control.take_rows()  # [layer, batch, head, 1, T]
        assert prefill_rows is not None and prefill_rows.shape[:3] == (
            adapter.n_layers,
            prepared.batch_size,
            adapter.n_heads,
        )
        _assert_rows_are_distributions(prefill_rows[:, :, :, 0], prepared.tensors["attention_mask"], adapter)

        batch, t = prepared.tensors["input_ids"].shape
        next_ids = out.logits[:, -1].argmax(-1, keepdim=True)  # [batch, 1]
        mask = torch.cat([prepared.tensors["attention_mask"], torch.ones(batch, 1, dtype=torch.long)], dim=1)
        bias = torch.zeros(batch, t + 1)  # [batch, keys]
        for b, grid in enumerate(prepared.grids):
            panel = panel_regions(grid, 6)[target].positions(grid)
            bias[b, torch.as_tensor(grid.positions)] = -1e4
            bias[b, torch.as_tensor(panel)] = 1e4
        control.set_request(ForwardRequest(capture_rows="last", bias=bias))
        step = adapter.decode_kwargs(model, prepared, next_ids, mask, t)
        model(**step, cache=cache, use_cache=True)
        rows = control.take_rows()[:, :, :, 0]  # [layer, batch, head, T+1]
    _assert_rows_are_distributions(rows, mask, adapter)
    layer, h = head
    for b, grid in enumerate(prepared.grids):
        row = rows[layer, b, h].double().numpy()
        panel = panel_regions(grid, 6)[target].positions(grid)
        image_mass = row[grid.positions].sum()
        assert row[panel].sum() / image_mass >= 0.99
        assert row[panel].sum() >= 0.99  # boost_suppress: the target outweighs the text too
        unsteered = rows[layer, b, (h + 1) % adapter.n_heads].double().numpy()
        assert unsteered[panel].sum() < 0.9


def _assert_rows_are_distributions(rows: torch.Tensor, attention_mask: torch.Tensor, adapter) -> None:
    """``rows [layer, batch, head, key]`` sum to 1 over real keys and are 0 on padding keys in the
    softmax-attention layers, and are NaN in linear-attention layers (true layer indices)."""
    keys = attention_mask.shape[1]
    attention = list(adapter.attention_layers)
    linear = [x for x in range(rows.shape[0]) if x not in attention]
    assert torch.isnan(rows[linear]).all()
    rows = rows[attention]
    assert rows.shape[-1] == keys
    real = attention_mask.bool()[None, :, None, :].expand_as(rows)  # [layer, batch, head, key]
    assert torch.allclose(rows.double().sum(-1), torch.ones(rows.shape[:-1], dtype=torch.float64), atol=1e-4)
    padding = rows[~real]
    assert padding.numel() == 0 or padding.abs().max().item() <= 1e-6


def _vision_impl(model) -> str | None:
    vision = getattr(model.config, "vision_config", None)
    return None if vision is None else vision._attn_implementation


def check_generate_stream(model, adapter, image, *, target: int = 4, head: tuple[int, int] = (1, 0)) -> None:
    """The project's generation loop runs on this family: 4 greedy tokens steered to panel
    ``target`` (boost_suppress on one head, decode-only), a captured row per step whose steered
    head puts >= 0.99 of its image attention on the target panel from step 1 on."""
    from gaze_explorer.core.heads import HeadSet
    from gaze_explorer.core.options import CaptureSpec, GenerationOptions
    from gaze_explorer.core.steering import SteeringPlan
    from gaze_explorer.inference.generation import FinishedEvent, PrefillEvent, TokenEvent, generate_stream
    from gaze_explorer.inference.loading import loaded_from_parts

    loaded = loaded_from_parts(model, adapter)
    grid = adapter.build_inputs(image, "describe the fifth panel .").grid
    regions = panel_regions(grid, 6)
    events = list(
        generate_stream(
            loaded,
            image,
            "describe the fifth panel .",
            regions=regions,
            plan=SteeringPlan(HeadSet("one", (head,))),
            target=target,
            options=GenerationOptions(max_new_tokens=4),
            capture=CaptureSpec(decode=True, prefill="none"),
        )
    )
    assert isinstance(events[0], PrefillEvent) and isinstance(events[-1], FinishedEvent)
    assert events[-1].status == "finished", events[-1].reason
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert tokens and [e.step for e in tokens] == list(range(len(tokens)))
    prompt_len = events[0].prompt_len
    panel = regions[target].positions(grid)
    for e in tokens:
        assert e.rows.shape == (adapter.n_layers, adapter.n_heads, prompt_len + e.step)
        assert np.allclose(e.rows[list(adapter.attention_layers)].sum(-1), 1.0, atol=1e-4)
        row = e.rows[head].astype(np.float64)
        if e.step >= 1:  # step 0 comes from the unsteered prefill (decode-only steering)
            assert row[panel].sum() / row[grid.positions].sum() >= 0.99


def save_checkpoint(model, adapter, path, *, legacy_template: bool = False):
    """The tiny model as a checkpoint directory ``path`` that ``load_model(path)`` and the CLI's
    ``--model PATH`` load: safetensors, tokenizer, preprocessor. ``legacy_template``: the chat
    template in a processor-style ``chat_template.json`` instead of the tokenizer (older llava-hf /
    SmolVLM snapshots). Returns ``path``."""
    import copy
    import json

    model.save_pretrained(path)
    tokenizer = adapter.tokenizer
    if legacy_template:
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.chat_template = None
        (path / "chat_template.json").write_text(
            json.dumps({"chat_template": adapter.tokenizer.chat_template})
        )
    tokenizer.save_pretrained(path)
    adapter.image_processor.save_pretrained(path)
    return path


def check_checkpoint_round_trip(model, adapter, tmp_path, image, *, legacy_template: bool = False) -> None:
    """Save the tiny model as a checkpoint directory (safetensors, tokenizer, preprocessor) and
    load it with ``load_model``: same family, same inputs, same logits.

    ``legacy_template``: save the tokenizer WITHOUT its chat template and put the template in a
    processor-style ``chat_template.json`` instead (older llava-hf / SmolVLM snapshots).
    """
    from gaze_explorer.inference.loading import load_model

    save_checkpoint(model, adapter, tmp_path, legacy_template=legacy_template)
    loaded = load_model(tmp_path, device="cpu", dtype="float32")
    assert type(loaded.adapter) is type(adapter) and loaded.family == adapter.family
    ours = adapter.build_inputs(image, "describe the third panel .")
    theirs = loaded.prepare(image, "describe the third panel .")
    assert set(ours.tensors) == set(theirs.tensors)
    for key, value in ours.tensors.items():
        assert torch.equal(value, theirs.tensors[key]), key
    assert np.array_equal(ours.grid.positions, theirs.grid.positions)
    assert np.allclose(ours.grid.token_boxes, theirs.grid.token_boxes)
    assert loaded.adapter.eos_token_ids == adapter.eos_token_ids
    with torch.no_grad():
        a = model(**adapter.prefill_kwargs(model, ours)).logits
        b = loaded.model(**loaded.adapter.prefill_kwargs(loaded.model, theirs)).logits
    assert torch.allclose(a, b, atol=1e-6)


def check_greedy_matches_generate(model, adapter, image, *, n_tokens: int = 6, atol: float = 1e-4) -> None:
    """The project's greedy loop (``generate_stream``, nothing steered or captured) gives the same
    tokens as transformers' ``model.generate`` on the adapter's inputs (end-of-sequence ignored by
    both, so all ``n_tokens`` are compared), and the same LOGITS at every step (fp32, within
    ``atol``): prefill inputs, decode positions and cache agree. Tokens alone cannot see a wrong
    decode position on a tiny random model (its argmax hardly depends on it); the logits do."""
    from gaze_explorer.core.options import CaptureSpec, GenerationOptions
    from gaze_explorer.inference.generation import TokenEvent, generate_stream
    from gaze_explorer.inference.loading import loaded_from_parts

    prompt = "describe the fifth panel ."
    loaded = loaded_from_parts(model, adapter)
    regions = panel_regions(adapter.build_inputs(image, prompt).grid, 6)
    # each forward of our loop (the prefill, then one per decode step): the next-token logits
    step_logits: list[torch.Tensor] = []
    hook = model.register_forward_hook(
        lambda _m, _a, out: step_logits.append(out.logits[0, -1].float().clone())
    )
    try:
        events = generate_stream(
            loaded,
            image,
            prompt,
            regions=regions,
            capture=CaptureSpec(decode=False, prefill="none"),
            options=GenerationOptions(max_new_tokens=n_tokens, ignore_eos=True),
        )
        ours = [e.token_id for e in events if isinstance(e, TokenEvent)]
    finally:
        hook.remove()
    prepared = adapter.build_inputs(image, prompt)
    with torch.inference_mode():
        ref = model.generate(
            **prepared.tensors,
            max_new_tokens=n_tokens,
            min_new_tokens=n_tokens,
            do_sample=False,
            pad_token_id=adapter.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
    assert len(ours) == n_tokens and len(step_logits) == n_tokens
    theirs = ref.sequences[0, prepared.prompt_len :].tolist()
    # generate's min_new_tokens masks end-of-sequence, while our loop (ignore_eos) may choose it: the
    # tokens agree up to our first end-of-sequence, after which the two legitimately differ
    first_eos = next((i for i, t in enumerate(ours) if t in adapter.eos_token_ids), n_tokens)
    assert first_eos >= 2, "the check would compare almost nothing; use another prompt or image"
    assert ours[:first_eos] == theirs[:first_eos]
    # the raw logits (before generate's processors) of every step whose prefix the two share: the
    # prefill and at least two decode steps
    for step in range(min(first_eos + 1, n_tokens)):
        diff = (step_logits[step] - ref.logits[step][0].float()).abs().max().item()
        assert diff <= atol, f"step {step}: logits differ from model.generate by {diff:g}"


def check_discovery_batched_equals_unbatched(model, adapter, image, *, n_panels: int = 6) -> None:
    """Discovery's ``[layer, head, N, N]`` matrix of one strip is the same whether the N questions
    run as one batch (shared image / prompt start, or the plain batch) or one question at a time."""
    from types import SimpleNamespace

    from gaze_explorer.core.scoring import panel_matrix
    from gaze_explorer.inference.attention import ForwardRequest, attention_control
    from gaze_explorer.inference.discovery import panel_prompt, strip_matrix
    from gaze_explorer.inference.loading import loaded_from_parts

    template = "what is in the {ordinal} panel ?"
    widths = [image.width / n_panels] * n_panels
    loaded = loaded_from_parts(model, adapter)
    strip = SimpleNamespace(image=image, panel_widths=widths, name="strip")
    shared = strip_matrix(loaded, strip, template, share=True)
    plain = strip_matrix(loaded, strip, template, share=False)
    rows, positions = [], []
    for k in range(1, n_panels + 1):
        prepared = adapter.build_inputs(image, panel_prompt(template, k, n_panels))
        with torch.inference_mode(), attention_control(loaded) as ctl:
            ctl.set_request(ForwardRequest(capture_rows="last"))
            model(**adapter.prefill_kwargs(model, prepared), use_cache=False)
            rows.append(ctl.take_rows()[:, 0, :, 0].float().numpy())  # [layer, head, key]
        positions.append([r.positions(prepared.grid) for r in panel_regions(prepared.grid, n_panels, widths)])
    lengths = {r.shape[-1] for r in rows}
    assert len(lengths) == 1, "the per-panel prompts must have one length to stack"
    alone = panel_matrix(np.stack(rows), positions)  # [layer, head, N, N]
    assert (
        shared.shape == plain.shape == alone.shape == (adapter.n_layers, adapter.n_heads, n_panels, n_panels)
    )
    np.testing.assert_allclose(shared, alone, atol=1e-5)
    np.testing.assert_allclose(plain, alone, atol=1e-5)
    assert np.ptp(alone[list(adapter.attention_layers)]) > 1e-3  # not flat: the check could see a mismatch


def check_image_embeddings_distinct(model, adapter, prepared, *, min_distance: float = 1e-4) -> None:
    """The tiny model is not degenerate: distinct image patches give distinct LM input embeddings
    (e.g. a zero-initialised multimodal projection would give every image token the same one)."""
    seen: list[torch.Tensor] = []
    language_model = model.model.language_model
    hook = language_model.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(kwargs["inputs_embeds"].detach()), with_kwargs=True
    )
    try:
        with torch.no_grad():
            model(**adapter.prefill_kwargs(model, prepared))
    finally:
        hook.remove()
    embeds = seen[0][0, torch.as_tensor(prepared.grid.positions)].double()  # [image token, hidden]
    dist = torch.cdist(embeds, embeds) + torch.eye(embeds.shape[0], dtype=torch.float64) * 1e9
    assert dist.min().item() > min_distance, "two image tokens got the same LM input embedding"
