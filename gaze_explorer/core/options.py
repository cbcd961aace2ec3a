"""Generation and capture options: plain data shared by the CLI, the app and the inference layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gaze_explorer.core.capture_scope import CaptureScope
from gaze_explorer.core.errors import PromptError


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = 64
    do_sample: bool = False  # greedy by default
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    ignore_eos: bool = False  # keep generating past end-of-sequence (long-run tests and benchmarks)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise PromptError(f"max new tokens must be at least 1, got {self.max_new_tokens}")
        if self.repetition_penalty <= 0:
            raise PromptError("repetition penalty must be > 0")
        if self.do_sample and self.temperature <= 0:
            raise PromptError("temperature must be > 0 when sampling")

    def to_dict(self) -> dict:
        return asdict(self)


PREFILL_MODES = ("none", "last", "full")


@dataclass(frozen=True)
class CaptureSpec:
    """What attention probabilities to hand to the sink.

    ``decode``: every decode step's row over all keys, for all layers x heads.
    ``prefill``: ``none``, ``last`` (the last prompt row), or ``full`` (the T x T matrix).
    ``prefill_queries``: explicit prompt positions to capture instead (overrides ``prefill``).
    ``value_norms``: also record ``||v||`` per layer, head and prompt key at prefill (for the
    value-weighted trajectory and span heatmaps; a session stores them with the run). Default
    (None): on whenever attention is captured (one small array per run, computed once at the
    prefill), off for a run that captures nothing (evaluations).
    """

    decode: bool = True
    prefill: str = "last"
    prefill_queries: tuple[int, ...] | None = None
    value_norms: bool | None = None
    scope: CaptureScope | None = None  # what of each decode row a session stores (None: full)

    def __post_init__(self) -> None:
        if self.prefill not in PREFILL_MODES:
            raise ValueError(f"prefill capture must be one of {PREFILL_MODES}, got {self.prefill!r}")
        if self.value_norms is None:
            object.__setattr__(self, "value_norms", self.active)

    @property
    def active(self) -> bool:
        return self.decode or self.prefill != "none" or bool(self.prefill_queries)
