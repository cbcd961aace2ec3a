"""Training-only attention for the demo model: penalties that keep image reading in few heads.

In a small model trained from scratch, the image is read by many heads, each at its own answer
position: in run r9 the object colour was read by ~8 heads and the background colour by a
disjoint ~8 (model card). Steering 5 heads then cannot move a whole description. Real VLMs are
found to read the described region through a small set of heads at every token (the paper's gaze
heads); these penalties ask the demo model to do the same, and the measurement then decides.

Two penalties, both on ``m``, the attention mass a head puts on image tokens at each text query
after the image:

- a group lasso over heads (:func:`head_costs`): a head costs the norm over queries of ``m``, the
  ``l2`` norm (a head that reads at several positions costs less than several heads that read at
  one position each) or the ``max`` (a head that reads anywhere may read everywhere at no extra
  cost), passed through a shape (:func:`shaped`: linear, concave or saturating); the penalty is
  the mean over heads of all layers (optionally trimmed: the ``free_heads`` costliest heads are
  free). Reading concentrates into few heads.
- the spread (:func:`head_spread`): the variance of ``m`` over a head's queries. With the lasso
  alone (run r16) the reading heads read only where a colour word comes next and look at the text
  in between; a steering bias that makes them read at every token then takes them out of their
  training distribution and a third of the steered answers loop. With the spread, a head that
  reads, reads at every token, as the paper describes gaze heads.

The attention function computes exactly what SDPA computes (explicit softmax, the same mask), so
the trained weights are an ordinary Qwen3-VL checkpoint: the penalties exist only while training.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from gaze_explorer.demo.training.recipe import NORMS, SHAPES
from gaze_explorer.inference.attention import additive_mask, explicit_attention

ATTN_NAME = "gaze_explorer_demo_head_sparsity"
SQRT_EPS = 0.01  # keeps the sqrt shape's slope finite at 0 (1 / (2 sqrt(eps)) = 5)
SATURATION = 0.1  # the saturating shape's scale: a head that reads 0.3 already pays 95% of the most
# The penalty that the attention function collects into (set by :func:`collecting`).
_ACTIVE: ContextVar[ImagePenalty | None] = ContextVar("gaze_explorer_demo_penalty", default=None)


class ImagePenalty:
    """Collects the per-layer penalty terms of one forward pass."""

    def __init__(
        self,
        image_keys: torch.Tensor,
        query_mask: torch.Tensor,
        norm: str = "l2",
        free_heads: int = 0,
        shape: str = "linear",
    ) -> None:
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
        if free_heads < 0:
            raise ValueError(f"free_heads must be >= 0, got {free_heads}")
        self.image_keys = image_keys.float()  # [batch, seq] 1 on image tokens
        self.query_mask = query_mask.float()  # [batch, seq] 1 on the text queries that count
        self.norm = norm
        self.free_heads = free_heads
        self.shape = shape
        self.terms: list[torch.Tensor] = []
        self.spread_terms: list[torch.Tensor] = []
        self.head_terms: list[torch.Tensor] = []  # per layer, the batch-mean cost per head (for trimming)

    def total(self) -> torch.Tensor:
        """The lasso: the mean over layers of the per-layer mean cost; with ``free_heads``, a trimmed
        lasso: the batch-mean costs summed over all heads of all layers but the ``free_heads``
        costliest, divided by the number of heads, so that many heads may read the image at no cost
        and any further reader pays (0 when nothing was collected)."""
        if not self.terms:
            return torch.zeros(())
        if not self.free_heads:
            return torch.stack(self.terms).mean()
        costs = torch.cat(self.head_terms)
        return torch.sort(costs, descending=True).values[self.free_heads :].sum() / costs.numel()

    def collect(self, probs: torch.Tensor, n_rep: int = 1) -> None:
        """Add one layer's terms from its attention probabilities ``[batch, head, q, k]``."""
        mass = image_mass(probs, self)
        # [batch, head] ([batch, kv_head] for kv_max)
        costs = shaped(head_costs(mass, self, n_rep), self.shape)
        self.terms.append(costs.mean())
        if self.free_heads:
            self.head_terms.append(costs.mean(0))
        self.spread_terms.append(head_spread(mass, self).mean())

    def spread(self) -> torch.Tensor:
        """Mean over layers of the per-layer spread terms (:func:`head_spread`)."""
        if not self.spread_terms:
            return torch.zeros(())
        return torch.stack(self.spread_terms).mean()


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
    q_len, k_len = query.shape[2], key.shape[2]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    add = additive_mask(attention_mask, q_len, k_len, query.device)
    # the inference kernel: what SDPA computes, with the probabilities the penalty needs
    out, probs = explicit_attention(query, repeat_kv(key, n_rep), repeat_kv(value, n_rep), add, scale)
    pen = _ACTIVE.get()
    if pen is not None and q_len == k_len == pen.image_keys.shape[1]:
        pen.collect(probs, n_rep)
    return out.transpose(1, 2).contiguous(), None


def image_mass(probs: torch.Tensor, pen: ImagePenalty) -> torch.Tensor:
    """``[batch, head, q]``: each counted query's attention mass on image tokens (0 elsewhere)."""
    mass = torch.matmul(probs, pen.image_keys[:, None, :, None]).squeeze(-1)
    return mass * pen.query_mask[:, None, :]


def head_costs(mass: torch.Tensor, pen: ImagePenalty, n_rep: int = 1) -> torch.Tensor:
    """``[batch, head]``: the norm over counted queries of the image mass: ``l2`` (sqrt of the sum
    of squares) or ``max`` (a head that reads anywhere may read everywhere at no extra cost);
    ``kv_max``: ``[batch, kv_head]``, the max over the ``n_rep`` query heads that share a KV head
    and over queries (the heads of a group that reads may all read at no extra cost)."""
    if pen.norm == "max":
        return mass.amax(dim=-1)
    if pen.norm == "kv_max":
        b, h, q = mass.shape
        return mass.reshape(b, h // n_rep, n_rep * q).amax(dim=-1)
    return torch.sqrt((mass * mass).sum(-1) + 1e-6)


def shaped(costs: torch.Tensor, shape: str) -> torch.Tensor:
    """The cost of each head as the lasso counts it: ``linear`` (the norm itself) or ``sqrt``, a
    concave cost, ``sqrt(c + eps) - sqrt(eps)``. Under the linear cost, eight heads that read at 0.6
    cost about what five that read at 1.0 cost, so nothing asks reading to gather in fewer heads;
    under the concave cost the five cost less, and a head that reads a little pays the most per
    unit of reading. ``saturating``, ``1 - exp(-c / 0.1)``, counts readers: a head that reads pays
    about the same whatever its mass, so the lasso no longer pulls a reader's mass down (under the
    linear cost readers settle near 0.8, run r29b, and a steering bias, which puts 1.0 on the
    target, changes the scale of what they read)."""
    if shape == "sqrt":
        return torch.sqrt(costs + SQRT_EPS) - SQRT_EPS**0.5
    if shape == "saturating":
        return 1.0 - torch.exp(-costs / SATURATION)
    return costs


def head_spread(mass: torch.Tensor, pen: ImagePenalty) -> torch.Tensor:
    """``[batch, head]``: the variance over counted queries of the image mass. It is 0 for a head
    that reads the image at every token with the same weight (or never), and large for a head
    that reads only where a content word comes next and looks at the text in between."""
    w = pen.query_mask[:, None, :]
    n = w.sum(-1).clamp_min(1.0)
    mean = mass.sum(-1) / n
    return (w * (mass - mean[..., None]) ** 2).sum(-1) / n


def register() -> None:
    AttentionInterface.register(ATTN_NAME, _forward)
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)


def text_queries(input_ids: torch.Tensor, attention_mask: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """``[batch, seq]`` bool: the real (unpadded) tokens after each row's last image token."""
    is_image = input_ids == image_token_id
    pos = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
    last_image = torch.where(is_image, pos, torch.full_like(pos, -1)).max(dim=1, keepdim=True).values
    return (pos > last_image) & attention_mask.bool()


@contextmanager
def collecting(penalty: ImagePenalty) -> Iterator[ImagePenalty]:
    """``with collecting(penalty):`` makes the attention function collect into ``penalty``; on exit
    the previous penalty (None outside any block) is collected into again."""
    token = _ACTIVE.set(penalty)
    try:
        yield penalty
    finally:
        _ACTIVE.reset(token)
