"""Regenerate the tiny COCO-format fixture (three 192x128 images of coloured shapes and
instances.json) used by tests/core/test_coco.py and tests/test_cli_region_coco.py.

Run from the repository root: ``python tests/data/coco_tiny/make_fixture.py``. The boxes are chosen
for the demo model's 32-px token grid (4 x 6 tokens, centres at 16, 48, 80, ... px): every COCO size
class, one box under 750 px^2, one crowd, and one box of 800 px^2 that holds no token centre.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
W, H = 192, 128
CATEGORIES = ["person", "frisbee", "kite", "sports ball", "orange", "stop sign", "cake", "cup", "book"]

# (image id, category, bbox [x, y, w, h], area, iscrowd, shape, colour)
OBJECTS = [
    (1, "book", [0, 0, 112, 112], 112 * 112, 0, "rect", (40, 90, 200)),  # large
    (1, "frisbee", [128, 24, 48, 48], round(math.pi * 24**2), 0, "ellipse", (230, 40, 40)),  # medium
    (1, "kite", [136, 88, 30, 30], 450, 0, "triangle", (240, 200, 30)),  # small: box 900 px^2
    (1, "sports ball", [170, 2, 20, 20], round(math.pi * 100), 0, "ellipse", (20, 160, 60)),  # box < 750
    (2, "orange", [40, 8, 110, 110], round(math.pi * 55**2), 0, "ellipse", (250, 140, 20)),  # large
    (2, "stop sign", [150, 70, 36, 36], 1073, 0, "octagon", (200, 20, 20)),  # medium
    (2, "person", [0, 0, 30, 128], 2400, 1, "rect", (120, 120, 120)),  # crowd
    (3, "cake", [0, 60, 40, 20], 800, 0, "rect", (180, 120, 200)),  # 800 px^2, no token centre inside
    (3, "cup", [96, 32, 64, 64], 3300, 0, "rect", (60, 200, 200)),  # medium
]


def draw(shape: str, box: list[int], colour: tuple[int, int, int], d: ImageDraw.ImageDraw) -> None:
    x, y, w, h = box
    if shape == "rect":
        d.rectangle([x, y, x + w - 1, y + h - 1], fill=colour)
    elif shape == "ellipse":
        d.ellipse([x, y, x + w - 1, y + h - 1], fill=colour)
    elif shape == "triangle":
        d.polygon([(x + w / 2, y), (x + w - 1, y + h - 1), (x, y + h - 1)], fill=colour)
    elif shape == "octagon":
        cx, cy, r = x + w / 2, y + h / 2, w / 2
        d.polygon(
            [
                (
                    cx + r * math.cos(math.pi / 8 + k * math.pi / 4),
                    cy + r * math.sin(math.pi / 8 + k * math.pi / 4),
                )
                for k in range(8)
            ],
            fill=colour,
        )


def main() -> None:
    images, annotations = [], []
    for image_id in (1, 2, 3):
        img = Image.new("RGB", (W, H), (255, 255, 255))
        d = ImageDraw.Draw(img)
        for k, (iid, cat, bbox, area, crowd, shape, colour) in enumerate(OBJECTS, start=1):
            if iid != image_id:
                continue
            draw(shape, bbox, colour, d)
            annotations.append(
                {
                    "id": k,
                    "image_id": iid,
                    "category_id": CATEGORIES.index(cat) + 1,
                    "bbox": bbox,
                    "area": area,
                    "iscrowd": crowd,
                    "segmentation": [],
                }
            )
        name = f"{image_id:012d}.png"
        img.save(HERE / name, optimize=True)
        images.append({"id": image_id, "file_name": name, "width": W, "height": H})
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CATEGORIES)]
    data = {
        "info": {"description": "gaze-explorer tiny COCO-format fixture"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    (HERE / "instances.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
