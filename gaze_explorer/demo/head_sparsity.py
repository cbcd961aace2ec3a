"""Training-only attention for the demo model: a penalty that keeps image reading in few heads.

In a small model trained from scratch, the image is read by many heads, each at its own answer
position: in run r9 the object colour was read by ~8 heads and the background colour by a
disjoint ~8 (model card). Steering 5 heads then cannot move a whole description. Real VLMs are
found to read the described region through a small set of heads at every token (the paper's gaze
heads); this penalty asks the demo model to do the same, and the measurement then decides.

The penalty is a group lasso over heads: for each text query after the image, ``m`` is the
attention mass a head puts on image tokens; a head costs ``sqrt(sum over queries of m^2)``, and
the penalty is the mean over layers, heads and rows. A head that reads at several positions costs
less than several heads that read at one position each, so reading concentrates into few heads
that read at every position; heads that need no image stop looking at it.

The attention function computes exactly what SDPA computes (explicit softmax, the same mask), so
the trained weights are an ordinary Qwen3-VL checkpoint: the penalty exists only while training.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from gaze_explorer.inference.attention import additive_mask

ATTN_NAME = "gaze_explorer_demo_head_sparsity"
NORMS = ("l2", "max")
_ACTIVE: ImagePenalty | None = None


class ImagePenalty:
    """Collects the per-layer penalty terms of one forward pass."""

    def __init__(self, image_keys: torch.Tensor, query_mask: torch.Tensor, norm: str = "l2") -> None:
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.image_keys = image_keys.float()  # [batch, seq] 1 on image tokens
        self.query_mask = query_mask.float()  # [batch, seq] 1 on the text queries that count
        self.norm = norm
        self.terms: list[torch.Tensor] = []

    def total(self) -> torch.Tensor:
        """Mean over layers of the per-layer terms (0 when nothing was collected)."""
        if not self.terms:
            return torch.zeros(())
        return torch.stack(self.terms).mean()


def _forward(
    module: torch.nn.Module,
    query: torch.Tensor,  # [batch, head, q, dim]
    key: torch.Tensor,  # [batch, kv_head, k, dim]
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    n_rep = query.shape[1] // key.shape[1]
    k_full, v_full = repeat_kv(key, n_rep), repeat_kv(value, n_rep)
    q_len, k_len = query.shape[2], key.shape[2]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    add = additive_mask(attention_mask, q_len, k_len, query.device)
    probs = torch.softmax(torch.matmul(query.float(), k_full.float().transpose(-1, -2)) * scale + add, dim=-1)
    out = torch.matmul(probs.to(v_full.dtype), v_full)
    pen = _ACTIVE
    if pen is not None and q_len == k_len == pen.image_keys.shape[1]:
        pen.terms.append(head_costs(probs, pen).mean())
    return out.transpose(1, 2).contiguous(), None


def head_costs(probs: torch.Tensor, pen: ImagePenalty) -> torch.Tensor:
    """``[batch, head]``: the norm over counted queries of the image mass: ``l2`` (sqrt of the sum
    of squares) or ``max`` (a head that reads anywhere may read everywhere at no extra cost)."""
    mass = torch.matmul(probs, pen.image_keys[:, None, :, None]).squeeze(-1)  # [batch, head, q]
    mass = mass * pen.query_mask[:, None, :]
    if pen.norm == "max":
        return mass.amax(dim=-1)
    return torch.sqrt((mass * mass).sum(-1) + 1e-6)


def register() -> None:
    AttentionInterface.register(ATTN_NAME, _forward)
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)


def text_queries(input_ids: torch.Tensor, attention_mask: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """``[batch, seq]`` bool: the real (unpadded) tokens after each row's last image token."""
    is_image = input_ids == image_token_id
    pos = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
    last_image = torch.where(is_image, pos, torch.full_like(pos, -1)).max(dim=1, keepdim=True).values
    return (pos > last_image) & attention_mask.bool()


class collecting:
    """``with collecting(penalty):`` makes the attention function collect into ``penalty``."""

    def __init__(self, penalty: ImagePenalty) -> None:
        self.penalty = penalty

    def __enter__(self) -> ImagePenalty:
        global _ACTIVE
        _ACTIVE = self.penalty
        return self.penalty

    def __exit__(self, *exc) -> None:
        global _ACTIVE
        _ACTIVE = None
