"""Steering plans, schedules and the live target handle.

The attention function (``inference/attention.py``) reads a :class:`TargetSource` at every decode
step: a fixed target, a :class:`Schedule` (decode step -> region), or a :class:`LiveTarget` that
another thread (the GUI) changes while tokens stream, or a :class:`LiveSchedule` (a schedule that
the GUI may override live until its next switch point). Targets are 0-based region indices into
the run's region list (panel k is index k-1).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from gaze_explorer.core.errors import ScheduleError
from gaze_explorer.core.heads import HeadChoice, HeadSet

DEFAULT_STRENGTH = 1e4


class SteeringMode(str, Enum):  # noqa: UP042 - StrEnum would change str() of saved modes
    """The paper's bias modes (what gets -strength besides the non-target image tokens)."""

    BOOST_SUPPRESS = "boost_suppress"  # +s target image tokens, -s other image tokens
    SUPPRESS_IMAGE = "suppress_image"  # -s other image tokens only
    SUPPRESS_ALL = "suppress_all"  # also -s on the non-image prompt tokens
    MAX_SUPPRESS_ALL = "max_suppress_all"  # also -s on every generated token

    @classmethod
    def parse(cls, value: str | SteeringMode) -> SteeringMode:
        try:
            return cls(value)
        except ValueError as exc:
            names = ", ".join(m.value for m in cls)
            raise ScheduleError(f"unknown steering mode {value!r}; choose one of {names}") from exc


@dataclass(frozen=True)
class SteeringPlan:
    """Which heads get the bias, how, and how hard; ``choice`` says how the heads were chosen
    (``core.heads.choose_heads``: spec, criterion, K, seed, pool, pool size), recorded with the run."""

    heads: HeadSet
    mode: SteeringMode = SteeringMode.BOOST_SUPPRESS
    strength: float = DEFAULT_STRENGTH
    decode_only: bool = True
    choice: HeadChoice | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        choice = None if self.choice is None else self.choice.to_dict()
        return {
            "head_set": self.heads.name,
            "heads": [list(h) for h in self.heads.heads],
            "mode": self.mode.value,
            "strength": float(self.strength),
            "decode_only": bool(self.decode_only),
            # the heads are listed once, above
            "choice": None if choice is None else {k: v for k, v in choice.items() if k != "heads"},
        }


@dataclass(frozen=True)
class Switch:
    """A target change that took effect: the token at ``step`` was the first produced under ``to``."""

    step: int
    previous: int | None
    to: int | None
    source: str  # "schedule" | "live"


class TargetSource:
    """Something the generation loop asks for the target at each decode step."""

    def target_at(self, step: int) -> int | None:  # pragma: no cover - interface
        raise NotImplementedError

    def switch_source(self, step: int) -> str | None:
        """Who caused a change of target at ``step`` ("live" / "schedule"); None: the recorder's kind."""
        return None


@dataclass(frozen=True)
class FixedTarget(TargetSource):
    target: int | None

    def target_at(self, step: int) -> int | None:
        return self.target


# When a schedule's switches land: ``project`` (default) makes the token at step k * switch_every the
# first produced under the k-th target, so each judged window of switch_every tokens was generated
# under its own panel; ``authors`` is the authors' script, whose hook counts decode forwards (the
# first one yields token 1), so each switch lands one token later (docs/evaluation_json.md).
SWITCH_ALIGNMENTS = {"project": 0, "authors": 1}  # alignment -> Schedule.delay


@dataclass(frozen=True)
class Schedule(TargetSource):
    """Targets in order, switching every ``switch_every`` decode steps (the last one then stays);
    each switch comes ``delay`` steps late (``SWITCH_ALIGNMENTS``: 1 is the authors' timing)."""

    targets: tuple[int, ...]
    switch_every: int
    delay: int = 0

    def __post_init__(self) -> None:
        if not self.targets:
            raise ScheduleError("a schedule needs at least one target")
        if self.switch_every < 1:
            raise ScheduleError(f"switch-every must be at least 1 token, got {self.switch_every}")
        if self.delay < 0:
            raise ScheduleError(f"a schedule's delay must be >= 0 steps, got {self.delay}")

    def target_at(self, step: int) -> int | None:
        return self.targets[min(max(step - self.delay, 0) // self.switch_every, len(self.targets) - 1)]

    def to_dict(self) -> dict:
        out = {"targets": [t + 1 for t in self.targets], "switch_every": self.switch_every}
        return {**out, "delay": self.delay} if self.delay else out  # sessions without a delay unchanged


def check_targets(targets: Iterable[int | None], n_regions: int) -> None:
    """Raise ScheduleError unless every target (a 0-based region index; None: no target) is one of
    the run's ``n_regions`` regions. The one check, and the one message, of the CLI, the app and
    ``generate_stream``."""
    bad = sorted({int(t) for t in targets if t is not None and not 0 <= int(t) < n_regions})
    if bad:
        shown = ", ".join(str(t + 1) for t in bad)
        verb = "does not exist" if len(bad) == 1 else "do not exist"
        raise ScheduleError(
            f"panel{'s' if len(bad) > 1 else ''} {shown} {verb}: the image has {n_regions} panel(s)"
        )


def source_targets(source: TargetSource | int | None) -> tuple[int | None, ...]:
    """The targets a source will steer to (as far as known before the run: a live source's current one)."""
    if source is None:
        return ()
    if isinstance(source, int):
        return (source,)
    if isinstance(source, Schedule | LiveSchedule):
        return tuple(source.targets)
    if isinstance(source, FixedTarget):
        return (source.target,)
    if isinstance(source, LiveTarget):
        return (source.get(),)
    return ()


def check_steering(
    plan: SteeringPlan | None,
    source: TargetSource | int | None,
    n_regions: int,
    n_layers: int,
    n_heads: int,
    attention_layers: Iterable[int] | None = None,
) -> None:
    """Check a steered run's input before it starts: the plan names heads, each in range (and in a
    softmax-attention layer when ``attention_layers`` is given), and every target is a region.
    Raises HeadSpecError or ScheduleError."""
    if plan is not None:
        if len(plan.heads) == 0:
            raise ScheduleError("the head set is empty: run discovery, or pick heads in the grid")
        plan.heads.validate(n_layers, n_heads, attention_layers)
    check_targets(source_targets(source), n_regions)


def parse_schedule(text: str, n_regions: int, switch_every: int) -> Schedule:
    """Parse a 1-based panel schedule such as ``4,2,1,6,5,3``."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",")]
    if not parts or any(p == "" for p in parts):
        raise ScheduleError(f"schedule {text!r}: write panel numbers separated by commas, e.g. 4,2,1,6,5,3")
    targets = []
    for p in parts:
        try:
            k = int(p)
        except ValueError as exc:
            raise ScheduleError(f"schedule {text!r}: {p!r} is not a panel number") from exc
        targets.append(k - 1)
    check_targets(targets, n_regions)
    return Schedule(tuple(targets), int(switch_every))


@dataclass
class LiveTarget(TargetSource):
    """A thread-safe target that another thread may change at any time.

    ``set`` is called from the GUI; the generation loop calls ``target_at`` once per decode step,
    so a change takes effect at the next token.
    """

    initial: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._value = self.initial

    def set(self, target: int | None) -> None:
        with self._lock:
            self._value = target

    def get(self) -> int | None:
        with self._lock:
            return self._value

    def target_at(self, step: int) -> int | None:
        return self.get()


class LiveSchedule(TargetSource):
    """A :class:`Schedule` that another thread may override live while tokens stream.

    ``set(target)`` (called from the GUI) takes effect at the next decode step and holds until the
    schedule's next switch point; from there on the schedule leads again. After the schedule's
    last switch point the last target stays, so a live switch then holds to the end of the run.
    The step where a live switch lands reports ``switch_source == "live"``; the schedule's own
    switches stay "schedule". ``target_at`` must be called once per step, in step order (the
    generation loop does).
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self._lock = threading.Lock()
        self._pending: tuple[int | None] | None = None  # a live target waiting for the next step
        self._override: tuple[int | None, int, int | None] | None = None  # (target, first, stop)
        self._live_steps: set[int] = set()
        self._current: int | None = schedule.target_at(0)

    @property
    def targets(self) -> tuple[int, ...]:
        return self.schedule.targets

    @property
    def switch_every(self) -> int:
        return self.schedule.switch_every

    def next_switch_point(self, step: int) -> int | None:
        """The first scheduled switch step after ``step`` (None once the last target is reached)."""
        every = self.schedule.switch_every
        point = (step // every + 1) * every
        return point if point < every * len(self.schedule.targets) else None

    def set(self, target: int | None) -> None:
        with self._lock:
            self._pending = (target,)

    def get(self) -> int | None:
        """The target of the latest step (or the live one waiting for the next step)."""
        with self._lock:
            return self._pending[0] if self._pending is not None else self._current

    def target_at(self, step: int) -> int | None:
        with self._lock:
            if self._pending is not None:
                (target,) = self._pending
                self._pending = None
                self._override = (target, step, self.next_switch_point(step))
                self._live_steps.add(step)
            if self._override is not None:
                target, first, stop = self._override
                if first <= step and (stop is None or step < stop):
                    self._current = target
                    return target
                if stop is not None and step >= stop:
                    self._override = None
            self._current = self.schedule.target_at(step)
            return self._current

    def switch_source(self, step: int) -> str | None:
        with self._lock:
            return "live" if step in self._live_steps else None

    def to_dict(self) -> dict:
        return self.schedule.to_dict()


class SwitchRecorder:
    """Records the steps where the target actually changed, as the generation loop sees them."""

    def __init__(self, source: TargetSource, kind: str) -> None:
        self.source = source
        self.kind = kind
        self.switches: list[Switch] = []
        self._last: int | None = None
        self._started = False

    def target_for_step(self, step: int) -> int | None:
        target = self.source.target_at(step)
        if self._started and target != self._last:
            source = self.source.switch_source(step) or self.kind
            self.switches.append(Switch(step, self._last, target, source))
        self._last = target
        self._started = True
        return target
