"""What a session file says about a run, as the reader hands it out: :class:`RunInfo` (parameters,
progress, switches, capture scope, the user's name) with the run's derived label."""

from __future__ import annotations

from dataclasses import dataclass, field

from gaze_explorer.core.capture_scope import CaptureScope
from gaze_explorer.core.regions import Region
from gaze_explorer.core.run_label import display_name, run_label
from gaze_explorer.core.steering import Switch
from gaze_explorer.storage.schema import FIRST_IMAGE


@dataclass(frozen=True)
class RunInfo:
    """A run's parameters and progress, as stored."""

    run_id: str
    name: str
    status: str  # running | finished | cancelled | failed | unfinished (writer gone mid-run)
    n_steps: int
    prompt: str
    prompt_len: int
    n_layers: int
    n_heads: int
    max_keys: int
    prefill_mode: str
    capture_decode: bool
    options: dict | None
    plan: dict | None
    schedule: dict | None
    target: object
    switches: tuple[Switch, ...]
    reason: str
    created: str
    regions: tuple[Region, ...] | None  # the run's own regions, if they differ from the session's
    targets: tuple[int | None, ...] = ()  # the target region of each complete step
    # what of each decode row was stored: full, image-keys (keys up to the last image token) or
    # heads (the other heads' rows are NaN); see core.capture_scope
    capture_scope: CaptureScope = field(default_factory=CaptureScope)
    user_name: str = ""  # the name the user gave the run ("" = none; version 1 had none)
    image_key: str = FIRST_IMAGE  # the session image the run was made on

    @property
    def label(self) -> str:
        """The run's label derived from its head set, target and switches (core.run_label)."""
        names = [r.name for r in self.regions] if self.regions else []
        return run_label(self.plan, self.schedule, self.target, self.switches, names)

    @property
    def display_name(self) -> str:
        """The user's name for the run, else its label."""
        return display_name(self.user_name, self.label)

    @property
    def params(self) -> dict:
        """The run's parameters in one dict (prompt, generation options, steering plan, schedule)."""
        return {
            "prompt": self.prompt,
            "options": self.options,
            "plan": self.plan,
            "schedule": self.schedule,
            "target": self.target,
            "prefill_mode": self.prefill_mode,
        }
