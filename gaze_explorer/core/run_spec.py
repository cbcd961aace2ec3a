"""What a recorded run is: one frozen description shared by the CLI, the app, the bench and tests.

The recorder (``storage.record``) turns a :class:`RunSpec` plus the stream's prefill event (which
gives the prompt length) into the run's stored attributes; nobody else spells out the run's
parameters one keyword at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gaze_explorer.core.capture_scope import CaptureScope
from gaze_explorer.core.options import PREFILL_MODES, CaptureSpec, GenerationOptions
from gaze_explorer.core.regions import Region
from gaze_explorer.core.steering import (
    FixedTarget,
    LiveSchedule,
    LiveTarget,
    Schedule,
    SteeringPlan,
    TargetSource,
)


@dataclass(frozen=True)
class RunSpec:
    """A run's name, prompt, model shape and generation, steering and capture parameters.

    ``schedule`` / ``target`` describe the steering target as stored (a schedule, or the fixed or
    initial region index, 0-based); build them from a target source with :meth:`with_source`.
    ``max_new_tokens`` defaults to ``options.max_new_tokens`` (one of the two is needed: decode
    rows are padded to ``prompt_len + max_new_tokens`` keys). ``regions`` are the run's own
    regions, or None when they are the session's.
    """

    name: str
    prompt: str
    n_layers: int
    n_heads: int
    options: GenerationOptions | None = None
    plan: SteeringPlan | None = None
    schedule: Schedule | None = None
    target: int | None = None
    max_new_tokens: int | None = None
    prefill_mode: str = "last"
    capture_decode: bool = True
    regions: tuple[Region, ...] | None = None
    capture_scope: CaptureScope | None = None  # what of each decode row is stored (None: full)

    def __post_init__(self) -> None:
        if self.max_new_tokens is None and self.options is None:
            raise ValueError("a run spec needs max_new_tokens or options")
        if self.prefill_mode not in PREFILL_MODES:
            raise ValueError(f"prefill mode must be one of {PREFILL_MODES}, got {self.prefill_mode!r}")
        if self.regions is not None:
            object.__setattr__(self, "regions", tuple(self.regions))

    @property
    def new_tokens(self) -> int:
        """The most tokens the run may generate."""
        return int(self.max_new_tokens if self.max_new_tokens is not None else self.options.max_new_tokens)

    @classmethod
    def with_source(
        cls,
        name: str,
        prompt: str,
        n_layers: int,
        n_heads: int,
        *,
        source: TargetSource | int | None = None,
        capture: CaptureSpec | None = None,
        regions: Sequence[Region] | None = None,
        **rest,
    ) -> RunSpec:
        """A spec whose stored target comes from a target source (fixed, schedule or live) and
        whose capture fields come from a ``CaptureSpec``."""
        schedule, target = stored_target(source)
        capture = capture or CaptureSpec()
        return cls(
            name,
            prompt,
            n_layers,
            n_heads,
            schedule=schedule,
            target=target,
            prefill_mode=capture.prefill,
            capture_decode=capture.decode,
            capture_scope=capture.scope,
            regions=None if regions is None else tuple(regions),
            **rest,
        )


def stored_target(source: TargetSource | int | None) -> tuple[Schedule | None, int | None]:
    """``(schedule, target)`` as a run stores them: a (live) schedule keeps its schedule, a fixed
    target its region, a live target the region it started on."""
    if isinstance(source, int):
        return None, source
    if isinstance(source, Schedule):
        return source, None
    if isinstance(source, LiveSchedule):
        return source.schedule, None
    if isinstance(source, FixedTarget):
        return None, source.target
    if isinstance(source, LiveTarget):
        return None, source.get()
    return None, None
