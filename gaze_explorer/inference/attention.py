"""The registered attention function: stock SDPA, plus capture and per-head steering on request.

One function, ``"gaze_explorer"``, is registered with ``transformers.AttentionInterface`` (and the
``sdpa`` mask builder under the same name, so padding and sliding windows are masked as for SDPA).
:func:`attention_control` switches ONLY the language model to it (``set_attn_implementation(
{text_config_key: "gaze_explorer"})``); the vision tower keeps its own attention. No
``output_attentions``, no monkeypatching, no hooks.

Per forward pass the caller (the generation loop, discovery) sets an :class:`AttentionControl`'s
request: which query rows to capture, an additive bias over the keys for the steered heads, and
whether to record value-vector norms. In a layer with nothing to steer or capture the function is
plain torch SDPA (so logits match stock attention). Otherwise the steered heads get a per-head
pre-softmax bias, and the captured rows are computed explicitly (``q @ k^T * scale + mask + bias``,
softmax in fp32) and put in the control's sink until the caller takes them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from gaze_explorer.core.errors import HeadSpecError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.inference.adapters.base import attention_layer_indices

ATTN_NAME = "gaze_explorer"

# Active controls, keyed by the id of the text config that the attention modules hold.
_ACTIVE: dict[int, AttentionControl] = {}
_ACTIVE_LOCK = threading.Lock()
_REGISTERED = False


@dataclass
class ForwardRequest:
    """What the next forward pass should do beside computing attention.

    ``capture_rows``: ``None`` (capture nothing), ``"last"`` (the last query row), ``"all"`` (every
    query row), or a 1-D LongTensor of query indices within this forward's queries.
    ``bias``: ``[batch, keys]`` additive bias for the steered heads, or None (no steering);
    its length must cover the keys of this forward (prompt + cache + new tokens).
    ``value_norms``: record ``||v||`` per layer, query head and key.
    """

    capture_rows: str | torch.Tensor | None = None
    bias: torch.Tensor | None = None
    value_norms: bool = False
    _bias_on: dict = field(default_factory=dict, init=False, repr=False)  # device -> fp32 bias there

    def bias_on(self, device: torch.device) -> torch.Tensor:
        """The bias as fp32 on ``device``, copied once per forward and device: the layers of a
        device-mapped model sit on several devices, and each builds its scores on its own."""
        out = self._bias_on.get(device)
        if out is None:
            out = self._bias_on[device] = self.bias.to(device, torch.float32)
        return out


@dataclass
class AttentionControl:
    """Per-model state read by the attention function (set by the caller before each forward)."""

    n_layers: int
    n_heads: int
    steer_heads: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [head] bool
    capture_layers: frozenset[int] = frozenset()
    request: ForwardRequest = field(default_factory=ForwardRequest)
    rows: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [batch, head, row, key]
    value_norms: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [batch, head, key]
    calls: int = 0  # attention calls that went through this control (tests check the switch)
    # (layer, device) -> the layer's fp32 [head] steer mask there
    _steer_on: dict = field(default_factory=dict, init=False, repr=False)

    def steer_mask(self, layer: int, device: torch.device) -> torch.Tensor:
        """Layer ``layer``'s steered-head mask as fp32 ``[head]`` on ``device`` (the layer's own
        device under a device map), copied there once."""
        out = self._steer_on.get((layer, device))
        if out is None:
            out = self._steer_on[(layer, device)] = self.steer_heads[layer].to(device, torch.float32)
        return out

    def set_request(self, request: ForwardRequest) -> None:
        """Set what the next forward does; clears the sink."""
        self.request = request
        self.rows = {}
        self.value_norms = {}

    def take_rows(self) -> torch.Tensor | None:
        """Captured rows of the last forward, stacked ``[layer, batch, head, row, key]``; clears them."""
        if not self.rows:
            return None
        out = _stack_layers(self.rows, sorted(self.capture_layers))
        self.rows = {}
        return out

    def take_value_norms(self) -> torch.Tensor | None:
        """Recorded value norms ``[layer, batch, head, key]``; clears them."""
        if not self.value_norms:
            return None
        out = _stack_layers(self.value_norms, range(self.n_layers))
        self.value_norms = {}
        return out


def _stack_layers(by_layer: dict[int, torch.Tensor], layers: Sequence[int]) -> torch.Tensor:
    """Stack ``by_layer`` on a new first axis indexed like ``layers`` (TRUE layer indices).

    A layer that gave nothing (no softmax attention: Qwen3.5's linear-attention layers) gets a NaN
    entry, so index ``i`` of the result is always decoder layer ``layers[i]``, never a renumbered
    attention layer."""
    present = [by_layer[layer] for layer in layers if layer in by_layer]
    # under a device map the layers' rows sit on their layers' devices: gather them on the first's
    home = present[0].device
    if any(t.device != home for t in present):
        by_layer = {layer: t.to(home) for layer, t in by_layer.items()}
        present = [t.to(home) for t in present]
    if len(present) == len(layers):
        return _stack_left_padded(present)
    template = max(present, key=lambda t: t.shape[-1])
    filler = torch.full_like(template, float("nan"))
    return _stack_left_padded([by_layer.get(layer, filler) for layer in layers])


def _stack_left_padded(per_layer: list[torch.Tensor]) -> torch.Tensor:
    """Stack per-layer tensors whose last (key) axis may differ: sliding-window layers see only the
    last keys, so they are left-padded with zeros to the longest layer."""
    n_keys = max(t.shape[-1] for t in per_layer)
    if all(t.shape[-1] == n_keys for t in per_layer):
        return torch.stack(per_layer)  # the usual case: no padding copies
    return torch.stack([torch.nn.functional.pad(t, (n_keys - t.shape[-1], 0)) for t in per_layer])


def register() -> None:
    """Register the attention function and its mask builder (idempotent)."""
    global _REGISTERED
    if not _REGISTERED:
        AttentionInterface.register(ATTN_NAME, gaze_attention_forward)
        # the mask builder decides whether padding/causal masks are built at all for this name
        AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)
        _REGISTERED = True


def additive_mask(
    attention_mask: torch.Tensor | None, q_len: int, k_len: int, device: torch.device
) -> torch.Tensor:
    """The mask as fp32 additive values ``[batch|1, 1, q, k]``; causal when None and q_len > 1.

    Masked entries get the fp32 minimum rather than -inf, so a fully masked (padding) row stays
    finite and a steering bias added on top cannot turn it into NaN.
    """
    neg = torch.finfo(torch.float32).min
    if attention_mask is None:
        if q_len == 1:
            return torch.zeros(1, 1, 1, k_len, device=device)
        # queries are the last q_len positions of the k_len keys (cache before them)
        q_pos = torch.arange(k_len - q_len, k_len, device=device)[:, None]
        allowed = q_pos >= torch.arange(k_len, device=device)[None, :]
        return torch.where(allowed, 0.0, neg)[None, None]
    mask = attention_mask[..., :k_len]
    if mask.dtype == torch.bool:
        return torch.where(mask, 0.0, neg).to(torch.float32)
    return mask.to(torch.float32).clamp(min=neg)


def gaze_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,  # [batch, head, q, dim]
    key: torch.Tensor,  # [batch, kv_head, k, dim]
    value: torch.Tensor,  # [batch, kv_head, k, dim]
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention as SDPA computes it, plus steering bias and capture for the active control."""
    control = _ACTIVE.get(id(getattr(module, "config", None)))
    layer = getattr(module, "layer_idx", None)
    softcap = kwargs.pop("softcap", None)  # Gemma 2's logit cap: applied on every path below
    if control is None or layer is None:
        return _plain(module, query, key, value, attention_mask, dropout, scaling, softcap, **kwargs)
    control.calls += 1
    req = control.request
    steer = control.steer_heads.get(layer) if req.bias is not None else None
    capture = req.capture_rows if layer in control.capture_layers else None
    n_rep = query.shape[1] // key.shape[1]
    if req.value_norms:
        # ||v|| of each key for each KV head, repeated to the query heads (GQA). Asked for at the
        # prefill only (image tokens are prompt keys); accumulated in fp32 without an fp32 copy of V
        norms = torch.linalg.vector_norm(value, dim=-1, dtype=torch.float32)  # [batch, kv_head, k]
        control.value_norms[layer] = norms.repeat_interleave(n_rep, dim=1)  # [batch, head, k]
    if steer is None and capture is None:
        return _plain(module, query, key, value, attention_mask, dropout, scaling, softcap, **kwargs)

    batch, _, q_len, dim = query.shape
    k_len = key.shape[2]
    scale = scaling if scaling is not None else dim**-0.5
    if q_len == 1:
        # a decode step: the hot path of a captured generation, kept to a handful of tensor ops
        return _decode_step(
            control, layer, req, steer, capture, query, key, value, attention_mask, scale, softcap
        )
    add = additive_mask(attention_mask, q_len, k_len, query.device)  # [b|1, 1, q, k]
    if steer is not None:
        # a sliding-window layer's cache holds only the LAST keys, so align the bias to the end
        bias = req.bias_on(query.device)[:, -k_len:]  # [batch, k]
        head_mask = control.steer_mask(layer, query.device)  # [head]
        add = add + bias[:, None, None, :] * head_mask[None, :, None, None]  # [batch, head, q, k]
    k_full = repeat_kv(key, n_rep).float()  # [batch, head, k, dim]
    v_full = repeat_kv(value, n_rep)

    if capture == "all":
        # every row is needed (full prefill capture): one explicit pass gives output and probs
        out, probs = explicit_attention(query, k_full, v_full, add, scale, softcap)  # [b, h, q, dim|k]
        if capture is not None:
            control.rows[layer] = _select_rows(probs, capture)
        return out.transpose(1, 2).contiguous(), None

    # prefill with a few captured rows: SDPA for the output, explicit math only for those rows
    if steer is not None or softcap is not None:
        out, _ = explicit_attention(query, k_full, v_full, add, scale, softcap)
    else:
        out = None
    if capture is not None:
        idx = _row_index(capture, q_len, query.device)
        rows_add = add.expand(batch, -1, q_len, k_len)[:, :, idx] if add.shape[2] > 1 else add
        control.rows[layer] = _probs(query[:, :, idx].float(), k_full, rows_add, scale, softcap)
    if out is None:
        return _plain(module, query, key, value, attention_mask, dropout, scaling, softcap, **kwargs)
    return out.transpose(1, 2).contiguous(), None


def _decode_step(control, layer, req, steer, capture, query, key, value, attention_mask, scale, softcap):
    """One query row: explicit softmax(QK^T) so its probabilities can be captured.

    The query heads are grouped by the KV head they share (``[batch, kv_head, group, dim]``)
    instead of repeating the keys and values per query head (GQA), so no per-layer copy of the
    whole cache is made; the captured row is a view of the probabilities.
    """
    batch, n_heads, _, dim = query.shape
    n_kv, k_len = key.shape[1], key.shape[2]
    group = n_heads // n_kv
    q = query.reshape(batch, n_kv, group, dim).float()  # [batch, kv_head, group, dim]
    scores = torch.matmul(q, key.float().transpose(-1, -2)) * scale  # [batch, kv_head, group, key]
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        add = additive_mask(attention_mask, 1, k_len, query.device)  # [b|1, 1, 1, k]
        scores = scores + add.reshape(add.shape[0], 1, 1, k_len)
    if steer is not None:
        # a sliding-window layer's cache holds only the LAST keys, so align the bias to the end
        bias = req.bias_on(query.device)[:, -k_len:]  # [batch, k]
        head_mask = control.steer_mask(layer, query.device).reshape(1, n_kv, group, 1)  # [1, kv, group, 1]
        scores = scores + bias[:, None, None, :] * head_mask
    probs = torch.softmax(scores, dim=-1)  # [batch, kv_head, group, key]
    out = torch.matmul(probs, value.float()).to(query.dtype)  # [batch, kv_head, group, dim]
    if capture is not None:
        control.rows[layer] = probs.reshape(batch, n_heads, 1, k_len)  # [batch, head, 1, key]
    # [batch, head, 1, dim] -> [batch, 1, head, dim]: a view (the swapped axis has size 1)
    return out.reshape(batch, n_heads, 1, dim).transpose(1, 2), None


def _plain(module, query, key, value, attention_mask, dropout, scaling, softcap, **kwargs):
    """Stock SDPA (or the explicit path when a softcap forbids SDPA)."""
    if softcap is None:
        kwargs.pop("softcap", None)
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    n_rep = query.shape[1] // key.shape[1]
    add = additive_mask(attention_mask, query.shape[2], key.shape[2], query.device)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out, _ = explicit_attention(query, repeat_kv(key, n_rep), repeat_kv(value, n_rep), add, scale, softcap)
    return out.transpose(1, 2).contiguous(), None


def _probs(
    q: torch.Tensor, k: torch.Tensor, add: torch.Tensor, scale: float, softcap: float | None
) -> torch.Tensor:
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # [batch, head, q, k] fp32
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    return torch.softmax(scores + add, dim=-1)


def explicit_attention(
    query: torch.Tensor,  # [batch, head, q, dim]
    k_full: torch.Tensor,  # [batch, head, k, dim]: the keys repeated to the query heads (repeat_kv)
    v_full: torch.Tensor,  # [batch, head, k, dim]
    add: torch.Tensor,  # fp32 additive mask (plus any bias), broadcastable to [batch, head, q, k]
    scale: float,
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention computed explicitly, as SDPA computes it, so that its probabilities can be read:
    ``softmax(q @ k^T * scale + add) @ v`` with the scores and softmax in fp32 (tanh-softcapped
    first when ``softcap`` is set). Returns the output ``[batch, head, q, dim]`` in the query's dtype
    and the probabilities ``[batch, head, q, k]`` (fp32). The one explicit kernel: the registered
    attention function and the demo's training-only attention both use it."""
    probs = _probs(query.float(), k_full.float(), add, scale, softcap)
    return torch.matmul(probs, v_full.float()).to(query.dtype), probs


def _row_index(capture: str | torch.Tensor, q_len: int, device: torch.device) -> torch.Tensor:
    if isinstance(capture, str):
        if capture == "last":
            return torch.tensor([q_len - 1], device=device)
        return torch.arange(q_len, device=device)
    return capture.to(device)


def _select_rows(probs: torch.Tensor, capture: str | torch.Tensor) -> torch.Tensor:
    if isinstance(capture, str) and capture == "all":
        return probs
    return probs[:, :, _row_index(capture, probs.shape[2], probs.device)]


def _model_parts(target: Any, text_config_key: str | None) -> tuple[Any, str, Any]:
    """(model, text_config_key, text_config) from a LoadedModel or a bare transformers model."""
    model = getattr(target, "model", None) if hasattr(target, "adapter") else target
    if text_config_key is None:
        adapter = getattr(target, "adapter", None)
        text_config_key = adapter.text_config_key if adapter is not None else "text_config"
    text_config = getattr(model.config, text_config_key, None)
    if text_config is None:
        text_config = model.config.get_text_config()
    return model, text_config_key, text_config


@contextlib.contextmanager
def attention_control(
    target: Any,
    *,
    plan_heads: HeadSet | None = None,
    capture_layers: Sequence[int] | None = None,
    text_config_key: str | None = None,
) -> Iterator[AttentionControl]:
    """Switch the language model to the gaze-explorer attention for the duration of the block.

    ``target`` is a ``LoadedModel`` or a bare transformers model. ``plan_heads`` are the heads that
    receive the steering bias (when a request carries one); ``capture_layers`` the layers whose
    rows are captured when a request asks (default: all; a linear-attention layer's rows are NaN).
    The previous implementation is restored in ``finally``. Raises HeadSpecError for a head or
    layer out of range, or a steered head in a linear-attention layer.
    """
    register()
    model, key, text_config = _model_parts(target, text_config_key)
    n_layers = int(text_config.num_hidden_layers)
    n_heads = int(text_config.num_attention_heads)
    attention_layers = attention_layer_indices(text_config)
    steer: dict[int, torch.Tensor] = {}
    if plan_heads is not None:
        plan_heads.validate(n_layers, n_heads, attention_layers)
        for layer, heads in plan_heads.by_layer().items():
            # built on the CPU; each layer copies it once to its own device (AttentionControl.steer_mask)
            m = torch.zeros(n_heads, dtype=torch.bool)
            m[heads] = True
            steer[layer] = m
    layers = list(range(n_layers)) if capture_layers is None else [int(x) for x in capture_layers]
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise HeadSpecError(f"capture layer(s) {bad} out of range for a model with {n_layers} layers")
    control = AttentionControl(n_layers, n_heads, steer, frozenset(layers))
    previous = text_config._attn_implementation
    with _ACTIVE_LOCK:
        if id(text_config) in _ACTIVE:
            raise RuntimeError("attention_control is already active on this model (one generation at a time)")
        _ACTIVE[id(text_config)] = control
    try:
        model.set_attn_implementation({key: ATTN_NAME})
        yield control
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.pop(id(text_config), None)
        model.set_attn_implementation({key: previous})
