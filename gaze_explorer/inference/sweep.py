"""Run a protocol across a sweep of K / strength / prompt cells (``core.sweep``), each through the
same :class:`~gaze_explorer.inference.evaluation.Evaluation` as ``evaluate``.

The unsteered baselines do not depend on K, the strength or the head set, so they are generated
once per prompt (one per strip) and reused by every cell of that prompt; they are kept in the sweep
JSON, so a resumed sweep reuses them too. ``run()`` yields :class:`SweepProgress` over the whole
sweep and calls ``on_cell`` with each finished cell's record (the CLI writes the JSON there).

Sharded (``shard="i/n"``, ``evaluate sweep --executor``): the work is cut into units, the baseline of
a prompt on one strip and one cell on one strip, in the sweep's order; a shard runs every n-th unit
(every strip still planned, so dynamic schedules are the unsharded run's) and keeps its generations
with their strip index (:meth:`Sweep.partial`). ``cli.merge`` puts the units back in order and
computes every cell with :func:`cell_result`, the function an unsharded sweep uses, so the merged
sweep JSON is the unsharded one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from gaze_explorer.core.errors import ControlPoolError, GazeExplorerError
from gaze_explorer.core.evaluation_report import build_report
from gaze_explorer.core.heads import DEFAULT_CONTROL_SEED, choose_heads
from gaze_explorer.core.judges import Judge
from gaze_explorer.core.strips import Strip
from gaze_explorer.core.sweep import ALL_HEADS, SweepCell, cell_record
from gaze_explorer.inference.evaluation import (
    EVAL_CONTROL_POOL,
    EvalConfig,
    Evaluation,
    HeadConditions,
    shard,
)

PARTIAL_KIND = "gaze-explorer-sweep-partial"


def cell_result(
    cell: SweepCell,
    protocol: str,
    baseline: Sequence[dict],
    generations: Sequence[dict],
    heads: Mapping | None,
    *,
    n_resamples: int,
    seed: int,
    baseline_rule: str,
) -> dict:
    """A finished cell's record: its condition summarised over the prompt's baseline answers and its
    own (the evaluation report's condition, same-as-unsteered rule included)."""
    report = build_report(
        protocol=protocol,
        model="",
        generations=[*baseline, *generations],
        heads={},
        settings={},
        n_resamples=n_resamples,
        seed=seed,
        baseline_rule=baseline_rule,
    )
    return cell_record(cell, report["conditions"][cell.criterion], heads=heads)


def error_record(cell: SweepCell, error: str) -> dict:
    """The record of a cell that could not run (a K beyond the control's pool)."""
    return {**cell_record(cell, {"accuracy": None, "ci95": [None, None], "n": 0}), "error": error}


def baseline_summary(protocol: str, generations: Sequence[dict], *, n_resamples: int, seed: int) -> dict:
    """The unsteered baseline's accuracy (its answer scored against every target)."""
    rep = build_report(
        protocol=protocol,
        model="",
        generations=list(generations),
        heads={},
        settings={},
        n_resamples=n_resamples,
        seed=seed,
    )
    return rep["conditions"].get("baseline", {})


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
    shard: str | None = None  # "i/n": run every n-th (baseline or cell, strip) unit only
    # a shard's results: prompt -> [[strip index, generation]], cell index -> heads/error/generations
    shard_baselines: dict[str, list] = field(default_factory=dict)
    shard_cells: dict[int, dict] = field(default_factory=dict)
    # per criterion, what its own selection keeps (core.criteria.criterion_scores_and_selection)
    selection: Mapping[str, Mapping] | None = None

    def todo(self) -> list[SweepCell]:
        return [c for c in self.cells if c.key() not in self.done]

    def _jobs_per_cell(self) -> int:
        if self.config.protocol == "dynamic":
            return len(self.strips)
        return sum(s.n_panels for s in self.strips)

    def _unit_jobs(self, kind: str, j: int) -> int:
        if kind == "baseline" or self.config.protocol == "dynamic":
            return 1
        return self.strips[j].n_panels

    def work_units(self) -> list[tuple[str, object, int]]:
        """The cells still to do as units, in the sweep's order: ``("baseline", prompt, strip)``
        before a prompt's first cell, then ``("cell", cell index, strip)`` for every strip."""
        units: list[tuple[str, object, int]] = []
        prompts = set(self.baseline_generations)
        strips = range(len(self.strips))
        for ci, cell in enumerate(self.cells):
            if cell.key() in self.done:
                continue
            if cell.prompt not in prompts:
                prompts.add(cell.prompt)
                units += [("baseline", cell.prompt, j) for j in strips]
            units += [("cell", ci, j) for j in strips]
        return units

    def total_generations(self) -> int:
        if self.shard:
            return sum(self._unit_jobs(kind, j) for kind, _, j in shard(self.work_units(), self.shard))
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
        choice = choose_heads(
            spec,
            n_layers,
            n_heads,
            scores=self.grids,
            seed=self.seed,
            pool=self.pool,
            selection=self.selection,
        )
        return HeadConditions(choice.heads, choice.heads, choice.heads, {cell.criterion: choice})

    def _evaluation(self, heads: HeadConditions, config: EvalConfig, only=None) -> Evaluation:
        return Evaluation(
            self.loaded,
            self.strips,
            heads,
            config,
            judge=self.judge,
            model_name=self.model_name,
            only=None if only is None else frozenset(only),
        )

    def _baseline_heads(self) -> HeadConditions:
        n_layers, n_heads = np.asarray(self.grids["gaze"]).shape
        unsteered = choose_heads(ALL_HEADS, n_layers, n_heads)  # unused: the baseline steers nothing
        return HeadConditions(unsteered.heads, unsteered.heads, unsteered.heads)

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
        """Run every cell not done yet; each finished cell goes to ``done`` and ``on_cell``
        (sharded: this shard's units, kept in ``shard_baselines`` / ``shard_cells``)."""
        if self.shard:
            yield from self._run_shard(cancel)
            return
        total = self.total_generations()
        offset = 0
        yield SweepProgress(0, total, f"sweep: {len(self.todo())} cells, {total} generations")
        for cell in self.todo():
            if cell.prompt not in self.baseline_generations:
                evaluation = self._evaluation(self._baseline_heads(), self._config(cell, "baseline"))
                yield from self._run(evaluation, offset, total, f"baseline {cell.prompt[:20]}", cancel)
                if self.cancelled:
                    return
                self.baseline_generations[cell.prompt] = list(evaluation.generations)
                offset += len(evaluation.generations)
            try:
                heads = self._heads(cell)
            except ControlPoolError as exc:  # this K is beyond the pool: say so in the cell, go on
                record = error_record(cell, str(exc))
                offset += self._jobs_per_cell()
                yield SweepProgress(offset, total, f"{cell.label()}: skipped ({exc})")
                self._finish(cell, record, on_cell)
                continue
            evaluation = self._evaluation(heads, self._config(cell, cell.criterion))
            yield from self._run(evaluation, offset, total, cell.label(), cancel)
            if self.cancelled:
                return  # the unfinished cell is dropped: its pairs would bias the estimate
            offset += len(evaluation.generations)
            record = cell_result(
                cell,
                self.config.protocol,
                self.baseline_generations[cell.prompt],
                evaluation.generations,
                heads.choices[cell.criterion].to_dict(),
                **self.eval_settings(),
            )
            self._finish(cell, record, on_cell)

    def eval_settings(self) -> dict:
        """What a cell's summary depends on besides its generations (``cell_result``'s keywords)."""
        cfg = self.config
        return {"n_resamples": cfg.n_resamples, "seed": cfg.seed, "baseline_rule": cfg.baseline_rule}

    def _strip_index(self) -> dict[str, int]:
        index = {s.name: j for j, s in enumerate(self.strips)}
        if len(index) != len(self.strips):
            raise GazeExplorerError("a sharded sweep needs strips with distinct names")
        return index

    def _run_shard(self, cancel) -> Iterator[SweepProgress]:
        """This shard's units: per prompt one baseline evaluation over its strips, per cell one
        evaluation over its strips (every strip planned, only these run)."""
        mine = shard(self.work_units(), self.shard)
        baselines: dict[str, list[int]] = {}
        cells: dict[int, list[int]] = {}
        for kind, what, j in mine:
            (baselines.setdefault(what, []) if kind == "baseline" else cells.setdefault(what, [])).append(j)
        first = {}  # the baseline runs with its prompt's first cell's config, as unsharded
        for cell in self.cells:
            first.setdefault(cell.prompt, cell)
        index = self._strip_index()
        total = self.total_generations()
        offset = 0
        yield SweepProgress(0, total, f"sweep shard {self.shard}: {len(mine)} units, {total} generations")
        for prompt, js in baselines.items():
            evaluation = self._evaluation(
                self._baseline_heads(), self._config(first[prompt], "baseline"), only=js
            )
            yield from self._run(evaluation, offset, total, f"baseline {str(prompt)[:20]}", cancel)
            if self.cancelled:
                return
            offset += len(evaluation.generations)
            self.shard_baselines[prompt] = [[index[g["strip"]], g] for g in evaluation.generations]
        for ci, js in cells.items():
            cell = self.cells[ci]
            try:
                heads = self._heads(cell)
            except ControlPoolError as exc:
                self.shard_cells[ci] = {"heads": None, "error": str(exc), "generations": []}
                offset += sum(self._unit_jobs("cell", j) for j in js)
                continue
            evaluation = self._evaluation(heads, self._config(cell, cell.criterion), only=js)
            yield from self._run(evaluation, offset, total, cell.label(), cancel)
            if self.cancelled:
                return
            offset += len(evaluation.generations)
            self.shard_cells[ci] = {
                "heads": heads.choices[cell.criterion].to_dict(),
                "error": None,
                "generations": [[index[g["strip"]], g] for g in evaluation.generations],
            }

    def partial(self) -> dict:
        """A shard's results for ``cli.merge`` (JSON-ready; cell indices as strings)."""
        return {
            "kind": PARTIAL_KIND,
            "shard": self.shard,
            "cells": [
                {"criterion": c.criterion, "k": c.k, "strength": c.strength, "prompt": c.prompt}
                for c in self.cells
            ],
            "eval": self.eval_settings(),
            "baseline_units": self.shard_baselines,
            "cell_units": {str(ci): r for ci, r in self.shard_cells.items()},
        }

    def _finish(self, cell: SweepCell, record: dict, on_cell) -> None:
        self.done[cell.key()] = record
        if on_cell is not None:
            on_cell(record)

    def baseline_summaries(self) -> dict[str, dict]:
        """Per prompt, the unsteered baseline's accuracy (its answer scored against every target)."""
        return {
            prompt: baseline_summary(
                self.config.protocol, gens, n_resamples=self.config.n_resamples, seed=self.config.seed
            )
            for prompt, gens in self.baseline_generations.items()
        }
