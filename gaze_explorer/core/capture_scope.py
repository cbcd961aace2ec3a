"""Capture scope: which part of each captured decode row a session stores.

``full`` stores every key of every layer x head (the default). ``image-keys`` stores only the keys
up to the last image token of the grid (``[0, image_key_end)``: the image tokens plus the few prompt
tokens before them), which is all the overlay, the head grid and the staircase read
(``core.scoring``: image attention and region masses index the grid's positions only), at a
fraction of the size once the answer grows. ``heads:FILE`` stores only the heads of a head list;
the other heads' rows are NaN, the same convention as a linear-attention layer's rows, and cost
almost nothing once compressed. The scope changes what is stored, never what is generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaze_explorer.core.errors import HeadSpecError
from gaze_explorer.core.heads import HeadSet, load_head_list

SCOPE_KINDS = ("full", "image-keys", "heads")


@dataclass(frozen=True)
class CaptureScope:
    """What a run stores of each decode row ``[layer, head, key]`` (see the module docstring)."""

    kind: str = "full"
    heads: HeadSet | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCOPE_KINDS:
            raise HeadSpecError(
                f"capture scope must be one of full, image-keys, heads:FILE; got {self.kind!r}"
            )
        if (self.kind == "heads") != (self.heads is not None):
            raise HeadSpecError("a 'heads' capture scope needs a head set, and only it takes one")
        if self.heads is not None and not self.heads.heads:
            raise HeadSpecError("a 'heads' capture scope needs at least one head")

    def stored_keys(self, max_keys: int, image_key_end: int) -> int:
        """How many keys (from key 0) each stored row holds."""
        return min(int(max_keys), int(image_key_end)) if self.kind == "image-keys" else int(max_keys)

    def head_mask(self, n_layers: int, n_heads: int) -> np.ndarray | None:
        """``[layer, head]`` bool of the stored heads, or None when every head is stored."""
        return None if self.heads is None else self.heads.mask(n_layers, n_heads)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "heads": None if self.heads is None else [list(h) for h in self.heads.heads],
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> CaptureScope:
        """The scope stored in a run's attributes (None, from files before scopes: ``full``)."""
        if not data:
            return cls()
        heads = data.get("heads")
        return cls(str(data.get("kind", "full")), None if heads is None else HeadSet("capture", tuple(heads)))

    def label(self) -> str:
        """``full``, ``image-keys`` or ``heads (N)``: what the app and the CLI print."""
        return f"heads ({len(self.heads)})" if self.heads is not None else self.kind


def parse_capture_scope(text: str) -> CaptureScope:
    """``full`` | ``image-keys`` | ``heads:FILE`` (a JSON or CSV head list, as ``--heads`` reads)."""
    text = str(text).strip()
    if text.startswith("heads:"):
        path = text[len("heads:") :]
        if not path:
            raise HeadSpecError("--capture heads:FILE needs a head list file after 'heads:'")
        return CaptureScope("heads", load_head_list(path))
    return CaptureScope(text)


def image_key_end(grid_positions: np.ndarray) -> int:
    """One past the last image token of the grid: the stored width of an ``image-keys`` row."""
    positions = np.asarray(grid_positions)
    return int(positions.max()) + 1 if positions.size else 0
