"""Image-token geometry and regions: which pixel box each image token covers, and which image
tokens make up a panel, a drawn box or an explicit token set.

Adapters (``inference/adapters``) build an :class:`ImageTokenGrid` for each input; everything
downstream (steering, capture, overlay, storage) works from it and never asks which model family
produced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
            self.image_width, self.image_height, self.rows, self.cols, self.token_boxes, self.positions + offset
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


def panel_column_bounds(cols: int, n_panels: int, widths: Sequence[float] | None = None) -> list[int]:
    """Grid-column boundaries ``[0, b1, ..., cols]`` of ``n_panels`` side-by-side panels.

    Boundaries are proportional to the panel widths (equal by default) and kept strictly
    increasing, so every panel gets at least one column (the paper's rule).
    """
    if n_panels < 1:
        raise RegionError(f"a strip needs at least 1 panel, got {n_panels}")
    if n_panels > cols:
        raise RegionError(f"{n_panels} panels cannot fit in an image only {cols} image tokens wide")
    if widths is None:
        widths = [1.0] * n_panels
    widths = [float(w) for w in widths]
    if len(widths) != n_panels or any(not np.isfinite(w) or w <= 0 for w in widths):
        raise RegionError(f"panel widths must be {n_panels} positive numbers, got {list(widths)}")
    cumulative = np.cumsum(widths) / sum(widths)
    bounds = [0]
    for k in range(1, n_panels):
        b = int(round(cumulative[k - 1] * cols))
        # strictly increasing, and leave at least one column for each remaining panel
        b = max(b, bounds[-1] + 1)
        b = min(b, cols - (n_panels - k))
        bounds.append(b)
    bounds.append(cols)
    return bounds


def panel_regions(
    grid: ImageTokenGrid, n_panels: int, widths: Sequence[float] | None = None
) -> list[Region]:
    """Regions for ``n_panels`` side-by-side panels (equal widths, or the given pixel widths)."""
    bounds = panel_column_bounds(grid.cols, n_panels, widths)
    all_idx = np.arange(grid.n_tokens).reshape(grid.rows, grid.cols)
    regions = []
    for k in range(n_panels):
        idx = all_idx[:, bounds[k] : bounds[k + 1]].reshape(-1)
        x0 = grid.token_boxes[idx, 0].min()
        x1 = grid.token_boxes[idx, 2].max()
        regions.append(
            Region(f"panel {k + 1}", "panel", np.sort(idx), (float(x0), 0.0, float(x1), float(grid.image_height)))
        )
    return regions


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
        raise RegionError(f"image-token indices must be in 0..{grid.n_tokens - 1}, got {idx.min()}..{idx.max()}")
    return Region(name, "tokens", idx)
