"""Seeded synthetic scenes for the bundled demo model: coloured squares on a 2-D canvas.

A scene is a canvas of :data:`SCENE_COLS` x :data:`SCENE_ROWS` slots (3 x 2), each slot
``slot`` px square (64 px: 2 x 2 LM tokens of 32 px), filled with one background colour (a comic
background word). Two to four slots hold an **object**: a square of an object colour (a comic object
word, all different within a scene), jittered in size and position inside its slot. The layout is
grid-aligned on purpose: every object covers the centres of exactly its slot's 2 x 2 LM tokens, so
``core.regions.box_region`` of its box (the paper's rule: the tokens whose cell centre lies in the
box) is exactly those four tokens, and each of them holds one corner of the square, as a comic
panel's tokens do (model card, "Data"). Objects are read in reading order (by slot: row by row, left
to right); the unsteered answer to the region question is the first one.

Scenes are written as PNG files plus a COCO instances file (``instances.json``: ``images``,
``annotations`` with ``bbox [x, y, w, h]``, ``area``, ``iscrowd`` 0, ``categories`` named
``"<colour> square"``), so ``gaze-explorer evaluate region --coco-annotations`` runs on them
(``python -m gaze_explorer.demo.scenes`` writes the held-out set under ``resources/demo_scenes``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from gaze_explorer.core.paths import resources_dir
from gaze_explorer.demo.comics import BACKGROUNDS, COLOUR_JITTER, OBJECTS, PANEL_SIZE

SCENE_COLS, SCENE_ROWS = 3, 2  # slots; a 192 x 128 canvas at 64 px per slot (6 x 4 LM tokens)
N_OBJECTS = (2, 4)  # objects per scene, inclusive
# Square side as a fraction of the slot, and the largest offset of its centre from the slot's
# centre. With side >= 0.62 and offset <= 0.04 the square always contains both token-cell centres
# of its slot in each direction (at 0.25 and 0.75 of the slot): side / 2 - offset >= 0.27 > 0.25.
SIDE_RANGE = (0.62, 0.86)
MAX_OFFSET = 0.04
SHAPE = "square"  # the object's noun in answers and category names


def category_name(colour: str) -> str:
    """The COCO category of an object of ``colour``: ``"pink square"``."""
    return f"{colour} {SHAPE}"


CATEGORIES = [category_name(c) for c in OBJECTS]  # ids 1..6 in this order


@dataclass(frozen=True)
class SceneObject:
    """One object: its colour word, its slot, and its box ``(x0, y0, x1, y1)`` in px (x1, y1
    exclusive) at the scene's drawing size."""

    colour: str
    row: int
    col: int
    box: tuple[int, int, int, int]

    @property
    def category(self) -> str:
        return category_name(self.colour)


@dataclass(frozen=True)
class Scene:
    """A drawn scene: its image, its background word and its objects in reading order."""

    name: str
    image: Image.Image
    background: str
    objects: list[SceneObject]  # in reading order (slot row, then column)

    @property
    def slot(self) -> int:
        return self.image.width // SCENE_COLS


def _jitter(rgb: tuple[int, int, int], rng: random.Random) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + rng.randint(-COLOUR_JITTER, COLOUR_JITTER))) for c in rgb)  # type: ignore[return-value]


def make_scene(split: str, seed: int, index: int, *, slot: int = PANEL_SIZE) -> Scene:
    """Scene number ``index`` of a split, drawn with ``slot``-px slots; splits with different names
    never share a random stream (and never the comics' streams)."""
    rng = random.Random(f"gaze-explorer-demo-scene/{split}/{seed}/{index}")
    n = rng.randint(*N_OBJECTS)
    slots = sorted(rng.sample(range(SCENE_COLS * SCENE_ROWS), n))  # reading order
    colours = rng.sample(list(OBJECTS), n)
    background = rng.choice(list(BACKGROUNDS))
    image = Image.new("RGB", (SCENE_COLS * slot, SCENE_ROWS * slot), _jitter(BACKGROUNDS[background], rng))
    draw = ImageDraw.Draw(image)
    objects = []
    for s, colour in zip(slots, colours, strict=True):
        row, col = divmod(s, SCENE_COLS)
        side = rng.uniform(*SIDE_RANGE) * slot
        cx = (col + 0.5 + rng.uniform(-MAX_OFFSET, MAX_OFFSET)) * slot
        cy = (row + 0.5 + rng.uniform(-MAX_OFFSET, MAX_OFFSET)) * slot
        box = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=_jitter(OBJECTS[colour], rng))
        objects.append(SceneObject(colour, row, col, box))
    return Scene(f"scene{index + 1}", image, background, objects)


HELDOUT_DIR = resources_dir() / "demo_scenes"
HELDOUT_SEED = 0  # the "heldout" split; training draws from the "train" split (disjoint streams)
HELDOUT_COUNT = 24
HELDOUT_SLOT = 2 * PANEL_SIZE  # 384 x 256 images: the processor brings them down to 192 x 128


def heldout_scenes(n: int = HELDOUT_COUNT, seed: int = HELDOUT_SEED) -> list[Scene]:
    """The held-out scenes shipped under ``resources/demo_scenes`` (regenerated, seeded)."""
    return [make_scene("heldout", seed, i, slot=HELDOUT_SLOT) for i in range(n)]


def coco_instances(scenes: list[Scene]) -> dict:
    """The scenes' COCO instances file (categories: every object colour, ``"<colour> square"``)."""
    images, annotations = [], []
    for i, scene in enumerate(scenes, start=1):
        images.append(
            {
                "id": i,
                "file_name": f"{scene.name}.png",
                "width": scene.image.width,
                "height": scene.image.height,
            }
        )
        for o in scene.objects:
            x0, y0, x1, y1 = o.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": CATEGORIES.index(o.category) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),  # a filled square: its segment is its box
                    "iscrowd": 0,
                }
            )
    categories = [{"id": k, "name": name, "supercategory": SHAPE} for k, name in enumerate(CATEGORIES, 1)]
    return {
        "info": {"description": "gaze-explorer demo scenes (python -m gaze_explorer.demo.scenes)"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def write_scenes(root: str | Path, scenes: list[Scene]) -> Path:
    """Write ``root/sceneN.png`` and ``root/instances.json``; returns the instances file."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for scene in scenes:
        scene.image.save(root / f"{scene.name}.png", optimize=True)
    out = root / "instances.json"
    out.write_text(json.dumps(coco_instances(scenes), indent=1) + "\n", encoding="utf-8")
    return out


@dataclass(frozen=True)
class LoadedScene:
    """A scene read back from its image and the COCO file: objects in reading order."""

    name: str
    image: Image.Image
    objects: list[SceneObject]


def load_heldout_scenes(root: str | Path = HELDOUT_DIR, n: int | None = None) -> list[LoadedScene]:
    """The shipped held-out scenes with their objects (read from ``instances.json``)."""
    from gaze_explorer.core.coco import read_coco

    root = Path(root)
    dataset = read_coco(root / "instances.json")
    out = []
    for iid in sorted(dataset.images)[:n]:
        info = dataset.images[iid]
        with Image.open(root / info.file_name) as f:
            image = f.convert("RGB")
        slot = info.width // SCENE_COLS
        objs = []
        for o in dataset.objects:
            if o.image_id != iid:
                continue
            x0, y0, x1, y1 = (round(v) for v in o.box)
            colour = o.category.split()[0]
            row, col = int((y0 + y1) / 2 // slot), int((x0 + x1) / 2 // slot)
            objs.append(SceneObject(colour, row, col, (x0, y0, x1, y1)))
        objs.sort(key=lambda o: (o.row, o.col))
        out.append(LoadedScene(Path(info.file_name).stem, image, objs))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m gaze_explorer.demo.scenes --out DIR --n 24``: write held-out scenes (COCO format)."""
    import argparse

    p = argparse.ArgumentParser(description="Write seeded synthetic scenes with a COCO instances file.")
    p.add_argument("--out", type=Path, default=HELDOUT_DIR)
    p.add_argument("--n", type=int, default=HELDOUT_COUNT)
    p.add_argument("--seed", type=int, default=HELDOUT_SEED)
    args = p.parse_args(argv)
    write_scenes(args.out, heldout_scenes(args.n, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
