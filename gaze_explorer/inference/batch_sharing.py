"""Forward passes of a batch whose rows share one image and the start of their prompt.

Discovery asks N questions about one strip as one batch. The rows differ only in a word or two,
so most of their work is the same: encoding the image, and every layer over the image tokens and
the words before the first difference. Two ways to do that work once, both adapter-generic:

- :func:`prefix_shared_rows`: run the shared prompt start (with the image) ONCE as a batch of one,
  repeat its KV cache for the N rows, and run only the N differing endings on top of it, capturing
  their last query row. Needs unpadded rows whose image lies wholly in the shared start.
- :func:`shared_image_kwargs`: encode the image once and hand the repeated encoder output to the
  batched forward as ``mm_encoder_outputs`` (the transformers 5 hook every supported family's
  forward accepts instead of ``pixel_values``).

Both return None where they do not apply; the caller then runs the plain batched forward.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from gaze_explorer.inference.attention import AttentionControl, ForwardRequest


def _base_model(model: Any) -> Any:
    """The inner multimodal model that owns ``get_image_features`` (``model.model`` in every family)."""
    inner = getattr(model, "model", None)
    return inner if inner is not None and hasattr(inner, "get_image_features") else model


def _repeat_rows(value: Any, n: int) -> Any:
    """One image's encoder output repeated for ``n`` batch rows, or None for an unknown layout.

    Per-image sequences (Qwen, LLaVA, Idefics3) repeat their items; a tensor whose first axis
    counts images (Gemma 3) is concatenated with itself."""
    if isinstance(value, torch.Tensor):
        return torch.cat([value] * n, dim=0)
    if isinstance(value, list | tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
        return type(value)(list(value) * n)
    return None


def shared_image_kwargs(model: Any, kwargs: dict[str, Any], n_rows: int) -> dict[str, Any] | None:
    """``kwargs`` of a batch whose ``n_rows`` rows hold one image, with the image encoded once.

    The vision tensors that ``get_image_features`` takes are cut to the first row's share, the
    image is encoded once, and its output (``pooler_output`` and Qwen3-VL's ``deepstack_features``)
    is repeated per row and passed as ``mm_encoder_outputs`` instead of ``pixel_values``. Returns
    None (use the plain forward) when the family has no such hook or the rows' images differ.
    """
    base = _base_model(model)
    get_features = getattr(base, "get_image_features", None)
    pixels = kwargs.get("pixel_values")
    if n_rows < 2 or get_features is None or not isinstance(pixels, torch.Tensor):
        return None
    if "mm_encoder_outputs" not in inspect.signature(model.forward).parameters:
        return None
    names = inspect.signature(get_features).parameters
    vision = {k: v for k, v in kwargs.items() if k in names and isinstance(v, torch.Tensor)}
    single = _first_share(vision, n_rows)
    if single is None or "pixel_values" not in single:
        return None
    encoded = get_features(**single, return_dict=True)
    pooled = _repeat_rows(getattr(encoded, "pooler_output", None), n_rows)
    if pooled is None:
        return None
    encoded.pooler_output = pooled
    deepstack = getattr(encoded, "deepstack_features", None)
    if deepstack is not None:
        # [vision layer][image] -> the same per layer, for n_rows images
        repeated = [_repeat_rows(layer, n_rows) for layer in deepstack]
        if any(r is None for r in repeated):
            return None
        encoded.deepstack_features = repeated
    out = {k: v for k, v in kwargs.items() if k != "pixel_values"}
    out["mm_encoder_outputs"] = {"image": encoded}
    return out


def _first_share(tensors: dict[str, Any], n_rows: int) -> dict[str, Any] | None:
    """Row 0's share of tensors that hold the same image once per row (first axis split in
    ``n_rows`` equal, identical parts), or None if any of them is not such a repetition."""
    out: dict[str, Any] = {}
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            out[name] = value
            continue
        if value.ndim == 0 or value.shape[0] % n_rows:
            return None
        share = value.shape[0] // n_rows
        first = value[:share]
        # the adapter repeats one image per row; anything else cannot share an encoding
        if not all(torch.equal(first, value[i * share : (i + 1) * share]) for i in range(1, n_rows)):
            return None
        out[name] = first
    return out


def prefix_shared_rows(
    model: Any, kwargs: dict[str, Any], n_rows: int, image_token_id: int, control: AttentionControl
) -> torch.Tensor | None:
    """The last-row attention ``[layer, batch, head, 1, key]`` of the batch ``kwargs``, computing
    the rows' common prompt start (and the image) once.

    ``control`` is the active attention control. Returns None (nothing run) when the rows are
    padded, do not differ, or differ before the end of the image.
    """
    from transformers import DynamicCache

    ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
    if n_rows < 2 or not isinstance(ids, torch.Tensor) or not isinstance(mask, torch.Tensor):
        return None
    n_tokens = ids.shape[1]
    if ids.shape[0] != n_rows or not bool(mask.bool().all()):
        return None  # left padding would shift the rows against each other
    differ = torch.nonzero(~(ids == ids[:1]).all(dim=0)).flatten()  # columns where the rows differ
    if differ.numel() == 0:
        return None
    n_shared = int(differ[0])
    image_cols = torch.nonzero(ids[0] == image_token_id).flatten()
    if n_shared < 1 or (image_cols.numel() and int(image_cols[-1]) >= n_shared):
        return None
    prefix: dict[str, Any] = {}
    suffix: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for name, value in kwargs.items():
        per_token = (
            isinstance(value, torch.Tensor)
            and name != "pixel_values"
            and value.ndim >= 2
            and tuple(value.shape[-2:]) == (n_rows, n_tokens)
        )  # ids, mask, position ids ([B, T] or [k, B, T]), token type ids
        if per_token:
            prefix[name] = value[..., :1, :n_shared]
            # the mask covers the cached start too; everything else only the new tokens
            suffix[name] = value if name == "attention_mask" else value[..., n_shared:]
        else:
            others[name] = value  # vision tensors: one image per row
    single = _first_share(others, n_rows)
    if single is None:
        return None
    prefix.update(single)
    cache = DynamicCache(config=model.config)
    if not all(hasattr(layer, "batch_repeat_interleave") for layer in cache.layers):
        return None  # linear-attention states (Qwen3.5) cannot be repeated per row
    control.set_request(ForwardRequest(capture_rows=None))
    model(**prefix, cache=cache, use_cache=True, logits_to_keep=1)
    for layer in cache.layers:
        layer.batch_repeat_interleave(n_rows)  # [1, kv_head, key, dim] -> [n_rows, ...]
    control.set_request(ForwardRequest(capture_rows="last"))
    model(**suffix, cache=cache, use_cache=True, logits_to_keep=1)
    return control.take_rows()
