"""Image-token geometry and regions: which pixel box each image token covers, and which image
tokens make up a panel, a drawn box or an explicit token set.

Adapters (``inference/adapters``) build an :class:`ImageTokenGrid` for each input; everything
downstream (steering, capture, overlay, storage) works from it and never asks which model family
produced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from gaze_explorer.core.errors import RegionError

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in original-image pixels


@dataclass(frozen=True, eq=False)
class ImageTokenGrid:
    """Where the image tokens are in the sequence and which pixels each one covers.

    ``token_boxes[i]`` is the box of image token ``i`` in the ORIGINAL image's pixel coordinates
    (after undoing the processor's resize), ``positions[i]`` its absolute index in ``input_ids``.
    Image tokens are ordered row-major over the merged grid ``rows x cols``.
    """

    image_width: int
    image_height: int
    rows: int
    cols: int
    token_boxes: np.ndarray  # [n_image_tokens, 4] float64 (x0, y0, x1, y1)
    positions: np.ndarray  # [n_image_tokens] int64, absolute sequence positions

    def __post_init__(self) -> None:
        boxes = np.asarray(self.token_boxes, dtype=np.float64).reshape(-1, 4)
        positions = np.asarray(self.positions, dtype=np.int64).reshape(-1)
        if boxes.shape[0] != positions.shape[0]:
            raise ValueError(f"{boxes.shape[0]} token boxes but {positions.shape[0]} token positions")
        if self.rows * self.cols != boxes.shape[0]:
            raise ValueError(f"grid {self.rows}x{self.cols} does not hold {boxes.shape[0]} tokens")
        object.__setattr__(self, "token_boxes", boxes)
        object.__setattr__(self, "positions", positions)

    @property
    def n_tokens(self) -> int:
        return int(self.positions.shape[0])

    @property
    def centres(self) -> np.ndarray:  # [n_image_tokens, 2] (x, y)
        b = self.token_boxes
        return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)

    @classmethod
    def uniform(
        cls, image_width: int, image_height: int, rows: int, cols: int, first_position: int
    ) -> ImageTokenGrid:
        """A grid of equal cells covering the image, with contiguous sequence positions."""
        xs = np.linspace(0.0, float(image_width), cols + 1)
        ys = np.linspace(0.0, float(image_height), rows + 1)
        boxes = np.array(
            [(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(rows) for c in range(cols)],
            dtype=np.float64,
        ).reshape(-1, 4)
        positions = np.arange(first_position, first_position + rows * cols, dtype=np.int64)
        return cls(image_width, image_height, rows, cols, boxes, positions)

    def shifted(self, offset: int) -> ImageTokenGrid:
        """The same grid with every sequence position moved by ``offset`` (e.g. left padding)."""
        return ImageTokenGrid(
            self.image_width,
            self.image_height,
            self.rows,
            self.cols,
            self.token_boxes,
            self.positions + offset,
        )


def covered_fraction(image_width: int, image_height: int, boxes: np.ndarray, resolution: int = 1024) -> float:
    """The fraction of the image's area inside the union of ``boxes [n, 4]`` (x0, y0, x1, y1).

    Measured on a raster at most ``resolution`` cells on its longer side (exact for boxes on its
    cell edges, within one cell row or column otherwise).
    """
    scale = min(1.0, resolution / max(image_width, image_height, 1))
    w, h = max(1, round(image_width * scale)), max(1, round(image_height * scale))
    mask = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        c0, c1 = (int(np.clip(round(v * w / image_width), 0, w)) for v in (x0, x1))
        r0, r1 = (int(np.clip(round(v * h / image_height), 0, h)) for v in (y0, y1))
        mask[r0:r1, c0:c1] = True
    return float(mask.mean())


def coverage_warning(coverage: float, input_policy: str, family: str = "", image: str = "") -> str | None:
    """A warning when an input policy lets only part of the image reach the model (None if all does).

    The CLI prints it (``cli.coverage``) and the app shows it; ``coverage`` is the adapter's
    ``info["vision"]["coverage"]``; ``image`` names the image (its file and size) when given.
    """
    if coverage >= 0.999:
        return None
    who = f"the {family} " if family else "the "
    which = f"{image}: " if image else ""
    return (
        f"{who}input policy {input_policy!r} lets only {coverage:.0%} of the image reach the model "
        f"({which}the rest is cropped away); panels or boxes outside it cannot be seen. Use --input-policy "
        "squash (the paper's fix for strips) to keep the whole image."
    )


@dataclass(frozen=True, eq=False)
class Region:
    """A named set of image tokens: a panel, a drawn box, or an explicit token set.

    ``token_indices`` index the grid's image tokens (0 .. n_image_tokens-1), not the sequence.
    """

    name: str
    kind: str  # "panel" | "box" | "tokens"
    token_indices: np.ndarray = field(repr=False)
    box: Box | None = None

    def positions(self, grid: ImageTokenGrid) -> np.ndarray:
        """Absolute sequence positions of this region's tokens in ``grid``'s input."""
        return grid.positions[self.token_indices]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "token_indices": [int(i) for i in self.token_indices],
            "box": None if self.box is None else [float(v) for v in self.box],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Region:
        box = data.get("box")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            token_indices=np.asarray(data["token_indices"], dtype=np.int64),
            box=None if box is None else tuple(float(v) for v in box),  # type: ignore[arg-type]
        )


def panel_edges(image_width: float, n_panels: int, widths: Sequence[float] | None = None) -> list[float]:
    """Pixel x-edges ``[0, e1, ..., image_width]`` of ``n_panels`` side-by-side panels.

    ``widths`` are relative panel widths (pixel widths, or ratios such as ``1,2,1``), scaled to the
    image's width; equal widths by default.
    """
    if n_panels < 1:
        raise RegionError(f"a strip needs at least 1 panel, got {n_panels}")
    if widths is None:
        widths = [1.0] * n_panels
    widths = [float(w) for w in widths]
    if len(widths) != n_panels or any(not np.isfinite(w) or w <= 0 for w in widths):
        raise RegionError(f"panel widths must be {n_panels} positive numbers, got {list(widths)}")
    cumulative = np.cumsum(widths) / sum(widths)
    return [0.0, *(float(c * image_width) for c in cumulative[:-1]), float(image_width)]


def widths_from_boundaries(boundaries: Sequence[float], image_width: float) -> list[float]:
    """Panel widths from the pixel x-positions of the boundaries BETWEEN panels (``n - 1`` values,
    strictly increasing, inside the image); 0 and the image width may be included or left out."""
    try:
        inner = [float(b) for b in boundaries]
    except (TypeError, ValueError) as exc:
        raise RegionError(f"panel boundaries must be pixel x-positions, got {boundaries!r}") from exc
    if inner and inner[0] == 0:
        inner = inner[1:]
    if inner and inner[-1] == image_width:
        inner = inner[:-1]
    edges = [0.0, *inner, float(image_width)]
    if not all(np.isfinite(e) for e in edges) or any(b <= a for a, b in pairwise(edges)):
        raise RegionError(
            f"panel boundaries must increase strictly inside the {image_width:g} px wide image, "
            f"got {list(boundaries)}"
        )
    return [b - a for a, b in pairwise(edges)]


def panel_shares(grid: ImageTokenGrid, edges: Sequence[float]) -> np.ndarray:
    """``[n_image_tokens, n_panels]``: the fraction of each token's pixel box that lies in each panel.

    Boxes are the adapter's real boxes, clipped to the image (LLaVA-1.5's padded edge columns are
    narrower than the others), so the shares follow what each token actually sees.
    """
    x0, x1 = grid.token_boxes[:, 0:1], grid.token_boxes[:, 2:3]  # [n, 1]
    lo, hi = np.asarray(edges[:-1])[None, :], np.asarray(edges[1:])[None, :]  # [1, panels]
    overlap = np.clip(np.minimum(x1, hi) - np.maximum(x0, lo), 0.0, None)
    return overlap / np.maximum(x1 - x0, 1e-12)


def panel_token_owner(
    grid: ImageTokenGrid, n_panels: int, widths: Sequence[float] | None = None
) -> np.ndarray:
    """The panel (0-based) of each image token: the one holding the largest share of its pixels.

    A panel that holds no token's largest share (a panel narrower than a token) still gets one
    column (the paper's rule): the tokens with the largest share in it, taken from a panel that
    keeps tokens of its own.
    """
    if n_panels > grid.cols:
        raise RegionError(f"{n_panels} panels cannot fit in an image only {grid.cols} image tokens wide")
    shares = panel_shares(grid, panel_edges(grid.image_width, n_panels, widths))  # [n, panels]
    owner = shares.argmax(axis=1)
    for k in range(n_panels):
        if np.any(owner == k):
            continue
        counts = np.bincount(owner, minlength=n_panels)
        candidates = np.flatnonzero(counts[owner] > 1)  # tokens whose panel keeps others
        if candidates.size == 0 or shares[candidates, k].max() <= 0:
            raise RegionError(f"panel {k + 1} is narrower than one image token; it cannot be steered to")
        best = shares[candidates, k].max()
        # one whole column: the tokens with that share and the same x-range as the first of them
        take = candidates[np.isclose(shares[candidates, k], best)]
        take = take[np.isclose(grid.token_boxes[take, 0], grid.token_boxes[take[0], 0])]
        donors = owner[take]
        for d in np.unique(donors):
            if counts[d] <= np.count_nonzero(donors == d):
                take = take[donors != d]  # taking them all would empty that panel
        if take.size == 0:
            raise RegionError(f"panel {k + 1} is narrower than one image token; it cannot be steered to")
        owner[take] = k
    return owner


def panel_regions(grid: ImageTokenGrid, n_panels: int, widths: Sequence[float] | None = None) -> list[Region]:
    """Regions for ``n_panels`` side-by-side panels (equal widths, or the given relative widths).

    Each image token goes to the panel holding the largest share of its pixel box (see
    :func:`panel_token_owner`); each region's box is its panel's pixel extent.
    """
    owner = panel_token_owner(grid, n_panels, widths)
    edges = panel_edges(grid.image_width, n_panels, widths)
    return [
        Region(
            f"panel {k + 1}",
            "panel",
            np.flatnonzero(owner == k),
            (edges[k], 0.0, edges[k + 1], float(grid.image_height)),
        )
        for k in range(n_panels)
    ]


def validate_box(box: Sequence[float], image_width: int, image_height: int) -> Box:
    """Check a pixel box; clip it to the image. Raises RegionError for bad boxes."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise RegionError(f"a box is four numbers x0,y0,x1,y1; got {box!r}") from exc
    if not all(np.isfinite(v) for v in (x0, y0, x1, y1)):
        raise RegionError(f"box {box!r} has a non-finite coordinate")
    if x1 <= x0 or y1 <= y0:
        raise RegionError(f"box ({x0:g},{y0:g},{x1:g},{y1:g}) has zero or negative area (need x1>x0, y1>y0)")
    if x1 <= 0 or y1 <= 0 or x0 >= image_width or y0 >= image_height:
        raise RegionError(
            f"box ({x0:g},{y0:g},{x1:g},{y1:g}) lies outside the {image_width}x{image_height} image"
        )
    return (max(x0, 0.0), max(y0, 0.0), min(x1, float(image_width)), min(y1, float(image_height)))


def box_region(grid: ImageTokenGrid, box: Sequence[float], name: str = "box") -> Region:
    """The image tokens whose cell centre falls inside ``box`` (the paper's rule)."""
    clipped = validate_box(box, grid.image_width, grid.image_height)
    x0, y0, x1, y1 = clipped
    c = grid.centres
    inside = (c[:, 0] >= x0) & (c[:, 0] < x1) & (c[:, 1] >= y0) & (c[:, 1] < y1)
    idx = np.flatnonzero(inside)
    if idx.size == 0:
        raise RegionError(
            f"box ({x0:g},{y0:g},{x1:g},{y1:g}) contains no image-token centre; draw it larger "
            f"(one token covers about {grid.image_width / grid.cols:.0f}x{grid.image_height / grid.rows:.0f} px)"
        )
    return Region(name, "box", idx, clipped)


def token_region(grid: ImageTokenGrid, token_indices: Sequence[int], name: str = "tokens") -> Region:
    """A region from explicit image-token indices (0-based, into the grid)."""
    idx = np.unique(np.asarray(list(token_indices), dtype=np.int64))
    if idx.size == 0:
        raise RegionError("a token region needs at least one image token")
    if idx.min() < 0 or idx.max() >= grid.n_tokens:
        raise RegionError(
            f"image-token indices must be in 0..{grid.n_tokens - 1}, got {idx.min()}..{idx.max()}"
        )
    return Region(name, "tokens", idx)
