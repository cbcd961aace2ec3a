"""Seeded synthetic comic strips for the bundled demo model.

Each panel is a solid background colour with one large square of a second colour on it, so every
panel has two independent attributes (``background`` and ``object``) that a tiny vision tower sees
locally: a 16-px patch is mostly background or mostly object colour. The two attributes use disjoint
colour words, so a judge can tell which attribute a word names. Within a strip no two panels share
both attributes, so a judge can always tell panels apart.

Strips come out as :class:`gaze_explorer.core.strips.Strip` objects (``.image``, ``.panel_widths``,
``.attributes``, ``.captions``, ``.name``) and can be written in the authors' folder layout
(``comicN/p1.png .. p6.png`` plus ``captions.json`` and ``attributes.json``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from gaze_explorer.core.paths import demo_comics_dir
from gaze_explorer.core.strips import Strip, compose_strip

# Saturated background colours and object colours, named by disjoint words.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (35, 75, 215),
    "yellow": (235, 210, 35),
    "purple": (135, 55, 175),
    "orange": (245, 135, 25),
}
OBJECTS: dict[str, tuple[int, int, int]] = {
    "black": (15, 15, 15),
    "white": (250, 250, 250),
    "gray": (125, 125, 125),
    "pink": (255, 150, 205),
    "brown": (115, 65, 25),
    "cyan": (55, 225, 235),
}
ATTRIBUTE_NAMES = ("object", "background")  # the judged attributes
# A third, unjudged property: the square's size (in the captions, not in the model's answers). Even a
# small square reaches into every 32-px LM token of its panel, so each token carries both judged
# colours and a head that looks at the panel can read both (model card, run r9).
SIZES = ("small", "big")
SIZE_RANGES = {"small": (0.44, 0.50), "big": (0.66, 0.74)}
N_PANELS = 6
# px: 2x2 LM tokens per panel for Qwen3-VL (patch 16, merge 2). With the square centred, each of
# the four tokens holds one corner of it: the four show the same mix of the two colours, so a head
# reads the same panel whichever of its tokens it looks at (96-px panels, 3x3 tokens, have an
# all-object centre token and mostly-background corners; model card, runs r27-r30).
PANEL_SIZE = 64
COLOUR_JITTER = 12  # per channel, so the model learns colour names rather than exact pixels


@dataclass(frozen=True)
class PanelSpec:
    """What one panel shows, and the square's geometry relative to the panel size."""

    object: str
    background: str
    size_word: str  # "small" or "big": in the captions, not judged and not in the model's answers
    size: float  # square side as a fraction of the panel side
    dx: float  # centre offset as a fraction of the panel side
    dy: float

    @property
    def attributes(self) -> dict[str, str]:
        return {"object": self.object, "background": self.background}

    @property
    def caption(self) -> str:
        return f"a {self.size_word} {self.object} square on {self.background}"


def _jitter(rgb: tuple[int, int, int], rng: random.Random) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + rng.randint(-COLOUR_JITTER, COLOUR_JITTER))) for c in rgb)  # type: ignore[return-value]


def sample_panel_specs(rng: random.Random, n_panels: int = N_PANELS) -> list[PanelSpec]:
    """``n_panels`` panel specs with no (object, background) pair repeated within the strip."""
    pairs = [(o, b) for o in OBJECTS for b in BACKGROUNDS]
    chosen = rng.sample(pairs, n_panels)
    specs = []
    for o, b in chosen:
        word = rng.choice(SIZES)
        lo, hi = SIZE_RANGES[word]
        specs.append(
            PanelSpec(o, b, word, rng.uniform(lo, hi), rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05))
        )
    return specs


def draw_panel(spec: PanelSpec, size: int, rng: random.Random) -> Image.Image:
    """A ``size`` x ``size`` RGB panel: background colour with the object square near the centre."""
    img = Image.new("RGB", (size, size), _jitter(BACKGROUNDS[spec.background], rng))
    side = spec.size * size
    cx, cy = (0.5 + spec.dx) * size, (0.5 + spec.dy) * size
    box = [round(cx - side / 2), round(cy - side / 2), round(cx + side / 2) - 1, round(cy + side / 2) - 1]
    ImageDraw.Draw(img).rectangle(box, fill=_jitter(OBJECTS[spec.object], rng))
    return img


@dataclass(frozen=True)
class SyntheticComic:
    """A generated strip before composition: its panels and their specs."""

    name: str
    panels: list[Image.Image]
    specs: list[PanelSpec]

    def compose(self, height: int = PANEL_SIZE, gap: int = 6) -> Strip:
        """The composed strip (the paper's recipe) with ground truth attached."""
        return compose_strip(
            self.panels,
            height=height,
            gap=gap,
            captions=[s.caption for s in self.specs],
            attributes=[s.attributes for s in self.specs],
            name=self.name,
        )


def make_comic(
    split: str, seed: int, index: int, *, panel_size: int = PANEL_SIZE, n_panels: int = N_PANELS
) -> SyntheticComic:
    """Comic number ``index`` of a split; splits with different names never share a random stream."""
    rng = random.Random(f"gaze-explorer-demo/{split}/{seed}/{index}")
    specs = sample_panel_specs(rng, n_panels)
    panels = [draw_panel(s, panel_size, rng) for s in specs]
    return SyntheticComic(f"comic{index + 1}", panels, specs)


def generate_strips(
    n: int,
    seed: int = 0,
    *,
    split: str = "heldout",
    n_panels: int = N_PANELS,
    height: int = PANEL_SIZE,
    gap: int = 6,
) -> list[Strip]:
    """``n`` composed strips of ``n_panels`` panels, seeded and reproducible."""
    return [
        make_comic(split, seed, i, panel_size=height, n_panels=n_panels).compose(height, gap)
        for i in range(n)
    ]


def write_strip_folders(root: str | Path, comics: list[SyntheticComic]) -> list[Path]:
    """Write the authors' layout: ``root/comicN/p1.png..pK.png`` plus per-strip ground truth.

    Each folder gets ``captions.json`` (a list of per-panel captions, as the authors' scripts read
    it) and ``attributes.json`` (a list of per-panel attribute dicts).
    """
    root = Path(root)
    out = []
    for comic in comics:
        folder = root / comic.name
        folder.mkdir(parents=True, exist_ok=True)
        for k, panel in enumerate(comic.panels, start=1):
            panel.save(folder / f"p{k}.png", optimize=True)
        (folder / "captions.json").write_text(json.dumps([s.caption for s in comic.specs], indent=1) + "\n")
        (folder / "attributes.json").write_text(
            json.dumps([s.attributes for s in comic.specs], indent=1) + "\n"
        )
        out.append(folder)
    return out


HELDOUT_DIR = demo_comics_dir()
HELDOUT_SEED = 0  # the "heldout" split; training draws from the "train" split (disjoint streams)
HELDOUT_COUNT = 24
HELDOUT_PANEL_SIZE = 256  # the paper's strip height, so the app's default composition fits


def heldout_comics(n: int = HELDOUT_COUNT, seed: int = HELDOUT_SEED) -> list[SyntheticComic]:
    """The held-out comics shipped under ``resources/demo_comics`` (regenerated, seeded)."""
    return [make_comic("heldout", seed, i, panel_size=HELDOUT_PANEL_SIZE) for i in range(n)]


def load_heldout_strips(root: str | Path = HELDOUT_DIR, n: int | None = None) -> list[Strip]:
    """The shipped held-out strips, composed the paper's way (256 px high, 6 px gaps)."""
    from gaze_explorer.core.strips import load_strip_folder

    folders = sorted((p for p in Path(root).glob("comic*") if p.is_dir()), key=lambda p: int(p.name[5:]))
    return [load_strip_folder(f, N_PANELS) for f in folders[:n]]


def main(argv: list[str] | None = None) -> int:
    """``python -m gaze_explorer.demo.comics --out DIR --n 24``: write held-out strips."""
    import argparse

    p = argparse.ArgumentParser(description="Write seeded synthetic comic strips in the authors' layout.")
    p.add_argument("--out", type=Path, default=HELDOUT_DIR)
    p.add_argument("--n", type=int, default=HELDOUT_COUNT)
    p.add_argument("--seed", type=int, default=HELDOUT_SEED)
    args = p.parse_args(argv)
    write_strip_folders(args.out, heldout_comics(args.n, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
