"""COCO-style region steering, the torch-free part: reading the standard COCO instances format,
COCO's object size classes, the paper's box filter, and the summary by size class.

Any dataset in the COCO instances format works (``images`` with id, file_name, width, height;
``annotations`` with image_id, category_id, bbox ``[x, y, w, h]`` and area; ``categories`` with id
and name). The paper (Sec. 6.4) steers to each object's box -- the image tokens whose grid-cell centre
lies inside it (``core.regions.box_region``) -- asks :data:`COCO_REGION_PROMPT`, and judges whether
the answer names the category. Boxes under :data:`MIN_BOX_AREA` px^2 are skipped (counted here).
Size classes follow COCO's definition, by the annotation's ``area`` (the segment's area, not the
box's): small < 32^2, medium < 96^2, large otherwise.

The generations are run by ``inference.coco_region``; :func:`region_report` summarises them (accuracy
per condition and size class with bootstrap CIs, and the paired gaze - control difference).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import DatasetError
from gaze_explorer.core.evaluation_report import (
    SCHEMA_VERSION,
    accuracy_summary,
    finite_or_none,
    format_percent,
)
from gaze_explorer.core.regions import Box
from gaze_explorer.core.stats import DEFAULT_RESAMPLES, bootstrap_ci

COCO_REGION_PROMPT = "What is the main object in this part of the image? Answer in a few words."
MIN_BOX_AREA = 750.0  # px^2 of the box (w x h); the paper skips smaller boxes
SMALL_MAX_AREA = 32.0**2  # COCO: small < 32^2, medium < 96^2, large >= 96^2 (annotation area)
MEDIUM_MAX_AREA = 96.0**2
SIZE_CLASSES = ("small", "medium", "large")
REGION_CONDITION_ORDER = ("gaze", "image", "localization", "random", "all", "baseline")
# The paper's Tab. 1 (Qwen3-VL-8B, COCO val2017): accuracy (gaze, non-gaze control) per size class
PAPER_REGION_ACCURACY = {
    "overall": (0.765, 0.259),
    "small": (0.617, 0.186),
    "medium": (0.762, 0.194),
    "large": (0.803, 0.366),
}


def size_class(area: float) -> str:
    """COCO's size class of an annotation ``area`` (px^2): small, medium or large."""
    if area < SMALL_MAX_AREA:
        return "small"
    if area < MEDIUM_MAX_AREA:
        return "medium"
    return "large"


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class CocoObject:
    """One annotation: its image, category name, ``bbox`` ``(x, y, w, h)`` and ``area``."""

    annotation_id: int
    image_id: int
    category_id: int
    category: str
    bbox: tuple[float, float, float, float]
    area: float
    iscrowd: bool = False

    @property
    def box(self) -> Box:
        """``(x0, y0, x1, y1)``, the form ``core.regions.box_region`` takes."""
        x, y, w, h = self.bbox
        return (x, y, x + w, y + h)

    @property
    def box_area(self) -> float:
        return self.bbox[2] * self.bbox[3]

    @property
    def size_class(self) -> str:
        return size_class(self.area)


@dataclass(frozen=True)
class CocoDataset:
    images: Mapping[int, CocoImage]
    categories: Mapping[int, str]
    objects: Sequence[CocoObject]
    source: str = ""


def _need(record: Mapping, keys: Sequence[str], what: str, source: str) -> None:
    if not isinstance(record, Mapping):
        raise DatasetError(f"{source}: each entry of {what} must be an object, got {record!r:.60}")
    missing = [k for k in keys if k not in record]
    if missing:
        raise DatasetError(f"{source}: an entry of {what} lacks {', '.join(missing)}: {dict(record)!r:.120}")


def parse_coco(data: Mapping, source: str = "annotations") -> CocoDataset:
    """A :class:`CocoDataset` from the parsed JSON of a COCO instances file."""
    if not isinstance(data, Mapping) or not all(k in data for k in ("images", "annotations", "categories")):
        raise DatasetError(
            f"{source} is not a COCO instances file: it needs 'images', 'annotations' and 'categories'"
        )
    try:
        images: dict[int, CocoImage] = {}
        for r in data["images"]:
            _need(r, ("id", "file_name", "width", "height"), "images", source)
            images[int(r["id"])] = CocoImage(
                int(r["id"]), str(r["file_name"]), int(r["width"]), int(r["height"])
            )
        categories: dict[int, str] = {}
        for r in data["categories"]:
            _need(r, ("id", "name"), "categories", source)
            categories[int(r["id"])] = str(r["name"])
        objects = []
        for r in data["annotations"]:
            _need(r, ("id", "image_id", "category_id", "bbox"), "annotations", source)
            bbox = tuple(float(v) for v in r["bbox"])
            if len(bbox) != 4 or not all(math.isfinite(v) for v in bbox) or bbox[2] <= 0 or bbox[3] <= 0:
                raise DatasetError(
                    f"{source}: annotation {r['id']} has bbox {r['bbox']!r}; need [x, y, w, h], w, h > 0"
                )
            if int(r["image_id"]) not in images:
                raise DatasetError(
                    f"{source}: annotation {r['id']} names image {r['image_id']}, not in 'images'"
                )
            if int(r["category_id"]) not in categories:
                raise DatasetError(
                    f"{source}: annotation {r['id']} names category {r['category_id']}, not in 'categories'"
                )
            # COCO's area is the segment's; files without one get the box's
            area = float(r.get("area", bbox[2] * bbox[3]))
            objects.append(
                CocoObject(
                    int(r["id"]),
                    int(r["image_id"]),
                    int(r["category_id"]),
                    categories[int(r["category_id"])],
                    bbox,
                    area,
                    bool(r.get("iscrowd", 0)),
                )
            )
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{source}: malformed COCO entry ({exc})") from exc
    return CocoDataset(images, categories, objects, source)


def read_coco(path: str | Path) -> CocoDataset:
    """Read a COCO instances JSON file (``instances_val2017.json`` or any file in that format)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"COCO annotations file {p} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read COCO annotations {p}: {exc}") from exc
    return parse_coco(data, str(p))


@dataclass(frozen=True)
class ObjectSelection:
    """The objects to steer to, and how many annotations were left out and why."""

    objects: tuple[CocoObject, ...]
    skipped_small: int  # box under the minimum area (the paper's 750 px^2)
    skipped_crowd: int  # iscrowd=1: a group of objects, not one (COCO's evaluation ignores them too)

    def counts(self) -> dict:
        by_size = {c: sum(1 for o in self.objects if o.size_class == c) for c in SIZE_CLASSES}
        return {
            "n_selected": len(self.objects),
            "skipped_small": self.skipped_small,
            "skipped_crowd": self.skipped_crowd,
            "selected_by_size": by_size,
        }


def select_objects(
    objects: Sequence[CocoObject], min_box_area: float = MIN_BOX_AREA, max_images: int | None = None
) -> ObjectSelection:
    """The objects whose box covers at least ``min_box_area`` px^2, crowds left out; with
    ``max_images``, only those of the first N images (in annotation order) that keep an object."""
    kept: list[CocoObject] = []
    small = crowd = 0
    image_ids: list[int] = []
    for o in objects:
        if o.iscrowd:
            crowd += 1
            continue
        if o.box_area < min_box_area:
            small += 1
            continue
        if o.image_id not in image_ids:
            if max_images is not None and len(image_ids) >= max_images:
                continue
            image_ids.append(o.image_id)
        kept.append(o)
    return ObjectSelection(tuple(kept), small, crowd)


def objects_by_image(objects: Sequence[CocoObject]) -> dict[int, list[CocoObject]]:
    """Objects grouped by image id, images in first-seen order (one prefill per image)."""
    out: dict[int, list[CocoObject]] = {}
    for o in objects:
        out.setdefault(o.image_id, []).append(o)
    return out


def _paired_difference(gens: Sequence[Mapping], a: str, b: str, n_resamples: int, seed: int) -> dict:
    """Mean of (hit under ``a`` - hit under ``b``) over the objects run under both, with its CI."""
    hits = {c: {g["annotation_id"]: float(g["hit"]) for g in gens if g["condition"] == c} for c in (a, b)}
    common = [k for k in hits[a] if k in hits[b]]
    diffs = [hits[a][k] - hits[b][k] for k in common]
    lo, hi = bootstrap_ci(diffs, n_resamples=n_resamples, seed=seed)
    return {
        "difference": finite_or_none(float(np.mean(diffs))) if diffs else None,
        "ci95": [finite_or_none(lo), finite_or_none(hi)],
        "n": len(diffs),
    }


def region_report(
    *,
    model: str,
    generations: list[dict],
    counts: Mapping[str, object],
    heads: Mapping[str, object],
    settings: Mapping[str, object],
    head_choices: Mapping[str, Mapping] | None = None,
    status: str = "finished",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    control: str = "random",
) -> dict:
    """The JSON of ``evaluate region --coco-annotations`` (docs/evaluation_json.md, "Region on COCO").

    ``generations`` hold one record per (object, condition) with ``annotation_id``, ``size_class``,
    ``condition``, ``hit`` (0/1) and ``degenerate``. Accuracy with a bootstrap CI per condition,
    overall and per size class; ``gaze_vs_control``: the paired difference gaze - ``control``."""
    gens = [dict(g) for g in generations]
    present = [c for c in REGION_CONDITION_ORDER if any(g["condition"] == c for g in gens)]
    conditions: dict[str, dict] = {}
    for c in present:
        these = [g for g in gens if g["condition"] == c]

        def summary(rows: list[dict]) -> dict:
            return accuracy_summary(
                [float(g["hit"]) for g in rows], [g["degenerate"] for g in rows], n_resamples, seed
            )

        conditions[c] = {
            "overall": summary(these),
            "by_size": {s: summary([g for g in these if g["size_class"] == s]) for s in SIZE_CLASSES},
        }
    comparison = None
    if "gaze" in present and control in present:
        comparison = {
            "control": control,
            "overall": _paired_difference(gens, "gaze", control, n_resamples, seed),
            "by_size": {
                s: _paired_difference(
                    [g for g in gens if g["size_class"] == s], "gaze", control, n_resamples, seed
                )
                for s in SIZE_CLASSES
            },
        }
    gaze_heads = heads.get("gaze")
    return {
        "schema_version": SCHEMA_VERSION,
        "protocol": "region",
        "dataset": "coco",
        "model": model,
        "status": status,
        "n_objects": len({g["annotation_id"] for g in gens}),
        "top_k": len(gaze_heads) if gaze_heads is not None else None,
        "counts": dict(counts),
        "conditions": conditions,
        "gaze_vs_control": comparison,
        "heads": {
            name: ([list(h) for h in hs.heads] if name != "all" else len(hs))  # type: ignore[attr-defined]
            for name, hs in heads.items()
        },
        "head_choices": {name: dict(c) for name, c in (head_choices or {}).items()},
        "settings": dict(settings),
        "generations": gens,
    }


def format_region_table(report: Mapping) -> str:
    """The readable table: accuracy % [95% CI] per condition, overall and by size class."""
    counts = report["counts"]
    lines = [
        f"region (COCO) on {report['model']}: {report['n_objects']} objects in {counts.get('n_images')} images, "
        f"top-K = {report['top_k']}"
        + ("" if report.get("status") == "finished" else f" [{report['status']}: partial]"),
        f"skipped: {counts.get('skipped_small')} boxes under {counts.get('min_box_area', MIN_BOX_AREA):g} px^2, "
        f"{counts.get('skipped_crowd')} crowds, {counts.get('skipped_no_tokens')} boxes holding no token centre",
        f"{'condition':<10} " + " ".join(f"{name:>22}" for name in ("overall", *SIZE_CLASSES)),
    ]

    def cell(s: Mapping) -> str:
        lo, hi = s["ci95"]
        ci = "" if lo is None else f" [{format_percent(lo).strip()},{format_percent(hi).strip()}]"
        return f"{format_percent(s['accuracy']).strip()}{ci} n={s['n']}"

    for name, c in report["conditions"].items():
        cells = [c["overall"], *(c["by_size"][s] for s in SIZE_CLASSES)]
        lines.append(f"{name:<10} " + " ".join(f"{cell(s):>22}" for s in cells))
    paper = " ".join(f"{name} {100 * g:.1f}/{100 * c:.1f}" for name, (g, c) in PAPER_REGION_ACCURACY.items())
    lines.append(f"paper (Qwen3-VL-8B, COCO val2017), gaze/non-gaze %: {paper}")
    comp = report.get("gaze_vs_control")
    if comp:
        d = comp["overall"]
        if d["difference"] is not None:
            lo, hi = d["ci95"]
            lines.append(
                f"gaze - {comp['control']}: {100 * d['difference']:+.1f} points "
                f"[{100 * lo:+.1f}, {100 * hi:+.1f}] over {d['n']} objects"
            )
    return "\n".join(lines)
