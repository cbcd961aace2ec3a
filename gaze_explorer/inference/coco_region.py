"""COCO-style region steering (the paper's Tab. 1): steer to each object's box, ask what is there,
judge whether the answer names the object's category.

For each image: one unsteered (baseline) answer, then one answer per object and steered condition
(gaze, random control, all heads, ...), steering to the image tokens whose grid-cell centre lies in
the object's box (``core.regions.box_region``). Reading the annotations, the size classes, the box
filter and the summary are torch-free (``core.coco``); this module only runs the generations.
``run()`` yields progress and checks a cancel token; ``report()`` summarises what has completed.
Sharded (``shard="i/n"``, ``--executor``): only every n-th image runs; ``cli.merge`` joins the shards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gaze_explorer.core.coco import (
    COCO_REGION_PROMPT,
    MIN_BOX_AREA,
    CocoDataset,
    CocoObject,
    ObjectSelection,
    objects_by_image,
    region_report,
)
from gaze_explorer.core.errors import DatasetError, GazeExplorerError, RegionError
from gaze_explorer.core.judges import CategoryJudge, Judge, PanelTruth
from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.regions import box_region
from gaze_explorer.core.steering import FixedTarget, SteeringPlan
from gaze_explorer.inference.evaluation import (
    DEFAULT_MAX_NEW_TOKENS,
    EvalConfig,
    EvalProgress,
    HeadConditions,
    shard,
)


def evaluated_by_size(generations: Sequence[dict]) -> dict[str, int]:
    """The objects answered for, per size class."""
    return {
        s: len({g["annotation_id"] for g in generations if g["size_class"] == s})
        for s in ("small", "medium", "large")
    }


def image_paths(dataset: CocoDataset, selection: ObjectSelection, images_dir: str | Path) -> dict[int, Path]:
    """The file of every image that holds a selected object; DatasetError naming the missing ones."""
    root = Path(images_dir)
    if not root.is_dir():
        raise DatasetError(f"images folder {root} does not exist")
    paths = {iid: root / dataset.images[iid].file_name for iid in objects_by_image(selection.objects)}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise DatasetError(
            f"{len(missing)} image(s) of the annotations are not in {root}: {', '.join(missing[:5])}"
        )
    return paths


@dataclass
class CocoRegionEvaluation:
    """One COCO region-steering run over ``selection``'s objects."""

    loaded: object  # inference.loading.LoadedModel
    dataset: CocoDataset
    selection: ObjectSelection
    images: dict[int, Path]  # image id -> file (image_paths)
    heads: HeadConditions
    config: EvalConfig = field(default_factory=lambda: EvalConfig(protocol="region"))
    judge: Judge = field(default_factory=CategoryJudge)
    min_box_area: float = MIN_BOX_AREA
    model_name: str = ""
    generations: list[dict] = field(default_factory=list)
    no_tokens: list[int] = field(default_factory=list)  # annotation ids whose box holds no token centre
    cancelled: bool = False
    shard: str | None = None  # "i/n": only every n-th image (in the annotations' order)

    @property
    def prompt(self) -> str:
        return self.config.prompt or COCO_REGION_PROMPT

    @property
    def max_new_tokens(self) -> int:
        return self.config.max_new_tokens or DEFAULT_MAX_NEW_TOKENS["region"]

    def _steered(self) -> list[str]:
        return [c for c in self.config.conditions if c != "baseline"]

    def _generate(self, image, regions, plan, target, cancel) -> str | None:
        from gaze_explorer.inference.generation import FinishedEvent, TokenEvent, generate_stream

        ids: list[int] = []
        status, reason = "finished", ""
        options = GenerationOptions(
            max_new_tokens=self.max_new_tokens,
            seed=self.config.seed,
            repetition_penalty=self.config.repetition_penalty,
            no_repeat_ngram_size=self.config.no_repeat_ngram_size,
        )
        for event in generate_stream(
            self.loaded,
            image,
            self.prompt,
            regions=regions,
            plan=plan,
            target=target,
            options=options,
            capture=CaptureSpec(decode=False, prefill="none"),
            cancel=cancel,
        ):
            if isinstance(event, TokenEvent):
                ids.append(int(event.token_id))
            elif isinstance(event, FinishedEvent):
                status, reason = event.status, event.reason
        if status == "cancelled":
            return None
        if status == "failed":
            raise GazeExplorerError(f"generation failed: {reason}")
        return self.loaded.adapter.decode(ids)

    def _record(self, obj: CocoObject, condition: str, text: str) -> dict:
        verdict = self.judge.judge(text, PanelTruth(attributes=[{"category": obj.category}]))
        return {
            "image": self.dataset.images[obj.image_id].file_name,
            "image_id": obj.image_id,
            "annotation_id": obj.annotation_id,
            "category": obj.category,
            "bbox": list(obj.bbox),
            "area": obj.area,
            "size_class": obj.size_class,
            "condition": condition,
            "text": text,
            "hit": verdict.credit(0),
            "degenerate": verdict.degenerate,
            "judge": verdict.to_dict(),
        }

    def run(self, cancel: threading.Event | None = None) -> Iterator[EvalProgress]:
        """Run every generation, yielding progress; stops early (keeping results) on ``cancel``."""
        from PIL import Image

        groups = objects_by_image(self.selection.objects)
        if self.shard:
            groups = {iid: groups[iid] for iid in shard(list(groups), self.shard)}
        steered = self._steered()
        per_image = {
            iid: len(objs) * len(steered) + ("baseline" in self.config.conditions)
            for iid, objs in groups.items()
        }
        total = sum(per_image.values())
        self.generations, self.no_tokens = [], []
        done = 0
        yield EvalProgress(0, total, f"region: {len(self.selection.objects)} objects, {total} generations")
        for iid, objs in groups.items():
            with Image.open(self.images[iid]) as f:
                image = f.convert("RGB")
            info = self.dataset.images[iid]
            if image.size != (info.width, info.height):
                raise DatasetError(
                    f"{info.file_name} is {image.size[0]}x{image.size[1]} but the annotations say "
                    f"{info.width}x{info.height}: the boxes would not fit it"
                )
            grid = self.loaded.adapter.build_inputs(image, self.prompt).grids[0]
            regions = {}
            for o in objs:
                try:
                    regions[o.annotation_id] = box_region(grid, o.box, name=f"{o.category} {o.annotation_id}")
                except RegionError:  # smaller than one token's cell: nothing to steer to
                    self.no_tokens.append(o.annotation_id)
            targets = [o for o in objs if o.annotation_id in regions]
            jobs: list[tuple[str, CocoObject | None]] = []
            if "baseline" in self.config.conditions and targets:
                jobs.append(("baseline", None))
            jobs += [(c, o) for o in targets for c in steered]
            done += per_image[iid] - len(jobs)
            for condition, obj in jobs:
                if cancel is not None and cancel.is_set():
                    self.cancelled = True
                    return
                if obj is None:  # one unsteered answer per image, judged against each object
                    text = self._generate(image, [next(iter(regions.values()))], None, None, cancel)
                    if text is None:
                        self.cancelled = True
                        return
                    self.generations += [self._record(o, "baseline", text) for o in targets]
                else:
                    plan = SteeringPlan(
                        self.heads.head_set(condition),
                        self.config.mode,
                        self.config.strength,
                        decode_only=self.config.effective_bias_on == "decode",
                    )
                    text = self._generate(image, [regions[obj.annotation_id]], plan, FixedTarget(0), cancel)
                    if text is None:
                        self.cancelled = True
                        return
                    self.generations.append(self._record(obj, condition, text))
                done += 1
                yield EvalProgress(done, total, f"{info.file_name} {condition}")

    def report(self, annotations: str = "", images_dir: str = "") -> dict:
        """The JSON-ready summary (docs/evaluation_json.md, "Region on COCO annotations")."""
        cfg = self.config
        counts = {
            "n_images": len(objects_by_image(self.selection.objects)),
            "n_annotations": len(self.dataset.objects),
            "min_box_area": self.min_box_area,
            **self.selection.counts(),
            "skipped_no_tokens": len(self.no_tokens),
            "evaluated_by_size": evaluated_by_size(self.generations),
        }
        return region_report(
            model=self.model_name,
            generations=self.generations,
            counts=counts,
            heads={
                "gaze": self.heads.gaze,
                **{c: self.heads.head_set(c) for c in cfg.conditions if c in ("image", "localization")},
                "random": self.heads.random,
                "all": self.heads.all,
            },
            head_choices={name: choice.to_dict() for name, choice in self.heads.choices.items()},
            settings={
                "annotations": annotations,
                "images": images_dir,
                "prompt": self.prompt,
                "input_policy": str(getattr(self.loaded.adapter, "input_policy", "native")),
                "mode": cfg.mode.value,
                "strength": cfg.strength,
                "max_new_tokens": self.max_new_tokens,
                "bias_on": cfg.effective_bias_on,
                "seed": cfg.seed,
                "control_pool": self.heads.choices["random"].pool if "random" in self.heads.choices else None,
                "n_resamples": cfg.n_resamples,
                "repetition_penalty": cfg.repetition_penalty,
                "no_repeat_ngram_size": cfg.no_repeat_ngram_size,
                "judge": getattr(self.judge, "name", type(self.judge).__name__),
                "conditions": list(cfg.conditions),
            },
            status="cancelled" if self.cancelled else "finished",
            n_resamples=cfg.n_resamples,
            seed=cfg.seed,
        )


__all__: Sequence[str] = ["CocoRegionEvaluation", "image_paths"]
