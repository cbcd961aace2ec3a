"""Run a protocol across a sweep of K / strength / prompt cells (``core.sweep``), each through the
same :class:`~gaze_explorer.inference.evaluation.Evaluation` as ``evaluate``.

The unsteered baselines do not depend on K, the strength or the head set, so they are generated
once per prompt (one per strip) and reused by every cell of that prompt; they are kept in the sweep
JSON, so a resumed sweep reuses them too. ``run()`` yields :class:`SweepProgress` over the whole
sweep and calls ``on_cell`` with each finished cell's record (the CLI writes the JSON there).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from gaze_explorer.core.errors import ControlPoolError
from gaze_explorer.core.heads import DEFAULT_CONTROL_SEED, choose_heads
from gaze_explorer.core.judges import Judge
from gaze_explorer.core.strips import Strip
from gaze_explorer.core.sweep import ALL_HEADS, SweepCell, cell_record
from gaze_explorer.inference.evaluation import EVAL_CONTROL_POOL, EvalConfig, Evaluation, HeadConditions


@dataclass(frozen=True)
class SweepProgress:
    done: int  # generations finished in this run (resumed cells not counted)
    total: int
    message: str


@dataclass
class Sweep:
    """One sweep run: ``cells`` minus those in ``done`` (a resumed file's records)."""

    loaded: object  # inference.loading.LoadedModel
    strips: Sequence[Strip]
    grids: Mapping[str, np.ndarray]  # [layer, head] scores per criterion
    cells: Sequence[SweepCell]
    config: EvalConfig  # everything but the cell's K, strength, prompt and condition
    pool: str = EVAL_CONTROL_POOL
    seed: int = DEFAULT_CONTROL_SEED
    judge: Judge | None = None
    model_name: str = ""
    done: dict[tuple, dict] = field(default_factory=dict)  # cell key -> record
    baseline_generations: dict[str, list[dict]] = field(default_factory=dict)  # prompt -> records
    n_generations: int = 0  # generations run by this object (baselines included)
    cancelled: bool = False

    def todo(self) -> list[SweepCell]:
        return [c for c in self.cells if c.key() not in self.done]

    def _jobs_per_cell(self) -> int:
        if self.config.protocol == "dynamic":
            return len(self.strips)
        return sum(s.n_panels for s in self.strips)

    def total_generations(self) -> int:
        todo = self.todo()
        prompts = {c.prompt for c in todo} - set(self.baseline_generations)
        return len(prompts) * len(self.strips) + len(todo) * self._jobs_per_cell()

    def _config(self, cell: SweepCell, condition: str) -> EvalConfig:
        k = cell.k if cell.k is not None else self.config.top_k
        return replace(
            self.config, top_k=k, strength=cell.strength, prompt=cell.prompt, conditions=(condition,)
        )

    def _heads(self, cell: SweepCell) -> HeadConditions:
        """The cell's own head set, under its condition's name (the other slots hold the same set:
        the evaluation runs one condition)."""
        n_layers, n_heads = np.asarray(self.grids["gaze"]).shape
        spec = ALL_HEADS if cell.criterion == ALL_HEADS else f"{cell.criterion}:{cell.k}"
        choice = choose_heads(spec, n_layers, n_heads, scores=self.grids, seed=self.seed, pool=self.pool)
        return HeadConditions(choice.heads, choice.heads, choice.heads, {cell.criterion: choice})

    def _evaluation(self, heads: HeadConditions, config: EvalConfig) -> Evaluation:
        return Evaluation(
            self.loaded, self.strips, heads, config, judge=self.judge, model_name=self.model_name
        )

    def _run(
        self, evaluation: Evaluation, offset: int, total: int, label: str, cancel
    ) -> Iterator[SweepProgress]:
        for p in evaluation.run(cancel):
            if p.done:
                self.n_generations += 1
            yield SweepProgress(offset + p.done, total, f"{label}: {p.message}")
        if evaluation.cancelled:
            self.cancelled = True

    def run(
        self,
        cancel: threading.Event | None = None,
        on_cell: Callable[[dict], None] | None = None,
    ) -> Iterator[SweepProgress]:
        """Run every cell not done yet; each finished cell goes to ``done`` and ``on_cell``."""
        total = self.total_generations()
        offset = 0
        yield SweepProgress(0, total, f"sweep: {len(self.todo())} cells, {total} generations")
        for cell in self.todo():
            if cell.prompt not in self.baseline_generations:
                n_layers, n_heads = np.asarray(self.grids["gaze"]).shape
                unsteered = choose_heads(ALL_HEADS, n_layers, n_heads)  # unused: the baseline steers nothing
                heads = HeadConditions(unsteered.heads, unsteered.heads, unsteered.heads)
                evaluation = self._evaluation(heads, self._config(cell, "baseline"))
                yield from self._run(evaluation, offset, total, f"baseline {cell.prompt[:20]}", cancel)
                if self.cancelled:
                    return
                self.baseline_generations[cell.prompt] = list(evaluation.generations)
                offset += len(evaluation.generations)
            try:
                heads = self._heads(cell)
            except ControlPoolError as exc:  # this K is beyond the pool: say so in the cell, go on
                record = {
                    **cell_record(cell, {"accuracy": None, "ci95": [None, None], "n": 0}),
                    "error": str(exc),
                }
                offset += self._jobs_per_cell()
                yield SweepProgress(offset, total, f"{cell.label()}: skipped ({exc})")
                self._finish(cell, record, on_cell)
                continue
            evaluation = self._evaluation(heads, self._config(cell, cell.criterion))
            yield from self._run(evaluation, offset, total, cell.label(), cancel)
            if self.cancelled:
                return  # the unfinished cell is dropped: its pairs would bias the estimate
            offset += len(evaluation.generations)
            evaluation.generations = self.baseline_generations[cell.prompt] + evaluation.generations
            report = evaluation.report()
            choice = heads.choices[cell.criterion].to_dict()
            record = cell_record(cell, report["conditions"][cell.criterion], heads=choice)
            self._finish(cell, record, on_cell)

    def _finish(self, cell: SweepCell, record: dict, on_cell) -> None:
        self.done[cell.key()] = record
        if on_cell is not None:
            on_cell(record)

    def baseline_summaries(self) -> dict[str, dict]:
        """Per prompt, the unsteered baseline's accuracy (its answer scored against every target)."""
        from gaze_explorer.core.evaluation_report import build_report

        out = {}
        for prompt, gens in self.baseline_generations.items():
            rep = build_report(
                protocol=self.config.protocol,
                model=self.model_name,
                generations=gens,
                heads={},
                settings={},
                n_resamples=self.config.n_resamples,
                seed=self.config.seed,
            )
            out[prompt] = rep["conditions"].get("baseline", {})
        return out
