"""The paper's evaluation protocols, run offline: static VQA, static narration, dynamic narration
and region steering, each under the gaze / random / all head sets and the unsteered baseline.

An :class:`Evaluation` is built from a loaded model, the strips and the gaze scores; ``run()`` is a
generator that yields :class:`EvalProgress` after every generation and checks a cancel token, and
``report()`` summarises whatever has completed (so a cancelled run still writes its work). The
report's JSON schema is documented in ``docs/evaluation_json.md``; the summary maths lives in
``core/evaluation_report.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from gaze_explorer.core.comparison import segment_record
from gaze_explorer.core.errors import CancelledError, GazeExplorerError, ScheduleError
from gaze_explorer.core.evaluation_report import PROTOCOLS, build_report
from gaze_explorer.core.heads import (
    DEFAULT_CONTROL_POOL,
    DEFAULT_CONTROL_SEED,
    HeadChoice,
    HeadSet,
    choose_heads,
    default_top_k,
)
from gaze_explorer.core.judges import AttributeJudge, CaptionJudge, Judge, PanelTruth, judge_for
from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.protocol_choices import (
    BASELINE_RULES,
    BIAS_ON,
    DEFAULT_BASELINE_RULE,
    DEFAULT_BIAS_ON,
)
from gaze_explorer.core.regions import Region, box_region, panel_regions
from gaze_explorer.core.stats import DEFAULT_RESAMPLES
from gaze_explorer.core.steering import (
    SWITCH_ALIGNMENTS,
    FixedTarget,
    Schedule,
    SteeringMode,
    SteeringPlan,
)
from gaze_explorer.core.strips import Strip

CONDITIONS = ("gaze", "image", "localization", "random", "all", "baseline")
DEFAULT_CONDITIONS = ("gaze", "random", "all", "baseline")
CRITERION_CONDITIONS = ("gaze", "image", "localization")  # top-K heads by that criterion's scores
# The random control's pool in evaluations: core.heads' default, the paper's headline band
EVAL_CONTROL_POOL = DEFAULT_CONTROL_POOL

# The paper's prompts (PAPER_PROTOCOL.md); the demo model has its own (demo/prompts.py).
PAPER_PROMPTS = {
    "static": "What is the main action or event happening in this comic strip? Answer briefly.",
    "narration": "What is happening in this panel of the comic strip?",
    "dynamic": "Describe each panel of this comic strip in order, from left to right, "
    "in one short sentence each.",
    "region": "What is happening in this panel of the comic strip?",
}
# Static VQA: 15 new tokens (the authors' script); narration 100 (the paper); region: the project's.
DEFAULT_MAX_NEW_TOKENS = {"static": 15, "narration": 100, "region": 30}


@dataclass(frozen=True)
class EvalConfig:
    """What to run. ``None`` takes the protocol's default: ``max_new_tokens`` (dynamic: one
    ``switch_every`` per panel) and ``bias_on`` (``core.protocol_choices.DEFAULT_BIAS_ON``). The
    other defaults are the paper's too: 10,000 bootstrap resamples, the same-as-unsteered rule
    ``jaccard``."""

    protocol: str = "static"
    top_k: int = 10
    prompt: str | None = None
    mode: SteeringMode = SteeringMode.BOOST_SUPPRESS
    strength: float = 1e4
    bias_on: str | None = None  # "prefill+decode" or "decode"; None: the protocol's default
    max_new_tokens: int | None = None
    switch_every: int = 50
    switch_alignment: str = "project"  # or "authors": each switch one token later (SWITCH_ALIGNMENTS)
    seed: int = 0
    random_percentile: float = 5.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    n_resamples: int = DEFAULT_RESAMPLES  # the paper's 10,000 bootstrap resamples
    baseline_rule: str = DEFAULT_BASELINE_RULE  # a steered answer like the unsteered one is a miss

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise GazeExplorerError(
                f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}"
            )
        if self.switch_alignment not in SWITCH_ALIGNMENTS:
            raise GazeExplorerError(
                f"unknown switch alignment {self.switch_alignment!r}; choose one of {', '.join(SWITCH_ALIGNMENTS)}"
            )
        if self.bias_on is not None and self.bias_on not in BIAS_ON:
            raise GazeExplorerError(f"bias_on must be one of {', '.join(BIAS_ON)}, got {self.bias_on!r}")
        if self.baseline_rule not in BASELINE_RULES:
            raise GazeExplorerError(
                f"unknown baseline rule {self.baseline_rule!r}; choose one of {', '.join(BASELINE_RULES)}"
            )
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad or not self.conditions:
            raise GazeExplorerError(f"unknown condition(s) {bad}; choose among {', '.join(CONDITIONS)}")

    @property
    def effective_bias_on(self) -> str:
        """``bias_on``, or the protocol's default when it is None."""
        return self.bias_on or DEFAULT_BIAS_ON[self.protocol]


@dataclass(frozen=True)
class EvalProgress:
    done: int
    total: int
    message: str


@dataclass
class HeadConditions:
    """The steered head sets of an evaluation, from one gaze-score grid ``[layer, head]``, chosen by
    ``core.heads.choose_heads`` (``choices`` says how each was chosen: K, seed, pool, pool size)."""

    gaze: HeadSet
    random: HeadSet
    all: HeadSet
    choices: dict[str, HeadChoice] = field(default_factory=dict)

    @classmethod
    def from_scores(
        cls,
        scores: np.ndarray | Mapping[str, np.ndarray],
        k: int,
        seed: int = DEFAULT_CONTROL_SEED,
        pool: str = EVAL_CONTROL_POOL,
        criteria: Sequence[str] = (),
        selection: Mapping[str, Mapping] | None = None,
    ) -> HeadConditions:
        """``scores``: the gaze grid, or a grid per criterion (``core.criteria.criterion_scores``);
        ``criteria`` (``image``, ``localization``) adds their top-K sets to the gaze set;
        ``selection`` (``core.criteria.criterion_scores_and_selection``) is recorded in their choices."""
        grids = {"gaze": scores} if isinstance(scores, np.ndarray) else dict(scores)
        n_layers, n_heads = np.asarray(grids["gaze"]).shape
        specs = [("gaze", f"gaze:{k}"), ("random", f"random:{k}"), ("all", "all")]
        specs += [(c, f"{c}:{k}") for c in criteria if c != "gaze"]
        choices = {
            name: choose_heads(
                spec, n_layers, n_heads, scores=grids, seed=seed, pool=pool, selection=selection
            )
            for name, spec in specs
        }
        return cls(choices["gaze"].heads, choices["random"].heads, choices["all"].heads, choices)

    def head_set(self, condition: str) -> HeadSet:
        """The steered heads of a condition (``gaze``, ``image``, ``localization``, ``random``, ``all``)."""
        if condition in ("gaze", "random", "all"):
            return getattr(self, condition)
        if condition not in self.choices:
            raise GazeExplorerError(f"no {condition} heads: their criterion's scores were not given")
        return self.choices[condition].heads


def derangement(n: int, rng: np.random.Generator) -> list[int]:
    """A uniformly random permutation of ``range(n)`` with no fixed point (never the identity)."""
    if n < 2:
        raise ScheduleError(f"dynamic narration needs at least 2 panels to reorder, got {n}")
    while True:  # rejection sampling: about e tries on average
        perm = [int(v) for v in rng.permutation(n)]
        if all(p != i for i, p in enumerate(perm)):
            return perm


@dataclass
class _Job:
    strip_index: int
    condition: str
    target: int | None  # 0-based; None for the baseline of static/narration/region
    schedule: tuple[int, ...] | None = None


@dataclass
class Evaluation:
    """One evaluation run: build it, iterate ``run()``, then call ``report()``."""

    loaded: object  # inference.loading.LoadedModel
    strips: Sequence[Strip]
    heads: HeadConditions
    config: EvalConfig = field(default_factory=EvalConfig)
    boxes: Sequence[Sequence[Sequence[float]]] | None = None  # region protocol: per strip, per target
    judge: Judge | None = None
    model_name: str = ""
    generations: list[dict] = field(default_factory=list)
    cancelled: bool = False
    # "i/n": ``strips`` are ALL the strips; every one is planned (so the dynamic schedules, drawn
    # strip after strip from one seeded generator, are the unsharded run's) but only this shard's run
    shard: str | None = None
    # strip indices to run, the rest planned only (a sharded sweep's (cell, strip) work units)
    only: frozenset[int] | None = None
    coverage: dict[int, float] = field(default_factory=dict)  # strip index -> image fraction seen

    def __post_init__(self) -> None:
        if not self.strips:
            raise GazeExplorerError("no strips to evaluate")
        for s in self.strips:
            if not (s.attributes or s.captions):
                raise GazeExplorerError(
                    f"strip {s.name} has neither attributes.json nor captions.json: nothing to judge against"
                )
        if self.config.protocol == "region" and self.boxes is None:
            self.boxes = [panel_boxes(s) for s in self.strips]

    # -- planning --------------------------------------------------------------------------------
    def _jobs(self) -> list[_Job]:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        jobs: list[_Job] = []
        for i, strip in enumerate(self.strips):
            n = len(self.boxes[i]) if cfg.protocol == "region" else strip.n_panels
            if cfg.protocol == "dynamic":
                schedule = tuple(derangement(n, rng))
                jobs += [_Job(i, c, None, schedule) for c in cfg.conditions]
                continue
            # the baseline first, so each steered answer can be compared with it as it lands
            for c in sorted(cfg.conditions, key=lambda c: c != "baseline"):
                if c == "baseline":
                    jobs.append(_Job(i, c, None))
                else:
                    jobs += [_Job(i, c, k) for k in range(n)]
        if self.shard:
            keep = set(shard(range(len(self.strips)), self.shard))
            jobs = [job for job in jobs if job.strip_index in keep]
        if self.only is not None:
            jobs = [job for job in jobs if job.strip_index in self.only]
        return jobs

    @property
    def prompt(self) -> str:
        return self.config.prompt or PAPER_PROMPTS[self.config.protocol]

    def _regions(self, strip_index: int, grid) -> list[Region]:
        strip = self.strips[strip_index]
        if self.config.protocol == "region":
            return [box_region(grid, b, name=f"box {k + 1}") for k, b in enumerate(self.boxes[strip_index])]
        return panel_regions(grid, strip.n_panels, strip.panel_widths)

    def _options(self, n_targets: int) -> GenerationOptions:
        cfg = self.config
        if cfg.max_new_tokens is not None:
            n = cfg.max_new_tokens
        elif cfg.protocol == "dynamic":
            n = cfg.switch_every * n_targets
        else:
            n = DEFAULT_MAX_NEW_TOKENS[cfg.protocol]
        return GenerationOptions(
            max_new_tokens=n,
            seed=cfg.seed,
            repetition_penalty=cfg.repetition_penalty,
            no_repeat_ngram_size=cfg.no_repeat_ngram_size,
        )

    # -- running ---------------------------------------------------------------------------------
    def run(self, cancel: threading.Event | None = None) -> Iterator[EvalProgress]:
        """Run every generation, yielding progress; stops early (keeping results) on ``cancel``."""
        from gaze_explorer.inference.generation import FinishedEvent, TokenEvent, generate_stream

        jobs = self._jobs()
        regions_of: dict[int, list[Region]] = {}  # only the current strip's, kept across its jobs
        self.generations = []
        yield EvalProgress(0, len(jobs), f"{self.config.protocol}: {len(jobs)} generations")
        for n_done, job in enumerate(jobs, start=1):
            if cancel is not None and cancel.is_set():
                self.cancelled = True
                return
            strip = self.strips[job.strip_index]
            if job.strip_index not in regions_of:
                prepared = self.loaded.adapter.build_inputs(strip.image, self.prompt)
                regions_of = {job.strip_index: self._regions(job.strip_index, prepared.grids[0])}
                self.coverage[job.strip_index] = float(prepared.info["vision"].get("coverage", 1.0))
            regions = regions_of[job.strip_index]
            plan, target = None, None
            if job.condition != "baseline":
                plan = SteeringPlan(
                    self.heads.head_set(job.condition),
                    self.config.mode,
                    self.config.strength,
                    decode_only=self.config.effective_bias_on == "decode",
                )
            if job.schedule is not None:
                delay = SWITCH_ALIGNMENTS[self.config.switch_alignment]
                target = Schedule(job.schedule, self.config.switch_every, delay)
            elif job.target is not None:
                target = FixedTarget(job.target)
            ids: list[int] = []
            status, reason, switches = "finished", "", []
            stream = generate_stream(
                self.loaded,
                strip.image,
                self.prompt,
                regions=regions,
                plan=plan,
                target=target,
                options=self._options(len(regions)),
                capture=CaptureSpec(decode=False, prefill="none"),
                cancel=cancel,
            )
            for event in stream:
                if isinstance(event, TokenEvent):
                    ids.append(int(event.token_id))
                elif isinstance(event, FinishedEvent):
                    status, reason, switches = event.status, event.reason, event.switches
            if status == "cancelled":
                self.cancelled = True
                return
            if status == "failed":
                raise GazeExplorerError(f"generation failed on strip {strip.name}: {reason}")
            self.generations.append(self._record(job, ids, len(regions), [s.step for s in switches]))
            yield EvalProgress(n_done, len(jobs), f"{strip.name} {job.condition}")

    def _record(self, job: _Job, ids: list[int], n_targets: int, switch_steps: Sequence[int] = ()) -> dict:
        strip = self.strips[job.strip_index]
        decode = self.loaded.adapter.decode
        truth = _truth(strip, self.config.protocol, n_targets)
        judge = self.judge or judge_for(truth)
        rec: dict = {
            "strip": strip.name,
            "condition": job.condition,
            "target": None if job.target is None else job.target + 1,
            "text": decode(ids),
            "n_tokens": len(ids),
        }
        if job.schedule is not None:
            every = self.config.switch_every
            rec["schedule"] = [t + 1 for t in job.schedule]
            rec["switch_steps"] = list(switch_steps)  # decode steps where the target changed
            rec["segments"] = []
            for s, panel in enumerate(job.schedule):
                text = decode(ids[s * every : (s + 1) * every])
                rec["segments"].append(segment_record(text, panel, judge.judge(text, truth)))
            return rec
        verdict = judge.judge(rec["text"], truth)
        rec["judge"] = verdict.to_dict()
        rec["degenerate"] = verdict.degenerate
        if job.target is not None:
            rec["credit"] = verdict.credit(job.target)
        else:  # the baseline is scored against every target in the report
            rec["credits"] = [verdict.credit(k) for k in range(n_targets)]
        if truth.attributes and truth.captions and not isinstance(judge, CaptionJudge):
            rec["caption_judge"] = CaptionJudge().judge(rec["text"], truth).to_dict()
        return rec

    def report(self) -> dict:
        """The JSON-ready summary of the completed generations (see docs/evaluation_json.md)."""
        cfg = self.config
        judge = self.judge or judge_for(_truth(self.strips[0], cfg.protocol, self.strips[0].n_panels))
        return build_report(
            protocol=cfg.protocol,
            model=self.model_name,
            generations=self.generations,
            heads={
                "gaze": self.heads.gaze,
                **{c: self.heads.head_set(c) for c in cfg.conditions if c in ("image", "localization")},
                "random": self.heads.random,
                "all": self.heads.all,
            },
            head_choices={name: choice.to_dict() for name, choice in self.heads.choices.items()},
            settings={
                "prompt": self.prompt,
                # how strips were fitted to the model, and the least of a strip that reached it
                "input_policy": str(getattr(self.loaded.adapter, "input_policy", "native")),
                "image_coverage_min": min(self.coverage.values()) if self.coverage else None,
                "mode": cfg.mode.value,
                "strength": cfg.strength,
                "max_new_tokens": self._options(self.strips[0].n_panels).max_new_tokens,
                "bias_on": cfg.effective_bias_on,
                "switch_every": cfg.switch_every if cfg.protocol == "dynamic" else None,
                "switch_alignment": cfg.switch_alignment if cfg.protocol == "dynamic" else None,
                "seed": cfg.seed,
                "random_percentile": cfg.random_percentile,
                "control_pool": self.heads.choices["random"].pool if "random" in self.heads.choices else None,
                "n_resamples": cfg.n_resamples,
                "repetition_penalty": cfg.repetition_penalty,
                "no_repeat_ngram_size": cfg.no_repeat_ngram_size,
                "judge": getattr(judge, "name", type(judge).__name__),
                "n_strips": len(shard(self.strips, self.shard)),
                "baseline_rule": cfg.baseline_rule,
            },
            status="cancelled" if self.cancelled else "finished",
            n_resamples=cfg.n_resamples,
            seed=cfg.seed,
            baseline_rule=cfg.baseline_rule,
        )

    def run_to_end(self, cancel: threading.Event | None = None) -> dict:
        """Run everything (no progress) and return the report; raises CancelledError if cancelled."""
        for _ in self.run(cancel):
            pass
        if self.cancelled:
            raise CancelledError("evaluation cancelled; partial results are in .report()")
        return self.report()


def _truth(strip: Strip, protocol: str, n_targets: int) -> PanelTruth:
    return PanelTruth(attributes=strip.attributes, captions=strip.captions)


def panel_boxes(strip: Strip, margin: float = 0.15) -> list[tuple[float, float, float, float]]:
    """One box per panel, inset by ``margin`` of its size: the region protocol's default targets."""
    boxes = []
    x = 0.0
    h = float(strip.image.height)
    for w in strip.panel_widths:
        boxes.append((x + margin * w, margin * h, x + (1 - margin) * w, (1 - margin) * h))
        x += w
    return boxes


def shard(items: Sequence, spec: str | None) -> list:
    """The ``i``-th of ``n`` deterministic slices (``spec`` is ``"i/n"``, 1-based): every n-th item."""
    if not spec:
        return list(items)
    i, n = parse_shard(spec)
    return [item for j, item in enumerate(items) if j % n == i - 1]


def parse_shard(spec: str) -> tuple[int, int]:
    try:
        i_text, n_text = spec.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError as exc:
        raise GazeExplorerError(
            f"--shard {spec!r}: write i/n, e.g. 1/4 for the first of four shards"
        ) from exc
    if not 1 <= i <= n:
        raise GazeExplorerError(f"--shard {spec!r}: need 1 <= i <= n")
    return i, n


__all__ = [
    "CONDITIONS",
    "PAPER_PROMPTS",
    "AttributeJudge",
    "EvalConfig",
    "EvalProgress",
    "Evaluation",
    "HeadConditions",
    "default_top_k",
    "derangement",
    "panel_boxes",
    "parse_shard",
    "shard",
]
