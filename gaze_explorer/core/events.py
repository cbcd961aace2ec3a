"""Generation events: what a generation stream yields, as plain data (numpy, no torch).

``inference.generation.generate_stream`` yields one :class:`PrefillEvent`, one :class:`TokenEvent`
per generated token and a :class:`FinishedEvent`. They live in ``core`` so that storage (the
recorder), Qt (workers, the app), the benchmarks and the tests share the real classes and tell
them apart with ``isinstance``. Attention rows are float32 numpy arrays, already moved off the
device by the generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gaze_explorer.core.regions import ImageTokenGrid
from gaze_explorer.core.steering import Switch


@dataclass
class PrefillEvent:
    """The prompt: its tokens, image grid, captured prefill rows ``[layer, head, query, key]``."""

    prompt_len: int
    grid: ImageTokenGrid
    token_ids: list[int]
    token_strings: list[str]
    rows: np.ndarray | None  # [layer, head, query, key] float32
    query_positions: list[int] = field(default_factory=list)  # which prompt positions ``rows`` hold
    value_norms: np.ndarray | None = None  # [layer, head, key] float32, ||v|| at prefill


@dataclass
class TokenEvent:
    """One generated token, the text it adds to the answer, and the attention of the query that
    predicted it."""

    step: int
    token_id: int
    text: str  # this token's own piece of the answer (decoded in context, so spacing is right)
    target: int | None
    rows: np.ndarray | None  # [layer, head, key] float32, key = prompt_len + step
    switch: Switch | None = None


@dataclass
class FinishedEvent:
    """The end of a stream: how it ended, the target switches that happened, why."""

    status: str  # "finished" | "cancelled" | "failed"
    switches: list[Switch]
    reason: str = ""
    n_tokens: int = 0


GenerationEvent = PrefillEvent | TokenEvent | FinishedEvent
